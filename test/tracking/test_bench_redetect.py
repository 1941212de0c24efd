"""The re-detection benchmark and its page: batched tiles change no answer on the CPU."""

import json

from detrack_model.tracking import TrackerConfig
import pytest
from tools import bench_redetect, make_redetection_docs


@pytest.mark.slow
def test_batched_tiles_answer_as_tiles_in_turn_and_the_page_shows_them(tmp_path, capsys):
    """The tracker publishes the same boxes either way; the page renders the run's tables."""
    results = tmp_path / 'results'
    path = results / 'torch-cpu.json'
    # 100 frames: the shipped tracker loses the first leaving target long enough to re-detect.
    assert bench_redetect.main(['--backend', 'torch', '--threads', '1', '--tiles', '1', '3',
                                '--runs', '1', '--rounds', '1', '--sequences', '1',
                                '--frames', '100', '--json', str(path)]) == 0
    assert 'lost, batched' in capsys.readouterr().out
    run = json.loads(path.read_text())
    assert run['backend'] == 'torch-cpu' and run['command'].endswith(str(path))
    assert [row['tiles'] for row in run['network']] == [1, 3]
    assert all(row['one_ms'] > 0 and row['batched_ms'] > 0 for row in run['network'])
    for row in run['tracker']:
        assert row['redetect_frames'] > 0 and 1.0 <= row['tiles_run'] <= row['tiles']
        assert row['same_answers'] == 1.0 and row['ao_batched'] == row['ao_in_turn']
    page = tmp_path / 'page.md'
    assert make_redetection_docs.main(['--results', str(results), '--out', str(page)]) == 0
    text = page.read_text()
    assert '## torch-cpu' in text and run['command'] in text
    update = TrackerConfig().template_update
    assert run['template_update'] is update
    assert f'template update {"on" if update else "off"}' in text
    factor = TrackerConfig().lost_search_factor
    assert run['lost_search_factor'] == factor and f'search while lost {factor:g}x' in text
    # A run from before the settings were recorded reads as the defaults of its time.
    assert make_redetection_docs.tracker_settings({}) == ('template update off; search while '
                                                          'lost 6x')
    assert sum(line.startswith('| 3 |') for line in text.splitlines()) == 2
    with pytest.raises(SystemExit, match='no results'):
        make_redetection_docs.main(['--results', str(tmp_path / 'none'), '--out', str(page)])
