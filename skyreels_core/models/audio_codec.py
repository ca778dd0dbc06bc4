"""The SkyReels-V4 audio codec: 44.1 kHz waveform <-> 40-channel latents at 44100/1024 = 43.066 frames/s.

waveform [B, C, T] at any rate -> mono -> 44.1 kHz -> zero-pad to a multiple of 1024 samples -> log-mel
[B, 128, L/512] (MelConverter, hop 512) -> MMAudio VAE posterior mean [B, 40, L/1024]; and back through
the VAE decoder and the BigVGAN-v2 vocoder (x512) to [B, 1, 1024 * latent_frames].

Provenance: the stack of hkchengrex/MMAudio @974010a in 44.1 kHz mode (mel converter + `v1-44.pth` VAE +
nvidia/bigvgan_v2_44khz_128band_512x); the SkyReels-V4 paper only states 44.1 kHz audio, so this codec is
our choice (its rate matches the paper's ~43.6 tokens/s). See audio_vae.py and vocoder.py.

Duration planning (`shapes.AudioLatentShape`, used by the V4 pipeline): a request of D seconds is exactly num_samples = round(D*44100)
samples; it needs latent_frames = ceil(num_samples / 1024) latents, which decode to latent_frames * 1024
samples; the pipeline trims the decoded tail to num_samples (`decode(latent, num_samples=...)`).
E.g. 5 s -> 220500 samples -> 216 latents -> 221184 decoded samples -> trimmed to 220500.

Resampling is pure torch (windowed-sinc with a Hann window, lowpass width 6, rolloff 0.99: the algorithm
and defaults of torchaudio.functional.resample), always used so results never depend on torchaudio.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.detect import check_kind
from ..checkpoints.io import load_strict, read_state_dict
from ..errors import CheckpointError, SkyReelsInputError
from ..shapes import (
    AUDIO_HOP_LENGTH,
    AUDIO_LATENT_CHANNELS,
    AUDIO_LATENT_RATE,
    AUDIO_SAMPLE_RATE,
    AUDIO_SAMPLES_PER_LATENT,
    AudioLatentShape,
    audio_decoded_samples,
    audio_latent_frames,
    audio_num_samples,
)
from .audio_vae import AudioVAE, AudioVAEConfig, MelConverter
from .vocoder import BigVGAN, BigVGANConfig, normalize_vocoder_keys

__all__ = [
    "SAMPLE_RATE",
    "HOP_LENGTH",
    "SAMPLES_PER_LATENT",
    "LATENT_CHANNELS",
    "LATENT_RATE",
    "resample",
    "num_samples_for",
    "latent_frames_for",
    "samples_for",
    "AudioPlan",
    "AudioCodec",
    "load_audio_vae",
    "load_vocoder",
    "load_audio_codec",
]

log = logging.getLogger(__name__)

# The codec's constants and duration math live in shapes.py; these names are kept for the callers.
SAMPLE_RATE = AUDIO_SAMPLE_RATE
HOP_LENGTH = AUDIO_HOP_LENGTH
SAMPLES_PER_LATENT = AUDIO_SAMPLES_PER_LATENT
LATENT_CHANNELS = AUDIO_LATENT_CHANNELS
LATENT_RATE = AUDIO_LATENT_RATE
num_samples_for = audio_num_samples
latent_frames_for = audio_latent_frames
samples_for = audio_decoded_samples

# Largest resampling kernel (phases x taps) we build; covers every common rate pair by a wide margin.
_MAX_RESAMPLE_KERNEL = 8_000_000


@dataclass(frozen=True)
class AudioPlan:
    """How a requested duration maps onto the codec: num_samples is what the user gets after trimming."""

    seconds: float
    num_samples: int
    latent_frames: int
    decoded_samples: int

    @classmethod
    def for_seconds(cls, seconds: float) -> AudioPlan:
        shape = AudioLatentShape.from_seconds(seconds)
        return cls(seconds, shape.num_samples, shape.frames, shape.decoded_samples)


# ---------------------------------------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------------------------------------


def _sinc_kernel(orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc kernel [new, 1, 2*width + orig] (float64) and its half width, for reduced rates."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx) * base
    t = t.clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return kernel * window * (base / orig), width


def resample(waveform: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last dim: [..., T] -> [..., ceil(T * new_sr / orig_sr)] (float32)."""
    if orig_sr <= 0 or new_sr <= 0 or int(orig_sr) != orig_sr or int(new_sr) != new_sr:
        raise SkyReelsInputError(f"Sample rates must be positive integers; got {orig_sr} -> {new_sr}.")
    if orig_sr == new_sr:
        return waveform.float()
    gcd = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // gcd, int(new_sr) // gcd
    if new * (2 * math.ceil(6 * orig / (min(orig, new) * 0.99)) + orig) > _MAX_RESAMPLE_KERNEL:
        raise SkyReelsInputError(
            f"Cannot resample {orig_sr} Hz -> {new_sr} Hz efficiently (the rates share no large common factor). "
            f"Convert the audio to a standard rate (16000, 22050, 24000, 32000, 44100 or 48000 Hz) first."
        )
    kernel, width = _sinc_kernel(orig, new)
    shape = waveform.shape
    x = waveform.float().reshape(-1, 1, shape[-1])
    x = F.pad(x, (width, width + orig))
    out = F.conv1d(x, kernel.to(x.device, torch.float32), stride=orig)  # [N, new, frames]
    out = out.transpose(1, 2).reshape(x.shape[0], -1)[:, : math.ceil(new * shape[-1] / orig)]
    return out.reshape(*shape[:-1], out.shape[-1])


