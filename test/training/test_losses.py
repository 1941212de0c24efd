"""DETRack and OSTrack losses: QFL, assignment, top-k, L1/GIoU, heatmap, full criteria."""

from concurrent.futures import ThreadPoolExecutor
import functools
import math
import threading

from detrack_model.losses import (assign_positives, box_losses, build_criterion,
                                  centernet_focal_loss, DETRackCriterion, gaussian_heatmap,
                                  iou_targets, LossConfig, OSTrackCriterion,
                                  quality_focal_loss, topk_mask)
from detrack_model.losses.criterion import placeholder_gt
from detrack_model.modeling import create_model
import pytest
import torch


def cells_of(mask):
    """Return the set of flat indices where a 1-D bool tensor is True."""
    return set(torch.nonzero(mask).flatten().tolist())


def xyxy(x0, y0, x1, y1):
    """Return a cxcywh list for corner coordinates (tests read better in corners)."""
    return [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]


def test_qfl_matches_a_hand_computed_example():
    """Three elements: sigma(0) vs 0.25, sigma(2) vs 0, sigma(-1) vs 0.9."""
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([0.25, 0.0, 0.9])
    expected = []
    for x, y in zip(logits.tolist(), targets.tolist()):
        sigma = 1.0 / (1.0 + math.exp(-x))
        expected.append(-abs(y - sigma) ** 2
                        * ((1 - y) * math.log(1 - sigma) + y * math.log(sigma)))
    # sigma(0) = 0.5: 0.0625 * -(0.75 ln 0.5 + 0.25 ln 0.5) = 0.0625 ln 2.
    assert expected[0] == pytest.approx(0.0625 * math.log(2))
    loss = quality_focal_loss(logits, targets, beta=2.0)
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=1e-7)


def test_qfl_with_beta_zero_is_binary_cross_entropy():
    """Without the modulating factor QFL is plain BCE with soft targets."""
    logits = torch.linspace(-4, 4, 9)
    targets = torch.linspace(0, 1, 9)
    sigma = logits.sigmoid()
    bce = -(targets * sigma.log() + (1 - targets) * (1 - sigma).log())
    torch.testing.assert_close(quality_focal_loss(logits, targets, beta=0.0), bce)


def test_qfl_minimum_is_at_sigma_equal_target():
    """At sigma == y the loss and its gradient vanish; moving the logit either way costs."""
    targets = torch.tensor([0.1, 0.5, 0.8])
    logits = torch.logit(targets).requires_grad_()
    loss = quality_focal_loss(logits, targets)
    loss.sum().backward()
    assert loss.abs().max() < 1e-10
    assert logits.grad.abs().max() < 1e-6
    for shift in (-0.3, 0.3):
        assert (quality_focal_loss(logits.detach() + shift, targets) > 1e-4).all()


