"""Frame interpolation of an IMAGE sequence with a RIFE IFNet (models/rife.py): x2, x4, ... or any higher fps.

Timing. Input frame i is shown at i / fps_in. Output frame k is at k / fps_out, i.e. at position
p = k * fps_in / fps_out counted in input frames: between inputs floor(p) and floor(p) + 1 at t = p - floor(p).
t = 0 copies the input frame exactly (no model call); any other t is one RIFE pass (RIFE takes t as an input, so
24 -> 60 fps needs no recursion).

The end of the sequence (`keep_duration`):
- True (default): the output lasts as long as the input, n / fps_in seconds: ceil(n * fps_out / fps_in) frames,
  positions after the last input frame hold it. x2 of n frames -> 2n frames, the last one a copy. Audio made for
  the input stays in sync (the video differs from n / fps_in by less than one output frame).
- False: stop at the last input frame: floor((n - 1) * fps_out / fps_in) + 1 frames; x2 -> 2n - 1 (what ComfyUI's
  FrameInterpolate and ComfyUI-Frame-Interpolation give). The video is (fps_out / fps_in - 1) / fps_out seconds
  shorter than the input.
One input frame is not an error: it lasts 1 / fps_in, so it is held for ceil(fps_out / fps_in) frames (or 1).

Scene cuts. A pair of neighbours whose similarity (SSIM of 32x32 thumbnails, `frame_similarity`) is below
`scene_cut_threshold` (default 0.2, Practical-RIFE's value for its SSIM; 0 turns detection off) is a cut: it is
not morphed, the frames between the two hold the earlier one, so the new shot starts exactly when it did in the
input (with audio; Practical-RIFE and vs-rife do the same). Neighbours that are identical are copied too.

Memory. The (pair, t) tasks run `batch_size` at a time: only the frames that batch needs (about batch_size + 1
padded frames and their encoder features, each frame encoded once and reused by the next pair) are on the
device; every result goes straight into the output tensor on the CPU. Device memory therefore does not grow
with the number of frames.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from ..errors import SkyReelsInputError
from ..models.rife import IFNet

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_SCENE_CUT_THRESHOLD",
    "FrameSource",
    "Interpolated",
    "check_interpolation",
    "detect_scene_cuts",
    "frame_ratio",
    "frame_similarity",
    "interpolate_frames",
    "measure_speed",
    "output_positions",
    "plan_frames",
]

DEFAULT_SCENE_CUT_THRESHOLD = 0.2
DEFAULT_BATCH_SIZE = 4
_THUMBNAIL = 32
_COMPUTE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class FrameSource:
    """Where one output frame comes from: input frame `index` itself (t == 0), or RIFE between inputs `index`
    and `index + 1` at time t in (0, 1)."""

    index: int
    t: float = 0.0


@dataclass(frozen=True)
class Interpolated:
    """frames: [M, H, W, 3] on the CPU (the input's dtype); fps: the output rate (None when no fps was given);
    sources: what each output frame is; scene_cuts: i for each cut between input frames i and i + 1."""

    frames: torch.Tensor
    fps: float | None
    sources: tuple[FrameSource, ...]
    scene_cuts: tuple[int, ...]


# 1. Timing -----------------------------------------------------------------------------------------------------


def _fraction(value: float) -> Fraction:
    """A typed rate as an exact fraction (23.976 -> 2997/125), so frame positions never drift."""
    return Fraction(repr(float(value)))


def frame_ratio(fps: float | None = None, multiplier: int | None = None, target_fps: float | None = None) -> Fraction:
    """Output frames per input frame: `multiplier`, or target_fps / fps. Exactly one of the two must be given."""
    if (multiplier is None) == (target_fps is None):
        raise SkyReelsInputError("Give either a multiplier (x2, x4, ...) or a target fps, not both and not neither.")
    if fps is not None:
        _check_rate("fps", fps)
    if multiplier is not None:
        if not isinstance(multiplier, int) or isinstance(multiplier, bool) or multiplier < 1:
            raise SkyReelsInputError(f"multiplier must be a whole number >= 1 (2 doubles the frame rate); "
                                     f"got {multiplier!r}.")
        return Fraction(multiplier)
    _check_rate("target fps", target_fps)
    if fps is None:
        raise SkyReelsInputError(f"A target fps ({target_fps}) needs the input's fps too.")
    if target_fps < fps:
        raise SkyReelsInputError(
            f"target fps {target_fps} is below the input's {fps} fps: interpolation only adds frames. Set a target "
            f"of at least {fps}, or lower the frame rate by dropping frames instead."
        )
    return _fraction(target_fps) / _fraction(fps)


def _check_rate(name: str, value) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise SkyReelsInputError(f"{name} must be a positive number of frames per second (e.g. 24); got {value!r}.")


def output_positions(num_frames: int, ratio: Fraction | int, keep_duration: bool = True) -> list[Fraction]:
    """Positions of the output frames in input frames (output k at k / ratio; see the module docstring)."""
    ratio = Fraction(ratio)
    if keep_duration:
        count = math.ceil(num_frames * ratio)
    else:
        count = math.floor((num_frames - 1) * ratio) + 1
    return [k / ratio for k in range(count)]


def plan_frames(num_frames: int, ratio: Fraction | int, keep_duration: bool = True,
                copy_pairs: Sequence[int] = ()) -> list[FrameSource]:
    """What each output frame is. Positions on an input frame, past the last one, or inside a pair listed in
    `copy_pairs` (cuts, identical neighbours) take the earlier input frame; the rest are (pair, t) tasks."""
    copied = set(copy_pairs)
    sources = []
    for position in output_positions(num_frames, ratio, keep_duration):
        index = min(math.floor(position), num_frames - 1)
        t = position - index
        if t == 0 or index >= num_frames - 1 or index in copied:
            sources.append(FrameSource(index))
        else:
            sources.append(FrameSource(index, float(t)))
    return sources


# 2. Scene cuts -------------------------------------------------------------------------------------------------


def _thumbnails(images: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """[N, H, W, 3] -> [N, 3, 32, 32] float32 area averages (a few frames at a time: no full-size copy)."""
    parts = [F.adaptive_avg_pool2d(images[i:i + chunk].movedim(-1, 1).float(), _THUMBNAIL)
             for i in range(0, images.shape[0], chunk)]
    return torch.cat(parts)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None].repeat(3, 1, 1, 1)


def _ssim(thumbs: torch.Tensor) -> torch.Tensor:
    """SSIM of each pair of neighbouring thumbnails [N, 3, h, w] -> [N - 1] (see `frame_similarity`)."""
    a, b = thumbs[:-1], thumbs[1:]
    window = _gaussian_window()

    def smooth(x):
        return F.conv2d(F.pad(x, (5, 5, 5, 5), mode="replicate"), window, groups=3)

    mu_a, mu_b = smooth(a), smooth(b)
    var_a = smooth(a * a) - mu_a**2
    var_b = smooth(b * b) - mu_b**2
    cov = smooth(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim.mean(dim=(1, 2, 3))


def frame_similarity(images: torch.Tensor) -> torch.Tensor:
    """SSIM (11x11 Gaussian window, sigma 1.5, replicate padding, for values in 0..1) of each pair of
    neighbours' 32x32 thumbnails, averaged over RGB: [N - 1]; 1 = the same picture, about 0 = unrelated ones."""
    return _ssim(_thumbnails(images))


def _cuts(thumbs: torch.Tensor, threshold: float) -> tuple[int, ...]:
    if threshold <= 0 or thumbs.shape[0] < 2:
        return ()
    return tuple(int(i) for i in torch.nonzero(_ssim(thumbs) < threshold).flatten())


def detect_scene_cuts(images: torch.Tensor, threshold: float = DEFAULT_SCENE_CUT_THRESHOLD) -> tuple[int, ...]:
    """Pairs (i, i + 1) whose `frame_similarity` is below `threshold` (0 = detection off)."""
    return _cuts(_thumbnails(images), threshold)


def _identical_pairs(images: torch.Tensor, thumbs: torch.Tensor) -> list[int]:
    """Neighbours that are the same picture (a held frame, a still): copied, not run through the model."""
    same_thumb = (thumbs[:-1] == thumbs[1:]).flatten(1).all(1)  # cheap filter before the full comparison
    return [i for i in torch.nonzero(same_thumb).flatten().tolist() if torch.equal(images[i], images[i + 1])]


# 3. Checks -----------------------------------------------------------------------------------------------------


def check_interpolation(model: IFNet, images: torch.Tensor, *, scene_cut_threshold: float, scale: float,
                        ensemble: bool, batch_size: int, dtype: torch.dtype | None) -> None:
    """Every option `interpolate_frames` takes besides the timing (checked by `frame_ratio`), before any model call."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise SkyReelsInputError(f"Frames must be an IMAGE batch [frames, height, width, 3]; got {shape}. "
                                 f"Convert RGBA or grayscale images to RGB first.")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise SkyReelsInputError(f"The IMAGE batch is empty ({tuple(images.shape)}); give at least one frame.")
    if not images.is_floating_point():
        raise SkyReelsInputError(f"Frames must be float values in 0..1 (ComfyUI IMAGE); got {images.dtype}.")
    if not isinstance(scene_cut_threshold, int | float) or not 0 <= scene_cut_threshold <= 1:
        raise SkyReelsInputError(f"scene_cut_threshold must be in [0, 1] (default {DEFAULT_SCENE_CUT_THRESHOLD}, "
                                 f"0 = off); got {scene_cut_threshold!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SkyReelsInputError(f"batch_size must be a whole number >= 1; got {batch_size!r}.")
    if dtype is not None and dtype not in _COMPUTE_DTYPES:
        raise SkyReelsInputError(f"dtype must be float32, float16 or bfloat16; got {dtype}.")
    model.check_options(scale, ensemble)


# 4. Running ----------------------------------------------------------------------------------------------------


class _DeviceFrames:
    """Padded frames and their encoder features on the model's device, by input index. Each frame is moved and
    encoded once while batches need it; `keep_from` drops what no later batch needs."""

    def __init__(self, model: IFNet, images: torch.Tensor, scale: float):
        self.model, self.images, self.scale = model, images, scale
        self.device, self.dtype = next(model.parameters()).device, model.dtype
        self.frames: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def load(self, indices: set[int]) -> None:
        missing = sorted(indices - self.frames.keys())
        if not missing:
            return
        batch = self.images[missing].movedim(-1, 1).to(self.device, self.dtype)
        padded = self.model.pad(batch, self.scale)
        features = self.model.encode(padded)
        for j, index in enumerate(missing):
            self.frames[index] = (padded[j:j + 1], features[j:j + 1])

    def stacked(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.cat([self.frames[i][0] for i in indices]), torch.cat([self.frames[i][1] for i in indices]))

    def keep_from(self, first: int) -> None:
        for index in [i for i in self.frames if i < first]:
            del self.frames[index]


def _run_tasks(model: IFNet, images: torch.Tensor, out: torch.Tensor, tasks: list[tuple[int, FrameSource]], *,
               scale: float, ensemble: bool, batch_size: int, callback: ProgressCallback | None) -> None:
    """Fill out[k] for every (k, source) task, batch_size at a time; callback(done, total) after each batch."""
    height, width = images.shape[1:3]
    frames = _DeviceFrames(model, images, scale)
    for start in range(0, len(tasks), batch_size):
        batch = tasks[start:start + batch_size]
        firsts = [source.index for _, source in batch]
        frames.load(set(firsts) | {i + 1 for i in firsts})
        img0, f0 = frames.stacked(firsts)
        img1, f1 = frames.stacked([i + 1 for i in firsts])
        t = torch.tensor([source.t for _, source in batch], device=img0.device)
        mid = model.synthesize(img0, img1, f0, f1, t, scale, ensemble)[:, :, :height, :width]
        out[[k for k, _ in batch]] = mid.clamp(0.0, 1.0).movedim(1, -1).to("cpu", out.dtype)
        if start + batch_size < len(tasks):
            frames.keep_from(tasks[start + batch_size][1].index)
        if callback is not None:
            callback(min(start + batch_size, len(tasks)), len(tasks))


def interpolate_frames(
    model: IFNet,
    images: torch.Tensor,
    *,
    fps: float | None = None,
    multiplier: int | None = None,
    target_fps: float | None = None,
    keep_duration: bool = True,
    scene_cut_threshold: float = DEFAULT_SCENE_CUT_THRESHOLD,
    scale: float = 1.0,
    ensemble: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = None,
    callback: ProgressCallback | None = None,
) -> Interpolated:
    """Raise the frame rate of `images` [N, H, W, 3] (float 0..1, CPU) by `multiplier` or to `target_fps`.

    fps: the input's rate (needed with target_fps; otherwise only reported back as Interpolated.fps).
    keep_duration, scene_cut_threshold: see the module docstring. scale: RIFE flow resolution (0.5 for 4K).
    ensemble: also run each pair reversed and average (RIFE 4.7-4.20/4.24 files; twice the time).
    batch_size: (pair, t) tasks per model call (lower it when the device runs out of memory).
    dtype: compute dtype (float32 / float16 / bfloat16); None = the model's own. A different one runs a copy of
        the model in that dtype (the model passed in is not changed).
    callback(done, total): after each batch, in model-made frames; raising in it stops the run (the exception
        propagates; nothing is returned).
    """
    ratio = frame_ratio(fps, multiplier, target_fps)
    check_interpolation(model, images, scene_cut_threshold=scene_cut_threshold, scale=scale, ensemble=ensemble,
                        batch_size=batch_size, dtype=dtype)
    thumbs = _thumbnails(images)
    cuts = _cuts(thumbs, scene_cut_threshold)
    identical = _identical_pairs(images, thumbs)
    sources = plan_frames(images.shape[0], ratio, keep_duration, copy_pairs=[*cuts, *identical])
    out = torch.empty((len(sources), *images.shape[1:]), dtype=images.dtype)
    for k, source in enumerate(sources):
        if source.t == 0:
            out[k] = images[source.index]
    tasks = [(k, source) for k, source in enumerate(sources) if source.t > 0]
    if tasks:
        if dtype is not None and dtype != model.dtype:
            model = copy.deepcopy(model).to(dtype)
        with torch.inference_mode():
            _run_tasks(model, images, out, tasks, scale=scale, ensemble=ensemble, batch_size=batch_size,
                       callback=callback)
    out_fps = None if fps is None else float(_fraction(fps) * ratio)
    return Interpolated(out, out_fps, tuple(sources), cuts)


# 5. Speed ------------------------------------------------------------------------------------------------------


def measure_speed(model: IFNet, height: int, width: int, *, frames: int = 5, multiplier: int = 2,
                  batch_size: int = DEFAULT_BATCH_SIZE, scale: float = 1.0, ensemble: bool = False,
                  dtype: torch.dtype | None = None, seed: int = 0) -> dict[str, float]:
    """Time `interpolate_frames` on `frames` seeded random frames of height x width (after one warm-up batch).

    Returns {"seconds", "model_frames" (made by RIFE), "model_frames_per_s", "output_frames_per_s"}. Scene-cut
    detection is off so every pair runs the model (random frames look like cuts).
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(frames, 3, max(1, height // 16), max(1, width // 16), generator=generator)
    images = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False).movedim(1, -1)
    options = dict(multiplier=multiplier, scene_cut_threshold=0.0, scale=scale, ensemble=ensemble,
                   batch_size=batch_size, dtype=dtype, keep_duration=False)
    interpolate_frames(model, images[:2], **options)  # warm-up: kernels, allocator
    start = time.perf_counter()
    result = interpolate_frames(model, images, **options)
    seconds = time.perf_counter() - start
    made = sum(source.t > 0 for source in result.sources)
    return {"seconds": seconds, "model_frames": float(made), "model_frames_per_s": made / seconds,
            "output_frames_per_s": result.frames.shape[0] / seconds}
