# original version: SkyReels-V2 `skyreels_v2_infer/pipelines/diffusion_forcing_pipeline.py` (DiffusionForcingPipeline),
# re-written as a plan (pure, validated) + a per-window k-diffusion-style loop over timestep-matrix rows.
"""Diffusion-forcing (DF) long-video sampling for SkyReels-V2 DF, written against a velocity-model callable.

    model(x [B, 16, F, h, w], t [B, F] timesteps, context [B, L, D], fps=None) -> velocity [B, 16, F, h, w]

(`skyreels_core.models.wan_dit.WanModel` has exactly this call signature.)

How frames map (latent k <-> pixel frames; the Wan VAE is causal, 4x in time):
- The output is ONE latent sequence [B, 16, L, h, w], L = latents covering `num_frames` (4(L-1)+1 >= num_frames).
  Decoding it in one pass gives 4(L-1)+1 pixel frames: latent 0 -> frame 0, latent k >= 1 -> frames 4k-3 .. 4k.
  Trim to `num_frames` after decoding (`DFResult.num_frames`), so the requested count is exact.
- Windows hold base = latents(base_num_frames) latents (25 for 97 frames). Window 0 starts at latent 0 (or at the
  end of a given prefix video minus the overlap); every later window starts `overlap` latents before the previous
  window's end, with overlap = latents(overlap_history) (5 for 17). Those carried latents are the clean prefix of
  the next window (in latent space: no decode/re-encode), so each window adds length - overlap new latents
  = 4 * (length - overlap) new pixel frames. This equals the reference, which decodes each window and drops its
  first `overlap_history` (= 1 + 4 * (overlap - 1)) pixel frames: 257 frames, base 97, overlap 17 -> 65 latents,
  windows [25, 25, 25]; 377 -> [25, 25, 25, 25, 15]; 237 -> [25, 25, 20].
- With overlap_history None there is one window of L latents; if L > base the model still sees at most `base`
  latents per row (the reference's sliding `valid_interval`, asynchronous mode only).

Deviations from the reference (all deliberate): the addnoise_condition noise comes from the seeded generator
(the reference uses the global RNG), so a seed fixes the whole video; carried frames stay in latent space; the
per-frame UniPC state never aliases the latents (the reference's first corrector reads a sample overwritten in
place); CFG runs whenever guidance_scale != 1 (reference: only > 1); inconsistent block sizes raise instead of
being truncated or silently re-denoised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import SkyReelsInputError
from ..sampling.diffusion_forcing import DFSchedule, append_clean_column, generate_timestep_matrix, num_matrix_rows
from ..sampling.guidance import CFG
from ..sampling.loop import SOLVERS, StepCallback, sample
from ..sampling.schedules import NUM_TRAIN_TIMESTEPS, check_schedule, flow_grid
from ..shapes import TIME_STRIDE, check_frames, latent_frames, pixel_frames
from .denoisers import WanDenoiser
from .video import check_guidance

__all__ = [
    "DFPlan",
    "DFResult",
    "DFSettings",
    "DFWindow",
    "fps_index",
    "generate_df_video",
    "match_color",
    "plan_df",
    "df_denoiser",
]

logger = logging.getLogger(__name__)
ModelFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class DFSettings:
    """Knobs of `generate_df_video`; defaults are the SkyReels-V2 DF script / README values (540P, 10 s sync).

    base_num_frames / overlap_history are PIXEL frames (4n+1). overlap_history None = a single window.
    addnoise_condition: carried/prefix latents are re-noised to sigma = a/1000 at every row and shown to the model
    at t = a (20 recommended, <= 50). color_match: 0..1 strength of `match_color` on windows >= 1 (0 = off).
    """

    steps: int = 30
    shift: float = 8.0
    guidance_scale: float = 6.0
    ar_step: int = 0
    causal_block_size: int = 1
    base_num_frames: int = 97
    overlap_history: int | None = 17
    addnoise_condition: float = 20.0
    fps: int | None = 24
    solver: str = "unipc"
    color_match: float = 0.0


@dataclass(frozen=True)
class DFWindow:
    """One DF window over output latents [start, start + length); the first `prefix` of them are clean inputs."""

    index: int
    start: int
    length: int
    prefix: int
    model_frames: int  # most latents the model sees per row (the reference's base_num_frames for the matrix)
    rows: int  # model calls (timestep-matrix rows)
    with_end: bool = False  # the end-image latent is appended after the window (last window only)

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def pixel_range(self) -> tuple[int, int]:
        """[first, last + 1) pixel frames (of the one-pass decode) that this window generates."""
        first = self.start + self.prefix
        return (0 if first == 0 else pixel_frames(first)), pixel_frames(self.end)  # frames before latent k: 4k - 3


@dataclass(frozen=True)
class DFPlan:
    """Validated window layout: total `latent_frames` L, of which the first `given_latents` are the caller's."""

    num_frames: int
    latent_frames: int
    given_latents: int
    windows: tuple[DFWindow, ...]

    @property
    def total_steps(self) -> int:
        return sum(w.rows for w in self.windows)


