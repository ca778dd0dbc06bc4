"""Noise: the seeded starting noise of every pipeline and the forward flow process."""

from __future__ import annotations

import torch

__all__ = ["flow_noise", "seeded_noise"]


def seeded_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """float32 standard normal noise from a CPU generator, so a seed means the same video on any device."""
    generator = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def flow_noise(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """Forward flow process: (1 - sigma) * x0 + sigma * noise (sigma: float, or a tensor broadcastable to x0)."""
    return x0 * (1.0 - sigma) + noise * sigma
