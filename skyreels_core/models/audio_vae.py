"""44.1 kHz log-mel front-end and the MMAudio mel VAE (128 mel bins -> 40 latent channels, 2x in time).

Provenance: a reimplementation of hkchengrex/MMAudio @974010a (MIT) `mmaudio/ext/mel_converter.py`
(`get_mel_converter('44k')`), `mmaudio/ext/autoencoder/{vae.py, vae_modules.py, edm2_utils.py}` and
`mmaudio/model/utils/distributions.py`. The magnitude-preserving layers follow EDM2 (Karras et al. 2024,
"Analyzing and Improving the Training Dynamics of Diffusion Models"). Module and attribute names equal the
keys of the released `v1-44.pth` (`data_mean`, `data_std`, `encoder.*`, `decoder.*`).

Shapes: waveform [B, L] at 44100 Hz -> mel [B, 128, L/512] (natural-log magnitudes) -> latent [B, 40, L/1024].
The mel filterbank is computed here (Slaney mel scale and area norm, the same numbers as
`librosa.filters.mel`); librosa is not needed.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, SkyReelsInputError
from ..nn.attention import attention
from ..shapes import AUDIO_SAMPLE_RATE

__all__ = [
    "DATA_MEAN_128D",
    "DATA_STD_128D",
    "mel_filterbank",
    "MelConverter",
    "MPConv1D",
    "ResnetBlock1D",
    "AttnBlock1D",
    "Encoder1D",
    "Decoder1D",
    "DiagonalGaussian",
    "AudioVAEConfig",
    "AudioVAE",
]

log = logging.getLogger(__name__)

# Per-mel-bin statistics of the 44.1 kHz training mels (MMAudio vae.py); the released file also stores them.
DATA_MEAN_128D = (
    -3.3462, -2.6723, -2.4893, -2.3143, -2.2664, -2.3317, -2.1802, -2.4006, -2.2357, -2.4597,
    -2.3717, -2.4690, -2.5142, -2.4919, -2.6610, -2.5047, -2.7483, -2.5926, -2.7462, -2.7033,
    -2.7386, -2.8112, -2.7502, -2.9594, -2.7473, -3.0035, -2.8891, -2.9922, -2.9856, -3.0157,
    -3.1191, -2.9893, -3.1718, -3.0745, -3.1879, -3.2310, -3.1424, -3.2296, -3.2791, -3.2782,
    -3.2756, -3.3134, -3.3509, -3.3750, -3.3951, -3.3698, -3.4505, -3.4509, -3.5089, -3.4647,
    -3.5536, -3.5788, -3.5867, -3.6036, -3.6400, -3.6747, -3.7072, -3.7279, -3.7283, -3.7795,
    -3.8259, -3.8447, -3.8663, -3.9182, -3.9605, -3.9861, -4.0105, -4.0373, -4.0762, -4.1121,
    -4.1488, -4.1874, -4.2461, -4.3170, -4.3639, -4.4452, -4.5282, -4.6297, -4.7019, -4.7960,
    -4.8700, -4.9507, -5.0303, -5.0866, -5.1634, -5.2342, -5.3242, -5.4053, -5.4927, -5.5712,
    -5.6464, -5.7052, -5.7619, -5.8410, -5.9188, -6.0103, -6.0955, -6.1673, -6.2362, -6.3120,
    -6.3926, -6.4797, -6.5565, -6.6511, -6.8130, -6.9961, -7.1275, -7.2457, -7.3576, -7.4663,
    -7.6136, -7.7469, -7.8815, -8.0132, -8.1515, -8.3071, -8.4722, -8.7418, -9.3975, -9.6628,
    -9.7671, -9.8863, -9.9992, -10.0860, -10.1709, -10.5418, -11.2795, -11.3861,
)  # fmt: skip
DATA_STD_128D = (
    2.3804, 2.4368, 2.3772, 2.3145, 2.2803, 2.2510, 2.2316, 2.2083, 2.1996, 2.1835, 2.1769, 2.1659,
    2.1631, 2.1618, 2.1540, 2.1606, 2.1571, 2.1567, 2.1612, 2.1579, 2.1679, 2.1683, 2.1634, 2.1557,
    2.1668, 2.1518, 2.1415, 2.1449, 2.1406, 2.1350, 2.1313, 2.1415, 2.1281, 2.1352, 2.1219, 2.1182,
    2.1327, 2.1195, 2.1137, 2.1080, 2.1179, 2.1036, 2.1087, 2.1036, 2.1015, 2.1068, 2.0975, 2.0991,
    2.0902, 2.1015, 2.0857, 2.0920, 2.0893, 2.0897, 2.0910, 2.0881, 2.0925, 2.0873, 2.0960, 2.0900,
    2.0957, 2.0958, 2.0978, 2.0936, 2.0886, 2.0905, 2.0845, 2.0855, 2.0796, 2.0840, 2.0813, 2.0817,
    2.0838, 2.0840, 2.0917, 2.1061, 2.1431, 2.1976, 2.2482, 2.3055, 2.3700, 2.4088, 2.4372, 2.4609,
    2.4731, 2.4847, 2.5072, 2.5451, 2.5772, 2.6147, 2.6529, 2.6596, 2.6645, 2.6726, 2.6803, 2.6812,
    2.6899, 2.6916, 2.6931, 2.6998, 2.7062, 2.7262, 2.7222, 2.7158, 2.7041, 2.7485, 2.7491, 2.7451,
    2.7485, 2.7233, 2.7297, 2.7233, 2.7145, 2.6958, 2.6788, 2.6439, 2.6007, 2.4786, 2.2469, 2.1877,
    2.1392, 2.0717, 2.0107, 1.9676, 1.9140, 1.7102, 0.9101, 0.7164,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# mel front-end
# ---------------------------------------------------------------------------------------------------------


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


def mel_filterbank(sampling_rate: int, n_fft: int, num_mels: int, fmin: float = 0.0, fmax: float | None = None):
    """Triangular Slaney-normalised mel filters, float32 [num_mels, n_fft//2 + 1].

    Same formula and evaluation order as `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)` (htk=False,
    norm='slaney'): triangles between num_mels+2 mel-spaced edge frequencies, scaled by 2/(f[i+2]-f[i]).
    """
    fmax = sampling_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sampling_rate / 2.0, 1 + n_fft // 2)
    mel_edges = np.linspace(
        _hz_to_mel_slaney(np.array([fmin]))[0], _hz_to_mel_slaney(np.array([fmax]))[0], num_mels + 2
    )
    hz_edges = _mel_to_hz_slaney(mel_edges)
    fdiff = np.diff(hz_edges)
    ramps = np.subtract.outer(hz_edges, fft_freqs)
    lower = -ramps[:num_mels] / fdiff[:num_mels, None]
    upper = ramps[2 : num_mels + 2] / fdiff[1 : num_mels + 1, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (hz_edges[2 : num_mels + 2] - hz_edges[:num_mels]))[:, None]
    return torch.from_numpy(weights)


class MelConverter(nn.Module):
    """Waveform [B, L] in [-1, 1] at `sampling_rate` -> natural-log mel [B, num_mels, (L + 2p - n_fft)//hop + 1].

    MMAudio / BigVGAN training mel: clamp to [-1, 1], reflect-pad p = (n_fft - hop)/2 on both sides, STFT
    (periodic Hann, center=False), magnitude sqrt(re^2 + im^2 + 1e-9), mel filterbank, log(clamp(., 1e-5)).
    For L a multiple of `hop` this gives exactly L/hop frames. Buffers are not saved (computed on build).
    """

    def __init__(
        self,
        sampling_rate=AUDIO_SAMPLE_RATE,
        n_fft=2048,
        num_mels=128,
        hop_size=512,
        win_size=2048,
        fmin=0.0,
        fmax=None,
        *,
        device=None,
    ):
        super().__init__()
        self.sampling_rate, self.n_fft, self.num_mels = sampling_rate, n_fft, num_mels
        self.hop_size, self.win_size = hop_size, win_size
        basis = mel_filterbank(sampling_rate, n_fft, num_mels, fmin, fmax)
        self.register_buffer("mel_basis", basis.to(device), persistent=False)
        self.register_buffer("hann_window", torch.hann_window(win_size, device=device), persistent=False)

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop_size) // 2

    def num_frames(self, num_samples: int) -> int:
        return (num_samples + 2 * self.pad - self.n_fft) // self.hop_size + 1

    def padded_input(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, L] -> clamped, reflect-padded float32 [B, L + 2p] (the STFT input)."""
        if waveform.ndim != 2:
            raise SkyReelsInputError(f"MelConverter expects a mono waveform [B, samples]; got {tuple(waveform.shape)}.")
        if waveform.shape[-1] <= self.pad or self.num_frames(waveform.shape[-1]) < 1:
            raise SkyReelsInputError(
                f"Audio is too short for a mel spectrogram: {waveform.shape[-1]} samples; need at least "
                f"{max(self.pad + 1, self.hop_size)} samples ({self.hop_size / self.sampling_rate * 1000:.1f} ms)."
            )
        wave = waveform.float().clamp(-1.0, 1.0)
        return F.pad(wave.unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)

    def magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, L] -> STFT magnitude [B, n_fft//2 + 1, frames] (float32)."""
        spec = torch.stft(
            self.padded_input(waveform),
            self.n_fft,
            hop_length=self.hop_size,
            win_length=self.win_size,
            window=self.hann_window.float(),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = torch.view_as_real(spec)
        return torch.sqrt(spec.pow(2).sum(-1) + 1e-9)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.mel_basis.float(), self.magnitude(waveform))
        return torch.log(torch.clamp(mel, min=1e-5))


# ---------------------------------------------------------------------------------------------------------
# EDM2 magnitude-preserving layers
# ---------------------------------------------------------------------------------------------------------


def normalize(x: torch.Tensor, dim=None, eps: float = 1e-4) -> torch.Tensor:
    """x / (eps + RMS of x over `dim`) (all dims but 0 when None); the norm is taken in float32."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


class MPConv1D(nn.Module):
    """Bias-free conv1d ('same' padding) with EDM2 weight normalisation, weight [out, in, k].

    The released file stores the raw weight w. The effective weight is normalize(w) / sqrt(in * k) (each output
    row scaled to unit norm, up to eps). `remove_weight_norm()` bakes it into `weight` once (as MMAudio does
    before inference); before that, forward computes it on the fly, so both give the same output.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, device=device, dtype=dtype))
        self.weight_norm_removed = False

    def effective_weight(self) -> torch.Tensor:
        if self.weight_norm_removed:
            return self.weight
        w = normalize(self.weight.float())
        return (w / math.sqrt(w[0].numel())).to(self.weight.dtype)

    def forward(self, x: torch.Tensor, gain=1) -> torch.Tensor:
        weight = self.effective_weight() * gain
        return F.conv1d(x, weight.to(x.dtype), padding=(weight.shape[-1] // 2,))

    def remove_weight_norm(self) -> MPConv1D:
        if not self.weight_norm_removed:
            self.weight = nn.Parameter(self.effective_weight().detach(), requires_grad=False)
            self.weight_norm_removed = True
        return self


class ResnetBlock1D(nn.Module):
    """Pixel-norm -> mp_silu -> conv1 -> mp_silu -> conv2, mp_sum with the (1x1-projected) input. [B,Ci,T]->[B,Co,T]."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3, *, device=None, dtype=None):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.conv1 = MPConv1D(in_dim, out_dim, kernel_size, device=device, dtype=dtype)
        self.conv2 = MPConv1D(out_dim, out_dim, kernel_size, device=device, dtype=dtype)
        if in_dim != out_dim:
            self.nin_shortcut = MPConv1D(in_dim, out_dim, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize(x, dim=1)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if self.in_dim != self.out_dim:
            x = self.nin_shortcut(x)
        return mp_sum(x, h, t=0.3)


class AttnBlock1D(nn.Module):
    """Single-head self-attention over time with cosine-normalised q/k/v. [B, C, T] -> [B, C, T].

    qkv is one 1x1 MPConv1D; its output channel c*3 + j is component j (q, k, v) of channel c.
    """

    def __init__(self, channels: int, num_heads: int = 1, *, device=None, dtype=None):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = MPConv1D(channels, channels * 3, 1, device=device, dtype=dtype)
        self.proj_out = MPConv1D(channels, channels, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        y = self.qkv(x).reshape(b, self.num_heads, c // self.num_heads, 3, t)
        q, k, v = (u.permute(0, 3, 1, 2) for u in normalize(y, dim=2).unbind(3))  # [B, T, H, D]
        h = attention(q, k, v)  # [B, T, H, D]
        h = self.proj_out(h.permute(0, 2, 3, 1).reshape(b, c, t))
        return mp_sum(x, h, t=0.3)


class Downsample1D(nn.Module):
    """1x1 conv -> avg-pool by 2 (floors odd lengths) -> 1x1 conv. [B, C, T] -> [B, C, T//2]."""

    def __init__(self, channels: int, *, device=None, dtype=None):
        super().__init__()
        self.conv1 = MPConv1D(channels, channels, 1, device=device, dtype=dtype)
        self.conv2 = MPConv1D(channels, channels, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class Upsample1D(nn.Module):
    """Nearest x2 -> conv k=3. [B, C, T] -> [B, C, 2T]."""

    def __init__(self, channels: int, *, device=None, dtype=None):
        super().__init__()
        self.conv = MPConv1D(channels, channels, 3, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


# ---------------------------------------------------------------------------------------------------------
# encoder / decoder
# ---------------------------------------------------------------------------------------------------------


class _Level(nn.Module):
    """One resolution level: `block` (ModuleList of ResnetBlock1D) and optionally `downsample`/`upsample`."""


class _Mid(nn.Module):
    """block_1 -> attn_1 -> block_2 at the lowest resolution. [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, kernel_size: int, *, device=None, dtype=None):
        super().__init__()
        self.block_1 = ResnetBlock1D(channels, channels, kernel_size, device=device, dtype=dtype)
        self.attn_1 = AttnBlock1D(channels, device=device, dtype=dtype)
        self.block_2 = ResnetBlock1D(channels, channels, kernel_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder1D(nn.Module):
    """Normalised mel [B, in_dim, T] -> moments [B, 2*embed_dim, T / 2^len(down_layers)] (mean ; logvar).

    Levels i = 0..len(ch_mult)-1 with `num_res_blocks` ResnetBlock1D each (width dim*ch_mult[i]), a
    Downsample1D after the levels in `down_layers`, then mid (res, attn, res), mp_silu and conv_out whose
    weight is multiplied by (learnable_gain + 1). Activations are clamped to +-clip_act after every block.
    """

    def __init__(
        self,
        *,
        dim,
        ch_mult,
        num_res_blocks,
        down_layers,
        in_dim,
        embed_dim,
        kernel_size=3,
        clip_act=256.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.clip_act, self.down_layers = clip_act, tuple(down_layers)
        self.conv_in = MPConv1D(in_dim, dim, kernel_size, **kw)
        self.down = nn.ModuleList()
        block_in = dim
        for i_level, mult in enumerate(ch_mult):
            level = _Level()
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock1D(block_in, dim * mult, kernel_size, **kw))
                block_in = dim * mult
            if i_level in self.down_layers:
                level.downsample = Downsample1D(block_in, **kw)
            self.down.append(level)
        self.mid = _Mid(block_in, kernel_size, **kw)
        self.conv_out = MPConv1D(block_in, 2 * embed_dim, kernel_size, **kw)
        self.learnable_gain = nn.Parameter(torch.zeros([], **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i_level, level in enumerate(self.down):
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            if i_level in self.down_layers:
                h = level.downsample(h)
        h = self.mid(h).clamp(-self.clip_act, self.clip_act)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class Decoder1D(nn.Module):
    """Latent [B, embed_dim, T'] -> normalised mel [B, out_dim, T' * 2^len(down_layers)].

    conv_in, mid, then levels from the widest (index len-1) down to 0 with num_res_blocks+1 ResnetBlock1D
    each and an Upsample1D after level i when i-1 is an encoder down layer; mp_silu; conv_out with gain.
    `up[i]` is stored at index i (the released key order) although it runs in reverse.
    """

    def __init__(
        self,
        *,
        dim,
        ch_mult,
        num_res_blocks,
        down_layers,
        out_dim,
        embed_dim,
        kernel_size=3,
        clip_act=256.0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.clip_act, self.up_layers = clip_act, tuple(i + 1 for i in down_layers)
        block_in = dim * ch_mult[-1]
        self.conv_in = MPConv1D(embed_dim, block_in, kernel_size, **kw)
        self.mid = _Mid(block_in, kernel_size, **kw)
        levels = []
        for i_level in reversed(range(len(ch_mult))):
            level = _Level()
            level.block = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock1D(block_in, dim * ch_mult[i_level], 3, **kw))
                block_in = dim * ch_mult[i_level]
            if i_level in self.up_layers:
                level.upsample = Upsample1D(block_in, **kw)
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.conv_out = MPConv1D(block_in, out_dim, kernel_size, **kw)
        self.learnable_gain = nn.Parameter(torch.zeros([], **kw))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z)).clamp(-self.clip_act, self.clip_act)
        for i_level in reversed(range(len(self.up))):
            level = self.up[i_level]
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            if i_level in self.up_layers:
                h = level.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


# ---------------------------------------------------------------------------------------------------------
# posterior, config, VAE
# ---------------------------------------------------------------------------------------------------------


class DiagonalGaussian:
    """Posterior from moments [B, 2C, T]: mean, logvar (clamped to [-30, 20]), std = exp(logvar/2); [B, C, T]."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * eps, eps = torch.empty_like(mean).normal_(generator) (MMAudio's draw order)."""
        eps = torch.empty_like(self.mean).normal_(generator=generator)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean


@dataclass(frozen=True)
class AudioVAEConfig:
    """MMAudio VAE sizes. `VAE_44K` is the released v1-44.pth (hidden 512 -> widths 512/1024/2048)."""

    data_dim: int = 128
    embed_dim: int = 40
    hidden_dim: int = 512
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    down_layers: tuple[int, ...] = (0,)

    @property
    def time_downsample(self) -> int:
        return 2 ** len(self.down_layers)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], file: str = "audio VAE") -> AudioVAEConfig:
        """Infer sizes from tensor shapes; CheckpointError unless it is the 44.1 kHz MMAudio layout."""
        need = ("encoder.conv_in.weight", "decoder.conv_in.weight", "data_mean")
        missing = [k for k in need if k not in sd]
        if missing:
            raise CheckpointError(
                f"{file} is not an MMAudio mel VAE: missing {', '.join(missing)}. Expected the VAE file "
                f"v1-44.pth (keys data_mean, data_std, encoder.*, decoder.*)."
            )
        hidden, data_dim = sd["encoder.conv_in.weight"].shape[:2]
        embed_dim = sd["decoder.conv_in.weight"].shape[1]
        levels = {int(m[1]) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.", k))}
        blocks = {int(m[1]) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))}
        downs = tuple(sorted(int(m[1]) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.downsample\.conv1", k))))
        cfg = cls(
            data_dim=int(data_dim),
            embed_dim=int(embed_dim),
            hidden_dim=int(hidden),
            ch_mult=tuple(2**i for i in range(len(levels))),
            num_res_blocks=len(blocks),
            down_layers=downs,
        )
        if data_dim != 128:
            raise CheckpointError(
                f"{file} is a {data_dim}-mel VAE (MMAudio v1-16.pth is 80 mels at 16 kHz); SkyReels-V4 audio "
                f"needs the 44.1 kHz 128-mel VAE v1-44.pth."
            )
        if (cfg.ch_mult, cfg.num_res_blocks, cfg.down_layers) != ((1, 2, 4), 2, (0,)):
            raise CheckpointError(
                f"{file}: unsupported VAE layout (levels {cfg.ch_mult}, {cfg.num_res_blocks} res blocks, "
                f"down layers {cfg.down_layers}); expected the MMAudio layout ((1, 2, 4), 2, (0,))."
            )
        return cfg


AudioVAEConfig.VAE_44K = AudioVAEConfig()


class AudioVAE(nn.Module):
    """MMAudio mel VAE: log-mel [B, data_dim, T] <-> latent [B, embed_dim, T // 2]."""

    def __init__(self, config: AudioVAEConfig = AudioVAEConfig.VAE_44K, *, device=None, dtype=None):
        super().__init__()
        self.config = config
        common = dict(
            dim=config.hidden_dim,
            ch_mult=config.ch_mult,
            num_res_blocks=config.num_res_blocks,
            down_layers=config.down_layers,
            embed_dim=config.embed_dim,
            device=device,
            dtype=dtype,
        )
        mean = DATA_MEAN_128D if config.data_dim == 128 else (0.0,) * config.data_dim
        std = DATA_STD_128D if config.data_dim == 128 else (1.0,) * config.data_dim
        self.register_buffer("data_mean", torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1))
        self.register_buffer("data_std", torch.tensor(std, device=device, dtype=dtype).view(1, -1, 1))
        self.encoder = Encoder1D(in_dim=config.data_dim, **common)
        self.decoder = Decoder1D(out_dim=config.data_dim, **common)

    def _check(self, x: torch.Tensor, channels: int, what: str) -> None:
        if x.ndim != 3 or x.shape[1] != channels or x.shape[2] < 1:
            raise SkyReelsInputError(
                f"The audio VAE expects {what} [B, {channels}, T>=1]; got {tuple(x.shape)}. "
                f"Use the 44.1 kHz 128-bin mel front-end (hop 512) and 40-channel audio latents."
            )

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.data_mean) / self.data_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.data_std + self.data_mean

    def encode(self, mel: torch.Tensor, normalize: bool = True) -> DiagonalGaussian:
        """log-mel [B, data_dim, T] (T >= 2) -> posterior over [B, embed_dim, T // 2]."""
        self._check(mel, self.config.data_dim, "a mel spectrogram")
        if mel.shape[2] < self.config.time_downsample:
            raise SkyReelsInputError(f"Mel too short to encode: {mel.shape[2]} frames; need at least 2.")
        x = self.normalize(mel) if normalize else mel
        return DiagonalGaussian(self.encoder(x.to(self.data_mean.dtype)))

    def decode(self, z: torch.Tensor, unnormalize: bool = True) -> torch.Tensor:
        """latent [B, embed_dim, T'] -> log-mel [B, data_dim, 2T'] (log units when unnormalize)."""
        self._check(z, self.config.embed_dim, "latents")
        dec = self.decoder(z.to(self.data_mean.dtype))
        return self.unnormalize(dec) if unnormalize else dec

    def remove_weight_norm(self) -> AudioVAE:
        """Bake every MPConv1D's normalised weight (call once after loading raw released weights)."""
        for module in self.modules():
            if isinstance(module, MPConv1D):
                module.remove_weight_norm()
        return self

    def mark_weight_norm_removed(self) -> AudioVAE:
        """Declare the loaded weights already baked (a file saved after remove_weight_norm)."""
        for module in self.modules():
            if isinstance(module, MPConv1D):
                module.weight_norm_removed = True
        return self
