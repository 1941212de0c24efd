"""The replication plan: every run builds a valid recipe that differs from the base as stated."""

from detrack_model.engine.recipe import apply_overrides, recipe_from_dict
import pytest
from tools.run_replication import base_recipe, command, planned_runs
import yaml


@pytest.mark.parametrize('gpu', [False, True], ids=['cpu', 'gpu'])
def test_every_planned_run_is_a_valid_recipe(gpu):
    """Base plus overrides plus seed parses; only the named keys change."""
    base = yaml.safe_load(base_recipe(gpu).read_text())
    reference = recipe_from_dict(yaml.safe_load(base_recipe(gpu).read_text())).to_dict()
    runs = planned_runs(gpu=gpu)
    assert {run.name for run in runs} >= {'full', 'no_dn', 'hungarian', 'conv_head'}
    assert len({run.label for run in runs}) == len(runs)
    for run in runs:
        data = apply_overrides(yaml.safe_load(yaml.safe_dump(base)),
                               [f'optim.seed={run.seed}', *run.overrides])
        recipe = recipe_from_dict(data, run.label).to_dict()
        changed = {f'{section}.{key}' for section in ('model', 'loss', 'optim')
                   for key in set(recipe[section]) | set(reference[section])
                   if recipe[section].get(key) != reference[section].get(key)}
        stated = [setting.split('=')[0] for setting in run.overrides] + ['optim.seed']
        for key in changed:
            assert any(s == key or s.startswith(key + '.') for s in stated), (run.label, key)
        line = command(run, gpu)
        assert '--resume' in line and f'optim.seed={run.seed}' in line


def test_unknown_runs_are_named():
    """--only with a name the plan lacks is an error naming it."""
    with pytest.raises(ValueError, match='not_a_run'):
        planned_runs(only=['not_a_run'])


def test_side_by_side_runs_take_their_share_of_threads():
    """--jobs sets each run's optim.threads; a lone run keeps the recipe's."""
    run = planned_runs(only=['full'])[0]
    assert 'optim.threads=1' in command(run, False, threads=1)
    assert not any(item.startswith('optim.threads') for item in command(run, False))


def test_kept_scores_load_and_the_budget_is_the_base_recipes(tmp_path):
    """No results file: nothing kept; a kept file round-trips; the budget is epochs x pairs."""
    from tools.make_replication_docs import base_budget, load_results
    empty = {'runs': {}, 'depths': [], 'depths_model': None, 'pruning': []}
    assert load_results(tmp_path / 'none.json') == empty
    path = tmp_path / 'kept.json'
    path.write_text('{"runs": {"full_s7": {"pairs": 10}}}')
    assert load_results(path)['runs'] == {'full_s7': {'pairs': 10}}
    base = yaml.safe_load(base_recipe(False).read_text())
    assert base_budget(base) == base['optim']['epochs'] * base['data']['pairs_per_epoch']
