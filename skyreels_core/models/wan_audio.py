# original version: https://github.com/SkyworkAI/SkyReels-V3 (skyreels_v3/modules/transformer_a2v.py), the
# MultiTalk / InfiniteTalk speech adapter: AudioProjModel and SingleStreamAttention (one speaker).
"""The SkyReels-V3 A2V speech adapter of the Wan DiT: windowed wav2vec2 features -> audio tokens per latent frame
(`audio_proj`), and the per-block frame-local cross-attention to them (`audio_cross_attn`).

Key names are the released ones (research/skyreels_v3.md §10.3); `WanModel` builds both when
`WanDiTConfig.audio_adapter` is set.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nn.attention import attention

__all__ = ["AudioProjModel", "WanAudioCrossAttention", "audio_windows_per_latent_frame"]


def audio_windows_per_latent_frame(audio: torch.Tensor, window: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed speech features per video frame -> one window per latent frame.

    audio: [B, stride * (F - 1) + 1, window, layers, C]. Latent frame 0 keeps video frame 0's window. Each later
    latent frame covers `stride` video frames and takes: the first frame's window up to the centre, the centre
    entry of each middle frame, the last frame's window from the centre (window + stride - 1 entries).
    Returns ([B, 1, window, layers, C], [B, F - 1, window + stride - 1, layers, C]).
    """
    centre = window // 2
    groups = audio[:, 1:].unflatten(1, (-1, stride))  # [B, F-1, stride, window, layers, C]
    later = torch.cat([
        groups[:, :, 0, : centre + 1],
        groups[:, :, 1:-1, centre],
        groups[:, :, -1, centre:],
    ], dim=2)
    return audio[:, :1], later


class AudioProjModel(nn.Module):
    """Speech features -> `tokens` audio tokens per latent frame (keys audio_proj.{proj1, proj1_vf, proj2, proj3,
    norm}); runs in the compute dtype, as in the reference."""

    def __init__(self, *, feature_dim: int, layers: int, window: int, stride: int, hidden_dim: int, tokens: int,
                 token_dim: int, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        per_frame = layers * feature_dim
        self.tokens, self.token_dim, self.window, self.stride = tokens, token_dim, window, stride
        self.proj1 = ops.Linear(window * per_frame, hidden_dim, **kw)
        self.proj1_vf = ops.Linear((window + stride - 1) * per_frame, hidden_dim, **kw)
        self.proj2 = ops.Linear(hidden_dim, hidden_dim, **kw)
        self.proj3 = ops.Linear(hidden_dim, tokens * token_dim, **kw)
        self.norm = ops.LayerNorm(token_dim, **kw)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, stride * (F - 1) + 1, window, layers, C] -> [B, F, tokens, token_dim]."""
        first, later = audio_windows_per_latent_frame(audio, self.window, self.stride)
        h = torch.cat([F.relu(self.proj1(first.flatten(2))), F.relu(self.proj1_vf(later.flatten(2)))], dim=1)
        tokens = self.proj3(F.relu(self.proj2(h))).unflatten(-1, (self.tokens, self.token_dim))
        return self.norm(tokens)


class WanAudioCrossAttention(nn.Module):
    """A2V speech cross-attention, frame-local: the tokens of latent frame f attend only to the audio tokens of
    frame f. No q/k norms and no RoPE (single speaker, as released). Keys q_linear, kv_linear (k rows first, then
    v rows), proj."""

    def __init__(self, dim: int, audio_dim: int, num_heads: int, *, ops, device=None, dtype=None):
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        kw = dict(device=device, dtype=dtype)
        self.q_linear = ops.Linear(dim, dim, **kw)
        self.kv_linear = ops.Linear(audio_dim, 2 * dim, **kw)
        self.proj = ops.Linear(dim, dim, **kw)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """x: [B, F * S, D] (S tokens per latent frame); audio: [B, F, N_audio, audio_dim]. Returns [B, F * S, D]."""
        b, frames = audio.shape[:2]
        heads = (self.num_heads, self.head_dim)
        # one attention batch per latent frame
        q = self.q_linear(x.reshape(b * frames, -1, self.dim)).unflatten(-1, heads)
        k, v = self.kv_linear(audio.flatten(0, 1)).unflatten(-1, (2, *heads)).unbind(-3)
        y = attention(q, k, v, backend=backend).flatten(2)
        return self.proj(y).reshape(b, -1, self.dim)
