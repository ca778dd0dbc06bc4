"""Text-to-video and image-to-video sampling for the Wan2.1-family DiT (SkyReels-V2 T2V / I2V).

The reference pipelines (SkyReels-V2 `Text2VideoPipeline`, `Image2VideoPipeline`) are one loop:
noise -> for each timestep: cond/uncond velocity, CFG, scheduler step -> VAE decode. This module is that
recipe over the one sampling loop (sampling/loop.py): seeded CPU noise (the same seed gives the same video on any
device), the flow schedule (denoise < 1 for video-to-video), the Wan denoiser with CFG, and the I2V condition
built for a start image, an end image, or both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import SkyReelsInputError
from ..sampling.guidance import CFG
from ..sampling.loop import StepCallback, sample, solver_class
from ..sampling.noise import flow_noise, seeded_noise
from ..sampling.schedules import FlowSchedule
from ..shapes import TIME_STRIDE, VideoLatentShape, check_frames
from .denoisers import WanDenoiser

__all__ = ["ImageCondition", "check_guidance", "i2v_mask", "make_i2v_condition", "sample_video"]


@dataclass(frozen=True)
class ImageCondition:
    """What an I2V model sees besides the noise.

    y: [B, 20, F, h, w] = mask (4 channels, 1 = this pixel frame is given) | image latent (16 channels).
    clip_fea: [B, 257, 1280] CLIP vision tokens of the start (and end) image, or None.
    """

    y: torch.Tensor
    clip_fea: torch.Tensor | None = None


def check_guidance(**scales: float) -> None:
    """Guidance scales, by input name, must be finite numbers (a NaN passes ComfyUI's range check and would
    silently give a black video)."""
    for name, scale in scales.items():
        if not (isinstance(scale, int | float) and math.isfinite(scale)):
            raise SkyReelsInputError(
                f"{name} must be a finite number (reference: cfg 6.0 T2V, 5.0 I2V; 1 = guidance off); got {scale!r}."
            )


def i2v_mask(known_pixel_frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Wan's 4-channel I2V mask from a per-pixel-frame 'given' flag.

    known_pixel_frames: bool [F] with F = 4n+1. The first pixel frame is repeated 4 times so that every
    latent frame covers exactly 4 mask entries; those become the 4 channels.
    Returns float32 [4, (F-1)//4+1, height, width].
    """
    frames = known_pixel_frames.shape[0]
    check_frames(frames)
    flags = known_pixel_frames.to(torch.float32)
    flags = torch.cat([flags[:1].repeat(TIME_STRIDE), flags[1:]])  # [4 * latent_frames]
    mask = flags.view(-1, TIME_STRIDE).transpose(0, 1)  # [4, latent_frames]
    return mask[:, :, None, None].expand(-1, -1, height, width).contiguous()


def make_i2v_condition(
    vae,
    start_image: torch.Tensor | None,
    end_image: torch.Tensor | None,
    frames: int,
    height: int,
    width: int,
    clip_fea: torch.Tensor | None = None,
) -> ImageCondition:
    """Build the I2V condition: given frames at the start and/or end, mid-grey (0) in between.

    start_image / end_image: [1, 3, height, width] in [-1, 1] (already resized by the caller).
    """
    shape = VideoLatentShape.from_pixels(frames, height, width)
    if start_image is None and end_image is None:
        raise SkyReelsInputError("Image-to-video needs a start image, an end image, or both.")
    for name, image in (("start_image", start_image), ("end_image", end_image)):
        if image is not None and tuple(image.shape[-2:]) != (height, width):
            raise SkyReelsInputError(
                f"{name} is {image.shape[-1]}x{image.shape[-2]} but the video is {width}x{height}; "
                "resize the image to the video size first."
            )
    video = torch.zeros(1, 3, frames, height, width)
    known = torch.zeros(frames, dtype=torch.bool)
    if start_image is not None:
        video[:, :, 0] = start_image[0].float()
        known[0] = True
    if end_image is not None:
        video[:, :, -1] = end_image[0].float()
        known[-1] = True
    latent = vae.encode(video)
    mask = i2v_mask(known, shape.height, shape.width)
    y = torch.cat([mask[None].to(latent), latent], dim=1)
    return ImageCondition(y=y, clip_fea=clip_fea)


@torch.no_grad()
def sample_video(
    model,
    latent: torch.Tensor,
    *,
    positive: torch.Tensor,
    negative: torch.Tensor | None,
    steps: int,
    cfg: float,
    shift: float,
    seed: int,
    solver: str = "unipc",
    denoise: float = 1.0,
    image_cond: ImageCondition | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Sample a video latent (T2V, or I2V with `image_cond`).

    latent: [B, 16, F, h, w]; with denoise 1 only its shape matters, with denoise < 1 it is the starting
    video (video-to-video). positive / negative: text contexts [B or 1, L, text_dim].
    callback(step, total, x0) runs after every step; raising from it cancels sampling.
    Returns the denoised latent [B, 16, F, h, w] (float32, CPU).
    """
    check_guidance(cfg=cfg)
    schedule = FlowSchedule.for_steps(steps, shift, denoise)
    solver_class(solver)
    device = next(model.parameters()).device
    noise = seeded_noise(tuple(latent.shape), seed)
    x = noise if schedule.first == 0 else flow_noise(latent.float(), noise, schedule.start_sigma)
    cond = {}
    if image_cond is not None:
        cond["y"] = image_cond.y
        if image_cond.clip_fea is not None:
            cond["clip_fea"] = image_cond.clip_fea
    denoiser = WanDenoiser(model, positive, negative, CFG(cfg), **cond)
    return sample(denoiser, x.to(device), schedule, solver, callback).cpu()
