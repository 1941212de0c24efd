"""The ablation switches of the loss: assignments, regression set, denoising content."""

from detrack_model.engine.recipe import recipe_from_dict
from detrack_model.engine.trainer import Trainer
from detrack_model.losses import DETRackCriterion, LossConfig
from detrack_model.losses.assignment import (assign_positives, centre_cell, hungarian_positive,
                                             iou_targets, matching_cost)
from detrack_model.losses.denoising import make_denoising_queries
from detrack_model.losses.focal import quality_focal_loss
from detrack_model.modeling import create_model
from detrack_model.modeling.box_ops import cxcywh_to_xyxy, generalized_box_iou
import pytest
import torch


def outputs_of(logits, boxes, cells):
    """Decoder-head outputs with the same predictions at l = 0 and in one decoder layer."""
    return {'token_boxes': boxes, 'token_logits': logits, 'search_index': cells,
            'layers': [(boxes, logits)], 'query_index': cells}


def random_predictions(seed, batch=2, n=16):
    """Return logits, boxes and cells of a 4x4 grid, and two GT boxes."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, n, generator=generator)
    boxes = torch.rand(batch, n, 4, generator=generator) * 0.4 + 0.3
    cells = torch.arange(n)[None].repeat(batch, 1)
    gt = torch.tensor([[0.5, 0.25, 0.5, 0.5], [0.3, 0.6, 0.4, 0.5]])[:batch]
    return logits, boxes, cells, gt


def test_hard_labels_target_one_on_every_positive():
    """hard: the same positives as quality, each with target 1 instead of its IoU."""
    logits, boxes, cells, gt = random_predictions(0)
    criterion = DETRackCriterion(LossConfig(assignment='hard'), grid=4)
    _, parts = criterion(outputs_of(logits, boxes, cells), gt)
    positive = assign_positives(cells, gt, 4)
    expected = quality_focal_loss(logits, positive.float()).sum() / positive.sum()
    assert parts['qfl'] == pytest.approx(2 * expected.item(), rel=1e-5)
    quality, _ = DETRackCriterion(grid=4)(outputs_of(logits, boxes, cells), gt)
    soft = quality_focal_loss(logits, iou_targets(boxes, gt, positive)).sum() / positive.sum()
    assert quality.item() != pytest.approx(parts['total'])
    assert soft.item() != pytest.approx(expected.item())


def test_centre_assignment_has_one_positive_at_the_centre_cell():
    """centre: one positive per image, the GT centre's cell; it alone is regressed."""
    logits, boxes, cells, gt = random_predictions(1)
    criterion = DETRackCriterion(LossConfig(assignment='centre'), grid=4)
    positive, regressed = criterion.assign(boxes, logits, cells, gt, torch.ones(2, dtype=bool))
    assert positive.sum(1).tolist() == [1, 1]
    assert torch.equal(positive, regressed)
    centre = centre_cell(gt, 4)
    assert positive[torch.arange(2), centre].all()
    # A dropped centre token leaves that image without a positive.
    positive, _ = criterion.assign(boxes[:, 1:], logits[:, 1:],
                                   torch.where(cells[:, 1:] == centre[:, None], 0, cells[:, 1:]),
                                   gt, torch.ones(2, dtype=bool))
    assert positive.sum(1).tolist() == [0, 0]


def test_hungarian_assignment_picks_the_least_cost_prediction():
    """hungarian: per image the argmin of focal + 5 L1 - 2 GIoU, checked by brute force."""
    logits, boxes, cells, gt = random_predictions(2)
    positive = hungarian_positive(boxes, logits, gt)
    assert positive.sum(1).tolist() == [1, 1]
    for image in range(2):
        costs = []
        for index in range(16):
            p = torch.sigmoid(logits[image, index])
            focal = 0.25 * (1 - p) ** 2 * -torch.log(p) - 0.75 * p ** 2 * -torch.log(1 - p)
            l1 = (boxes[image, index] - gt[image]).abs().sum()
            giou = generalized_box_iou(cxcywh_to_xyxy(boxes[image, index]),
                                       cxcywh_to_xyxy(gt[image]))
            costs.append(float(2 * focal + 5 * l1 - 2 * giou))
        assert positive[image].nonzero().item() == min(range(16), key=costs.__getitem__)
        torch.testing.assert_close(matching_cost(boxes, logits, gt)[image],
                                   torch.tensor(costs), rtol=1e-4, atol=1e-5)
    # A confident, well-placed prediction wins.
    boxes[0, 9], logits[0, 9] = gt[0], 6.0
    assert hungarian_positive(boxes, logits, gt)[0].nonzero().item() == 9


