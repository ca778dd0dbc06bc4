"""SkyReels-V4's two-stage path (paper §4.5): hi-res keyframes from the base model, and the refiner's condition.

1. The base model generates the low-res latent of ALL frames together with hi-res latents of a few KEYFRAMES
   (`plan_keyframes` picks them; `Keyframes` tells the sampler what to generate, `pipelines.t2av.sample_av`).
2. The refiner (a video-only AV MMDiT with windowed attention) sees [noisy | guide | mask] at the target size.
   `refiner_condition` builds guide and mask: the low-res latents linearly interpolated to the target (bilinear in
   space; in time, with temporal_factor 2, base latent j -> target latent 2j and the midpoint in between), the
   keyframe frames replaced by the hi-res keyframe latents, and kept regions (SR with kept regions, inpainting:
   a source hi-res video pasted where keep_mask = 1) replaced by their latent.

Unlike the base model's tasks (conditioning/v4.py), the refiner's condition latent is NON-zero where mask = 0:
it is the guide everywhere, and the mask says only where the output must equal it exactly (mask = 1: kept
regions, and the keyframes when keep_keyframes). The sampler's denoiser resets mask = 1 positions to the
condition latent at every step, so they come back unchanged.

Frame / fps arithmetic (Wan VAE: latent frame j >= 1 covers pixel frames 4j-3 .. 4j): a base video of F latent
frames has 4(F-1)+1 pixel frames at `fps`. The x2 refiner makes F' = 2(F-1)+1 latent frames = 8(F-1)+1 pixel
frames at 2 fps. The last pixel frame of base latent j (frame 4j, at 4j / fps s) and of refined latent 2j (frame
8j, at 8j / (2 fps) s) are the same instant, so the two timelines align; the refined clip lasts
(8(F-1)+1) / (2 fps) s, half a base frame (1 / (2 fps) s) less than the base's (4(F-1)+1) / fps. The audio is not
refined: the base audio latent covers the base duration, a little more than the refined one, and is decoded and
trimmed to the refined duration (`refine_timing` gives the frames and fps). E.g. 81 frames at 16 fps (F = 21,
5.06 s) -> 161 frames at 32 fps (F' = 41, 5.03 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import SkyReelsInputError
from ..shapes import SIZE_MULTIPLE, SPACE_STRIDE, pixel_frames
from .v4 import VideoCondition

__all__ = [
    "TEMPORAL_FACTORS",
    "Keyframes",
    "RefineTiming",
    "keyframe_condition",
    "plan_keyframes",
    "refine_timing",
    "refiner_condition",
    "upsample_guide",
]

TEMPORAL_FACTORS = (1, 2)
_LATENT_MULTIPLE = SIZE_MULTIPLE // SPACE_STRIDE  # the DiT's 2x2 patch, in latent cells


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- keyframes in the base model ---------------------------------------------------------------------------------


def plan_keyframes(num_latent_frames: int, count: int) -> tuple[int, ...]:
    """`count` low-res latent frame indices, evenly spaced and including the first and the last (count 1: the
    first; 0: none). Rounds half up, so the indices are distinct and increasing. 21 frames, 5 -> (0, 5, 10, 15, 20).
    """
    if not _is_int(num_latent_frames) or num_latent_frames < 1:
        raise SkyReelsInputError(f"num_latent_frames must be a whole number >= 1; got {num_latent_frames!r}.")
    if not _is_int(count) or not 0 <= count <= num_latent_frames:
        nearest = min(max(count, 0), num_latent_frames) if _is_int(count) else 0
        raise SkyReelsInputError(
            f"keyframe count must be a whole number from 0 to the {num_latent_frames} latent frames (at most one "
            f"keyframe per latent frame); got {count!r}. Nearest valid value: {nearest}."
        )
    if count <= 1:
        return tuple(range(count))
    span, gaps = num_latent_frames - 1, count - 1
    return tuple((2 * i * span + gaps) // (2 * gaps) for i in range(count))


@dataclass(frozen=True)
class Keyframes:
    """Hi-res keyframes the base model generates together with the low-res video (paper §4.5).

    indices: the low-res latent frame of each keyframe (`plan_keyframes`); keyframe k is latent frame indices[k] of
        the hi-res video (the refiner pastes it there).
    height, width: the hi-res LATENT size (pixels / 8; multiples of 2, at least the low-res latent size).
    condition: what is given at hi-res over the K keyframes (`keyframe_condition`; e.g. the I2V start image when
        frame 0 is a keyframe): latent [B, 16, K, H, W] and mask [B, 1, K, H, W] (1 = keep); None = nothing kept.
    """

    indices: tuple[int, ...]
    height: int
    width: int
    condition: VideoCondition | None = None

    def shape(self, batch: int, channels: int = 16) -> tuple[int, int, int, int, int]:
        return (batch, channels, len(self.indices), self.height, self.width)

    def check(self, num_latent_frames: int, low_height: int, low_width: int, batch: int) -> None:
        """SkyReelsInputError unless the keyframes fit a low-res video of this many latent frames and this size."""
        _check_indices(self.indices, num_latent_frames, "keyframes.indices")
        _check_target_size(self.height, self.width, low_height, low_width, "keyframes")
        cond = self.condition
        want = self.shape(batch)
        if cond is not None and (tuple(cond.latent.shape) != want or tuple(cond.mask.shape) != (*want[:1], 1,
                                                                                                  *want[2:])):
            raise SkyReelsInputError(
                f"The keyframe condition is latent {tuple(cond.latent.shape)} / mask {tuple(cond.mask.shape)} but "
                f"the keyframes are {want}; build it with keyframe_condition(hi-res condition, indices)."
            )


def keyframe_condition(condition: VideoCondition, indices) -> VideoCondition:
    """The keyframes' part of a hi-res condition built for ALL frames (e.g. `build_task_condition` at the hi-res
    shape): latent [B, 16, F, H, W] / mask [B, 1, F, H, W] -> frames `indices` ([B, 16, K, H, W] / [B, 1, K, H, W])."""
    _check_indices(tuple(indices), condition.latent.shape[2], "keyframe indices")
    index = torch.tensor(list(indices), dtype=torch.long, device=condition.latent.device)
    return VideoCondition(condition.latent.index_select(2, index), condition.mask.index_select(2, index))


def _check_indices(indices: tuple, num_latent_frames: int, what: str) -> None:
    if any(not _is_int(i) for i in indices) or any(not 0 <= i < num_latent_frames for i in indices) or \
            len(set(indices)) != len(indices):
        raise SkyReelsInputError(
            f"{what} must be distinct latent frame indices from 0 to {num_latent_frames - 1} (the low-res video has "
            f"{num_latent_frames} latent frames; plan_keyframes picks evenly spaced ones); got {indices}."
        )


def _check_target_size(height, width, low_height: int, low_width: int, what: str) -> None:
    for name, value, low in (("height", height, low_height), ("width", width, low_width)):
        if not _is_int(value) or value < low or value % _LATENT_MULTIPLE:
            nearest = max(low, _LATENT_MULTIPLE * math.ceil(low / _LATENT_MULTIPLE))
            raise SkyReelsInputError(
                f"The {what} latent {name} must be a multiple of {_LATENT_MULTIPLE} (pixels: of {SIZE_MULTIPLE}) and "
                f"at least the low-res latent {name} {low}; got {value!r}. Nearest valid value: {nearest} "
                f"({nearest * SPACE_STRIDE} pixels)."
            )


# -- the refiner's condition -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefineTiming:
    """The refined video's latent frames, pixel frames and frame rate (see the module docstring)."""

    latent_frames: int
    pixel_frames: int
    fps: float