@dataclass
class DFResult:
    """latents: [B, 16, L, h, w] (decode in one pass, then `trim_frames` keeps the requested `num_frames`)."""

    latents: torch.Tensor
    num_frames: int
    plan: DFPlan

    def trim_frames(self, video: torch.Tensor, dim: int = 2) -> torch.Tensor:
        """Keep the first `num_frames` frames of the decoded video (frames on `dim`, 4(L-1)+1 of them)."""
        if video.shape[dim] < self.num_frames:
            raise SkyReelsInputError(
                f"the decoded video has {video.shape[dim]} frames on dim {dim}, fewer than the requested "
                f"{self.num_frames}; decode all {self.latents.shape[2]} latents in one pass."
            )
        return video.narrow(dim, 0, self.num_frames)


def fps_index(fps: int | None) -> int | None:
    """The DF-1.3B fps embedding index used by the reference pipeline: 16 fps -> 0, anything else -> 1."""
    return None if fps is None else (0 if int(fps) == 16 else 1)


# -- planning (pure, raises before any model call) ----------------------------------------------------------------
def _covering_latents(num_frames: int) -> int:
    """Fewest latents whose one-pass decode has >= num_frames pixel frames."""
    return latent_frames(num_frames + TIME_STRIDE - 1)


def _check_settings(s: DFSettings) -> None:
    check_schedule(s.steps, s.shift)
    check_guidance(cfg=s.guidance_scale)
    if s.solver not in SOLVERS:
        raise SkyReelsInputError(f"solver must be one of {tuple(SOLVERS)}, got {s.solver!r}.")
    check_frames(s.base_num_frames, "base_num_frames")
    if s.overlap_history is not None:
        check_frames(s.overlap_history, "overlap_history")
        if s.overlap_history >= s.base_num_frames:
            raise SkyReelsInputError(
                f"overlap_history ({s.overlap_history}) must be smaller than base_num_frames ({s.base_num_frames}); "
                f"the default pair is 17 / 97. Lower overlap_history or raise base_num_frames."
            )
    if not 0 <= s.ar_step <= s.steps:
        raise SkyReelsInputError(
            f"ar_step must be in [0, steps={s.steps}] (got {s.ar_step}); ar_step >= steps already makes each block "
            f"wait until the previous one is clean. Use 0 (synchronous) or e.g. 5 (asynchronous)."
        )
    if s.causal_block_size < 1:
        raise SkyReelsInputError(f"causal_block_size must be >= 1, got {s.causal_block_size}.")
    if not 0 <= s.addnoise_condition < 1000:  # NaN fails this and the next check
        raise SkyReelsInputError(
            f"addnoise_condition must be in [0, 1000) (20 is recommended), got {s.addnoise_condition}."
        )
    if not 0.0 <= s.color_match <= 1.0:
        raise SkyReelsInputError(f"color_match must be in [0, 1], got {s.color_match}.")


def _window_spans(total: int, given: int, base: int, overlap: int | None) -> list[tuple[int, int, int]]:
    """(start, length, prefix) of every window, in output-latent indices."""
    if overlap is None:
        return [(0, total, given)]
    prefix = min(given, overlap)
    start, spans = given - prefix, []
    while True:
        length = min(total - start, base)
        spans.append((start, length, prefix))
        if start + length >= total:
            return spans
        start, prefix = start + length - overlap, overlap


def _suggest_frames(num_frames: int, s: DFSettings, given: int) -> str:
    """Nearby num_frames whose windows are all multiples of causal_block_size (for the error message)."""
    ok = []
    for delta in range(1, 400):
        for cand in (num_frames - TIME_STRIDE * delta, num_frames + TIME_STRIDE * delta):
            if cand > 0 and not _block_problem(_covering_latents(cand), given, s) and cand not in ok:
                ok.append(cand)
        if len(ok) >= 2:
            break
    return ", ".join(str(v) for v in sorted(ok)) or "none found"


