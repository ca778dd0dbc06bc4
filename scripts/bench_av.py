"""Benchmark the SkyReels-V4 AV MMDiT: one conditional forward (one sampler step without CFG) per clip duration.

    python scripts/bench_av.py                                   # SMALL preset, CPU, fp32, 64x64 px, 5/10/15 s
    python scripts/bench_av.py --device cuda --dtype bf16 --preset V4_GUESS --height 480 --width 832 --blocks 2 8

Random weights (timing does not depend on values). For each duration the clip has the nearest 4n+1 frame count
at --fps, and the audio covers frames / fps seconds (44100 / 1024 latents per second). Reported per duration:
  - step: forward of both towers with the audio<->video cross-attention (best of --repeats after a warm-up);
  - audio share = (step without cross-attention - video tower alone) / step;
  - cross share = (step - step without cross-attention) / step   (ablation, same model and inputs);
  - peak memory: CUDA max_memory_allocated during the full step; on CPU the process' peak RSS (ru_maxrss) above
    the RSS after the model was built (durations run in increasing order, so the high-water mark is this step's).
At small spatial sizes the audio tower's share is far above its share at 480p/720p (a 64x64 px frame is 16 video
tokens, a 480p frame 1560, while audio is ~43 tokens/s at any size): read the CPU table as a test of scaling.
--blocks DUAL SINGLE overrides the depth (e.g. to fit V4_GUESS's width on one GPU); time scales ~linearly.
On CPU the default is 1 thread timed by process CPU time, so other jobs on a shared machine barely disturb it.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, "") and str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyreels_core.models.av_mmdit import (  # noqa: E402
    AudioStream,
    AVDiTConfig,
    AVMMDiT,
    VideoStream,
    param_count,
)
from skyreels_core.shapes import AudioLatentShape, VideoLatentShape, nearest_valid_frames  # noqa: E402

log = logging.getLogger("bench_av")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def clip_inputs(config: AVDiTConfig, seconds: float, args, device, dtype):
    """(VideoStream, AudioStream, timestep, context, info) for a clip of `seconds`."""
    frames = nearest_valid_frames(round(seconds * args.fps) + 1)
    shape = VideoLatentShape.from_pixels(frames, args.height, args.width)
    num_audio = AudioLatentShape.from_video(frames, args.fps).frames  # as the pipeline samples it
    g = torch.Generator(device="cpu").manual_seed(0)
    video = torch.randn(1, 2 * config.video_channels + 1, shape.frames, shape.height, shape.width, generator=g)
    audio = torch.randn(1, config.audio_channels, num_audio, generator=g)
    context = torch.randn(1, args.text_len, config.text_dim, generator=g)
    to = dict(device=device, dtype=dtype)
    info = dict(
        frames=frames,
        latent=f"{shape.frames}x{shape.height}x{shape.width}",
        video_tokens=shape.tokens(config.patch_size),
        audio_tokens=num_audio,
    )
    timestep = torch.tensor([500.0], device=device)
    return VideoStream(video.to(**to)), AudioStream(audio.to(**to)), timestep, context.to(**to), info


def timed(fn, repeats: int, device, clock) -> float:
    """Best time of fn() over `repeats` calls (after the caller's warm-up), on `clock`."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = clock()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(clock() - start)
    return min(times)  # min: the least disturbed run on a shared machine


def rss_mib() -> float:
    """Process peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_duration(model, config, seconds, args, device, dtype, rss_after_build) -> dict:
    video, audio, timestep, context, info = clip_inputs(config, seconds, args, device, dtype)

    def step(v=video, a=audio, cross=True):
        return model(v, a, timestep, context, fps=args.fps, cross_modal=cross)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step()  # warm-up, and the memory high-water mark of the full step
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = rss_mib() - rss_after_build
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    full = timed(step, args.repeats, device, clock)
    no_cross = timed(lambda: step(cross=False), args.repeats, device, clock)
    video_only = timed(lambda: step(a=None), args.repeats, device, clock)
    return dict(
        seconds=seconds,
        **info,
        step=full,
        no_cross=no_cross,
        video_only=video_only,
        peak_mib=peak,
        audio_share=(no_cross - video_only) / full,
        cross_share=(full - no_cross) / full,
    )


def markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| clip | frames | video latent | video tok | audio tok | step (s) | no cross (s) | video only (s) "
        "| audio share | AV cross share | peak mem (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seconds']:g} s | {r['frames']} | {r['latent']} | {r['video_tokens']} | {r['audio_tokens']} | "
            f"{r['step']:.3f} | {r['no_cross']:.3f} | {r['video_only']:.3f} | {100 * r['audio_share']:.0f} % | "
            f"{100 * r['cross_share']:.0f} % | {r['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="SMALL", choices=["TINY", "SMALL", "V4_GUESS"])
    parser.add_argument("--blocks", type=int, nargs=2, metavar=("DUAL", "SINGLE"), help="override the depth")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--durations", type=float, nargs="+", default=[5.0, 10.0, 15.0])
    parser.add_argument("--fps", type=float, default=16.0)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--text-len", type=int, default=128, help="MLLM context tokens")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch default)")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu: process CPU time (default on CPU with 1 thread: robust to other load on a shared "
        "machine); wall: elapsed time (default otherwise)",
    )
    parser.add_argument("--attn-backend", default="auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock is None:
        args.clock = "cpu" if args.device == "cpu" and args.threads == 1 else "wall"
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    config = getattr(AVDiTConfig, args.preset)
    if args.blocks:
        config = dataclasses.replace(config, num_dual_blocks=args.blocks[0], num_single_blocks=args.blocks[1])
    model = AVMMDiT(config, device=device, dtype=dtype).eval().requires_grad_(False)
    for block in getattr(model, "av_cross", []):  # non-zero gates (cost does not depend on it, but be honest)
        block.v2a.gate.fill_(0.1)
        block.a2v.gate.fill_(0.1)
    model.attn_backend = args.attn_backend
    rss_after_build = rss_mib()
    rows = []
    with torch.inference_mode():
        for seconds in sorted(args.durations):
            rows.append(bench_duration(model, config, seconds, args, device, dtype, rss_after_build))
            log.info("%g s done (%.2f s/step)", seconds, rows[-1]["step"])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    header = (
        f"AV MMDiT {args.preset} (dim {config.dim}, {config.num_dual_blocks}+{config.num_single_blocks} blocks, "
        f"{param_count(config) / 1e6:.0f}M params), {args.dtype}, {where}, {args.height}x{args.width} px, "
        f"{args.fps:g} fps, {args.text_len} text tokens, one conditional forward, {args.clock} time"
    )
    print(markdown(rows, header))  # noqa: T201 (the script's output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
