"""The DETRack network: shapes, candidate elimination, query selection, decoder, conv head."""

import math

from detrack_model.config import ModelConfig, preset
from detrack_model.modeling import create_model
from detrack_model.modeling.conv_head import CentreHead
from detrack_model.modeling.deformable_decoder import scatter_to_grid
from detrack_model.modeling.detrack import DenoisingQueries
from detrack_model.modeling.query_selection import token_anchors
from detrack_model.modeling.vit import Attention, centre_token_indices, eliminate_candidates
import pytest
import torch


def tiny(**overrides):
    """Build a small, fast configuration (vit_tiny, 6 blocks, CE after blocks 1, 3, 4)."""
    overrides.setdefault('encoder', {})
    overrides['encoder'] = {'depth': 6, 'ce_layers': [1, 3, 4], **overrides['encoder']}
    return preset('vit_tiny', **overrides)


def crops(batch=2, config=None, seed=0):
    """Random template and search crops of the configured sizes."""
    config = config or tiny()
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, config.template_size, config.template_size,
                        generator=generator),
            torch.randn(batch, 3, config.search_size, config.search_size, generator=generator))


@pytest.mark.parametrize('head', ['decoder', 'conv'])
@pytest.mark.parametrize('candidate_elimination', [True, False])
def test_output_shapes(head, candidate_elimination):
    """Both heads give boxes, scores in [0, 1] and grid positions, with and without CE."""
    config = tiny(head=head)
    model = create_model(config).eval()
    with torch.no_grad():
        out = model(*crops(3, config), candidate_elimination=candidate_elimination)
    kept = config.kept_search_tokens(candidate_elimination)
    k = config.decoder.num_queries if head == 'decoder' else 1
    assert out['boxes'].shape == (3, k, 4)
    assert out['scores'].shape == (3, k)
    assert out['query_index'].shape == (3, k)
    assert out['search_index'].shape == (3, kept)
    if head == 'decoder':
        assert ((out['boxes'] >= 0) & (out['boxes'] <= 1)).all()
    else:
        # The conv head's centre is its cell plus an unbounded offset; only sizes are sigmoids.
        assert torch.isfinite(out['boxes']).all()
        assert ((out['boxes'][..., 2:] > 0) & (out['boxes'][..., 2:] < 1)).all()
    assert ((out['scores'] >= 0) & (out['scores'] <= 1)).all()
    for row in out['search_index']:
        assert len(set(row.tolist())) == kept and row.min() >= 0 and row.max() < 256
    if head == 'decoder':
        assert out['token_boxes'].shape == (3, kept, 4)
        assert len(out['layers']) == config.decoder.layers
        # Each query's grid cell is one of the kept cells.
        for queries, cells in zip(out['query_index'], out['search_index']):
            assert set(queries.tolist()) <= set(cells.tolist())


def test_kept_token_counts_follow_the_schedule():
    """256 search tokens, keep 0.7 three times: ceil -> 180, 126, 89."""
    config = preset('vit_base')
    assert config.kept_search_tokens() == 89
    assert config.kept_search_tokens(False) == 256
    assert math.ceil(0.7 * math.ceil(0.7 * math.ceil(0.7 * 256))) == 89


def test_probe_attention_equals_explicit_attention():
    """The probe rows CE ranks by equal softmax(q k^T / sqrt(d)) rows averaged over heads."""
    torch.manual_seed(0)
    attention = Attention(dim=48, heads=4).double()
    x = torch.randn(2, 20, 48, dtype=torch.double)
    probe = torch.tensor([3, 4])
    out, probe_attention = attention(x, probe)
    q, k, v = attention.qkv(x).view(2, 20, 3, 4, 12).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(12)).softmax(-1)
    expected_out = attention.proj((weights @ v).transpose(1, 2).reshape(2, 20, 48))
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(probe_attention, weights[:, :, [3, 4]].mean(dim=(1, 2)))


def test_eliminate_candidates_keeps_the_most_attended_tokens():
    """Kept tokens are the top ceil(r * n) by attention, with their grid indices."""
    template_tokens, search_tokens = 2, 5
    x = torch.arange(7, dtype=torch.float32).view(1, 7, 1).expand(1, 7, 3)
    attention = torch.tensor([[0.0, 0.0, 0.1, 0.5, 0.05, 0.3, 0.05]])
    index = torch.tensor([[10, 11, 12, 13, 14]])
    kept, kept_index = eliminate_candidates(x, attention, template_tokens, index, 0.6)
    assert kept_index.tolist() == [[11, 13, 10]]
    assert kept[0, :, 0].tolist() == [0, 1, 3, 5, 2]
    same, same_index = eliminate_candidates(x, attention, template_tokens, index, 1.0)
    assert same is x and same_index is index
    assert search_tokens == index.shape[1]


