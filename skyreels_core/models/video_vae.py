# original version: https://github.com/Wan-Video/Wan2.1/blob/main/wan/modules/vae.py
# (identical to SkyReels-V2 skyreels_v2_infer/modules/vae.py). Copyright 2024-2025 The Alibaba Wan Team Authors.
"""Wan2.1 3D causal video VAE: 16 latent channels, 4x temporal and 8x8 spatial compression.

Parameter names are the keys of `Wan2.1_VAE.pth` / ComfyUI's `wan_2.1_vae.safetensors`
(`encoder.*`, `conv1.*`, `conv2.*`, `decoder.*`), so both load strictly.

Causal chunked processing as in the reference: encode runs on frame chunks [0:1], [1:5], [5:9], ...;
decode runs one latent frame at a time. Between chunks every causal conv sees the last CACHE_T = 2 input
frames of the previous chunk instead of zero padding. That state lives in an explicit `CausalCache` object
created per pass (and per spatial tile), never in the modules.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.convert import to_original_vae_keys
from ..checkpoints.detect import check_kind
from ..checkpoints.io import describe_keys, load_strict, read_state_dict
from ..errors import CheckpointError, SkyReelsInputError
from ..nn.attention import attention
from ..shapes import SPACE_STRIDE, check_frames, latent_frames, pixel_frames
from .video_vae_tiling import normalize_tile, run_tiled, tile_spans

__all__ = [
    "VAE3DConfig", "WanVAE", "CausalCache", "load_video_vae", "vae_state_dict",
    "LATENT_MEAN", "LATENT_STD", "DEFAULT_TILE", "DEFAULT_OVERLAP", "CACHE_T",
]

log = logging.getLogger(__name__)

CACHE_T = 2
# Per-channel latent statistics of the released Wan2.1 VAE (z_dim 16).
LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
# Default spatial tiles for nodes (latent units): 384x384 px tiles with 64 px cross-fades.
DEFAULT_TILE = (48, 48)
DEFAULT_OVERLAP = 8
# Prefixes found on VAE keys in combined / repackaged files.
_KEY_PREFIXES = ("first_stage_model.", "vae.", "model.")

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class VAE3DConfig:
    """Sizes of a Wan2.1-style causal VAE. Defaults are the released Wan2.1 VAE."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temperal_downsample: tuple[bool, ...] = (False, True, True)
    dropout: float = 0.0

    WAN21: ClassVar[VAE3DConfig]
    TINY: ClassVar[VAE3DConfig]

    @property
    def temperal_upsample(self) -> tuple[bool, ...]:
        return self.temperal_downsample[::-1]

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> VAE3DConfig:
        """Infer the config from tensor shapes. Raises CheckpointError when `sd` is not a Wan2.1 VAE."""
        sd = vae_state_dict(sd)
        dim, in_channels = sd["encoder.conv1.weight"].shape[:2]
        z_dim = sd["conv2.weight"].shape[0]
        if in_channels != 3 or sd["conv1.weight"].shape[0] != 2 * z_dim:
            raise CheckpointError(
                f"Unsupported Wan VAE: encoder input channels {in_channels} (expected 3), quant channels "
                f"{sd['conv1.weight'].shape[0]} (expected 2 x z_dim = {2 * z_dim})."
            )
        stages, resamples = _encoder_stages(sd)
        blocks = {len(s) for s in stages}
        if len(blocks) != 1 or len(resamples) != len(stages) - 1:
            raise CheckpointError(f"Unsupported Wan VAE layout: residual blocks per stage {[len(s) for s in stages]}.")
        attn = tuple(1.0 / 2**i for i, stage in enumerate(stages) if any(a for _, a in stage))
        return cls(
            dim=dim,
            z_dim=z_dim,
            dim_mult=tuple(stage[-1][0] // dim for stage in stages),
            num_res_blocks=blocks.pop(),
            attn_scales=attn,
            temperal_downsample=tuple(resamples),
        )


VAE3DConfig.WAN21 = VAE3DConfig()
VAE3DConfig.TINY = VAE3DConfig(dim=8)


def vae_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE keys of `sd` without a repackaging prefix (other models in a combined file are dropped).

    Raises CheckpointError when `sd` is not a Wan2.1 VAE. A diffusers `AutoencoderKLWan` (the `vae/` folder of
    diffusers-layout repos such as SkyReels-V3 R2V) is renamed to the Wan keys first.
    """
    sd = to_original_vae_keys(sd)
    if "encoder.conv1.weight" not in sd:  # repackaged: keep only the keys under the first VAE prefix found
        for prefix in _KEY_PREFIXES:
            if prefix + "encoder.conv1.weight" in sd:
                sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
                break
    required = ("encoder.conv1.weight", "conv1.weight", "conv2.weight", "decoder.conv1.weight",
                "decoder.middle.0.residual.0.gamma", "decoder.head.2.weight")
    missing = [k for k in required if k not in sd]
    if not missing:
        if sd["conv2.weight"].shape[0] == 48 or "encoder.downsamples.0.downsamples.0.residual.0.gamma" in sd:
            raise CheckpointError("This is a Wan2.2 VAE (48 latent channels); SkyReels needs the Wan2.1 VAE.")
        return sd
    hint = ""
    if "decoder.conv_in.weight" in sd:
        hint = " It looks like an incomplete diffusers AutoencoderKLWan (no quant_conv); download the vae/ folder again."
    raise CheckpointError(
        f"Not a Wan2.1 video VAE (Wan2.1_VAE.pth or wan_2.1_vae.safetensors): missing {describe_keys(missing)}; "
        f"found keys like {describe_keys(sd)}.{hint}"
    )


def _encoder_stages(sd) -> tuple[list[list[tuple[int, bool]]], list[bool]]:
    """Walk encoder.downsamples.{i}: stages of (out_channels, followed_by_attention) and the resample kinds."""
    pattern = re.compile(r"^encoder\.downsamples\.(\d+)\.")
    count = 1 + max((int(m[1]) for k in sd if (m := pattern.match(k))), default=-1)
    stages, resamples, current = [], [], []
    for i in range(count):
        prefix = f"encoder.downsamples.{i}."
        if prefix + "residual.2.weight" in sd:
            current.append((sd[prefix + "residual.2.weight"].shape[0], False))
        elif prefix + "to_qkv.weight" in sd and current:
            current[-1] = (current[-1][0], True)
        elif prefix + "resample.1.weight" in sd:
            resamples.append(prefix + "time_conv.weight" in sd)
            stages.append(current)
            current = []
        else:
            raise CheckpointError(f"Unsupported Wan VAE layout: cannot read block encoder.downsamples.{i}.")
    stages.append(current)
    if not all(stages):
        raise CheckpointError("Unsupported Wan VAE layout: an encoder stage has no residual blocks.")
    return stages, resamples


# 1. Causal state --------------------------------------------------------------------------------------------


class CausalCache:
    """Causal state of one encode/decode pass over time chunks (one object per pass and spatial tile).

    For each causal conv it holds the last CACHE_T input frames seen so far; resamplers also record whether
    they have seen the first chunk (the reference's None / 'Rep' markers).
    """

    def __init__(self) -> None:
        self._frames: dict[int, torch.Tensor] = {}
        self._started: set[int] = set()

    def swap(self, layer: nn.Module, x: torch.Tensor, keep: int = CACHE_T) -> torch.Tensor | None:
        """Return the frames cached for `layer` and store the last `keep` frames of (cached ++ x)."""
        previous = self._frames.get(id(layer))
        tail = x[:, :, -keep:]
        if tail.shape[2] < keep and previous is not None:
            tail = torch.cat([previous[:, :, -(keep - tail.shape[2]):], tail], dim=2)
        self._frames[id(layer)] = tail.clone()
        return previous

    def first_chunk(self, layer: nn.Module) -> bool:
        """True the first time `layer` asks in this pass."""
        if id(layer) in self._started:
            return False
        self._started.add(id(layer))
        return True


# 2. Layers ---------------------------------------------------------------------------------------------------


class CausalConv3d(nn.Conv3d):
    """Conv3d with causal time padding: 2 * pad_t frames in front (cached frames first, zeros for the rest)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_pad = 2 * self.padding[0]
        self.padding = (0, self.padding[1], self.padding[2])

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, C, T, H, W]; cache: up to time_pad previous input frames. Returns [B, C', T', H, W]."""
        if self.time_pad > 0:
            parts = [] if cache is None else [cache.to(x)]
            missing = self.time_pad - (0 if cache is None else cache.shape[2])
            if missing > 0:
                parts.insert(0, x.new_zeros(x.shape[:2] + (missing,) + x.shape[3:]))
            x = torch.cat(parts + [x], dim=2)
        return super().forward(x)


class RMS_norm(nn.Module):  # noqa: N801 (checkpoint-era class name)
    """L2-normalise over channels, times sqrt(C) * gamma. gamma: (C,1,1,1) for videos, (C,1,1) for images."""

    def __init__(self, dim: int, images: bool = True, device=None, dtype=None):
        super().__init__()
        shape = (dim, 1, 1) if images else (dim, 1, 1, 1)
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(shape, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class Upsample2x(nn.Module):
    """Nearest-exact x2 over (H, W). A pure copy, so running it in bf16/fp16 gives the same values as fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest-exact")


def _per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame: [B, C, T, H, W] -> [B, C', T, H', W']."""
    b, _, t = x.shape[:3]
    y = module(x.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (b, t)).transpose(1, 2)


class Resample(nn.Module):
    """Spatial x2 up/down-sampling, optionally with a causal x2 time up/down-sampling conv (`time_conv`)."""

    def __init__(self, dim: int, mode: str, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1, **kw))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2, **kw))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0), **kw)
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), **kw)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """x: [B, C, T, H, W] -> upsample3d [B, C/2, 2T, 2H, 2W] (T on the first chunk), downsample3d
        [B, C, T/2, H/2, W/2] (T on the first chunk), *2d: time unchanged."""
        if self.mode == "upsample3d":
            x = self._time_up(x, cache)
        x = _per_frame(self.resample, x)
        if self.mode == "downsample3d":
            x = self._time_down(x, cache)
        return x

    def _time_up(self, x, cache):
        # First chunk: passes through ('Rep'). Second: zero history. Later: the cached last 2 frames.
        if cache.first_chunk(self):
            return x
        x = self.time_conv(x, cache.swap(self.time_conv, x))
        b, c2, t, h, w = x.shape
        # channel halves are interleaved in time: frame 2i from [:C], frame 2i+1 from [C:]
        return x.reshape(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c2 // 2, t * 2, h, w)

    def _time_down(self, x, cache):
        # First chunk: cached, passed through. Later: previous chunk's last frame ++ x, stride-2 conv.
        previous = cache.swap(self.time_conv, x, keep=1)
        if previous is None:
            return x
        return self.time_conv(torch.cat([previous, x], dim=2))


class ResidualBlock(nn.Module):
    """RMS_norm -> SiLU -> conv3 -> RMS_norm -> SiLU -> Dropout -> conv3, plus a 1x1x1 shortcut if in != out."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.residual = nn.Sequential(
            RMS_norm(in_dim, images=False, **kw), nn.SiLU(inplace=True),
            CausalConv3d(in_dim, out_dim, 3, padding=1, **kw),
            RMS_norm(out_dim, images=False, **kw), nn.SiLU(inplace=True), nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1, **kw),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1, **kw) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """x: [B, in, T, H, W] -> [B, out, T, H, W]."""
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache.swap(layer, x)) if isinstance(layer, CausalConv3d) else layer(x)
        return x.add_(h)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions of each frame (no attention across time)."""

    def __init__(self, dim: int, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm = RMS_norm(dim, **kw)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1, **kw)
        self.proj = nn.Conv2d(dim, dim, 1, **kw)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        """x: [B, C, T, H, W] -> same shape."""
        return x + _per_frame(self._frame_attention, x)

    def _frame_attention(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.to_qkv(self.norm(x)).flatten(2).transpose(1, 2)  # [N, H*W, 3C]
        q, k, v = (t.unsqueeze(2) for t in qkv.chunk(3, dim=-1))  # [N, H*W, 1, C]
        out = attention(q, k, v)
        return self.proj(out.squeeze(2).transpose(1, 2).reshape(n, c, h, w))


def _run_causal(layers, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
    """Run a list of blocks / head layers, feeding the cache to the ones that are causal over time."""
    for layer in layers:
        if isinstance(layer, CausalConv3d):
            x = layer(x, cache.swap(layer, x))
        elif isinstance(layer, (ResidualBlock, AttentionBlock, Resample)):
            x = layer(x, cache)
        else:
            x = layer(x)
    return x


def _head(dim: int, out_channels: int, kw: dict) -> nn.Sequential:
    return nn.Sequential(RMS_norm(dim, images=False, **kw), nn.SiLU(inplace=True),
                         CausalConv3d(dim, out_channels, 3, padding=1, **kw))


def _middle(dim: int, dropout: float, kw: dict) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim, dropout, **kw), AttentionBlock(dim, **kw),
                         ResidualBlock(dim, dim, dropout, **kw))


# 3. Encoder / decoder ----------------------------------------------------------------------------------------


class Encoder3d(nn.Module):
    """[B, 3, T, H, W] chunk -> [B, 2*z_dim, T', H/8, W/8] (T' = 1 for the first 1-frame chunk, 1 per 4 frames)."""

    def __init__(self, cfg: VAE3DConfig, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        dims = [cfg.dim * u for u in (1,) + cfg.dim_mult]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1, **kw)
        blocks, scale = [], 1.0
        for i, (in_dim, out_dim) in enumerate(pairwise(dims)):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim, cfg.dropout, **kw))
                if scale in cfg.attn_scales:
                    blocks.append(AttentionBlock(out_dim, **kw))
                in_dim = out_dim
            if i != len(cfg.dim_mult) - 1:
                mode = "downsample3d" if cfg.temperal_downsample[i] else "downsample2d"
                blocks.append(Resample(out_dim, mode, **kw))
                scale /= 2.0
        self.downsamples = nn.Sequential(*blocks)
        self.middle = _middle(dims[-1], cfg.dropout, kw)
        self.head = _head(dims[-1], cfg.z_dim * 2, kw)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache.swap(self.conv1, x))
        for layers in (self.downsamples, self.middle, self.head):
            x = _run_causal(layers, x, cache)
        return x


