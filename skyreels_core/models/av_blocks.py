"""Blocks of the SkyReels-V4 dual-stream audio-video MMDiT: dual-stream and single-stream tower blocks, the
audio<->video cross-attention and the two towers. The model, its config and the key table are in `av_mmdit.py`.

Everything reuses the Wan building blocks of `wan_dit.py` and their naming (the attention's q/k/v projection
`self_attn.{q,k,v,o,norm_q,norm_k}`, `norm1..3`, `ffn`, `modulation`, the output `head`, `patch_embedding`)
and the shared nn primitives. Residual streams are float32; Linear and attention inputs are in the compute
dtype; modulation, q/k norms, RoPE and the head are float32 islands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..nn.attention import WindowPlan, attention, window_attention
from ..nn.modulation import gated_residual, modulate, modulation_chunks
from ..nn.norms import FP32LayerNorm
from .wan_dit import Head, TokenGrid, WanSelfAttention, WanT2VCrossAttention, feed_forward, unpatchify

__all__ = [
    "StreamInputs",
    "joint_attention",
    "DualStreamBlock",
    "SingleStreamBlock",
    "CrossModalAttention",
    "AVCrossBlock",
    "Tower",
    "VideoTower",
    "AudioTower",
]


@dataclass(frozen=True)
class StreamInputs:
    """Everything one tower's blocks need besides the two residual streams; built once per forward.

    e0: [B, 6, G, D] float32 projected time embedding of the modality tokens. G = 1 (every token at the
        sample's timestep) or one group per video frame / audio token when clean references are prepended.
    e0_text: [B, 6, 1, D] float32 projected time embedding of the text tokens (the sample's timestep).
    angles: [L, head_dim/2] float32 RoPE angles of the modality tokens (references first).
    angles_joint: [L + L_txt, head_dim/2]: `angles` then zeros, i.e. text tokens are not rotated.
    context: [B, L_txt, D] embedded text (compute dtype): keys/values of the single-stream text cross-attention.
    window: the joint self-attention's window partition of [modality; text] (`nn.attention.window_plan`), or None
        for dense attention. The model sets it per block (regular windows on even blocks, shifted on odd ones).
    """

    e0: torch.Tensor
    e0_text: torch.Tensor
    angles: torch.Tensor
    angles_joint: torch.Tensor
    context: torch.Tensor
    attn_backend: str = "auto"
    window: WindowPlan | None = None


def joint_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, inputs: StreamInputs) -> torch.Tensor:
    """The joint self-attention over [modality; text] ([B, L + L_txt, H, D] each): dense, or windowed by the plan."""
    if inputs.window is None:
        return attention(q, k, v, backend=inputs.attn_backend)
    return window_attention(q, k, v, inputs.window, backend=inputs.attn_backend)


# tower blocks


class TextStream(nn.Module):
    """The text tokens' own weights inside a dual-stream block (keys `text.{modulation, self_attn.*, ffn.*}`)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float, *, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.self_attn = WanSelfAttention(dim, num_heads, True, eps, ops=ops, **kw)
        self.ffn = feed_forward(dim, ffn_dim, ops=ops, **kw)
        self.modulation = nn.Parameter(torch.randn(1, 6, dim, **kw) / dim**0.5)


class DualStreamBlock(nn.Module):
    """SD3-style dual-stream block (paper eqs. 1-3): modality and text tokens have separate adaLN, QKV, output
    projection and FFN, and share ONE joint self-attention over [modality; text]. Only modality tokens are
    rotated (text tokens carry no position)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float, *, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm1 = FP32LayerNorm(dim, eps)
        self.self_attn = WanSelfAttention(dim, num_heads, True, eps, ops=ops, **kw)
        self.norm2 = FP32LayerNorm(dim, eps)
        self.ffn = feed_forward(dim, ffn_dim, ops=ops, **kw)
        self.modulation = nn.Parameter(torch.randn(1, 6, dim, **kw) / dim**0.5)
        self.text = TextStream(dim, num_heads, ffn_dim, eps, ops=ops, **kw)

    def forward(self, x: torch.Tensor, xt: torch.Tensor, inputs: StreamInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, L, D] modality stream; xt: [B, L_txt, D] text stream. Returns both, float32."""
        shift, scale, gate, shift_ffn, scale_ffn, gate_ffn = modulation_chunks(self.modulation, inputs.e0)
        t_shift, t_scale, t_gate, t_shift_ffn, t_scale_ffn, t_gate_ffn = modulation_chunks(
            self.text.modulation, inputs.e0_text
        )
        dtype = inputs.context.dtype
        # 1. Joint self-attention: per-stream projections, one softmax over [modality; text]
        angles = inputs.angles
        q, k, v = self.self_attn.qkv(modulate(self.norm1(x), shift, scale).to(dtype), angles_q=angles, angles_kv=angles)
        qt, kt, vt = self.text.self_attn.qkv(modulate(self.norm1(xt), t_shift, t_scale).to(dtype))  # not rotated
        out = joint_attention(torch.cat([q, qt], 1), torch.cat([k, kt], 1), torch.cat([v, vt], 1), inputs)
        del q, k, v, qt, kt, vt
        y, yt = out.flatten(2).split([x.shape[1], xt.shape[1]], dim=1)
        x = gated_residual(x, self.self_attn.o(y), gate)
        xt = gated_residual(xt, self.text.self_attn.o(yt), t_gate)
        # 2. Feed-forward, per stream
        x = gated_residual(x, self.ffn(modulate(self.norm2(x), shift_ffn, scale_ffn).to(dtype)), gate_ffn)
        xt = gated_residual(xt, self.text.ffn(modulate(self.norm2(xt), t_shift_ffn, t_scale_ffn).to(dtype)), t_gate_ffn)
        return x, xt


class SingleStreamBlock(nn.Module):
    """Flux-style single-stream block: ONE set of weights over [modality; text] (self-attention, FFN; each part
    modulated by its own timestep embedding), plus the paper's extra text cross-attention (eq. 4,
    x = x + CA(q=x, kv=text)) on the modality tokens, Wan-style (affine pre-norm `norm3`, not gated)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float, *, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm1 = FP32LayerNorm(dim, eps)
        self.self_attn = WanSelfAttention(dim, num_heads, True, eps, ops=ops, **kw)
        self.norm3 = ops.LayerNorm(dim, eps=eps, elementwise_affine=True, **kw)
        self.cross_attn = WanT2VCrossAttention(dim, num_heads, True, eps, ops=ops, **kw)
        self.norm2 = FP32LayerNorm(dim, eps)
        self.ffn = feed_forward(dim, ffn_dim, ops=ops, **kw)
        self.modulation = nn.Parameter(torch.randn(1, 6, dim, **kw) / dim**0.5)

    def forward(self, x: torch.Tensor, xt: torch.Tensor, inputs: StreamInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, L, D] modality stream; xt: [B, L_txt, D] text stream. Returns both, float32."""
        shift, scale, gate, shift_ffn, scale_ffn, gate_ffn = modulation_chunks(self.modulation, inputs.e0)
        t_shift, t_scale, t_gate, t_shift_ffn, t_scale_ffn, t_gate_ffn = modulation_chunks(
            self.modulation, inputs.e0_text
        )
        dtype = inputs.context.dtype
        # 1. Self-attention over [modality; text], shared weights
        h = torch.cat([modulate(self.norm1(x), shift, scale), modulate(self.norm1(xt), t_shift, t_scale)], 1)
        q, k, v = self.self_attn.qkv(h.to(dtype), angles_q=inputs.angles_joint, angles_kv=inputs.angles_joint)
        y = self.self_attn.o(joint_attention(q, k, v, inputs).flatten(2))
        del q, k, v
        y, yt = y.split([x.shape[1], xt.shape[1]], dim=1)
        x, xt = gated_residual(x, y, gate), gated_residual(xt, yt, t_gate)
        # 2. Text cross-attention (modality tokens)
        x = x + self.cross_attn(self.norm3(x.to(dtype)), inputs.context, None, inputs.attn_backend)
        # 3. Feed-forward, shared weights
        x = gated_residual(x, self.ffn(modulate(self.norm2(x), shift_ffn, scale_ffn).to(dtype)), gate_ffn)
        xt = gated_residual(xt, self.ffn(modulate(self.norm2(xt), t_shift_ffn, t_scale_ffn).to(dtype)), t_gate_ffn)
        return x, xt


# audio <-> video


class CrossModalAttention(WanSelfAttention):
    """Gated cross-attention from one modality (queries) to the other (keys/values), time-only RoPE on both.

    x = x + gate * o(attn(q(norm(x)), k(norm_kv(other)), v(norm_kv(other)))). Keys: q k v o, norm_q norm_k
    (RMSNorm over all heads), norm / norm_kv (affine LayerNorm pre-norms), gate [D] (zero-initialised, so a new
    model starts as two independent towers; trained values come from the checkpoint).
    """

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6, *, ops, device=None, dtype=None):
        super().__init__(dim, num_heads, True, eps, ops=ops, device=device, dtype=dtype)
        self.norm = ops.LayerNorm(dim, eps=eps, elementwise_affine=True, device=device, dtype=dtype)
        self.norm_kv = ops.LayerNorm(dim, eps=eps, elementwise_affine=True, device=device, dtype=dtype)
        self.gate = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))

    def forward(self, x, other, angles_q, angles_kv, dtype: torch.dtype, backend: str = "auto") -> torch.Tensor:
        """x: [B, Lq, D] residual stream (queries); other: [B, Lk, D]; angles_*: [L*, head_dim/2] (time only).

        Returns float32 [B, Lq, D].
        """
        q, k, v = self.qkv(
            self.norm(x.to(dtype)), self.norm_kv(other.to(dtype)), angles_q=angles_q, angles_kv=angles_kv
        )
        y = self.o(attention(q, k, v, backend=backend).flatten(2))
        return x.float() + y.float() * self.gate.float()


