"""Wav2Vec2 (base) speech encoder: the SkyReels-V3 talking-avatar (A2V) audio features, [T_video, 12, 768] at 25 fps.

# original version: https://github.com/huggingface/transformers (models/wav2vec2, Wav2Vec2Model, post-LN "base")

Module names are the Hugging Face `Wav2Vec2Model` keys, so the released `chinese-wav2vec2-base` folder
(config.json + pytorch_model.bin and/or model.safetensors, keys with or without the `wav2vec2.` prefix of the
pre-training / CTC heads) loads strictly: feature_extractor.conv_layers.N.conv (+ layer_norm: GroupNorm on layer 0
for feat_extract_norm "group", LayerNorm on every layer for "layer") -> feature_projection.{layer_norm,projection}
-> encoder.pos_conv_embed.conv (weight norm over dim 2, folded into a plain weight at load) -> encoder.layer_norm
-> encoder.layers.N.{attention.{q,k,v,out}_proj, layer_norm, feed_forward.{intermediate,output}_dense,
final_layer_norm} (post-LN blocks).

SkyReels-V3 (MultiTalk design) preprocesses a clip as follows (`prepare_speech`, `Wav2Vec2Encoder.encode_speech`):
mono mix -> 16 kHz -> loudness-normalised to -23 LUFS (ITU-R BS.1770-4, as pyloudnorm; skipped when
|loudness| > 100, i.e. silence) -> zero mean / unit variance over the clip (eps 1e-7) -> CNN features at 50 Hz ->
linear interpolation (align_corners=True) to ceil(seconds * 25) steps BEFORE the feature projection -> encoder;
the features are the 12 transformer-layer outputs (hidden_states[1:]), stacked per video frame.

Resampling: the reference reads the file with librosa.load(sr=16000), i.e. soxr "HQ"; torchaudio may be absent.
We use our own polyphase Kaiser-windowed sinc (64 zero crossings, cutoff 0.97 x the lower Nyquist, beta 14.77),
the closest to soxr_hq of the settings we tried. Measured against soxr 1.1 HQ on tone mixtures, as
RMS(difference) / RMS(soxr) over the interior (10 ms from each end) / the whole clip:
48 kHz -> 16 kHz 1.9e-7 / 7.2e-4; 44.1 kHz -> 16 kHz 7.3e-4 / 1.3e-3 (1.0e-4 without the 7.5 kHz tone, which
soxr attenuates 0.9 % more than we do: it sits in both filters' transition band). The ends differ because soxr
and we pad the signal differently. Linear interpolation (F.interpolate) would be 0.18 off (aliasing).
Loudness matches pyloudnorm 0.2 to 1e-11 LU. Both goldens: tests/unit/fixtures/wav2vec2_golden.json.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.detect import check_kind
from ..checkpoints.io import load_strict, read_state_dict, strip_prefix
from ..errors import CheckpointError, SkyReelsInputError
from ..nn.attention import attention

__all__ = [
    "SAMPLE_RATE",
    "MIN_SECONDS",
    "MAX_SECONDS",
    "TARGET_LUFS",
    "Wav2Vec2Config",
    "Wav2Vec2Encoder",
    "integrated_loudness",
    "load_wav2vec2",
    "prepare_speech",
    "resample",
    "wav2vec2_from_state_dict",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # the rate wav2vec2 was trained at
MIN_SECONDS = 0.4  # the reference refuses shorter clips (and one 400 ms loudness block needs that much)
MAX_SECONDS = 200.0  # the reference's max_frames_num 5000 at 25 fps
TARGET_LUFS = -23.0
VIDEO_FPS = 25
# Keys the released files carry besides the bare encoder (pre-training / CTC heads); ignored on purpose.
IGNORED_KEYS = (
    r"^masked_spec_embed$",
    r"^quantizer\.",
    r"^project_(hid|q)\.",
    r"^lm_head\.",
)
_POS_CONV = "encoder.pos_conv_embed.conv."
# base-model conv stack: not visible in tensor shapes (strides), so a file without config.json must match it
_BASE_KERNELS = (10, 3, 3, 3, 3, 2, 2)
_BASE_STRIDES = (5, 2, 2, 2, 2, 2, 2)


# ---------------------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class Wav2Vec2Config:
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = _BASE_KERNELS
    conv_stride: tuple[int, ...] = _BASE_STRIDES
    conv_bias: bool = False
    feat_extract_norm: str = "group"  # "group": GroupNorm on conv layer 0 only; "layer": LayerNorm on every layer
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5

    BASE = None  # set below: chinese-wav2vec2-base / facebook wav2vec2-base
    TINY = None

    def __post_init__(self):
        lengths = {len(self.conv_dim), len(self.conv_kernel), len(self.conv_stride)}
        if len(lengths) != 1 or self.feat_extract_norm not in ("group", "layer"):
            raise CheckpointError(
                f"Unsupported wav2vec2 feature extractor: conv_dim {self.conv_dim}, conv_kernel {self.conv_kernel}, "
                f"conv_stride {self.conv_stride}, feat_extract_norm {self.feat_extract_norm!r} (need equal lengths "
                f"and 'group' or 'layer')."
            )
        if self.hidden_size % self.num_attention_heads or self.hidden_size % self.num_conv_pos_embedding_groups:
            raise CheckpointError(
                f"Unsupported wav2vec2 sizes: hidden_size {self.hidden_size} is not divisible by "
                f"{self.num_attention_heads} heads and {self.num_conv_pos_embedding_groups} position-conv groups."
            )

    @property
    def frame_rate(self) -> float:
        """CNN feature frames per second at 16 kHz (50 for the base model)."""
        return SAMPLE_RATE / math.prod(self.conv_stride)

    @classmethod
    def from_hf_config(cls, config: dict, *, file: str = "") -> Wav2Vec2Config:
        """A Hugging Face config.json dict; refuses other model types and the stable-layer-norm (large) variant."""
        model_type = config.get("model_type")
        if model_type != "wav2vec2":
            raise CheckpointError(
                f"{file}: model_type is {model_type!r}, not 'wav2vec2'. The talking-avatar audio encoder is the "
                f"chinese-wav2vec2-base folder (config.json + pytorch_model.bin or model.safetensors)."
            )
        unsupported = {
            "do_stable_layer_norm": (config.get("do_stable_layer_norm", False), False),
            "hidden_act": (config.get("hidden_act", "gelu"), "gelu"),
            "feat_extract_activation": (config.get("feat_extract_activation", "gelu"), "gelu"),
        }
        for name, (value, wanted) in unsupported.items():
            if value != wanted:
                raise CheckpointError(
                    f"{file}: {name} = {value!r} is not supported (the SkyReels audio encoder is a wav2vec2 base "
                    f"model with {name} = {wanted!r}); use chinese-wav2vec2-base."
                )
        known = {f.name for f in fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
        return cls(**kwargs)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, file: str = "") -> Wav2Vec2Config:
        """Sizes from tensor shapes (HF names, prefix removed, weight norm folded). Strides are not visible:
        a 7-layer conv stack with the base kernels gets the base strides, anything else needs config.json."""
        conv_key = re.compile(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight$")
        conv = {int(m.group(1)): v for k, v in state.items() if (m := conv_key.match(k))}
        layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k))}
        if not conv or not layers or _POS_CONV + "weight" not in state:
            raise CheckpointError(
                f"{file}: no feature_extractor.conv_layers / encoder.layers / encoder.pos_conv_embed keys, so this is "
                f"not a wav2vec2 speech encoder (first keys: {', '.join(sorted(state)[:4])}). Pick the "
                f"chinese-wav2vec2-base folder (or its model.safetensors)."
            )
        kernels = tuple(conv[i].shape[-1] for i in range(len(conv)))
        if kernels != _BASE_KERNELS:
            raise CheckpointError(
                f"{file}: conv kernels {kernels} differ from the wav2vec2 base stack {_BASE_KERNELS}, so the strides "
                f"cannot be inferred; put the model's config.json next to the weights and load the folder."
            )
        hidden = state["encoder.layer_norm.weight"].shape[0]
        pos = state[_POS_CONV + "weight"]
        norm = "layer" if "feature_extractor.conv_layers.1.layer_norm.weight" in state else "group"
        return cls(
            conv_dim=tuple(conv[i].shape[0] for i in range(len(conv))),
            conv_kernel=kernels,
            conv_stride=_BASE_STRIDES,
            conv_bias="feature_extractor.conv_layers.0.conv.bias" in state,
            feat_extract_norm=norm,
            hidden_size=hidden,
            num_hidden_layers=max(layers) + 1,
            num_attention_heads=12 if hidden == 768 else max(hidden // 64, 1),  # heads are not visible in shapes
            intermediate_size=state["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0],
            num_conv_pos_embeddings=pos.shape[-1],
            num_conv_pos_embedding_groups=hidden // pos.shape[1],
        )


Wav2Vec2Config.BASE = Wav2Vec2Config()
Wav2Vec2Config.TINY = Wav2Vec2Config(
    conv_dim=(16,) * 7, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)


# ---------------------------------------------------------------------------------------------------------
# audio preprocessing (float64 throughout; the model input is cast once at the end)


def _kaiser_sinc_kernel(orig: int, new: int, zeros: int, rolloff: float, beta: float) -> tuple[torch.Tensor, int]:
    """Polyphase low-pass kernel [new, 1, 2*width + orig] (float64) for reduced rates orig -> new, and its half
    width in input samples. Row p holds the taps of output phase p (output time p/new in input samples)."""
    cutoff = min(orig, new) * rolloff  # in cycles per `orig` input samples, below both Nyquist rates
    width = math.ceil(zeros * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    phases = torch.arange(new, dtype=torch.float64)[:, None, None] / new
    t = (taps[None, None] - phases) * cutoff  # distance in zero crossings of the low-pass sinc
    window = torch.special.i0(beta * torch.sqrt((1 - (t / zeros) ** 2).clamp(min=0))) / torch.special.i0(
        torch.tensor(beta, dtype=torch.float64)
    )
    window = torch.where(t.abs() <= zeros, window, torch.zeros_like(window))
    return torch.sinc(t) * window * (cutoff / orig), width


def resample(x: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """[..., S] -> [..., ceil(S * new_sr / orig_sr)] float64, band-limited (Kaiser sinc; see the module docstring)."""
    if int(orig_sr) != orig_sr or orig_sr <= 0:
        raise SkyReelsInputError(f"The audio sample rate must be a positive integer, got {orig_sr}.")
    if orig_sr == new_sr:
        return x.double()
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    if new * orig > 2_000_000:
        raise SkyReelsInputError(
            f"Cannot resample {orig_sr} Hz to {new_sr} Hz efficiently (the rates share no large common factor); "
            f"convert the audio to 16000, 22050, 24000, 32000, 44100 or 48000 Hz first."
        )
    kernel, width = _kaiser_sinc_kernel(orig, new, zeros=64, rolloff=0.97, beta=14.769656459379492)
    shape = x.shape
    flat = F.pad(x.double().reshape(-1, 1, shape[-1]), (width, width + orig))
    out = F.conv1d(flat, kernel.to(x.device), stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    return out[:, : math.ceil(shape[-1] * new / orig)].reshape(*shape[:-1], -1)


def _biquad(kind: str, rate: int, fc: float, q: float, gain_db: float = 0.0) -> tuple[list[float], list[float]]:
    """RBJ cookbook biquad (b, a), a[0] = 1: the two K-weighting stages exactly as pyloudnorm derives them for
    any rate (not the 48 kHz table of BS.1770)."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * fc / rate
    alpha = math.sin(w0) / (2 * q)
    cos = math.cos(w0)
    if kind == "high_shelf":
        root = 2 * math.sqrt(a_gain) * alpha
        b = [a_gain * ((a_gain + 1) + (a_gain - 1) * cos + root), -2 * a_gain * ((a_gain - 1) + (a_gain + 1) * cos),
             a_gain * ((a_gain + 1) + (a_gain - 1) * cos - root)]
        a = [(a_gain + 1) - (a_gain - 1) * cos + root, 2 * ((a_gain - 1) - (a_gain + 1) * cos),
             (a_gain + 1) - (a_gain - 1) * cos - root]
    else:  # high_pass
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        a = [1 + alpha, -2 * cos, 1 - alpha]
    return [v / a[0] for v in b], [v / a[0] for v in a]


