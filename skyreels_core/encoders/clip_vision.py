"""CLIP ViT-H/14 vision tower: the image features Wan / SkyReels I2V feed to the DiT (`clip_fea`).

# original version: https://github.com/Wan-Video/Wan2.1/blob/main/wan/modules/clip.py (VisionTransformer)

Module names are those of the `visual.*` part of Wan's `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`
(prefix removed): patch_embedding (conv, no bias) -> [cls | patches] + pos_embedding -> pre_norm ->
transformer.{i} (pre-norm blocks: norm1, attn.to_qkv fused q|k|v, attn.proj, norm2, mlp.0 / exact GELU / mlp.2).
The features are the hidden states after the first 31 of 32 blocks (`use_31_block=True`, the penultimate
layer), without post_norm or projection: [B, 257, 1280] for 224x224 input.

Also loads ComfyUI's `clip_vision_h.safetensors` (HF `CLIPVisionModel` naming, separate q/k/v projections,
see `COMFY_KEY_RENAMES`). Preprocessing follows Wan, not ComfyUI: the image is squashed (no crop) to 224x224
with bicubic interpolation (align_corners False, no clamp) and normalised with the CLIP mean / std.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.convert import RenameTable
from ..checkpoints.detect import check_kind
from ..checkpoints.fp8 import has_fp8
from ..checkpoints.io import load_strict, read_state_dict, strip_prefix
from ..checkpoints.loader import default_dtype
from ..errors import CheckpointError, SkyReelsInputError
from ..nn.attention import attention

__all__ = [
    "CLIPVisionConfig",
    "CLIPVisionEncoder",
    "CLIP_MEAN",
    "CLIP_STD",
    "COMFY_KEY_RENAMES",
    "convert_state_dict",
    "preprocess",
    "clip_vision_from_state_dict",
    "load_clip_vision",
]

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Heads are not visible in tensor shapes: known CLIP widths, else 64-wide heads.
_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16, 1664: 16}


# ---------------------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class CLIPVisionConfig:
    image_size: int = 224
    patch_size: int = 14
    dim: int = 1280
    mlp_dim: int = 5120
    num_heads: int = 16
    num_layers: int = 32  # blocks in the checkpoint
    feature_blocks: int = 31  # blocks whose output is returned (Wan's use_31_block)
    eps: float = 1e-5

    VIT_H_14 = None  # set below
    TINY = None

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """patches + cls: 257 for ViT-H/14 at 224 px."""
        return self.grid**2 + 1

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, num_heads: int | None = None, file: str = ""):
        """Sizes from tensor shapes (our naming; run `convert_state_dict` first). num_heads: see _HEADS_BY_WIDTH."""
        if "patch_embedding.weight" not in state or "pos_embedding" not in state:
            raise CheckpointError(
                f"{file}: no patch_embedding / pos_embedding, so this is not a CLIP vision model (first keys: "
                f"{', '.join(sorted(state)[:4])}). Pick clip_vision_h.safetensors or "
                f"models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth."
            )
        dim, channels, patch, _ = state["patch_embedding.weight"].shape
        grid = round((state["pos_embedding"].shape[1] - 1) ** 0.5)
        layers = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.(\d+)\.", k))}
        heads = num_heads or _HEADS_BY_WIDTH.get(dim) or dim // 64
        if channels != 3 or not layers or grid**2 + 1 != state["pos_embedding"].shape[1] or dim % max(heads, 1):
            raise CheckpointError(
                f"{file}: unsupported CLIP vision shapes (width {dim}, {channels} input channels, "
                f"{state['pos_embedding'].shape[1]} positions, {len(layers)} blocks, {heads} heads)."
            )
        num_layers = max(layers) + 1
        return cls(
            image_size=grid * patch,
            patch_size=patch,
            dim=dim,
            mlp_dim=state["transformer.0.mlp.0.weight"].shape[0],
            num_heads=heads,
            num_layers=num_layers,
            feature_blocks=max(num_layers - 1, 1),
        )


CLIPVisionConfig.VIT_H_14 = CLIPVisionConfig()
CLIPVisionConfig.TINY = CLIPVisionConfig(
    image_size=56, patch_size=14, dim=128, mlp_dim=512, num_heads=2, num_layers=3, feature_blocks=2
)


# ---------------------------------------------------------------------------------------------------------
# key conversion: HF CLIPVisionModel / ComfyUI clip_vision naming -> Wan naming

_L = "vision_model.encoder.layers.{i}."
COMFY_KEY_RENAMES: tuple[tuple[str, str], ...] = (
    ("cls_embedding", "vision_model.embeddings.class_embedding"),  # [1, 1, D] <-> [D]
    ("patch_embedding.{rest}", "vision_model.embeddings.patch_embedding.{rest}"),
    ("pos_embedding", "vision_model.embeddings.position_embedding.weight"),  # [1, N, D] <-> [N, D]
    ("pre_norm.{rest}", "vision_model.pre_layrnorm.{rest}"),  # sic: HF's spelling
    ("transformer.{i}.norm1.{rest}", _L + "layer_norm1.{rest}"),
    ("transformer.{i}.attn.to_q.{rest}", _L + "self_attn.q_proj.{rest}"),  # fused into attn.to_qkv (q|k|v)
    ("transformer.{i}.attn.to_k.{rest}", _L + "self_attn.k_proj.{rest}"),
    ("transformer.{i}.attn.to_v.{rest}", _L + "self_attn.v_proj.{rest}"),
    ("transformer.{i}.attn.proj.{rest}", _L + "self_attn.out_proj.{rest}"),
    ("transformer.{i}.norm2.{rest}", _L + "layer_norm2.{rest}"),
    ("transformer.{i}.mlp.0.{rest}", _L + "mlp.fc1.{rest}"),
    ("transformer.{i}.mlp.2.{rest}", _L + "mlp.fc2.{rest}"),
    ("post_norm.{rest}", "vision_model.post_layernorm.{rest}"),
    ("head", "visual_projection.weight"),  # [D, out] <-> [out, D]
)
_TO_WAN = RenameTable((theirs, ours) for ours, theirs in COMFY_KEY_RENAMES)
_QKV = re.compile(r"^(transformer\.\d+\.attn\.)to_q\.(\w+)$")
# Keys the released files carry that the features do not use.
IGNORED_KEYS = (r"^post_norm\.", r"^head$", r"^textual\.", r"^log_scale$", r"^vision_model\.embeddings\.position_ids$")


def _fuse_qkv(state: dict[str, torch.Tensor], file: str) -> dict[str, torch.Tensor]:
    out = {k: v for k, v in state.items() if not re.search(r"\.attn\.to_[qkv]\.", k)}
    for key in state:
        match = _QKV.match(key)
        if match is None:
            continue
        prefix, param = match.groups()
        parts = [state.get(f"{prefix}to_{x}.{param}") for x in "qkv"]
        if any(p is None for p in parts):
            raise CheckpointError(f"{file}: {prefix}q/k/v.{param} is incomplete; the download is probably truncated.")
        out[f"{prefix}to_qkv.{param}"] = torch.cat(parts, dim=0)
    return out


def convert_state_dict(state: dict[str, torch.Tensor], *, file: str = "") -> dict[str, torch.Tensor]:
    """Wan .pth (`visual.*`), Wan visual-only, or HF / ComfyUI (`vision_model.*`) -> our naming."""
    state = strip_prefix(state, ("clip_vision.",))
    if any(k.startswith("vision_model.") for k in state):
        state = _fuse_qkv(_TO_WAN.apply(state), file)
        if state.get("cls_embedding") is not None:
            state["cls_embedding"] = state["cls_embedding"].reshape(1, 1, -1)
        if state.get("pos_embedding") is not None:
            state["pos_embedding"] = state["pos_embedding"].unsqueeze(0)
        if state.get("head") is not None:
            state["head"] = state["head"].t()
        return state
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual.") :] if k.startswith("visual.") else k: v for k, v in state.items()}
    return state


# ---------------------------------------------------------------------------------------------------------
# preprocessing


def preprocess(images: torch.Tensor, image_size: int = 224) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> normalised pixels [B, 3, image_size, image_size] float32.

    Bicubic resize straight to the square size (Wan squashes, it does not crop), then (x - mean) / std.
    Wan resizes the [-1, 1] image and maps it back to [0, 1]; bicubic is linear, so that is the same thing.
    """
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise SkyReelsInputError(
            f"CLIP vision expects an IMAGE tensor [B, H, W, 3] (channels last, RGB or RGBA) in 0..1, got shape "
            f"{tuple(images.shape)}."
        )
    x = images[..., :3].movedim(-1, 1).to(torch.float32)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------------------
