"""Load a SkyReels / Wan2.1 video DiT from any released file layout.

Accepted: one `.safetensors` (original Wan keys, ComfyUI `model.diffusion_model.` prefix, or diffusers
naming), a sharded set (any shard, the `*.index.json` or the folder), `.pth` via weights_only; weights in
fp32 / bf16 / fp16, plain fp8 (e4m3fn, e5m2) or ComfyUI scaled fp8. The SkyReels `model_type.<name>`
marker tensor is ignored on purpose; every other key must match (strict load).

Steps: read -> strip prefix / convert diffusers names -> check the kind -> infer `WanDiTConfig` from shapes
(safetensors metadata `skyreels.<field>` may override, for test files with head_dim != 128) -> build on the
meta device -> fp8 swap -> cast -> `load_strict(assign=True)`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..models.wan_dit import WanDiTConfig, WanModel
from .convert import to_original_wan_keys
from .detect import detect_kind, wrong_kind_message
from .fp8 import FP8_DTYPES, apply_fp8, parse_weight_dtype
from .io import load_strict, read_metadata, read_state_dict

__all__ = ["DIT_KIND", "MARKER_KEYS", "WAN_FP8_KEEP", "config_overrides_from_metadata", "load_dit",
           "prepare_dit_state_dict"]

log = logging.getLogger(__name__)

DIT_KIND = "wan_dit"
# Released SkyReels files carry a dummy `model_type.SkyReels-V2-...` tensor (see research/skyreels_v2.md §2.1).
MARKER_KEYS = (r"model_type\..*",)
# Linear layers left in the compute dtype when converting a float file to fp8 at load: the small, precision
# sensitive embeddings and the output head (as ComfyUI/Kijai fp8 files do). Regexes on module names.
WAN_FP8_KEEP = (r"^(time_embedding|time_projection|text_embedding|fps_projection|img_emb|head)\b",)
METADATA_PREFIX = "skyreels."


def config_overrides_from_metadata(metadata: dict[str, str]) -> dict[str, object]:
    """`{"skyreels.num_heads": "2"}` -> `{"num_heads": 2}` for fields of WanDiTConfig (values are JSON)."""
    fields = {f.name for f in dataclasses.fields(WanDiTConfig)}
    overrides: dict[str, object] = {}
    for key, raw in metadata.items():
        name = key[len(METADATA_PREFIX):] if key.startswith(METADATA_PREFIX) else None
        if name not in fields:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        overrides[name] = tuple(value) if isinstance(value, list) else value
    return overrides


def prepare_dit_state_dict(state: dict[str, torch.Tensor], file: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Original Wan keys from any layout; raises CheckpointError if the file is another kind of model."""
    kind = detect_kind(state.keys())
    if kind != DIT_KIND:
        raise CheckpointError(wrong_kind_message(file, kind, DIT_KIND))
    return to_original_wan_keys(state)


def _default_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """Most common float dtype of the non-fp8 weights; bfloat16 for an all-fp8 file."""
    counts = Counter(t.dtype for t in state.values() if t.is_floating_point() and t.dtype not in FP8_DTYPES)
    return counts.most_common(1)[0][0] if counts else torch.bfloat16


def _config(state: dict[str, torch.Tensor], metadata: dict[str, str], file: Path) -> WanDiTConfig:
    try:
        return WanDiTConfig.from_state_dict(state, **config_overrides_from_metadata(metadata))
    except CheckpointError as exc:
        raise CheckpointError(f"{file.name}: {exc}") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise CheckpointError(
            f"{file.name}: cannot infer the DiT architecture from its tensors ({type(exc).__name__}: {exc}). "
            f"The file is incomplete or not a SkyReels/Wan2.1 diffusion model."
        ) from exc


def _check_materialised(model: torch.nn.Module, file: Path) -> None:
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{file.name}: tensors {left[:5]} were not loaded (model built on meta).")


def load_dit(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    attn_backend: str = "auto",
    weight_dtype: str | torch.dtype | None = None,
    model_class: type[WanModel] = WanModel,
) -> WanModel:
    """Read a DiT file (any layout above) into an eval-mode `WanModel` on `device`.

    dtype: dtype of the non-fp8 weights and of the compute (None: the file's own float dtype, bfloat16 for
        an all-fp8 file). weight_dtype: "default" / None (as stored), "fp8_e4m3fn" or "fp8_e5m2" to keep the
        block Linear weights in fp8 (converted at load if the file is bf16/fp32). model_class: a WanModel
        subclass with extra modules (e.g. an audio adapter); it must accept the same constructor.
    """
    file = Path(path)
    fp8 = parse_weight_dtype(weight_dtype)
    state = prepare_dit_state_dict(read_state_dict(file), file)
    config = _config(state, read_metadata(file), file)
    dtype = dtype or _default_dtype(state)
    with torch.device("meta"):
        model = model_class(config, device="meta", dtype=dtype)
    state = apply_fp8(model, state, quantize=fp8, keep=WAN_FP8_KEEP, dtype=dtype)
    load_strict(model, state, file=str(file), kind="SkyReels/Wan video diffusion model",
                allowed_extra=MARKER_KEYS, assign=True)
    _check_materialised(model, file)
    model.attn_backend = attn_backend
    model.compute_dtype = dtype
    model.to(device).eval().requires_grad_(False)
    log.info("Loaded %s: %s, %d layers, dim %d, weights %s", file.name, config.model_type, config.num_layers,
             config.dim, "fp8" if fp8 or any(t.dtype in FP8_DTYPES for t in state.values()) else dtype)
    return model