def _impulse_response(b: list[float], a: list[float], length: int) -> torch.Tensor:
    """First `length` samples of the IIR filter's impulse response (float64, direct form recursion)."""
    h = [0.0] * length
    y1 = y2 = 0.0
    for n in range(length):
        x0 = b[0] if n == 0 else 0.0
        y0 = x0 + (b[1] if n == 1 else 0.0) + (b[2] if n == 2 else 0.0) - a[1] * y1 - a[2] * y2
        h[n], y2, y1 = y0, y1, y0
    return torch.tensor(h, dtype=torch.float64)


def k_weighting(x: torch.Tensor, rate: int) -> torch.Tensor:
    """BS.1770 K-weighting of [S] (float64): high shelf +4 dB @ 1500 Hz, Q 1/sqrt(2), then high pass 38 Hz, Q 0.5.

    Applied as a causal FIR of the cascade's impulse response (FFT convolution): torch has no IIR filter, and the
    response is cut after 60 / (1 - r) samples (r: pole radius of the high pass, the slowest stage), where it has
    decayed by ~e^-60, so the result equals scipy.signal.lfilter's (pyloudnorm's) to float64 rounding.
    """
    shelf = _biquad("high_shelf", rate, 1500.0, 1 / math.sqrt(2), 4.0)
    high_pass = _biquad("high_pass", rate, 38.0, 0.5)
    radius = math.sqrt(abs(high_pass[1][2]))  # pole radius of the slowest stage
    length = min(int(60 / (1 - radius)), 1 << 20)
    h = torch.fft.irfft(
        torch.fft.rfft(_impulse_response(*shelf, length), 2 * length)
        * torch.fft.rfft(_impulse_response(*high_pass, length), 2 * length),
        2 * length,
    )[:length]
    n = 1 << (x.shape[-1] + length - 1).bit_length()  # a power of two: FFT sizes with large primes are slow
    return torch.fft.irfft(torch.fft.rfft(x.double(), n) * torch.fft.rfft(h.to(x.device), n), n)[: x.shape[-1]]


