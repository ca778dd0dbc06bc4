"""The sampling core on a GPU: CFG as two passes vs one doubled batch, loop overhead, diffusion-forcing rows, V4.

Usage (CUDA; random weights in the real sizes):
    python scripts/bench_sampling.py --size T2V_1_3B --frames 81 --height 480 --width 832
Prints one JSON line per measurement:
- cfg: one CFG step of the Wan denoiser as two forwards of batch 1 (what the pack does) vs one forward of batch 2,
  median seconds and peak allocated memory of each, same run;
- loop: `sample_video` seconds per step vs the bare two forwards (the loop's own overhead per step);
- df: one diffusion-forcing window (per-frame solver states) seconds per row vs the bare two forwards;
- av: `sample_av` on the SMALL AV preset runs on the device (seconds per step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyreels_core.models import wan_dit  # noqa: E402
from skyreels_core.models.wan_dit import WanModel  # noqa: E402
from skyreels_core.pipelines.denoisers import WanDenoiser  # noqa: E402
from skyreels_core.pipelines.diffusion_forcing import DFSettings, generate_df_video  # noqa: E402
from skyreels_core.pipelines.video import sample_video  # noqa: E402
from skyreels_core.sampling.guidance import CFG  # noqa: E402
from skyreels_core.shapes import VideoLatentShape  # noqa: E402


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, peak GiB allocated) of fn() after one warm-up."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), torch.cuda.max_memory_allocated() / 2**30


def bench_cfg(model, shape, ctx, neg, repeats):
    x = torch.randn(shape.as_tuple(), device="cuda")
    sigma = torch.tensor(0.5, dtype=torch.float64)
    denoiser = WanDenoiser(model, ctx, neg, CFG(6.0))
    t = torch.tensor([500], device="cuda")

    def batched():
        v = model(torch.cat([x, x]).bfloat16(), torch.cat([t, t]), torch.cat([ctx, neg])).float()
        c, u = v.chunk(2)
        return u + 6.0 * (c - u)

    with torch.no_grad():
        two = _timed(lambda: denoiser(x, sigma), repeats)
        one = _timed(batched, repeats)
    _emit({"what": "cfg", "two_passes_s": two[0], "two_passes_peak_gib": two[1], "batch2_s": one[0],
                      "batch2_peak_gib": one[1], "time_ratio_two_over_batch": two[0] / one[0]})
    return two[0]


def bench_loop(model, shape, ctx, neg, steps, bare):
    latent = torch.zeros(shape.as_tuple())

    def run():
        return sample_video(model, latent, positive=ctx, negative=neg, steps=steps, cfg=6.0, shift=8.0, seed=0)

    seconds, peak = _timed(run, 1)
    per_step = seconds / steps
    _emit({"what": "loop", "s_per_step": per_step, "bare_two_forwards_s": bare,
                      "overhead_ms_per_step": 1000 * (per_step - bare), "peak_gib": peak})


def bench_df(model, shape, ctx, neg, steps, bare):
    settings = DFSettings(steps=steps, shift=8.0, guidance_scale=6.0, base_num_frames=shape.pixel_frames,
                          overlap_history=None, fps=24)

    def run():
        return generate_df_video(model, ctx, shape.pixel_frames, (shape.height, shape.width), settings,
                                 negative_context=neg, device="cuda")

    seconds, peak = _timed(run, 1)
    rows = steps
    _emit({"what": "df", "latent_frames": shape.frames, "s_per_row": seconds / rows,
                      "bare_two_forwards_s": bare, "overhead_ms_per_row": 1000 * (seconds / rows - bare),
                      "peak_gib": peak})


def bench_av(steps):
    from skyreels_core.models.av_mmdit import AVDiTConfig, AVMMDiT
    from skyreels_core.pipelines.t2av import av_latent_shape, sample_av

    config = AVDiTConfig.SMALL
    model = AVMMDiT(config, device="cuda", dtype=torch.bfloat16).eval()
    shape, num_audio = av_latent_shape(81, 16.0, 480, 832)
    ctx = torch.randn(1, 64, config.text_dim, device="cuda")

    def run():
        return sample_av(model, video_shape=shape, num_audio_latents=num_audio, context=ctx,
                         negative_context=ctx[:, :48], steps=steps, sync_scale=2.0, fps=16.0)

    seconds, peak = _timed(run, 1)
    _emit({"what": "av", "preset": "SMALL", "s_per_step": seconds / steps, "peak_gib": peak})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="T2V_1_3B")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = getattr(wan_dit, args.size)
    model = WanModel(config, device="cuda", dtype=torch.bfloat16).eval()
    model.attn_backend = "sdpa"
    shape = VideoLatentShape.from_pixels(args.frames, args.height, args.width)
    ctx = torch.randn(1, 512, config.text_dim, device="cuda")
    neg = torch.randn(1, 512, config.text_dim, device="cuda")
    _emit({"what": "setup", "size": args.size, "tokens": shape.tokens(), "gpu": torch.cuda.get_device_name(),
                      "torch": torch.__version__})
    bare = bench_cfg(model, shape, ctx, neg, args.repeats)
    bench_loop(model, shape, ctx, neg, args.steps, bare)
    bench_df(model, shape, ctx, neg, args.steps, bare)
    del model
    torch.cuda.empty_cache()
    bench_av(args.steps)


if __name__ == "__main__":
    main()
