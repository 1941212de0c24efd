"""
Model bundles: ``<stem>.safetensors`` (weights) beside ``<stem>.yaml`` (the architecture).

The YAML names the whole architecture (a pruned one included) so a bundle loads without any
other knowledge; the weights are safetensors, never a pickle. Weights may be stored in half
precision to keep shipped models small; they load into a float32 network.

A bundle is input a user hands over, so every way it can be wrong ends in :class:`BundleError`
naming the file: a config too large or too deeply nested to be one (a YAML alias bomb), one
that is not a mapping, a model section of the wrong shape. The network is first built without
memory (PyTorch's meta device) to check the weights against it, so a config that claims a huge
network allocates nothing unless the weights file really holds that much.
"""

import pathlib
from typing import Any, Dict, Tuple, Union

from detrack_model.config import ModelConfig
from detrack_model.modeling import create_model, DETRack
import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
import yaml

FORMAT = 'detrack-bundle/1'
PathLike = Union[str, pathlib.Path]
# A bundle config is a few kB; one of a megabyte or of this many YAML nodes is not one.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 100_000
# Brackets opened and not yet closed; PyYAML's time grows with the square of this.
MAX_CONFIG_NESTING = 64
# What building a ModelConfig from malformed data raises (a zero patch size divides by zero).
CONFIG_ERRORS = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError,
                 RecursionError)
# Sizes no tracking network comes near (ViT-B: 12 blocks of 768): a config beyond them would
# only make the loader build an enormous module tree before the weights could refute it.
MAX_BLOCKS = 128
MAX_WIDTH = 1 << 16
MAX_CROP = 4096
MAX_MLP_RATIO = 64.0


class BundleError(RuntimeError):
    """A bundle that is missing, corrupt, or does not match its configuration."""


def bundle_paths(path: PathLike) -> Tuple[pathlib.Path, pathlib.Path]:
    """Return the (weights, config) paths of the bundle named by either file or their stem."""
    path = pathlib.Path(path)
    stem = path.with_suffix('') if path.suffix in ('.safetensors', '.yaml') else path
    # Appended, not with_suffix: a stem such as child_0.25 keeps its dot.
    return stem.with_name(stem.name + '.safetensors'), stem.with_name(stem.name + '.yaml')


def save_bundle(model: DETRack, path: PathLike, dtype: torch.dtype = torch.float32,
                metadata: Dict[str, Any] = None) -> Tuple[pathlib.Path, pathlib.Path]:
    """Write ``model`` as a bundle; ``dtype`` float16 halves the file size."""
    weights_path, config_path = bundle_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to('cpu', dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(weights_path), metadata={'format': FORMAT})
    document = {'format': FORMAT, 'model': model.config.to_dict(),
                'weights_dtype': str(dtype).replace('torch.', ''),
                'metadata': metadata or {}}
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return weights_path, config_path


