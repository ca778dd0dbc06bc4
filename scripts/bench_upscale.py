"""Frames per second of per-frame video super-resolution (skyreels_core/pipelines/upscale.py), random weights.

    python scripts/bench_upscale.py                              # CPU: the table below
    python scripts/bench_upscale.py --device cuda --dtype fp16   # GPU: the same rows, plus real sizes at 540p

Models (spandrel descriptors built from state dicts in the released layouts, scripts/tiny_builders.py):
  tiny-x2   the tiny RealESRGAN_x2plus-layout RRDBNet of the tests (4 features, 1 block)
  tiny-x4   the tiny realesr-general-x4v3-layout SRVGGNetCompact (8 features, 4 convs)
  x2plus    RealESRGAN_x2plus size: RRDBNet 64 features, 23 blocks, grow 32 (16.7 M parameters)
  x4v3      realesr-general-x4v3 size: SRVGGNetCompact 64 features, 32 convs (1.2 M parameters)
Each row upscales `frames` frames `--repeats` times after a one-frame warm-up; frames/s = frames / median
seconds (the CPU here is shared: compare rows of one run, as ratios). The CPU rows of
the real sizes use a small input (their cost is proportional to the pixel count; the 540p column scales it).
`run(...)` is the entry point for other benches (scripts/bench_post.py): it returns one row as a dict.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.tiny_builders import tiny_rrdb_state_dict, tiny_srvgg_state_dict  # noqa: E402
from skyreels_core.pipelines.upscale import spandrel_upscaler, upscale_frames  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODELS = {
    "tiny-x2": lambda: tiny_rrdb_state_dict(),
    "tiny-x4": lambda: tiny_srvgg_state_dict(),
    "x2plus": lambda: tiny_rrdb_state_dict(num_feat=64, num_block=23),
    "x4v3": lambda: tiny_srvgg_state_dict(num_feat=64, num_conv=32),
}
P540 = 960 * 540


def run(model: str, height: int, width: int, frames: int = 4, *, tile: int = 0, overlap: int = 32, batch: int = 1,
        device: str = "cpu", dtype: torch.dtype = torch.float32, repeats: int = 3) -> dict:
    """Upscale `frames` random frames of height x width with `model` `repeats` times; returns the measured row
    (median seconds)."""
    import spandrel

    descriptor = spandrel.ModelLoader().load_from_state_dict(MODELS[model]()).eval().to(device=device, dtype=dtype)
    sr = spandrel_upscaler(descriptor, dtype=dtype)
    video = torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(0))
    settings = dict(scale=sr.scale, align=sr.align, tile=tile, overlap=overlap, batch=batch, device=device,
                    dtype=dtype)
    upscale_frames(sr.fn, video[:1], **settings)  # warm-up (kernel selection, CUDA context)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        upscale_frames(sr.fn, video, **settings)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    row = dict(model=model, input=f"{width}x{height}", output=f"{width * sr.scale}x{height * sr.scale}",
               frames=frames, tile=tile, batch=batch, dtype=str(dtype).removeprefix("torch."), seconds=seconds,
               fps=frames / seconds, s_per_frame_540p=seconds / frames * P540 / (height * width))
    if device == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dtype, on_gpu = DTYPES[args.dtype], args.device == "cuda"
    rows = [  # (model, height, width, tile)
        ("tiny-x2", 540, 960, 0), ("tiny-x2", 540, 960, 512), ("tiny-x4", 270, 480, 0), ("tiny-x4", 540, 960, 0),
        ("x4v3", 540, 960, 0) if on_gpu else ("x4v3", 192, 192, 0),
        ("x2plus", 540, 960, 0) if on_gpu else ("x2plus", 128, 128, 0),
    ]
    peak = " peak GiB |" if on_gpu else ""
    _say(f"device {args.device}, {args.dtype}, {torch.get_num_threads()} threads, {args.frames} frames per row")
    _say("| model | input -> output | tile | frames/s | s/frame | s/frame at 540p input |" + peak)
    _say("|---|---|---|---|---|---|" + ("---|" if on_gpu else ""))
    for model, height, width, tile in rows:
        frames = args.frames if (on_gpu or model.startswith("tiny")) else 1
        r = run(model, height, width, frames, tile=tile, device=args.device, dtype=dtype, repeats=args.repeats)
        line = (f"| {model} | {r['input']} -> {r['output']} | {tile or 'whole'} | {r['fps']:.3g} | "
                f"{r['seconds'] / frames:.3g} | {r['s_per_frame_540p']:.3g} |")
        _say(line + (f" {r['peak_gib']:.2f} |" if on_gpu else ""))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

if __name__ == "__main__":
    main()
