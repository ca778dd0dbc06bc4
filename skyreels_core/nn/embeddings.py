"""Sinusoidal embeddings (stateless math)."""

from __future__ import annotations

import torch

__all__ = ["sinusoidal_embedding"]


def sinusoidal_embedding(positions: torch.Tensor, dim: int = 256, *, theta: float = 10000.0) -> torch.Tensor:
    """Wan / SkyReels timestep embedding: [cos | sin] of t * theta^(-i/half), i = 0..half-1, in float64.

    Args:
        positions: [N] timesteps (int or float, 0..1000 scale for Wan).
        dim: embedding width (even); Wan's freq_dim is 256.
    Returns:
        [N, dim] float64 (float32 on devices without float64, e.g. MPS). Cosine half FIRST.
    """
    if dim % 2:
        raise ValueError(f"sinusoidal_embedding needs an even dim, got {dim}.")
    half = dim // 2
    dtype = torch.float32 if positions.device.type == "mps" else torch.float64
    pos = positions.to(dtype)
    freqs = torch.pow(theta, -torch.arange(half, dtype=dtype, device=pos.device).div(half))
    args = torch.outer(pos, freqs)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