def test_qfl_is_finite_for_extreme_logits():
    """log(sigmoid) would underflow at |logit| = 200; the logits form stays finite."""
    logits = torch.tensor([-200.0, 200.0], requires_grad=True)
    loss = quality_focal_loss(logits, torch.tensor([1.0, 0.0]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(loss, torch.tensor([200.0, 200.0]))


def test_positives_are_the_cells_whose_centres_lie_in_the_box():
    """On a 4x4 grid (centres 1/8, 3/8, 5/8, 7/8) a box over cols 1-2, rows 0-1."""
    cells = torch.arange(16)[None]
    gt = torch.tensor([xyxy(0.25, 0.0, 0.75, 0.5)])
    assert cells_of(assign_positives(cells, gt, 4)[0]) == {1, 2, 5, 6}


def test_assignment_box_is_half_open():
    """A centre on the left/top edge is inside, one on the right/bottom edge is not."""
    cells = torch.arange(16)[None]
    gt = torch.tensor([xyxy(0.125, 0.125, 0.625, 0.625)])
    assert cells_of(assign_positives(cells, gt, 4)[0]) == {0, 1, 4, 5}


def test_box_thinner_than_a_cell_keeps_its_centre_cell():
    """A box containing no cell centre still gets the cell of its own centre as positive."""
    cells = torch.arange(16)[None]
    gt = torch.tensor([[0.3, 0.3, 0.05, 0.05]])
    assert cells_of(assign_positives(cells, gt, 4)[0]) == {5}


def test_assignment_uses_each_token_s_own_cell():
    """Kept tokens arrive in any order; positives follow their cells, not their slots."""
    cells = torch.tensor([[6, 0, 2, 15, 1], [0, 15, 10, 5, 3]])
    gt = torch.tensor([xyxy(0.25, 0.0, 0.75, 0.5), xyxy(0.5, 0.5, 1.0, 1.0)])
    positive = assign_positives(cells, gt, 4)
    assert positive.tolist() == [[True, False, True, False, True],
                                 [False, True, True, False, False]]


def test_iou_targets_are_detached_ious_of_positives_only():
    """GT [.25,.75]^2 (area 1/4): half-shifted box IoU 1/3, quarter box 1/4, negative 0."""
    gt = torch.tensor([xyxy(0.25, 0.25, 0.75, 0.75)])
    pred = torch.tensor([[xyxy(0.5, 0.25, 1.0, 0.75), xyxy(0.25, 0.25, 0.5, 0.5),
                          xyxy(0.25, 0.25, 0.75, 0.75)]], requires_grad=True)
    targets = iou_targets(pred, gt, torch.tensor([[True, True, False]]))
    # Shifted: intersection 0.125, union 0.25 + 0.25 - 0.125 = 0.375.
    # Quarter: intersection 0.0625, union 0.25.
    torch.testing.assert_close(targets, torch.tensor([[1 / 3, 0.25, 0.0]]))
    assert not targets.requires_grad


def test_topk_picks_the_highest_scores_among_candidates():
    """Pick k = 2 of five scores; candidates restrict the choice; too few candidates keep all."""
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.7, 0.5]])
    assert cells_of(topk_mask(scores, 2)[0]) == {1, 3}
    candidates = torch.tensor([[True, False, True, True, True]])
    assert cells_of(topk_mask(scores, 2, candidates)[0]) == {3, 4}
    few = torch.tensor([[False, False, True, False, False]])
    assert cells_of(topk_mask(scores, 2, few)[0]) == {2}
    assert cells_of(topk_mask(scores, 10)[0]) == {0, 1, 2, 3, 4}


def test_box_losses_on_hand_examples():
    """Identical boxes cost nothing; disjoint boxes: GIoU = -(1 - 0.3125) / 1."""
    gt = torch.tensor([xyxy(0.5, 0.5, 1.0, 1.0)])
    pred = torch.tensor([[xyxy(0.5, 0.5, 1.0, 1.0), xyxy(0.0, 0.0, 0.25, 0.25)]])
    l1, giou = box_losses(pred, gt)
    # cxcywh (.125, .125, .25, .25) vs (.75, .75, .5, .5): 2 * 0.625 + 2 * 0.25.
    torch.testing.assert_close(l1, torch.tensor([[0.0, 1.75]]))
    # Union 1/16 + 1/4 = 0.3125, enclosing box the whole unit square: 1 - (0 - 0.6875).
    torch.testing.assert_close(giou, torch.tensor([[0.0, 1.6875]]))


def synthetic_outputs(logits, boxes, cells, layers=1):
    """Decoder-head outputs with the same predictions at l = 0 and in every layer."""
    return {'token_boxes': boxes, 'token_logits': logits, 'search_index': cells,
            'layers': [(boxes, logits)] * layers, 'query_index': cells}


def test_criterion_regresses_the_top_k_positives():
    """Only the k best-scored positives are regressed; a confident negative is skipped."""
    gt = torch.tensor([xyxy(0.25, 0.0, 0.75, 0.5)])       # positives: cells 1, 2, 5, 6
    cells = torch.arange(16)[None]
    boxes = torch.tensor([xyxy(0.5, 0.5, 1.0, 1.0)]).repeat(16, 1)[None].clone()
    boxes[0, [5, 6]] = gt[0]
    boxes[0, 1] = gt[0] + torch.tensor([0.03, 0.0, 0.0, 0.0])
    logits = torch.full((1, 16), -5.0)
    logits[0, [5, 6, 1, 2, 15]] = torch.tensor([3.0, 2.0, 1.0, 0.0, 4.0])
    outputs = synthetic_outputs(logits, boxes, cells)
    config = LossConfig(topk=2)
    _, parts = DETRackCriterion(config, grid=4)(outputs, gt)
    assert parts['l1'] == pytest.approx(0.0, abs=1e-7)
    assert parts['giou'] == pytest.approx(0.0, abs=1e-5)
    config.topk = 3
    _, parts = DETRackCriterion(config, grid=4)(outputs, gt)
    # Two layers' sets (l = 0 and l = 1), each the mean over 3 boxes of 0 + 0 + 0.03.
    assert parts['l1'] == pytest.approx(2 * 0.03 / 3, rel=1e-5)
    config.topk, config.topk_from_positives = 2, False
    _, parts = DETRackCriterion(config, grid=4)(outputs, gt)
    # Now the negative cell 15 (score 4) is regressed with cell 5.
    far = box_losses(boxes[:, 15:16], gt)[0].item()
    assert parts['l1'] == pytest.approx(2 * far / 2, rel=1e-5)