def integrated_loudness(x: torch.Tensor, rate: int) -> float:
    """Integrated loudness in LUFS of mono [S] (ITU-R BS.1770-4 as pyloudnorm's Meter: 400 ms blocks, 75 % overlap,
    absolute gate -70 LUFS, relative gate -10 LU). -inf for silence."""
    if x.shape[-1] < 0.4 * rate:
        raise SkyReelsInputError(f"Loudness needs at least 0.4 s of audio, got {x.shape[-1] / rate:.3f} s.")
    power = k_weighting(x, rate).square()
    cumulative = torch.cat([power.new_zeros(1), power.cumsum(0)])
    block, step = 0.4, 0.25
    count = int(round((x.shape[-1] / rate - block) / (block * step))) + 1
    # block edges with pyloudnorm's float expressions, so the same samples fall in each block
    lower = [int(block * (j * step) * rate) for j in range(count)]
    upper = [min(int(block * (j * step + 1) * rate), x.shape[-1]) for j in range(count)]
    energy = (cumulative[upper] - cumulative[lower]) / (block * rate)
    loudness = -0.691 + 10 * torch.log10(energy)
    gated = energy[loudness >= -70.0]
    if gated.numel() == 0:
        return float("-inf")
    relative = -0.691 + 10 * math.log10(gated.mean().item()) - 10.0
    gated = energy[(loudness > relative) & (loudness > -70.0)]
    if gated.numel() == 0:
        return float("-inf")
    return -0.691 + 10 * math.log10(gated.mean().item())


