"""The one place where pixel <-> latent shape math lives (Wan2.1 VAE: 4x temporal, 8x8 spatial).

Nodes and pipelines call `VideoLatentShape.from_pixels(...)`; nobody re-derives `(frames - 1) // 4 + 1`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SkyReelsInputError

__all__ = ["VideoLatentShape", "check_frames", "check_size", "nearest_valid_frames", "latent_frames", "pixel_frames"]

TIME_STRIDE = 4
SPACE_STRIDE = 8
# The DiT patchifies 2x2 latent pixels, so pixel sizes must be multiples of 8 * 2.
SIZE_MULTIPLE = 16


def nearest_valid_frames(frames: int) -> int:
    """Nearest 4n+1 frame count (ties go up), at least 1."""
    if frames <= 1:
        return 1
    n = round((frames - 1) / TIME_STRIDE + 1e-9)
    return n * TIME_STRIDE + 1


def latent_frames(frames: int) -> int:
    """Latent frames of `frames` pixel frames (the causal VAE keeps frame 0 alone, then 4 frames per latent)."""
    return (frames - 1) // TIME_STRIDE + 1


def pixel_frames(latents: int) -> int:
    """Pixel frames decoded from `latents` latent frames: 4 (latents - 1) + 1 (inverse of `latent_frames`)."""
    return TIME_STRIDE * (latents - 1) + 1


def check_frames(frames: int, what: str = "frames") -> None:
    if frames < 1 or (frames - 1) % TIME_STRIDE:
        nearest = nearest_valid_frames(frames)
        raise SkyReelsInputError(
            f"{what} must be 4n+1 (1, 5, 9, ... 81, 97, 121) because the video VAE compresses time 4x; "
            f"got {frames}. Nearest valid value: {nearest}."
        )


def check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
            nearest = max(SIZE_MULTIPLE, round(value / SIZE_MULTIPLE) * SIZE_MULTIPLE)
            raise SkyReelsInputError(
                f"{name} must be a multiple of {SIZE_MULTIPLE} (VAE 8x and DiT patch 2x); got {value}. "
                f"Nearest valid value: {nearest}."
            )


@dataclass(frozen=True)
class VideoLatentShape:
    """Latent grid of a video: [batch, channels, frames, height, width]."""

    batch: int
    channels: int
    frames: int
    height: int
    width: int

    @classmethod
    def from_pixels(cls, frames: int, height: int, width: int, batch: int = 1, channels: int = 16):
        check_frames(frames)
        check_size(width, height)
        return cls(batch, channels, latent_frames(frames), height // SPACE_STRIDE, width // SPACE_STRIDE)

    @property
    def pixel_frames(self) -> int:
        return pixel_frames(self.frames)

    @property
    def pixel_size(self) -> tuple[int, int]:
        return self.height * SPACE_STRIDE, self.width * SPACE_STRIDE

    def tokens(self, patch: tuple[int, int, int] = (1, 2, 2)) -> int:
        return (self.frames // patch[0]) * (self.height // patch[1]) * (self.width // patch[2])

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.batch, self.channels, self.frames, self.height, self.width)
