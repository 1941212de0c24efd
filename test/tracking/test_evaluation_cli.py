"""detrack-eval end to end: DETRack (both backends) and a peer scored side by side, resumed."""

import json
import os
import pathlib
import subprocess
import sys

from detrack_model.cli.evaluate import detrack_name, parse_tracker
from detrack_model.data.synthetic import generate_dataset
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def evaluate_cli(*args, cwd=ROOT):
    """Run detrack-eval in a subprocess as a user would."""
    return subprocess.run([sys.executable, '-m', 'detrack_model.cli.evaluate', *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Two short generated GOT-10k-layout validation sequences."""
    root = tmp_path_factory.mktemp('eval_cli')
    generate_dataset(str(root), 'val', 2, 15, size=(200, 150), seed=21)
    return root


@pytest.mark.slow
def test_three_trackers_in_one_run_then_resume(dataset, tmp_path):
    """One run writes toolkit-format results, a table, JSON and plots; a rerun reads them."""
    output = tmp_path / 'out'
    args = ['--benchmark', 'got10k', '--root', str(dataset), '--split', 'val',
            '--tracker', 'detrack', '--tracker', 'detrack:layers=1,backend=onnxruntime',
            '--tracker', 'kcf', '--output', str(output), '--progress']
    result = evaluate_cli(*args)
    assert result.returncode == 0, result.stderr
    names = ['detrack', 'detrack-L1-ort', 'kcf']
    for name in names:
        box_file = output / 'results' / name / 'Synthetic_Val_000001' / \
            'Synthetic_Val_000001_001.txt'
        lines = box_file.read_text().splitlines()
        assert len(lines) == 15 and len(lines[0].split(',')) == 4
        assert name in result.stdout
    scores = json.loads((output / 'scores.json').read_text())
    assert scores['protocol'] == 'got10k' and sorted(scores['trackers']) == sorted(names)
    for values in scores['trackers'].values():
        assert 0.0 <= values['ao'] <= 1.0 and values['fps'] > 0
    for plot in ('success_plot.png', 'precision_plot.png'):
        assert (output / plot).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert '| Tracker |' in (output / 'table.md').read_text()
    again = evaluate_cli(*args)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count('found') == 6
    # Read back from the files (boxes at 4 decimals, times at 8): the same scores.
    resumed = json.loads((output / 'scores.json').read_text())['trackers']
    for name in names:
        for key in ('ao', 'sr50', 'success_auc', 'fps'):
            assert resumed[name][key] == pytest.approx(scores['trackers'][name][key], rel=1e-3)


@pytest.mark.slow
def test_usage_errors_are_one_line_messages(dataset, tmp_path):
    """Unknown trackers, bad options and a missing dataset fail with exit 2, no traceback."""
    for args, message in (
            (['--tracker', 'siamfc'], 'unknown tracker'),
            (['--tracker', 'detrack:layer=1'], 'unknown keys'),
            (['--tracker', 'kcf:layers=1'], 'name='),
    ):
        result = evaluate_cli('--benchmark', 'got10k', '--root', str(dataset), *args,
                              '--output', str(tmp_path / 'x'))
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and 'Traceback' not in result.stderr
    result = evaluate_cli('--benchmark', 'otb', '--root', str(tmp_path / 'nowhere'),
                          '--tracker', 'kcf', '--output', str(tmp_path / 'x'))
    assert result.returncode == 2 and 'nowhere' in result.stderr
    assert 'Traceback' not in result.stderr


def test_tracker_specs_parse_and_name_their_results():
    """Specs become options; unnamed DETRack variants get distinct directory names."""
    kind, options = parse_tracker('detrack:layers=1,backend=onnxruntime')
    assert kind == 'detrack' and options == {'layers': '1', 'backend': 'onnxruntime'}
    assert detrack_name(options) == 'detrack-L1-ort'
    assert detrack_name({'ce': '0', 'hanning': 'off'}) == 'detrack-noce-nohann'
    assert detrack_name({'name': 'mine'}) == 'mine'
    assert parse_tracker('CSRT') == ('csrt', {})
    with pytest.raises(ValueError, match='key=value'):
        parse_tracker('detrack:layers')


@pytest.mark.slow
def test_negative_limit_is_refused(dataset, tmp_path):
    """--limit -1 once scored all but the last sequence in silence; now it is an error."""
    result = evaluate_cli('--benchmark', 'got10k', '--root', str(dataset), '--split', 'val',
                          '--tracker', 'kcf', '--limit', '-1', '--output', str(tmp_path / 'x'))
    assert result.returncode == 2, result.stderr
    assert '--limit: must be at least 0, got -1' in result.stderr
    assert not (tmp_path / 'x').exists()
    for spec, message in (('detrack:layers=0', "layers='0': must be at least 1"),
                          ('detrack:threads=-2', "threads='-2': must be at least 1")):
        result = evaluate_cli('--benchmark', 'got10k', '--root', str(dataset), '--tracker',
                              spec, '--output', str(tmp_path / 'x'))
        assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_corrupt_frame_mid_sequence_is_the_tools_error_line(tmp_path, damage):
    """A frame cut in half, or not an image, in the middle of a sequence: exit 2, one line."""
    root = tmp_path / 'data'
    generate_dataset(str(root), 'val', 1, 10, size=(200, 150), seed=22)
    frame = next((root / 'val').glob('*/00000005.jpg'))
    data = frame.read_bytes()
    frame.write_bytes(data[:len(data) // 2] if damage == 'truncated' else b'garbage' * 100)
    result = evaluate_cli('--benchmark', 'got10k', '--root', str(root), '--split', 'val',
                          '--tracker', 'kcf', '--output', str(tmp_path / 'out'))
    assert result.returncode == 2, result.stderr
    assert 'Traceback' not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith('detrack-eval: error: cannot decode frame')
    assert '00000005.jpg' in line and 'while tracking frame 4' in line


def test_tracker_options_reach_the_tracker_config():
    """threshold, patience, box dynamics, motion and re-detection set the TrackerConfig."""
    from detrack_model.cli.evaluate import build_factory
    kind, options = parse_tracker('detrack:threshold=0.3,patience=2,size_rate=0.5,max_step=1.2,'
                                  'motion=1,redetect=on,search=4,reference=10,recover=0.7,'
                                  'growth=0.1,template=0,'
                                  'backend=onnxruntime,device=cpu')
    name, factory = build_factory(kind, options)
    config = factory().tracker.config
    assert (config.score_threshold, config.lost_patience, config.size_rate,
            config.max_scale_step, config.motion, config.redetect) == (0.3, 2, 0.5, 1.2, True,
                                                                       True)
    assert (config.search_patience, config.reference_frames) == (4, 10)
    assert (config.recover_threshold, config.recover_growth) == (0.7, 0.1)
    assert not config.template_update
    assert 'patience2' in name and 'redetecton' in name
    with pytest.raises(ValueError, match='patience'):
        build_factory(*parse_tracker('detrack:patience=two'))
