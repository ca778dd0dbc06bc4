"""Windowed vs dense attention for the SkyReels-V4 refiner: the FLOP formula and measured time of one block.

    python scripts/bench_refiner_attention.py             # CPU: formula table + one dual / single block, timed
    python scripts/bench_refiner_attention.py --quick     # formula table + a smaller timed block
    python scripts/bench_refiner_attention.py --device cuda --dtype bf16 --grid 21 30 52

Two measures, same run, as ratios dense / windowed:
  - formula: (query, key) pairs scored by the joint self-attention, dense = (L + L_txt)^2, windowed = sum over
    windows |w| (|w| + L_txt) + L_txt (L + L_txt) (regular and shifted plans averaged, as the blocks alternate),
    and the whole block (q/k/v/o and FFN of both streams + the attention) in FLOPs; pure arithmetic
    (`nn.attention.window_pairs`), nothing allocated, so it runs for the refiner at 1080p x 161 frames;
  - measured: the attention alone (`attention` vs `window_attention` on the same q, k, v), and one
    DualStreamBlock and one SingleStreamBlock forward at a moderate grid (random weights), dense and windowed,
    median over --repeats after a warm-up, next to the formula's ratio for the same sizes. On CPU one thread, timed by process CPU time (a shared
    machine barely disturbs it); on CUDA wall time with synchronisation.
`refiner_attention_report()` returns the records (for a combined benchmark script). Prints JSON lines and a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, "") and str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyreels_core.models.av_blocks import DualStreamBlock, SingleStreamBlock, StreamInputs  # noqa: E402
from skyreels_core.models.av_mmdit import AVDiTConfig, param_count  # noqa: E402
from skyreels_core.nn.attention import attention, window_attention, window_pairs, window_plan  # noqa: E402
from skyreels_core.nn.rope import grid_positions, rope_angles  # noqa: E402

# (name, latent token grid (frames, rows, cols) after the 1x2x2 patch, text tokens)
FORMULA_CASES = (
    # 1080p (1920 x 1088: the nearest multiple of 16) x 161 frames at 32 fps = the x2 refinement of 81 frames at 16 fps
    ("refiner 1088x1920, 161 frames (81 x2)", (41, 68, 120), 512),
    ("refiner 720x1280, 161 frames (81 x2)", (41, 45, 80), 512),
    ("refiner 720x1280, 81 frames (x1)", (21, 45, 80), 512),
)


def block_flops(tokens: int, text: int, pairs: int, dim: int, ffn: int, single: bool) -> int:
    """FLOPs of one tower block: projections and FFN of both streams, the joint attention (4 x pairs x dim), and for
    a single-stream block the text cross-attention of the modality tokens."""
    linear = 2 * (tokens + text) * (4 * dim * dim + 2 * dim * ffn)
    attention = 4 * pairs * dim
    cross = 2 * (2 * tokens * dim * dim + 2 * text * dim * dim) + 4 * tokens * text * dim if single else 0
    return linear + attention + cross


def formula_record(name: str, grid, text: int, config: AVDiTConfig) -> dict:
    """Dense vs windowed attention pairs and block FLOPs of `config` on a token grid (arithmetic only)."""
    tokens = grid[0] * grid[1] * grid[2]
    dense = (tokens + text) ** 2
    windowed = [window_pairs(grid, config.attention_window, shifted, text) for shifted in (False, True)]
    mean_windowed = sum(windowed) / 2
    flops = {}
    for label, pairs in (("dense", dense), ("windowed", mean_windowed)):
        flops[label] = sum(block_flops(tokens, text, int(pairs), config.dim, config.ffn_dim, i >= config.num_dual_blocks)
                           for i in range(config.num_blocks))
    return {
        "what": "formula", "case": name, "grid": list(grid), "tokens": tokens, "text_tokens": text,
        "window": list(config.attention_window), "attention_pairs_dense": dense,
        "attention_pairs_windowed_regular": windowed[0], "attention_pairs_windowed_shifted": windowed[1],
        "attention_ratio": dense / mean_windowed, "model_tflops_per_forward_dense": flops["dense"] / 1e12,
        "model_tflops_per_forward_windowed": flops["windowed"] / 1e12, "model_ratio": flops["dense"] / flops["windowed"],
        "parameters_billion": param_count(config) / 1e9,
    }


def _inputs(config: AVDiTConfig, grid, text: int, windowed: bool, device, dtype) -> tuple:
    tokens = grid[0] * grid[1] * grid[2]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, tokens, config.dim, generator=gen).to(device)
    xt = torch.randn(1, text, config.dim, generator=gen).to(device)
    angles = rope_angles(grid_positions(*grid, device=device), config.head_dim, config.rope_theta)
    e0 = torch.randn(1, 6, 1, config.dim, generator=gen).to(device) * 0.1
    inputs = StreamInputs(
        e0=e0, e0_text=e0, angles=angles, angles_joint=torch.cat([angles, torch.zeros(text, angles.shape[1],
                                                                                        device=device)]),
        context=xt.to(dtype),
        window=window_plan(grid, config.attention_window, length=tokens + text, device=device) if windowed else None,
    )
    return x, xt, inputs


def _median_seconds(fn, repeats: int, device: str) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        else:
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
    return statistics.median(times)


def measured_record(config: AVDiTConfig, grid, text: int, repeats: int, device: str, dtype: torch.dtype) -> dict:
    """Median seconds of one dual- and one single-stream block, dense and windowed (same weights and inputs)."""
    torch.manual_seed(0)
    args = (config.dim, config.num_heads, config.ffn_dim, config.eps)
    blocks = {"dual": DualStreamBlock(*args, ops=torch.nn), "single": SingleStreamBlock(*args, ops=torch.nn)}
    record = {"what": "measured", "device": device, "dtype": str(dtype).replace("torch.", ""), "grid": list(grid),
              "tokens": grid[0] * grid[1] * grid[2], "text_tokens": text, "window": list(config.attention_window),
              "dim": config.dim, "heads": config.num_heads, "threads": torch.get_num_threads()}
    with torch.no_grad():
        for kind, block in blocks.items():
            block = block.to(device, dtype).eval()
            for mode in ("dense", "windowed"):
                x, xt, inputs = _inputs(config, grid, text, mode == "windowed", device, dtype)
                record[f"{kind}_{mode}_s"] = _median_seconds(lambda b=block, a=(x, xt, inputs): b(*a), repeats, device)
            record[f"{kind}_ratio"] = record[f"{kind}_dense_s"] / record[f"{kind}_windowed_s"]
        x, xt, inputs = _inputs(config, grid, text, True, device, dtype)
        q, k, v = (torch.randn(1, x.shape[1] + text, config.num_heads, config.head_dim, device=device, dtype=dtype)
                   for _ in range(3))
        record["attention_dense_s"] = _median_seconds(lambda: attention(q, k, v), repeats, device)
        record["attention_windowed_s"] = _median_seconds(lambda: window_attention(q, k, v, inputs.window), repeats,
                                                         device)
    record["attention_ratio"] = record["attention_dense_s"] / record["attention_windowed_s"]
    tokens, dense = record["tokens"], (record["tokens"] + text) ** 2
    pairs = window_pairs(grid, config.attention_window, False, text)
    record["attention_ratio_formula"] = dense / pairs
    for kind in blocks:
        single = kind == "single"
        record[f"{kind}_ratio_formula"] = (block_flops(tokens, text, dense, config.dim, config.ffn_dim, single)
                                           / block_flops(tokens, text, pairs, config.dim, config.ffn_dim, single))
    return record


def refiner_attention_report(*, quick: bool = False, device: str = "cpu", dtype: torch.dtype = torch.float32,
                             grid=None, repeats: int | None = None) -> list[dict]:
    """Formula records for the refiner guess at 720p/1080p, and one measured record at a moderate grid."""
    records = [formula_record(name, g, text, AVDiTConfig.REFINER_GUESS) for name, g, text in FORMULA_CASES]
    # measured: SMALL's width (head_dim 128 like the guess), windows of 3 x 8 x 8 tokens on a 288 x 512 px,
    # 33-frame clip (9 x 18 x 32 tokens); --quick: a 9 x 12 x 16 grid
    small = dataclasses.replace(AVDiTConfig.SMALL, attention_window=(3, 8, 8))
    grid = tuple(grid or ((9, 12, 16) if quick else (9, 18, 32)))
    records.append(measured_record(small, grid, 64, repeats or (3 if quick else 5), device, dtype))
    return records


def _table(records: list[dict]) -> str:
    lines = ["| case | tokens | window | attention pairs dense / windowed | block FLOPs dense / windowed |",
             "|---|---|---|---|---|"]
    for r in records:
        if r["what"] == "formula":
            lines.append(f"| {r['case']} | {r['tokens']:,} + {r['text_tokens']} text | {tuple(r['window'])} | "
                         f"{r['attention_ratio']:.1f}x | {r['model_ratio']:.1f}x "
                         f"({r['model_tflops_per_forward_dense']:.0f} vs {r['model_tflops_per_forward_windowed']:.0f} "
                         f"TFLOP per forward) |")
        else:
            lines.append(f"| measured {r['device']} {r['dtype']}, grid {tuple(r['grid'])} | {r['tokens']:,} + "
                         f"{r['text_tokens']} text | {tuple(r['window'])} | formula {r['attention_ratio_formula']:.1f}x"
                         f"; measured {r['attention_dense_s'] * 1e3:.0f} / {r['attention_windowed_s'] * 1e3:.0f} ms = "
                         f"{r['attention_ratio']:.1f}x | dual: formula {r['dual_ratio_formula']:.2f}x, measured "
                         f"{r['dual_dense_s'] * 1e3:.0f} / {r['dual_windowed_s'] * 1e3:.0f} ms = {r['dual_ratio']:.2f}x;"
                         f" single: formula {r['single_ratio_formula']:.2f}x, measured {r['single_dense_s'] * 1e3:.0f}"
                         f" / {r['single_windowed_s'] * 1e3:.0f} ms = {r['single_ratio']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller timed grid")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--grid", type=int, nargs=3, help="timed token grid (frames, rows, cols)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: stable on a shared machine)")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    records = refiner_attention_report(quick=args.quick, device=args.device, dtype=dtype, grid=args.grid,
                                       repeats=args.repeats)
    for record in records:
        sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.write(_table(records) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
