"""One loading path for every diffusion model kind, driven by a declarative `ModelSpec`.

`load_model(spec, path)` runs the same steps for each kind: read -> check the kind -> convert keys -> config
from the tensor shapes (metadata cross-checked, see `metadata.py`) -> build on the meta device -> fp8 swap
-> cast -> `load_strict(assign=True)` -> check nothing is left on meta -> attention backend and compute
dtype -> device, eval mode. A spec says only what differs between kinds.

Import rule: nothing in `checkpoints/` imports `models/`. Each model module declares its spec and its public
`load_*` function (`models/wan_dit_loader.py`, `models/av_mmdit.py`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .detect import detect_kind, wrong_kind_message
from .fp8 import FP8_DTYPES, apply_fp8, parse_weight_dtype
from .io import load_strict, read_metadata, read_state_dict

__all__ = ["ModelSpec", "default_dtype", "load_model"]

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """What differs between diffusion model kinds; `load_model` does the rest."""

    kind: str  # the `detect.py` kind the file must have, e.g. "wan_dit"
    description: str  # human-readable, for errors: "SkyReels/Wan video diffusion model"
    model_class: type[nn.Module]  # built as model_class(config, device="meta", dtype=dtype)
    config: Callable[[StateDict, dict[str, str]], object]  # (state, metadata) -> config; CheckpointError if bad
    convert: Callable[[StateDict], StateDict]  # any released key layout -> the model's own keys
    fp8_keep: tuple[str, ...] = ()  # regexes of Linear layers left unquantized when converting to fp8 at load
    allowed_extra: tuple[str, ...] = ()  # regexes of keys released files carry and we ignore (marker tensors)
    float32_keep: tuple[str, ...] = ()  # regexes of tensors kept float32 whatever `dtype` (e.g. norm buffers)
    # (state as released, before `convert`; the path given) -> config fields the file's layout decides
    layout_fields: Callable[[StateDict, Path], dict[str, object]] | None = None


def default_dtype(
    state: StateDict, *, fallback: torch.dtype = torch.bfloat16, device: str | torch.device | None = None
) -> torch.dtype:
    """The file's own float dtype: the most common one among the non-fp8 tensors (`fallback` if all are fp8).

    device: the CLIP vision encoder passes its device because float16 convolutions are slow or missing on
    CPU, so a float16 file runs in float32 there; the DiTs keep the file's dtype (ComfyUI picks theirs).
    """
    counts = Counter(t.dtype for t in state.values() if t.is_floating_point() and t.dtype not in FP8_DTYPES)
    dtype = counts.most_common(1)[0][0] if counts else fallback
    cpu = device is not None and torch.device(device).type == "cpu"
    return torch.float32 if dtype == torch.float16 and cpu else dtype


def _config(spec: ModelSpec, state: StateDict, metadata: dict[str, str], file: Path) -> object:
    try:
        return spec.config(state, metadata)
    except CheckpointError as exc:
        raise CheckpointError(f"{file.name}: {exc}") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(
            f"{file.name}: cannot infer the architecture from its tensors ({type(exc).__name__}: {exc}). "
            f"The file is incomplete or not a {spec.description}."
        ) from exc


def _cast(model: nn.Module, state: StateDict, spec: ModelSpec, fp8: torch.dtype | None, dtype: torch.dtype):
    """fp8 swap + cast to `dtype`; tensors matching `spec.float32_keep` go to float32 straight from the file."""
    keep = [re.compile(p) for p in spec.float32_keep]
    kept = {k: v.to(torch.float32) for k, v in state.items() if any(p.match(k) for p in keep)}
    rest = {k: v for k, v in state.items() if k not in kept}
    return {**apply_fp8(model, rest, quantize=fp8, keep=spec.fp8_keep, dtype=dtype), **kept}


def _check_materialised(model: nn.Module, file: Path) -> None:
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{file.name}: tensors {left[:5]} were not loaded (model built on meta).")


def load_model(
    spec: ModelSpec,
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    attn_backend: str = "auto",
    weight_dtype: str | torch.dtype | None = None,
    model_class: type[nn.Module] | None = None,
) -> nn.Module:
    """Read a model file of `spec.kind` into an eval-mode model on `device` (arguments as in `load_dit`)."""
    file = Path(path)
    fp8 = parse_weight_dtype(weight_dtype)
    state = read_state_dict(file)
    kind = detect_kind(state.keys())
    if kind != spec.kind:
        raise CheckpointError(wrong_kind_message(file, kind, spec.kind))
    from_layout = spec.layout_fields(state, file) if spec.layout_fields else {}
    state = spec.convert(state)
    config = _config(spec, state, read_metadata(file), file)
    if from_layout:
        config = dataclasses.replace(config, **from_layout)
    dtype = dtype or default_dtype(state)
    with torch.device("meta"):
        model = (model_class or spec.model_class)(config, device="meta", dtype=dtype)
    state = _cast(model, state, spec, fp8, dtype)
    load_strict(model, state, file=str(file), kind=spec.description, allowed_extra=spec.allowed_extra, assign=True)
    _check_materialised(model, file)
    model.attn_backend = attn_backend
    model.compute_dtype = dtype
    model.to(device).eval().requires_grad_(False)
    stored = "fp8" if any(t.dtype in FP8_DTYPES for t in state.values()) else str(dtype)
    log.info("Loaded %s (%s, weights %s): %s", file.name, spec.description, stored, config)
    return model
