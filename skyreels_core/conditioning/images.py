"""ComfyUI images -> model-ready pixels: the one image-fit function of the pack (every model, every recipe).

IMAGE tensors are [N, H, W, C] in 0..1 (alpha dropped). Two fits:
- `fit_crop`: centre-crop to the target aspect, then resize (ComfyUI's "center" upscale; the SkyReels-V2 reference's
  resizecrop + resize) - start/end frames, clips to extend or edit;
- `fit_pad`: fit inside the target with the aspect kept, centred, padded (mid-grey by default, white for
  SkyReels-V3 references) - references.

Filter: bicubic with antialiasing, for every model. It is the SkyReels-V2 reference's filter for I2V images; the
antialias makes large downscales (a 4K photo to 544p) band-limited instead of aliased, and the output is clamped to
[0, 1] before mapping to [-1, 1] because bicubic overshoots at hard edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SkyReelsInputError

__all__ = ["center_crop_box", "check_image", "fit_crop", "fit_pad", "pixels_to_video"]


def check_image(image, what: str) -> torch.Tensor:
    """IMAGE [N, H, W, C] (or one [H, W, C]) -> float [N, H, W, 3]; SkyReelsInputError naming `what` otherwise."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or image.shape[-1] not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise SkyReelsInputError(f"{what} must be an IMAGE tensor [N, H, W, 3] with values 0..1; got {shape}.")
    image = image if image.ndim == 4 else image[None]
    if image.shape[0] < 1 or min(image.shape[1:3]) < 1:
        raise SkyReelsInputError(f"{what} is empty (shape {tuple(image.shape)}).")
    return image[..., :3].float()


def center_crop_box(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the largest centred crop with the target aspect (ComfyUI common_upscale 'center')."""
    if width * target_h > height * target_w:  # too wide
        w = max(1, round(height * target_w / target_h))
        return 0, (width - w) // 2, height, w
    h = max(1, round(width * target_h / target_w))
    return (height - h) // 2, 0, h, width


def _resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, C, H, W] 0..1 -> [N, C, height, width] 0..1 (bicubic, antialiased, clamped)."""
    if tuple(frames.shape[-2:]) != (height, width):
        frames = F.interpolate(frames, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return frames.clamp(0.0, 1.0)


def fit_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE [N, H, W, C] -> pixels [N, 3, height, width] in [-1, 1], centre-cropped to the aspect and resized."""
    image = image[..., :3].float()
    top, left, h, w = center_crop_box(image.shape[1], image.shape[2], height, width)
    frames = image[:, top : top + h, left : left + w].permute(0, 3, 1, 2)
    return _resize(frames, height, width) * 2.0 - 1.0


def fit_pad(image: torch.Tensor, height: int, width: int, fill: float = 0.0) -> torch.Tensor:
    """IMAGE [N, H, W, C] -> pixels [N, 3, height, width] in [-1, 1]: fitted inside, centred, padded with `fill`
    (in [-1, 1]: 0 mid-grey, the default; 1.0 white, as SkyReels-V3 R2V pads its references)."""
    image = image[..., :3].float()
    scale = min(height / image.shape[1], width / image.shape[2])
    h = min(height, max(1, round(image.shape[1] * scale)))
    w = min(width, max(1, round(image.shape[2] * scale)))
    frames = _resize(image.permute(0, 3, 1, 2), h, w) * 2.0 - 1.0
    top, left = (height - h) // 2, (width - w) // 2
    return F.pad(frames, (left, width - w - left, top, height - h - top), value=float(fill))


def pixels_to_video(pixels: torch.Tensor) -> torch.Tensor:
    """Frames [N, 3, H, W] -> the VAE's video layout [1, 3, N, H, W]."""
    return pixels.permute(1, 0, 2, 3)[None]
