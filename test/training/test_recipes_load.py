"""Every recipe file under training/ loads with the loader of the command that runs it."""

import pathlib

from detrack_model.engine.pretrain_recipe import load_pretrain_recipe
from detrack_model.engine.recipe import load_recipe, recipe_from_dict
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRAINING = ROOT / 'training'
SHIPPED = ROOT / 'models' / 'detrack_tiny_pool'
# Not recipes: the replication plan lists runs as overrides of a base recipe (its own tests
# load every run it names).
NOT_RECIPES = {'replication/plan.yaml'}
RECIPES = sorted(str(path.relative_to(TRAINING)) for path in TRAINING.rglob('*.yaml')
                 if str(path.relative_to(TRAINING)) not in NOT_RECIPES)


def test_the_recipes_are_found():
    """The search finds the recipe folders (a moved folder would leave nothing to check)."""
    folders = {pathlib.Path(name).parts[0] for name in RECIPES if '/' in name}
    assert {'pretrain', 'replication', 'sizing'} <= folders, RECIPES


@pytest.mark.parametrize('name', RECIPES)
def test_every_committed_recipe_loads(name):
    """Tracking recipes load and round-trip; pretraining recipes load with theirs."""
    path = TRAINING / name
    data = yaml.safe_load(path.read_text())
    if 'mae' in data:
        recipe = load_pretrain_recipe(str(path))
        assert recipe.optim.epochs > 0
        return
    # Fine-tuning recipes take their model from detrack-prune finetune --child.
    extra = None if 'model' in data else {'model': {'bundle': str(SHIPPED)},
                                          'init': str(SHIPPED)}
    recipe = load_recipe(str(path), extra=extra)
    assert recipe.optim.epochs > 0 and recipe.data.train
    assert recipe_from_dict(recipe.to_dict(), name).to_dict() == recipe.to_dict()


@pytest.mark.parametrize('data, head, message', [
    ({'absent_fraction': 1.0}, 'decoder', r'my\.yaml: data absent_fraction must be in \[0, 1\)'),
    ({'absent_fraction': -0.1}, 'decoder', r'absent_fraction must be in \[0, 1\)'),
    ({'absent_fraction': 0.2}, 'conv', 'needs the decoder head'),
    ({'absent_fraction': 0.2, 'decoy_fraction': 1.5}, 'decoder',
     r'my\.yaml: data decoy_fraction must be in \[0, 1\]'),
    ({'decoy_fraction': 0.5}, 'decoder', 'decoy_fraction needs absent_fraction > 0'),
    ({'hidden_fraction': 0.5}, 'decoder', 'hidden_fraction needs absent_fraction > 0'),
    ({'absent_fraction': 0.2, 'hidden_fraction': 2}, 'decoder',
     r'hidden_fraction must be in \[0, 1\]')])
def test_recipe_refuses_an_unusable_absent_fraction(data, head, message):
    """An absent or decoy fraction out of range or unusable fails when the recipe loads."""
    with pytest.raises(ValueError, match=message):
        recipe_from_dict({'model': {'preset': 'vit_tiny', 'head': head}, 'data': data},
                         'my.yaml')
    assert recipe_from_dict({'model': {'preset': 'vit_tiny'},
                             'data': {'absent_fraction': 0.2}}).data.absent_fraction == 0.2
