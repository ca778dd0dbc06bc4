import math

import pytest
import torch

from skyreels_core.nn import attention as attention_module
from skyreels_core.nn.attention import attention
from skyreels_core.nn.rope import grid_positions, rope_angles, rope_apply, rope_axis_pairs


def test_rope_axis_split_matches_reference():
    assert rope_axis_pairs(128) == (22, 21, 21)
    assert rope_axis_pairs(64) == (12, 10, 10)


def test_rope_integer_positions_match_reference_table():
    # The reference builds a float32 table outer(arange(1024), inv_freq) per axis; we compute directly.
    # inv_freq is the reference's float32 formula (rope_params), not a float64 one rounded.
    head_dim = 64
    pos = grid_positions(3, 4, 5)
    angles = rope_angles(pos, head_dim)
    t_pairs, h_pairs, _ = rope_axis_pairs(head_dim)
    inv_t = 1.0 / torch.pow(10000, torch.arange(0, 2 * t_pairs, 2).to(torch.float32).div(2 * t_pairs))
    table_t = torch.outer(torch.arange(1024, dtype=torch.float32), inv_t.float())
    frame_index = pos[:, 0].long()
    assert torch.equal(angles[:, :t_pairs], table_t[frame_index])


def test_rope_is_relative_and_accepts_negative_and_offset_positions():
    torch.manual_seed(0)
    q = torch.randn(1, 6, 2, 64)
    k = torch.randn(1, 6, 2, 64)
    pos = grid_positions(6, 1, 1)
    shifted = grid_positions(6, 1, 1, frame_offset=-1024.0)

    def scores(p):
        a = rope_angles(p, 64)
        return torch.einsum("blhd,bmhd->bhlm", rope_apply(q, a), rope_apply(k, a))

    assert torch.allclose(scores(pos), scores(shifted), atol=1e-3)


def test_rope_preserves_norm():
    x = torch.randn(2, 10, 3, 128)
    a = rope_angles(grid_positions(10, 1, 1, frame_scale=0.37), 128)
    assert torch.allclose(rope_apply(x, a).norm(dim=-1), x.norm(dim=-1), atol=1e-4)


def test_attention_matches_naive_and_chunking_is_exact(monkeypatch):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 37, 3, 16) for _ in range(3))
    ref = torch.softmax(torch.einsum("blhd,bmhd->bhlm", q, k) / math.sqrt(16), dim=-1)
    ref = torch.einsum("bhlm,bmhd->blhd", ref, v)
    full = attention(q, k, v)
    assert torch.allclose(full, ref, atol=1e-5)
    monkeypatch.setattr(attention_module, "CPU_SCORE_BUDGET_BYTES", 2 * 3 * 37 * 4 * 5)  # 5 query rows per chunk
    assert torch.allclose(attention(q, k, v), full, atol=1e-6)


def test_attention_rejects_unknown_backend():
    q = torch.randn(1, 2, 1, 8)
    with pytest.raises(ValueError, match="sdpa"):
        attention(q, q, q, backend="sage")