def read_bundle_config(path: PathLike) -> Dict[str, Any]:
    """Read and check a bundle's YAML document (a mapping with a ``model`` mapping)."""
    _, config_path = bundle_paths(path)
    if not config_path.is_file():
        raise BundleError(f'bundle config not found: {config_path}')
    size = config_path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise BundleError(f'{config_path} is {size} bytes: too large for a bundle config '
                          f'(at most {MAX_CONFIG_BYTES})')
    text = config_path.read_bytes()
    if _flow_nesting(text) > MAX_CONFIG_NESTING:
        raise BundleError(f'{config_path} nests brackets more than {MAX_CONFIG_NESTING} deep: '
                          'not a bundle config')
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BundleError(f'{config_path} is not valid YAML: {error}') from None
    except RecursionError:
        raise BundleError(f'{config_path} is nested too deeply to be a bundle config') from None
    except (ValueError, TypeError, OverflowError) as error:
        # The YAML constructors' own errors, e.g. a timestamp with month 13.
        raise BundleError(f'{config_path} holds a value YAML cannot build: {error}') from None
    if not isinstance(document, dict) or document.get('format') != FORMAT:
        raise BundleError(f'{config_path} is not a detrack bundle config (expected format '
                          f'{FORMAT!r})')
    if _count_nodes(document, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
        raise BundleError(f'{config_path} expands to more than {MAX_CONFIG_NODES} values '
                          '(YAML aliases repeated?): not a bundle config')
    if not isinstance(document.get('model'), dict):
        raise BundleError(f'{config_path}: model must be a mapping, got '
                          f'{type(document.get("model")).__name__}')
    return document


def _flow_nesting(text: bytes) -> int:
    """Return the deepest bracket nesting of ``text`` (brackets in strings count too)."""
    codes = np.frombuffer(text, np.uint8)
    steps = np.zeros(len(codes), np.int32)
    steps[(codes == ord('[')) | (codes == ord('{'))] = 1
    steps[(codes == ord(']')) | (codes == ord('}'))] = -1
    return int(np.cumsum(steps).max(initial=0))


def _count_nodes(value: Any, budget: int) -> int:
    """Count the values of a loaded YAML document, aliases once per use, stopping past budget."""
    count, stack = 0, [value]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return count


def read_model_config(path: PathLike) -> ModelConfig:
    """Return the checked model configuration of a bundle; BundleError names what is wrong."""
    _, config_path = bundle_paths(path)
    document = read_bundle_config(path)
    try:
        config = ModelConfig.from_dict(document['model'])
        problem = _implausible(config)
    except CONFIG_ERRORS as error:
        raise BundleError(f'{config_path}: invalid model configuration: '
                          f'{_short(error)}') from None
    if problem:
        raise BundleError(f'{config_path}: invalid model configuration: {problem}')
    return config


def _implausible(config: ModelConfig) -> str:
    """Return what in ``config`` is beyond any tracking network, or ''."""
    enc, dec = config.encoder, config.decoder
    counts = {'encoder depth': enc.depth, 'decoder layers': dec.layers}
    widths = {'encoder dim': enc.dim, 'encoder heads': enc.heads, 'decoder hidden': dec.hidden,
              'decoder heads': dec.heads, 'decoder points': dec.points,
              'decoder ffn_dim': dec.ffn_dim, 'decoder num_queries': dec.num_queries,
              'conv head channels': config.conv_head.channels,
              'patch size': enc.patch_size}
    for name, value in counts.items():
        if not 1 <= value <= MAX_BLOCKS:
            return f'{name} {value} is outside 1..{MAX_BLOCKS}'
    for name, value in widths.items():
        if not 1 <= value <= MAX_WIDTH:
            return f'{name} {value} is outside 1..{MAX_WIDTH}'
    for name, value in (('template_size', config.template_size),
                        ('search_size', config.search_size)):
        if not 1 <= value <= MAX_CROP:
            return f'{name} {value} is outside 1..{MAX_CROP}'
    if not 0.0 < enc.mlp_ratio <= MAX_MLP_RATIO:
        return f'encoder mlp_ratio {enc.mlp_ratio} is outside (0, {MAX_MLP_RATIO:g}]'
    lists = [enc.mlp_dims, dec.ffn_dims, *(enc.head_widths or [])]
    if any(max(values, default=1) > MAX_WIDTH for values in lists if values):
        return f'a per-layer width is over {MAX_WIDTH}'
    return ''


def _short(error: BaseException, limit: int = 300) -> str:
    """Return an error's message cut to ``limit`` characters (it may quote a huge value)."""
    text = str(error) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + '...'


def _read_weights(weights_path: pathlib.Path) -> Dict[str, torch.Tensor]:
    if not weights_path.is_file():
        raise BundleError(f'bundle weights not found: {weights_path}')
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise BundleError(f'{weights_path} is not a readable safetensors file: {error}') \
            from error


def _check_fit(model: DETRack, state: Dict[str, torch.Tensor], source: str,
               optional: Tuple[str, ...] = ()) -> None:
    """Raise BundleError naming keys that are missing, unexpected or of the wrong shape."""
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(optional))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f'{k}: file {tuple(state[k].shape)}, config {tuple(v.shape)}'
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        details = '; '.join(filter(None, [
            f'missing {missing[:5]}' if missing else '',
            f'unexpected {unexpected[:5]}' if unexpected else '',
            f'shape mismatch {wrong[:3]}' if wrong else '']))
        raise BundleError(f'{source}: {details}')


def load_bundle(path: PathLike, device: Union[str, torch.device] = 'cpu') -> DETRack:
    """Load a bundle into a float32 network on ``device``; errors name the file at fault."""
    weights_path, config_path = bundle_paths(path)
    config = read_model_config(path)
    state = _read_weights(weights_path)
    _check_fit(_meta_model(config, config_path), state,
               f'{weights_path} does not match the architecture in {config_path}')
    model = create_model(config)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval()


def _meta_model(config: ModelConfig, config_path: pathlib.Path) -> DETRack:
    """Build the network on the meta device: shapes only, no memory."""
    try:
        with torch.device('meta'):
            return create_model(config)
    except (*CONFIG_ERRORS, RuntimeError) as error:
        raise BundleError(f'{config_path}: the model configuration does not build: '
                          f'{_short(error)}') from None


def init_from_bundle(model: DETRack, path: PathLike) -> None:
    """
    Copy a bundle's weights into ``model`` (the start of sparsity training or fine-tuning).

    Every weight must fit; only pruning masks may be absent from the bundle (they start at
    one). Raises BundleError naming the keys that do not fit.
    """
    weights_path, _ = bundle_paths(path)
    read_bundle_config(path)
    state = _read_weights(weights_path)
    _check_fit(model, state, f'{weights_path} cannot initialise this network',
               optional=('prune_mask',))
    expected = model.state_dict()
    with torch.no_grad():
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()},
                              strict=False)
