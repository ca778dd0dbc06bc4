"""Normalisation layers shared by the DiTs: RMSNorm over the full width, and LayerNorm as a float32 island.

Precision follows SkyReels-V2 / Wan2.1: statistics are always computed in float32. `rms_norm` also multiplies
by its weight in float32 and RETURNS float32 (the reference keeps the float32 result and lets the next op,
RoPE then attention, round it once). `layer_norm` returns the input dtype, so a bf16 residual stream gives a
bf16 normalised tensor exactly like `nn.LayerNorm` on bf16 does.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["rms_norm", "RMSNorm", "layer_norm", "FP32LayerNorm"]


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight over the last dim, all in float32.

    Args:
        x: [..., D] any float dtype.
        weight: [D] or None.
    Returns:
        float32 [..., D].
    """
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return x if weight is None else x * weight.float()


class RMSNorm(nn.Module):
    """RMSNorm with a learned scale `weight` [D] (Wan's norm_q / norm_k: over ALL heads, not per head).

    forward: [..., D] -> float32 [..., D].
    """

    def __init__(self, dim: int, eps: float = 1e-6, *, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def layer_norm(
    x: torch.Tensor,
    eps: float,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """LayerNorm over the last dim computed in float32, returned in x's dtype.

    Args:
        x: [..., D]; weight, bias: optional [D] (any float dtype; used in float32).
    """
    w = None if weight is None else weight.float()
    b = None if bias is None else bias.float()
    return F.layer_norm(x.float(), (x.shape[-1],), w, b, eps).to(x.dtype)


class FP32LayerNorm(nn.Module):
    """Parameter-free LayerNorm (Wan's norm1 / norm2 / head.norm): float32 statistics, input dtype out.

    forward: [..., D] -> [..., D].
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, elementwise_affine=False"
