# original version: https://github.com/Wan-Video/Wan2.1/blob/main/wan/modules/model.py
# as modified by https://github.com/SkyworkAI/SkyReels-V2 (skyreels_v2_infer/modules/transformer.py):
# batched tensors, per-frame timesteps [B, F] (diffusion forcing), fps embedding (DF-1.3B); the speech adapter
# of SkyReels-V3 A2V as in https://github.com/SkyworkAI/SkyReels-V3 (skyreels_v3/modules/transformer_a2v.py).
"""The Wan2.1-family video DiT used by SkyReels V2/V3 (T2V, I2V, diffusion forcing, A2V talking avatar).

Parameter names are the original checkpoint keys, so official Wan / SkyReels files load with strict=True.
Differences from the reference, all numerically neutral in float32:
  - per-frame modulation stays [B, 6, F, D] and is broadcast over each frame's tokens (never [B, 6, L, D]);
  - RoPE angles are computed from the token positions (angle = position * inv_freq) instead of a 1024-row table;
  - the I2V image tokens travel separately from the text tokens (no hard-coded 257 split);
  - the bf16 block-output cast of SkyReels-V2 is optional (`WanModel.residual_dtype`, default off = Wan2.1);
  - SkyReels-V3 A2V embeds the timestep in bf16 (no float32 autocast); we keep the float32 island for it too.
    Its speech adapter runs in the compute dtype like the reference; norm_x is the same affine LayerNorm as norm3.
Float32 islands (as in the reference): time embedding MLPs, modulation arithmetic, q/k norms + RoPE, head.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, SkyReelsInputError
from ..nn.attention import ATTENTION_BACKENDS, attention
from ..nn.embeddings import diffusers_timestep_embedding, sinusoidal_embedding
from ..nn.modulation import gated_residual, modulate, modulation_chunks
from ..nn.norms import FP32LayerNorm, RMSNorm
from ..nn.rope import grid_positions, rope_angles, rope_apply
from .wan_audio import AudioProjModel, WanAudioCrossAttention

__all__ = [
    "WanDiTConfig",
    "WanModel",
    "TokenGrid",
    "WanBlockInputs",
    "WanAttentionBlock",
    "param_count",
    "T2V_1_3B",
    "T2V_14B",
    "I2V_1_3B",
    "I2V_14B",
    "DF_1_3B",
    "DF_14B",
    "A2V_19B",
    "TINY",
]

WAN_HEAD_DIM = 128  # every released Wan2.1 / SkyReels DiT


# config


@dataclass(frozen=True)
class WanDiTConfig:
    """Architecture of a Wan2.1-family DiT (the `WanModel.__init__` arguments of the reference)."""

    model_type: str = "t2v"  # "t2v" | "i2v"
    in_dim: int = 16  # 16, or 36 = 16 noise + 4 mask + 16 image latent for I2V
    dim: int = 1536
    ffn_dim: int = 8960
    freq_dim: int = 256
    text_dim: int = 4096
    out_dim: int = 16
    num_heads: int = 12
    num_layers: int = 30
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    inject_sample_info: bool = False  # DF-1.3B fps embedding branch
    image_dim: int = 1280  # CLIP ViT-H/14 penultimate width (I2V)
    # SkyReels-V3 A2V speech adapter (MultiTalk/InfiniteTalk design): `audio_proj` + per-block `audio_cross_attn`.
    audio_adapter: bool = False
    audio_feature_dim: int = 768  # wav2vec2-base hidden width
    audio_layers: int = 12  # wav2vec2-base hidden states stacked per video frame
    audio_window: int = 5  # video frames of speech context around each frame
    audio_tokens: int = 32  # audio tokens per latent frame
    audio_token_dim: int = 768  # width of those tokens (the reference's output_dim)
    audio_hidden_dim: int = 512  # the reference's intermediate_dim
    vae_temporal_stride: int = 4  # video frames per latent frame after the first
    # Timestep sinusoid: "float64" (Wan-native files: Wan2.1, SkyReels-V2, V3 V2V) or "float32" (files in the
    # diffusers layout, e.g. SkyReels-V3 R2V, trained with diffusers' float32 `Timesteps`). Set by the loader from
    # the key layout, never stored in a file's metadata.
    time_embed_precision: str = dataclasses.field(default="float64", metadata={"from_layout": True})

    def __post_init__(self):
        if self.model_type not in ("t2v", "i2v"):
            raise CheckpointError(f"Unsupported Wan model_type {self.model_type!r}: expected 't2v' or 'i2v'.")
        if self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise CheckpointError(
                f"dim {self.dim} is not divisible into {self.num_heads} heads of even width; "
                f"Wan models use head_dim 128 (num_heads = dim // 128)."
            )
        if self.time_embed_precision not in ("float64", "float32"):
            raise CheckpointError(f"time_embed_precision must be 'float64' or 'float32'; got {self.time_embed_precision!r}.")
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def is_i2v(self) -> bool:
        return self.model_type == "i2v"

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], **overrides) -> WanDiTConfig:
        """Infer the architecture from tensor shapes (keys as in the official files, prefix already stripped).

        `overrides` replace inferred fields, e.g. num_heads for a head_dim other than 128 (the loader passes
        the config stored in the file's metadata, checked against `shape_fields` first).
        """
        fields = {name: value for name, (value, _) in shape_fields(sd).items()}
        dim = fields["dim"]
        if "num_heads" not in overrides:
            if dim % WAN_HEAD_DIM:
                raise CheckpointError(
                    f"Cannot infer num_heads: dim {dim} is not a multiple of Wan's head_dim {WAN_HEAD_DIM}. "
                    f"Pass num_heads explicitly."
                )
            fields["num_heads"] = dim // WAN_HEAD_DIM
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"Unknown WanDiTConfig fields: {sorted(unknown)}")
        return cls(**{**fields, **overrides})


def shape_fields(sd: dict[str, torch.Tensor]) -> dict[str, tuple[object, str]]:
    """{field: (value, the tensor it comes from)} for every WanDiTConfig field the tensor shapes determine."""
    _check_is_wan(sd)
    patch = tuple(sd["patch_embedding.weight"].shape[2:])
    i2v = "img_emb.proj.0.weight" in sd or "blocks.0.cross_attn.k_img.weight" in sd
    fields = {
        "model_type": ("i2v" if i2v else "t2v", "img_emb / cross_attn.k_img present or not"),
        "in_dim": (sd["patch_embedding.weight"].shape[1], "patch_embedding.weight"),
        "dim": (sd["head.modulation"].shape[-1], "head.modulation"),
        "ffn_dim": (sd["blocks.0.ffn.0.weight"].shape[0], "blocks.0.ffn.0.weight"),
        "freq_dim": (sd["time_embedding.0.weight"].shape[1], "time_embedding.0.weight"),
        "text_dim": (sd["text_embedding.0.weight"].shape[1], "text_embedding.0.weight"),
        "out_dim": (sd["head.head.weight"].shape[0] // math.prod(patch), "head.head.weight"),
        "num_layers": (_count_blocks(sd), "blocks.*"),
        "patch_size": (patch, "patch_embedding.weight"),
        "qk_norm": ("blocks.0.self_attn.norm_q.weight" in sd, "blocks.0.self_attn.norm_q present or not"),
        "cross_attn_norm": ("blocks.0.norm3.weight" in sd, "blocks.0.norm3 present or not"),
        "inject_sample_info": ("fps_embedding.weight" in sd, "fps_embedding present or not"),
    }
    if "img_emb.proj.1.weight" in sd:
        fields["image_dim"] = (sd["img_emb.proj.1.weight"].shape[1], "img_emb.proj.1.weight")
    fields["audio_adapter"] = (
        "audio_proj.proj1.weight" in sd or "blocks.0.audio_cross_attn.q_linear.weight" in sd,
        "audio_proj / blocks.0.audio_cross_attn present or not",
    )
    if fields["audio_adapter"][0]:
        fields.update(_audio_shape_fields(sd))
    return fields


def _audio_shape_fields(sd: dict[str, torch.Tensor]) -> dict[str, tuple[object, str]]:
    """The adapter sizes. proj1 / proj1_vf fix only window x layers x feature width, so the window and the VAE
    stride are read assuming the wav2vec2-base features (12 layers x 768) the adapter was trained on."""
    missing = [k for k in ("audio_proj.proj1.weight", "audio_proj.proj1_vf.weight", "audio_proj.proj2.weight",
                           "audio_proj.proj3.weight", "blocks.0.audio_cross_attn.kv_linear.weight") if k not in sd]
    if missing:
        raise CheckpointError(f"The A2V audio adapter is incomplete: missing {', '.join(missing)}. Is a shard missing?")
    defaults = WanDiTConfig()
    per_frame = defaults.audio_layers * defaults.audio_feature_dim
    window, rest = divmod(sd["audio_proj.proj1.weight"].shape[1], per_frame)
    window_later, rest_later = divmod(sd["audio_proj.proj1_vf.weight"].shape[1], per_frame)
    if rest or rest_later or window_later < window:
        raise CheckpointError(
            f"audio_proj.proj1 / proj1_vf take {sd['audio_proj.proj1.weight'].shape[1]} / "
            f"{sd['audio_proj.proj1_vf.weight'].shape[1]} features: not windows of {defaults.audio_layers} x "
            f"{defaults.audio_feature_dim} wav2vec2-base features (SkyReels-V3 A2V: 46080 / 73728)."
        )
    token_dim = sd["blocks.0.audio_cross_attn.kv_linear.weight"].shape[1]
    return {
        "audio_window": (window, "audio_proj.proj1.weight"),
        "vae_temporal_stride": (window_later - window + 1, "audio_proj.proj1_vf.weight"),
        "audio_token_dim": (token_dim, "blocks.0.audio_cross_attn.kv_linear.weight"),
        "audio_tokens": (sd["audio_proj.proj3.weight"].shape[0] // token_dim, "audio_proj.proj3.weight"),
        "audio_hidden_dim": (sd["audio_proj.proj2.weight"].shape[0], "audio_proj.proj2.weight"),
    }


_REQUIRED_KEYS = (
    "patch_embedding.weight",
    "text_embedding.0.weight",
    "time_embedding.0.weight",
    "time_projection.1.weight",
    "head.head.weight",
    "blocks.0.ffn.0.weight",
)


def _check_is_wan(sd: dict[str, torch.Tensor]) -> None:
    if "head.modulation" not in sd:
        hint = ""
        prefixed = [k for k in sd if k.endswith(".head.modulation")]
        if prefixed:
            hint = f" The keys carry a prefix ({prefixed[0][: -len('head.modulation')]!r}); strip it first."
        elif any(k.startswith(("scale_shift_table", "condition_embedder.")) for k in sd):
            hint = (
                " It uses diffusers key names (scale_shift_table, condition_embedder); convert it to Wan names first."
            )
        sample = ", ".join(sorted(sd)[:5])
        raise CheckpointError(
            f"No 'head.modulation' key: this does not look like a Wan/SkyReels diffusion model.{hint} "
            f"First keys: {sample or '(none)'}."
        )
    missing = [k for k in _REQUIRED_KEYS if k not in sd]
    if missing:
        raise CheckpointError(
            f"This does not look like a Wan/SkyReels diffusion model (or the file is incomplete): "
            f"missing {', '.join(missing)}."
        )
    if "img_emb.emb_pos" in sd:
        raise CheckpointError("Wan FLF2V models (img_emb.emb_pos) are not supported; use a T2V, I2V or DF model.")


def _count_blocks(sd: dict[str, torch.Tensor]) -> int:
    indices = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    if indices != set(range(len(indices))):
        missing = sorted(set(range(max(indices) + 1)) - indices)
        raise CheckpointError(
            f"Wan checkpoint has gaps in its blocks: missing blocks {missing[:5]}. Is a shard missing?"
        )
    return len(indices)


T2V_1_3B = WanDiTConfig(model_type="t2v", in_dim=16, dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)
T2V_14B = WanDiTConfig(model_type="t2v", in_dim=16, dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)
I2V_1_3B = dataclasses.replace(T2V_1_3B, model_type="i2v", in_dim=36)
I2V_14B = dataclasses.replace(T2V_14B, model_type="i2v", in_dim=36)
DF_1_3B = dataclasses.replace(T2V_1_3B, inject_sample_info=True)
DF_14B = T2V_14B  # SkyReels-V2-DF-14B has the T2V-14B shapes
A2V_19B = dataclasses.replace(I2V_14B, audio_adapter=True)  # SkyReels-V3-A2V-19B: Wan2.1-I2V-14B + speech adapter
TINY = WanDiTConfig(model_type="t2v", in_dim=16, dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64)


def param_count(config: WanDiTConfig) -> int:
    """Number of parameters of a model with this config (built on the meta device: no memory)."""
    model = WanModel(config, device="meta")
    return sum(p.numel() for p in model.parameters())


# float32 islands


def linear_fp32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(x) computed in float32 whatever the weight storage dtype (the reference's fp32 autocast regions).

    Plain torch Linears get their weights upcast here. Injected operations (ComfyUI manual-cast ops) must
    cast their weights to the float32 input themselves, which is their contract.
    """
    x = x.float()
    if layer.weight.dtype == torch.float32 or type(layer).forward is not nn.Linear.forward:
        return layer(x)
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x, layer.weight.float(), bias)