def test_topk_zero_regresses_every_positive():
    """With topk 0 the regression set is every positive, not the k best."""
    logits, boxes, cells, gt = random_predictions(3)
    valid = torch.ones(2, dtype=bool)
    positive, regressed = DETRackCriterion(LossConfig(topk=0), grid=4).assign(
        boxes, logits, cells, gt, valid)
    assert torch.equal(positive, regressed) and positive.sum() > 4
    _, regressed = DETRackCriterion(LossConfig(topk=2), grid=4).assign(boxes, logits, cells,
                                                                       gt, valid)
    assert regressed.sum(1).tolist() == [2, 2]


def test_outside_content_takes_cells_outside_the_box_and_keeps_the_boxes():
    """centre_outside: negatives' tokens from cells outside the GT; boxes as with corners."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.3, 0.3, 0.2, 0.4]])
    corner, _ = make_denoising_queries(gt, 8, 4, groups=6, negatives=2,
                                       generator=torch.Generator().manual_seed(4))
    outside, _ = make_denoising_queries(gt, 8, 4, groups=6, negatives=2,
                                        generator=torch.Generator().manual_seed(4),
                                        content='centre_outside')
    torch.testing.assert_close(outside.boxes, corner.boxes)
    positive = (torch.arange(18) % 3) == 0
    assert torch.equal(outside.grid_index[:, positive], corner.grid_index[:, positive])
    inside = assign_positives(outside.grid_index[:, ~positive], gt, 8)
    assert not inside.any()
    assert len(set(outside.grid_index[0, ~positive].tolist())) > 4  # random, not fixed
    with pytest.raises(ValueError, match='content must be one of'):
        make_denoising_queries(gt, 8, 4, content='tokens')


def test_label_embeddings_replace_token_content():
    """embedding: the decoder reads learned labels; the model must be built for them."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.3]])
    queries, meta = make_denoising_queries(gt, 8, 8, groups=2, content='embedding',
                                           generator=torch.Generator().manual_seed(0))
    assert queries.labels.tolist() == [[1, 0, 1, 0]]
    spec = {'encoder': {'depth': 1, 'ce_layers': []}, 'template_size': 64,
            'search_size': 128, 'decoder': {'layers': 1, 'hidden': 32, 'heads': 2,
                                            'ffn_dim': 64, 'num_queries': 8}}
    plain = create_model('vit_tiny', **spec)
    template, search = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    with pytest.raises(ValueError, match='dn_labels'):
        plain(template, search, denoising=queries)
    spec['decoder']['dn_labels'] = True
    torch.manual_seed(0)
    model = create_model('vit_tiny', **spec)
    model.eval()
    before = model(template, search, denoising=queries)['dn_layers'][0][1]
    with torch.no_grad():
        model.dn_label_embed.weight.add_(1.0)
    after = model(template, search, denoising=queries)['dn_layers'][0][1]
    assert not torch.allclose(before, after)
    with pytest.raises(ValueError, match='needs a model with'):
        recipe_from_dict({'model': {'preset': 'vit_tiny'}, 'loss': {'dn_content': 'embedding'}})
    with pytest.raises(ValueError, match='assignment must be one of'):
        LossConfig(assignment='one_to_one')


@pytest.mark.parametrize('loss, decoder', [
    ({'assignment': 'hard'}, {}), ({'assignment': 'centre'}, {}),
    ({'assignment': 'hungarian', 'denoising': False}, {}), ({'topk': 0}, {}),
    ({'dn_content': 'centre_outside'}, {}), ({'dn_content': 'embedding'}, {'dn_labels': True})],
    ids=['hard', 'centre', 'hungarian', 'all-positives', 'dn-outside', 'dn-embedding'])
def test_every_switch_trains(tmp_path, loss, decoder):
    """Two real training steps on generated data with each switch: finite losses."""
    recipe = recipe_from_dict({
        'model': {'preset': 'vit_tiny', 'template_size': 64, 'search_size': 128,
                  'encoder': {'depth': 1, 'ce_layers': []},
                  'decoder': {'layers': 1, 'hidden': 32, 'heads': 2, 'points': 2,
                              'ffn_dim': 64, 'num_queries': 8, **decoder}},
        'data': {'train': [{'type': 'synthetic', 'root': str(tmp_path / 'data'),
                            'split': 'train', 'sequences': 2, 'frames': 12, 'seed': 1,
                            'size': [160, 120]}],
                 'pairs_per_epoch': 8, 'workers': 0, 'max_gap': 5},
        'optim': {'epochs': 1, 'batch_size': 4, 'threads': 1},
        'loss': {'dn_groups': 2, **loss}, 'output': str(tmp_path / 'run')})
    trainer = Trainer(recipe, progress=False)
    losses = [trainer.train_step(batch, 0)['loss'] for batch in trainer._batches(0, 0)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