# modules


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the weight / input dtype (as Wan's clip.py)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).type_as(x)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, ops=nn, device=None, dtype=None):
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = ops.Linear(dim, dim * 3, device=device, dtype=dtype)
        self.proj = ops.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, dim] -> [B, L, dim]; softmax(q k^T / sqrt(head_dim)) v."""
        b, seq, dim = x.shape
        q, k, v = self.to_qkv(x).view(b, seq, 3, self.num_heads, -1).unbind(2)
        return self.proj(attention(q, k, v).reshape(b, seq, dim))


class AttentionBlock(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm1 = LayerNorm(cfg.dim, eps=cfg.eps, **kw)
        self.attn = SelfAttention(cfg.dim, cfg.num_heads, ops, **kw)
        self.norm2 = LayerNorm(cfg.dim, eps=cfg.eps, **kw)
        self.mlp = nn.Sequential(
            ops.Linear(cfg.dim, cfg.mlp_dim, **kw), nn.GELU(), ops.Linear(cfg.mlp_dim, cfg.dim, **kw)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CLIPVisionEncoder(nn.Module):
    """Normalised pixels [B, 3, S, S] -> features [B, (S/patch)^2 + 1, dim] after `feature_blocks` blocks."""

    def __init__(self, cfg: CLIPVisionConfig, *, operations=None, device=None, dtype=None):
        super().__init__()
        ops = operations or nn
        self.cfg = cfg
        kw = dict(device=device, dtype=dtype)
        self.patch_embedding = ops.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size, bias=False, **kw)
        self.cls_embedding = nn.Parameter(torch.zeros(1, 1, cfg.dim, **kw))
        self.pos_embedding = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.dim, **kw))
        self.pre_norm = LayerNorm(cfg.dim, eps=cfg.eps, **kw)
        self.transformer = nn.ModuleList([AttentionBlock(cfg, ops, **kw) for _ in range(cfg.num_layers)])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: [B, 3, S, S] (see `preprocess`) -> [B, S^2/patch^2 + 1, dim] in the weight dtype."""
        if pixels.shape[-2:] != (self.cfg.image_size, self.cfg.image_size):
            raise SkyReelsInputError(
                f"CLIP vision expects {self.cfg.image_size}x{self.cfg.image_size} pixels, got "
                f"{tuple(pixels.shape[-2:])}; run preprocess() first."
            )
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_embedding.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self.pre_norm(x + self.pos_embedding.to(x.dtype))
        for block in self.transformer[: self.cfg.feature_blocks]:
            x = block(x)
        return x

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """IMAGE [B, H, W, C] 0..1 -> clip_fea [B, 257, 1280] (ViT-H/14) in the weight dtype."""
        pixels = preprocess(images.to(self.pos_embedding.device), self.cfg.image_size)
        return self.forward(pixels)


