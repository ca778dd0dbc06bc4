"""Per-step DiT time and peak memory for three model sizes and two frame counts (random weights).

Usage:
    python scripts/bench_core.py                      # CPU: TINY / SMALL / T2V_1_3B at a small latent, fp32
    python scripts/bench_core.py --device cuda --dtype bf16 --sizes T2V_1_3B --frames 81 --height 480 --width 832
                                                      # GPU: the 1.3B model at 480x832x81 with sdpa and flash_attn
Each configuration runs in its own subprocess so the peak RSS (CPU) / peak allocated memory (CUDA) is its own.
A step = one conditional DiT forward (CFG doubles it). Times are medians over --repeats forwards after one warm-up.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "TINY": dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2),
    "SMALL": dict(dim=768, ffn_dim=3072, num_heads=6, num_layers=8),
    "T2V_1_3B": None,  # the real preset
}


def _config(size: str):
    from skyreels_core.models import wan_dit

    if SIZES[size] is None:
        return getattr(wan_dit, size)
    return wan_dit.WanDiTConfig(model_type="t2v", in_dim=16, text_dim=4096, **SIZES[size])


def run_one(args: argparse.Namespace) -> dict:
    """Build one model, time `repeats` forwards, report median seconds and peak memory."""
    import torch

    from skyreels_core.models.wan_dit import WanModel, param_count
    from skyreels_core.shapes import VideoLatentShape

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    torch.manual_seed(0)
    config = _config(args.size)
    model = WanModel(config, device=args.device, dtype=dtype).eval()
    model.attn_backend = args.attention
    shape = VideoLatentShape.from_pixels(args.frames, args.height, args.width)
    x = torch.randn(shape.as_tuple(), device=args.device, dtype=dtype)
    context = torch.randn(1, 512, config.text_dim, device=args.device, dtype=dtype)
    t = torch.tensor([500], device=args.device)
    times = []
    with torch.no_grad():
        for i in range(args.repeats + 1):
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x, t, context)
            if args.device == "cuda":
                torch.cuda.synchronize()
            if i:  # the first forward is a warm-up
                times.append(time.perf_counter() - start)
    if args.device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tokens = shape.tokens()
    step = statistics.median(times)
    return dict(size=args.size, params_m=param_count(config) / 1e6, frames=args.frames, tokens=tokens,
                step_s=step, tokens_per_s=tokens / step, peak_mb=peak_mb, attention=args.attention)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--frames", nargs="+", type=int, default=[5, 17])
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--attention", nargs="+", default=["sdpa"], choices=["auto", "sdpa", "flash_attn"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args()
    if args.one:
        one = argparse.Namespace(**json.loads(args.one))
        print(json.dumps(run_one(one)))  # noqa: T201 (the parent process reads this line)
        return
    rows = []
    for size in args.sizes:
        for frames in args.frames:
            for attention in args.attention:
                one = dict(size=size, frames=frames, height=args.height, width=args.width, device=args.device,
                           dtype=args.dtype, attention=attention, repeats=args.repeats)
                out = subprocess.run([sys.executable, __file__, "--one", json.dumps(one)], cwd=REPO,
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [f"DiT forward, {args.device} {args.dtype}, {args.height}x{args.width} px, median of {args.repeats}", "",
             "| size | params (M) | frames | tokens | attention | step (s) | tokens/s | peak MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['params_m']:.0f} | {r['frames']} | {r['tokens']} | {r['attention']} | "
                     f"{r['step_s']:.3f} | {r['tokens_per_s']:.0f} | {r['peak_mb']:.0f} |")
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
