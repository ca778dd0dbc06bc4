"""Spatial tiling with linear overlap blending for the causal video VAE (`video_vae.py`).

Each tile is a full-length spatial crop, processed causally over time with its own feature cache, so peak
memory is bounded by the tile area instead of the frame area. Tiles overlap; inside an overlap the two
tiles are cross-faded with linear ramps, and the accumulated sum is divided by the summed weights (which
also covers the corners where four tiles meet).

Tile sizes and overlaps are in latent units (x8 pixels). The functions here know nothing about the VAE:
they take a `run(region) -> tensor` function and the up/down scale between the input and output grids.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import SkyReelsInputError

__all__ = ["tile_spans", "ramp_weights", "run_tiled", "normalize_tile"]

Span = tuple[int, int]


def normalize_tile(tile, overlap) -> tuple[tuple[int, int], tuple[int, int]]:
    """(tile_h, tile_w), (overlap_h, overlap_w) from an int or a pair each."""
    tile_hw = (tile, tile) if isinstance(tile, int) else tuple(tile)
    overlap_hw = (overlap, overlap) if isinstance(overlap, int) else tuple(overlap)
    if len(tile_hw) != 2 or len(overlap_hw) != 2 or min(tile_hw) < 1 or min(overlap_hw) < 0:
        raise SkyReelsInputError(
            f"tile must be a positive int or (height, width) and overlap a non-negative int or pair, in latent "
            f"units; got tile {tile!r}, overlap {overlap!r}."
        )
    return tile_hw, overlap_hw


def tile_spans(length: int, tile: int, overlap: int, fit: bool = False) -> list[Span]:
    """Evenly spread [start, stop) spans of size `tile` covering 0..length, neighbours overlapping >= ~overlap.

    One span (0, length) when the tile covers the whole axis (the overlap is then irrelevant). fit: shrink the
    tile to the smallest that covers the axis with as many spans (a 540 px axis in 512 px tiles: two of 286
    instead of two of 512 overlapping by 484), so the tiles overlap by about `overlap` and no work is repeated.
    """
    if tile >= length:
        return [(0, length)]
    if overlap >= tile:
        raise SkyReelsInputError(
            f"Tile overlap {overlap} must be smaller than the tile {tile} (latent units); "
            f"try overlap {max(0, tile // 4)}."
        )
    count = math.ceil((length - overlap) / (tile - overlap))
    if fit:
        tile = math.ceil((length + (count - 1) * overlap) / count)
    starts = [round(i * (length - tile) / (count - 1)) for i in range(count)]
    return [(s, s + tile) for s in starts]


def _rising(n: int, margin: int) -> torch.Tensor:
    """n weights from 0 to 1: `margin` zeros, a linear ramp (i + 1) / (k + 1) over the k = n - 2 * margin middle
    samples, `margin` ones. rising + rising.flip(0) == 1 exactly, so two neighbours' ramps sum to 1."""
    margin = min(margin, n // 2)
    k = n - 2 * margin
    weights = torch.ones(n, dtype=torch.float32)
    weights[:margin] = 0.0
    weights[margin : margin + k] = torch.arange(1, k + 1, dtype=torch.float32) / (k + 1)
    return weights


def ramp_weights(spans: list[Span], index: int, scale: int, margin: int = 0) -> torch.Tensor:
    """1D float32 weights for span `index` in output units (span * scale).

    Ramps up over the overlap with the previous span and down over the overlap with the next one (multiplied
    where the two ramps meet, when spans overlap by more than half a tile), so the weights of all spans sum to
    1 wherever at most two spans overlap; divide by the sum where three do. margin (span units) drops that many
    samples at each inner edge of a tile (weight 0; the neighbour's weight is 1 there) and ramps over the rest
    of the overlap: a tile's edge pixels, which saw its zero padding instead of their neighbours, count for
    nothing.
    """
    start, stop = spans[index]
    weights = torch.ones((stop - start) * scale, dtype=torch.float32)
    if index > 0:
        n = (spans[index - 1][1] - start) * scale
        if n > 0:
            weights[:n] = _rising(n, margin * scale)
    if index + 1 < len(spans):
        n = (stop - spans[index + 1][0]) * scale
        if n > 0:
            weights[-n:] *= _rising(n, margin * scale).flip(0)
    return weights


def run_tiled(
    run: Callable[[tuple[slice, slice]], torch.Tensor],
    grid_hw: tuple[int, int],
    tile: tuple[int, int],
    overlap: tuple[int, int],
    *,
    in_scale: int,
    out_scale: int,
) -> torch.Tensor:
    """Run `run` on overlapping spatial tiles and blend the results.

    Args:
        run: takes (rows, cols) slices in *input* units and returns the float tensor [B, C, T, h, w] for that
            crop, with h = rows_len * out_scale / in_scale (likewise w).
        grid_hw: the latent grid size (H, W); tiles and overlaps are in these units.
        in_scale / out_scale: input and output units per latent cell (decode: 1 / 8, encode: 8 / 1).
    Returns:
        float32 [B, C, T, H * out_scale, W * out_scale].
    """
    rows = tile_spans(grid_hw[0], tile[0], overlap[0])
    cols = tile_spans(grid_hw[1], tile[1], overlap[1])
    out = weight_sum = None
    for i, (r0, r1) in enumerate(rows):
        wy = ramp_weights(rows, i, out_scale)
        for j, (c0, c1) in enumerate(cols):
            part = run((slice(r0 * in_scale, r1 * in_scale), slice(c0 * in_scale, c1 * in_scale))).float()
            if out is None:
                shape = part.shape[:3] + (grid_hw[0] * out_scale, grid_hw[1] * out_scale)
                out = torch.zeros(shape, dtype=torch.float32, device=part.device)
                weight_sum = torch.zeros(shape[-2:], dtype=torch.float32, device=part.device)
            w = (wy[:, None] * ramp_weights(cols, j, out_scale)[None, :]).to(part.device)
            ys, xs = slice(r0 * out_scale, r1 * out_scale), slice(c0 * out_scale, c1 * out_scale)
            out[..., ys, xs].add_(part * w)
            weight_sum[ys, xs].add_(w)
            del part
    return out.div_(weight_sum)
