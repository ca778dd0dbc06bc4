"""SkyReels-V4 video conditions: the paper's mask recipes (SkyReels-V4 §3.2) and in-context references (§3.3).

The video tower sees [noisy latent (16) | condition latent (16) | mask (1)] on channels. `VideoCondition` holds
the last two: `mask` is 1 where the condition is kept (given) and 0 where the model generates; the condition
latent holds the Wan-VAE latent of the given content at mask = 1 and ZEROS elsewhere (our choice; the paper's
OCR text does not say what fills the rest).

Inputs are ComfyUI tensors: IMAGE [N, H, W, C] in 0..1 (one image or a clip of N frames), MASK [N, H, W] in 0..1
where, as everywhere in ComfyUI, 1 = the region to change/regenerate; so keep = 1 - mask after resampling.
Images that are not the target size are centre-cropped to the target aspect and resized, references are fitted
inside the target and padded with mid-grey (conditioning/images.py: one fit, one filter for every model).

Pixel frame -> latent frame (Wan VAE, 4x causal time compression): latent frame 0 covers pixel frame 0 alone,
latent frame j >= 1 covers pixel frames 4j-3 .. 4j. A latent frame is KEPT only when every pixel frame it covers
is given (extension: the first k pixel frames keep latent_frames(k) = (k-1)//4 + 1 latent frames).
Keyframe images (I2V, start/end) are encoded as single images: each becomes one latent frame (the first or last).

Masks are resampled conservatively so a regenerated pixel is never kept: a pixel counts as "regenerate" when its
mask value is > threshold (default 0: any non-zero value), time uses the max over the covered pixel frames, space
uses adaptive max pooling onto the latent grid (a latent cell is regenerated when any pixel overlapping it is).

Audio is never inpainted (the paper): for edit / inpaint tasks the audio is generated fresh and follows the edited
video through the audio<->video cross-attention, so the pipeline takes no source audio for them. Audio enters only
as an in-context reference (`encode_audio_reference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import SkyReelsInputError
from ..shapes import TIME_STRIDE, VideoLatentShape, check_audio_seconds, check_frames, latent_frames, pixel_frames
from .images import center_crop_box, check_image, fit_crop, fit_pad, pixels_to_video

__all__ = [
    "VideoCondition",
    "condition_t2v",
    "condition_i2v",
    "condition_extend",
    "condition_start_end",
    "condition_inpaint",
    "TASKS",
    "build_condition",
    "build_task_condition",
    "latent_keep_mask",
    "encode_references",
    "check_audio",
    "encode_audio",
]


@dataclass(frozen=True)
class VideoCondition:
    """latent: [B, 16, F, h, w] condition latent (zeros where mask = 0); mask: [B, 1, F, h, w], 1 = keep."""

    latent: torch.Tensor
    mask: torch.Tensor

    def input_channels(self) -> torch.Tensor:
        """[B, 17, F, h, w] = condition latent | mask (the part of the 33-channel input after the noisy latent)."""
        return torch.cat([self.latent, self.mask.to(self.latent)], dim=1)


def _encode(vae, video: torch.Tensor) -> torch.Tensor:
    """[1, 3, F, H, W] in [-1, 1] -> normalised Wan latent [1, 16, (F-1)//4+1, H/8, W/8] (float32, CPU)."""
    return vae.encode(video).float().cpu()


def _empty(shape: VideoLatentShape) -> tuple[torch.Tensor, torch.Tensor]:
    latent = torch.zeros(1, shape.channels, shape.frames, shape.height, shape.width)
    return latent, torch.zeros(1, 1, shape.frames, shape.height, shape.width)


def _finish(latent: torch.Tensor, mask: torch.Tensor, shape: VideoLatentShape) -> VideoCondition:
    """Zero the latent outside the kept region and repeat to the batch size."""
    latent = latent * mask
    size = (shape.batch, -1, -1, -1, -1)
    return VideoCondition(latent=latent.expand(size).contiguous(), mask=mask.expand(size).contiguous())


# -- the mask recipes -------------------------------------------------------------------------------------------


def condition_t2v(shape: VideoLatentShape) -> VideoCondition:
    """Text-to-video: nothing kept (mask 0, latent 0)."""
    return _finish(*_empty(shape), shape)


def _keyframe(vae, image: torch.Tensor, shape: VideoLatentShape, what: str) -> torch.Tensor:
    """One IMAGE (first image of the batch) -> its single-frame latent [1, 16, 1, h, w]."""
    image = check_image(image, what)[:1]
    height, width = shape.pixel_size
    return _encode(vae, pixels_to_video(fit_crop(image, height, width)))


def condition_i2v(vae, image: torch.Tensor, shape: VideoLatentShape) -> VideoCondition:
    """Image-to-video: latent frame 0 = the image's latent, mask[t = 0] = 1."""
    latent, mask = _empty(shape)
    latent[:, :, :1] = _keyframe(vae, image, shape, "The start image")
    mask[:, :, 0] = 1.0
    return _finish(latent, mask, shape)


def condition_start_end(vae, start: torch.Tensor | None, end: torch.Tensor | None, shape: VideoLatentShape):
    """Start/end interpolation: mask[0] = 1 (start image) and mask[F-1] = 1 (end image, encoded as an image).

    Either image may be None (end only = "generate towards this last frame"); at least one is needed.
    A 1-latent-frame video with both images cannot be built (both would be frame 0).
    """
    if start is None and end is None:
        raise SkyReelsInputError("Start/end conditioning needs a start image, an end image, or both.")
    if start is not None and end is not None and shape.frames < 2:
        raise SkyReelsInputError(
            f"A video of {shape.pixel_frames} frame(s) cannot hold both a start and an end image; "
            f"use at least {TIME_STRIDE + 1} frames."
        )
    latent, mask = _empty(shape)
    if start is not None:
        latent[:, :, :1] = _keyframe(vae, start, shape, "The start image")
        mask[:, :, 0] = 1.0
    if end is not None:
        latent[:, :, -1:] = _keyframe(vae, end, shape, "The end image")
        mask[:, :, -1] = 1.0
    return _finish(latent, mask, shape)


def condition_extend(vae, video_frames: torch.Tensor, shape: VideoLatentShape) -> VideoCondition:
    """Extension: the given first k pixel frames keep latent frames 0 .. (k-1)//4 (only fully given ones).

    video_frames: IMAGE [k, H, W, 3], 1 <= k < target frames. Only the first 4 * ((k-1)//4) + 1 frames are
    encoded (the VAE is causal, so their latents equal those of the same frames inside a longer video); the
    remaining (k-1) % 4 frames cannot fill a whole latent frame and are dropped.
    """
    frames = check_image(video_frames, "The video to extend")
    k = frames.shape[0]
    if k >= shape.pixel_frames:
        raise SkyReelsInputError(
            f"The video to extend has {k} frames but the output has only {shape.pixel_frames}; "
            f"ask for more frames (e.g. {shape.pixel_frames + 4 * latent_frames(k)}) or give fewer frames."
        )
    kept = latent_frames(k)
    height, width = shape.pixel_size
    latent, mask = _empty(shape)
    latent[:, :, :kept] = _encode(vae, pixels_to_video(fit_crop(frames[: pixel_frames(kept)], height, width)))
    mask[:, :, :kept] = 1.0
    return _finish(latent, mask, shape)


def _check_mask(mask: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """MASK [N, H, W] or [H, W] -> float [frames, H, W]; N must be frames or 1 (static), H, W those of the video."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise SkyReelsInputError(f"The mask must be a MASK tensor [frames, H, W] with values 0..1; got {shape}.")
    mask = mask if mask.ndim == 3 else mask[None]
    if mask.shape[0] not in (1, frames) or tuple(mask.shape[1:]) != (height, width):
        raise SkyReelsInputError(
            f"The mask is {tuple(mask.shape)} but the video is {frames} frames of {width}x{height}; expected "
            f"[{frames}, {height}, {width}] (one mask per frame) or [1, {height}, {width}] (one static mask)."
        )
    return mask.float().expand(frames, -1, -1)


def latent_keep_mask(pixel_mask: torch.Tensor, shape: VideoLatentShape, threshold: float = 0.0) -> torch.Tensor:
    """ComfyUI MASK [F, H, W] (1 = regenerate; F = 4n+1 pixel frames) -> keep mask [1, 1, T, h, w] (1 = keep).

    Conservative: regenerate where mask > threshold; the image is centre-cropped to the target aspect like the
    video, then adaptive max pooling onto the latent grid; a latent frame takes the max over its pixel frames.
    """
    frames = pixel_mask.shape[0]
    check_frames(frames, "mask frames")
    if latent_frames(frames) != shape.frames:
        raise SkyReelsInputError(
            f"The mask has {frames} frames but the video has {shape.pixel_frames}; give one mask per frame."
        )
    height, width = shape.pixel_size
    top, left, h, w = center_crop_box(pixel_mask.shape[1], pixel_mask.shape[2], height, width)
    regen = (pixel_mask[:, top : top + h, left : left + w].float() > threshold).float()
    regen = F.adaptive_max_pool2d(regen[:, None], (shape.height, shape.width))[:, 0]  # [F, h, w]
    regen = torch.cat([regen[:1].expand(TIME_STRIDE, -1, -1), regen[1:]])  # frame 0 alone fills latent frame 0
    regen = regen.view(shape.frames, TIME_STRIDE, shape.height, shape.width).amax(dim=1)
    return (1.0 - regen)[None, None]


def condition_inpaint(
    vae, video: torch.Tensor, pixel_mask: torch.Tensor, shape: VideoLatentShape, threshold: float = 0.0
) -> VideoCondition:
    """Spatio-temporal inpainting / editing: keep the video where the MASK is 0, regenerate where it is > threshold.

    video: IMAGE [F, H, W, 3] with F = the output's pixel frames; pixel_mask: MASK [F or 1, H, W] (1 = regenerate).
    The whole source video is encoded; latents of regenerated cells are zeroed by the mask.
    """
    frames = check_image(video, "The video to edit")
    if frames.shape[0] != shape.pixel_frames:
        raise SkyReelsInputError(
            f"The video to edit has {frames.shape[0]} frames but the output has {shape.pixel_frames}; "
            f"they must match (set frames to {frames.shape[0]} if that is 4n+1, else trim the video)."
        )
    mask = _check_mask(pixel_mask, frames.shape[0], frames.shape[1], frames.shape[2])
    keep = latent_keep_mask(mask, shape, threshold)
    height, width = shape.pixel_size
    latent = _encode(vae, pixels_to_video(fit_crop(frames, height, width)))
    return _finish(latent, keep, shape)


def build_condition(
    vae,
    shape: VideoLatentShape,
    *,
    image: torch.Tensor | None = None,
    end_image: torch.Tensor | None = None,
    video: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> VideoCondition:
    """Pick the recipe from the inputs: video + mask -> inpaint/edit; video -> extension; images -> I2V or
    start/end; nothing -> T2V. Mixing a video with images is rejected (the paper's modes are exclusive)."""
    if mask is not None and video is None:
        raise SkyReelsInputError("A mask needs the video it applies to (inpainting / editing).")
    if video is not None and (image is not None or end_image is not None):
        raise SkyReelsInputError("Give either a video (extension / editing) or start/end images, not both.")
    if video is not None:
        return condition_inpaint(vae, video, mask, shape) if mask is not None else condition_extend(vae, video, shape)
    if end_image is not None:
        return condition_start_end(vae, image, end_image, shape)
    if image is not None:
        return condition_i2v(vae, image, shape)
    return condition_t2v(shape)


TASKS = ("t2v", "i2v", "extend", "start_end", "inpaint_edit")
_TASK_NEEDS = {"i2v": ("start_image",), "extend": ("video",), "inpaint_edit": ("video", "mask")}


def build_task_condition(vae, shape: VideoLatentShape, task: str, *, start_image=None, end_image=None, video=None,
                         mask=None, extend_frames: int = 0) -> VideoCondition:
    """The condition of a named task (inputs the task does not use are ignored); `build_condition` builds it.

    extend: the last `extend_frames` frames of `video` open the output (0 = the whole video).
    """
    if task not in TASKS:
        raise SkyReelsInputError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    given = {"start_image": start_image, "end_image": end_image, "video": video, "mask": mask}
    missing = [name for name in _TASK_NEEDS.get(task, ()) if given[name] is None]
    if missing:
        raise SkyReelsInputError(f"task '{task}' needs {' and '.join(missing)}: connect "
                                 f"{'them' if len(missing) > 1 else 'it'}, or pick another task (t2v needs no input).")
    if task == "start_end" and start_image is None and end_image is None:
        raise SkyReelsInputError("task 'start_end' needs start_image, end_image or both: connect them, or pick another "
                                 "task (t2v needs no input).")
    if task == "i2v":
        return build_condition(vae, shape, image=start_image)
    if task == "start_end":
        return build_condition(vae, shape, image=start_image, end_image=end_image)
    if task == "extend":
        return build_condition(vae, shape, video=_last_frames(video, extend_frames))
    if task == "inpaint_edit":
        return build_condition(vae, shape, video=video, mask=mask)
    return build_condition(vae, shape)


def _last_frames(video: torch.Tensor, count: int) -> torch.Tensor:
    if count > video.shape[0]:
        raise SkyReelsInputError(f"extend_frames is {count} but the video has only {video.shape[0]} frames; "
                                 f"use at most {video.shape[0]} (0 = the whole video).")
    return video if count == 0 else video[-count:]


# -- in-context references --------------------------------------------------------------------------------------


def encode_references(
    vae, images: list[torch.Tensor] | None, clip: torch.Tensor | None, shape: VideoLatentShape
) -> torch.Tensor | None:
    """Reference images and/or one reference clip -> [B, 16, F_r, h, w] (None when there is nothing).

    images: list of IMAGE tensors [N, H, W, 3]; every image of every tensor is one latent frame (encoded alone).
    clip: IMAGE frames [K, H, W, 3] with K = 4n+1, encoded as a video ((K-1)//4 + 1 latent frames).
    Everything is fitted inside the target size with grey padding. Time order: images (in order), then the clip;
    the model places them at temporal positions -F_r .. -1.
    """
    height, width = shape.pixel_size
    parts = []
    for n, image in enumerate(images or []):
        for frame in check_image(image, f"Reference image {n + 1}"):
            parts.append(_encode(vae, pixels_to_video(fit_pad(frame[None], height, width))))
    if clip is not None:
        frames = check_image(clip, "The reference clip")
        check_frames(frames.shape[0], "reference clip frames")
        parts.append(_encode(vae, pixels_to_video(fit_pad(frames, height, width))))
    if not parts:
        return None
    refs = torch.cat(parts, dim=2)
    return refs.expand(shape.batch, -1, -1, -1, -1).contiguous()


def check_audio(audio, what: str = "audio") -> dict:
    """Raise SkyReelsInputError unless `audio` is a ComfyUI AUDIO dict with a [B, C, T] waveform (T > 0)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise SkyReelsInputError(f"The {what} must be an AUDIO value (Load Audio, Get Video Components, ...).")
    waveform = audio["waveform"]
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3 or waveform.shape[-1] == 0:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise SkyReelsInputError(f"The {what} waveform must be [batch, channels, samples] with samples > 0; got "
                                 f"{shape}.")
    rate = audio["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
        raise SkyReelsInputError(f"The {what} sample_rate must be a positive number of Hz; got {rate!r}.")
    check_audio_seconds(waveform.shape[-1] / rate, f"The {what}")
    return audio


def encode_audio(codec, audio: dict, what: str = "audio") -> torch.Tensor:
    """ComfyUI AUDIO {"waveform": [B, C, T], "sample_rate": int} -> raw codec latent [B, 40, T_r] (float32, CPU).

    codec: AudioCodec (mono, 44.1 kHz, 1024 samples per latent). For an in-context reference, the sampler
    normalises it with the AV model's audio statistics (`sample_av`), as it does the audio it generates.
    """
    audio = check_audio(audio, what)
    device = next(codec.parameters()).device
    return codec.encode(audio["waveform"].to(device), int(audio["sample_rate"])).float().cpu()
