"""One attention function for every model in skyreels_core.

Model files never import flash-attn or call SDPA themselves: they call `attention()`. Backends:
  - "flash_attn": flash-attn 2/3 when importable, on CUDA, fp16/bf16, no mask.
  - "sdpa": torch scaled_dot_product_attention.
  - "auto" (default): flash_attn when it can run, else sdpa.
On CPU, long sequences are processed in query chunks so the score matrix never exceeds
`CPU_SCORE_BUDGET_BYTES`; the result is identical to one big call (softmax is per query row).

`window_attention` is the block-sparse form of the same function (SkyReels-V4 refiner; SeedVR2-style 3-D windows):
a `WindowPlan` partitions a token grid into 3-D windows (optionally shifted by half a window, non-cyclic, so edge
windows are smaller); every windowed query attends to the keys of its own window plus the plan's "global" tokens
(text, and any tokens outside the grid), and every global query attends to all keys. Windows of equal shape are
batched into one `attention` call each (no padding, no mask, so flash-attn still runs); a plan is built once per
forward and reused by every block.
"""

from __future__ import annotations

import importlib
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "attention",
    "available_backends",
    "flash_attn_status",
    "ATTENTION_BACKENDS",
    "WindowPlan",
    "window_segments",
    "window_plan",
    "window_pairs",
    "window_attention",
]

log = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("auto", "sdpa", "flash_attn")

# Bytes of fp32 attention scores allowed per call on CPU before we chunk the queries.
CPU_SCORE_BUDGET_BYTES = 512 * 1024 * 1024
# Windowed query tokens per `attention` call: bounds the gathered q/k/v copies (64k tokens of a 5120-wide bf16
# model: about 2 GB with the text keys) while keeping calls large enough for the GPU.
WINDOW_CHUNK_TOKENS = 1 << 16

_flash_fn = None
_flash_reason = None


def _load_flash_attn():
    """Import flash-attn lazily (FA3 first, then FA2). Returns the function or None, and remembers why."""
    global _flash_fn, _flash_reason
    if _flash_fn is not None or _flash_reason is not None:
        return _flash_fn
    for module_name in ("flash_attn_interface", "flash_attn"):
        try:
            module = importlib.import_module(module_name)
            _flash_fn = module.flash_attn_func
            return _flash_fn
        except Exception as exc:  # ImportError, or a broken CUDA build raising anything else
            _flash_reason = f"{module_name}: {type(exc).__name__}: {exc}"
    log.info("flash-attn not usable (%s); using PyTorch SDPA", _flash_reason)
    return None


def flash_attn_status() -> str:
    """Human-readable reason flash-attn is or is not available (for logs and node errors)."""
    if _load_flash_attn() is not None:
        return "flash-attn available"
    return f"flash-attn unavailable ({_flash_reason})"


def available_backends() -> list[str]:
    backends = ["auto", "sdpa"]
    if torch.cuda.is_available() and _load_flash_attn() is not None:
        backends.append("flash_attn")
    return backends


def _flash_ok(q: torch.Tensor, mask) -> bool:
    return mask is None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and _load_flash_attn() is not None