# ---------------------------------------------------------------------------------------------------------
# codec
# ---------------------------------------------------------------------------------------------------------


class AudioCodec(nn.Module):
    """Mel front-end + MMAudio VAE + BigVGAN-v2: waveform [B, C, T] <-> latent [B, 40, T_lat] at 44.1 kHz."""

    sample_rate = SAMPLE_RATE
    samples_per_latent = SAMPLES_PER_LATENT
    latent_channels = LATENT_CHANNELS
    latent_rate = LATENT_RATE

    def __init__(self, vae: AudioVAE, vocoder: BigVGAN):
        super().__init__()
        if vae.config.data_dim != vocoder.config.num_mels or vocoder.config.hop_length != HOP_LENGTH:
            raise CheckpointError(
                f"Audio VAE and vocoder do not fit together: VAE has {vae.config.data_dim} mel bins, vocoder "
                f"{vocoder.config.num_mels} mels with hop {vocoder.config.hop_length}. Use MMAudio v1-44.pth with "
                f"nvidia/bigvgan_v2_44khz_128band_512x (128 mels, hop 512)."
            )
        self.mel = MelConverter(SAMPLE_RATE, 2048, vae.config.data_dim, HOP_LENGTH, 2048)
        self.vae = vae
        self.vocoder = vocoder

    latent_frames_for = staticmethod(latent_frames_for)
    samples_for = staticmethod(samples_for)
    num_samples_for = staticmethod(num_samples_for)
    plan = staticmethod(AudioPlan.for_seconds)

    def prepare(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """[B, C, T] at `sample_rate` -> mono 44.1 kHz [B, 1024 * ceil(T44 / 1024)] (zero-padded at the end)."""
        if waveform.ndim != 3 or waveform.shape[1] < 1:
            raise SkyReelsInputError(
                f"Audio must be a waveform [batch, channels, samples]; got {tuple(waveform.shape)}."
            )
        if waveform.shape[-1] == 0 or waveform.shape[0] == 0:
            raise SkyReelsInputError(f"Audio is empty (shape {tuple(waveform.shape)}); give at least one sample.")
        mono = resample(waveform.float().mean(dim=1), sample_rate, SAMPLE_RATE)
        pad = -mono.shape[-1] % SAMPLES_PER_LATENT
        return F.pad(mono, (0, pad))

    @torch.no_grad()
    def encode(
        self,
        waveform: torch.Tensor,
        sample_rate: int = SAMPLE_RATE,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """waveform [B, C, T] -> latent [B, 40, ceil(T * 44100 / sample_rate / 1024)] (posterior mean by default)."""
        device = self.vae.data_mean.device
        mel = self.mel.to(device)(self.prepare(waveform.to(device), sample_rate))
        posterior = self.vae.encode(mel)
        latent = posterior.sample(generator) if sample else posterior.mean
        return latent.float()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        """latent [B, 40, N] -> waveform [B, 1, 1024 N] at 44.1 kHz in [-1, 1]; trimmed/zero-padded to num_samples."""
        if latent.ndim != 3 or latent.shape[1] != LATENT_CHANNELS or latent.shape[2] < 1:
            raise SkyReelsInputError(
                f"Audio latents must be [B, {LATENT_CHANNELS}, frames>=1]; got {tuple(latent.shape)}."
            )
        mel = self.vae.decode(latent.to(self.vae.data_mean.device))
        wave = self.vocoder(mel).float()
        if num_samples is not None:
            wave = (
                wave[..., :num_samples]
                if wave.shape[-1] >= num_samples
                else F.pad(wave, (0, num_samples - wave.shape[-1]))
            )
        return wave

    @staticmethod
    def to_tokens(latent: torch.Tensor) -> torch.Tensor:
        """[B, 40, T] -> [B, T, 40] (MMAudio's stored latent layout; the audio DiT's token layout)."""
        return latent.transpose(1, 2)

    @staticmethod
    def from_tokens(tokens: torch.Tensor) -> torch.Tensor:
        """[B, T, 40] -> [B, 40, T]."""
        return tokens.transpose(1, 2)


# ---------------------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------------------


def _select(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under `prefix` (prefix removed) when a combined file carries them, else the dict unchanged."""
    if any(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd


def _weights_look_baked(sd: dict[str, torch.Tensor]) -> bool:
    """True when every MPConv1D weight row already has unit norm (a file saved after remove_weight_norm).

    Raw released weights are trained under EDM2 forced weight normalisation (row norm ~ sqrt(fan_in)); the
    baked weight has row norm ||w|| / (1e-4 sqrt(fan_in) + ||w||), just below 1.
    """
    convs = [v for k, v in sd.items() if k.endswith(".weight") and v.ndim == 3]
    norms = torch.cat([torch.linalg.vector_norm(w.float().flatten(1), dim=1) for w in convs])
    return bool(((norms > 0.98) & (norms < 1.002)).all())


def load_audio_vae(
    path: str | os.PathLike, *, device=None, dtype: torch.dtype = torch.float32, weight_norm_removed: bool | None = None
) -> AudioVAE:
    """MMAudio mel VAE from `v1-44.pth` or a safetensors copy (keys data_mean, data_std, encoder.*, decoder.*).

    Returns an eval-mode AudioVAE with weight norm removed. `weight_norm_removed`: None = detect whether
    the file holds raw (released) or already-baked weights; True/False forces it.
    """
    sd = _select(read_state_dict(path), "vae.")
    check_kind(sd, path, "mmaudio_vae")
    config = AudioVAEConfig.from_state_dict(sd, file=Path(path).name)
    baked = _weights_look_baked(sd) if weight_norm_removed is None else weight_norm_removed
    model = AudioVAE(config, device="meta")
    load_strict(model, sd, file=str(path), kind="MMAudio audio VAE (v1-44.pth)", assign=True)
    model = model.to(device=device, dtype=dtype)
    if baked:
        log.info("%s holds weights with weight norm already removed", Path(path).name)
        model.mark_weight_norm_removed()
    return model.remove_weight_norm().eval().requires_grad_(False)


def load_vocoder(
    path: str | os.PathLike, *, device=None, dtype: torch.dtype = torch.float32, remove_weight_norm: bool = True
) -> BigVGAN:
    """BigVGAN-v2 generator from `bigvgan_generator.pt` ({'generator': sd}) or a safetensors copy.

    Accepts weight_g/weight_v keys, torch parametrization keys, or plain weights (already removed).
    The config is inferred from shapes (see BigVGANConfig.from_state_dict). Returns an eval-mode model.
    """
    sd = _select(read_state_dict(path), "vocoder.")
    check_kind(sd, path, "bigvgan")
    sd, removed = normalize_vocoder_keys(sd)
    unknown = [k for k in sd if not re.match(r"^(conv_pre|conv_post|ups|resblocks|activation_post)\.", k)]
    if unknown:
        raise CheckpointError(
            f"{Path(path).name} is not a BigVGAN generator state dict (unexpected keys such as {unknown[0]}). "
            f"Use bigvgan_generator.pt from nvidia/bigvgan_v2_44khz_128band_512x (not the discriminator file)."
        )
    config = BigVGANConfig.from_state_dict(sd, file=Path(path).name)
    model = BigVGAN(config, device="meta")
    if removed:
        model.remove_weight_norm()
    load_strict(model, sd, file=str(path), kind="BigVGAN-v2 generator", assign=True)
    model = model.to(device=device, dtype=dtype)
    if remove_weight_norm:
        model.remove_weight_norm()
    return model.eval().requires_grad_(False)


def load_audio_codec(
    vae_path: str | os.PathLike, vocoder_path: str | os.PathLike, *, device=None, dtype: torch.dtype = torch.float32
) -> AudioCodec:
    """AudioCodec from the MMAudio VAE file and the BigVGAN-v2 generator file (44.1 kHz, 128 mels, x512)."""
    vae = load_audio_vae(vae_path, device=device, dtype=dtype)
    vocoder = load_vocoder(vocoder_path, device=device, dtype=dtype)
    return AudioCodec(vae, vocoder).to(device)
