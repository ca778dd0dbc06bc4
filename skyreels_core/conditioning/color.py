"""Colour matching in CIE Lab: keeps a long generated video at the colours of its source image.

SkyReels-V3 talking avatar (research/skyreels_v3.md §8.3.7) pulls every decoded window back to the portrait's
colours: per frame, each Lab channel is shifted and scaled to the portrait's mean and standard deviation. Without it
the colours drift a little more with every 64-frame window of a minute-long video.

RGB <-> Lab is sRGB with the D65 white point, the same constants as kornia's `rgb_to_lab` / `lab_to_rgb` (which the
reference calls): sRGB gamma with the 0.04045 / 0.0031308 thresholds, the sRGB -> XYZ matrix rounded to 6 digits,
Lab's cube-root branch above (6/29)^3 ~ 0.008856 with the linear branch 7.787 t + 4/29 below.
"""

from __future__ import annotations

import torch

__all__ = ["lab_to_rgb", "match_color", "rgb_to_lab"]

# sRGB (linear) -> XYZ, and its inverse, D65 (kornia.color.xyz)
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_XYZ_TO_RGB = (
    (3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
    (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
    (0.0556466391351772, -0.2040413383665112, 1.0573110696453443),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_LAB_EPSILON = 0.008856  # (6/29)^3: below it Lab's f(t) is linear
_LAB_F_EPSILON = 0.2068966  # 6/29, the same boundary on f(t)


def _mix(matrix, image: torch.Tensor) -> torch.Tensor:
    """A 3x3 colour matrix applied to channels: image [..., 3, H, W]."""
    m = torch.tensor(matrix, dtype=image.dtype, device=image.device)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def _white(image: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_WHITE_D65, dtype=image.dtype, device=image.device).view(3, 1, 1)


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """sRGB [..., 3, H, W] in 0..1 -> Lab: L in 0..100, a and b roughly -128..127 (white = (100, 0, 0))."""
    linear = torch.where(image > 0.04045, ((image + 0.055) / 1.055).pow(2.4), image / 12.92)
    xyz = _mix(_RGB_TO_XYZ, linear) / _white(image)
    f = torch.where(xyz > _LAB_EPSILON, xyz.clamp(min=_LAB_EPSILON).pow(1.0 / 3.0), 7.787 * xyz + 4.0 / 29.0)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab [..., 3, H, W] -> sRGB (clamped to 0..1 when `clip`, as kornia's default)."""
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp(min=0.0)], dim=-3)
    xyz = torch.where(f > _LAB_F_EPSILON, f.pow(3.0), (f - 4.0 / 29.0) / 7.787) * _white(lab)
    linear = _mix(_XYZ_TO_RGB, xyz)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308).pow(1 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0.0, 1.0) if clip else rgb


def match_color(frames: torch.Tensor, reference: torch.Tensor, strength: float = 1.0, chunk: int = 8) -> torch.Tensor:
    """Per-frame Lab mean/std transfer of `frames` [N, 3, H, W] (0..1) to `reference` [3, H', W'] (0..1).

    Each frame's L, a and b channels are moved to the reference's mean and (population) standard deviation, then
    blended with the input: strength 1 takes the matched frames, 0 returns the input. float32 throughout, `chunk`
    frames at a time: the conversion holds about 9 copies of what it converts (81 frames at 720p would need 8 GB).
    """
    if strength == 0.0:
        return frames
    ref_std, ref_mean = _lab_stats(rgb_to_lab(reference.float()[None]))
    out = torch.empty_like(frames)
    for start in range(0, frames.shape[0], chunk):
        source = frames[start : start + chunk].float()
        lab = rgb_to_lab(source)
        std, mean = _lab_stats(lab)
        matched = (lab - mean) * (ref_std / std.clamp(min=1e-6)) + ref_mean  # a flat frame has std 0
        out[start : start + chunk] = (1.0 - strength) * source + strength * lab_to_rgb(matched)
    return out


def _lab_stats(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(std, mean) per image and channel of Lab [N, 3, H, W] over the pixels, shaped [N, 3, 1, 1]."""
    std, mean = torch.std_mean(lab.flatten(2), dim=-1, unbiased=False)
    return std[..., None, None], mean[..., None, None]
