"""End-to-end quality of the SkyReels-V2 path with the trained toy models (see conftest.py).

Prompts are the HELD-OUT combinations of scripts/toy/data.py (never trained on). The thresholds are the quality
bars the toy family must reach; the comments give the values measured with the weights of `scripts/train_toy.py
--seed 0` as of commit time (CPU float32, 2 threads). STATUS: those weights do not reach the colour, direction and
first-frame bars yet (see the comments); the thresholds were set from what a working model must show, not
lowered to what the current weights give.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from scripts.toy import data
from skyreels_core.pipelines.diffusion_forcing import DFSettings, generate_df_video

CFG_SCALE, NEGATIVE, SHIFT, STEPS = data.CFG_SCALE, data.NEGATIVE, data.SHIFT, data.STEPS

log = logging.getLogger(__name__)

SEEDS = (0, 1, 2)
RED, BLUE = data.HELD_OUT[0], data.HELD_OUT[1]  # red / blue circle moves left on a gray background
RIGHT = data.HELD_OUT[2]  # a red square moves right on a black background
LEFT = data.Combo("square", "red", "black", "left")  # trained; differs from RIGHT only in the direction


def _colour_margin(video: torch.Tensor, colour: str) -> float:
    """How much nearer the object's mean colour is to `colour` than to the nearest other palette colour (RGB
    0..1 distance; > 0 means it is named `colour`)."""
    mean = data.measure_object(video).mean_colour()
    distances = {name: float((mean - torch.tensor(rgb)).norm()) for name, rgb in data.COLOURS.items()}
    return min(d for name, d in distances.items() if name != colour) - distances[colour]


def _vx(video: torch.Tensor) -> float:
    return float(data.centroid_velocity(data.measure_object(video))[0])


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of two images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.clamp(-1, 1) - b.clamp(-1, 1)) ** 2).mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))


def test_prompt_colour(toy):
    """ "a red circle ..." -> a red object, "a blue circle ..." -> a blue one (same seeds)."""
    margins = [(_colour_margin(toy.t2v(RED.caption, s), "red"), _colour_margin(toy.t2v(BLUE.caption, s), "blue"))
               for s in SEEDS]
    log.info("colour margins (red, blue) per seed: %s", margins)
    assert min(min(m) for m in margins) > 0.15, margins  # measured: all 6 in -0.20 .. -0.10 (FAILS)


def test_prompt_direction(toy):
    """ "moves right" -> centroid velocity > 0, "moves left" -> < 0 (px / frame)."""
    speeds = [(_vx(toy.t2v(RIGHT.caption, s)), _vx(toy.t2v(LEFT.caption, s))) for s in SEEDS]
    log.info("vx (right, left) per seed: %s", speeds)
    assert min(r for r, _ in speeds) > 0.5 and max(lf for _, lf in speeds) < -0.5, speeds  # measured: right 0.65, -0.22, -0.23; left 0.01, -0.73, -0.48 (FAILS)


def _adherence(toy, cfg: float) -> float:
    """Mean over seeds and the red/blue and left/right prompts of the colour margin plus |vx| in the prompted
    direction / 4 (both about 0..0.6 for a good sample)."""
    scores = []
    for s in SEEDS:
        scores.append(_colour_margin(toy.t2v(RED.caption, s, cfg), "red"))
        scores.append(_colour_margin(toy.t2v(BLUE.caption, s, cfg), "blue"))
        scores.append(_vx(toy.t2v(RIGHT.caption, s, cfg)) / 4)
        scores.append(-_vx(toy.t2v(LEFT.caption, s, cfg)) / 4)
    return sum(scores) / len(scores)


def test_cfg_improves_adherence(toy):
    """Guidance 5 follows the prompt better than guidance 1 (no guidance)."""
    plain, guided = _adherence(toy, 1.0), _adherence(toy, CFG_SCALE)
    log.info(f"adherence cfg 1: {plain:.3f}, cfg {CFG_SCALE}: {guided:.3f}")
    assert guided > plain + 0.05, (plain, guided)  # measured: cfg 1 -0.144, cfg 5 -0.051 (passes)


def _df_settings(**overrides) -> DFSettings:
    base = dict(steps=STEPS, shift=SHIFT, guidance_scale=CFG_SCALE, base_num_frames=17, overlap_history=5,
                addnoise_condition=20.0, fps=None)
    return DFSettings(**{**base, **overrides})


def test_start_image_is_first_frame(toy):
    """Image-to-video with the T2V/DF model: the start image, VAE-encoded as one latent, is the clean DF prefix
    (what SkyReels DF's start image does); the first decoded frame must match it and the object must then move as
    prompted."""
    clip = data.render_clip(RIGHT, seed=123)
    image = clip.video[:, :1][None]  # [1, 3, 1, 64, 64]
    prefix = toy.vae.encode(image)
    result = generate_df_video(toy.dit, toy.context(RIGHT.caption), data.FRAMES, (8, 8), _df_settings(),
                               negative_context=toy.context(NEGATIVE), prefix_latents=prefix, seed=0)
    video = result.trim_frames(toy.vae.decode(result.latents))[0]
    psnr = _psnr(video[:, 0], clip.video[:, 0])
    start = data.measure_object(video[:, :1]).centres[0]
    log.info(f"first-frame PSNR {psnr:.2f} dB, object at {start.tolist()} vs {clip.centres[0].tolist()}, vx {_vx(video)}")
    assert psnr > 25.0, psnr  # measured: 24.05 dB, object 0.8 px off, vx +1.79 (FAILS on PSNR only)
    assert float((start - clip.centres[0]).norm()) < 3.0
    assert _vx(video) > 0.5


@pytest.mark.parametrize("ar_step", [0, 2], ids=["sync", "async"])
def test_df_three_windows_no_seam(toy, ar_step):
    """41 frames in 3 DF windows (17 frames each, 5 carried): the frame-to-frame centroid and colour changes across
    a window border are no larger than inside the windows."""
    combo = data.Combo("circle", "green", "black", "bounces")
    settings = _df_settings(ar_step=ar_step)
    result = generate_df_video(toy.dit, toy.context(combo.caption), 41, (8, 8), settings,
                               negative_context=toy.context(NEGATIVE), seed=4)
    assert len(result.plan.windows) == 3
    video = result.trim_frames(toy.vae.decode(result.latents))[0]
    track = data.measure_object(video)
    steps = (track.centres[1:] - track.centres[:-1]).norm(dim=1)  # px moved from frame f to f + 1
    colour = (track.colour[1:] - track.colour[:-1]).norm(dim=1)
    seams = [w.pixel_range[0] - 1 for w in result.plan.windows[1:]]  # the step into a window's first new frame
    inside = [f for f in range(len(steps)) if f not in seams]
    assert not bool(steps.isnan().any()), "the object vanished"
    typical, worst_seam = float(steps[inside].median()), float(steps[seams].max())
    colour_inside, colour_seam = float(colour[inside].max()), float(colour[seams].max())
    log.info(f"centroid step inside median {typical:.2f} max {float(steps[inside].max()):.2f}, seams {steps[seams]}, "
          f"colour step inside max {colour_inside:.3f}, seams {colour[seams]}")
    assert worst_seam < 2.0 * typical + 2.0, (worst_seam, typical)  # measured: sync seams 6.2 / 0.7 px vs median 2.9; async 2.3 / 0.7 vs 2.0
    assert colour_seam < colour_inside + 0.05, (colour_seam, colour_inside)
