"""Write tests/unit/fixtures/wav2vec2_golden.json: pyloudnorm loudness and soxr_hq resampling of synthetic signals.

    python3 -m venv /tmp/lufs-venv && /tmp/lufs-venv/bin/pip install pyloudnorm soxr numpy scipy
    /tmp/lufs-venv/bin/python scripts/make_wav2vec2_golden.py

Runs WITHOUT torch or skyreels_core (a throwaway venv; pyloudnorm / soxr are not test dependencies). The signals
are sums of tones defined by data in the JSON, so tests/unit/test_wav2vec2.py rebuilds them exactly in torch.
The reference (SkyReels-V3 A2V) measures loudness with pyloudnorm.Meter(16000) and reads audio with
librosa.load(sr=16000), whose default resampler is soxr "HQ".
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import soxr

OUT = Path(__file__).resolve().parents[1] / "tests" / "unit" / "fixtures" / "wav2vec2_golden.json"

# tones: [frequency Hz, amplitude, phase rad]; envelope: [Hz, depth] amplitude modulation; silence: [from s, to s]
LOUDNESS_SIGNALS = [
    {"name": "sine_997_full_scale_48k", "rate": 48000, "seconds": 3.0, "tones": [[997.0, 1.0, 0.0]]},
    {"name": "sine_997_full_scale_16k", "rate": 16000, "seconds": 3.0, "tones": [[997.0, 1.0, 0.0]]},
    {"name": "sine_100_quiet_16k", "rate": 16000, "seconds": 2.0, "tones": [[100.0, 0.05, 0.3]]},
    {"name": "harmonics_am_16k", "rate": 16000, "seconds": 4.3,
     "tones": [[150.0, 0.3, 0.0], [300.0, 0.2, 1.0], [450.0, 0.1, 2.0], [2500.0, 0.05, 0.5], [6000.0, 0.02, 0.1]],
     "envelope": [3.0, 0.9]},
    {"name": "half_silent_gated_16k", "rate": 16000, "seconds": 5.0,
     "tones": [[440.0, 0.5, 0.0], [1200.0, 0.1, 0.0]], "silence": [1.5, 4.0]},
    {"name": "quiet_tail_relative_gate_16k", "rate": 16000, "seconds": 6.1,
     "tones": [[220.0, 0.4, 0.0]], "envelope": [0.1, 0.999]},
    {"name": "exactly_min_length_16k", "rate": 16000, "seconds": 0.4, "tones": [[700.0, 0.2, 0.0]]},
    {"name": "odd_length_44k", "rate": 44100, "seconds": 1.2345, "tones": [[60.0, 0.3, 0.0], [9000.0, 0.1, 0.0]]},
]
RESAMPLE_SIGNALS = [
    {"name": "speech_band_tones_44k", "rate": 44100, "seconds": 0.15,
     "tones": [[130.0, 0.1, 0.0], [910.0, 0.05, 1.0], [3100.0, 0.03, 2.0], [6800.0, 0.02, 0.3], [7500.0, 0.01, 0.0],
               [9000.0, 0.01, 0.0]]},
    {"name": "speech_band_tones_48k", "rate": 48000, "seconds": 0.15,
     "tones": [[200.0, 0.1, 0.0], [1500.0, 0.05, 1.0], [5000.0, 0.03, 2.0], [7200.0, 0.02, 0.3],
               [12000.0, 0.01, 0.0]]},
]


def synthesize(spec: dict) -> np.ndarray:
    """Same formula as tests/unit/test_wav2vec2.py `synthesize` (float64)."""
    n = round(spec["seconds"] * spec["rate"])
    t = np.arange(n, dtype=np.float64) / spec["rate"]
    x = np.zeros(n)
    for freq, amp, phase in spec["tones"]:
        x += amp * np.sin(2 * np.pi * freq * t + phase)
    if "envelope" in spec:
        freq, depth = spec["envelope"]
        x *= 1 - depth * (0.5 - 0.5 * np.cos(2 * np.pi * freq * t))
    if "silence" in spec:
        x[(t >= spec["silence"][0]) & (t < spec["silence"][1])] = 0
    return x


def main() -> int:
    loudness = []
    for spec in LOUDNESS_SIGNALS:
        value = pyloudnorm.Meter(spec["rate"]).integrated_loudness(synthesize(spec))
        loudness.append({**spec, "lufs": float(value)})
    resampled = []
    for spec in RESAMPLE_SIGNALS:
        y = soxr.resample(synthesize(spec), spec["rate"], 16000, quality="HQ")
        resampled.append({**spec, "soxr_hq_16k": [float(f"{v:.8g}") for v in y]})
    golden = {
        "generator": "scripts/make_wav2vec2_golden.py",
        "versions": {name: importlib.metadata.version(name) for name in ("pyloudnorm", "soxr", "numpy", "scipy")},
        "loudness": loudness,
        "resample": resampled,
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
