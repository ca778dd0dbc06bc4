"""Post-processing benchmark (issue #12): RIFE in-between frames/s, per-frame SR frames/s and memory, and the
refiner's dense / windowed attention cost, in one table.

    python scripts/bench_post.py                          # CPU, one thread, real-size models: 4 min here
    python scripts/bench_post.py --only rife --sizes 540p # a part of it
    python scripts/bench_post.py --small --only sr        # SR with the tiny test models instead (20 s)
    python scripts/bench_post.py --device cuda            # GPU: fp16, bf16 and fp32; more frames, repeats
    python scripts/bench_post.py --device cuda --dtypes bf16 --json post.json

All weights are random, built at the released channel widths, so speed and memory are those of the real files
(the output pictures are not). Each configuration runs in a fresh subprocess, so its memory peak is its own.

RIFE (`skyreels_core.models.rife.RIFE_PRESETS`: 4.26 = rife426.pth, 4.7 = rife47/49.pth), the run of
`pipelines.interpolate.measure_speed` (`interpolate_frames`, x2 of `--rife-frames` smooth random frames: n frames
-> n - 1 in-between frames; scene-cut detection off; a one-pair warm-up first), `--rife-batch` pairs per model
call (the node's default 4). Reported: in-between frames made per second (the copied frames are free). Sizes:
540p = 960x544, 1080p = 1920x1088 (the multiples of 16 the V4 pipeline renders; RIFE pads to 32 / 64 anyway).
CPU default: 3 frames in (2 timed in-between frames); GPU: 17 (16).

SR (per-frame, `pipelines.upscale.upscale_frames` on a spandrel descriptor, as the Upscale Video node):
  x2plus  RealESRGAN_x2plus layout, RRDBNet 64 features, 23 blocks (16.7 M parameters): 960x544 -> 1920x1088
  x4v3    realesr-general-x4v3 layout, SRVGGNetCompact 64 features, 32 convs (1.2 M): 480x272 -> 1920x1088;
          on a GPU also 960x544 -> 3840x2176
each whole-frame and in the node's default tiles (512 px, overlap 64) where a frame is larger than one tile. CPU
default: ONE frame per row, timed once after a 64x64 warm-up (x2plus takes about a minute per 540p frame on one
core); GPU: `--sr-frames` 8 in batches of 4, the median of `--repeats` 3 after a one-batch warm-up. `--small` runs
the same rows with the tiny test models (tiny-x2: 4 features, 1 block; tiny-x4: 8 features, 4 convs).

Refiner (scripts/bench_refiner_attention.py, `refiner_attention_report`): the formula's dense / windowed ratio of
attention pairs and of whole-model FLOPs for the refiner guess at 1080p x2 (161 frames) and 720p, and one dual- and
one single-stream block (SMALL width, head_dim 128) timed dense vs windowed at a moderate grid (CPU: 9x18x32
tokens, process CPU time; GPU: 21x30x52, bf16).

Memory, per configuration: CPU = the process's peak RSS, and "working" = that peak minus the RSS once the model
and inputs are built (so the frames in and out are in it); CUDA = torch.cuda.max_memory_allocated, "working" =
peak minus the weights (memory_allocated before the run).
Time: with one CPU thread, the process's CPU time (time.process_time: other load on a shared machine barely
changes it); with more threads, or on CUDA, wall time, on CUDA bracketed by torch.cuda.synchronize. Each record
says which ("clock"). Read CPU rows as ratios between rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.bench_refiner_attention import FORMULA_CASES, formula_record, refiner_attention_report  # noqa: E402
from scripts.bench_upscale import MODELS as SR_MODELS  # noqa: E402
from skyreels_core.models.av_mmdit import AVDiTConfig  # noqa: E402
from skyreels_core.models.rife import RIFE_PRESETS, IFNet  # noqa: E402
from skyreels_core.pipelines.interpolate import interpolate_frames  # noqa: E402
from skyreels_core.pipelines.upscale import spandrel_upscaler, upscale_frames  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SIZES = {"540p": (544, 960), "720p": (720, 1280), "1080p": (1088, 1920)}  # name -> (height, width)
SECTIONS = ("rife", "sr", "refiner")
NODE_TILE, NODE_OVERLAP = 512, 64  # SkyReels Upscale Video's defaults
# SR rows: (model, height, width, tile); the tiled row only where a frame is larger than one tile
SR_ROWS_CPU = (("x2plus", 544, 960, 0), ("x2plus", 544, 960, NODE_TILE), ("x4v3", 272, 480, 0))
SR_ROWS_GPU = SR_ROWS_CPU + (("x4v3", 544, 960, 0), ("x4v3", 544, 960, NODE_TILE))
SMALL_MODELS = {"x2plus": "tiny-x2", "x4v3": "tiny-x4"}
REFINER_GRID = {"cpu": (9, 18, 32), "cuda": (21, 30, 52)}  # timed token grids (frames, rows, cols)


# ---------------------------------------------------------------- memory


def _is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _rss_mb() -> float | None:
    """The current RSS (Linux); elsewhere the peak so far, which is what a base can be at best."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        return _peak_rss_mb()


