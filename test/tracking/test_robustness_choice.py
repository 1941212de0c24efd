"""How docs/robust-tracking.md chooses on val: the rule, the settings' mapping, the tables."""

from detrack_model.tracking import TrackerConfig
from tools import make_robustness_docs as robustness

BASE = {'score_threshold': 0.55, 'relative_threshold': 1.0, 'lost_patience': 1,
        'search_patience': 1, 'dynamics': (0.5, 1.2), 'motion': False, 'redetect': True,
        'reference': False}


def scores(ao: float, false_tracking: float) -> dict:
    """Return one configuration's val figures."""
    return {'ao': ao, 'ao_hard': ao, 'recovery': 0.75, 'false_tracking': false_tracking}


def test_the_best_ao_wins_unless_it_tracks_nothing_too_often_and_ties_go_to_less_false_tracking():
    """False tracking over 20 % rules a row out; within AO_TIE the least false tracking wins."""
    rows = [({'name': 'best but false'}, scores(0.70, 0.25)),
            ({'name': 'best allowed'}, scores(0.650, 0.10)),
            ({'name': 'tied, quieter'}, scores(0.650 - robustness.AO_TIE / 2, 0.05)),
            ({'name': 'worse, quietest'}, scores(0.60, 0.01))]
    assert robustness.choose(rows) == {'name': 'tied, quieter'}
    # When every row tracks nothing too often, the rule still picks the best of them.
    assert robustness.choose([({'name': 'a'}, scores(0.5, 0.3)),
                              ({'name': 'b'}, scores(0.6, 0.4))]) == {'name': 'b'}


def test_the_search_while_lost_reaches_the_tracker_and_the_earlier_stages_keep_theirs():
    """Rows without a search size run at GRID_LOST_SEARCH; a row's own size is the tracker's."""
    assert robustness.config_of(BASE).lost_search_factor == robustness.GRID_LOST_SEARCH
    assert robustness.config_of({**BASE, 'lost_search': 5.0}).lost_search_factor == 5.0
    assert robustness.GRID_LOST_SEARCH in robustness.LOST_SEARCH_GRID
    # Each size gets its own results directory; the earlier stages' names are unchanged.
    labels = {robustness.label({**BASE, 'lost_search': f}) for f in robustness.LOST_SEARCH_GRID}
    assert len(labels) == len(robustness.LOST_SEARCH_GRID)
    assert '-w' not in robustness.label(BASE)
    config = robustness.config_of({**BASE, 'template': (0.8, 30), 'recover': 0.75,
                                   'growth': 0.05})
    assert (config.template_update, config.template_threshold, config.template_interval,
            config.recover_threshold, config.recover_growth) == (True, 0.8, 30, 0.75, 0.05)
    assert not robustness.config_of(BASE).template_update


def test_the_search_while_lost_table_names_the_choice_and_lists_every_size():
    """One row per size, in order; the sentence states the chosen size."""
    rows = [(BASE, scores(0.633, 0.06))] + [
        ({**BASE, 'lost_search': f}, scores(0.6 + f / 100, 0.06)) for f in (8.0, 4.0, 5.0)]
    lines = robustness.lost_search_lines(rows, {**BASE, 'lost_search': 5.0})
    assert 'chosen by the same rule: 5 box sizes' in lines[1]
    table = [line for line in lines if line.startswith('| ') and line[2].isdigit()]
    assert [line.split('|')[1].strip() for line in table] == ['4', '5', '6', '8']
    assert f"tracking crop's {TrackerConfig().search_factor:g}" in lines[1]
    assert robustness.lost_search_lines([], BASE) == []


