"""ONNX export of the tracking network: onnxruntime agrees with PyTorch, errors name the file."""

import copy
import os
import pathlib
import shutil
import subprocess
import sys
from typing import List, Tuple

from detrack_model.cli import export as export_cli
from detrack_model.export import BundleError, load_bundle
from detrack_model.export.onnx import export_onnx, FORMAT, OnnxModelError
from detrack_model.modeling import create_model
from detrack_model.modeling.tracking_network import TrackingNetwork
from detrack_model.tracking.backends.torch_backend import TorchBackend
import numpy as np
import pytest
import torch

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = PACKAGE_ROOT / 'models' / 'detrack_tiny_pool'
RTOL, ATOL = 1e-3, 1e-5
# (decoder layers, candidate elimination) of the shipped model's exports.
SETUPS = {'layers1': (1, True), 'layers2': (2, True), 'no_ce': (None, False)}

Pair = Tuple[np.ndarray, np.ndarray]


def crop_pairs(template_size: int, search_size: int) -> List[Pair]:
    """Return random (template, search) crops and crops of a photograph, uint8 HWC."""
    rng = np.random.default_rng(3)
    pairs = [(rng.integers(0, 256, (template_size, template_size, 3), np.uint8),
              rng.integers(0, 256, (search_size, search_size, 3), np.uint8))
             for _ in range(3)]
    skimage_data = pytest.importorskip('skimage.data')
    photo = skimage_data.astronaut()
    # Every other pixel of a window twice the crop size: a face as the template, searches
    # around it (shifted, and one elsewhere in the picture).
    template = photo[30:30 + 2 * template_size:2, 150:150 + 2 * template_size:2]
    for top, left in ((0, 100), (40, 60), (250, 200)):
        search = photo[top:top + 2 * search_size:2, left:left + 2 * search_size:2]
        pairs.append((np.ascontiguousarray(template), np.ascontiguousarray(search)))
    return pairs


def check_parity(path: pathlib.Path, network: TrackingNetwork, pairs: List[Pair]) -> None:
    """Run an exported file with a bare onnxruntime session and ``network`` on each pair."""
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    k = 16 if network.model.config.head == 'decoder' else network.grid ** 2
    for template, search in pairs:
        with torch.no_grad():
            expected = [t.numpy() for t in network(torch.from_numpy(template[None]),
                                                   torch.from_numpy(search[None]))]
        got = session.run(['boxes', 'scores', 'cells'],
                          {'template': template[None], 'search': search[None]})
        assert [a.shape for a in got] == [(1, k, 4), (1, k), (1, k)]
        assert [a.dtype for a in got] == [np.float32, np.float32, np.int64]
        assert_candidates_match(got, expected)


