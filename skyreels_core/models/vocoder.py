"""BigVGAN-v2 generator (mel -> waveform), the vocoder of MMAudio's 44.1 kHz mode.

Provenance: a reimplementation of NVIDIA/BigVGAN v2.4 (MIT; PyPI bigvgan==2.4.1) `bigvgan.py`,
`activations.py` and `alias_free_activation/torch/{filter,resample,act}.py`, as vendored by
hkchengrex/MMAudio @974010a (`mmaudio/ext/bigvgan_v2`), torch path (no CUDA kernel). BigVGAN builds on
HiFi-GAN (jik876/hifi-gan, MIT). Module names equal the keys of the released `bigvgan_generator.pt`
(`{'generator': state_dict}`): weight-normed convs store `<conv>.weight_g` / `<conv>.weight_v` (+ `.bias`),
SnakeBeta `activations.N.act.alpha/.beta` (log scale), and the anti-alias FIR buffers.

Shapes: log-mel [B, num_mels, T] -> waveform [B, 1, T * prod(upsample_rates)] in [-1, 1]
(the released nvidia/bigvgan_v2_44khz_128band_512x: 128 mels, x512, 44.1 kHz).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, SkyReelsInputError

__all__ = [
    "kaiser_sinc_filter1d",
    "SnakeBeta",
    "Activation1d",
    "AMPBlock1",
    "BigVGANConfig",
    "BigVGAN",
    "normalize_vocoder_keys",
]


# ---------------------------------------------------------------------------------------------------------
# weight norm with the legacy weight_g / weight_v keys
# ---------------------------------------------------------------------------------------------------------


def _split_weight(conv: nn.Module) -> None:
    """Replace `conv.weight` by weight_g [d0, 1, 1] and weight_v (norm over all dims but 0)."""
    w = conv.weight.detach()
    del conv.weight
    if w.is_meta:  # shapes only (the loader assigns real tensors); meta ops would import torch._refs (slow)
        g = torch.empty(w.shape[0], 1, 1, device="meta", dtype=w.dtype)
    else:
        g = torch.linalg.vector_norm(w, dim=(1, 2), keepdim=True)
    conv.weight_g = nn.Parameter(g)
    conv.weight_v = nn.Parameter(w.clone())
    conv.weight_norm_removed = False


def _weight(conv: nn.Module) -> torch.Tensor:
    """Effective weight g * v / ||v|| (torch.nn.utils.weight_norm, dim=0), or the baked weight."""
    if conv.weight_norm_removed:
        return conv.weight
    # torch._weight_norm is what torch.nn.utils.weight_norm runs (fused CPU/CUDA kernel for dim 0); its
    # float rounding differs from the plain formula by ~1 ulp, which the 6 SnakeBeta stages amplify.
    return torch._weight_norm(conv.weight_v, conv.weight_g, 0)


def _remove_weight_norm(conv: nn.Module) -> None:
    if conv.weight_norm_removed:
        return
    weight = torch.empty_like(conv.weight_v) if conv.weight_v.is_meta else _weight(conv).detach()
    del conv.weight_g, conv.weight_v
    conv.weight = nn.Parameter(weight)
    conv.weight_norm_removed = True


class WNConv1d(nn.Conv1d):
    """nn.Conv1d under weight norm (keys weight_g, weight_v, bias) until remove_weight_norm()."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _split_weight(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, _weight(self), self.bias)

    def remove_weight_norm(self) -> None:
        _remove_weight_norm(self)


class WNConvTranspose1d(nn.ConvTranspose1d):
    """nn.ConvTranspose1d under weight norm; weight [in, out, k], so the norm is per INPUT channel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _split_weight(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(
            x, _weight(self), self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )

    def remove_weight_norm(self) -> None:
        _remove_weight_norm(self)


# ---------------------------------------------------------------------------------------------------------
# anti-aliased SnakeBeta
# ---------------------------------------------------------------------------------------------------------


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass FIR, normalised to unit DC gain, [1, 1, kernel_size] (BigVGAN filter.py)."""
    even = kernel_size % 2 == 0
    half_size = kernel_size // 2
    delta_f = 4 * half_width
    attenuation = 2.285 * (half_size - 1) * math.pi * delta_f + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    time = (torch.arange(-half_size, half_size) + 0.5) if even else (torch.arange(kernel_size) - half_size)
    if cutoff == 0:
        return torch.zeros(1, 1, kernel_size)
    filt = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (filt / filt.sum()).view(1, 1, kernel_size)


