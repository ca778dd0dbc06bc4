"""One rotary position embedding (RoPE) over (time, row, column) for every model.

Wan2.1 / SkyReels split the head_dim/2 complex pairs of a head into three groups
[c - 2*(c//3), c//3, c//3] (c = head_dim/2) rotated by the frame, row and column index; pairs are
interleaved (channel 2i = real part, 2i+1 = imaginary part).

Numerics follow SkyReels-V2's `rope_params` / `rope_apply` exactly: float32 inverse frequencies
1 / theta^(arange(0, d, 2) / d), float32 angles position * inv_freq, the complex64 table
polar(1, angle) built on the CPU, and a complex64 multiply. In bf16 a last-bit difference in any of them
flips roundings of the block outputs. The reference builds a 1024-row table per axis; we compute the
angle of each token's position instead, which gives the same numbers for integer positions and also allows
what the table cannot: negative positions (V4 in-context references), offsets and gaps, and fractional
scaled positions (V4 puts audio and video on one time axis).

Every step casts explicitly (float32 positions and angles, complex64 rotation) and none is an op that
autocast recasts (it touches matmul/conv/linear-like ops, not elementwise multiply, polar or complex math),
so the result is the same inside and outside an autocast region without any autocast guard
(tests/unit/test_rope_reference.py checks it under CPU autocast).
"""

from __future__ import annotations

import torch

__all__ = ["rope_axis_pairs", "rope_inv_freqs", "rope_angles", "rope_freqs", "rope_apply", "grid_positions"]


def rope_axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (time, row, col). head_dim 128 -> (22, 21, 21); 64 -> (12, 10, 10)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}.")
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def rope_inv_freqs(head_dim: int, theta: float = 10000.0) -> list[torch.Tensor]:
    """Per-axis float32 inverse frequencies theta^(-2j/d_axis) on the CPU: the reference's formula, op for op."""
    freqs = []
    for pairs in rope_axis_pairs(head_dim):
        dim = 2 * pairs
        freqs.append(1.0 / torch.pow(theta, torch.arange(0, dim, 2).to(torch.float32).div(dim)))
    return freqs


def grid_positions(
    frames: int,
    height: int,
    width: int,
    *,
    frame_offset: float = 0.0,
    frame_scale: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Positions [F*H*W, 3] for tokens in row-major (f, h, w) order.

    Frame positions are frame_offset + frame_scale * f; rows and columns start at 0.
    """
    f = torch.arange(frames, dtype=torch.float64, device=device) * frame_scale + frame_offset
    h = torch.arange(height, dtype=torch.float64, device=device)
    w = torch.arange(width, dtype=torch.float64, device=device)
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles for each token and complex pair.

    Args:
        positions: [..., L, 3] (time, row, col); any real values.
    Returns:
        float32 angles [..., L, head_dim // 2].
    """
    parts = []
    for axis, inv in enumerate(rope_inv_freqs(head_dim, theta)):
        # The reference's table outer(arange, inv_freq): float32 position times float32 inverse frequency.
        pos = positions[..., axis].to(torch.float32)
        parts.append(pos.unsqueeze(-1) * inv.to(positions.device))
    return torch.cat(parts, dim=-1)


def rope_freqs(angles: torch.Tensor) -> torch.Tensor:
    """complex64 cos(angle) + i sin(angle), same shape and device as the float32 `angles`.

    Computed by torch.polar on the CPU, as the reference builds its table: cos / sin of other devices can
    differ in the last bit. On another device only the distinct angles (a few thousand for a token grid)
    make the round trip.
    """
    if angles.device.type == "cpu":
        return torch.polar(torch.ones_like(angles), angles)
    values, index = torch.unique(angles, return_inverse=True)
    values = values.cpu()
    return torch.polar(torch.ones_like(values), values).to(angles.device)[index]


def rope_apply(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x by a complex64 multiply (a float32 island, as in Wan).

    Args:
        x: [B, L, H, D].
        angles: [L, D/2] or [B, L, D/2] from `rope_angles` (float32).
    Returns:
        x rotated, in x's dtype.
    """
    pairs = torch.view_as_complex(x.to(torch.float32).contiguous().unflatten(-1, (-1, 2)))  # [B, L, H, D/2]
    return torch.view_as_real(pairs * rope_freqs(angles).unsqueeze(-2)).flatten(-2).to(x.dtype)