def test_criterion_qfl_is_normalised_by_positives():
    """The QFL term is the element-wise sum over every token divided by the positives."""
    gt = torch.tensor([xyxy(0.25, 0.0, 0.75, 0.5)])
    cells = torch.arange(16)[None]
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 16, generator=generator)
    boxes = torch.rand(1, 16, 4, generator=generator) * 0.4 + 0.3
    _, parts = DETRackCriterion(grid=4)(synthetic_outputs(logits, boxes, cells), gt)
    positive = assign_positives(cells, gt, 4)
    expected = quality_focal_loss(logits, iou_targets(boxes, gt, positive)).sum() / 4
    assert parts['qfl'] == pytest.approx(2 * expected.item(), rel=1e-5)


def test_invalid_images_contribute_nothing():
    """A batch with an invalid second image (NaN GT) equals the first image alone."""
    generator = torch.Generator().manual_seed(1)
    cells = torch.stack([torch.randperm(256, generator=generator)[:100] for _ in range(2)])
    logits = torch.randn(2, 100, generator=generator)
    boxes = torch.rand(2, 100, 4, generator=generator) * 0.5 + 0.25
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.25], [float('nan')] * 4])
    criterion = DETRackCriterion(LossConfig())
    both, parts = criterion(synthetic_outputs(logits, boxes, cells, 3), gt,
                            valid=torch.tensor([True, False]))
    alone, alone_parts = criterion(synthetic_outputs(logits[:1], boxes[:1], cells[:1], 3),
                                   gt[:1])
    torch.testing.assert_close(both, alone)
    assert parts == pytest.approx(alone_parts)
    nothing, _ = criterion(synthetic_outputs(logits, boxes, cells), gt,
                           valid=torch.tensor([False, False]))
    assert nothing.item() == 0.0


def test_counts_averaged_over_processes_give_the_whole_batch_loss():
    """Two processes with one image each: the mean of their losses is one process's on both."""
    generator = torch.Generator().manual_seed(2)
    cells = torch.stack([torch.randperm(256, generator=generator)[:100] for _ in range(2)])
    logits = torch.randn(2, 100, generator=generator)
    boxes = torch.rand(2, 100, 4, generator=generator) * 0.5 + 0.25
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.25], [0.4, 0.6, 0.2, 0.3]])
    whole, _ = DETRackCriterion()(synthetic_outputs(logits, boxes, cells, 2), gt)
    barrier, counts = threading.Barrier(2), [None, None]

    def mean_count(rank, count):
        counts[rank] = count
        barrier.wait()
        mean = (counts[0] + counts[1]) / 2
        barrier.wait()
        return mean

    def process(rank):
        criterion = build_criterion('decoder', reduce_count=functools.partial(mean_count, rank),
                                    processes=2)
        assert criterion.min_count == 0.5
        rows = slice(rank, rank + 1)
        return criterion(synthetic_outputs(logits[rows], boxes[rows], cells[rows], 2),
                         gt[rows])[0]

    with ThreadPoolExecutor(2) as pool:
        shares = list(pool.map(process, range(2)))
    torch.testing.assert_close((shares[0] + shares[1]) / 2, whole)


def tiny_model(head='decoder'):
    """vit_tiny with two encoder blocks and no elimination: small and fast."""
    return create_model('vit_tiny', head=head, encoder={'depth': 2, 'ce_layers': []})


