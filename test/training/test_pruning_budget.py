"""Budget accounting on hand-made mask values: global, layerwise and the minimum barrier."""

from detrack_model.pruning import check_budget, global_threshold, keep_masks, minimum_kept
import pytest
import torch


def masks():
    """Two 'layers' of ten values each: layer a small, layer b large (a sign flipped)."""
    return {'a': torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10]),
            'b': torch.tensor([0.5, 0.6, -0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4])}


def test_global_threshold_is_the_value_at_int_one_minus_b_times_n():
    """N = 20 sorted |values|: b = 0.25 takes position int(0.75 * 20) = 15."""
    ordered = sorted(abs(v) for m in masks().values() for v in m.tolist())
    assert global_threshold(masks(), 0.25) == pytest.approx(ordered[15])
    assert global_threshold(masks(), 1.0) == pytest.approx(ordered[0])
    assert global_threshold(masks(), 0.5) == pytest.approx(ordered[10])


def test_global_budget_prunes_the_small_layer_first_but_never_to_zero():
    """At b = 0.5 the small layer a would lose everything; the barrier keeps its largest."""
    keep = keep_masks(masks(), 0.5, 'global')
    assert keep['b'].all()
    assert keep['a'].tolist() == [False] * 9 + [True]
    # The sign does not matter: |-0.7| ranks as 0.7.
    keep = keep_masks(masks(), 0.25, 'global')
    assert keep['b'].tolist() == [False] * 5 + [True] * 5
    assert int(keep['a'].sum()) == 1


def test_layerwise_budget_keeps_the_same_fraction_everywhere():
    """Keep the top 3 of each group of 10 at a budget of 0.3."""
    keep = keep_masks(masks(), 0.3, 'layerwise')
    assert keep['a'].tolist() == [False] * 7 + [True] * 3
    assert keep['b'].tolist() == [False] * 7 + [True] * 3


def test_minimum_barrier_is_one_percent_or_one_unit():
    """A group keeps max(1, ceil(1 %)) entries; larger fractions are honoured."""
    assert minimum_kept(10) == 1
    assert minimum_kept(768) == 8
    assert minimum_kept(3072) == 31
    many = {'wide': torch.linspace(0.0, 0.001, 300), 'strong': torch.ones(100)}
    keep = keep_masks(many, 0.2, 'global')
    assert int(keep['wide'].sum()) == 3 and keep['wide'][-3:].all()
    keep = keep_masks(many, 0.2, 'global', min_keep_fraction=0.1)
    assert int(keep['wide'].sum()) == 30


def test_budget_one_keeps_everything_and_shapes_are_kept():
    """Keep every entry at budget 1; a (heads, head_dim) mask comes back in its shape."""
    grid = {'attn': torch.rand(3, 4) + 0.1}
    keep = keep_masks(grid, 1.0)
    assert keep['attn'].shape == (3, 4) and keep['attn'].all()


@pytest.mark.parametrize('budget', [0.0, -0.1, 1.01, float('nan')])
def test_budget_outside_zero_one_is_a_clear_error(budget):
    """Budgets outside (0, 1] are refused, naming the valid range."""
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        check_budget(budget)
    with pytest.raises(ValueError, match=r'\(0, 1\]'):
        keep_masks(masks(), budget)


def test_unknown_mode_is_refused():
    """Only global and layerwise exist."""
    with pytest.raises(ValueError, match='layerwise'):
        keep_masks(masks(), 0.5, 'random')
