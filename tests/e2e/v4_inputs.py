"""The SkyReels-V4 workflows' example inputs, as shipped in workflows/example_inputs/ (drawn by
scripts/make_example_inputs.py, which documents each file; nothing downloaded).

    write_v4_inputs(input_dir) -> {name: path}   # copies the shipped files into a ComfyUI input folder

- skyreels_v4_start.png  64x64 RGB: a colour gradient with a disc (i2av start image)
- skyreels_v4_ref.png    64x48 RGB: a face-like pattern (references workflow)
- skyreels_v4_clip.mp4   17 frames 64x64 at 16 fps, h264 + a 440 Hz AAC track (extension, inpainting/editing)
- skyreels_v4_mask.png   64x64 RGB: right half white = regenerate (read with Load Image (as Mask), channel red)
- skyreels_v4_voice.wav  1.0 s mono 22050 Hz 16-bit: a synthetic voice-like tone (reference audio)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from make_example_inputs import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, OUT  # noqa: E402, F401

NAMES = {"start": "skyreels_v4_start.png", "ref": "skyreels_v4_ref.png", "clip": "skyreels_v4_clip.mp4",
         "mask": "skyreels_v4_mask.png", "voice": "skyreels_v4_voice.wav"}


def write_v4_inputs(input_dir: Path | str) -> dict[str, Path]:
    """Copy the shipped V4 example inputs into `input_dir` (overwriting); returns {key: path}."""
    d = Path(input_dir)
    d.mkdir(parents=True, exist_ok=True)
    return {key: Path(shutil.copy(OUT / name, d / name)) for key, name in NAMES.items()}