def assert_candidates_match(got, expected) -> None:
    """Boxes and scores within RTOL/ATOL, cells identical."""
    np.testing.assert_allclose(got[0], expected[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got[1], expected[1], rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got[2], expected[2])


@pytest.fixture(scope='module')
def shipped():
    """Load the shipped model, float32 on the CPU."""
    return load_bundle(SHIPPED)


@pytest.fixture(scope='module', params=sorted(SETUPS))
def exported(request, shipped, tmp_path_factory):
    """Export the shipped model once per set-up; yield (path, layers, elimination)."""
    layers, elimination = SETUPS[request.param]
    path = tmp_path_factory.mktemp('onnx') / f'{request.param}.onnx'
    return export_onnx(shipped, path, layers, elimination), layers, elimination


@pytest.fixture(scope='module')
def conv_model():
    """Build a small random network with the conv head."""
    torch.manual_seed(0)
    return create_model('vit_tiny', head='conv', template_size=64, search_size=128,
                        encoder={'depth': 3, 'ce_layers': [1]},
                        conv_head={'channels': 32}).eval()


@pytest.fixture(scope='module')
def conv_exported(conv_model, tmp_path_factory):
    """Export the conv-head network to an ONNX file."""
    return export_onnx(conv_model, tmp_path_factory.mktemp('onnx') / 'conv.onnx')


def test_shipped_model_parity(exported, shipped):
    """Check onnxruntime returns PyTorch's candidates on random crops and photo crops."""
    path, layers, elimination = exported
    network = TrackingNetwork(shipped, layers, elimination).eval()
    check_parity(path, network, crop_pairs(64, 128))


@pytest.mark.slow
def test_dynamo_exporter(shipped, tmp_path):
    """The torch.export-based exporter writes an opset-18 file that agrees as well."""
    pytest.importorskip('onnxscript')
    path = export_onnx(shipped, tmp_path / 'dynamo.onnx', opset=18, dynamo=True)
    model = onnx.load(str(path))
    assert [(o.domain, o.version) for o in model.opset_import] == [('', 18)]
    assert {node.domain for node in model.graph.node} <= {'', 'ai.onnx'}
    assert not list(tmp_path.glob('*.data'))
    check_parity(path, TrackingNetwork(shipped).eval(), crop_pairs(64, 128)[2:4])


def test_graph_is_standard_onnx_with_metadata(exported, shipped):
    """The file passes the checker, uses standard operators only and describes itself."""
    path, layers, elimination = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {node.domain for node in model.graph.node} <= {'', 'ai.onnx'}
    assert [(o.domain, o.version) for o in model.opset_import] == [('', 17)]
    assert 'GridSample' in {node.op_type for node in model.graph.node}
    props = {p.key: p.value for p in model.metadata_props}
    assert props['format'] == FORMAT
    assert props['num_layers'] == str(layers or 2)
    assert props['candidate_elimination'] == ('true' if elimination else 'false')
    assert (props['template_size'], props['search_size'], props['grid']) == ('64', '128', '8')
    assert props['num_candidates'] == '16'
    assert [i.name for i in model.graph.input] == ['template', 'search']
    assert [o.name for o in model.graph.output] == ['boxes', 'scores', 'cells']


def test_backends_agree_through_the_interface(exported, shipped):
    """Check OnnxBackend and TorchBackend give the same candidates, new templates included."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    path, layers, elimination = exported
    onnx_backend = OnnxBackend(path, threads=2)
    torch_backend = TorchBackend(shipped, torch.device('cpu'), layers, elimination)
    for attribute in ('template_size', 'search_size', 'grid'):
        assert getattr(onnx_backend, attribute) == getattr(torch_backend, attribute)
    assert onnx_backend.name == 'onnxruntime-cpu'
    assert onnx_backend.num_layers == (layers or 2)
    pairs = crop_pairs(64, 128)
    for index, (template, search) in enumerate(pairs):
        if index % 2 == 0:
            onnx_backend.set_template(template)
            torch_backend.set_template(template)
        got, expected = onnx_backend.infer(search), torch_backend.infer(search)
        assert [a.shape for a in got] == [(16, 4), (16,), (16,)]
        assert_candidates_match(got, expected)
    # Results are the caller's: the next frame does not overwrite them.
    first = onnx_backend.infer(pairs[0][1])
    kept = [a.copy() for a in first]
    onnx_backend.infer(pairs[-1][1])
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)
    onnx_backend.release()
    with pytest.raises(RuntimeError, match='release'):
        onnx_backend.infer(search)


def test_batched_searches_equal_one_at_a_time(exported, shipped):
    """infer_batch gives each search crop's own candidates: PyTorch in one run, ONNX in turn."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    path, layers, elimination = exported
    pairs = crop_pairs(64, 128)
    searches = np.stack([search for _, search in pairs])
    for backend in (OnnxBackend(path, threads=2),
                    TorchBackend(shipped, torch.device('cpu'), layers, elimination)):
        backend.set_template(pairs[-1][0])
        single = [backend.infer(search) for search in searches]
        for count in (len(searches), 2, 1):
            got = backend.infer_batch(searches[:count])
            assert [a.shape for a in got] == [(count, 16, 4), (count, 16), (count, 16)]
            for index in range(count):
                assert_candidates_match([a[index] for a in got], single[index])


def test_conv_head_parity(conv_model, conv_exported):
    """The conv head exports with every grid cell as a candidate, and agrees with PyTorch."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    check_parity(conv_exported, TrackingNetwork(conv_model).eval(), crop_pairs(64, 128))
    backend = OnnxBackend(conv_exported)
    reference = TorchBackend(conv_model, torch.device('cpu'))
    assert backend.metadata.num_candidates == 64
    assert backend.num_layers == 0
    for template, search in crop_pairs(64, 128):
        backend.set_template(template)
        reference.set_template(template)
        got = backend.infer(search)
        assert_candidates_match(got, reference.infer(search))
        np.testing.assert_array_equal(got[2], np.arange(64))


def test_export_rejects_bad_arguments(conv_model, shipped, tmp_path):
    """Unsupported opsets, layer counts and dtypes are ValueErrors, and nothing is written."""
    target = tmp_path / 'bad.onnx'
    with pytest.raises(ValueError, match='opset 15'):
        export_onnx(shipped, target, opset=15)
    with pytest.raises(ValueError, match='opset 17 .* dynamo'):
        export_onnx(shipped, target, opset=17, dynamo=True)
    with pytest.raises(ValueError, match='1..2'):
        export_onnx(shipped, target, num_layers=3)
    with pytest.raises(ValueError, match='float32'):
        export_onnx(copy.deepcopy(conv_model).half(), target)
    assert list(tmp_path.iterdir()) == []


def test_export_keeps_the_training_mode(tmp_path):
    """A network in training mode is exported in eval mode and handed back training."""
    model = create_model('vit_tiny', head='conv', template_size=32, search_size=64,
                         encoder={'depth': 1, 'ce_layers': []}, conv_head={'channels': 8})
    model.train()
    path = export_onnx(model, tmp_path / 'sub' / 'train.onnx')
    assert model.training and path.is_file()
    assert not path.with_name('train.onnx.partial').exists()


def test_missing_file_error(tmp_path):
    """A path that does not exist names the file."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    missing = tmp_path / 'absent.onnx'
    with pytest.raises(OnnxModelError, match='absent.onnx'):
        OnnxBackend(missing)
    with pytest.raises(OnnxModelError, match='not a file'):
        OnnxBackend(tmp_path)


def test_garbage_file_error(tmp_path):
    """Bytes that are not an ONNX model give a BundleError naming the file."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'\x00\xffthis is not a protobuf\x13\x37' * 50)
    with pytest.raises(BundleError, match='garbage.onnx.*not a loadable ONNX model'):
        OnnxBackend(garbage)
    empty = tmp_path / 'empty.onnx'
    empty.write_bytes(b'')
    with pytest.raises(OnnxModelError, match='empty.onnx'):
        OnnxBackend(empty)


def test_foreign_onnx_error(tmp_path):
    """An ONNX model that is not ours, or of another format version, is refused by name."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node('Identity', ['x'], ['y'])], 'identity',
        [helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    foreign = tmp_path / 'foreign.onnx'
    onnx.save(model, str(foreign))
    assert ort.InferenceSession(str(foreign), providers=['CPUExecutionProvider'])
    with pytest.raises(OnnxModelError, match='foreign.onnx.*not an exported DETRack'):
        OnnxBackend(foreign)
    helper.set_model_props(model, {'format': 'detrack-onnx/99'})
    future = tmp_path / 'future.onnx'
    onnx.save(model, str(future))
    with pytest.raises(OnnxModelError, match="future.onnx.*'detrack-onnx/99'"):
        OnnxBackend(future)


def test_tampered_metadata_error(conv_exported, tmp_path):
    """Metadata that disagrees with the graph's inputs is caught before the first frame."""
    from detrack_model.tracking.backends.onnxruntime_backend import OnnxBackend

    model = onnx.load(str(conv_exported))
    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, 'num_candidates': '16'})
    tampered = tmp_path / 'tampered.onnx'
    onnx.save(model, str(tampered))
    with pytest.raises(OnnxModelError, match='tampered.onnx.*do not match'):
        OnnxBackend(tampered)


