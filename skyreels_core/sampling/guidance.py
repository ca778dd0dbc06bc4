"""Classifier-free guidance on flow velocity, and the one place where velocity becomes x0.

A velocity model is `model(x [B, C, F, H, W], t, context [B, L, D], **kwargs) -> v [B, C, F, H, W]` with
t of shape [B] (one timestep per sample) or [B, F] (one per latent frame, diffusion forcing).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "VelocityDenoiser",
    "cfg_combine",
    "expand_sigma",
    "guided_velocity",
    "to_denoised",
    "velocity_to_denoised",
]

TIMESTEP_SCALE = 1000.0


def expand_sigma(sigma, x: torch.Tensor):
    """Broadcast sigma against x [B, C, F, ...]: float / 0-d as is, [B] -> [B, 1, 1, ...], [B, F] -> [B, 1, F, 1, ...]."""
    if not isinstance(sigma, torch.Tensor) or sigma.ndim == 0:
        return sigma
    sigma = sigma.to(device=x.device, dtype=x.dtype)
    if sigma.ndim == 1:
        return sigma.view(-1, *([1] * (x.ndim - 1)))
    if sigma.ndim == 2:
        return sigma.view(sigma.shape[0], 1, sigma.shape[1], *([1] * (x.ndim - 3)))
    raise ValueError(f"sigma must be a scalar, [B] or [B, F]; got shape {tuple(sigma.shape)}")


def to_denoised(x: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    """Flow matching: x0 = x - sigma * v (ComfyUI `CONST.calculate_denoised`)."""
    return x - expand_sigma(sigma, x) * v


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): uncond + scale * (cond - uncond)."""
    return uncond + scale * (cond - uncond)


def _double_kwarg(value, batch: int):
    """Repeat a per-sample model kwarg for the [cond; uncond] batch; everything else passes through."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == batch:
        return torch.cat([value, value])
    if isinstance(value, (list, tuple)) and len(value) == batch:
        return type(value)(list(value) + list(value))
    return value


def guided_velocity(
    model: Callable,
    x: torch.Tensor,
    t: torch.Tensor,
    context: torch.Tensor,
    negative_context: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    *,
    batch_cfg: bool = True,
    **model_kwargs,
) -> torch.Tensor:
    """Velocity with CFG: v_u + g * (v_c - v_u), t [B] or [B, F].

    Runs only the conditional pass when g == 1 or there is no negative context. Otherwise cond and uncond go
    through one forward of batch 2B when `batch_cfg` and the two contexts have the same shape (two forwards else).
    """
    if guidance_scale == 1.0 or negative_context is None:
        return model(x, t, context, **model_kwargs)
    if batch_cfg and negative_context.shape == context.shape:
        b = x.shape[0]
        kwargs = {k: _double_kwarg(v, b) for k, v in model_kwargs.items()}
        v = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([context, negative_context]), **kwargs)
        cond, uncond = v.chunk(2)
    else:
        cond = model(x, t, context, **model_kwargs)
        uncond = model(x, t, negative_context, **model_kwargs)
    return cfg_combine(cond, uncond, guidance_scale)


class VelocityDenoiser:
    """k-diffusion adapter: wraps a velocity model into `denoiser(x, sigma [B] or [B, F], **extra) -> x0`.

    The model is called with t = timestep_fn(sigma) (default 1000 * sigma as a float, ComfyUI's flow timestep;
    pass `lambda s: (s * 1000).long()` for the reference's truncated integers).
    """

    def __init__(
        self,
        model: Callable,
        context: torch.Tensor,
        negative_context: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        timestep_fn: Callable | None = None,
        batch_cfg: bool = True,
    ):
        self.model = model
        self.context = context
        self.negative_context = negative_context
        self.guidance_scale = guidance_scale
        self.timestep_fn = timestep_fn or (lambda s: s * TIMESTEP_SCALE)
        self.batch_cfg = batch_cfg

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **model_kwargs) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        v = guided_velocity(
            self.model,
            x,
            self.timestep_fn(sigma),
            self.context,
            self.negative_context,
            self.guidance_scale,
            batch_cfg=self.batch_cfg,
            **model_kwargs,
        )
        return to_denoised(x, v, sigma)


def velocity_to_denoised(model: Callable, context: torch.Tensor, **kwargs) -> VelocityDenoiser:
    """`VelocityDenoiser(model, context, **kwargs)`: a velocity model as a k-diffusion denoiser (x, sigma) -> x0."""
    return VelocityDenoiser(model, context, **kwargs)