def _block_problem(total: int, given: int, s: DFSettings) -> str | None:
    cbs = s.causal_block_size
    overlap = None if s.overlap_history is None else latent_frames(s.overlap_history)
    for start, length, prefix in _window_spans(total, given, latent_frames(s.base_num_frames), overlap):
        if length % cbs or prefix % cbs:
            return f"window at latent {start} has {length} latents with a {prefix}-latent clean prefix"
    return None


def plan_df(num_frames: int, settings: DFSettings, given_latents: int = 0, with_end: bool = False) -> DFPlan:
    """Validate and lay out the windows for `num_frames` output pixel frames (given latents included)."""
    s = settings
    _check_settings(s)
    total = _covering_latents(num_frames)
    if total <= given_latents:
        raise SkyReelsInputError(
            f"num_frames={num_frames} ({total} latents) leaves nothing to generate after the {given_latents} given "
            f"prefix latents ({pixel_frames(given_latents)} frames); ask for more frames."
        )
    base = latent_frames(s.base_num_frames)
    overlap = None if s.overlap_history is None else latent_frames(s.overlap_history)
    problem = _block_problem(total, given_latents, s)
    if problem:
        raise SkyReelsInputError(
            f"causal_block_size={s.causal_block_size} must divide every window and every clean prefix, but the {problem}. "
            f"Use causal_block_size 1 (e.g. with ar_step 0), num_frames in: {_suggest_frames(num_frames, s, given_latents)}, "
            f"or base_num_frames / overlap_history / prefix whose latent counts ((frames - 1) / 4 + 1) are multiples of "
            f"{s.causal_block_size} (97 / 17 for 5)."
        )
    spans = _window_spans(total, given_latents, base, overlap)
    windows = []
    for i, (start, length, prefix) in enumerate(spans):
        model_frames = min(base, length)
        if model_frames < length and s.ar_step < s.steps / max(model_frames // s.causal_block_size, 1):
            raise SkyReelsInputError(
                f"{length} latents in one window with at most {model_frames} seen by the model needs asynchronous "
                f"sampling: set overlap_history (e.g. 17) for sequential windows, or ar_step >= "
                f"{-(-s.steps // max(model_frames // s.causal_block_size, 1))}."
            )
        rows = num_matrix_rows(length, s.steps, s.ar_step, prefix, s.causal_block_size)
        windows.append(DFWindow(i, start, length, prefix, model_frames, rows, with_end and i == len(spans) - 1))
    return DFPlan(num_frames, total, given_latents, tuple(windows))


# -- sampling ------------------------------------------------------------------------------------------------------
def match_color(x: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Match per-(batch, channel) mean and std of x [B, C, T, H, W] to reference [B, C, T', H, W] (pure function).

    Works on decoded frames or on latents. `generate_df_video` applies it to the new latents of windows >= 1 with
    window 0 as reference, BEFORE they are carried, so the next window is conditioned on the corrected frames and
    colour drift cannot compound; the Wan latent channels carry most of the low-frequency colour, so this costs no
    decode. strength 0 returns x, 1 fully matches.
    """
    if strength <= 0:
        return x
    dims = tuple(range(2, x.ndim))
    mean_x, std_x = x.mean(dims, keepdim=True), x.std(dims, keepdim=True).clamp_min(1e-6)
    mean_r, std_r = reference.mean(dims, keepdim=True), reference.std(dims, keepdim=True)
    matched = (x - mean_x) / std_x * std_r + mean_r
    return torch.lerp(x, matched, float(strength))


def df_denoiser(model, context, negative_context, s: DFSettings) -> WanDenoiser:
    """The DF model as a Wan denoiser; the fps index goes only to models with the fps branch (DF-1.3B)."""
    kwargs = {}
    if getattr(getattr(model, "config", None), "inject_sample_info", True):
        kwargs["fps"] = fps_index(s.fps)
    return WanDenoiser(model, context, negative_context, CFG(s.guidance_scale), **kwargs)


def _check_latents(name: str, lat: torch.Tensor | None, batch: int, channels: int, size: tuple[int, int]):
    if lat is None:
        return
    if lat.ndim != 5 or lat.shape[0] != batch or lat.shape[1] != channels or tuple(lat.shape[3:]) != size:
        raise SkyReelsInputError(
            f"{name} must be latents [B={batch}, {channels}, frames, {size[0]}, {size[1]}] (VAE-encoded at the output "
            f"size); got {tuple(lat.shape)}."
        )


def _offset(callback: StepCallback | None, done: int, total: int) -> StepCallback | None:
    """A window's callback(step, len(window), x0) as one count over every window: callback(done + step, total, x0)."""
    if callback is None:
        return None
    return lambda step, _, x0: callback(done + step, total, x0)


def _window_latents(out, w: DFWindow, noise_gen, device, dtype):
    """Carried/given clean latents for the prefix, fresh seeded noise for the rest."""
    b, c, _, h, wd = out.shape
    noise = torch.randn((b, c, w.length - w.prefix, h, wd), generator=noise_gen, device=noise_gen.device)
    clean = out[:, :, w.start : w.start + w.prefix].to(device, dtype)
    return torch.cat([clean, noise.to(device, dtype)], dim=2)


@torch.no_grad()
def generate_df_video(
    model: ModelFn,
    context: torch.Tensor,
    num_frames: int,
    latent_size: tuple[int, int],
    settings: DFSettings | None = None,
    *,
    negative_context: torch.Tensor | None = None,
    prefix_latents: torch.Tensor | None = None,
    end_latent: torch.Tensor | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    output_device: torch.device | str | None = None,
    channels: int = 16,
) -> DFResult:
    """SkyReels-V2 DF text/image-to-video, long video and video extension; returns the output latents.

    context / negative_context: [B, L, D] text embeddings. num_frames: output pixel frames, counting those of the
    given prefix. latent_size: (h, w) = (H / 8, W / 8). prefix_latents [B, 16, P, h, w]: kept clean at the start of
    the output (P = 1 image latent for I2V, or a video's latents for extension). end_latent [B, 16, 1, h, w]:
    target last frame, appended to the last window. All noise comes from `generator` (default: CPU, `seed`).
    Memory holds one window, its per-frame scheduler state and the output latents (O(frames), small).
    """
    s = settings or DFSettings()
    b, device = context.shape[0], device or context.device
    _check_latents("prefix_latents", prefix_latents, b, channels, tuple(latent_size))
    _check_latents("end_latent", end_latent, b, channels, tuple(latent_size))
    if end_latent is not None and end_latent.shape[2] != 1:
        raise SkyReelsInputError(f"end_latent must hold 1 latent frame (one encoded image); got {end_latent.shape[2]}.")
    given = 0 if prefix_latents is None else prefix_latents.shape[2]
    plan = plan_df(num_frames, s, given, end_latent is not None)
    out = torch.zeros((b, channels, plan.latent_frames, *latent_size), device=output_device or device, dtype=dtype)
    if given:
        out[:, :, :given] = prefix_latents.to(out)
    gen = generator or torch.Generator().manual_seed(int(seed))
    denoiser = df_denoiser(model, context, negative_context, s)
    grid = flow_grid(s.steps, s.shift)
    template = (grid[:-1] * NUM_TRAIN_TIMESTEPS).to(torch.int64)
    done = 0
    for w in plan.windows:
        lat = _window_latents(out, w, gen, device, dtype)
        matrix = generate_timestep_matrix(w.length, template, w.model_frames, s.ar_step, w.prefix, s.causal_block_size)
        if w.with_end:
            lat, matrix = torch.cat([lat, end_latent.to(device, dtype)], dim=2), append_clean_column(matrix, s.steps)
        schedule = DFSchedule(matrix, grid, w.prefix, s.addnoise_condition)
        lat = sample(denoiser, lat, schedule, s.solver, _offset(callback, done, plan.total_steps),
                     noise=lambda shape: torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float32))
        done += len(schedule)
        new = lat[:, :, w.prefix : w.length]
        if w.index > 0 and s.color_match > 0:
            first = plan.windows[0]
            new = match_color(new, out[:, :, first.start : first.end].to(new), s.color_match)
        out[:, :, w.start + w.prefix : w.end] = new.to(out)
        del lat, new, matrix
        logger.debug("DF window %d/%d done (latents %d..%d)", w.index + 1, len(plan.windows), w.start, w.end)
    return DFResult(out, num_frames, plan)
