"""adaLN modulation for DiT blocks, per sample OR per group of tokens (per latent frame).

A modulation tensor has shape [B, G, D]. G = 1 modulates every token of a sample alike (T2V / I2V);
G = F modulates each latent frame's tokens with its own vector (diffusion forcing: one timestep per
frame). Tokens are in row-major (f, h, w) order, so group g is the contiguous run of L / G tokens
[g * L/G, (g+1) * L/G). The helpers view x as [B, G, L/G, D] and broadcast, so the per-token table
[B, 6, L, D] that the reference builds (6.3 GB at 14B-540P) never exists.

All arithmetic is float32 (the reference's `mul_add` / `mul_add_add`), results are float32.
"""

from __future__ import annotations

import torch

__all__ = ["modulation_chunks", "modulate", "gated_residual"]


def modulation_chunks(table: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Add a block's learned table to the time embedding and split it.

    Args:
        table: [1, N, D] learned modulation (Wan `modulation`, N = 6 per block, 2 for the head).
        emb: [B, N, G, D] float32 projected time embedding.
    Returns:
        N float32 tensors [B, G, D] (Wan order: shift, scale, gate, shift, scale, gate).
    """
    return (table.float().unsqueeze(2) + emb).unbind(1)


def _grouped(x: torch.Tensor, groups: int) -> torch.Tensor:
    if x.shape[1] % groups:
        raise ValueError(f"{x.shape[1]} tokens cannot be split into {groups} equal modulation groups.")
    return x.float().unflatten(1, (groups, -1))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift, per token group.

    Args:
        x: [B, L, D] any float dtype.
        shift, scale: [B, G, D] with L % G == 0 (G = 1 or frames).
    Returns:
        float32 [B, L, D].
    """
    xg = _grouped(x, shift.shape[1])
    return (xg * (1 + scale.unsqueeze(2)) + shift.unsqueeze(2)).flatten(1, 2)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """x + y * gate, per token group.

    Args:
        x, y: [B, L, D] (residual stream and branch output).
        gate: [B, G, D] with L % G == 0.
    Returns:
        float32 [B, L, D].
    """
    groups = gate.shape[1]
    return (_grouped(x, groups) + _grouped(y, groups) * gate.unsqueeze(2)).flatten(1, 2)
