"""Load a SkyReels / Wan2.1 video DiT from any released file layout (the `ModelSpec` of `WanModel`).

Accepted: one `.safetensors` (original Wan keys, ComfyUI `model.diffusion_model.` prefix, or diffusers
naming), a sharded set (any shard, the `*.index.json` or the folder), `.pth` via weights_only; weights in
fp32 / bf16 / fp16, plain fp8 (e4m3fn, e5m2) or ComfyUI scaled fp8. The SkyReels `model_type.<name>`
marker tensor is ignored on purpose; every other key must match (strict load). SkyReels-V3 A2V ships its
root folder as Wan-named shards (I2V + speech adapter) with the reference's `config.json`.

The config comes from the tensor shapes; a file may store it as JSON under `WAN_CONFIG_KEY` (needed when
head_dim != 128, as in the test files), and a Wan-named folder may carry the reference's `config.json`; both
are checked against the shapes before anything is built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..checkpoints.convert import detect_dit_layout, strip_dit_prefix, to_original_wan_keys
from ..checkpoints.io import shard_files
from ..checkpoints.loader import ModelSpec, load_model
from ..checkpoints.metadata import check_claims, read_config_metadata
from .wan_dit import WanDiTConfig, WanModel, shape_fields

__all__ = ["DIT_KIND", "MARKER_KEYS", "WAN_CONFIG_KEY", "WAN_DIT_SPEC", "WAN_FP8_KEEP", "load_dit", "wan_config"]

DIT_KIND = "wan_dit"
WAN_CONFIG_KEY = "skyreels.wan_dit.config"
# Released SkyReels files carry a dummy `model_type.SkyReels-V2-...` tensor (see research/skyreels_v2.md §2.1).
MARKER_KEYS = (r"model_type\..*",)
# Linear layers left in the compute dtype when converting a float file to fp8 at load: the small, precision
# sensitive embeddings and the output head (as ComfyUI/Kijai fp8 files do). Regexes on module names.
WAN_FP8_KEEP = (r"^(time_embedding|time_projection|text_embedding|fps_projection|img_emb|audio_proj|head)\b",)
# The reference WanModel's config.json names (Wan-native layout, e.g. SkyReels-V3 A2V) -> WanDiTConfig fields.
RELEASE_CONFIG_FIELDS = {
    "model_type": "model_type", "in_dim": "in_dim", "dim": "dim", "ffn_dim": "ffn_dim", "freq_dim": "freq_dim",
    "text_dim": "text_dim", "out_dim": "out_dim", "num_heads": "num_heads", "num_layers": "num_layers",
    "patch_size": "patch_size", "qk_norm": "qk_norm", "cross_attn_norm": "cross_attn_norm", "eps": "eps",
    "audio_window": "audio_window", "intermediate_dim": "audio_hidden_dim", "output_dim": "audio_token_dim",
    "context_tokens": "audio_tokens", "vae_scale": "vae_temporal_stride",
}


def wan_config(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> WanDiTConfig:
    """WanDiTConfig from the shapes; fields stored under WAN_CONFIG_KEY must agree with them."""
    stored = read_config_metadata(metadata, WAN_CONFIG_KEY, WanDiTConfig)
    check_claims(stored, shape_fields(state), WAN_CONFIG_KEY, WanDiTConfig)
    return WanDiTConfig.from_state_dict(state, **stored)


def wan_layout_fields(state: dict[str, torch.Tensor], path: Path) -> dict[str, object]:
    """Config fields the files around the weights decide: diffusers' timestep precision (`diffusers_fields`) or
    the claims of a Wan-native folder's config.json (`release_config_fields`)."""
    if detect_dit_layout(strip_dit_prefix(state)) == "diffusers":
        return diffusers_fields(path)
    return release_config_fields(state, path)


def release_config_fields(state: dict[str, torch.Tensor], path: Path) -> dict[str, object]:
    """The reference's config.json next to Wan-named shards (a folder, or one of several shards), checked against
    the tensor shapes. A lone file ignores config.json: in a models folder it belongs to something else."""
    if not path.is_dir() and len(shard_files(path)) < 2:
        return {}
    config = _read_json((path if path.is_dir() else path.parent) / "config.json")
    claims = {field: config[name] for name, field in RELEASE_CONFIG_FIELDS.items() if name in config}
    claims = {k: tuple(v) if isinstance(v, list) else v for k, v in claims.items()}
    check_claims(claims, shape_fields(to_original_wan_keys(state)), "config.json", WanDiTConfig)
    return claims


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def diffusers_fields(path: Path) -> dict[str, object]:
    """A diffusers model as saved by diffusers (diffusers keys + a `config.json` with `_class_name` next to the
    weights, e.g. SkyReels-V3 R2V `transformer/`) ran under diffusers' float32 timestep sinusoid, so it gets that.
    Files only renamed to diffusers keys (single-file conversions of Wan models) keep Wan's float64 one."""
    config = _read_json((path if path.is_dir() else path.parent) / "config.json")
    saved_by_diffusers = "_class_name" in config
    return {"time_embed_precision": "float32"} if saved_by_diffusers else {}


WAN_DIT_SPEC = ModelSpec(
    kind=DIT_KIND,
    description="SkyReels/Wan video diffusion model",
    model_class=WanModel,
    config=wan_config,
    convert=to_original_wan_keys,
    fp8_keep=WAN_FP8_KEEP,
    allowed_extra=MARKER_KEYS,
    layout_fields=wan_layout_fields,
)


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
    return load_model(WAN_DIT_SPEC, path, dtype=dtype, device=device, attn_backend=attn_backend,
                      weight_dtype=weight_dtype, model_class=model_class)
