"""Denoising queries: content cells, box noise, layout, attention mask, effect on the model."""

from detrack_model.losses import (corner_cells, denoising_attn_mask, DETRackCriterion,
                                  make_denoising_queries)
from detrack_model.modeling import create_model
from detrack_model.modeling.box_ops import box_iou, cxcywh_to_xyxy
import pytest
import torch


def xyxy(x0, y0, x1, y1):
    """Return a cxcywh list for corner coordinates."""
    return [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]


def iou_with(boxes, gt):
    """Return the IoU of (..., 4) cxcywh boxes with one cxcywh GT."""
    return box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(gt).expand_as(boxes))[0]


def test_content_cells_are_the_centre_and_corner_cells():
    """
    Box [.25, 1) x [.25, 1) on a 4x4 grid covers cols/rows 1-3.

    Centre (.625, .625) lies in cell 2 * 4 + 2 = 10; the corner cells are 5, 7, 13, 15.
    """
    gt = torch.tensor([xyxy(0.25, 0.25, 1.0, 1.0)])
    assert corner_cells(gt, 4).tolist() == [[5, 7, 13, 15]]
    dn, meta = make_denoising_queries(gt, 4, num_queries=3, groups=2, negatives=4,
                                      generator=torch.Generator().manual_seed(0))
    index = dn.grid_index[0].view(2, 5)
    assert index[:, 0].tolist() == [10, 10]
    for group in index:
        assert sorted(group[1:].tolist()) == [5, 7, 13, 15]
    assert meta.positive.tolist() == [True, False, False, False, False] * 2


def test_corner_cells_stay_inside_the_box_and_the_grid():
    """A corner point in a mostly-outside cell is moved in; boxes past the crop clamp."""
    # x0 = 0.24 lies in col 0, whose centre 0.125 is outside the box: the corner is col 1.
    gt = torch.tensor([xyxy(0.24, 0.24, 0.76, 0.76), xyxy(-0.2, -0.2, 0.3, 0.3),
                       [0.3, 0.3, 0.05, 0.05]])
    assert corner_cells(gt, 4).tolist() == [[5, 6, 9, 10], [0, 0, 0, 0], [5, 5, 5, 5]]


def test_negatives_take_distinct_random_corners():
    """With one negative per group every corner shows up, never the same twice in a group."""
    gt = torch.tensor([xyxy(0.25, 0.25, 1.0, 1.0)])
    dn, _ = make_denoising_queries(gt, 4, 3, groups=40, negatives=2,
                                   generator=torch.Generator().manual_seed(0))
    negatives = dn.grid_index[0].view(40, 3)[:, 1:]
    assert set(negatives.flatten().tolist()) == {5, 7, 13, 15}
    assert (negatives[:, 0] != negatives[:, 1]).all()


def test_positive_noise_is_bounded_and_negatives_are_farther():
    """Over many samples: |dx| < l1 w / 2, w in (1 - l2, 1 + l2) w; negatives beyond."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.2]]).repeat(500, 1)
    lambda1, lambda2 = 0.4, 0.3
    dn, meta = make_denoising_queries(gt, 16, 64, groups=4, negatives=1, lambda1=lambda1,
                                      lambda2=lambda2,
                                      generator=torch.Generator().manual_seed(0))
    boxes = dn.boxes.view(500, 4, 2, 4)
    shift = (boxes[..., :2] - gt[:, None, None, :2]).abs() / gt[:, None, None, 2:]
    scale = boxes[..., 2:] / gt[:, None, None, 2:]
    positive, negative = (slice(None), slice(None), 0), (slice(None), slice(None), 1)
    assert (shift[positive] < lambda1 / 2).all()
    assert ((scale[positive] > 1 - lambda2) & (scale[positive] < 1 + lambda2)).all()
    assert (shift[negative] >= lambda1 / 2 - 1e-6).all()
    assert (shift[negative] < lambda1 + 1e-6).all()
    scale_change = (scale[negative] - 1).abs()
    assert ((scale_change >= lambda2 - 1e-6) & (scale_change < 2 * lambda2 + 1e-6)).all()
    iou = iou_with(boxes, gt[:1])
    assert iou[:, :, 1].mean() < iou[:, :, 0].mean() - 0.2
    assert meta.positive.view(4, 2)[:, 0].all() and not meta.positive.view(4, 2)[:, 1].any()


def test_boxes_stay_in_the_crop_with_a_minimum_size():
    """Edge, degenerate and NaN GT boxes still give finite queries inside [0, 1]."""
    gt = torch.tensor([[0.95, 0.05, 0.3, 0.3], [0.5, 0.5, 0.0, 0.0], [float('nan')] * 4])
    dn, _ = make_denoising_queries(gt, 16, 64, groups=10, negatives=4,
                                   generator=torch.Generator().manual_seed(0))
    corners = cxcywh_to_xyxy(dn.boxes)
    assert torch.isfinite(dn.boxes).all()
    assert (corners >= -1e-6).all() and (corners <= 1 + 1e-6).all()
    assert (dn.boxes[..., 2:] >= 1e-3 - 1e-9).all()


def test_seeded_generator_is_deterministic():
    """The same seed gives the same queries; another seed different ones."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.2], [0.3, 0.6, 0.2, 0.4]])

    def make(seed):
        return make_denoising_queries(gt, 16, 64, groups=3, negatives=2,
                                      generator=torch.Generator().manual_seed(seed))[0]

    first, again, other = make(7), make(7), make(8)
    assert torch.equal(first.boxes, again.boxes)
    assert torch.equal(first.grid_index, again.grid_index)
    assert not torch.equal(first.boxes, other.boxes)