def prepare_speech(waveform: torch.Tensor, sample_rate: int, *, normalize: bool = True) -> torch.Tensor:
    """Waveform [channels, samples] or [samples] at any rate -> wav2vec2 input [samples at 16 kHz] float32.

    Mono mix -> 16 kHz -> -23 LUFS (skipped when |loudness| > 100 LUFS: silence) -> zero mean, unit variance
    (`normalize`: the folder's preprocessor_config.json `do_normalize`, as Wav2Vec2FeatureExtractor; the variance
    is the population one, eps 1e-7 inside the square root). Computed in float64, so it differs from the
    reference's float32 normalisation by ~1e-7 relative.
    Raises SkyReelsInputError below MIN_SECONDS or above MAX_SECONDS (both limits of the reference).
    """
    if waveform.ndim not in (1, 2) or waveform.shape[-1] == 0 or not waveform.is_floating_point():
        raise SkyReelsInputError(
            f"Speech audio must be a float waveform [channels, samples] or [samples], got {waveform.dtype} "
            f"{tuple(waveform.shape)}. (ComfyUI AUDIO is [batch, channels, samples]: pass one item.)"
        )
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise SkyReelsInputError(f"The audio sample rate must be a positive integer, got {sample_rate}.")
    seconds = math.ceil(waveform.shape[-1] * SAMPLE_RATE / sample_rate) / SAMPLE_RATE  # the length after resampling
    if seconds < MIN_SECONDS or seconds > MAX_SECONDS:
        raise SkyReelsInputError(
            f"The speech audio is {seconds:.2f} s long; the talking avatar needs between {MIN_SECONDS} s and "
            f"{MAX_SECONDS:.0f} s (5000 frames at 25 fps). Trim or split the audio."
        )
    mono = waveform.double().reshape(-1, waveform.shape[-1]).mean(0)
    speech = resample(mono, sample_rate, SAMPLE_RATE)
    loudness = integrated_loudness(speech, SAMPLE_RATE)
    if abs(loudness) <= 100:
        speech = speech * 10 ** ((TARGET_LUFS - loudness) / 20)
    if normalize:
        speech = (speech - speech.mean()) / torch.sqrt(speech.var(unbiased=False) + 1e-7)
    return speech.float()