class _Memory:
    """Created once the model and inputs are built: remembers the base and (CUDA) resets the peak counter."""

    def __init__(self, device: str):
        self.cuda = _is_cuda(device)
        if self.cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.device, self.base = device, torch.cuda.memory_allocated(device) / 2**20
        else:
            self.base = _rss_mb()

    def read(self) -> dict:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = _peak_rss_mb()
        working = None if peak is None or self.base is None else peak - self.base
        return {
            "memory": "cuda max allocated" if self.cuda else "process peak RSS",
            "base_mb": self.base,
            "peak_mb": peak,
            "working_mb": working,
        }


def _sync(device: str) -> None:
    if _is_cuda(device):
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- one configuration each


def _clock(device: str) -> tuple[Callable[[], float], str]:
    """The timer: process CPU time for a one-thread CPU run (other load on a shared machine barely changes it),
    else wall time (on CUDA bracketed by `_sync`)."""
    if not _is_cuda(device) and torch.get_num_threads() == 1:
        return time.process_time, "process CPU time"
    return time.perf_counter, "wall"


def rife_record(model: str, height: int, width: int, *, frames: int, batch: int, device: str, dtype: str) -> dict:
    """x2 interpolation of `frames` random frames with a random-weight IFNet of layout RIFE_PRESETS[model].

    The run of `pipelines.interpolate.measure_speed` (the same seeded smooth frames and options: scene cuts off,
    duration not kept, so n frames -> n - 1 in-between frames, a one-pair warm-up first), timed with `_clock`
    instead of its wall clock.
    """
    torch.manual_seed(0)
    net = IFNet(RIFE_PRESETS[model]).eval().to(device=device, dtype=DTYPES[dtype])
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(frames, 3, max(1, height // 16), max(1, width // 16), generator=generator)
    images = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False).movedim(1, -1)
    options = dict(multiplier=2, scene_cut_threshold=0.0, batch_size=batch, keep_duration=False)
    memory = _Memory(device)
    interpolate_frames(net, images[:2], **options)  # warm-up: kernels, allocator
    clock, clock_name = _clock(device)
    _sync(device)
    start = clock()
    result = interpolate_frames(net, images, **options)
    _sync(device)
    seconds = clock() - start
    made = sum(source.t > 0 for source in result.sources)
    return {
        "model": model,
        "version": net.config.version,
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "input": f"{width}x{height}",
        "frames": frames,
        "batch": batch,
        "clock": clock_name,
        "seconds": seconds,
        "in_between": made,
        "fps": made / seconds,
        "s_per_frame": seconds / made,
        **memory.read(),
    }


def sr_record(
    model: str,
    height: int,
    width: int,
    *,
    tile: int,
    overlap: int,
    frames: int,
    batch: int,
    repeats: int,
    device: str,
    dtype: str,
) -> dict:
    """Per-frame SR of `frames` random frames with a random-weight spandrel model in a released layout."""
    import spandrel

    torch_dtype = DTYPES[dtype]
    torch.manual_seed(0)
    descriptor = spandrel.ModelLoader().load_from_state_dict(SR_MODELS[model]()).eval()
    descriptor = descriptor.to(device=device, dtype=torch_dtype)
    sr = spandrel_upscaler(descriptor, dtype=torch_dtype)
    video = torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(0))
    settings = dict(
        scale=sr.scale, align=sr.align, tile=tile, overlap=overlap, batch=batch, device=device, dtype=torch_dtype
    )
    memory = _Memory(device)
    if _is_cuda(device):  # one full batch: CUDA context, cuDNN algorithms, allocator pools
        upscale_frames(sr.fn, video[:batch], **settings)
    else:  # a 64x64 crop, whole: the first call's set-up without paying for another (minute-long) frame
        upscale_frames(sr.fn, video[:1, :64, :64].contiguous(), **{**settings, "tile": 0})
    clock, clock_name = _clock(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = clock()
        upscale_frames(sr.fn, video, **settings)
        _sync(device)
        times.append(clock() - start)
    seconds = statistics.median(times)
    return {
        "model": model,
        "params_m": sum(p.numel() for p in descriptor.model.parameters()) / 1e6,
        "input": f"{width}x{height}",
        "output": f"{width * sr.scale}x{height * sr.scale}",
        "tile": tile,
        "overlap": overlap if tile else 0,
        "frames": frames,
        "batch": batch,
        "repeats": repeats,
        "clock": clock_name,
        "seconds": seconds,
        "fps": frames / seconds,
        "s_per_frame": seconds / frames,
        **memory.read(),
    }


def refiner_records(*, device: str, dtype: str, grid, repeats: int | None, measure: bool = True) -> list[dict]:
    """The refiner attention report (formula records; with `measure`, one timed block record at `grid`)."""
    if not measure:
        return [formula_record(name, g, text, AVDiTConfig.REFINER_GUESS) for name, g, text in FORMULA_CASES]
    return refiner_attention_report(device=device, dtype=DTYPES[dtype], grid=grid, repeats=repeats)


def run_config(config: dict) -> list[dict]:
    """Run one configuration (a dict from `plan`) in this process; returns its records, each tagged with the
    section, device, dtype and threads."""
    config = dict(config)
    section, device = config.pop("section"), config["device"]
    if _is_cuda(device) and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: torch {torch.__version__} sees no CUDA device.")
    threads = config.pop("threads", None)
    if threads:
        torch.set_num_threads(threads)
    tags = {"section": section, "device": device, "dtype": config["dtype"], "threads": torch.get_num_threads()}
    if section == "rife":
        records = [rife_record(**config)]
    elif section == "sr":
        records = [sr_record(**config)]
    elif section == "refiner":
        records = refiner_records(**config)
    else:
        raise ValueError(f"unknown section {section!r}; one of {SECTIONS}")
    return [{**tags, **record} for record in records]


# ---------------------------------------------------------------- plan and subprocesses


def parse_size(text: str) -> tuple[int, int]:
    """'540p' / '1080p' / '720p' or WIDTHxHEIGHT -> (height, width)."""
    if text in SIZES:
        return SIZES[text]
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r}: use {', '.join(SIZES)} or WIDTHxHEIGHT (e.g. 960x544)"
        ) from None
    return height, width


