"""Loading MAE/CAE/timm-style ViT checkpoints into the encoder, safely."""

import math
import pathlib

from detrack_model.config import preset
from detrack_model.modeling import create_model
from detrack_model.modeling.checkpoint import load_pretrained_encoder
import pytest
from safetensors.torch import save_file
import torch
import torch.nn.functional as F


def timm_vit_state(dim=192, depth=2, heads=3, grid=14, seed=0):
    """Build a randomly initialised ViT state dict in timm's layout (class token included)."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.05

    state = {'cls_token': rand(1, 1, dim), 'pos_embed': rand(1, 1 + grid * grid, dim),
             'patch_embed.proj.weight': rand(dim, 3, 16, 16), 'patch_embed.proj.bias': rand(dim),
             'norm.weight': 1 + rand(dim), 'norm.bias': rand(dim)}
    for i in range(depth):
        p = f'blocks.{i}.'
        state.update({
            p + 'norm1.weight': 1 + rand(dim), p + 'norm1.bias': rand(dim),
            p + 'attn.qkv.weight': rand(3 * dim, dim), p + 'attn.qkv.bias': rand(3 * dim),
            p + 'attn.proj.weight': rand(dim, dim), p + 'attn.proj.bias': rand(dim),
            p + 'norm2.weight': 1 + rand(dim), p + 'norm2.bias': rand(dim),
            p + 'mlp.fc1.weight': rand(4 * dim, dim), p + 'mlp.fc1.bias': rand(4 * dim),
            p + 'mlp.fc2.weight': rand(dim, 4 * dim), p + 'mlp.fc2.bias': rand(dim)})
    return state


def encoder(depth=2, **overrides):
    """Build a vit_tiny encoder of ``depth`` blocks (no elimination) at 128/256."""
    config = preset('vit_tiny', encoder={'depth': depth, 'ce_layers': []}, **overrides)
    return create_model(config).encoder


def test_mae_checkpoint_loads_and_resizes_position_embeddings(tmp_path):
    """An MAE file ({'model': ...}, 14x14 grid, decoder keys) loads; pos embeds are resized."""
    state = timm_vit_state()
    mae = dict(state, mask_token=torch.zeros(1, 1, 192),
               **{'decoder_embed.weight': torch.zeros(8, 192)})
    path = tmp_path / 'mae.pth'
    torch.save({'model': mae, 'epoch': 1599}, path)
    target = encoder()
    report = load_pretrained_encoder(target, str(path))
    assert report.missing == []
    assert set(report.unexpected) == {'cls_token', 'mask_token', 'decoder_embed.weight'}
    torch.testing.assert_close(target.blocks[1].mlp.fc2.weight, state['blocks.1.mlp.fc2.weight'])
    grid = state['pos_embed'][:, 1:].reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    for name, size in (('pos_embed_z', 8), ('pos_embed_x', 16)):
        expected = F.interpolate(grid, size=(size, size), mode='bicubic', align_corners=False)
        torch.testing.assert_close(getattr(target, name),
                                   expected.permute(0, 2, 3, 1).reshape(1, size * size, 192))
    assert any('pos_embed' in line for line in report.resized)


def test_safetensors_with_prefix_and_matching_grid(tmp_path):
    """A safetensors file with 'module.' prefixes and a 16x16 grid loads without resizing."""
    state = timm_vit_state(grid=16)
    path = tmp_path / 'vit.safetensors'
    save_file({'module.' + k: v.contiguous() for k, v in state.items()}, str(path))
    target = encoder()
    load_pretrained_encoder(target, str(path))
    torch.testing.assert_close(target.pos_embed_x, state['pos_embed'][:, 1:])
    torch.testing.assert_close(target.patch_embed.proj.weight, state['patch_embed.proj.weight'])


def test_beit_style_biases_and_layer_scale_fold_exactly(tmp_path):
    """CAE/BEiT q/v biases and gamma layer scales become plain weights with equal outputs."""
    state = timm_vit_state(depth=1, grid=16)
    q_bias, v_bias = state['blocks.0.attn.qkv.bias'][:192], state['blocks.0.attn.qkv.bias'][384:]
    del state['blocks.0.attn.qkv.bias']
    gamma_1, gamma_2 = torch.linspace(0.1, 1.0, 192), torch.linspace(1.0, 0.2, 192)
    cae = dict(state, **{'blocks.0.attn.q_bias': q_bias, 'blocks.0.attn.v_bias': v_bias,
                         'blocks.0.gamma_1': gamma_1, 'blocks.0.gamma_2': gamma_2})
    path = tmp_path / 'cae.pth'
    torch.save({'model': {'encoder.' + k: v for k, v in cae.items()}}, path)
    target = encoder(depth=1)
    report = load_pretrained_encoder(target, str(path))
    assert len(report.folded) == 4 and report.missing == []

    x = torch.randn(2, 10, 192)
    p = 'blocks.0.'
    qkv = F.linear(F.layer_norm(x, (192,), state[p + 'norm1.weight'], state[p + 'norm1.bias'],
                                1e-6), state[p + 'attn.qkv.weight'],
                   torch.cat((q_bias, torch.zeros(192), v_bias)))
    q, k, v = qkv.view(2, 10, 3, 3, 64).permute(2, 0, 3, 1, 4)
    attended = ((q @ k.transpose(-2, -1) / math.sqrt(64)).softmax(-1) @ v)
    attended = F.linear(attended.transpose(1, 2).reshape(2, 10, 192),
                        state[p + 'attn.proj.weight'], state[p + 'attn.proj.bias'])
    y = x + gamma_1 * attended
    hidden = F.gelu(F.linear(F.layer_norm(y, (192,), state[p + 'norm2.weight'],
                                          state[p + 'norm2.bias'], 1e-6),
                             state[p + 'mlp.fc1.weight'], state[p + 'mlp.fc1.bias']))
    expected = y + gamma_2 * F.linear(hidden, state[p + 'mlp.fc2.weight'],
                                      state[p + 'mlp.fc2.bias'])
    with torch.no_grad():
        out, _ = target.blocks[0](x, 0, torch.zeros(2, 10, dtype=torch.long))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    """A vit_small checkpoint for a vit_tiny encoder names the tensors that do not fit."""
    path = tmp_path / 'small.pth'
    torch.save(timm_vit_state(dim=384, heads=6), path)
    with pytest.raises(RuntimeError, match=r'another architecture .*patch_embed\.proj\.weight: '
                                           r'checkpoint \(384, 3, 16, 16\), model '
                                           r'\(192, 3, 16, 16\)'):
        load_pretrained_encoder(encoder(), str(path))


class _Payload:
    """An object whose unpickling would create a marker file."""

    marker = None

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickled_code_is_never_run(tmp_path):
    """A checkpoint carrying arbitrary Python objects is refused without executing them."""
    marker = tmp_path / 'executed'
    _Payload.marker = marker
    path = tmp_path / 'evil.pth'
    torch.save({'model': timm_vit_state(), 'payload': _Payload()}, path)
    with pytest.raises(RuntimeError, match='weights-only'):
        load_pretrained_encoder(encoder(), str(path))
    assert not marker.exists()


def test_missing_and_corrupt_files(tmp_path):
    """Missing and corrupt files raise errors that name the file."""
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_pretrained_encoder(encoder(), str(tmp_path / 'nope.pth'))
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'\x00garbage' * 10)
    with pytest.raises(RuntimeError, match='corrupt.safetensors'):
        load_pretrained_encoder(encoder(), str(corrupt))
    truncated = tmp_path / 'truncated.pth'
    torch.save({'model': timm_vit_state()}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match='truncated.pth'):
        load_pretrained_encoder(encoder(), str(truncated))
