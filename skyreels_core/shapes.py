"""The one place where pixel <-> latent and audio <-> latent shape math lives.

Video (Wan2.1 VAE: 4x temporal, 8x8 spatial): nodes and pipelines call `VideoLatentShape.from_pixels(...)`;
nobody re-derives `(frames - 1) // 4 + 1`. Audio (the SkyReels-V4 codec: 44.1 kHz, 1024 samples per 40-channel
latent frame): `AudioLatentShape.from_seconds(...)` / `.from_video(frames, fps)`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import SkyReelsInputError

__all__ = [
    "MEMORY_LIMIT_ENV",
    "VideoLatentShape",
    "check_video_memory",
    "memory_limit_bytes",
    "video_memory_bytes",
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
    "MAX_AUDIO_SECONDS",
    "audio_num_samples",
    "check_audio_seconds",
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


# memory: refuse before allocating what cannot fit

MEMORY_LIMIT_ENV = "SKYREELS_MAX_MEMORY_GB"
_FALLBACK_LIMIT_GIB = 64  # where the machine's RAM cannot be read
_GIB = 1024**3


def memory_limit_bytes() -> int:
    """The largest video (latent or decoded frames) the pack agrees to build, in bytes.

    SKYREELS_MAX_MEMORY_GB (GiB) when set; else the machine's physical RAM, because the decoded frames (ComfyUI's
    IMAGE, float32) are held in RAM in one piece: a video larger than the RAM cannot be decoded on this machine.
    64 GiB where the RAM size cannot be read.
    """
    text = os.environ.get(MEMORY_LIMIT_ENV)
    if text:
        try:
            gib = float(text)
        except ValueError:
            gib = float("nan")
        if not (math.isfinite(gib) and gib > 0):
            raise SkyReelsInputError(f"{MEMORY_LIMIT_ENV}={text!r} must be a positive number of GiB (e.g. 96).")
        return int(gib * _GIB)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX (Windows)
        return _FALLBACK_LIMIT_GIB * _GIB


def video_memory_bytes(batch: int, frames: int, height: int, width: int, channels: int = 16) -> int:
    """Bytes of the larger of the float32 latent and the decoded float32 frames of a video (pixel sizes in).

    Decoded frames: batch x frames x height x width x 3 x 4 bytes (ComfyUI IMAGE; also the pixel video the I2V
    condition encodes). Latent: batch x channels x latent frames x height/8 x width/8 x 4 bytes.
    """
    latent = batch * channels * latent_frames(frames) * (height // SPACE_STRIDE) * (width // SPACE_STRIDE) * 4
    return max(latent, batch * frames * height * width * 3 * 4)


def check_video_memory(batch: int, frames: int, height: int, width: int, what: str = "The video") -> None:
    """SkyReelsInputError with the estimate and the fix when `video_memory_bytes` exceeds `memory_limit_bytes`."""
    need, limit = video_memory_bytes(batch, frames, height, width), memory_limit_bytes()
    if need <= limit:
        return
    per_frame = batch * height * width * 3 * 4  # the decoded frames dominate
    fit = nearest_valid_frames(max(1, limit // per_frame))
    while fit > 1 and video_memory_bytes(batch, fit, height, width) > limit:
        fit -= TIME_STRIDE
    raise SkyReelsInputError(
        f"{what} ({width}x{height}, {frames} frames, batch {batch}) needs about {need / _GIB:.1f} GiB as float32 "
        f"frames, more than the {limit / _GIB:.1f} GiB limit (the machine's RAM, or {MEMORY_LIMIT_ENV}). Lower the "
        f"size, the frames (at most {fit} fit at this size and batch) or the batch."
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
        check_video_memory(batch, frames, height, width)
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


# The audio codec encodes / decodes a clip in one piece (no Cancel point inside): 600 s took minutes and 4.6 GB.
# SkyReels-V4 clips are seconds long (a reference voice, a 5-15 s video), so two minutes is a generous cap.
MAX_AUDIO_SECONDS = 120.0


def check_audio_seconds(seconds: float, what: str = "The audio") -> None:
    """SkyReelsInputError for a duration the codec should not run in one piece (over MAX_AUDIO_SECONDS)."""
    if seconds > MAX_AUDIO_SECONDS:
        raise SkyReelsInputError(
            f"{what} lasts {seconds:.1f} s, longer than the {MAX_AUDIO_SECONDS:.0f} s the audio codec handles in one "
            f"piece (minutes of work and GBs of memory that Cancel cannot stop). Use a shorter clip (e.g. Trim Audio), "
            f"or for a V4 video fewer frames or a higher fps (the audio lasts frames / fps seconds)."
        )


def audio_num_samples(seconds: float) -> int:
    """Samples at 44.1 kHz for a duration: round(seconds * 44100); at most MAX_AUDIO_SECONDS."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise SkyReelsInputError(f"Audio duration must be a positive number of seconds; got {seconds}.")
    check_audio_seconds(seconds)
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