class AVCrossBlock(nn.Module):
    """The paper's bidirectional exchange after block i (eq. 5), sequential: audio reads video first
    (`v2a`: a' = a + CA(q=a, kv=v)), then video reads the UPDATED audio (`a2v`: v' = v + CA(q=v, kv=a'))."""

    def __init__(self, dim: int, num_heads: int, eps: float, *, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(ops=ops, device=device, dtype=dtype)
        self.v2a = CrossModalAttention(dim, num_heads, eps, **kw)
        self.a2v = CrossModalAttention(dim, num_heads, eps, **kw)

    def forward(self, vx, ax, video_angles, audio_angles, dtype: torch.dtype, backend: str = "auto"):
        """vx: [B, Lv, D], ax: [B, La, D] (target tokens); angles: time-only [L*, head_dim/2]. Returns (vx, ax)."""
        # 1. Audio <- video
        ax = self.v2a(ax, vx, audio_angles, video_angles, dtype, backend)
        # 2. Video <- updated audio
        vx = self.a2v(vx, ax, video_angles, audio_angles, dtype, backend)
        return vx, ax


# head and towers


class Tower(nn.Module):
    """One modality's stack: `patch_embedding`, `blocks` (M dual-stream then N single-stream), `head`.

    Subclasses define the patch embedding and `embed` / `unpatchify` for their latent layout.
    """

    def __init__(self, config, out_features: int, *, ops, device=None, dtype=None):
        super().__init__()
        c, kw = config, dict(ops=ops, device=device, dtype=dtype)
        args = (c.dim, c.num_heads, c.ffn_dim, c.eps)
        self.blocks = nn.ModuleList(
            [DualStreamBlock(*args, **kw) for _ in range(c.num_dual_blocks)]
            + [SingleStreamBlock(*args, **kw) for _ in range(c.num_single_blocks)]
        )
        self.head = Head(c.dim, out_features, c.eps, **kw)


class VideoTower(Tower):
    """Video tower: Conv3d patch embedding of the 2C+1 = 33 input channels [noisy | condition | mask]."""

    def __init__(self, config, *, ops, device=None, dtype=None):
        super().__init__(
            config, config.video_channels * math.prod(config.patch_size), ops=ops, device=device, dtype=dtype
        )
        self.channels, self.patch_size = config.video_channels, config.patch_size
        self.patch_embedding = ops.Conv3d(
            2 * config.video_channels + 1,
            config.dim,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            device=device,
            dtype=dtype,
        )

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, TokenGrid]:
        """[B, 2C+1, F, h, w] -> tokens [B, F*h/2*w/2, D] in (f, h, w) order, and the grid."""
        x = self.patch_embedding(x)
        return x.flatten(2).transpose(1, 2), TokenGrid(*x.shape[2:])

    def unpatchify(self, x: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        """[B, L, prod(patch) * C] (channel fastest) -> float32 [B, C, F, h, w]."""
        return unpatchify(x, grid, self.patch_size, self.channels)


class AudioTower(Tower):
    """Audio tower: one token per audio latent frame, Linear patch embedding of the C_a = 40 channels."""

    def __init__(self, config, *, ops, device=None, dtype=None):
        super().__init__(config, config.audio_channels, ops=ops, device=device, dtype=dtype)
        self.patch_embedding = ops.Linear(config.audio_channels, config.dim, device=device, dtype=dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_a, T] -> tokens [B, T, D]."""
        return self.patch_embedding(x.transpose(1, 2))

    @staticmethod
    def unpatchify(x: torch.Tensor) -> torch.Tensor:
        """[B, T, C_a] -> float32 [B, C_a, T]."""
        return x.transpose(1, 2).float()
