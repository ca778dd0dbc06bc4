"""One rotary position embedding (RoPE) over (time, row, column) for every model.

Wan2.1 / SkyReels split the head_dim/2 complex pairs of a head into three groups
[c - 2*(c//3), c//3, c//3] (c = head_dim/2) rotated by the frame, row and column index; pairs are
interleaved (channel 2i = real part, 2i+1 = imaginary part). The reference builds a 1024-row lookup
table; we compute angle = position * inv_freq directly, which gives the same float32 numbers for
integer positions and also allows what the table cannot: negative positions (V4 in-context
references), offsets and gaps (V3 shot switching puts condition frames at index 1024) and fractional
scaled positions (V4 puts audio and video on one time axis).
"""

from __future__ import annotations

import torch

__all__ = ["rope_axis_pairs", "rope_inv_freqs", "rope_angles", "rope_apply", "grid_positions"]


def rope_axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (time, row, col). head_dim 128 -> (22, 21, 21); 64 -> (12, 10, 10)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}.")
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def rope_inv_freqs(head_dim: int, theta: float = 10000.0) -> list[torch.Tensor]:
    """Per-axis inverse frequencies theta^(-2j/d_axis), computed in float64 like the reference table."""
    freqs = []
    for pairs in rope_axis_pairs(head_dim):
        dim = 2 * pairs
        freqs.append(1.0 / torch.pow(theta, torch.arange(0, dim, 2, dtype=torch.float64) / dim))
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


@torch.autocast("cuda", enabled=False)
@torch.autocast("cpu", enabled=False)
def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles for each token and complex pair.

    Args:
        positions: [..., L, 3] (time, row, col); any real values.
    Returns:
        float32 angles [..., L, head_dim // 2].
    """
    parts = []
    for axis, inv in enumerate(rope_inv_freqs(head_dim, theta)):
        # float32 like the reference's table: float32 position times float32 inverse frequency.
        pos = positions[..., axis].to(torch.float32)
        parts.append(pos.unsqueeze(-1) * inv.to(device=positions.device, dtype=torch.float32))
    return torch.cat(parts, dim=-1)


@torch.autocast("cuda", enabled=False)
@torch.autocast("cpu", enabled=False)
def rope_apply(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x.

    Args:
        x: [B, L, H, D].
        angles: [L, D/2] or [B, L, D/2] from `rope_angles` (float32).
    Returns:
        x rotated, in x's dtype. The rotation itself runs in float32 (a float32 island, as in Wan).
    """
    if angles.dim() == 2:
        angles = angles.unsqueeze(0)
    cos = torch.cos(angles).unsqueeze(2)  # [B, L, 1, D/2]
    sin = torch.sin(angles).unsqueeze(2)
    xf = x.to(torch.float32).unflatten(-1, (-1, 2))
    real, imag = xf[..., 0], xf[..., 1]
    out = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)
