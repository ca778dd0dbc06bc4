#!/usr/bin/env python3
"""Write the example inputs the shipped templates use into workflows/example_inputs/ (or OUT_DIR).

    python scripts/make_example_inputs.py [OUT_DIR]

Everything is drawn here (numpy + PIL + PyAV, fixed parameters): no photo, recording or download, so the files
carry no third-party licence. They are small on purpose; users replace them with their own (Load Image / Video /
Audio). The test host copies them into ComfyUI's input/ folder, and the e2e/browser tests run the templates on
them, so their sizes below are part of the tests' expectations.

- skyreels_i2v_start.png  480x272 RGB landscape (sky, sun, hills): V2 image-to-video start frame
- skyreels_df_start.png   480x272 RGB landscape at dusk: V2 diffusion-forcing start frame
- skyreels_df_clip.mp4    9 frames 64x48 at 24 fps, h264: the clip the V2 DF extension continues
- skyreels_v4_start.png   64x64 RGB gradient with a disc: V4 image-to-video + audio start frame
- skyreels_v4_ref.png     64x48 RGB face-like pattern: V4 reference image
- skyreels_v4_clip.mp4    17 frames 64x64 at 16 fps, h264 + a 44.1 kHz AAC tone track: V4 extension and editing
- skyreels_v4_mask.png    64x64, right half white (= regenerate): V4 inpaint/edit mask (Load Image (as Mask), red)
- skyreels_v4_voice.wav   1.0 s mono 22.05 kHz 16-bit: a synthetic voice-like tone (harmonics, vibrato, syllables)
- skyreels_v3_person.png  48x64 RGB portrait: a figure (head, body) on grey: V3 reference-to-video, a subject
- skyreels_v3_place.png   96x64 RGB landscape: V3 reference-to-video, the background
- skyreels_v3_clip.mp4    33 frames 64x64 at 24 fps, h264 + a 44.1 kHz AAC tone: V3 extension and shot switching
                          (33 frames: the 25-frame extension prefix and the 33-frame condition of a 5 s shot)
- skyreels_v3_speech.wav  4.26 s mono 22.05 kHz 16-bit speech synthesised by espeak-ng 1.51 (en-us, 165 wpm,
                          SPEECH_TEXT): V3 talking avatar (107 frames at 25 fps: the key-frame pass and 2 windows).
                          Needs `espeak-ng` on PATH to regenerate (Debian package espeak-ng); the file ships.
"""

from __future__ import annotations

import math
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "workflows" / "example_inputs"
DF_CLIP_FRAMES, DF_CLIP_SIZE, DF_CLIP_FPS = 9, (64, 48), 24
CLIP_FRAMES, CLIP_SIZE, CLIP_FPS = 17, 64, 16
V3_CLIP_FRAMES, V3_CLIP_SIZE, V3_CLIP_FPS = 33, 64, 24
NAMES = {"i2v_start": "skyreels_i2v_start.png", "df_start": "skyreels_df_start.png", "df_clip": "skyreels_df_clip.mp4",
         "start": "skyreels_v4_start.png", "ref": "skyreels_v4_ref.png", "clip": "skyreels_v4_clip.mp4",
         "mask": "skyreels_v4_mask.png", "voice": "skyreels_v4_voice.wav", "v3_person": "skyreels_v3_person.png",
         "v3_place": "skyreels_v3_place.png", "v3_clip": "skyreels_v3_clip.mp4", "v3_speech": "skyreels_v3_speech.wav"}
SPEECH_TEXT = "Hello, and thank you for stopping by. It is lovely to see you."


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:height, 0:width].astype(np.float32)


def landscape(width: int = 480, height: int = 272, dusk: bool = False) -> np.ndarray:
    """Sky gradient, a sun, two rows of hills: a plausible start frame for "the scene comes to life" prompts."""
    y, x = _grid(height, width)
    v = y / height
    top, horizon = ((0.25, 0.2, 0.45), (0.95, 0.55, 0.3)) if dusk else ((0.3, 0.55, 0.9), (0.85, 0.9, 0.95))
    img = np.stack([top[c] + (horizon[c] - top[c]) * v for c in range(3)], axis=-1)
    sun = (x - width * 0.7) ** 2 + (y - height * (0.45 if dusk else 0.25)) ** 2 < (height * 0.09) ** 2
    img[sun] = (1.0, 0.75, 0.35) if dusk else (1.0, 0.95, 0.7)
    far = y > height * (0.55 + 0.06 * np.sin(x / width * 2 * math.pi * 1.5))
    img[far] = (0.25, 0.35, 0.3) if dusk else (0.35, 0.55, 0.4)
    near = y > height * (0.72 + 0.05 * np.sin(x / width * 2 * math.pi * 0.8 + 1.0))
    img[near] = (0.15, 0.25, 0.15) if dusk else (0.2, 0.45, 0.2)
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