def test_centre_tokens():
    """The template centre is one cell on odd grids and the middle four on even grids."""
    assert centre_token_indices(3) == [4]
    assert centre_token_indices(8) == [27, 28, 35, 36]


def test_search_index_tracks_where_each_kept_token_lives():
    """With identity blocks each kept token equals the embedding of its recorded cell."""
    config = tiny()
    model = create_model(config).eval()
    for block in model.encoder.blocks:
        for linear in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(linear.weight)
            torch.nn.init.zeros_(linear.bias)
    template, search = crops(2, config)
    with torch.no_grad():
        encoded = model.encoder(template, search)
        embedded = model.encoder.norm(model.encoder.patch_embed(search) +
                                      model.encoder.pos_embed_x)
    expected = embedded.gather(1, encoded.search_index.unsqueeze(-1).expand(-1, -1, 192))
    torch.testing.assert_close(encoded.search, expected)


def test_keep_ratio_one_is_the_same_as_no_elimination():
    """CE with keep ratio 1 changes nothing."""
    config = tiny(encoder={'ce_keep_ratio': 1.0})
    model = create_model(config).eval()
    template, search = crops(1, config)
    with torch.no_grad():
        with_ce = model(template, search, candidate_elimination=True)
        without = model(template, search, candidate_elimination=False)
    torch.testing.assert_close(with_ce['boxes'], without['boxes'])


def test_query_selection_takes_the_top_scoring_tokens():
    """Content queries are the K best-scored tokens, and their boxes are the proposals."""
    model = create_model(tiny()).eval()
    with torch.no_grad():
        out = model(*crops(2))
    k = model.config.decoder.num_queries
    best = out['token_logits'].topk(k, dim=1).indices
    expected_cells = out['search_index'].gather(1, best)
    assert torch.equal(out['query_index'], expected_cells)


def test_token_anchors_sit_on_cell_centres():
    """Anchor boxes are centred on their cells, in normalised coordinates."""
    anchors = token_anchors(torch.tensor([[0, 17, 255]]), 16, 0.25)
    expected = torch.tensor([[[0.5 / 16, 0.5 / 16, 0.25, 0.25],
                              [1.5 / 16, 1.5 / 16, 0.25, 0.25],
                              [15.5 / 16, 15.5 / 16, 0.25, 0.25]]])
    torch.testing.assert_close(anchors, expected)


def test_scatter_to_grid_leaves_dropped_cells_zero():
    """Value maps hold kept tokens at their cells and zeros where tokens were dropped."""
    tokens = torch.ones(1, 2, 3)
    grid = scatter_to_grid(tokens, torch.tensor([[1, 3]]), 4)
    assert grid[0, :, 0].tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize('layers', [1, 2, 3])
def test_decoder_stops_after_n_layers(layers):
    """num_layers = n runs the first n layers; the n-layer boxes equal the full run's n-th."""
    model = create_model(tiny()).eval()
    template, search = crops(1)
    with torch.no_grad():
        full = model(template, search)
        partial = model(template, search, num_layers=layers)
    assert len(partial['layers']) == layers
    torch.testing.assert_close(partial['boxes'], full['layers'][layers - 1][0])


def test_decoder_layer_count_out_of_range():
    """Asking for more decoder layers than exist names the valid range."""
    model = create_model(tiny()).eval()
    with pytest.raises(ValueError, match=r'decoder layers must be in 1\.\.3, got 4'):
        model(*crops(1), num_layers=4)


def test_denoising_mask_isolates_matching_queries():
    """With the DN part masked off, matching outputs do not depend on the DN queries."""
    model = create_model(tiny()).eval()
    # Refinements start at zero; make them content-dependent so leaks would show in boxes.
    torch.nn.init.normal_(model.decoder.bbox_embed.layers[-1].weight, std=0.1)
    template, search = crops(1)
    k, d = model.config.decoder.num_queries, 4
    mask = torch.zeros(k + d, k + d, dtype=torch.bool)
    mask[:k, k:] = True
    outputs = []
    for seed in (0, 1):
        generator = torch.Generator().manual_seed(seed)
        dn = DenoisingQueries(torch.randint(0, 256, (1, d), generator=generator),
                              torch.rand(1, d, 4, generator=generator) * 0.5 + 0.25, mask)
        with torch.no_grad():
            outputs.append(model(template, search, denoising=dn))
    torch.testing.assert_close(outputs[0]['boxes'], outputs[1]['boxes'])
    torch.testing.assert_close(outputs[0]['logits'], outputs[1]['logits'])
    assert outputs[0]['dn_layers'][-1][0].shape == (1, d, 4)
    assert not torch.allclose(outputs[0]['dn_layers'][-1][0], outputs[1]['dn_layers'][-1][0])
    # Without the mask the DN queries do leak into the matching ones.
    unmasked = DenoisingQueries(dn.grid_index, dn.boxes, torch.zeros_like(mask))
    with torch.no_grad():
        leaked = model(template, search, denoising=unmasked)
    assert not torch.allclose(leaked['boxes'], outputs[1]['boxes'])
    assert not torch.allclose(leaked['logits'], outputs[1]['logits'])


