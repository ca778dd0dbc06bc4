"""What a diffusion-forcing video starts from and ends on: a start image, a clip to extend, the latents of another DF
run, an end image; and the tail a run hands to the next one.

Everything the user can get wrong is checked by `df_start` from shapes alone, before any VAE or model call.
Latents here are normalised Wan latents [1, 16, F, h, w] (the DiT's space); the node layer converts LATENT values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import SkyReelsInputError
from ..shapes import SPACE_STRIDE, latent_frames, pixel_frames
from .images import fit_crop, pixels_to_video

__all__ = ["DFStart", "df_end_latent", "df_prefix_latents", "df_start", "df_tail"]

LATENT_CHANNELS = 16
Encode = Callable[[torch.Tensor], torch.Tensor]  # pixels [1, 3, F, H, W] in [-1, 1] -> latents [1, 16, F', h, w]


@dataclass(frozen=True)
class DFStart:
    """`count` given latents (0 = text-to-video) and their `source`; `dropped_frames` leading clip frames are
    dropped so the clip is 4n+1 frames long."""

    count: int
    source: str | None  # "start_image" | "extend_video" | "extend_latent" | None
    dropped_frames: int = 0


def _image_size(images: torch.Tensor) -> str:
    return f"{images.shape[2]}x{images.shape[1]}" if images.ndim == 4 else f"shape {list(images.shape)}"


def _check_extend_latent(samples: torch.Tensor, width: int, height: int) -> None:
    expected = (height // SPACE_STRIDE, width // SPACE_STRIDE)
    if samples.ndim != 5 or samples.shape[0] != 1 or samples.shape[1] != LATENT_CHANNELS \
            or tuple(samples.shape[3:]) != expected:
        raise SkyReelsInputError(
            f"extend_latent must be one Wan2.1 video latent [1, 16, F, {expected[0]}, {expected[1]}] (a DF "
            f"sampler's latent or tail at {width}x{height}); got {list(samples.shape)}. Use the same "
            "width and height as the sampler it comes from."
        )


def df_start(width: int, height: int, start_image=None, extend_video=None, extend_latent=None) -> DFStart:
    """Check the optional start inputs against the video size (no VAE yet) and count their latents.

    start_image / extend_video: IMAGE [N, H, W, C]; extend_latent: latents [1, 16, F, h, w].
    """
    connected = [n for n, v in (("start_image", start_image), ("extend_video", extend_video),
                                ("extend_latent", extend_latent)) if v is not None]
    if len(connected) > 1:
        raise SkyReelsInputError(
            f"connect only one of start_image, extend_video, extend_latent (got {', '.join(connected)}): the video "
            "starts from one image, one clip, or one previous DF sampler."
        )
    if start_image is not None:
        return DFStart(1, "start_image")
    if extend_video is not None:
        if extend_video.ndim != 4 or tuple(extend_video.shape[1:3]) != (height, width):
            raise SkyReelsInputError(
                f"extend_video frames are {_image_size(extend_video)} but the video is {width}x{height}; set width "
                f"and height to the clip's size, or resize the clip (e.g. Upscale Image) to {width}x{height}."
            )
        frames = extend_video.shape[0]
        keep = pixel_frames(latent_frames(frames))
        return DFStart(latent_frames(keep), "extend_video", frames - keep)
    if extend_latent is not None:
        _check_extend_latent(extend_latent, width, height)
        return DFStart(extend_latent.shape[2], "extend_latent")
    return DFStart(0, None)


def df_prefix_latents(encode: Encode, start: DFStart, width: int, height: int, start_image=None,
                      extend_video=None, extend_latent=None) -> torch.Tensor | None:
    """The given latents the video opens with: the start image or the clip encoded, or extend_latent as is."""
    if start.source == "start_image":
        return encode(pixels_to_video(fit_crop(start_image[:1], height, width)))
    if start.source == "extend_video":
        clip = extend_video[start.dropped_frames:, ..., :3].float()
        return encode((clip.permute(3, 0, 1, 2)[None] * 2.0 - 1.0).clamp(-1.0, 1.0))
    if start.source == "extend_latent":
        return extend_latent
    return None


def df_end_latent(encode: Encode, end_image, width: int, height: int) -> torch.Tensor | None:
    """The end image's latent [1, 16, 1, h, w] (the frame the last window arrives at), or None."""
    return None if end_image is None else encode(pixels_to_video(fit_crop(end_image[:1], height, width)))


def df_tail(latents: torch.Tensor, overlap_history: int) -> tuple[torch.Tensor, int]:
    """(the last `overlap_history` frames' latents, their pixel frames): the context a next DF run continues from."""
    keep = min(latent_frames(overlap_history), latents.shape[2])
    return latents[:, :, -keep:].clone(), pixel_frames(keep)
