"""
Model configuration: small dataclasses that name an architecture completely.

A configuration travels with the weights (safetensors + this as JSON/YAML), so it is plain
data: ``to_dict``/``from_dict`` round-trip it and reject keys they do not know.
"""

from dataclasses import asdict, dataclass, field, fields, replace
import math
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class LayerWidths:
    """The widths of one encoder block: q/k/v width of each attention head, MLP hidden units."""

    heads: Tuple[int, ...]
    mlp: int


@dataclass
class EncoderConfig:
    """Plain ViT over template and search tokens, with candidate elimination."""

    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    # Block indices (0-based) after whose attention search tokens are eliminated.
    ce_layers: Tuple[int, ...] = (3, 6, 9)
    ce_keep_ratio: float = 0.7
    drop_path: float = 0.0
    # Per-layer widths, the one form for dense and pruned encoders alike; read them through
    # layer_widths(). head_widths[i] lists the q/k/v width of every head of block i (a pruned
    # block keeps 1..heads heads, which may differ in width), mlp_dims[i] is the hidden width
    # of its MLP. None: every block is dense (heads of dim / heads, dim * mlp_ratio units).
    mlp_dims: Optional[List[int]] = None
    head_widths: Optional[List[List[int]]] = None

    def layer_widths(self) -> List[LayerWidths]:
        """Return the widths of every block, whether dense or pruned."""
        heads = self.head_widths or [[self.dim // self.heads] * self.heads] * self.depth
        mlp = self.mlp_dims or [int(self.dim * self.mlp_ratio)] * self.depth
        return [LayerWidths(tuple(h), m) for h, m in zip(heads, mlp)]


@dataclass
class DecoderConfig:
    """Deformable transformer decoder used as the target head."""

    layers: int = 3
    hidden: int = 256
    heads: int = 8
    points: int = 4
    ffn_dim: int = 1024
    num_queries: int = 64
    dropout: float = 0.0
    # Normalised size of the proposal anchor each search token starts from: at crop factor 4
    # the target spans about a quarter of the search region.
    anchor_size: float = 0.25
    # Per-layer FFN hidden widths of a pruned decoder (None: ffn_dim in every layer).
    ffn_dims: Optional[List[int]] = None
    # Learned positive/negative label embeddings as the content of denoising queries (the
    # paper's Table 5, variant 1; training only). Off: content is the encoder tokens'.
    dn_labels: bool = False


@dataclass
class ConvHeadConfig:
    """OSTrack's centre/offset/size convolutional head (the baseline)."""

    channels: int = 256


@dataclass
class ModelConfig:
    """A whole tracking network."""

    name: str = 'vit_base'
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: str = 'decoder'
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    conv_head: ConvHeadConfig = field(default_factory=ConvHeadConfig)
    template_size: int = 128
    search_size: int = 256
    # Learnable pruning masks on attention head dims and MLP hidden units (sparsity training,
    # detrack_model.pruning); a pruned child network has none.
    masked: bool = False

    def __post_init__(self) -> None:
        """Check that the pieces fit together, naming what does not."""
        validate(self)

    @property
    def template_grid(self) -> int:
        """Tokens along one side of the template."""
        return self.template_size // self.encoder.patch_size

    @property
    def search_grid(self) -> int:
        """Tokens along one side of the search region."""
        return self.search_size // self.encoder.patch_size

    def kept_search_tokens(self, candidate_elimination: bool = True) -> int:
        """Search tokens left after the encoder (all of them without elimination)."""
        kept = self.search_grid ** 2
        if candidate_elimination:
            for _ in self.encoder.ce_layers:
                kept = math.ceil(self.encoder.ce_keep_ratio * kept)
        return kept

    def to_dict(self) -> Dict[str, Any]:
        """Plain, JSON-ready dictionary."""
        data = asdict(self)
        data['encoder']['ce_layers'] = list(self.encoder.ce_layers)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'ModelConfig':
        """Build a configuration from ``to_dict`` output; unknown keys are an error."""
        data = dict(data)
        retired = {}
        if isinstance(data.get('encoder'), dict):
            encoder = data['encoder'] = dict(data['encoder'])
            retired = {key: encoder.pop(key) for key in _RETIRED_HEAD_FIELDS if key in encoder}
        parts = {'encoder': EncoderConfig, 'decoder': DecoderConfig,
                 'conv_head': ConvHeadConfig}
        for key, part in parts.items():
            if key in data:
                data[key] = build_dataclass(part, data[key], key)
        if retired:
            data['encoder'] = _upgrade_head_fields(data['encoder'], **retired)
        config = build_dataclass(cls, data, 'model')
        if isinstance(config.encoder.ce_layers, list):
            config = replace(config, encoder=replace(
                config.encoder, ce_layers=tuple(config.encoder.ce_layers)))
        return config


# Fields of old configurations that head_widths replaces (see _upgrade_head_fields).
_RETIRED_HEAD_FIELDS = ('head_counts', 'head_dims')
# More heads in one block than any ViT has. An old-form config naming more is refused before
# its counts are expanded into lists: a bundle is untrusted input.
_MAX_LEGACY_HEADS = 4096


def _upgrade_head_fields(enc: EncoderConfig, head_counts: Optional[List[int]] = None,
                         head_dims: Optional[List[int]] = None) -> EncoderConfig:
    """
    Return ``enc`` with the retired ``head_counts``/``head_dims`` written as ``head_widths``.

    Configurations written before ``head_widths`` was the one form (bundles, recipes, ONNX
    metadata) gave block i head_counts[i] heads of head_dims[i] each, either list None meaning
    dense (``heads`` heads, ``dim // heads`` wide).
    """
    if head_counts is None and head_dims is None:
        return enc
    if enc.head_widths is not None:
        raise ValueError('encoder: head_widths replaces head_dims and head_counts: give one '
                         'or the other')
    for name, values, limit in (('head_counts', head_counts, min(enc.heads, _MAX_LEGACY_HEADS)),
                                ('head_dims', head_dims, None)):
        if values is not None and not (isinstance(values, list) and len(values) == enc.depth
                                       and all(_is_width(v, limit) for v in values)):
            bound = '' if limit is None else f' of at most {limit}'
            raise ValueError(f'encoder: {name} needs {enc.depth} positive integers{bound}, '
                             f'got {values}')
    # Checked first: the list given has depth entries, so depth is no larger than the file.
    counts = head_counts or [enc.heads] * enc.depth
    dims = head_dims or [enc.dim // enc.heads] * enc.depth
    return replace(enc, head_widths=[[width] * count for width, count in zip(dims, counts)])


def _is_width(value: Any, limit: Optional[int] = None) -> bool:
    """Return whether ``value`` is a positive integer (a bool is not), at most ``limit``."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= 1
            and (limit is None or value <= limit))


def build_dataclass(kind, data: Optional[Dict[str, Any]], where: str):
    """Build dataclass ``kind`` from ``data``, naming unknown keys and mistyped values."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f'{where}: expected a mapping, got {type(data).__name__}')
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f'{where}: unknown keys {unknown}; expected some of {sorted(known)}')
    return kind(**{key: _coerce(value, known[key].type, f'{where}: {key}')
                   for key, value in data.items()})


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """
    Check a scalar against its field type, converting numbers YAML read as strings.

    PyYAML reads ``1e-3`` (no dot) as a string; a recipe author means a number.
    """
    kind = {int: int, float: float, bool: bool, 'int': int, 'float': float,
            'bool': bool}.get(annotation)
    if kind is None or value is None:
        return value
    if kind is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind is bool and isinstance(value, bool):
        return value
    raise ValueError(f'{where}: expected {kind.__name__}, got {value!r}')


def validate_decoder_layers(num_layers: Optional[int], total: int) -> None:
    """
    Raise ValueError unless the first ``num_layers`` of ``total`` decoder layers can run.

    None runs them all. A conv-head network (``total`` 0) has no decoder layers to choose.
    This is the one check of a decoder depth: the network, both backends, the export, the
    depth switcher and the node all call it.
    """
    if num_layers is None:
        return
    if total == 0:
        raise ValueError(f'decoder layers {num_layers}: the network has the conv head, no '
                         'decoder layers to choose')
    if not 1 <= num_layers <= total:
        raise ValueError(f'decoder layers must be in 1..{total}, got {num_layers}')


def validate(config: ModelConfig) -> None:
    """Raise ValueError naming the first inconsistency in ``config``."""
    enc, dec = config.encoder, config.decoder
    for name, size in (('template_size', config.template_size),
                       ('search_size', config.search_size)):
        if size <= 0 or size % enc.patch_size:
            raise ValueError(f'{name} must be a positive multiple of the patch size '
                             f'{enc.patch_size}, got {size}')
    if config.head not in ('decoder', 'conv'):
        raise ValueError(f"head must be 'decoder' or 'conv', got {config.head!r}")
    if enc.dim % enc.heads:
        raise ValueError(f'encoder dim {enc.dim} is not divisible by its {enc.heads} heads')
    bad_layers = [i for i in enc.ce_layers if not 0 <= i < enc.depth]
    if bad_layers:
        raise ValueError(f'ce_layers {bad_layers} outside the encoder depth 0..{enc.depth - 1}')
    if not 0.0 < enc.ce_keep_ratio <= 1.0:
        raise ValueError(f'ce_keep_ratio must be in (0, 1], got {enc.ce_keep_ratio}')
    for name, widths, count in (('mlp_dims', enc.mlp_dims, enc.depth),
                                ('ffn_dims', dec.ffn_dims, dec.layers)):
        if widths is not None and (len(widths) != count or min(widths) < 1):
            raise ValueError(f'{name} needs {count} positive widths, got {widths}')
    if enc.head_widths is not None:
        _check_head_widths(enc, config.masked)
    if dec.hidden % dec.heads:
        raise ValueError(f'decoder hidden {dec.hidden} is not divisible by its {dec.heads} heads')
    if dec.layers < 1 or dec.points < 1 or dec.num_queries < 1:
        raise ValueError('decoder layers, points and num_queries must be at least 1, got '
                         f'{dec.layers}, {dec.points}, {dec.num_queries}')
    kept = config.kept_search_tokens()
    if config.head == 'decoder' and dec.num_queries > kept:
        raise ValueError(f'num_queries {dec.num_queries} is larger than the {kept} search tokens '
                         f'kept after candidate elimination ({config.search_grid}x'
                         f'{config.search_grid} tokens, keep ratio {enc.ce_keep_ratio} at '
                         f'layers {list(enc.ce_layers)}); use at most {kept}')


def _check_head_widths(enc: EncoderConfig, masked: bool) -> None:
    """Raise ValueError unless ``head_widths`` names 1..heads positive widths per block."""
    widths = enc.head_widths
    if not isinstance(widths, list) or len(widths) != enc.depth:
        raise ValueError(f'head_widths needs one list of head widths per block ({enc.depth}), '
                         f'got {widths}')
    for i, layer in enumerate(widths):
        if not (isinstance(layer, list) and 1 <= len(layer) <= enc.heads
                and all(_is_width(w) for w in layer)):
            raise ValueError(f'head_widths[{i}] must list 1..{enc.heads} positive integer '
                             f'widths, got {layer}')
        if masked and len(set(layer)) > 1:
            # A mask is one (heads, head_dim) grid; heads of different widths do not fill one.
            raise ValueError(f'a masked model needs heads of one width per block; block {i} '
                             f'has widths {layer}')


ENCODERS = {
    'vit_base': {'dim': 768, 'depth': 12, 'heads': 12},
    'vit_small': {'dim': 384, 'depth': 12, 'heads': 6},
    'vit_tiny': {'dim': 192, 'depth': 12, 'heads': 3},
}


def config_from_spec(spec: Dict[str, Any]) -> ModelConfig:
    """Build a configuration from a full ``to_dict`` form or ``{'preset': name, **overrides}``."""
    spec = dict(spec)
    if 'preset' in spec:
        return preset(spec.pop('preset'), **spec)
    return ModelConfig.from_dict(spec)


def preset(name: str, **overrides: Any) -> ModelConfig:
    """
    Build the configuration of a named model family.

    ``name`` is ``vit_base`` (the paper), ``vit_small`` or ``vit_tiny``; ``overrides`` replace
    top-level fields (``head``, ``template_size``, ...) or, as ``encoder``/``decoder`` dicts,
    fields of those parts (``encoder={'depth': 6}``).
    """
    if name not in ENCODERS:
        raise ValueError(f'unknown model {name!r}; expected one of {sorted(ENCODERS)}')
    data = ModelConfig(name=name, encoder=EncoderConfig(**ENCODERS[name])).to_dict()
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return ModelConfig.from_dict(data)
