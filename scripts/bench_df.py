"""Benchmark: diffusion-forcing long video, time and memory vs number of windows (same window size).

Runs `generate_df_video` with the real WanModel at the TINY preset (random weights) for 2, 4 and 8 windows, each
configuration in a fresh subprocess so the process peak RSS is per configuration, and prints a markdown table.

Memory columns:
- held MB: peak over model calls of the bytes of all live tensors except the model weights (CPU: found by a
  gc scan at every model call; CUDA: torch.cuda.max_memory_allocated minus weights). Must stay flat in windows:
  only the current window, its per-frame scheduler state and the output latents (O(frames), small) are alive.
- RSS MB (CPU): the process peak resident set (includes Python, torch and the DiT activations).

    python scripts/bench_df.py                 # CPU, ~1 minute on 2 cores
    python scripts/bench_df.py --device cuda --size 60x104 --preset TINY
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from skyreels_core.models import wan_dit  # noqa: E402
from skyreels_core.pipelines.diffusion_forcing import DFSettings, generate_df_video  # noqa: E402
from skyreels_core.shapes import pixel_frames  # noqa: E402


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def live_tensor_bytes(exclude: set[int]) -> int:
    """Bytes of the distinct storages of all live CPU tensors, minus those whose data_ptr is in `exclude`."""
    seen, total = set(exclude), 0
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return total


class MeasuredModel:
    """Forwards to the DiT; on CPU records the peak of live non-weight tensor bytes at every call."""

    def __init__(self, model: torch.nn.Module, device: torch.device, scan: bool):
        self.model, self.device, self.scan, self.calls, self.peak = model, device, scan, 0, 0
        self.weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def __call__(self, x, t, context, fps=None):
        self.calls += 1
        if self.scan and self.device.type == "cpu":
            self.peak = max(self.peak, live_tensor_bytes(self.weights))
        return self.model(x, t, context, fps=fps)


def run_each_in_subprocess(script: str, counts: str, run_one, args) -> list[dict] | None:
    """`--single N` runs run_one(N, args) and prints its JSON (returns None); otherwise each count of the comma list
    runs in a fresh subprocess (so the peak RSS is per configuration) and the rows come back in order."""
    if args.single is not None:
        _out(json.dumps(run_one(args.single, args)))
        return None
    rows = []
    for n in (int(v) for v in counts.split(",")):
        cmd = [sys.executable, script, "--single", str(n)] + sys.argv[1:]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
    return rows


def run_one(n_windows: int, args) -> dict:
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = getattr(wan_dit, args.preset)
    model = wan_dit.WanModel(cfg).to(device).eval()
    h, w = (int(v) for v in args.size.split("x"))
    base, overlap = pixel_frames(args.window), pixel_frames(args.overlap)
    latents = args.window + (args.window - args.overlap) * (n_windows - 1)
    settings = DFSettings(
        steps=args.steps, shift=8.0, guidance_scale=5.0, base_num_frames=base, overlap_history=overlap
    )
    ctx = torch.randn(1, 16, cfg.text_dim, device=device)

    def generate(scan: bool):
        measured = MeasuredModel(model, device, scan)
        num_frames = pixel_frames(latents)
        res = generate_df_video(measured, ctx, num_frames, (h, w), settings, negative_context=torch.zeros_like(ctx))
        return res, measured

    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res, measured = generate(scan=False)  # timed run
    if device.type == "cuda":
        torch.cuda.synchronize()
        measured.peak = torch.cuda.max_memory_allocated() - weights_bytes
    seconds = time.perf_counter() - t0
    calls, num_frames, out_bytes = measured.calls, res.num_frames, res.latents.numel() * res.latents.element_size()
    assert len(res.plan.windows) == n_windows, res.plan.windows
    del res
    if device.type == "cpu":
        gc.collect()
        measured.peak = generate(scan=True)[1].peak  # memory run (the gc scans would distort the timing)
    return {
        "windows": n_windows,
        "latents": latents,
        "frames": num_frames,
        "calls": calls,
        "seconds": seconds,
        "ms_per_call": 1000 * seconds / calls,
        "held_mb": measured.peak / 2**20,
        "output_mb": out_bytes / 2**20,
        "held_minus_output_mb": (measured.peak - out_bytes) / 2**20,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", default="2,4,8")
    p.add_argument("--window", type=int, default=5, help="latents per window (base_num_frames = 4(n-1)+1)")
    p.add_argument("--overlap", type=int, default=2, help="latents carried between windows")
    p.add_argument("--size", default="16x16", help="latent HxW")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--preset", default="TINY")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    rows = run_each_in_subprocess(__file__, args.windows, run_one, args)
    if rows is None:
        return
    _out(
        f"DF bench: {args.preset} WanModel, device {args.device}, latent {args.size}, window {args.window} latents, "
        f"overlap {args.overlap}, {args.steps} steps, CFG (batched), torch threads {args.threads}\n"
    )
    _out(
        "| windows | latents | frames | model calls | time s | ms/call | held MB (peak) | output MB "
        "| held - output MB | RSS MB |"
    )
    _out("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        _out(
            f"| {r['windows']} | {r['latents']} | {r['frames']} | {r['calls']} | {r['seconds']:.2f} | "
            f"{r['ms_per_call']:.1f} | {r['held_mb']:.2f} | {r['output_mb']:.2f} | {r['held_minus_output_mb']:.2f} "
            f"| {r['rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