def plan(args: argparse.Namespace) -> list[dict]:
    """The configurations the arguments ask for, in table order (each becomes one subprocess)."""
    cuda = _is_cuda(args.device)
    common = dict(device=args.device)
    configs = []
    for dtype in args.dtypes:
        if "rife" in args.only:
            for model in args.rife:
                for height, width in args.sizes:
                    configs.append(
                        dict(
                            section="rife",
                            model=model,
                            height=height,
                            width=width,
                            frames=args.rife_frames,
                            batch=args.rife_batch,
                            dtype=dtype,
                            **common,
                        )
                    )
        if "sr" in args.only:
            for model, height, width, tile in SR_ROWS_GPU if cuda else SR_ROWS_CPU:
                if args.sr_size:  # one input size for every row (e.g. a quick run); tiled rows only if it tiles
                    height, width = args.sr_size
                    if tile and tile >= max(height, width):
                        continue
                configs.append(
                    dict(
                        section="sr",
                        model=SMALL_MODELS[model] if args.small else model,
                        height=height,
                        width=width,
                        tile=tile,
                        overlap=NODE_OVERLAP,
                        frames=args.sr_frames,
                        batch=min(args.sr_batch, args.sr_frames),
                        repeats=args.repeats,
                        dtype=dtype,
                        **common,
                    )
                )
    if "refiner" in args.only:
        dtype = "bf16" if cuda and "bf16" in args.dtypes else args.dtypes[0]
        configs.append(
            dict(
                section="refiner",
                grid=args.refiner_grid or REFINER_GRID["cuda" if cuda else "cpu"],
                repeats=args.refiner_repeats,
                dtype=dtype,
                **common,
            )
        )
    unique = []  # --sr-size can make two rows the same
    for config in configs:
        config["threads"] = args.threads
        if config not in unique:
            unique.append(config)
    return unique


