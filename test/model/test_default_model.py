"""The shipped models: small, loadable, made by the committed recipes, and they track."""

import pathlib

from detrack_model.config import ModelConfig
from detrack_model.data import Got10k, PairProcessing, TrackingPairDataset
from detrack_model.data.synthetic import generate_dataset
from detrack_model.engine.data import collate_pairs
from detrack_model.engine.recipe import load_recipe, recipe_from_dict
from detrack_model.export import load_bundle
from detrack_model.export.bundle import read_bundle_config
from detrack_model.modeling.box_ops import best_box, box_iou, cxcywh_to_xyxy
from detrack_model.shipped import default_model_path
import pytest
from tools.make_training_docs import STAGES
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / 'models' / 'detrack_tiny_pool'
RECIPE = ROOT / 'training' / 'synthetic_cpu_pool.yaml'
DEFAULT = ROOT / 'models' / 'detrack_tiny_pool_p25'
# The last of docs/training.md's stages made the default.
FINETUNE = ROOT / STAGES[-1][1]
# The fetched image pool (make data); CI runs without it.
POOL = ROOT / 'build' / 'data' / 'image_pool'


def test_default_is_the_pruned_child_of_the_unpruned_model():
    """The default is the budget-0.25 child, trained on by the committed recipes, smaller."""
    assert default_model_path() == DEFAULT
    assert DEFAULT.with_suffix('.safetensors').stat().st_size <= 10 * 1000 * 1000
    metadata = read_bundle_config(DEFAULT)['metadata']
    assert (metadata['pruning']['budget'], metadata['pruning']['mode']) == (0.25, 'global')
    recipe = yaml.safe_load(FINETUNE.read_text())
    assert metadata['recipe']['optim'] == load_recipe_dict(recipe)['optim']
    assert metadata['recipe']['sparsity'] is None
    assert metadata['recipe']['init'].endswith('/model.yaml')
    # The last stage's run read exactly the committed recipe's sequences, pairs and jitter.
    recorded, committed = metadata['recipe']['data'], load_recipe_dict(recipe)['data']
    assert recorded == committed
    assert [entry['pool'].endswith('image_pool') for entry in committed['train']] == [
        True, False, False]
    assert recorded['absent_fraction'] > 0 and recorded['centre_jitter'] == 4.0
    pruned, parent = load_bundle(DEFAULT), load_bundle(MODEL)
    assert pruned.config.encoder.mlp_dims is not None
    # Every head at its own width, as slicing keeps them.
    assert pruned.config.encoder.head_widths is not None
    assert sum(p.numel() for p in pruned.parameters()) < 0.5 * sum(
        p.numel() for p in parent.parameters())


def load_recipe_dict(data):
    """Return the full dictionary form of a fine-tuning recipe (model from the default)."""
    return recipe_from_dict({**data, 'model': {'bundle': str(DEFAULT)}}).to_dict()


def test_shipped_model_is_small_and_loads():
    """At most 10 MB of safetensors, and it loads into the architecture its YAML names."""
    weights = MODEL.with_suffix('.safetensors')
    assert weights.stat().st_size <= 10 * 1000 * 1000
    model = load_bundle(MODEL)
    assert model.config.head == 'decoder'
    assert sum(p.numel() for p in model.parameters()) > 1e6


def test_shipped_model_comes_from_the_committed_recipe():
    """The bundle's recorded recipe builds the same architecture as training/'s recipe."""
    document = read_bundle_config(MODEL)
    assert ModelConfig.from_dict(document['model']) == load_recipe(str(RECIPE)).model
    assert document['metadata']['steps'] > 0


def mean_pair_iou(bundle, root, split):
    """Return the mean IoU of the best box on 48 template/search pairs of a generated split."""
    model = load_bundle(bundle)
    config = model.config
    pairs = TrackingPairDataset([Got10k(str(root), split)], pairs_per_epoch=48,
                                processing=PairProcessing(config.template_size,
                                                          config.search_size, gray_prob=0.0,
                                                          flip_prob=0.0, brightness=(1, 1)),
                                max_gap=20, seed=3)
    batch = collate_pairs([dict(pairs[i], index=i) for i in range(len(pairs))])
    with torch.no_grad():
        outputs = model(batch['template'], batch['search'])
    boxes = best_box(outputs['boxes'], outputs['scores'])
    return float(box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(batch['search_box']))[0].mean())


@pytest.mark.parametrize('bundle', [MODEL, DEFAULT], ids=['unpruned', 'default'])
def test_shipped_model_localises_targets_on_unseen_sequences(tmp_path, bundle):
    """On fresh validation-split sequences (other photos, other seed) boxes overlap the GT."""
    generate_dataset(str(tmp_path), 'val', 3, 30, size=(480, 360), seed=12345)
    iou = mean_pair_iou(bundle, tmp_path, 'val')
    assert iou > 0.4, f'mean IoU {iou:.3f}'


@pytest.mark.skipif(not (POOL / 'splits.json').is_file(),
                    reason='needs the image pool (make data)')
@pytest.mark.parametrize('bundle', [MODEL, DEFAULT], ids=['unpruned', 'default'])
def test_shipped_model_localises_targets_from_unseen_packages(tmp_path, bundle):
    """On cross-source val sequences (files and packages training never used) boxes overlap."""
    generate_dataset(str(tmp_path), 'val', 3, 30, size=(480, 360), seed=777, pool=str(POOL))
    iou = mean_pair_iou(bundle, tmp_path, 'val')
    assert iou > 0.4, f'mean IoU {iou:.3f}'