def refine_timing(num_latent_frames: int, fps: float, temporal_factor: int = 2) -> RefineTiming:
    """F base latent frames at `fps` -> temporal_factor (F - 1) + 1 latent frames at temporal_factor * fps."""
    _check_factor(temporal_factor)
    if not _is_int(num_latent_frames) or num_latent_frames < 1:
        raise SkyReelsInputError(f"The low-res video must have at least 1 latent frame; got {num_latent_frames!r}.")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise SkyReelsInputError(f"fps must be a positive number (the low-res video's frame rate); got {fps!r}.")
    frames = temporal_factor * (num_latent_frames - 1) + 1
    return RefineTiming(frames, pixel_frames(frames), float(fps) * temporal_factor)


def _check_factor(temporal_factor) -> None:
    if temporal_factor not in TEMPORAL_FACTORS or isinstance(temporal_factor, bool):
        raise SkyReelsInputError(
            f"temporal_factor must be 1 (same frame rate) or 2 (double the frame rate); got {temporal_factor!r}."
        )


def upsample_guide(low_latent: torch.Tensor, height: int, width: int, temporal_factor: int = 2) -> torch.Tensor:
    """[B, C, F, h, w] -> float32 [B, C, temporal_factor (F-1) + 1, height, width]: bilinear in space
    (align_corners False, no antialiasing), then linear in time (factor 2: target 2j = base j, 2j+1 = the mean of
    base j and j+1)."""
    x = low_latent.float()
    batch, channels, frames, h, w = x.shape
    if (h, w) != (height, width):
        x = x.transpose(1, 2).reshape(batch * frames, channels, h, w)
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        x = x.reshape(batch, frames, channels, height, width).transpose(1, 2)
    if temporal_factor == 1 or frames == 1:
        return x.contiguous()
    out = x.new_empty(batch, channels, 2 * frames - 1, height, width)
    out[:, :, 0::2] = x
    out[:, :, 1::2] = 0.5 * (x[:, :, :-1] + x[:, :, 1:])
    return out