def _label(config: dict) -> str:
    parts = [
        config["section"],
        config.get("model", ""),
        f"{config.get('width', '')}x{config.get('height', '')}" if "width" in config else "",
        f"tile {config['tile']}" if config.get("tile") else "",
        config["dtype"],
    ]
    return " ".join(p for p in parts if p)


def run_all(configs: list[dict], in_process: bool = False) -> list[dict]:
    """Each configuration in a fresh subprocess (its own memory peak) or, with in_process, here. A configuration
    that fails (e.g. out of memory) gives one record with an `error` and the rest go on."""
    records = []
    for i, config in enumerate(configs, 1):
        _err(f"[{i}/{len(configs)}] {_label(config)} ...")
        start = time.perf_counter()
        if in_process:
            got = run_config(config)
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--single", json.dumps(config)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode == 0:
                got = json.loads(done.stdout.splitlines()[-1])
            else:
                lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
                got = [
                    {
                        "section": config["section"],
                        "device": config["device"],
                        "dtype": config["dtype"],
                        **{k: config[k] for k in ("model", "tile", "overlap") if k in config},
                        "input": f"{config['width']}x{config['height']}" if "width" in config else None,
                        "error": lines[-1],
                    }
                ]
                _err("  failed: " + lines[-1])
        _err(f"  {time.perf_counter() - start:.1f} s")
        records.extend(got)
    return records


# ---------------------------------------------------------------- summary


def ratios(records: list[dict]) -> dict:
    """Ratios between rows of one run: RIFE 4.26 / 4.7 and 1080p / 540p seconds per in-between frame; SR tiled /
    whole seconds and working memory; the refiner's dense / windowed ratios (formula at 1080p x2, measured)."""
    out: dict = {}
    rife = {(r["model"], r["input"], r["dtype"]): r for r in records if r["section"] == "rife" and "error" not in r}
    for (model, size, dtype), r in rife.items():
        other = rife.get(("4.7", size, dtype))
        if model == "4.26" and other:
            out[f"rife 4.26/4.7 time {size} {dtype}"] = r["s_per_frame"] / other["s_per_frame"]
        small = rife.get((model, "960x544", dtype))
        if size == "1920x1088" and small:
            out[f"rife {model} 1080p/540p time {dtype}"] = r["s_per_frame"] / small["s_per_frame"]
    sr = [r for r in records if r["section"] == "sr" and "error" not in r]
    for r in sr:
        whole = next(
            (
                w
                for w in sr
                if not w["tile"] and (w["model"], w["input"], w["dtype"]) == (r["model"], r["input"], r["dtype"])
            ),
            None,
        )
        if r["tile"] and whole:
            key = f"sr {r['model']} {r['input']} tile {r['tile']}/whole {r['dtype']}"
            out[key + " time"] = r["s_per_frame"] / whole["s_per_frame"]
            if r["working_mb"] and whole["working_mb"]:
                out[key + " working memory"] = r["working_mb"] / whole["working_mb"]
    for r in records:
        if r["section"] == "refiner" and r.get("what") == "formula" and r["case"] == FORMULA_CASES[0][0]:
            out["refiner 1080p x2 formula attention dense/windowed"] = r["attention_ratio"]
            out["refiner 1080p x2 formula model FLOPs dense/windowed"] = r["model_ratio"]
        if r["section"] == "refiner" and r.get("what") == "measured":
            for key in ("attention", "dual", "single"):
                out[f"refiner measured {key} dense/windowed"] = r[f"{key}_ratio"]
                out[f"refiner formula {key} dense/windowed (same grid)"] = r[f"{key}_ratio_formula"]
    return out