class Decoder3d(nn.Module):
    """[B, z_dim, 1, h, w] latent frame -> [B, 3, T, 8h, 8w] (T = 1 for the first latent frame, else 4)."""

    def __init__(self, cfg: VAE3DConfig, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        dims = [cfg.dim * u for u in (cfg.dim_mult[-1],) + cfg.dim_mult[::-1]]
        scale = 1.0 / 2 ** (len(cfg.dim_mult) - 2)
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1, **kw)
        self.middle = _middle(dims[0], cfg.dropout, kw)
        blocks = []
        for i, (in_dim, out_dim) in enumerate(pairwise(dims)):
            if i > 0:  # the previous Resample halved the channels
                in_dim = in_dim // 2
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim, cfg.dropout, **kw))
                if scale in cfg.attn_scales:
                    blocks.append(AttentionBlock(out_dim, **kw))
                in_dim = out_dim
            if i != len(cfg.dim_mult) - 1:
                mode = "upsample3d" if cfg.temperal_upsample[i] else "upsample2d"
                blocks.append(Resample(out_dim, mode, **kw))
                scale *= 2.0
        self.upsamples = nn.Sequential(*blocks)
        self.head = _head(dims[-1], 3, kw)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache.swap(self.conv1, x))
        for layers in (self.middle, self.upsamples, self.head):
            x = _run_causal(layers, x, cache)
        return x


