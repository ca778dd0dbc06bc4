"""Benchmark: SkyReels-V3 talking avatar, time and memory vs number of windows (same window, 81 frames).

Runs `talking_avatar` with the real WanModel + speech adapter (the tiny A2V config of the tiny-checkpoint maker,
random weights), the tiny Wan VAE and a stand-in CLIP, for speech lengths that give 2, 4 and 8 windows, each in a
fresh subprocess, and prints a markdown table. Columns as scripts/bench_df.py: held MB = peak over model calls of
all live tensors but the weights (a gc scan at every call); it must grow only by the output frames (the recipe
decodes each window, keeps what the output needs and fills one preallocated IMAGE) and the speech features (an
input, [frames, 12, 768]), so "held - output - speech" is flat in windows; RSS = the process peak.

    python scripts/bench_avatar.py                 # CPU, ~1 minute on 2 cores
    python scripts/bench_avatar.py --size 64x64 --windows 2,8
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_df import live_tensor_bytes, run_each_in_subprocess  # noqa: E402
from make_tiny_checkpoints import _wan_config  # noqa: E402
from tiny_builders import tiny_video_vae_state_dict  # noqa: E402

from skyreels_core.models.video_vae import VAE3DConfig, WanVAE  # noqa: E402
from skyreels_core.models.wan_dit import WanModel  # noqa: E402
from skyreels_core.pipelines import avatar  # noqa: E402


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


class Measured(torch.nn.Module):
    """Forwards to the DiT (keeping its config); records the peak of live non-weight tensor bytes at every call."""

    def __init__(self, model: WanModel, scan: bool):
        super().__init__()
        self.model, self.scan, self.calls, self.peak = model, scan, 0, 0
        self.config = model.config
        self.weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def forward(self, *args, **kwargs):
        self.calls += 1
        if self.scan:
            self.peak = max(self.peak, live_tensor_bytes(self.weights))
        return self.model(*args, **kwargs)


def run_one(windows: int, args) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    cfg = _wan_config("a2v")
    model = WanModel(cfg).eval()
    vae = WanVAE(VAE3DConfig.TINY)
    vae.load_state_dict(tiny_video_vae_state_dict())
    vae.eval()
    h, w = (int(v) for v in args.size.split("x"))
    frames = avatar.WINDOW + avatar.STRIDE * (windows - 1)  # exactly `windows` windows, no padding
    features = torch.randn(frames, cfg.audio_layers, cfg.audio_feature_dim)
    text = torch.randn(1, 16, cfg.text_dim)

    def encode_image(image):  # stand-in CLIP tokens (the tiny DiT's image width)
        return torch.randn(1, 257, cfg.image_dim)

    def generate(scan: bool):
        measured = Measured(model, scan)
        with torch.no_grad():
            out = avatar.talking_avatar(measured, vae, encode_image, torch.rand(1, h, w, 3), features, text, text,
                                        steps=args.steps, width=w, height=h)
        return out, measured

    t0 = time.perf_counter()
    out, measured = generate(scan=False)
    seconds = time.perf_counter() - t0
    plan = avatar.plan_talking_avatar(frames)
    assert plan.windows == windows and out.shape[0] == frames, (plan, out.shape)
    out_bytes, calls = out.numel() * out.element_size(), measured.calls
    del out
    gc.collect()
    peak = generate(scan=True)[1].peak
    speech_bytes = features.numel() * features.element_size()
    return {"windows": windows, "frames": frames, "calls": calls, "seconds": seconds, "held_mb": peak / 2**20,
            "output_mb": out_bytes / 2**20, "speech_mb": speech_bytes / 2**20,
            "rest_mb": (peak - out_bytes - speech_bytes) / 2**20,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", default="2,4,8")
    p.add_argument("--size", default="32x32", help="video HxW in pixels")
    p.add_argument("--steps", type=int, default=avatar.STEPS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    rows = run_each_in_subprocess(__file__, args.windows, run_one, args)
    if rows is None:
        return
    _out(f"Talking-avatar bench: tiny A2V WanModel (random), tiny Wan VAE, CPU, {args.size} px, {args.steps} steps, "
         f"torch threads {args.threads}\n")
    _out("| windows | frames | model calls | time s | held MB (peak) | output MB | speech features MB "
         "| held - output - speech MB | RSS MB |")
    _out("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        _out(f"| {r['windows']} | {r['frames']} | {r['calls']} | {r['seconds']:.2f} | {r['held_mb']:.2f} | "
             f"{r['output_mb']:.2f} | {r['speech_mb']:.2f} | {r['rest_mb']:.2f} | {r['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
