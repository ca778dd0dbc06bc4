"""Deterministic example inputs of the SkyReels-V4 workflows, written into a ComfyUI input folder (nothing downloaded).

    write_v4_inputs(input_dir) -> {name: path}

- skyreels_v4_start.png  64x64 RGB: a colour gradient with a disc (i2av start image)
- skyreels_v4_ref.png    64x48 RGB: a face-like pattern (references workflow)
- skyreels_v4_clip.mp4   17 frames 64x64 at 16 fps, h264 + a 440 Hz AAC track (extension, inpainting/editing)
- skyreels_v4_mask.png   64x64 RGB: right half white = regenerate (read with Load Image (as Mask), channel red)
- skyreels_v4_voice.wav  1.0 s mono 22050 Hz 16-bit: a rising chirp (reference audio)
Users replace these files with their own (the README lists them).
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

CLIP_FRAMES, CLIP_SIZE, CLIP_FPS = 17, 64, 16
NAMES = {"start": "skyreels_v4_start.png", "ref": "skyreels_v4_ref.png", "clip": "skyreels_v4_clip.mp4",
         "mask": "skyreels_v4_mask.png", "voice": "skyreels_v4_voice.wav"}


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:height, 0:width].astype(np.float32)


def start_image(size: int = 64) -> np.ndarray:
    y, x = _grid(size, size)
    img = np.stack([x / size, y / size, 1.0 - x / size], axis=-1)
    disc = (x - size * 0.5) ** 2 + (y - size * 0.55) ** 2 < (size * 0.22) ** 2
    img[disc] = (1.0, 0.85, 0.2)
    return (img * 255).round().astype(np.uint8)


def reference_image(height: int = 48, width: int = 64) -> np.ndarray:
    y, x = _grid(height, width)
    img = np.full((height, width, 3), 0.15, np.float32)
    face = ((x - width / 2) / (width * 0.3)) ** 2 + ((y - height / 2) / (height * 0.4)) ** 2 < 1
    img[face] = (0.9, 0.7, 0.55)
    for ex in (width * 0.4, width * 0.6):
        img[(x - ex) ** 2 + (y - height * 0.42) ** 2 < 4] = (0.1, 0.1, 0.1)
    return (img * 255).round().astype(np.uint8)


def clip_frames(frames: int = CLIP_FRAMES, size: int = CLIP_SIZE) -> np.ndarray:
    """[frames, size, size, 3] uint8: a white square moving right over a blue-to-green background."""
    y, x = _grid(size, size)
    out = []
    for t in range(frames):
        img = np.stack([0.1 + 0 * x, y / size, 1.0 - y / size], axis=-1)
        left = int(4 + t * (size - 20) / max(frames - 1, 1))
        img[20:36, left:left + 16] = 1.0
        out.append((img * 255).round().astype(np.uint8))
    return np.stack(out)


def mask_image(size: int = CLIP_SIZE) -> np.ndarray:
    img = np.zeros((size, size, 3), np.uint8)
    img[:, size // 2:] = 255
    return img


def write_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(rgb, "RGB").save(path)
    return path


def write_clip(path: Path, frames: np.ndarray, fps: int = CLIP_FPS, rate: int = 44100) -> Path:
    """h264 video + a mono AAC tone of the same duration, with PyAV (as ComfyUI's own video I/O)."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("h264", rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        for img in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")))
        out.mux(video.encode(None))
        n = round(len(frames) / fps * rate)
        tone = (0.2 * np.sin(2 * math.pi * 440 * np.arange(n) / rate)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def write_wav(path: Path, seconds: float = 1.0, rate: int = 22050) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    chirp = 0.3 * np.sin(2 * math.pi * (200 * t + 300 * t**2))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((chirp * 32767).astype("<i2").tobytes())
    return path


def write_v4_inputs(input_dir: Path | str) -> dict[str, Path]:
    """Write every example input into `input_dir` (overwriting); returns {key: path}."""
    d = Path(input_dir)
    d.mkdir(parents=True, exist_ok=True)
    return {
        "start": write_png(d / NAMES["start"], start_image()),
        "ref": write_png(d / NAMES["ref"], reference_image()),
        "clip": write_clip(d / NAMES["clip"], clip_frames()),
        "mask": write_png(d / NAMES["mask"], mask_image()),
        "voice": write_wav(d / NAMES["voice"]),
    }