def test_attention_mask_for_three_matching_queries_and_two_groups():
    """
    K = 3, G = 2 groups of (positive, negative): rows attend, columns are attended (x = blocked).

    ::

                m0 m1 m2 p0 n0 p1 n1
            m0  .  .  .  x  x  x  x
            m1  .  .  .  x  x  x  x
            m2  .  .  .  x  x  x  x
            p0  .  .  .  .  .  x  x
            n0  .  .  .  .  .  x  x
            p1  .  .  .  x  x  .  .
            n1  .  .  .  x  x  .  .
    """
    expected = torch.tensor([[0, 0, 0, 1, 1, 1, 1],
                             [0, 0, 0, 1, 1, 1, 1],
                             [0, 0, 0, 1, 1, 1, 1],
                             [0, 0, 0, 0, 0, 1, 1],
                             [0, 0, 0, 0, 0, 1, 1],
                             [0, 0, 0, 1, 1, 0, 0],
                             [0, 0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    print('expected mask (1 = may not attend):\n', expected.int())
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.2]])
    dn, _ = make_denoising_queries(gt, 16, num_queries=3, groups=2, negatives=1,
                                   generator=torch.Generator().manual_seed(0))
    assert dn.attn_mask.dtype == torch.bool
    assert torch.equal(dn.attn_mask, expected)
    assert not dn.attn_mask.diagonal().any()
    isolated = denoising_attn_mask(3, 2, 2, dn_sees_matching=False)
    assert torch.equal(isolated[:3], expected[:3])
    assert isolated[3:, :3].all() and torch.equal(isolated[3:, 3:], expected[3:, 3:])
    assert not isolated.diagonal().any()


def test_shapes_and_bad_arguments():
    """D = G (1 + negatives) queries per image; negatives beyond the 4 corners are refused."""
    gt = torch.tensor([[0.5, 0.5, 0.3, 0.2]] * 3)
    dn, meta = make_denoising_queries(gt, 16, 64, groups=5, negatives=3)
    assert dn.grid_index.shape == (3, 20) and dn.grid_index.dtype == torch.long
    assert dn.boxes.shape == (3, 20, 4) and dn.attn_mask.shape == (84, 84)
    assert meta.group.tolist() == [g for g in range(5) for _ in range(4)]
    assert (meta.num_matching, meta.groups, meta.negatives) == (64, 5, 3)
    with pytest.raises(ValueError, match='negatives must be in 0..4'):
        make_denoising_queries(gt, 16, 64, negatives=5)


def test_denoising_queries_do_not_change_the_matching_outputs():
    """With the generated mask, the real model's matching outputs ignore the DN queries."""
    torch.manual_seed(0)
    model = create_model('vit_tiny', encoder={'depth': 2, 'ce_layers': []}).eval()
    # Refinements start at zero; make them content-dependent so a leak would show in boxes.
    torch.nn.init.normal_(model.decoder.bbox_embed.layers[-1].weight, std=0.1)
    crops = (torch.randn(2, 3, 128, 128), torch.randn(2, 3, 256, 256))
    gt = torch.tensor([[0.5, 0.5, 0.25, 0.3], [0.4, 0.55, 0.2, 0.15]])
    criterion = DETRackCriterion()
    with torch.no_grad():
        plain = model(*crops)
        for seed in (0, 1):
            dn, _ = criterion.denoising_queries(gt, 64, torch.Generator().manual_seed(seed))
            noised = model(*crops, denoising=dn)
            torch.testing.assert_close(noised['boxes'], plain['boxes'])
            torch.testing.assert_close(noised['logits'], plain['logits'])
            assert noised['dn_layers'][-1][0].shape == (2, 10, 4)