def _sdpa(q, k, v, mask, scale):
    """q, k, v: [B, H, L, D]."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _sdpa_chunked(q, k, v, mask, scale):
    """SDPA over query chunks so the [B, H, Lq_chunk, Lk] score matrix stays under budget (CPU)."""
    b, h, lq, _ = q.shape
    lk = k.shape[2]
    rows = max(1, CPU_SCORE_BUDGET_BYTES // max(1, b * h * lk * 4))
    if rows >= lq:
        return _sdpa(q, k, v, mask, scale)
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
    for start in range(0, lq, rows):
        stop = min(lq, start + rows)
        chunk_mask = None if mask is None else mask[..., start:stop, :]
        out[:, :, start:stop] = _sdpa(q[:, :, start:stop], k, v, chunk_mask, scale)
    return out


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Softmax attention.

    Args:
        q: [B, Lq, H, D]; k, v: [B, Lk, H, D] (the flash-attn layout used by Wan).
        mask: optional bool (True = attend) or additive float mask broadcastable to [B, H, Lq, Lk].
        scale: defaults to 1/sqrt(D).
        backend: one of ATTENTION_BACKENDS. "flash_attn" falls back to sdpa (with a log line) when it cannot run.
    Returns:
        [B, Lq, H, D] in q's dtype.
    """
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"Unknown attention backend {backend!r}; choose one of {ATTENTION_BACKENDS}.")
    if backend in ("auto", "flash_attn") and _flash_ok(q, mask):
        out = _flash_fn(q, k, v, softmax_scale=scale)
        return out[0] if isinstance(out, tuple) else out  # FA3 may also return the log-sum-exp
    if backend == "flash_attn" and not _flash_ok(q, mask):
        log.debug("flash_attn requested but not usable here (%s); using sdpa", flash_attn_status())
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    if q.device.type == "cpu":
        out = _sdpa_chunked(qt, kt, vt, mask, scale)
    else:
        out = _sdpa(qt, kt, vt, mask, scale)
    return out.transpose(1, 2)


# windowed (block-sparse) attention


@dataclass(frozen=True)
class WindowPlan:
    """A partition of a token sequence of `length` for `window_attention`, built by `window_plan`.

    groups: one int64 tensor [n_windows, window_len] per distinct window shape: the sequence positions of each
        window's tokens (every window of a group has the same size, so a group is one batched attention call).
    global_index: int64 [L_global], the positions outside the windowed grid (text tokens, references, ...): they
        attend to every key, and every windowed query attends to them.
    Every position in [0, length) appears exactly once, in a group or in global_index.
    """

    groups: tuple[torch.Tensor, ...]
    global_index: torch.Tensor
    length: int

    def pairs(self) -> int:
        """(query, key) pairs scored: the attention FLOPs are 4 * pairs * head_dim * heads (QK^T and PV)."""
        num_global = self.global_index.numel()
        windows = sum(g.shape[0] * g.shape[1] * (g.shape[1] + num_global) for g in self.groups)
        return windows + num_global * self.length


def window_segments(size: int, window: int, shifted: bool = False) -> list[tuple[int, int]]:
    """(start, length) of the windows along one axis of `size` tokens.

    window <= 0 or >= size: one window over the whole axis (never shifted). Shifted: boundaries moved by half a
    window (Swin / SeedVR2 alternating windows), NOT cyclic, so the first window has window - window // 2 tokens
    and the last one the remainder: with size 10, window 4: regular [0,4) [4,8) [8,10); shifted [0,2) [2,6) [6,10).
    """
    if size < 1:
        raise ValueError(f"An axis of the token grid has size {size}; it must be at least 1.")
    if window <= 0 or window >= size:
        return [(0, size)]
    first = window - window // 2 if shifted else window
    starts = [0, *range(first, size, window)]
    return [(start, min(size, start + (first if start == 0 else window)) - start) for start in starts]


def _segments_by_length(size: int, window: int, shifted: bool) -> dict[int, list[int]]:
    """{window length: [starts]} along one axis."""
    by_length: dict[int, list[int]] = {}
    for start, length in window_segments(size, window, shifted):
        by_length.setdefault(length, []).append(start)
    return by_length