@pytest.mark.slow
def test_backends_import_onnxruntime_lazily():
    """The tracker and export packages leave onnxruntime unimported until OnnxBackend is used."""
    code = ('import sys, detrack_model.export, detrack_model.tracking; '
            'import detrack_model.tracking.backends as b; '
            'assert "onnxruntime" not in sys.modules; '
            'b.OnnxBackend; assert "onnxruntime" in sys.modules; print("lazy")')
    done = subprocess.run([sys.executable, '-c', code], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'lazy'


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    """detrack-export writes a file and --check reports agreement."""
    output = tmp_path / 'cli' / 'model.onnx'
    done = subprocess.run(
        [sys.executable, '-m', 'detrack_model.cli.export', '--model', str(SHIPPED),
         '--output', str(output), '--decoder-layers', '1', '--check'],
        cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    assert output.is_file()
    assert 'decoder layers 1/2' in done.stdout
    assert 'max relative box difference' in done.stdout and ': OK' in done.stdout
    assert 'TracerWarning' not in done.stderr


def test_cli_errors_are_usage_errors(tmp_path, capsys):
    """A missing bundle or a bad option exits 2 with a one-line message, no traceback."""
    output = str(tmp_path / 'x.onnx')
    for argv, message in (
            (['--model', str(tmp_path / 'nope'), '--output', output], 'bundle config not found'),
            (['--model', str(SHIPPED), '--output', output, '--decoder-layers', '5'], '1..2'),
            (['--model', str(SHIPPED), '--output', output, '--opset', '11'], 'opset 11')):
        with pytest.raises(SystemExit) as exit_info:
            export_cli.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and 'Traceback' not in err
    assert not (tmp_path / 'x.onnx').exists()


def test_cli_never_overwrites_its_input_bundle(tmp_path, capsys):
    """--output naming the bundle's own weights or config is refused; the bundle is intact."""
    stem = tmp_path / 'x' / 'model'
    stem.parent.mkdir()
    for suffix in ('.safetensors', '.yaml'):
        shutil.copyfile(str(SHIPPED) + suffix, str(stem) + suffix)
    before = {suffix: pathlib.Path(str(stem) + suffix).read_bytes()
              for suffix in ('.safetensors', '.yaml')}
    for output in (str(stem) + '.safetensors', str(stem) + '.yaml',
                   str(tmp_path / 'x' / '..' / 'x' / 'model.safetensors')):
        with pytest.raises(SystemExit) as exit_info:
            export_cli.main(['--model', str(stem), '--output', output])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert 'refusing to overwrite' in err and 'Traceback' not in err
    for suffix, data in before.items():
        assert pathlib.Path(str(stem) + suffix).read_bytes() == data


def _env() -> dict:
    """Environment for a child interpreter that imports the package from this tree."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                      env.get('PYTHONPATH')]))
    return env
