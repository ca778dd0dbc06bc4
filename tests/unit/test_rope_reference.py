"""RoPE against SkyReels-V2's `rope_params` / `rope_apply`, bit for bit.

The reference functions below are copied from skyreels_v2_infer/modules/transformer.py
(SkyworkAI/SkyReels-V2@abed76f) with only the `amp.autocast` decorators dropped (CPU here).
"""

from __future__ import annotations

import pytest
import torch

from skyreels_core.nn.rope import grid_positions, rope_angles, rope_apply, rope_freqs, rope_inv_freqs


def ref_rope_params(max_seq_len, dim, theta=10000):
    assert dim % 2 == 0
    freqs = torch.outer(
        torch.arange(max_seq_len), 1.0 / torch.pow(theta, torch.arange(0, dim, 2).to(torch.float32).div(dim))
    )
    freqs = torch.polar(torch.ones_like(freqs), freqs)
    return freqs


def ref_table(d: int) -> torch.Tensor:
    """WanModel.__init__'s self.freqs: [1024, d/2] complex64."""
    return torch.cat(
        [
            ref_rope_params(1024, d - 4 * (d // 6)),
            ref_rope_params(1024, 2 * (d // 6)),
            ref_rope_params(1024, 2 * (d // 6)),
        ],
        dim=1,
    )


def ref_rope_apply(x, grid_sizes, freqs):
    n, c = x.size(2), x.size(3) // 2
    bs = x.size(0)
    freqs = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    f, h, w = grid_sizes.tolist()
    seq_len = f * h * w
    x = torch.view_as_complex(x.to(torch.float32).reshape(bs, seq_len, n, -1, 2))
    freqs_i = torch.cat(
        [
            freqs[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
            freqs[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
            freqs[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(seq_len, 1, -1)
    x = torch.view_as_real(x * freqs_i).flatten(3)
    return x


def bits(x: torch.Tensor) -> torch.Tensor:
    """Bit pattern (so -0.0 != 0.0 and equal NaNs compare equal)."""
    return torch.view_as_real(x).view(torch.int32) if x.is_complex() else x.view(torch.int32)


@pytest.mark.parametrize("head_dim", [64, 128, 96])
def test_inv_freqs_equal_the_reference_float32_table(head_dim):
    d = head_dim
    expected = [
        1.0 / torch.pow(10000, torch.arange(0, dim, 2).to(torch.float32).div(dim))
        for dim in (d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6))
    ]
    got = rope_inv_freqs(head_dim)
    assert all(g.dtype == torch.float32 for g in got)
    assert torch.equal(bits(torch.cat(got)), bits(torch.cat(expected)))


@pytest.mark.parametrize("head_dim", [64, 128])
def test_integer_positions_reproduce_the_reference_table(head_dim):
    frames, height, width = 5, 6, 7
    freqs = rope_freqs(rope_angles(grid_positions(frames, height, width), head_dim))  # [L, d/2]
    c = head_dim // 2
    t, h, w = ref_table(head_dim).split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    f_i, h_i, w_i = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    expected = torch.cat([t[f_i.flatten()], h[h_i.flatten()], w[w_i.flatten()]], dim=1)
    assert freqs.dtype == torch.complex64
    assert torch.equal(bits(freqs), bits(expected))
    # positions up to the end of the reference's 1024-row table
    far = torch.tensor([[1023.0, 0.0, 1023.0], [512.0, 1000.0, 3.0]], dtype=torch.float64)
    idx = far.long()
    expected = torch.cat([t[idx[:, 0]], h[idx[:, 1]], w[idx[:, 2]]], dim=1)
    assert torch.equal(bits(rope_freqs(rope_angles(far, head_dim))), bits(expected))


def test_rope_apply_equals_the_reference_rope_apply():
    head_dim, grid = 64, (3, 4, 5)
    x = torch.randn(2, 60, 2, head_dim, generator=torch.Generator().manual_seed(0))
    got = rope_apply(x, rope_angles(grid_positions(*grid), head_dim))
    expected = ref_rope_apply(x, torch.tensor(grid), ref_table(head_dim))
    assert got.dtype == torch.float32
    assert torch.equal(bits(got), bits(expected))


def test_rope_apply_is_a_complex64_multiply_for_any_positions():
    # negative, offset, gapped and fractional positions: angle = float32 position * float32 inv_freq
    head_dim = 128
    positions = grid_positions(4, 2, 3, frame_offset=-2.0, frame_scale=0.37)
    positions[:6, 0] = 1024.0
    angles = rope_angles(positions, head_dim)
    inv = torch.cat(rope_inv_freqs(head_dim))
    axis = torch.repeat_interleave(torch.arange(3), torch.tensor([len(f) for f in rope_inv_freqs(head_dim)]))
    assert torch.equal(bits(angles), bits(positions.float()[:, axis] * inv))
    x = torch.randn(2, positions.shape[0], 3, head_dim, generator=torch.Generator().manual_seed(1))
    freqs = torch.polar(torch.ones_like(angles), angles)
    expected = torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2)) * freqs[:, None]).flatten(3)
    assert torch.equal(bits(rope_apply(x, angles)), bits(expected))
    # per-sample angles [B, L, D/2] and a bf16 input (rotated in float32, rounded once)
    batched = torch.stack([angles, angles.flip(0)])
    got = rope_apply(x.bfloat16(), batched)
    x16 = torch.view_as_complex(x.bfloat16().float().reshape(*x.shape[:-1], -1, 2))
    expected = torch.view_as_real(x16 * torch.polar(torch.ones_like(batched), batched)[:, :, None]).flatten(3)
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected.bfloat16())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_rope_is_the_same_inside_an_autocast_region(dtype):
    # rope.py has no autocast guard (comfy-test forbids torch.autocast): every step casts explicitly and none is an
    # op autocast recasts, so a caller's autocast region must change nothing, bit for bit.
    torch.manual_seed(0)
    pos = grid_positions(3, 4, 5, frame_offset=-2.0, frame_scale=0.5)
    x = torch.randn(2, 60, 4, 64).to(dtype)
    plain = rope_apply(x, rope_angles(pos, 64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        angles = rope_angles(pos, 64)
        inside = rope_apply(x, angles)
    assert angles.dtype == torch.float32 and inside.dtype == dtype
    assert torch.equal(plain, inside)
