"""MAC counts (against closed forms and the papers' figures), parameters, latency, the CLI."""

import json

from detrack_model.cli.profiler import main as profile_main
from detrack_model.config import preset
from detrack_model.modeling import create_model
from detrack_model.profiling import count_macs, count_parameters, measure_latency
import pytest
import torch


@pytest.fixture(scope='module')
def vit_base_counts():
    """Count vit_base with both heads, with and without candidate elimination."""
    counts = {}
    for head in ('conv', 'decoder'):
        model = create_model(preset('vit_base', head=head))
        for ce in (False, True):
            counts[head, ce] = count_macs(model, candidate_elimination=ce)
    return counts


@pytest.mark.slow
def test_encoder_macs_match_the_closed_form(vit_base_counts):
    """Without CE: 320 tokens through 12 blocks, plus the patch embedding, counted exactly."""
    tokens, dim, mlp, depth = 64 + 256, 768, 3072, 12
    linear = depth * tokens * (3 * dim * dim + dim * dim + 2 * dim * mlp) + tokens * dim * 768
    attention = depth * 2 * tokens * tokens * dim
    encoder = vit_base_counts['conv', False]['encoder']
    assert encoder.linear == linear
    assert encoder.attention == attention


@pytest.mark.slow
def test_ostrack_256_baseline_matches_the_pruning_paper(vit_base_counts):
    """ViT-B + conv head without CE in thop's convention: within 3 % of 29.38 G MACs."""
    linear = vit_base_counts['conv', False]['total'].linear
    assert abs(linear / 29.38e9 - 1) < 0.03


@pytest.mark.slow
def test_decoder_head_costs_less_than_the_conv_head(vit_base_counts):
    """The decoder head (query selection + decoder) is cheaper than the conv head, CE or not."""
    for ce in (False, True):
        decoder = vit_base_counts['decoder', ce]
        decoder_head = decoder['query selection'].total + decoder['decoder'].total
        assert decoder_head < vit_base_counts['conv', ce]['head'].total
        assert decoder['decoder'].sampling > 0


@pytest.mark.slow
def test_candidate_elimination_saves_encoder_macs(vit_base_counts):
    """CE at 3, 6, 9 with 0.7 removes roughly a third of the encoder's work."""
    full = vit_base_counts['decoder', False]['encoder'].total
    pruned = vit_base_counts['decoder', True]['encoder'].total
    assert 0.6 < pruned / full < 0.8


def test_parameters_per_stage_add_up():
    """Stage parameter counts sum to the total."""
    model = create_model(preset('vit_tiny'))
    params = count_parameters(model)
    assert params['total'] == sum(v for k, v in params.items() if k != 'total')


def test_latency_is_measured_per_stage():
    """Every stage gets a positive median, each inside the total."""
    model = create_model(preset('vit_tiny', encoder={'depth': 4, 'ce_layers': [1, 2]})).eval()
    latency = measure_latency(model, torch.device('cpu'), runs=3, warmup=1)
    assert set(latency) == {'total', 'encoder', 'query selection', 'decoder'}
    assert all(v > 0 for v in latency.values())
    # Every run times each stage inside that run's forward, so each stage's median is at most
    # the total's whatever the load; a sum of medians is not (three noisy runs can break it).
    assert all(latency[stage] <= latency['total'] for stage in latency)


@pytest.mark.slow
def test_profile_cli_prints_table_and_json(capsys):
    """detrack-profile prints MACs as multiply-accumulates, and JSON on request."""
    assert profile_main(['--config', 'vit_tiny', '--head', 'conv', '--runs', '2']) == 0
    text = capsys.readouterr().out
    assert 'multiply-accumulates' in text and 'encoder' in text and 'head' in text
    assert profile_main(['--config', 'vit_tiny', '--no-ce', '--runs', '2', '--layers', '1',
                         '--json']) == 0
    data = json.loads(capsys.readouterr().out)
    assert data['candidate_elimination'] is False and data['num_layers'] == 1
    assert data['stages']['total']['macs'] > data['stages']['decoder']['macs'] > 0


def test_profile_cli_rejects_unknown_configs(capsys):
    """An unknown preset or missing file is a usage error naming the presets."""
    with pytest.raises(SystemExit):
        profile_main(['--config', 'vit_huge'])
    assert 'vit_base' in capsys.readouterr().err
