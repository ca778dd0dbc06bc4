"""SkyReels-V3 sampling: seconds per step and peak memory of reference-to-video, extension and shot switching.

    python scripts/bench_v3.py                                   # CPU: SMALL DiT at 128x128 px, fp32, 1 and 3 s
    python scripts/bench_v3.py --device cuda --size T2V_14B --height 720 --width 1280 --seconds 5
                                                                 # GPU: the 14B shapes (random weights), bf16

Each recipe runs its real sampling path (`sample_reference_to_video`, `sample_extension_chunk`, `sample_shot_switch`:
the one loop, the V3 denoisers) for 2 steps on random latents; one JSON line per (recipe, seconds): tokens the model
sees, median seconds per step, peak memory (CUDA: allocated; CPU: max RSS of the process so far).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyreels_core.models import wan_dit  # noqa: E402
from skyreels_core.models.wan_dit import WanModel  # noqa: E402
from skyreels_core.pipelines import v3  # noqa: E402
from skyreels_core.shapes import latent_frames  # noqa: E402

SMALL = wan_dit.WanDiTConfig(model_type="t2v", in_dim=16, dim=768, ffn_dim=3072, num_heads=6, num_layers=8,
                             text_dim=4096)


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _peak_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _run(device: str, fn, steps: int) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def bench(model, args, seconds: int) -> None:
    h, w, steps = args.height // 8, args.width // 8, args.steps
    ctx = torch.randn(1, 64, model.config.text_dim, device=args.device)
    per_frame = (h // 2) * (w // 2)
    frames = seconds * 24 + 1
    cases = {
        "r2v": (latent_frames(frames) + v3.MAX_REFERENCES, lambda: v3.sample_reference_to_video(
            model, torch.randn(1, 16, v3.MAX_REFERENCES, h, w), positive=ctx, frames=frames, steps=steps)),
        "extension": (v3.extension_chunks(seconds)[0] + 7, lambda: v3.sample_extension_chunk(
            model, torch.randn(1, 16, 7, h, w), v3.extension_chunks(seconds)[0], positive=ctx, steps=steps)),
    }
    if seconds in (2, 3, 4, 5):
        cond = latent_frames({2: 9, 3: 17, 4: 25, 5: 33}[seconds])
        cases["shot_switch"] = (latent_frames(frames) + cond, lambda: v3.sample_shot_switch(
            model, torch.randn(1, 16, cond, h, w), frames, positive=ctx, steps=steps))
    for name, (latents, fn) in cases.items():
        s_per_step = _run(args.device, fn, steps)
        _emit({"recipe": name, "seconds": seconds, "size": f"{args.width}x{args.height}", "tokens": latents * per_frame,
               "s_per_step": round(s_per_step, 3), "peak_gib": round(_peak_gib(args.device), 2)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="SMALL", help="SMALL or a wan_dit preset (T2V_1_3B, T2V_14B)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--seconds", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    config = SMALL if args.size == "SMALL" else getattr(wan_dit, args.size)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    torch.manual_seed(0)
    model = WanModel(config, device=args.device, dtype=dtype).eval()
    _emit({"model": args.size, "device": args.device, "dtype": str(dtype), "weights_gib":
           round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30, 2)})
    for seconds in args.seconds:
        bench(model, args, seconds)


if __name__ == "__main__":
    main()