def refiner_condition(
    low_latent: torch.Tensor,
    *,
    height: int,
    width: int,
    temporal_factor: int = 2,
    keyframes: torch.Tensor | None = None,
    keyframe_indices=(),
    keep_latent: torch.Tensor | None = None,
    keep_mask: torch.Tensor | None = None,
    keep_keyframes: bool = True,
) -> VideoCondition:
    """The refiner's [guide | mask] (float32, CPU unless the inputs are elsewhere).

    Args:
        low_latent: [B, C, F, h, w] the base model's low-res latent.
        height, width: the target LATENT size (pixels / 8), multiples of 2, at least h and w.
        temporal_factor: 1, or 2 for twice the frame rate (F' = 2 (F - 1) + 1 latent frames).
        keyframes: [B, C, K, height, width] hi-res keyframe latents of the base model, or None.
        keyframe_indices: K low-res latent frame indices (keyframe k replaces target frame temporal_factor * index).
        keep_latent: [B or 1, C, F', height, width] latent of a source hi-res video, pasted where keep_mask = 1.
        keep_mask: [B or 1, 1, F', height, width] in 0..1, 1 = keep (binarised at 0.5, as the sampler does).
        keep_keyframes: mask = 1 on the keyframe frames (the output keeps them exactly); False: they only guide.
    Returns:
        VideoCondition(latent = guide [B, C, F', height, width], mask [B, 1, F', height, width]).
    """
    indices = _check_refiner_inputs(low_latent, height, width, temporal_factor, keyframes, keyframe_indices,
                                    keep_latent, keep_mask, keep_keyframes)
    guide = upsample_guide(low_latent, height, width, temporal_factor)
    mask = torch.zeros_like(guide[:, :1])
    if keyframes is not None:
        target = [temporal_factor * i for i in indices]
        guide[:, :, target] = keyframes.to(guide)
        if keep_keyframes:
            mask[:, :, target] = 1.0
    if keep_mask is not None:
        keep = (keep_mask.to(guide) > 0.5).expand_as(mask)
        guide = torch.where(keep, keep_latent.to(guide), guide)
        mask = torch.maximum(mask, keep.to(mask))
    return VideoCondition(latent=guide, mask=mask)


def _check_refiner_inputs(low, height, width, temporal_factor, keyframes, keyframe_indices, keep_latent, keep_mask,
                          keep_keyframes) -> tuple[int, ...]:
    """Validate `refiner_condition`'s inputs (before any work); returns the keyframe indices as a tuple."""
    if not isinstance(low, torch.Tensor) or low.ndim != 5 or min(low.shape) < 1:
        shape = tuple(low.shape) if isinstance(low, torch.Tensor) else type(low).__name__
        raise SkyReelsInputError(f"low_latent must be the base model's latent [B, 16, F, h, w]; got {shape}.")
    _check_factor(temporal_factor)
    batch, channels, frames, low_h, low_w = low.shape
    _check_target_size(height, width, low_h, low_w, "target")
    indices = tuple(keyframe_indices)
    if keyframes is None:
        if indices:
            raise SkyReelsInputError(f"keyframe_indices {indices} were given without the keyframe latents.")
    else:
        want = (batch, channels, len(indices), height, width)
        if not isinstance(keyframes, torch.Tensor) or tuple(keyframes.shape) != want:
            shape = tuple(keyframes.shape) if isinstance(keyframes, torch.Tensor) else type(keyframes).__name__
            raise SkyReelsInputError(
                f"keyframes must be [B, C, K, height, width] = {want} (one hi-res latent per keyframe index, at the "
                f"target size); got {shape}. Generate them at the refiner's size, or leave them out."
            )
        _check_indices(indices, frames, "keyframe_indices")
    if not isinstance(keep_keyframes, bool):
        raise SkyReelsInputError(f"keep_keyframes must be True or False; got {keep_keyframes!r}.")
    if (keep_latent is None) != (keep_mask is None):
        raise SkyReelsInputError("keep_latent and keep_mask go together: give both (source video latent + where to "
                                 "keep it) or neither.")
    if keep_latent is not None:
        target_frames = temporal_factor * (frames - 1) + 1
        for name, value, ch in (("keep_latent", keep_latent, channels), ("keep_mask", keep_mask, 1)):
            want = (ch, target_frames, height, width)
            if not isinstance(value, torch.Tensor) or value.ndim != 5 or value.shape[0] not in (1, batch) or \
                    tuple(value.shape[1:]) != want:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise SkyReelsInputError(
                    f"{name} must be [{batch} or 1, {ch}, {target_frames}, {height}, {width}] (the refined video's "
                    f"latent grid: {target_frames} = {temporal_factor} x ({frames} - 1) + 1 frames); got {shape}."
                )
        if not bool(((keep_mask >= 0) & (keep_mask <= 1)).all()):
            raise SkyReelsInputError("keep_mask values must lie in 0..1 (1 = keep the source video there).")
    return indices
