"""Key renames for the Wan/SkyReels video DiT, as data.

Our modules use the original Wan2.1 names (`blocks.N.self_attn.q`, `head.modulation`, ...). Two other
layouts are in circulation:
- ComfyUI repackaged / full checkpoints: the same keys behind `model.diffusion_model.` (or
  `diffusion_model.`).
- diffusers `WanTransformer3DModel` / `SkyReelsV2Transformer3DModel` (the `*-Diffusers` repos, and
  SkyReels-V3 R2V): see `WAN_DIFFUSERS_RENAMES`.

`WAN_DIFFUSERS_RENAMES` is one table of (original template, diffusers template) pairs, compiled in both
directions, so the forward and reverse conversions cannot drift apart. `{i}` is a block index, `{rest}`
the parameter suffix (`weight`, `bias`). Keys that match no rule (`patch_embedding.*`, `fps_embedding.*`,
marker keys, adapters) keep their name. Source: diffusers `scripts/convert_skyreelsv2_to_diffusers.py`
`TRANSFORMER_KEYS_RENAME_DICT`, written out as whole-key templates instead of substring replaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

from ..errors import CheckpointError
from .io import strip_prefix

__all__ = [
    "DIT_PREFIXES",
    "VAE_DIFFUSERS_RENAMES",
    "WAN_DIFFUSERS_RENAMES",
    "RenameTable",
    "detect_dit_layout",
    "strip_dit_prefix",
    "to_diffusers_vae_keys",
    "to_diffusers_wan_keys",
    "to_original_vae_keys",
    "to_original_wan_keys",
]

# ComfyUI full checkpoints, ComfyUI diffusion_models files saved from a model patcher, and
# diffusers pipelines saved whole.
DIT_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.")

_B = "blocks.{i}."
WAN_DIFFUSERS_RENAMES: tuple[tuple[str, str], ...] = (
    # Embeddings (top level).
    ("time_embedding.0.{rest}", "condition_embedder.time_embedder.linear_1.{rest}"),
    ("time_embedding.2.{rest}", "condition_embedder.time_embedder.linear_2.{rest}"),
    ("text_embedding.0.{rest}", "condition_embedder.text_embedder.linear_1.{rest}"),
    ("text_embedding.2.{rest}", "condition_embedder.text_embedder.linear_2.{rest}"),
    ("time_projection.1.{rest}", "condition_embedder.time_proj.{rest}"),
    # I2V image projection (LayerNorm, Linear, GELU, Linear, LayerNorm) and FLF2V position embedding.
    ("img_emb.proj.0.{rest}", "condition_embedder.image_embedder.norm1.{rest}"),
    ("img_emb.proj.1.{rest}", "condition_embedder.image_embedder.ff.net.0.proj.{rest}"),
    ("img_emb.proj.3.{rest}", "condition_embedder.image_embedder.ff.net.2.{rest}"),
    ("img_emb.proj.4.{rest}", "condition_embedder.image_embedder.norm2.{rest}"),
    ("img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"),
    # DF-1.3B fps conditioning (Linear, SiLU, Linear).
    ("fps_projection.0.{rest}", "fps_projection.net.0.proj.{rest}"),
    ("fps_projection.2.{rest}", "fps_projection.net.2.{rest}"),
    # Output head.
    ("head.modulation", "scale_shift_table"),
    ("head.head.{rest}", "proj_out.{rest}"),
    # Blocks: modulation table, self-attention, cross-attention (+ I2V image keys), FFN.
    (_B + "modulation", _B + "scale_shift_table"),
    (_B + "self_attn.q.{rest}", _B + "attn1.to_q.{rest}"),
    (_B + "self_attn.k.{rest}", _B + "attn1.to_k.{rest}"),
    (_B + "self_attn.v.{rest}", _B + "attn1.to_v.{rest}"),
    (_B + "self_attn.o.{rest}", _B + "attn1.to_out.0.{rest}"),
    (_B + "self_attn.norm_q.{rest}", _B + "attn1.norm_q.{rest}"),
    (_B + "self_attn.norm_k.{rest}", _B + "attn1.norm_k.{rest}"),
    (_B + "cross_attn.q.{rest}", _B + "attn2.to_q.{rest}"),
    (_B + "cross_attn.k.{rest}", _B + "attn2.to_k.{rest}"),
    (_B + "cross_attn.v.{rest}", _B + "attn2.to_v.{rest}"),
    (_B + "cross_attn.o.{rest}", _B + "attn2.to_out.0.{rest}"),
    (_B + "cross_attn.norm_q.{rest}", _B + "attn2.norm_q.{rest}"),
    (_B + "cross_attn.norm_k.{rest}", _B + "attn2.norm_k.{rest}"),
    (_B + "cross_attn.k_img.{rest}", _B + "attn2.add_k_proj.{rest}"),
    (_B + "cross_attn.v_img.{rest}", _B + "attn2.add_v_proj.{rest}"),
    (_B + "cross_attn.norm_k_img.{rest}", _B + "attn2.norm_added_k.{rest}"),
    # Wan applies norm1 (self-attn), norm3 (cross-attn), norm2 (FFN); diffusers numbers them in order.
    (_B + "norm3.{rest}", _B + "norm2.{rest}"),
    (_B + "norm2.{rest}", _B + "norm3.{rest}"),
    (_B + "ffn.0.{rest}", _B + "ffn.net.0.proj.{rest}"),
    (_B + "ffn.2.{rest}", _B + "ffn.net.2.{rest}"),
)

_PLACEHOLDERS = {"i": r"(?P<i>\d+)", "rest": r"(?P<rest>.+)"}


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{i\}|\{rest\})", template)
    pattern = "".join(_PLACEHOLDERS[p[1:-1]] if p in ("{i}", "{rest}") else re.escape(p) for p in parts)
    return re.compile(pattern)


class RenameTable:
    """A compiled one-direction view of a (source template, target template) table."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self.rules = [(_template_regex(src), dst) for src, dst in pairs]

    def rename(self, key: str) -> str:
        for regex, target in self.rules:
            match = regex.fullmatch(key)
            if match:
                return target.format(**match.groupdict())
        return key

    def apply(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key, tensor in state.items():
            new_key = self.rename(key)
            if new_key in out:
                raise CheckpointError(f"Two tensors map to the same key {new_key!r}; the file mixes key layouts.")
            out[new_key] = tensor
        return out


_TO_DIFFUSERS = RenameTable(WAN_DIFFUSERS_RENAMES)
_TO_ORIGINAL = RenameTable((dst, src) for src, dst in WAN_DIFFUSERS_RENAMES)

_DIFFUSERS_MARKERS = (
    re.compile(r"^condition_embedder\."),
    re.compile(r"^blocks\.\d+\.attn[12]\."),
    re.compile(r"^proj_out\."),
    re.compile(r"^scale_shift_table$"),
)


def strip_dit_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ComfyUI's `model.diffusion_model.` (or `diffusion_model.`, `transformer.`) prefix."""
    return strip_prefix(state, DIT_PREFIXES)


def detect_dit_layout(keys: Iterable[str]) -> str:
    """ "diffusers" or "original" for (prefix-stripped) DiT keys."""
    for key in keys:
        if any(marker.search(key) for marker in _DIFFUSERS_MARKERS):
            return "diffusers"
    return "original"


def to_original_wan_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported DiT layout (original, ComfyUI-prefixed, diffusers) -> original Wan keys."""
    state = strip_dit_prefix(state)
    if detect_dit_layout(state) == "diffusers":
        return _TO_ORIGINAL.apply(state)
    return state


def to_diffusers_wan_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original Wan keys -> diffusers `WanTransformer3DModel` keys (used by tests and the tiny maker)."""
    state = strip_dit_prefix(state)
    if detect_dit_layout(state) == "diffusers":
        return dict(state)
    return _TO_DIFFUSERS.apply(state)


# ---------------------------------------------------------------- Wan2.1 video VAE (diffusers AutoencoderKLWan)

# A residual block's layers: Wan `residual.{0,2,3,6}` / `shortcut` <-> diffusers `norm1 conv1 norm2 conv2` /
# `conv_shortcut`. Containers: encoder stages keep their flat index (`downsamples.N` <-> `down_blocks.N`); the
# middle is (resnet, attention, resnet); the decoder's flat `upsamples.N` is grouped by diffusers into stages
# (`up_blocks.S.resnets.R` then one `up_blocks.S.upsamplers.0`), see `_group_up_blocks`.
_RESNET_LAYERS = (("residual.0", "norm1"), ("residual.2", "conv1"), ("residual.3", "norm2"),
                  ("residual.6", "conv2"), ("shortcut", "conv_shortcut"))
_VAE_CONTAINERS = (("encoder.downsamples.{i}", "encoder.down_blocks.{i}"),
                   ("decoder.upsamples.{i}", "decoder.up_blocks.{i}"),
                   *((f"{part}.middle.{w}", f"{part}.mid_block.resnets.{d}")
                     for part in ("encoder", "decoder") for w, d in ((0, 0), (2, 1))))
VAE_DIFFUSERS_RENAMES: tuple[tuple[str, str], ...] = (
    ("conv1.{rest}", "quant_conv.{rest}"),
    ("conv2.{rest}", "post_quant_conv.{rest}"),
    *((f"{part}.conv1.{{rest}}", f"{part}.conv_in.{{rest}}") for part in ("encoder", "decoder")),
    *((f"{part}.head.0.{{rest}}", f"{part}.norm_out.{{rest}}") for part in ("encoder", "decoder")),
    *((f"{part}.head.2.{{rest}}", f"{part}.conv_out.{{rest}}") for part in ("encoder", "decoder")),
    *((f"{part}.middle.1.{{rest}}", f"{part}.mid_block.attentions.0.{{rest}}") for part in ("encoder", "decoder")),
    *((f"{wan}.{w}.{{rest}}", f"{dif}.{d}.{{rest}}") for wan, dif in _VAE_CONTAINERS for w, d in _RESNET_LAYERS),
    # Resample layers (`resample.1`, `time_conv`) keep their names inside their container.
    ("encoder.downsamples.{i}.{rest}", "encoder.down_blocks.{i}.{rest}"),
    ("decoder.upsamples.{i}.{rest}", "decoder.up_blocks.{i}.{rest}"),
)
_VAE_TO_DIFFUSERS = RenameTable(VAE_DIFFUSERS_RENAMES)
_VAE_TO_ORIGINAL = RenameTable((dst, src) for src, dst in VAE_DIFFUSERS_RENAMES)
_UP_GROUPED = re.compile(r"^decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.+)$")
_UP_FLAT = re.compile(r"^decoder\.up_blocks\.(\d+)\.(.+)$")


def _resnets_per_up_block(state: dict[str, torch.Tensor]) -> int:
    """Residual blocks per decoder stage (num_res_blocks + 1; 3 in the released VAE), from the grouped keys."""
    found = {int(m.group(3)) for k in state if (m := _UP_GROUPED.match(k)) and m.group(3) is not None}
    if not found:
        raise CheckpointError("Not a Wan2.1 video VAE that loads: diffusers AutoencoderKLWan keys without "
                              "decoder.up_blocks.*.resnets (an incomplete file?); download the vae/ folder again.")
    return max(found) + 1


def to_original_vae_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers `AutoencoderKLWan` keys -> Wan2.1 VAE keys (`Wan2.1_VAE.pth`); Wan keys pass through."""
    if "quant_conv.weight" not in state:
        return state
    per_stage = _resnets_per_up_block(state) + 1  # resnets, then the upsampler (absent after the last stage)
    flat = {}
    for key, tensor in state.items():
        m = _UP_GROUPED.match(key)
        if m:
            index = int(m.group(1)) * per_stage + (int(m.group(3)) if m.group(3) is not None else per_stage - 1)
            key = f"decoder.up_blocks.{index}.{m.group(4)}"
        flat[key] = tensor
    return _VAE_TO_ORIGINAL.apply(flat)


def to_diffusers_vae_keys(state: dict[str, torch.Tensor], num_res_blocks: int = 2) -> dict[str, torch.Tensor]:
    """Wan2.1 VAE keys -> diffusers `AutoencoderKLWan` keys (for tests and the tiny maker)."""
    per_stage = num_res_blocks + 2
    out = {}
    for key, tensor in _VAE_TO_DIFFUSERS.apply(state).items():
        m = _UP_FLAT.match(key)
        if m:
            stage, slot = divmod(int(m.group(1)), per_stage)
            inner = "upsamplers.0" if slot == per_stage - 1 else f"resnets.{slot}"
            key = f"decoder.up_blocks.{stage}.{inner}.{m.group(2)}"
        out[key] = tensor
    return out