def sequential_fp32(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run an MLP (Linear / activation Sequential) as a float32 island."""
    for layer in seq:
        x = linear_fp32(layer, x) if hasattr(layer, "weight") else layer(x.float())
    return x


# per-call data shared by all blocks


@dataclass(frozen=True)
class TokenGrid:
    """Token grid after patchify: tokens are row-major (frame, row, column)."""

    frames: int
    height: int
    width: int

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width


# embeddings, FFN and unpatchify (shared with the AV MMDiT; the attribute names are the checkpoint keys)


def feed_forward(in_dim: int, hidden_dim: int, out_dim: int | None = None, *, ops, device=None, dtype=None):
    """Wan's MLP: Linear in -> hidden, GELU(tanh), Linear hidden -> out (default in); keys .0 / .2.

    The block FFN (`ffn`: dim -> ffn_dim -> dim) and the text embedding (`text_embedding`: text_dim -> dim -> dim).
    """
    kw = dict(device=device, dtype=dtype)
    out_dim = in_dim if out_dim is None else out_dim
    return nn.Sequential(
        ops.Linear(in_dim, hidden_dim, **kw), nn.GELU(approximate="tanh"), ops.Linear(hidden_dim, out_dim, **kw)
    )


def time_mlps(freq_dim: int, dim: int, *, ops, device=None, dtype=None) -> tuple[nn.Sequential, nn.Sequential]:
    """(`time_embedding`: Linear freq_dim -> dim, SiLU, Linear; `time_projection`: SiLU, Linear dim -> 6 * dim)."""
    kw = dict(device=device, dtype=dtype)
    embedding = nn.Sequential(ops.Linear(freq_dim, dim, **kw), nn.SiLU(), ops.Linear(dim, dim, **kw))
    return embedding, nn.Sequential(nn.SiLU(), ops.Linear(dim, 6 * dim, **kw))


def embed_time(
    time_embedding: nn.Sequential,
    time_projection: nn.Sequential,
    steps: torch.Tensor,
    dtype: torch.dtype,
    precision: str = "float64",
) -> tuple[torch.Tensor, torch.Tensor]:
    """steps: [B, G] timesteps (0..1000). Returns float32 (e [B, G, D] for the head, e0 [B, 6, G, D] for the blocks).

    precision "float64" (Wan): the float64 sinusoid is rounded to the weight (compute) dtype, then the MLPs run
    in float32. "float32" (diffusers `_keep_in_fp32_modules`: the time embedder stays float32): diffusers' float32
    sinusoid goes into the float32 MLPs unrounded.
    """
    b = steps.shape[0]
    if precision == "float32":
        sinus = diffusers_timestep_embedding(steps.flatten(), time_embedding[0].in_features)
    else:
        sinus = sinusoidal_embedding(steps.flatten(), time_embedding[0].in_features).to(dtype)
    e = sequential_fp32(time_embedding, sinus)  # [B*G, D]
    e0 = sequential_fp32(time_projection, e).view(b, -1, 6, e.shape[-1])  # [B, G, 6, D]
    return e.view(b, -1, e.shape[-1]), e0.transpose(1, 2)


def embed_text(text_embedding: nn.Sequential, context: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """[B or 1, L, text_dim] -> [B, L, D] in the compute dtype."""
    return text_embedding(context.to(dtype)).expand(batch, -1, -1)


def unpatchify(x: torch.Tensor, grid: TokenGrid, patch_size: tuple[int, int, int], channels: int) -> torch.Tensor:
    """[B, L, prod(patch) * C] (channel fastest) -> float32 [B, C, F*pt, H*ph, W*pw]."""
    pt, ph, pw = patch_size
    x = x.view(x.shape[0], grid.frames, grid.height, grid.width, pt, ph, pw, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # b c f pt h ph w pw
    return x.reshape(x.shape[0], channels, grid.frames * pt, grid.height * ph, grid.width * pw).float()


@dataclass(frozen=True)
class WanBlockInputs:
    """Everything a block needs besides the residual stream; built once per forward.

    e0: [B, 6, G, D] float32 projected time embedding (G = 1 per sample, or G = frames).
    angles: [L, head_dim/2] float32 RoPE angles.
    context: [B, L_txt, D] embedded text. context_img: [B, L_img, D] embedded CLIP tokens (I2V) or None.
    audio: [B, F, N_audio, audio_token_dim] projected speech tokens per latent frame (A2V) or None.
    """

    e0: torch.Tensor
    angles: torch.Tensor
    context: torch.Tensor
    context_img: torch.Tensor | None
    attn_backend: str = "auto"
    audio: torch.Tensor | None = None


# attention


class WanSelfAttention(nn.Module):
    """Self-attention with RMSNorm (over all heads) on q and k and 3-axis RoPE.

    `project` / `qkv` are the one q/k/v projection of every attention of the Wan DiT and the AV MMDiT
    (self-, text cross-, joint and cross-modal attention).
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6, *, ops, device, dtype):
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        kw = dict(device=device, dtype=dtype)
        self.q = ops.Linear(dim, dim, **kw)
        self.k = ops.Linear(dim, dim, **kw)
        self.v = ops.Linear(dim, dim, **kw)
        self.o = ops.Linear(dim, dim, **kw)
        self.norm_q = RMSNorm(dim, eps, **kw) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps, **kw) if qk_norm else nn.Identity()

    def project(self, x: torch.Tensor, linear: nn.Module, norm: nn.Module | None = None, angles=None) -> torch.Tensor:
        """[B, L, D] -> [B, L, H, head_dim]: `linear`, then `norm` (float32 out) and RoPE when given."""
        y = linear(x) if norm is None else norm(linear(x))
        y = y.unflatten(-1, (self.num_heads, self.head_dim))
        return y if angles is None else rope_apply(y, angles)

    def qkv(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        angles_q: torch.Tensor | None = None,
        angles_kv: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q from x, k and v from `context` (default x), each [B, L, H, head_dim] in v's (the compute) dtype.

        angles_q / angles_kv: [L, head_dim/2] RoPE angles of the queries / keys, or None (not rotated).
        """
        context = x if context is None else context
        v = self.project(context, self.v)
        # float32 island: the norms return float32 and RoPE rotates in float32; one rounding to v's dtype.
        q = self.project(x, self.q, self.norm_q, angles_q).to(v.dtype)
        k = self.project(context, self.k, self.norm_k, angles_kv).to(v.dtype)
        return q, k, v

    def forward(self, x: torch.Tensor, angles: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """x: [B, L, D] (compute dtype); angles: [L, head_dim/2]. Returns [B, L, D]."""
        q, k, v = self.qkv(x, angles_q=angles, angles_kv=angles)
        return self.o(attention(q, k, v, backend=backend).flatten(2))


class WanT2VCrossAttention(WanSelfAttention):
    """Cross-attention to the text tokens (no mask: zero-padded rows are attended, as in the reference)."""

    def forward(self, x, context, context_img=None, backend: str = "auto"):
        """x: [B, L, D]; context: [B, L_txt, D]. Returns [B, L, D]."""
        q, k, v = self.qkv(x, context)
        return self.o(attention(q, k, v, backend=backend).flatten(2))


class WanI2VCrossAttention(WanT2VCrossAttention):
    """Text cross-attention plus a separate CLIP-image cross-attention sharing q; the outputs are summed."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6, *, ops, device, dtype):
        super().__init__(dim, num_heads, qk_norm, eps, ops=ops, device=device, dtype=dtype)
        self.k_img = ops.Linear(dim, dim, device=device, dtype=dtype)
        self.v_img = ops.Linear(dim, dim, device=device, dtype=dtype)
        self.norm_k_img = RMSNorm(dim, eps, device=device, dtype=dtype) if qk_norm else nn.Identity()

    def forward(self, x, context, context_img=None, backend: str = "auto"):
        """x: [B, L, D]; context: [B, L_txt, D]; context_img: [B, L_img, D]. Returns [B, L, D]."""
        q, k, v = self.qkv(x, context)
        v_img = self.project(context_img, self.v_img)
        k_img = self.project(context_img, self.k_img, self.norm_k_img).to(v_img.dtype)
        img = attention(q, k_img, v_img, backend=backend)
        txt = attention(q, k, v, backend=backend)
        return self.o((txt + img).flatten(2))


CROSS_ATTENTION_CLASSES = {"t2v": WanT2VCrossAttention, "i2v": WanI2VCrossAttention}


# block


class WanAttentionBlock(nn.Module):
    """adaLN-modulated self-attention -> cross-attention -> FFN."""

    def __init__(self, config: WanDiTConfig, *, ops, device=None, dtype=None):
        super().__init__()
        c, kw = config, dict(device=device, dtype=dtype)
        self.norm1 = FP32LayerNorm(c.dim, c.eps)
        self.self_attn = WanSelfAttention(c.dim, c.num_heads, c.qk_norm, c.eps, ops=ops, **kw)
        # norm3 is the (affine) pre-norm of cross-attention, despite the name.
        self.norm3 = (
            ops.LayerNorm(c.dim, eps=c.eps, elementwise_affine=True, **kw) if c.cross_attn_norm else nn.Identity()
        )
        self.cross_attn = CROSS_ATTENTION_CLASSES[c.model_type](c.dim, c.num_heads, c.qk_norm, c.eps, ops=ops, **kw)
        self.norm2 = FP32LayerNorm(c.dim, c.eps)
        self.ffn = feed_forward(c.dim, c.ffn_dim, ops=ops, **kw)
        self.modulation = nn.Parameter(torch.randn(1, 6, c.dim, **kw) / c.dim**0.5)
        if c.audio_adapter:
            self.norm_x = ops.LayerNorm(c.dim, eps=c.eps, elementwise_affine=True, **kw)
            self.audio_cross_attn = WanAudioCrossAttention(c.dim, c.audio_token_dim, c.num_heads, ops=ops, **kw)

    def forward(self, x: torch.Tensor, inputs: WanBlockInputs) -> torch.Tensor:
        """x: [B, L, D] residual stream. Returns the float32 residual stream [B, L, D]."""
        shift_msa, scale_msa, gate_msa, shift_ffn, scale_ffn, gate_ffn = modulation_chunks(self.modulation, inputs.e0)
        dtype = inputs.context.dtype  # compute dtype
        # 1. Self-attention
        y = self.self_attn(modulate(self.norm1(x), shift_msa, scale_msa).to(dtype), inputs.angles, inputs.attn_backend)
        x = gated_residual(x, y, gate_msa)
        # 2. Cross-attention (neither modulated nor gated)
        x = x + self.cross_attn(self.norm3(x.to(dtype)), inputs.context, inputs.context_img, inputs.attn_backend)
        # 2b. Speech cross-attention (A2V; neither modulated nor gated)
        if inputs.audio is not None:
            x = x + self.audio_cross_attn(self.norm_x(x.to(dtype)), inputs.audio, inputs.attn_backend)
        # 3. Feed-forward
        y = self.ffn(modulate(self.norm2(x), shift_ffn, scale_ffn).to(dtype))
        return gated_residual(x, y, gate_ffn)


class Head(nn.Module):
    """Final adaLN (2 chunks: shift, scale) + Linear to patch pixels, a float32 island (keys head.{modulation,
    head}); the output head of the Wan DiT and of both AV MMDiT towers."""

    def __init__(self, dim: int, out_features: int, eps: float, *, ops, device=None, dtype=None):
        super().__init__()
        self.norm = FP32LayerNorm(dim, eps)
        self.head = ops.Linear(dim, out_features, device=device, dtype=dtype)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim, device=device, dtype=dtype) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D]; e: [B, G, D] float32 time embedding. Returns float32 [B, L, out_features]."""
        shift, scale = modulation_chunks(self.modulation, e.unsqueeze(1).expand(-1, 2, -1, -1))
        return linear_fp32(self.head, modulate(self.norm(x), shift, scale))


class MLPProj(nn.Module):
    """CLIP image tokens -> model width: LayerNorm, Linear, GELU, Linear, LayerNorm (keys img_emb.proj.{0,1,3,4})."""

    def __init__(self, in_dim: int, out_dim: int, *, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.proj = nn.Sequential(
            ops.LayerNorm(in_dim, **kw),
            ops.Linear(in_dim, in_dim, **kw),
            nn.GELU(),
            ops.Linear(in_dim, out_dim, **kw),
            ops.LayerNorm(out_dim, **kw),
        )

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """[B, N, image_dim] -> [B, N, D]."""
        return self.proj(image_embeds)


# model


class WanModel(nn.Module):
    """Wan2.1 / SkyReels-V2 diffusion transformer predicting the flow velocity (noise - x0).

    Runtime attributes (not part of the checkpoint):
        attn_backend: passed to `attention()` ("auto" | "sdpa" | "flash_attn").
        residual_dtype: None (float32 residual stream, Wan2.1; default) or torch.bfloat16 to reproduce the
            SkyReels-V2 reference, whose blocks return `x.to(bfloat16)`.
        compute_dtype: dtype of the Linear/attention inputs; defaults to the patch_embedding weight dtype
            (bfloat16 if that is not a plain float type, e.g. fp8 storage).
    """

    def __init__(self, config: WanDiTConfig, *, operations=None, device=None, dtype=None):
        super().__init__()
        ops = operations if operations is not None else nn
        c, kw = config, dict(device=device, dtype=dtype)
        self.config = c
        self.attn_backend = "auto"
        self.residual_dtype: torch.dtype | None = None
        self._compute_dtype: torch.dtype | None = None
        # embeddings
        self.patch_embedding = ops.Conv3d(c.in_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size, **kw)
        self.text_embedding = feed_forward(c.text_dim, c.dim, c.dim, ops=ops, **kw)
        self.time_embedding, self.time_projection = time_mlps(c.freq_dim, c.dim, ops=ops, **kw)
        if c.inject_sample_info:
            self.fps_embedding = ops.Embedding(2, c.dim, **kw)
            self.fps_projection = nn.Sequential(
                ops.Linear(c.dim, c.dim, **kw), nn.SiLU(), ops.Linear(c.dim, 6 * c.dim, **kw)
            )
        # blocks
        self.blocks = nn.ModuleList([WanAttentionBlock(c, ops=ops, **kw) for _ in range(c.num_layers)])
        # head
        self.head = Head(c.dim, c.out_dim * math.prod(c.patch_size), c.eps, ops=ops, **kw)
        if c.is_i2v:
            self.img_emb = MLPProj(c.image_dim, c.dim, ops=ops, **kw)
        if c.audio_adapter:
            self.audio_proj = AudioProjModel(
                feature_dim=c.audio_feature_dim, layers=c.audio_layers, window=c.audio_window,
                stride=c.vae_temporal_stride, hidden_dim=c.audio_hidden_dim, tokens=c.audio_tokens,
                token_dim=c.audio_token_dim, ops=ops, **kw,
            )

    @property
    def compute_dtype(self) -> torch.dtype:
        if self._compute_dtype is not None:
            return self._compute_dtype
        dtype = self.patch_embedding.weight.dtype
        return dtype if dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64) else torch.bfloat16

    @compute_dtype.setter
    def compute_dtype(self, dtype: torch.dtype | None) -> None:
        self._compute_dtype = dtype

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        context: torch.Tensor,
        clip_fea: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        fps=None,
        time_positions: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow velocity.

        Args:
            x: [B, C, F, H, W] noisy latent (C = in_dim, or 16 when y is given).
            t: [B] timesteps (0..1000), or [B, F] one per latent frame (diffusion forcing); a scalar broadcasts.
            context: [B or 1, L_txt, text_dim] umT5 output (padding rows are attended, no mask).
            clip_fea: I2V only, [B or 1, N_img (257), image_dim] CLIP penultimate tokens.
            y: I2V only, [B or 1, 20, F, H, W] condition (4 mask + 16 image latent), concatenated after x.
            fps: DF-1.3B only: int or [B] sequence of fps indices (0 = 16 fps, 1 = other); ignored otherwise.
            time_positions: [F] temporal RoPE position of each latent frame (default 0..F-1). SkyReels-V3 shot
                switching places its trailing condition frames at 1024, 1025, ... far from the generated ones.
            audio: A2V only, [B or 1, 4 * (F - 1) + 1, 5, 12, 768] windowed wav2vec2 features, one window per
                video frame (sizes: vae_temporal_stride, audio_window, audio_layers, audio_feature_dim).
        Returns:
            float32 [B, out_dim, F, H, W].
        """
        t, context, clip_fea, y, fps = self._check_inputs(x, t, context, clip_fea, y, fps)
        self._check_audio(audio, x.shape[0], x.shape[2] // self.config.patch_size[0])
        dtype = self.compute_dtype
        if y is not None:
            x = torch.cat([x, y.expand(x.shape[0], -1, -1, -1, -1).to(x.dtype)], dim=1)
        tokens, grid = self.embed_video(x.to(dtype))
        e, e0 = self.embed_time(t, fps)
        inputs = WanBlockInputs(
            e0=e0,
            angles=self.rope_angles(grid, tokens.device, self._check_positions(time_positions, grid.frames)),
            context=self.embed_text(context, x.shape[0]),
            context_img=None if clip_fea is None else self.embed_image(clip_fea, x.shape[0]),
            attn_backend=self.attn_backend,
            audio=None if audio is None else self.embed_audio(audio, x.shape[0]),
        )
        for block in self.blocks:
            tokens = block(tokens, inputs)
            if self.residual_dtype is not None:
                tokens = tokens.to(self.residual_dtype)
        return unpatchify(self.head(tokens, e), grid, self.config.patch_size, self.config.out_dim)

    # embeddings

    def embed_video(self, x: torch.Tensor) -> tuple[torch.Tensor, TokenGrid]:
        """[B, in_dim, F, H, W] -> tokens [B, L, D] in (f, h, w) order, and the grid."""
        x = self.patch_embedding(x)
        grid = TokenGrid(*x.shape[2:])
        return x.flatten(2).transpose(1, 2), grid

    def embed_time(self, t: torch.Tensor, fps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """t: [B] or [B, G]; fps: [B] indices or None.

        Returns float32 (e [B, G, D] for the head, e0 [B, 6, G, D] for the blocks); G = 1 for t [B].
        """
        b, dim = t.shape[0], self.config.dim
        e, e0 = embed_time(self.time_embedding, self.time_projection, t.reshape(b, -1), self.compute_dtype,
                           self.config.time_embed_precision)
        if self.config.inject_sample_info:
            fps_emb = self.fps_embedding(fps).float()  # [B, D]
            e0 = e0 + sequential_fp32(self.fps_projection, fps_emb).view(b, 6, 1, dim)  # e0 only, not e
        return e, e0

    def embed_text(self, context: torch.Tensor, batch: int) -> torch.Tensor:
        """[B or 1, L, text_dim] -> [B, L, D] (compute dtype)."""
        return embed_text(self.text_embedding, context, batch, self.compute_dtype)

    def embed_image(self, clip_fea: torch.Tensor, batch: int) -> torch.Tensor:
        """[B or 1, N, image_dim] -> [B, N, D] (compute dtype)."""
        return self.img_emb(clip_fea.to(self.compute_dtype)).expand(batch, -1, -1)

    def embed_audio(self, audio: torch.Tensor, batch: int) -> torch.Tensor:
        """[B or 1, video frames, window, layers, C] -> [B, F, N_audio, audio_token_dim] (compute dtype)."""
        return self.audio_proj(audio.to(self.compute_dtype)).expand(batch, -1, -1, -1)

    def rope_angles(self, grid: TokenGrid, device, time_positions: torch.Tensor | None = None) -> torch.Tensor:
        """RoPE angles [L, head_dim/2] for the token grid (positions 0..F-1 or `time_positions` [F], 0..H-1,
        0..W-1)."""
        positions = grid_positions(grid.frames, grid.height, grid.width, device=device)  # [L, 3]
        if time_positions is not None:
            per_token = time_positions.to(device, torch.float64).repeat_interleave(grid.tokens_per_frame)
            positions = torch.cat([per_token[:, None], positions[:, 1:]], dim=1)
        return rope_angles(positions, self.config.head_dim)

    @staticmethod
    def _check_positions(time_positions, frames: int) -> torch.Tensor | None:
        if time_positions is None:
            return None
        time_positions = torch.as_tensor(time_positions)
        if time_positions.shape != (frames,):
            raise SkyReelsInputError(
                f"time_positions must give one temporal position per latent frame ([{frames}]); "
                f"got shape {tuple(time_positions.shape)}."
            )
        return time_positions

    # validation (before any heavy compute)

    def _check_inputs(self, x, t, context, clip_fea, y, fps):
        """Validate shapes; returns normalised (t, context, clip_fea, y, fps)."""
        c = self.config
        if x.dim() != 5:
            raise SkyReelsInputError(f"x must be a batched latent video [B, C, F, H, W]; got shape {tuple(x.shape)}.")
        b, channels, frames, height, width = x.shape
        self._check_channels(channels, y, b, x.shape[2:])
        pt, ph, pw = c.patch_size
        if frames % pt or height % ph or width % pw:
            raise SkyReelsInputError(
                f"Latent size F×H×W = {frames}×{height}×{width} must be divisible by the patch size {pt}×{ph}×{pw} "
                f"(pixel width and height must be multiples of {8 * ph}); resize the video."
            )
        t = self._check_t(t, b, frames // pt, x.device)
        self._check_tokens("context", context, b, c.text_dim, "text_dim")
        if c.is_i2v and clip_fea is None:
            raise SkyReelsInputError(
                "This is an I2V model: it needs clip_fea, the CLIP vision tokens [B, 257, 1280] of the start image."
            )
        if clip_fea is not None:
            if not c.is_i2v:
                raise SkyReelsInputError("This is a T2V model: it has no image branch (img_emb); do not pass clip_fea.")
            self._check_tokens("clip_fea", clip_fea, b, c.image_dim, "image_dim")
        fps = self._check_fps(fps, b, x.device) if c.inject_sample_info else None
        if self.attn_backend not in ATTENTION_BACKENDS:
            raise SkyReelsInputError(f"attn_backend {self.attn_backend!r} is not one of {ATTENTION_BACKENDS}.")
        return t, context, clip_fea, y, fps

    def _check_audio(self, audio, batch: int, frames: int) -> None:
        c = self.config
        if not c.audio_adapter:
            if audio is not None:
                raise SkyReelsInputError(
                    "This model has no audio adapter (audio_proj / audio_cross_attn): do not pass audio; "
                    "use a SkyReels-V3 A2V model for speech-driven video."
                )
            return
        expected = (c.vae_temporal_stride * (frames - 1) + 1, c.audio_window, c.audio_layers, c.audio_feature_dim)
        if audio is None:
            raise SkyReelsInputError(
                f"This is an A2V model (audio adapter): it needs audio, the windowed wav2vec2 features "
                f"[B, {', '.join(map(str, expected))}] of the {expected[0]} video frames."
            )
        if audio.dim() != 5 or audio.shape[0] not in (1, batch) or tuple(audio.shape[1:]) != expected:
            raise SkyReelsInputError(
                f"audio must be [B, {', '.join(map(str, expected))}] (one speech window per video frame of "
                f"{frames} latent frames, batch {batch} or 1); got {tuple(audio.shape)}."
            )

    def _check_channels(self, channels: int, y, batch: int, spatial) -> None:
        c = self.config
        if c.is_i2v and y is None and channels != c.in_dim:
            raise SkyReelsInputError(
                f"This is an I2V model (in_dim {c.in_dim}): it needs the image condition y "
                f"({c.in_dim - channels} channels: 4 mask + 16 image latent) next to the {channels}-channel latent."
            )
        if y is not None:
            if not c.is_i2v:
                raise SkyReelsInputError(
                    f"This is a T2V model (in_dim {c.in_dim}): it takes no image condition y; use an I2V model."
                )
            if y.dim() != 5 or y.shape[0] not in (1, batch) or tuple(y.shape[2:]) != tuple(spatial):
                raise SkyReelsInputError(
                    f"y must be [B, C, F, H, W] matching x ({batch}, *, {tuple(spatial)}); got {tuple(y.shape)}."
                )
            channels += y.shape[1]
        if channels != c.in_dim:
            raise SkyReelsInputError(
                f"The model expects {c.in_dim} input channels but got {channels}"
                f"{' (x + y)' if y is not None else ''}. Is the latent from the right VAE (16 channels)?"
            )

    @staticmethod
    def _check_t(t, batch: int, frames: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,) and t.shape != (batch, frames):
            raise SkyReelsInputError(
                f"t must have shape [B] = [{batch}] (one timestep per sample) or [B, F] = [{batch}, {frames}] "
                f"(one per latent frame); got {tuple(t.shape)}."
            )
        return t

    @staticmethod
    def _check_tokens(name: str, tokens, batch: int, width: int, width_name: str) -> None:
        if tokens.dim() != 3:
            raise SkyReelsInputError(f"{name} must be [B, L, {width}]; got shape {tuple(tokens.shape)}.")
        if tokens.shape[0] not in (1, batch):
            raise SkyReelsInputError(
                f"{name} batch {tokens.shape[0]} does not match the latent batch {batch} (use 1 to share it)."
            )
        if tokens.shape[-1] != width:
            raise SkyReelsInputError(
                f"{name} width {tokens.shape[-1]} does not match this model's {width_name} {width}; "
                f"is it from the right encoder?"
            )

    @staticmethod
    def _check_fps(fps, batch: int, device) -> torch.Tensor:
        if fps is None:
            raise SkyReelsInputError(
                "This SkyReels DF-1.3B model has an fps embedding: pass fps index 0 (16 fps) or 1 (24 fps)."
            )
        fps = torch.as_tensor(fps, dtype=torch.long, device=device).reshape(-1)
        if fps.numel() == 1:
            fps = fps.expand(batch)
        if fps.shape != (batch,) or not bool(((fps == 0) | (fps == 1)).all()):
            raise SkyReelsInputError(
                f"fps must be one index per sample in {{0, 1}} (0 = 16 fps, 1 = 24 fps); got {fps.tolist()}."
            )
        return fps