def _mb(value) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown(records: list[dict], summary: dict) -> str:
    """The records as markdown tables (RIFE, SR, refiner) and the ratios."""
    lines = []
    rife = [r for r in records if r["section"] == "rife"]
    if rife:
        lines += [
            "| RIFE layout | params | input | dtype | in-between frames (timed) | in-between frames/s | s per "
            "in-between frame | peak MB | working MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rife:
            if "error" in r:
                lines.append(f"| {r.get('model')} | | {r['input']} | {r['dtype']} | failed: {r['error']} | | | | |")
                continue
            lines.append(
                f"| {r['model']} ({r['version']}) | {r['params_m']:.3g} M | {r['input']} | {r['dtype']} | "
                f"{r['in_between']} | {r['fps']:.3g} | {r['s_per_frame']:.3g} | {_mb(r['peak_mb'])} | "
                f"{_mb(r['working_mb'])} |"
            )
        lines.append("")
    sr = [r for r in records if r["section"] == "sr"]
    if sr:
        lines += [
            "| SR model | params | input -> output | tile / overlap | dtype | frames (timed) | frames/s | "
            "s per frame | peak MB | working MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sr:
            tiles = f"{r['tile']} / {r.get('overlap', '?')}" if r.get("tile") else "whole"
            if "error" in r:
                lines.append(
                    f"| {r.get('model')} | | {r['input']} | {tiles} | {r['dtype']} | failed: {r['error']} | | | | |"
                )
                continue
            lines.append(
                f"| {r['model']} | {r['params_m']:.3g} M | {r['input']} -> {r['output']} | {tiles} | "
                f"{r['dtype']} | {r['frames']} x {r['repeats']} | {r['fps']:.3g} | {r['s_per_frame']:.3g} | "
                f"{_mb(r['peak_mb'])} | {_mb(r['working_mb'])} |"
            )
        lines.append("")
    refiner = [r for r in records if r["section"] == "refiner"]
    if refiner:
        lines += ["| refiner (dense / windowed) | tokens | attention | block or model |", "|---|---|---|---|"]
        for r in refiner:
            if "error" in r:
                lines.append(f"| failed: {r['error']} | | | |")
            elif r["what"] == "formula":
                lines.append(
                    f"| formula: {r['case']}, window {tuple(r['window'])} | {r['tokens']:,} + "
                    f"{r['text_tokens']} text | {r['attention_ratio']:.1f}x pairs | {r['model_ratio']:.1f}x "
                    f"model FLOPs ({r['model_tflops_per_forward_dense']:,.0f} vs "
                    f"{r['model_tflops_per_forward_windowed']:,.0f} TFLOP per forward) |"
                )
            else:
                lines.append(
                    f"| measured {r['device']} {r['dtype']}, {r['threads']} threads: SMALL block (dim {r['dim']}), "
                    f"grid {tuple(r['grid'])}, window {tuple(r['window'])} | {r['tokens']:,} + {r['text_tokens']} "
                    f"text | {r['attention_dense_s'] * 1e3:.0f} / {r['attention_windowed_s'] * 1e3:.0f} ms = "
                    f"{r['attention_ratio']:.1f}x (formula {r['attention_ratio_formula']:.1f}x) | dual "
                    f"{r['dual_ratio']:.2f}x (formula {r['dual_ratio_formula']:.2f}x), single "
                    f"{r['single_ratio']:.2f}x (formula {r['single_ratio_formula']:.2f}x) |"
                )
        lines.append("")
    if summary:
        lines += ["| ratio | value |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in summary.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def _csv(choices):
    def parse(text: str) -> list[str]:
        values = [v for v in text.split(",") if v]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: a comma list of {', '.join(choices)}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--dtypes",
        type=_csv(tuple(DTYPES)),
        help="comma list (default: fp32 on CPU, fp16,bf16,fp32 on CUDA; the refiner runs bf16 on CUDA when listed)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on CPU, torch's default on CUDA)")
    p.add_argument("--only", type=_csv(SECTIONS), default=list(SECTIONS), help="comma list of rife,sr,refiner")
    p.add_argument("--rife", type=_csv(tuple(RIFE_PRESETS)), default=["4.26", "4.7"], help="RIFE layouts")
    p.add_argument(
        "--sizes",
        type=lambda s: [parse_size(v) for v in s.split(",") if v],
        default=[SIZES["540p"], SIZES["1080p"]],
        help="RIFE sizes: 540p,720p,1080p or WxH list",
    )
    p.add_argument("--rife-frames", type=int, help="input frames (n - 1 are made; default 3 on CPU, 17 on CUDA)")
    p.add_argument("--rife-batch", type=int, default=4, help="pairs per RIFE call (node default 4)")
    p.add_argument("--small", action="store_true", help="SR with the tiny test models instead of the real sizes")
    p.add_argument("--sr-size", type=parse_size, help="one SR input size for every row (WxH), e.g. a quick run")
    p.add_argument("--sr-frames", type=int, help="frames per SR row (default 1 on CPU, 8 on CUDA)")
    p.add_argument("--sr-batch", type=int, default=4, help="frames per SR call (node default 4)")
    p.add_argument("--repeats", type=int, help="SR timed runs, median (default 1 on CPU, 3 on CUDA)")
    p.add_argument("--refiner-grid", type=int, nargs=3, help="timed refiner token grid (frames, rows, cols)")
    p.add_argument("--refiner-repeats", type=int, help="refiner timed runs (default: its bench's, 5)")
    p.add_argument("--json", type=Path, help="also write the records and ratios here")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every configuration in this process (no per-configuration memory peak on CPU)",
    )
    p.add_argument("--single", help=argparse.SUPPRESS)
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the device-dependent defaults."""
    cuda = _is_cuda(args.device)
    args.dtypes = args.dtypes or (["fp16", "bf16", "fp32"] if cuda else ["fp32"])
    args.threads = args.threads or (None if cuda else 1)
    args.rife_frames = args.rife_frames or (17 if cuda else 3)
    args.sr_frames = args.sr_frames or (8 if cuda else 1)
    args.repeats = args.repeats or (3 if cuda else 1)
    if args.rife_frames < 2 or args.sr_frames < 1 or args.repeats < 1:
        raise SystemExit("--rife-frames must be >= 2, --sr-frames and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.single is not None:
        _out(json.dumps(run_config(json.loads(args.single))))
        return 0
    args = resolve(args)
    if _is_cuda(args.device) and not torch.cuda.is_available():
        _err(f"--device {args.device}: torch {torch.__version__} sees no CUDA device; nothing was run.")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = plan(args)
    records = run_all(configs, in_process=args.in_process)
    summary = ratios(records)
    head = (
        f"device {args.device}"
        + (f" ({torch.cuda.get_device_name(args.device)})" if _is_cuda(args.device) else "")
        + f", torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, RIFE {args.rife_frames} frames in, SR {args.sr_frames} frames x "
        f"{args.repeats}{' (tiny models)' if args.small else ''}"
    )
    _out(head + "\n\n" + markdown(records, summary))
    if args.json:
        args.json.write_text(json.dumps({"setup": head, "records": records, "ratios": summary}, indent=1) + "\n")
    return 1 if any("error" in r for r in records) else 0


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    raise SystemExit(main())