# ---------------------------------------------------------------------------------------------------------
# loading


def clip_vision_from_state_dict(
    state: dict[str, torch.Tensor],
    *,
    file: str = "",
    dtype=None,
    device="cpu",
    num_heads: int | None = None,
    operations=None,
) -> CLIPVisionEncoder:
    """Build on meta and load strictly with assign=True; `state` in any supported layout."""
    if has_fp8(state):
        raise CheckpointError(
            f"{file}: fp8 CLIP vision files are not supported; use the fp16 clip_vision_h.safetensors."
        )
    ignored = [re.compile(p) for p in IGNORED_KEYS]  # dropped before the cast: Wan's file has a text tower
    state = {k: v for k, v in convert_state_dict(state, file=file).items() if not any(p.match(k) for p in ignored)}
    cfg = CLIPVisionConfig.from_state_dict(state, num_heads=num_heads, file=file)
    dtype = dtype or default_dtype(state, device=device)  # float16 on CPU runs in float32
    with torch.device("meta"):
        model = CLIPVisionEncoder(cfg, operations=operations, dtype=dtype)
    state = {k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in state.items()}
    load_strict(
        model, state, file=file or "<state dict>", kind="CLIP vision encoder", allowed_extra=IGNORED_KEYS, assign=True
    )
    return model.eval().requires_grad_(False)


def load_clip_vision(
    path: str | os.PathLike, *, dtype=None, device="cpu", num_heads: int | None = None
) -> CLIPVisionEncoder:
    """Wan's `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth` or ComfyUI's `clip_vision_h.safetensors`."""
    path = Path(path)
    state = read_state_dict(path)
    check_kind(state, path, "clip_vision")
    model = clip_vision_from_state_dict(state, file=str(path), dtype=dtype, device=device, num_heads=num_heads)
    log.info(
        "Loaded CLIP vision %s: width %d, %d/%d blocks",
        path.name,
        model.cfg.dim,
        model.cfg.feature_blocks,
        model.cfg.num_layers,
    )
    return model