def test_real_model_loss_is_finite_and_reaches_every_parameter():
    """Criterion with denoising on the real network: finite, gradients everywhere."""
    torch.manual_seed(0)
    model = tiny_model()
    criterion = DETRackCriterion(grid=model.config.search_grid)
    gt = torch.tensor([[0.5, 0.5, 0.25, 0.3], [0.4, 0.55, 0.2, 0.15]])
    dn, meta = criterion.denoising_queries(gt, model.config.decoder.num_queries,
                                           torch.Generator().manual_seed(0))
    outputs = model(torch.randn(2, 3, 128, 128), torch.randn(2, 3, 256, 256), denoising=dn)
    loss, parts = criterion(outputs, gt, meta)
    assert torch.isfinite(loss)
    assert set(parts) == {'qfl', 'l1', 'giou', 'dn_qfl', 'dn_l1', 'dn_giou', 'total',
                          'mean_iou'}
    assert all(math.isfinite(v) for v in parts.values())
    assert parts['dn_qfl'] > 0 and parts['dn_l1'] > 0
    expected = (parts['qfl'] + parts['dn_qfl'] + 5 * (parts['l1'] + parts['dn_l1'])
                + 2 * (parts['giou'] + parts['dn_giou']))
    assert parts['total'] == pytest.approx(expected, rel=1e-5)
    loss.backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None]
    assert silent == []


def test_denoising_outputs_and_meta_must_come_together():
    """Outputs with dn_layers but no meta (or the reverse) raise a ValueError."""
    model = tiny_model().eval()
    criterion = DETRackCriterion()
    gt = torch.tensor([[0.5, 0.5, 0.25, 0.3]])
    dn, meta = criterion.denoising_queries(gt, 64, torch.Generator().manual_seed(0))
    crops = (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 256, 256))
    with torch.no_grad():
        with_dn = model(*crops, denoising=dn)
        without = model(*crops)
    with pytest.raises(ValueError, match='dn_meta'):
        criterion(with_dn, gt)
    with pytest.raises(ValueError, match='dn_meta'):
        criterion(without, gt, meta)


def test_heatmap_peaks_at_the_gt_centre_cell():
    """A 4 x 4-cell target: radius 1, sigma 0.5, so neighbours exp(-2), diagonals exp(-4)."""
    gt = torch.tensor([[0.55, 0.3, 0.25, 0.25], [0.1, 0.9, 0.25, 0.25]])
    heat = gaussian_heatmap(gt, 16)
    assert heat.shape == (2, 16, 16)
    # 0.55 * 16 = 8.8 -> col 8, 0.3 * 16 = 4.8 -> row 4.
    assert heat[0].flatten().argmax().item() == 4 * 16 + 8
    assert heat[0, 4, 8] == 1.0 and (heat[0] == 1.0).sum() == 1
    torch.testing.assert_close(heat[0, 4, 7], torch.tensor(math.exp(-2)))
    torch.testing.assert_close(heat[0, 3, 9], torch.tensor(math.exp(-4)))
    assert heat[0, 4, 10] == 0.0 and heat[0, 6, 8] == 0.0
    assert (heat[0] > 0).sum() == 9
    # The window is cut at the grid border: cell (row 14, col 1) is the peak.
    assert heat[1, 14, 1] == 1.0 and (heat[1] > 0).sum() == 9


def test_centernet_focal_loss_prefers_the_heatmap():
    """The loss is lower when the score map matches the heatmap than when it is flat."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.3]])
    heat = gaussian_heatmap(gt, 16)[:, None]
    matched = centernet_focal_loss(heat.clamp(1e-4, 1 - 1e-4), heat)
    flat = centernet_focal_loss(torch.full_like(heat, 0.5), heat)
    assert matched.item() < 0.01 * flat.item()


def conv_outputs(score_map, boxes):
    """Conv-head outputs holding only what the criterion reads."""
    return {'score_map': score_map, 'boxes': boxes}


def test_ostrack_criterion_on_a_perfect_and_a_flat_prediction():
    """Perfect box: L1 = GIoU = 0; the loss drops as the score map approaches the heatmap."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.3]])
    heat = gaussian_heatmap(gt, 16)[:, None]
    criterion = OSTrackCriterion()
    good, parts = criterion(conv_outputs(heat.clamp(1e-4, 1 - 1e-4), gt[:, None]), gt)
    assert parts['l1'] == pytest.approx(0.0, abs=1e-7)
    assert parts['giou'] == pytest.approx(0.0, abs=1e-5)
    assert parts['mean_iou'] == pytest.approx(1.0, abs=1e-5)
    flat, _ = criterion(conv_outputs(torch.full_like(heat, 0.5), gt[:, None]), gt)
    assert good < flat
    # Shifted box: L1 is the mean over the xyxy coordinates (OSTrack), 0.1 on x0 and x1.
    shifted = gt + torch.tensor([0.1, 0.0, 0.0, 0.0])
    _, parts = criterion(conv_outputs(heat, shifted[:, None]), gt)
    assert parts['l1'] == pytest.approx(0.05, rel=1e-5)


