"""Sinusoidal embeddings (stateless math)."""

from __future__ import annotations

import math

import torch

__all__ = ["diffusers_timestep_embedding", "sinusoidal_embedding"]


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


def diffusers_timestep_embedding(positions: torch.Tensor, dim: int = 256, *, theta: float = 10000.0) -> torch.Tensor:
    """The same [cos | sin] embedding as diffusers computes it (`Timesteps(flip_sin_to_cos=True, shift 0)`):
    float32 throughout, frequencies exp(-ln(theta) i / half). Models converted to diffusers (SkyReels-V3 R2V)
    were trained and released with this rounding, the Wan-native ones with the float64 `sinusoidal_embedding`.

    Returns [N, dim] float32.
    """
    if dim % 2:
        raise ValueError(f"diffusers_timestep_embedding needs an even dim, got {dim}.")
    half = dim // 2
    exponent = -math.log(theta) * torch.arange(half, dtype=torch.float32, device=positions.device) / half
    args = positions.float()[:, None] * torch.exp(exponent)[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
