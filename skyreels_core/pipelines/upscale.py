"""Super-resolution of video frames with an image model (Real-ESRGAN and the other spandrel architectures).

Each frame is upscaled on its own, so this is as sharp as the image model and as fast, but it knows nothing of
time: fine texture can flicker from frame to frame. Video SR models (SeedVR2, FlashVSR) see several frames at
once; they fit the same interface when the callable treats its batch as a clip.

The model is any callable `fn(x) -> y` with x: [b, 3, h, w] in 0..1 on the device and y: [b, 3, h * s, w * s].
Device memory is bounded by what one call sees (batch x tile), whatever the number of frames: the frames stay
on the CPU, one batch of tiles at a time goes to the device, and each result is written straight into the
preallocated CPU output.

Tiles are spread evenly and shrunk to the smallest size that covers the frame with as many tiles (`tile_spans`
with fit). In each overlap the outer quarter on either side is dropped (those pixels saw the tile's zero
padding instead of their neighbours) and the middle half is cross-faded linearly (`ramp_weights`, normalised
where three tiles meet). So tiled output equals whole-frame output wherever a quarter of the overlap covers the
model's receptive field, and elsewhere passes from one tile to the next without a hard seam.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import CheckpointError, SkyReelsInputError
from ..models.video_vae_tiling import ramp_weights, tile_spans

__all__ = [
    "FrameUpscaler",
    "UpscaleFn",
    "check_upscale_settings",
    "is_out_of_memory",
    "spandrel_upscaler",
    "upscale_frames",
]

log = logging.getLogger(__name__)

UpscaleFn = Callable[[torch.Tensor], torch.Tensor]
# After an out-of-memory error the tile is halved down to this size (px), then the error is raised.
MIN_TILE = 32


@dataclass(frozen=True)
class FrameUpscaler:
    """An image model ready for `upscale_frames`.

    fn: [b, 3, h, w] float in 0..1 on the model's device and dtype -> [b, 3, h * scale, w * scale].
    scale: the integer output / input size ratio.
    align: tile sizes and offsets are multiples of this (px): a model that pixel-unshuffles its input is only
        shift-equivariant by whole cells, so a tile starting mid-cell would see a different grid.
    whole_frame: the model needs global context (spandrel `ModelTiling.INTERNAL`); run it with tile 0.
    name: for messages, e.g. "ESRGAN x2 (4nf, 1nb, unshuffle)".
    """

    fn: UpscaleFn
    scale: int
    align: int = 1
    whole_frame: bool = False
    name: str = ""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is a device out-of-memory error (CUDA, or another backend's 'out of memory')."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def _rounded(tile: int, overlap: int, align: int) -> tuple[int, int]:
    """tile rounded down and overlap rounded up to multiples of align (tile 0 stays 0)."""
    if tile:
        tile = max(align, tile // align * align)
    return tile, -(-overlap // align) * align


def check_upscale_settings(
    frames: torch.Tensor, *, scale: int, tile: int, overlap: int, batch: int, align: int = 1
) -> tuple[int, int]:
    """Raise SkyReelsInputError naming the fix for a bad input or setting; returns (tile, overlap) in px,
    rounded to multiples of `align` (tile down, overlap up). frames: [N, H, W, 3] float."""
    if not (isinstance(frames, torch.Tensor) and frames.dim() == 4 and frames.shape[-1] == 3):
        found = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise SkyReelsInputError(f"Frames must be an IMAGE batch [frames, height, width, 3]; got {found}.")
    if not frames.is_floating_point() or 0 in frames.shape:
        raise SkyReelsInputError(f"Frames must be non-empty float 0..1; got {frames.dtype} {tuple(frames.shape)}.")
    for name, value, low in (
        ("scale", scale, 1),
        ("batch", batch, 1),
        ("align", align, 1),
        ("tile", tile, 0),
        ("overlap", overlap, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SkyReelsInputError(f"{name} must be an integer >= {low}; got {value!r}.")
    tile, overlap = _rounded(tile, overlap, align)
    if tile and tile < max(frames.shape[1:3]) and tile < 2 * overlap:
        rounded = f" (rounded to multiples of {align} px for this model)" if align > 1 else ""
        raise SkyReelsInputError(
            f"The tile ({tile} px) must be at least twice the overlap ({overlap} px){rounded}, or 0 for whole "
            f"frames; use tile {2 * overlap} or overlap {tile // 2 // align * align}."
        )
    return tile, overlap


# ---------------------------------------------------------------- tile plan


@dataclass(frozen=True)
class _Axis:
    """Tiles along one axis: [start, stop) spans in input px and their blend weights in output px."""

    spans: list[tuple[int, int]]
    weights: list[torch.Tensor]


def _axis(length: int, tile: int, overlap: int, align: int, scale: int, device) -> _Axis:
    """The tiles of an axis of `length` input px (tile 0 or >= length: one) and their weights on `device`."""
    if tile == 0 or tile >= length:
        return _Axis([(0, length)], [torch.ones(length * scale, device=device)])
    # Spans in cells of `align` px; the last cell may be partial (cut at the frame edge below, where the model
    # pads as it would the whole frame).
    cells = tile_spans(-(-length // align), tile // align, overlap // align, fit=True)
    spans = [(start * align, min(stop * align, length)) for start, stop in cells]
    margin = overlap // align // 4
    # Evenly spread tiles can overlap by more than half a tile, so three meet; dividing by the sum makes the
    # weights a partition of unity on each axis, hence also of the 2-D tiles (their products).
    total = torch.zeros(length * scale)
    ramps = []
    for i, (start, stop) in enumerate(spans):
        ramps.append(ramp_weights(cells, i, align * scale, margin)[: (stop - start) * scale])  # the cut: all ones
        total[start * scale : stop * scale] += ramps[-1]
    weights = [(w / total[a * scale : b * scale]).to(device) for w, (a, b) in zip(ramps, spans, strict=True)]
    return _Axis(spans, weights)


def _upscale_batch(
    fn: UpscaleFn, frames: torch.Tensor, out: torch.Tensor, rows: _Axis, cols: _Axis, scale: int, device, dtype
) -> None:
    """Upscale frames [b, H, W, 3] (CPU) into out [b, H*s, W*s, 3] (CPU float32), tile by tile."""
    single = len(rows.spans) == len(cols.spans) == 1
    if not single:
        out.zero_()  # the tiles' weighted parts are summed in place
    for (r0, r1), wy in zip(rows.spans, rows.weights, strict=True):
        for (c0, c1), wx in zip(cols.spans, cols.weights, strict=True):
            x = frames[:, r0:r1, c0:c1].to(device=device, dtype=dtype).permute(0, 3, 1, 2).contiguous()
            y = fn(x)
            expected = (x.shape[0], 3, (r1 - r0) * scale, (c1 - c0) * scale)
            if tuple(y.shape) != expected:
                raise CheckpointError(
                    f"The upscale model returned {list(y.shape)} for a {list(x.shape)} input; a x{scale} model "
                    f"returns {list(expected)}. Its scale is not {scale} (or it is not an RGB image model)."
                )
            del x
            target = out[:, r0 * scale : r1 * scale, c0 * scale : c1 * scale]
            if single:
                target.copy_(y.permute(0, 2, 3, 1))
            else:
                target.add_((y.float() * (wy[:, None] * wx[None, :])).permute(0, 2, 3, 1).cpu())
            del y
    out.clamp_(0.0, 1.0)


def upscale_frames(
    fn: UpscaleFn,
    frames: torch.Tensor,
    *,
    scale: int,
    tile: int = 0,
    overlap: int = 32,
    batch: int = 1,
    align: int = 1,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    callback: Callable[[int, int], None] | None = None,
    is_oom: Callable[[BaseException], bool] = is_out_of_memory,
) -> torch.Tensor:
    """Upscale every frame of a video with an image model, in bounded device memory.

    Args:
        fn: the model, [b, 3, h, w] -> [b, 3, h * scale, w * scale] (see FrameUpscaler); already on `device`
            in `dtype`.
        frames: [N, H, W, 3] float 0..1 (ComfyUI IMAGE), on the CPU.
        tile: tile size in input px (0 = whole frames); rounded down to a multiple of `align`.
        overlap: overlap between neighbouring tiles in input px (rounded up to `align`); must be <= tile / 2.
            Output equals the untiled output where overlap / 4 covers the model's receptive field.
        batch: frames per model call.
        callback: called as callback(frames_done, N) after each batch; an exception raised there (e.g.
            ComfyUI's interrupt) stops the work.
        is_oom: which exceptions mean "out of device memory": on one, the batch is halved, then the tile
            (down to MIN_TILE), and the same frames are tried again; the smaller settings are kept.
    Returns:
        [N, H * scale, W * scale, 3] float32 on the CPU, clamped to 0..1.
    """
    tile, overlap = check_upscale_settings(frames, scale=scale, tile=tile, overlap=overlap, batch=batch, align=align)
    n, height, width, _ = frames.shape
    out = torch.empty((n, height * scale, width * scale, 3), dtype=torch.float32)
    axes = None
    done = 0
    while done < n:
        stop = min(done + batch, n)
        if axes is None:
            axes = (
                _axis(height, tile, overlap, align, scale, device),
                _axis(width, tile, overlap, align, scale, device),
            )
        try:
            with torch.no_grad():
                _upscale_batch(fn, frames[done:stop], out[done:stop], *axes, scale, device, dtype)
            error = None
        except Exception as exc:
            if not is_oom(exc):
                raise
            error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        if error is not None:  # outside `except`, so the failed call's tensors are already freed
            batch, new_tile = _retry_smaller(error, (done, stop), batch, tile, (height, width), overlap, align)
            axes = None if new_tile != tile else axes
            tile = new_tile
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
            continue
        done = stop
        if callback is not None:
            callback(done, n)
    return out


def _retry_smaller(
    error: str, frames: tuple[int, int], batch: int, tile: int, size: tuple[int, int], overlap: int, align: int
) -> tuple[int, int]:
    """The (batch, tile) to retry with after running out of memory: half the batch, then half the tile (logged);
    raises when the tile would drop below MIN_TILE or twice the overlap."""
    now = f"batch {batch}, tile {f'{tile} px' if tile else 'whole frame'}"
    if batch > 1:
        smaller = batch // 2, tile
    else:
        half = (tile or max(size)) // 2 // align * align
        smaller = (1, half) if half >= max(MIN_TILE, 2 * overlap, align) else None
    if smaller is None:
        raise SkyReelsInputError(
            f"Out of device memory upscaling frames {frames[0]}-{frames[1] - 1} even with {now} and overlap "
            f"{overlap} px ({error}). Free memory (unload other models), use fp16/bf16, or a smaller overlap."
        )
    log.warning(
        "Out of memory upscaling frames %d-%d with %s; retrying with batch %d, tile %s (%s)",
        frames[0],
        frames[1] - 1,
        now,
        smaller[0],
        f"{smaller[1]} px" if smaller[1] else "whole frame",
        error,
    )
    return smaller


# ---------------------------------------------------------------- spandrel models


def spandrel_upscaler(descriptor, dtype: torch.dtype | None = None) -> FrameUpscaler:
    """Check that a spandrel model descriptor can upscale RGB video frames and wrap it as a FrameUpscaler.

    descriptor: what `spandrel.ModelLoader().load_from_state_dict(sd)` returns (ComfyUI's UPSCALE_MODEL).
    dtype: the dtype it will run in; fp16 / bf16 are refused for architectures spandrel marks unsupported.
    The descriptor pads an input that misses its size requirements (minimum, multiple of, square) and crops
    the output; `align` = the multiple keeps inner tiles from being padded, so tiles match the whole frame.
    """
    try:
        from spandrel import ImageModelDescriptor, ModelTiling
    except ImportError as exc:  # ComfyUI ships spandrel; the core alone does not need it
        raise CheckpointError(f"Upscale models are read with spandrel, which is not installed ({exc}).") from exc
    if not isinstance(descriptor, ImageModelDescriptor):
        raise CheckpointError(
            f"The upscale model is a {type(descriptor).__name__} ({_arch(descriptor)}), not a single-image model "
            f"(e.g. an inpainting model); load a super-resolution model such as RealESRGAN_x2plus.pth."
        )
    name = f"{_arch(descriptor)} x{descriptor.scale} ({', '.join(descriptor.tags)})"
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise CheckpointError(
            f"{name} takes {descriptor.input_channels} and returns {descriptor.output_channels} channels; video "
            f"frames need an RGB (3 -> 3 channel) model."
        )
    if not isinstance(descriptor.scale, int) or descriptor.scale < 1:
        raise CheckpointError(f"{name}: the scale must be a positive integer; got {descriptor.scale!r}.")
    supported = {
        torch.float32: True,
        torch.float16: descriptor.supports_half,
        torch.bfloat16: descriptor.supports_bfloat16,
    }
    if dtype is not None and not supported.get(dtype, False):
        names = ", ".join(str(d).removeprefix("torch.") for d, ok in supported.items() if ok)
        raise SkyReelsInputError(f"{name} does not run in {str(dtype).removeprefix('torch.')}; it runs in {names}.")
    return FrameUpscaler(
        fn=descriptor,
        scale=descriptor.scale,
        align=descriptor.size_requirements.multiple_of,
        whole_frame=descriptor.tiling == ModelTiling.INTERNAL,
        name=name,
    )


def _arch(descriptor) -> str:
    architecture = getattr(descriptor, "architecture", None)
    return getattr(architecture, "name", None) or type(descriptor).__name__