def window_plan(
    grid: tuple[int, int, int],
    window: tuple[int, int, int],
    *,
    shifted: bool = False,
    offset: int = 0,
    length: int | None = None,
    device: torch.device | str | None = None,
) -> WindowPlan:
    """Partition the row-major (frames, rows, cols) token grid that starts at sequence position `offset` into 3-D
    windows of `window` tokens (an entry <= 0: the whole axis); the sequence has `length` tokens in all (default:
    offset + the grid), and those outside the grid are global. Built once per forward (cheap index arithmetic)."""
    frames, rows, cols = grid
    num_grid = frames * rows * cols
    length = offset + num_grid if length is None else int(length)
    if offset < 0 or length < offset + num_grid:
        raise ValueError(f"The grid {grid} at offset {offset} does not fit in a sequence of {length} tokens.")
    axes = [_segments_by_length(n, w, shifted) for n, w in zip(grid, window, strict=True)]
    groups = []
    for lf, sf in axes[0].items():
        for ly, sy in axes[1].items():
            for lx, sx in axes[2].items():
                f = _axis_index(sf, lf, device).view(-1, 1, 1, lf, 1, 1)
                y = _axis_index(sy, ly, device).view(1, -1, 1, 1, ly, 1)
                x = _axis_index(sx, lx, device).view(1, 1, -1, 1, 1, lx)
                index = offset + (f * rows + y) * cols + x  # [nf, ny, nx, lf, ly, lx]
                groups.append(index.reshape(-1, lf * ly * lx))
    outside = torch.cat([torch.arange(offset), torch.arange(offset + num_grid, length)]).to(device)
    return WindowPlan(tuple(groups), outside, length)


def _axis_index(starts: list[int], length: int, device) -> torch.Tensor:
    """[n_windows, length] positions along one axis."""
    return (torch.tensor(starts)[:, None] + torch.arange(length)[None]).to(device)


def window_pairs(grid: tuple[int, int, int], window: tuple[int, int, int], shifted: bool, num_global: int) -> int:
    """`WindowPlan.pairs()` by arithmetic alone (no tensors): for cost tables at sizes that do not fit in memory."""
    counts = [_segments_by_length(n, w, shifted) for n, w in zip(grid, window, strict=True)]
    windows = 0
    for lf, sf in counts[0].items():
        for ly, sy in counts[1].items():
            for lx, sx in counts[2].items():
                size = lf * ly * lx
                windows += len(sf) * len(sy) * len(sx) * size * (size + num_global)
    return windows + num_global * (math.prod(grid) + num_global)


def _with_global(x: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
    """x [B, n, Lw, H, D] windows, x_global [B, Lg, H, D] -> [B * n, Lw + Lg, H, D] (each window + every global)."""
    if x_global.shape[1]:
        x = torch.cat([x, x_global[:, None].expand(-1, x.shape[1], -1, -1, -1)], dim=2)
    return x.flatten(0, 1)


def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    plan: WindowPlan,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Softmax attention restricted by `plan`: a windowed query sees its window's keys and the global keys; a
    global query sees every key. q, k, v: [B, L, H, D] (L = plan.length). Returns [B, L, H, D] in q's dtype.

    Each group of equal-shape windows is one `attention` call (same backends, same CPU chunking), split into calls
    of at most WINDOW_CHUNK_TOKENS query tokens. With one window covering the whole grid this is dense attention, up
    to the order of the softmax sums.
    """
    if not q.shape[1] == k.shape[1] == v.shape[1] == plan.length:
        raise ValueError(f"The window plan covers {plan.length} tokens but q/k/v have {q.shape[1]}/{k.shape[1]}/"
                         f"{v.shape[1]}: build the plan for this sequence.")
    batch, _, heads, _ = q.shape
    out = torch.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype, device=q.device)
    k_global, v_global = k[:, plan.global_index], v[:, plan.global_index]
    chunks = (rows for group in plan.groups for rows in group.split(max(1, WINDOW_CHUNK_TOKENS // group.shape[1])))
    for index in chunks:
        windows, size = index.shape
        flat = index.reshape(-1)
        qw = q[:, flat].reshape(batch * windows, size, heads, -1)
        kw = _with_global(k[:, flat].unflatten(1, (windows, size)), k_global)
        vw = _with_global(v[:, flat].unflatten(1, (windows, size)), v_global)
        out[:, flat] = attention(qw, kw, vw, scale=scale, backend=backend).reshape(batch, windows * size, heads, -1)
    if plan.global_index.numel():
        out[:, plan.global_index] = attention(q[:, plan.global_index], k, v, scale=scale, backend=backend)
    return out