# ---------------------------------------------------------------------------------------------------------
# per-frame windows (research 3.4, 8.3)


# ---------------------------------------------------------------------------------------------------------
# modules


class ConvLayer(nn.Module):
    """Conv1d (no padding) -> optional norm -> exact GELU."""

    def __init__(self, cfg: Wav2Vec2Config, index: int, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        in_dim = cfg.conv_dim[index - 1] if index else 1
        out_dim = cfg.conv_dim[index]
        self.conv = ops.Conv1d(
            in_dim, out_dim, cfg.conv_kernel[index], stride=cfg.conv_stride[index], bias=cfg.conv_bias, **kw
        )
        if cfg.feat_extract_norm == "layer":
            self.layer_norm = nn.LayerNorm(out_dim, **kw)
        elif index == 0:
            self.layer_norm = nn.GroupNorm(out_dim, out_dim, affine=True, **kw)  # one group per channel
        else:
            self.layer_norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if isinstance(self.layer_norm, nn.LayerNorm):
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        elif self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config, ops=nn, device=None, dtype=None):
        super().__init__()
        self.conv_layers = nn.ModuleList(
            [ConvLayer(cfg, i, ops, device, dtype) for i in range(len(cfg.conv_dim))]
        )

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        """[B, S] -> [B, conv_dim[-1], frames] (frames = 50 per second for the base stack)."""
        x = input_values[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.layer_norm = nn.LayerNorm(cfg.conv_dim[-1], eps=cfg.layer_norm_eps, **kw)
        self.projection = ops.Linear(cfg.conv_dim[-1], cfg.hidden_size, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class PositionalConvEmbedding(nn.Module):
    """Grouped conv over time (kernel K, padding K//2, last frame dropped when K is even) -> GELU."""

    def __init__(self, cfg: Wav2Vec2Config, ops=nn, device=None, dtype=None):
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        self.conv = ops.Conv1d(
            cfg.hidden_size, cfg.hidden_size, k, padding=k // 2, groups=cfg.num_conv_pos_embedding_groups,
            device=device, dtype=dtype,
        )
        self.trim = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C] -> [B, T, C]."""
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[..., : -self.trim]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.num_heads = num_heads
        self.q_proj = ops.Linear(dim, dim, **kw)
        self.k_proj = ops.Linear(dim, dim, **kw)
        self.v_proj = ops.Linear(dim, dim, **kw)
        self.out_proj = ops.Linear(dim, dim, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C] -> [B, T, C]; full bidirectional softmax attention."""
        b, t, c = x.shape
        q, k, v = (proj(x).view(b, t, self.num_heads, -1) for proj in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(attention(q, k, v).reshape(b, t, c))


class FeedForward(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.intermediate_dense = ops.Linear(cfg.hidden_size, cfg.intermediate_size, **kw)
        self.output_dense = ops.Linear(cfg.intermediate_size, cfg.hidden_size, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Post-LN block: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(self, cfg: Wav2Vec2Config, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.attention = Attention(cfg.hidden_size, cfg.num_attention_heads, ops, **kw)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)
        self.feed_forward = FeedForward(cfg, ops, **kw)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.pos_conv_embed = PositionalConvEmbedding(cfg, ops, **kw)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps, **kw)
        self.layers = nn.ModuleList([EncoderLayer(cfg, ops, **kw) for _ in range(cfg.num_hidden_layers)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: [B, T, C] -> hidden states [input after pos-conv + LN, layer 1, ..., layer N], each [B, T, C]."""
        x = self.layer_norm(x + self.pos_conv_embed(x))
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        return states


class Wav2Vec2Encoder(nn.Module):
    """Normalised 16 kHz speech [B, S] -> hidden states; `encode_speech` gives the A2V features [T_video, L, C]."""

    def __init__(self, cfg: Wav2Vec2Config, *, operations=None, device=None, dtype=None):
        super().__init__()
        ops = operations or nn
        self.cfg = cfg
        self.normalize_input = True  # preprocessor_config.json `do_normalize` (the loader sets it)
        self.feature_extractor = FeatureEncoder(cfg, ops, device, dtype)
        self.feature_projection = FeatureProjection(cfg, ops, device, dtype)
        self.encoder = TransformerEncoder(cfg, ops, device, dtype)

    def forward(self, input_values: torch.Tensor, *, num_frames: int | None = None) -> list[torch.Tensor]:
        """input_values [B, S] -> num_hidden_layers + 1 hidden states [B, T, hidden].

        num_frames: resample the CNN features (linear, align_corners=True) to this many steps before the feature
        projection (the SkyReels / MultiTalk way of getting one feature per video frame); None keeps 50 Hz.
        """
        weight = self.feature_projection.projection.weight
        features = self.feature_extractor(input_values.to(weight.device, weight.dtype))  # [B, C, T50]
        if num_frames is not None:
            features = F.interpolate(features, size=num_frames, mode="linear", align_corners=True)
        return self.encoder(self.feature_projection(features.transpose(1, 2)))

    @torch.no_grad()
    def encode_speech(self, waveform: torch.Tensor, sample_rate: int, *, fps: int = VIDEO_FPS) -> torch.Tensor:
        """Waveform [channels, samples] or [samples] at any rate -> [ceil(seconds * fps), layers, hidden] (float32
        on the encoder's device); seconds is measured after resampling to 16 kHz, as the reference does."""
        speech = prepare_speech(waveform, sample_rate, normalize=self.normalize_input)
        num_frames = math.ceil(speech.shape[0] / SAMPLE_RATE * fps)
        states = self.forward(speech[None], num_frames=num_frames)
        return torch.stack(states[1:], dim=2)[0].float()


# ---------------------------------------------------------------------------------------------------------
# loading


def _fold_weight_norm(state: dict[str, torch.Tensor], file: str) -> dict[str, torch.Tensor]:
    """encoder.pos_conv_embed.conv weight norm (dim 2: one magnitude per kernel tap) -> a plain `weight`.
    Old files store weight_g / weight_v, newer ones parametrizations.weight.original0 / original1."""
    for g_key, v_key in (("weight_g", "weight_v"), ("parametrizations.weight.original0",
                                                    "parametrizations.weight.original1")):
        g, v = state.get(_POS_CONV + g_key), state.get(_POS_CONV + v_key)
        if g is None and v is None:
            continue
        if g is None or v is None:
            raise CheckpointError(f"{file}: {_POS_CONV}{g_key} / {v_key} is incomplete; download the file again.")
        state = {k: t for k, t in state.items() if k not in (_POS_CONV + g_key, _POS_CONV + v_key)}
        # in float32 whatever the file's dtype, as transformers computes it when it runs a float16 file in float32
        state[_POS_CONV + "weight"] = torch._weight_norm(v.float(), g.float(), 2)
    return state


def wav2vec2_from_state_dict(
    state: dict[str, torch.Tensor],
    *,
    config: Wav2Vec2Config | None = None,
    file: str = "",
    dtype: torch.dtype = torch.float32,
    device="cpu",
    operations=None,
) -> Wav2Vec2Encoder:
    """HF Wav2Vec2Model / ForPreTraining / ForCTC keys (`wav2vec2.` prefix tolerated) -> encoder, loaded strictly.

    config: from config.json when the caller has it, else inferred from tensor shapes. float32 by default: the
    reference runs the encoder in float32 and it is small (95M parameters for the base model).
    """
    state = _fold_weight_norm(strip_prefix(state, ("wav2vec2.",)), file)
    cfg = config or Wav2Vec2Config.from_state_dict(state, file=file)
    with torch.device("meta"):
        model = Wav2Vec2Encoder(cfg, operations=operations, dtype=dtype)
    state = {k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in state.items()}
    load_strict(model, state, file=file or "<state dict>", kind="wav2vec2 speech encoder",
                allowed_extra=IGNORED_KEYS, assign=True)
    return model.eval().requires_grad_(False)


def _weights_in(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    if any(folder.glob("*.safetensors")):
        return folder
    raise CheckpointError(
        f"{folder} has no model.safetensors or pytorch_model.bin. Download the whole chinese-wav2vec2-base folder "
        f"(config.json + weights) into models/audio_encoders/."
    )


def _do_normalize(file: Path) -> bool:
    """Wav2Vec2FeatureExtractor's `do_normalize` (its default, True, when the folder has no preprocessor config)."""
    if not file.is_file():
        return True
    try:
        return bool(json.loads(file.read_text()).get("do_normalize", True))
    except (json.JSONDecodeError, AttributeError) as exc:
        raise CheckpointError(f"{file} is not a valid preprocessor config ({exc}); download it again.") from exc


def load_wav2vec2(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device="cpu") -> Wav2Vec2Encoder:
    """The `chinese-wav2vec2-base` folder (config.json + model.safetensors / pytorch_model.bin, optional
    preprocessor_config.json), one of its weight files, or a single .safetensors with the same keys (config
    inferred from shapes; config.json next to model.safetensors / pytorch_model.bin is read when present)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Speech encoder not found: {path}. Put chinese-wav2vec2-base in models/audio_encoders/.")
    folder = path if path.is_dir() else path.parent
    weights = _weights_in(path) if path.is_dir() else path
    config_file = folder / "config.json"
    config = None
    if config_file.is_file() and (path.is_dir() or weights.name in ("model.safetensors", "pytorch_model.bin")):
        try:
            config = Wav2Vec2Config.from_hf_config(json.loads(config_file.read_text()), file=str(config_file))
        except (json.JSONDecodeError, TypeError) as exc:
            raise CheckpointError(f"{config_file} is not a valid config.json ({exc}); download it again.") from exc
    state = read_state_dict(weights)
    check_kind(state, weights, "wav2vec2")
    model = wav2vec2_from_state_dict(state, config=config, file=str(weights), dtype=dtype, device=device)
    model.normalize_input = _do_normalize(folder / "preprocessor_config.json")
    log.info("Loaded wav2vec2 %s: %d layers, width %d", path.name, model.cfg.num_hidden_layers, model.cfg.hidden_size)
    return model
