"""SkyReels-V4 refiner: the base model's low-res video (+ hi-res keyframes) -> hi-res video, optionally at 2x fps.

A recipe over the one sampling loop, with the same denoiser as `sample_av` (`AVDenoiser` on a video-only layout):
the refiner (a video-only AV MMDiT with windowed attention, `models/av_mmdit.py`) sees [noisy | guide | mask],
where `conditioning.refine.refiner_condition` builds guide and mask, and the mask = 1 positions (kept regions, and
the keyframes when keep_keyframes) are reset to the guide before every call and after the last step, so they come
back unchanged. Undisclosed choices, made here and documented:

- Start: pure noise (denoise 1, default), the way the refiner is trained with flow matching; the guide enters
  through the channels. denoise < 1 starts SDEdit-style from the guide noised to the first sigma of the last
  `steps` steps of an int(steps / denoise)-step grid (ComfyUI's KSampler rule), i.e. "refine strength".
- Guidance: plain CFG on the video with the negative prompt (cfg 1 = one pass per step). Same defaults as the
  base sampler (30 steps, shift 5, cfg 5): the paper gives none for the refiner.
- Noise: `seeded_noise` of the hi-res latent with `seed` (CPU generator: same result on any device).
- fps: the model is given the OUTPUT frame rate (temporal_factor x fps); a video-only model uses it for nothing
  else than the check (it places audio tokens in an audio-video model).
- Audio is not refined: the caller passes the base audio latent through; it covers the base duration, which is
  a little more than the refined one (`conditioning.refine` has the frame / fps arithmetic), and is trimmed to
  the refined duration when decoded.
"""

from __future__ import annotations

import math

import torch

from ..conditioning.refine import refine_timing, refiner_condition
from ..errors import SkyReelsInputError
from ..sampling.guidance import AVGuidance
from ..sampling.loop import StepCallback, sample, solver_class
from ..sampling.noise import flow_noise, seeded_noise
from ..sampling.schedules import FlowSchedule, check_schedule
from ..shapes import SPACE_STRIDE, check_video_memory
from .denoisers import AVDenoiser, AVLayout
from .t2av import preview_callback
from .video import check_guidance

__all__ = ["check_refiner_model", "refine_video"]


def check_refiner_model(model) -> None:
    """SkyReelsInputError unless `model` is an AV MMDiT with a video tower (the refiner is a VIDEO_ONLY one)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None or not getattr(model_type, "has_video", False):
        raise SkyReelsInputError(
            "The refiner must be a SkyReels-V4 video model (a video-only file with windowed attention, e.g. "
            f"skyreels_v4_refiner.safetensors); got {type(model).__name__} "
            f"({getattr(model_type, 'value', 'no model type')}). Load it with the V4 refiner loader."
        )


def _check_refine_args(model, low_latent, context, steps, shift, denoise, solver, cfg, fps, height, width) -> None:
    check_refiner_model(model)
    check_schedule(steps, shift, denoise)
    solver_class(solver)
    check_guidance(cfg=cfg)
    text_dim = model.config.text_dim
    if not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[-1] != text_dim:
        shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise SkyReelsInputError(f"context must be the MLLM embedding [B, L, {text_dim}]; got {shape}.")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise SkyReelsInputError(f"fps must be a positive number (the low-res video's frame rate); got {fps!r}.")
    _, ph, pw = model.config.patch_size
    if isinstance(height, int) and isinstance(width, int) and (height % ph or width % pw):
        raise SkyReelsInputError(
            f"The target latent size {height}x{width} must be divisible by the model's patch {ph}x{pw} (pixel sizes "
            f"multiples of {SPACE_STRIDE * ph}x{SPACE_STRIDE * pw})."
        )
    if isinstance(low_latent, torch.Tensor) and low_latent.ndim == 5 and \
            low_latent.shape[1] != model.config.video_channels:
        raise SkyReelsInputError(
            f"low_latent has {low_latent.shape[1]} channels but the refiner works on "
            f"{model.config.video_channels}-channel latents (the Wan VAE's); pass the base model's latent."
        )


@torch.no_grad()
def refine_video(
    model,
    *,
    low_latent: torch.Tensor,
    context: torch.Tensor,
    negative_context: torch.Tensor | None = None,
    height: int,
    width: int,
    temporal_factor: int = 2,
    keyframes: torch.Tensor | None = None,
    keyframe_indices=(),
    keep_latent: torch.Tensor | None = None,
    keep_mask: torch.Tensor | None = None,
    keep_keyframes: bool = True,
    steps: int = 30,
    shift: float = 5.0,
    cfg: float = 5.0,
    seed: int = 0,
    solver: str = "euler",
    fps: float = 16.0,
    denoise: float = 1.0,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Refine a low-res latent to [B, 16, temporal_factor (F-1) + 1, height, width] (float32, CPU).

    model: the refiner (`load_av_dit` of a video-only file; any AV MMDiT with a video tower runs).
    low_latent: [B, 16, F, h, w] the base model's video latent. height, width: the target LATENT size (pixels / 8).
    keyframes / keyframe_indices: the base model's hi-res keyframe latents [B, 16, K, height, width] and their
    low-res latent frames (`sample_av(..., keyframes=...)`). keep_latent / keep_mask: a source hi-res video's latent
    and where to keep it (SR with kept regions, inpainting), on the refined grid. keep_keyframes: keyframes come back
    exactly (True) or only guide (False). fps: the LOW-RES video's frame rate (the output has temporal_factor x fps,
    `conditioning.refine.refine_timing`). denoise: 1 = from noise; < 1 = from the noised guide (see the module
    docstring). callback(step, total, x0) after every step (x0 with the kept positions); raising cancels.
    Everything is validated before the model runs.
    """
    _check_refine_args(model, low_latent, context, steps, shift, denoise, solver, cfg, fps, height, width)
    condition = refiner_condition(
        low_latent, height=height, width=width, temporal_factor=temporal_factor, keyframes=keyframes,
        keyframe_indices=keyframe_indices, keep_latent=keep_latent, keep_mask=keep_mask, keep_keyframes=keep_keyframes,
    )
    timing = refine_timing(low_latent.shape[2], fps, temporal_factor)
    shape = tuple(condition.latent.shape)
    check_video_memory(shape[0], timing.pixel_frames, height * SPACE_STRIDE, width * SPACE_STRIDE,
                       "The refined video")
    device = next(model.parameters()).device
    guide, mask = condition.latent.to(device), condition.mask.to(device)
    schedule = FlowSchedule.for_steps(steps, shift, denoise)
    x = seeded_noise(shape, seed).to(device)
    if denoise < 1.0:
        x = flow_noise(guide, x, schedule.start_sigma)
    layout = AVLayout(shape, None)
    denoiser = AVDenoiser(model, layout, context, negative_context, AVGuidance(cfg, 1.0), fps=timing.fps,
                          condition=(guide, mask))
    x = sample(denoiser, layout.pack(x, None), schedule, solver, preview_callback(denoiser, callback))
    video, _ = layout.unpack(x)
    return denoiser.keep(video).cpu()
