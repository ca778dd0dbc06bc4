"""The one place where pixel <-> latent and audio <-> latent shape math lives.

Video (Wan2.1 VAE: 4x temporal, 8x8 spatial): nodes and pipelines call `VideoLatentShape.from_pixels(...)`;
nobody re-derives `(frames - 1) // 4 + 1`. Audio (the SkyReels-V4 codec: 44.1 kHz, 1024 samples per 40-channel
latent frame): `AudioLatentShape.from_seconds(...)` / `.from_video(frames, fps)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import SkyReelsInputError

__all__ = [
    "VideoLatentShape",
    "check_frames",
    "check_size",
    "nearest_valid_frames",
    "latent_frames",
    "pixel_frames",
    "AUDIO_SAMPLE_RATE",
    "AUDIO_HOP_LENGTH",
    "AUDIO_SAMPLES_PER_LATENT",
    "AUDIO_LATENT_CHANNELS",
    "AUDIO_LATENT_RATE",
    "AudioLatentShape",
    "audio_num_samples",
    "audio_latent_frames",
    "audio_decoded_samples",
]

TIME_STRIDE = 4
SPACE_STRIDE = 8
# The DiT patchifies 2x2 latent pixels, so pixel sizes must be multiples of 8 * 2.
SIZE_MULTIPLE = 16

# The audio codec (MMAudio 44.1 kHz mel VAE + BigVGAN-v2, models/audio_codec.py).
AUDIO_SAMPLE_RATE = 44100
AUDIO_HOP_LENGTH = 512  # mel frames: 44100 / 512 = 86.13 per second
AUDIO_SAMPLES_PER_LATENT = 1024  # mel hop 512 x VAE time downsample 2
AUDIO_LATENT_CHANNELS = 40
AUDIO_LATENT_RATE = AUDIO_SAMPLE_RATE / AUDIO_SAMPLES_PER_LATENT  # 43.06640625 latent frames per second


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


# audio


def audio_num_samples(seconds: float) -> int:
    """Samples at 44.1 kHz for a duration: round(seconds * 44100)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise SkyReelsInputError(f"Audio duration must be a positive number of seconds; got {seconds}.")
    return int(round(seconds * AUDIO_SAMPLE_RATE))


def audio_latent_frames(seconds: float) -> int:
    """Audio latent frames covering `seconds`: ceil(round(seconds*44100) / 1024). 5 s -> 216, 8 s -> 345."""
    return -(-audio_num_samples(seconds) // AUDIO_SAMPLES_PER_LATENT)


def audio_decoded_samples(latent_frames: int) -> int:
    """Decoded waveform length for `latent_frames` latents: latent_frames * 1024."""
    if latent_frames < 1:
        raise SkyReelsInputError(f"Need at least 1 audio latent frame; got {latent_frames}.")
    return int(latent_frames) * AUDIO_SAMPLES_PER_LATENT


@dataclass(frozen=True)
class AudioLatentShape:
    """Audio latent sequence [batch, channels, frames] for a clip of `num_samples` samples at 44.1 kHz.

    The latents decode to `decoded_samples` (a multiple of 1024), trimmed to `num_samples`.
    """

    batch: int
    channels: int
    frames: int
    num_samples: int

    @classmethod
    def from_seconds(cls, seconds: float, batch: int = 1, channels: int = AUDIO_LATENT_CHANNELS):
        return cls(batch, channels, audio_latent_frames(seconds), audio_num_samples(seconds))

    @classmethod
    def from_video(cls, frames: int, fps: float, batch: int = 1, channels: int = AUDIO_LATENT_CHANNELS):
        """The audio that covers `frames` video frames at `fps` (exactly frames / fps seconds)."""
        return cls.from_seconds(frames / fps, batch, channels)

    @property
    def seconds(self) -> float:
        return self.num_samples / AUDIO_SAMPLE_RATE

    @property
    def decoded_samples(self) -> int:
        return audio_decoded_samples(self.frames)

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.batch, self.channels, self.frames)