# 4. The VAE ---------------------------------------------------------------------------------------------------


class WanVAE(nn.Module):
    """Wan2.1 causal video VAE. Video [B, 3, F, H, W] in [-1, 1] <-> latent [B, 16, (F-1)//4+1, H/8, W/8].

    `encode`/`decode` use the normalised latent space the DiT works in; `encode_raw`/`decode_raw` use the
    raw posterior mean. All four accept `tile=(tile_h, tile_w)` and `overlap` in latent units for spatial
    tiling, and `callback(done, total)` called after every time chunk of every tile (raise in it to cancel).
    """

    def __init__(self, config: VAE3DConfig = VAE3DConfig.WAN21, device=None, dtype=None):
        super().__init__()
        self.config = config
        kw = dict(device=device, dtype=dtype)
        self.encoder = Encoder3d(config, **kw)
        self.conv1 = CausalConv3d(config.z_dim * 2, config.z_dim * 2, 1, **kw)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1, **kw)
        self.decoder = Decoder3d(config, **kw)

    # latent normalisation (float32, like the reference: scale = [mean, 1/std] with 1/std rounded first)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.z_dim != len(LATENT_MEAN):
            raise SkyReelsInputError(f"No latent statistics for z_dim {self.config.z_dim}; use encode_raw/decode_raw.")
        mean = torch.tensor(LATENT_MEAN, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(LATENT_STD, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)
        return mean, inv_std

    def normalize_latent(self, mu: torch.Tensor) -> torch.Tensor:
        """Raw posterior mean -> DiT latent: (mu - mean) * (1/std), float32."""
        mean, inv_std = self._stats(mu)
        return (mu.float() - mean) * inv_std

    def denormalize_latent(self, z: torch.Tensor) -> torch.Tensor:
        """DiT latent -> raw posterior mean: z / (1/std) + mean (division, as the reference), float32."""
        mean, inv_std = self._stats(z)
        return z.float() / inv_std + mean

    # encode

    def encode(self, video, *, tile=None, overlap=DEFAULT_OVERLAP, callback=None) -> torch.Tensor:
        """video [B, 3, F, H, W] in [-1, 1], F = 4n+1, H and W multiples of 8 -> float32 normalised latent."""
        return self.normalize_latent(self.encode_raw(video, tile=tile, overlap=overlap, callback=callback))

    def encode_raw(self, video, *, tile=None, overlap=DEFAULT_OVERLAP, callback=None) -> torch.Tensor:
        """Posterior mean mu, float32 [B, z_dim, (F-1)//4+1, H/8, W/8] (log_var is discarded)."""
        return self.encode_moments(video, tile=tile, overlap=overlap, callback=callback)[:, : self.config.z_dim]

    def encode_moments(self, video, *, tile=None, overlap=DEFAULT_OVERLAP, callback=None) -> torch.Tensor:
        """Output of the quant conv `conv1`: float32 [B, 2*z_dim, T_lat, H/8, W/8] = (mu, log_var) on channels."""
        self._check_video(video)
        grid = (video.shape[3] // SPACE_STRIDE, video.shape[4] // SPACE_STRIDE)
        spans = _tile_count(grid, tile, overlap)
        total = spans * latent_frames(video.shape[2])
        progress = _Progress(callback, total)
        if spans == 1:
            return self._encode_region(video, progress)
        tile_hw, overlap_hw = normalize_tile(tile, overlap)
        return run_tiled(
            lambda region: self._encode_region(video[..., region[0], region[1]], progress),
            grid, tile_hw, overlap_hw, in_scale=SPACE_STRIDE, out_scale=1,
        )

    def _encode_region(self, video: torch.Tensor, progress: _Progress) -> torch.Tensor:
        param = self.conv1.weight
        video = video.to(device=param.device, dtype=param.dtype)
        cache, outs = CausalCache(), []
        for start in range(0, video.shape[2], 4):
            chunk = video[:, :, :1] if start == 0 else video[:, :, start - 3 : start + 1]
            outs.append(self.encoder(chunk, cache))
            progress.step()
        return self.conv1(torch.cat(outs, dim=2)).float()

    # decode

    def decode(self, latent, *, tile=None, overlap=DEFAULT_OVERLAP, callback=None) -> torch.Tensor:
        """Normalised latent [B, z_dim, T, h, w] -> float32 video [B, 3, 4(T-1)+1, 8h, 8w] clamped to [-1, 1]."""
        self._check_latent(latent)
        raw = self.denormalize_latent(latent)
        return self.decode_raw(raw, tile=tile, overlap=overlap, callback=callback).clamp_(-1.0, 1.0)

    def decode_raw(self, mu, *, tile=None, overlap=DEFAULT_OVERLAP, callback=None) -> torch.Tensor:
        """Raw (unnormalised) latent -> float32 video, not clamped."""
        self._check_latent(mu)
        grid = tuple(mu.shape[3:])
        spans = _tile_count(grid, tile, overlap)
        progress = _Progress(callback, spans * mu.shape[2])
        if spans == 1:
            return self._decode_region(mu, progress)
        tile_hw, overlap_hw = normalize_tile(tile, overlap)
        return run_tiled(
            lambda region: self._decode_region(mu[..., region[0], region[1]], progress),
            grid, tile_hw, overlap_hw, in_scale=1, out_scale=SPACE_STRIDE,
        )

    def _decode_region(self, mu: torch.Tensor, progress: _Progress) -> torch.Tensor:
        param = self.conv2.weight
        x = self.conv2(mu.to(device=param.device, dtype=param.dtype))
        b, _, t, h, w = x.shape
        out = torch.empty(b, 3, pixel_frames(t), h * SPACE_STRIDE, w * SPACE_STRIDE, device=x.device)
        cache, done = CausalCache(), 0
        for i in range(t):
            frames = self.decoder(x[:, :, i : i + 1], cache)
            out[:, :, done : done + frames.shape[2]] = frames
            done += frames.shape[2]
            del frames
            progress.step()
        return out

    def _check_latent(self, latent: torch.Tensor) -> None:
        if latent.ndim != 5 or latent.shape[1] != self.config.z_dim:
            raise SkyReelsInputError(
                f"Latent must be [B, {self.config.z_dim}, T, H, W]; got shape {tuple(latent.shape)}."
            )

    @staticmethod
    def _check_video(video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != 3:
            raise SkyReelsInputError(f"Video must be [B, 3, F, H, W] in [-1, 1]; got shape {tuple(video.shape)}.")
        check_frames(video.shape[2], "video frames")
        for name, value in (("height", video.shape[3]), ("width", video.shape[4])):
            if value < SPACE_STRIDE or value % SPACE_STRIDE:
                nearest = max(SPACE_STRIDE, round(value / SPACE_STRIDE) * SPACE_STRIDE)
                raise SkyReelsInputError(
                    f"Video {name} must be a multiple of {SPACE_STRIDE} for the video VAE; got {value}. "
                    f"Nearest valid value: {nearest}."
                )


class _Progress:
    """Counts finished (tile, time chunk) units and reports them to an optional callback(done, total)."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback, self.total, self.done = callback, total, 0

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _tile_count(grid: tuple[int, int], tile, overlap) -> int:
    """Number of spatial tiles (1 = untiled, also when the tile covers the whole latent grid)."""
    if tile is None:
        return 1
    tile_hw, overlap_hw = normalize_tile(tile, overlap)
    return len(tile_spans(grid[0], tile_hw[0], overlap_hw[0])) * len(tile_spans(grid[1], tile_hw[1], overlap_hw[1]))


# 5. Loading ---------------------------------------------------------------------------------------------------


def load_video_vae(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device="cpu") -> WanVAE:
    """Load Wan2.1_VAE.pth / wan_2.1_vae.safetensors (prefixed keys accepted) or a diffusers AutoencoderKLWan
    folder / file (`vae/`): built on meta, loaded strictly."""
    sd = read_state_dict(path)
    check_kind(sd, path, "wan_vae")
    try:
        sd = vae_state_dict(sd)
    except CheckpointError as exc:
        raise CheckpointError(f"{Path(path).name}: {exc}") from exc
    config = VAE3DConfig.from_state_dict(sd)
    with torch.device("meta"):
        model = WanVAE(config)
    sd = {k: v.to(device=device, dtype=dtype) for k, v in sd.items()}
    load_strict(model, sd, file=str(path), kind="Wan2.1 video VAE", assign=True)
    log.info("Loaded Wan2.1 video VAE from %s (dim %d, %s)", path, config.dim, dtype)
    return model.eval().requires_grad_(False)