def test_the_box_dynamics_table_marks_the_chosen_point_and_says_whether_val_can_beat_it():
    """Rows in order with the chosen one marked; a point beyond AO_TIE is named, ties are not."""
    def row(point, ao):
        return {**BASE, 'dynamics': point}, {**scores(ao, 0.05), 'max_area_ratio': 1.5}

    tied = [row((1.0, 1.5), 0.645 + robustness.AO_TIE / 2), row((0.5, 1.2), 0.645),
            row((0.75, 1.1), 0.640)]
    lines = robustness.dynamics_lines(tied, BASE)
    assert 'AO 0.640 to 0.647' in lines[1] and 'none beats it' in lines[1]
    table = [line for line in lines if line.startswith('| ') and line[2].isdigit()]
    assert [line.split('|')[1:3] for line in table] == [
        [' 0.5 (chosen) ', ' 1.2 '], [' 0.75 ', ' 1.1 '], [' 1 ', ' 1.5 ']]
    beaten = robustness.dynamics_lines(tied + [row((0.75, 1.5), 0.645 + 2 * robustness.AO_TIE)],
                                       BASE)
    assert 'beaten by more than val can tell apart at 0.75 / 1.5' in beaten[1]
    assert robustness.dynamics_lines([], BASE) == []
    assert robustness.GRID_DAMPED in robustness.GRID['dynamics']
    # Each point runs its own tracker: the damping reaches the config and the results name.
    config = robustness.config_of({**BASE, 'dynamics': (0.75, 1.5)})
    assert (config.size_rate, config.max_scale_step) == (0.75, 1.5)
    assert robustness.label({**BASE, 'dynamics': (0.75, 1.5)}) != robustness.label(BASE)


def test_the_threshold_stage_tries_the_flat_top_of_the_score_curve_and_marks_its_choice():
    """Thresholds within BALANCED_TIE of the best separation are tried; the table names one."""
    thresholds = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    balanced = [0.79, 0.807, 0.810, 0.809, 0.813, 0.813, 0.795]
    assert robustness.plateau(thresholds, balanced) == [0.45, 0.5, 0.55, 0.6, 0.65]
    assert robustness.plateau([0.5, 0.6], [0.8, 0.8 - 2 * robustness.BALANCED_TIE]) == [0.5]
    calibration = {'thresholds': thresholds, 'balanced': balanced,
                   'plateau': robustness.plateau(thresholds, balanced)}
    rows = [({**BASE, 'score_threshold': t}, scores(0.6 + t / 10, 0.05))
            for t in (0.65, 0.45, 0.5)]
    chosen = rows[2][0]
    lines = robustness.threshold_lines(rows, chosen, calibration)
    assert 'from 0.45 to 0.65' in lines[1] and lines[1].endswith('same rule: 0.50.')
    table = [line for line in lines if line.startswith('| 0.')]
    assert [line.split('|')[1].strip() for line in table] == ['0.45', '0.50 (chosen)', '0.65']
    assert table[1].split('|')[2].strip() == '0.810'
    assert robustness.config_of(chosen).score_threshold == 0.5
    assert robustness.threshold_lines([], BASE, calibration) == []


def test_the_current_defaults_are_a_grid_point_and_the_last_comparison_names_the_winner():
    """incumbent_settings is TrackerConfig() as a grid point; the table marks which was kept."""
    incumbent = robustness.incumbent_settings()
    assert robustness.config_of(incumbent) == TrackerConfig()
    staged = {**incumbent, 'score_threshold': 0.45, 'growth': 0.05}
    # The stages' pick tied on AO and tracking nothing less often stays.
    rows = [(staged, scores(0.660, 0.02)), (incumbent, scores(0.660 + robustness.AO_TIE / 2,
                                                              0.05))]
    assert robustness.choose(rows) == staged
    lines = robustness.incumbent_lines(rows, staged)
    assert lines[1].endswith(": the stages' pick.")
    assert [line.split('|')[1].strip() for line in lines if line.startswith('| the')] == [
        "the stages' pick (chosen)", 'the current defaults']
    # Defaults better beyond the tie replace it, and the page says so.
    rows[1] = (incumbent, scores(0.660 + 2 * robustness.AO_TIE, 0.05))
    assert robustness.choose(rows) == incumbent
    assert robustness.incumbent_lines(rows, incumbent)[1].endswith(': the current defaults.')
    # The same configuration is not run twice.
    assert 'the same configuration' in robustness.incumbent_lines(rows[:1], staged)[1]
    assert robustness.incumbent_lines([], staged) == []