class LowPassFilter1d(nn.Module):
    """Depthwise FIR low-pass with replicate padding; `filter` [1, 1, K] is a saved buffer. [B,C,T]->[B,C,T/stride]."""

    def __init__(self, cutoff=0.5, half_width=0.6, stride=1, kernel_size=12):
        super().__init__()
        even = kernel_size % 2 == 0
        self.pad_left, self.pad_right = kernel_size // 2 - int(even), kernel_size // 2
        self.stride = stride
        self.register_buffer("filter", kaiser_sinc_filter1d(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.to(x.dtype).expand(x.shape[1], -1, -1), stride=self.stride, groups=x.shape[1])


class UpSample1d(nn.Module):
    """x`ratio` band-limited upsampling: replicate pad, ratio * depthwise transposed FIR, crop. [B,C,T]->[B,C,rT]."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.pad_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.pad_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(
            x, self.filter.to(x.dtype).expand(channels, -1, -1), stride=self.ratio, groups=channels
        )
        return x[..., self.pad_left : -self.pad_right]


class DownSample1d(nn.Module):
    """x`ratio` decimation through LowPassFilter1d (key `lowpass.filter`). [B,C,T]->[B,C,T/ratio]."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, stride=ratio, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """x + 1/(beta + 1e-9) * sin(alpha * x)^2 per channel; alpha, beta [C] stored as logs when logscale."""

    def __init__(self, channels: int, logscale: bool = True, *, device=None, dtype=None):
        super().__init__()
        self.logscale = logscale
        init = torch.zeros if logscale else torch.ones
        self.alpha = nn.Parameter(init(channels, device=device, dtype=dtype))
        self.beta = nn.Parameter(init(channels, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.alpha[None, :, None], self.beta[None, :, None]
        if self.logscale:
            alpha, beta = torch.exp(alpha), torch.exp(beta)
        return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class Activation1d(nn.Module):
    """Alias-free activation: upsample x2 -> SnakeBeta -> downsample x2. [B, C, T] -> [B, C, T]."""

    def __init__(self, activation: nn.Module, up_ratio: int = 2, down_ratio: int = 2, kernel_size: int = 12):
        super().__init__()
        self.act = activation
        self.upsample = UpSample1d(up_ratio, kernel_size)
        self.downsample = DownSample1d(down_ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


class AMPBlock1(nn.Module):
    """Residual stack: for each dilation d, x += conv2(act(conv1_d(act(x)))). [B, C, T] -> [B, C, T]."""

    def __init__(
        self, channels: int, kernel_size: int = 3, dilation=(1, 3, 5), logscale: bool = True, *, device=None, dtype=None
    ):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2, **kw)
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2, **kw) for _ in dilation
        )
        self.activations = nn.ModuleList(
            Activation1d(SnakeBeta(channels, logscale, **kw)) for _ in range(2 * len(dilation))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts1, acts2 = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts1, acts2, strict=True):
            x = x + c2(a2(c1(a1(x))))
        return x


# ---------------------------------------------------------------------------------------------------------
# config and generator
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BigVGANConfig:
    """Generator hyper-parameters; `V2_44K_512X` = nvidia/bigvgan_v2_44khz_128band_512x config.json."""

    num_mels: int = 128
    upsample_rates: tuple[int, ...] = (8, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    snake_logscale: bool = True
    use_bias_at_final: bool = False
    use_tanh_at_final: bool = False

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], file: str = "vocoder") -> BigVGANConfig:
        """Infer widths and kernels from shapes (keys as in bigvgan_generator.pt, see normalize_vocoder_keys).

        Strides are not stored; every released BigVGAN-v2 uses kernel = 2 * stride, which is assumed.
        Dilations (1, 3, 5) and log-scale SnakeBeta are assumed too (all v2 releases).
        """
        if _conv_weight(sd, "conv_pre") is None:
            raise CheckpointError(
                f"{file} is not a BigVGAN generator (no conv_pre weight). Expected bigvgan_generator.pt from "
                f"nvidia/bigvgan_v2_44khz_128band_512x, or a safetensors copy of its 'generator' dict."
            )
        if _conv_weight(sd, "resblocks.0.convs1.0") is None or "activation_post.act.beta" not in sd:
            raise CheckpointError(
                f"{file} is a BigVGAN variant this loader does not support (needs AMPBlock1 'resblock 1' with "
                f"SnakeBeta activations, as in BigVGAN-v2)."
            )
        n_ups = len({int(m[1]) for k in sd if (m := re.match(r"ups\.(\d+)\.0\.", k))})
        kernels = tuple(int(_conv_weight(sd, f"ups.{i}.0").shape[2]) for i in range(n_ups))
        n_res = len({int(m[1]) for k in sd if (m := re.match(r"resblocks\.(\d+)\.", k))}) // max(n_ups, 1)
        pre = _conv_weight(sd, "conv_pre")
        return cls(
            num_mels=int(pre.shape[1]),
            upsample_rates=tuple(k // 2 for k in kernels),
            upsample_kernel_sizes=kernels,
            upsample_initial_channel=int(pre.shape[0]),
            resblock_kernel_sizes=tuple(
                int(_conv_weight(sd, f"resblocks.{j}.convs1.0").shape[2]) for j in range(n_res)
            ),
            resblock_dilation_sizes=((1, 3, 5),) * n_res,
            use_bias_at_final="conv_post.bias" in sd,
        )


def _conv_weight(sd: dict[str, torch.Tensor], name: str) -> torch.Tensor | None:
    """The stored direction (weight_v) or plain weight of conv `name`, None when absent."""
    return sd.get(f"{name}.weight_v", sd.get(f"{name}.weight"))


BigVGANConfig.V2_44K_512X = BigVGANConfig()


class BigVGAN(nn.Module):
    """BigVGAN-v2 generator. log-mel [B, num_mels, T] -> waveform [B, 1, T * hop_length] in [-1, 1].

    conv_pre; per stage i: ConvTranspose1d (stride u_i, channels C/2^(i+1)) then the mean of the AMPBlock1 with
    kernels (3, 7, 11); activation_post; conv_post (no bias); clamp to [-1, 1] (or tanh if configured).
    """

    def __init__(self, config: BigVGANConfig = BigVGANConfig.V2_44K_512X, *, device=None, dtype=None):
        super().__init__()
        self.config = config
        kw = dict(device=device, dtype=dtype)
        c0 = config.upsample_initial_channel
        if c0 % 2 ** len(config.upsample_rates):
            raise CheckpointError(
                f"BigVGAN upsample_initial_channel {c0} must be divisible by 2^{len(config.upsample_rates)} "
                f"(one halving per upsampling stage)."
            )
        self.conv_pre = WNConv1d(config.num_mels, c0, 7, 1, padding=3, **kw)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            ch = c0 // 2 ** (i + 1)
            self.ups.append(nn.ModuleList([WNConvTranspose1d(2 * ch, ch, k, u, padding=(k - u) // 2, **kw)]))
            for rk, rd in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True):
                self.resblocks.append(AMPBlock1(ch, rk, rd, config.snake_logscale, **kw))
        self.activation_post = Activation1d(SnakeBeta(ch, config.snake_logscale, **kw))
        self.conv_post = WNConv1d(ch, 1, 7, 1, padding=3, bias=config.use_bias_at_final, **kw)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, num_mels, T] (natural-log units, as MelConverter) -> waveform [B, 1, T * hop_length]."""
        if mel.ndim != 3 or mel.shape[1] != self.config.num_mels or mel.shape[2] < 1:
            raise SkyReelsInputError(
                f"The vocoder expects a log-mel [B, {self.config.num_mels}, T>=1]; got {tuple(mel.shape)}."
            )
        x = self.conv_pre(mel.to(self.conv_pre.bias.dtype))
        n_kernels = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            x = sum(self.resblocks[i * n_kernels + j](x) for j in range(n_kernels)) / n_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.config.use_tanh_at_final else torch.clamp(x, -1.0, 1.0)

    def remove_weight_norm(self) -> BigVGAN:
        """Bake g * v / ||v|| into plain `weight` everywhere (keys become `.weight`); outputs are unchanged."""
        for module in self.modules():
            if isinstance(module, (WNConv1d, WNConvTranspose1d)):
                module.remove_weight_norm()
        return self


_PARAMETRIZED = re.compile(r"^(.*)\.parametrizations\.weight\.original([01])$")


def normalize_vocoder_keys(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """Map other BigVGAN layouts onto bigvgan_generator.pt keys. Returns (state dict, weight_norm_removed).

    Accepts: weight_g/weight_v (released); torch parametrizations `<conv>.parametrizations.weight.original0/1`
    (MMAudio's copy after torch's compat hook); plain `<conv>.weight` (a file saved after remove_weight_norm,
    returned as-is with weight_norm_removed=True).
    """
    out = {}
    for key, value in sd.items():
        match = _PARAMETRIZED.match(key)
        out[f"{match[1]}.weight_{'gv'[int(match[2])]}" if match else key] = value
    return out, ("conv_pre.weight" in out and "conv_pre.weight_v" not in out)