def test_ostrack_criterion_trains_the_real_conv_head():
    """A few SGD steps on one pair lower the conv-head loss; gradients reach the head."""
    torch.manual_seed(0)
    model = tiny_model('conv')
    criterion = build_criterion('conv')
    gt = torch.tensor([[0.5, 0.45, 0.25, 0.3], [0.6, 0.5, 0.2, 0.2]])
    crops = (torch.randn(2, 3, 128, 128), torch.randn(2, 3, 256, 256))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(4):
        loss, _ = criterion(model(*crops), gt)
        optimiser.zero_grad()
        loss.backward()
        losses.append(loss.item())
        optimiser.step()
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert model.box_head.center[-1].weight.grad is not None


def test_build_criterion_by_head():
    """'decoder' and 'conv' give their criteria; anything else names the choices."""
    assert isinstance(build_criterion('decoder'), DETRackCriterion)
    assert isinstance(build_criterion('conv', LossConfig(l1_weight=1.0)), OSTrackCriterion)
    with pytest.raises(ValueError, match="'decoder' or 'conv'"):
        build_criterion('mlp')


def test_an_absent_image_trains_every_score_down_and_regresses_no_box():
    """present=False: QFL towards 0 on every token and query, no box term, no mean IoU."""
    generator = torch.Generator().manual_seed(4)
    cells = torch.stack([torch.randperm(256, generator=generator)[:100] for _ in range(2)])
    logits = torch.randn(2, 100, generator=generator, requires_grad=True)
    boxes = torch.rand(2, 100, 4, generator=generator) * 0.5 + 0.25
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.25], [0.0, 0.0, 0.0, 0.0]])
    criterion = DETRackCriterion(LossConfig())
    present = torch.tensor([True, False])
    both, parts = criterion(synthetic_outputs(logits, boxes, cells), gt, present=present)
    alone, alone_parts = criterion(synthetic_outputs(logits[:1], boxes[:1], cells[:1]), gt[:1])
    # Box terms and mean IoU are the present image's alone; the absent one adds QFL.
    for name in ('l1', 'giou', 'mean_iou'):
        assert parts[name] == pytest.approx(alone_parts[name])
    positives = assign_positives(cells[:1], gt[:1], 16).sum()
    extra = quality_focal_loss(logits[1:], torch.zeros(1, 100)).sum() / positives
    assert parts['qfl'] == pytest.approx(alone_parts['qfl'] + 2 * extra.item(), rel=1e-5)
    # Every score of the absent image is pushed down.
    both.backward()
    assert (logits.grad[1] > 0).all()
    # An all-absent batch: only QFL, towards zero scores.
    _, parts = criterion(synthetic_outputs(logits, boxes, cells), gt,
                         present=torch.tensor([False, False]))
    assert parts['l1'] == 0.0 and parts['giou'] == 0.0 and parts['qfl'] > 0


def test_absent_images_with_denoising_on_the_real_model():
    """Denoising queries of an absent image (placeholder box) get zero targets, finite loss."""
    torch.manual_seed(1)
    model = tiny_model()
    criterion = DETRackCriterion(grid=model.config.search_grid)
    present = torch.tensor([True, False])
    gt = placeholder_gt(torch.tensor([[0.5, 0.5, 0.25, 0.3], [0.0, 0.0, 0.0, 0.0]]), present)
    assert gt[1].tolist() == [0.5, 0.5, 0.5, 0.5]
    dn, meta = criterion.denoising_queries(gt, model.config.decoder.num_queries,
                                           torch.Generator().manual_seed(0))
    outputs = model(torch.randn(2, 3, 128, 128), torch.randn(2, 3, 256, 256), denoising=dn)
    loss, parts = criterion(outputs, gt, meta, present=present)
    _, one = criterion(outputs, gt, meta)
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in parts.values())
    # Fewer supervised boxes and positives when the second image is absent.
    assert parts['dn_l1'] != pytest.approx(one['dn_l1'])
    loss.backward()


def test_the_conv_criterion_refuses_absent_images():
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.3]])
    heat = gaussian_heatmap(gt, 16)[:, None]
    with pytest.raises(ValueError, match='target-absent'):
        OSTrackCriterion()(conv_outputs(heat, gt[:, None]), gt, present=torch.tensor([False]))
