"""One attention function for every model in skyreels_core.

Model files never import flash-attn or call SDPA themselves: they call `attention()`. Backends:
  - "flash_attn": flash-attn 2/3 when importable, on CUDA, fp16/bf16, no mask.
  - "sdpa": torch scaled_dot_product_attention.
  - "auto" (default): flash_attn when it can run, else sdpa.
On CPU, long sequences are processed in query chunks so the score matrix never exceeds
`CPU_SCORE_BUDGET_BYTES`; the result is identical to one big call (softmax is per query row).
"""

from __future__ import annotations

import importlib
import logging

import torch
import torch.nn.functional as F

__all__ = ["attention", "available_backends", "flash_attn_status", "ATTENTION_BACKENDS"]

log = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("auto", "sdpa", "flash_attn")

# Bytes of fp32 attention scores allowed per call on CPU before we chunk the queries.
CPU_SCORE_BUDGET_BYTES = 512 * 1024 * 1024

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