def test_every_parameter_learns():
    """A backward pass through all outputs reaches every parameter of the decoder model."""
    model = create_model(tiny())
    out = model(*crops(2))
    loss = sum(b.sum() + s.sum() for b, s in out['layers'])
    loss = loss + out['token_boxes'].sum() + out['token_logits'].sum()
    loss.backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None]
    assert silent == []


def test_conv_head_reads_the_box_at_the_best_cell():
    """The box comes from the argmax cell plus its offset, with that cell's size."""
    head = CentreHead(in_channels=8, channels=16, grid=4)
    features = torch.zeros(1, 8, 4, 4)
    with torch.no_grad():
        out = head(features)
    best = out['score_map'].flatten(1).argmax(1).item()
    row, col = divmod(best, 4)
    offset = out['offset_map'][0, :, row, col]
    size = out['size_map'][0, :, row, col]
    expected = torch.tensor([(col + offset[0]) / 4, (row + offset[1]) / 4, size[0], size[1]])
    torch.testing.assert_close(out['boxes'][0, 0], expected)


@pytest.mark.parametrize('name, shape', [('template', (2, 3, 112, 128)),
                                         ('search', (2, 3, 256, 255)),
                                         ('search', (2, 1, 256, 256))])
def test_wrong_image_sizes_are_named(name, shape):
    """A crop of the wrong size raises ValueError with expected and received shapes."""
    model = create_model(tiny()).eval()
    template, search = crops(2)
    if name == 'template':
        template = torch.zeros(shape)
    else:
        search = torch.zeros(shape)
    with pytest.raises(ValueError, match=rf'{name} must be a \(B, 3, \d+, \d+\) batch, got'):
        model(template, search)


def test_mismatched_batches_are_named():
    """Template and search batches of different sizes raise ValueError naming both."""
    model = create_model(tiny()).eval()
    template, search = crops(2)
    with pytest.raises(ValueError, match='template batch 2 does not match search batch 1'):
        model(template, search[:1])


def test_too_many_queries_for_the_kept_tokens():
    """K larger than the tokens CE keeps is refused at configuration time, with the limit."""
    with pytest.raises(ValueError, match=r'num_queries 100 is larger than the 89 search tokens'
                                         r'.*use at most 89'):
        preset('vit_tiny', decoder={'num_queries': 100})
    with pytest.raises(ValueError, match='search_size must be a positive multiple'):
        preset('vit_tiny', search_size=250)


def test_any_sizes_divisible_by_the_patch():
    """Other template/search sizes work (here 64 and 192), position embeddings follow."""
    config = tiny(template_size=64, search_size=192, decoder={'num_queries': 32})
    model = create_model(config).eval()
    with torch.no_grad():
        out = model(*crops(1, config))
    assert model.encoder.pos_embed_x.shape[1] == 144
    assert out['search_index'].max() < 144


def test_config_round_trip_and_unknown_keys():
    """Configurations survive to_dict/from_dict; an unknown key is named."""
    config = tiny(head='conv')
    assert ModelConfig.from_dict(config.to_dict()) == config
    data = config.to_dict()
    data['encoder']['depht'] = 3
    with pytest.raises(ValueError, match=r"encoder: unknown keys \['depht'\]"):
        ModelConfig.from_dict(data)


def test_presets_have_the_papers_sizes():
    """vit_base/small/tiny widths, depths and heads; base is the paper's model."""
    sizes = {name: (c.encoder.dim, c.encoder.depth, c.encoder.heads) for name, c in
             ((n, preset(n)) for n in ('vit_base', 'vit_small', 'vit_tiny'))}
    assert sizes == {'vit_base': (768, 12, 12), 'vit_small': (384, 12, 6),
                     'vit_tiny': (192, 12, 3)}
    base = preset('vit_base')
    assert (base.template_size, base.search_size, base.decoder.hidden,
            base.decoder.num_queries, base.decoder.layers) == (128, 256, 256, 64, 3)