def pattern_frames(count: int, width: int, height: int) -> np.ndarray:
    """[count, height, width, 3] uint8: a diagonal colour ramp that moves with time."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [(np.stack([(x * 4 + t * 9) % 256, (y * 5 + t * 5) % 256, ((x + y) * 2) % 256], -1)) for t in range(count)]
    return np.asarray(frames, dtype=np.uint8)


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


def person_image(height: int = 64, width: int = 48) -> np.ndarray:
    """A standing figure (round head, shirt, trousers) on a light grey background: a subject reference."""
    y, x = _grid(height, width)
    img = np.full((height, width, 3), 0.82, np.float32)
    img[((x - width / 2) / (width * 0.45)) ** 2 + ((y - height * 0.72) / (height * 0.3)) ** 2 < 1] = (0.8, 0.2, 0.2)
    img[(y > height * 0.88) & (np.abs(x - width / 2) < width * 0.22)] = (0.15, 0.2, 0.45)
    img[(x - width / 2) ** 2 + (y - height * 0.28) ** 2 < (height * 0.15) ** 2] = (0.93, 0.76, 0.62)
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


def voice_like(seconds: float = 1.0, rate: int = 22050) -> np.ndarray:
    """float32 in [-1, 1]: a glottal-like harmonic series (f0 ~ 140 Hz with vibrato and a falling contour), shaped
    by two formant-like resonances and a three-syllable envelope. Not speech, but voice-like in spectrum and rhythm."""
    t = np.arange(round(seconds * rate)) / rate
    f0 = 150 - 25 * t / seconds + 4 * np.sin(2 * math.pi * 5.5 * t)
    phase = 2 * math.pi * np.cumsum(f0) / rate
    signal = np.zeros_like(t)
    for k in range(1, 25):
        freq = k * f0
        formants = np.exp(-((freq - 700) / 250) ** 2) + 0.6 * np.exp(-((freq - 1200) / 300) ** 2) + 0.05
        signal += formants / k * np.sin(k * phase)
    syllables = np.clip(np.sin(math.pi * 3 * t / seconds), 0, None) ** 0.6
    signal *= syllables * np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    return (0.8 * signal / np.abs(signal).max()).astype(np.float32)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(rgb, "RGB").save(path, optimize=True)
    return path


def write_clip(path: Path, frames: np.ndarray, fps: int, audio_rate: int | None = 44100, crf: str = "18") -> Path:
    """h264 video (+ a mono AAC 440 Hz tone of the same duration when audio_rate), with PyAV as ComfyUI's own I/O."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"crf": crf}
        audio = out.add_stream("aac", rate=audio_rate) if audio_rate else None
        for img in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")))
        out.mux(video.encode(None))
        if audio is not None:
            n = round(len(frames) / fps * audio_rate)
            tone = (0.2 * np.sin(2 * math.pi * 440 * np.arange(n) / audio_rate)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts = audio_rate, 0
            out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
    return path


def write_speech(path: Path, text: str = SPEECH_TEXT) -> Path:
    """Speech from espeak-ng (a formant synthesiser: no recorded voice, no licence on its output)."""
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to synthesise skyreels_v3_speech.wav (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), text], check=True)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 22050) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).round().astype("<i2").tobytes())
    return path


def write_all(out_dir: Path | str = OUT) -> dict[str, Path]:
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    return {
        "i2v_start": write_png(d / NAMES["i2v_start"], landscape()),
        "df_start": write_png(d / NAMES["df_start"], landscape(dusk=True)),
        "df_clip": write_clip(d / NAMES["df_clip"], pattern_frames(DF_CLIP_FRAMES, *DF_CLIP_SIZE), DF_CLIP_FPS,
                              audio_rate=None, crf="12"),
        "start": write_png(d / NAMES["start"], start_image()),
        "ref": write_png(d / NAMES["ref"], reference_image()),
        "clip": write_clip(d / NAMES["clip"], clip_frames(), CLIP_FPS),
        "mask": write_png(d / NAMES["mask"], mask_image()),
        "voice": write_wav(d / NAMES["voice"], voice_like()),
        "v3_person": write_png(d / NAMES["v3_person"], person_image()),
        "v3_place": write_png(d / NAMES["v3_place"], landscape(96, 64)),
        "v3_clip": write_clip(d / NAMES["v3_clip"], clip_frames(V3_CLIP_FRAMES, V3_CLIP_SIZE), V3_CLIP_FPS),
        "v3_speech": write_speech(d / NAMES["v3_speech"]),
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for key, path in write_all(Path(argv[0]) if argv else OUT).items():
        sys.stdout.write(f"{key:10s} {path} ({path.stat().st_size} bytes)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
