# original version: https://github.com/hzwer/Practical-RIFE (train_log/IFNet_HDv3.py of each 4.x release, MIT),
# as carried per version by https://github.com/HolyWu/vs-rife (vsrife/IFNet_HDv3_v4_*.py). Written anew from them.
"""RIFE 4.x frame interpolation network (IFNet): two frames and a time t in [0, 1] -> the frame at t.

How it works: a few IFBlocks run coarse to fine (downsampled by `scales`, e.g. 16, 8, 4, 2, 1). Each block sees
both frames warped by the current flow estimate, their encoder features (warped too), the time as a constant
channel, and the current mask, and predicts a flow update and a new mask. The result is
    out = sigmoid(m) * warp(I0, F_t->0) + (1 - sigmoid(m)) * warp(I1, F_t->1)
so every output pixel is a convex blend of bilinear samples of the two inputs (`blend`).

One module covers the 4.x layouts with a feature encoder (`RIFEConfig.from_state_dict` reads them from shapes):
| releases                 | encoder (keys)                         | blocks | block output passed on      |
|--------------------------|----------------------------------------|--------|-----------------------------|
| 4.7-4.9 (rife47/49.pth)  | conv + convT (`encode.0`, `encode.1`)  | 4      | flow + mask (+1 unused ch.) |
| 4.13-4.20, 4.24 (417)    | Head (`encode.cnn0..3`), 8 features    | 4      | flow + mask (+1 unused ch.) |
| 4.21-4.23                | Head, 8 features                       | 4      | flow + mask + 8 features    |
| 4.25, 4.26 (rife426.pth) | Head, 4 features (heavy: 16)           | 5      | flow + mask + 8 features    |
Not supported (CheckpointError): 4.0-4.6 (no encoder; 4.0-4.3 add a refinement U-Net) and 4.10-4.12 (a plain
Sequential encoder, `encode.0/2/4/6`; ComfyUI-Frame-Interpolation disables those files too).

Scales: 4 blocks (8, 4, 2, 1), 5 blocks (16, 8, 4, 2, 1); the 4.25 lite release (the only 5-block file whose last
block is 24 wide) was trained with (32, 16, 8, 4, 1). `scale` < 1 runs the flow at lower resolution (0.5 for
4K). Inputs are zero-padded right/bottom to `pad_multiple(scale)` (4 x the largest downsampling: 32 for 4 blocks,
64 for 5) and cropped back, as the references do.

Keys are the released ones (`block0.conv0.0.0.weight`, `block0.convblock.0.beta`, `block0.lastconv.0.weight`,
`encode.*`); Practical-RIFE's `train_log/flownet.pkl` carries a `module.` prefix and the 4.25 file holds
`teacher.*` / `caltime.*` training-only modules: `rife_state_dict` removes both.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.detect import KIND_DESCRIPTIONS, detect_kind
from ..checkpoints.io import describe_keys, load_strict, read_state_dict, strip_prefix
from ..errors import CheckpointError, SkyReelsInputError

__all__ = [
    "RIFE_PRESETS",
    "RIFE_SCALES",
    "RIFEConfig",
    "IFBlock",
    "IFNet",
    "blend",
    "warp",
    "load_rife",
    "rife_state_dict",
]

log = logging.getLogger(__name__)

# The `scale` values the releases document (Practical-RIFE asserts the same list): 0.5 for 4K, 0.25 for 8K.
RIFE_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
_DROPPED_PREFIXES = ("teacher.", "caltime.")  # training-only modules in the 4.25 release
_LITE_425_WIDTHS = (192, 128, 96, 64, 24)


# 1. Warping ----------------------------------------------------------------------------------------------------


def _base_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[1, 2, H, W] sampling grid in grid_sample's [-1, 1] coordinates (x first), align_corners=True."""
    xs = torch.linspace(-1.0, 1.0, width, device=device).view(1, 1, 1, width).expand(1, 1, height, width)
    ys = torch.linspace(-1.0, 1.0, height, device=device).view(1, 1, height, 1).expand(1, 1, height, width)
    return torch.cat([xs, ys], 1)


def warp(image: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
    """Backward warp: out(x) = image(x + flow(x)), bilinear, coordinates clamped to the border.

    image: [B, C, H, W]; flow: [B, 2, H, W] in pixels (dx, dy); grid: `_base_grid(H, W)` to reuse.
    Computed in float32 whatever the input dtype (as the references): half-precision sampling coordinates
    would be off by up to a pixel on a 1080p frame. Returns image's dtype.
    """
    _, _, height, width = image.shape
    grid = _base_grid(height, width, image.device) if grid is None else grid
    flow = flow.float()
    # pixels -> [-1, 1] units: with align_corners=True the W pixel centres span 2, i.e. (W - 1) / 2 pixels per unit
    offset = torch.cat([flow[:, 0:1] / ((width - 1.0) / 2.0), flow[:, 1:2] / ((height - 1.0) / 2.0)], 1)
    coords = (grid + offset).permute(0, 2, 3, 1)
    out = F.grid_sample(image.float(), coords, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)


def blend(img0: torch.Tensor, img1: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor,
          grid: torch.Tensor | None = None) -> torch.Tensor:
    """The synthesis step: sigmoid(mask) * warp(img0, flow[:, :2]) + (1 - sigmoid(mask)) * warp(img1, flow[:, 2:4]).

    img0, img1: [B, C, H, W]; flow: [B, 4, H, W] = (F_t->0, F_t->1) in pixels; mask: [B, 1, H, W] logits
    (0 = equal weights, large positive = img0 only).
    """
    weight0 = torch.sigmoid(mask)
    return warp(img0, flow[:, :2], grid) * weight0 + warp(img1, flow[:, 2:4], grid) * (1 - weight0)


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """(F_t->0, F_t->1) -> (F_t->1, F_t->0): the flows of the reversed pair."""
    return torch.cat([flow[:, 2:4], flow[:, :2]], 1)


# 2. Config -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RIFEConfig:
    """One 4.x IFNet layout. Every field but `scales` comes from tensor shapes (`from_state_dict`).

    encoder: "conv" (4.7-4.9: conv s2 -> convT) or "head" (4.13+: 3 convs + convT, `encode.cnn0..3`).
    encoder_width: hidden channels of the encoder (16 or 32). features: encoder output channels per frame.
    widths: channels of each IFBlock, coarse to fine. res_convs: ResConv layers per block (8 in every release).
    extra: channels a block outputs after flow (4) and mask (1): 1 (unused) up to 4.20/4.24, 8 from 4.21.
    passes_features: blocks 1.. take the previous block's `extra` channels as input (4.21+).
    scales: downsampling of each block at scale 1.
    """

    encoder: str = "head"
    encoder_width: int = 16
    features: int = 4
    widths: tuple[int, ...] = (192, 128, 96, 64, 32)
    res_convs: int = 8
    extra: int = 8
    passes_features: bool = True
    scales: tuple[float, ...] = (16.0, 8.0, 4.0, 2.0, 1.0)

    @property
    def version(self) -> str:
        """The releases this layout matches, for logs and errors."""
        if self.encoder == "conv":
            return "4.7-4.9"
        if not self.passes_features:
            return "4.13-4.20/4.24" + (" lite" if self.features == 4 else "")
        if len(self.widths) == 4:
            return "4.21-4.23"
        if self.scales[0] == 32:
            return "4.25 lite"
        return "4.25/4.26" + (" heavy" if self.features > 4 or self.widths[0] > 192 else "")

    @property
    def supports_ensemble(self) -> bool:
        """Ensemble (average with the reversed pair) exists up to 4.20/4.24; from 4.21 the blocks pass features,
        which have no reversed counterpart (Practical-RIFE: "ensemble is not supported since RIFEv4.21")."""
        return not self.passes_features

    def block_inputs(self, index: int) -> int:
        """Input channels of block `index`: block 0 sees img0, img1, both features and t; later blocks the two
        warped frames, both warped features, t, the mask, the flow (4, added inside the block) and extras."""
        if index == 0:
            return 7 + 2 * self.features
        return 12 + 2 * self.features + (self.extra if self.passes_features else 0)

    def pad_multiple(self, scale: float = 1.0) -> int:
        """Inputs are padded to a multiple of this: each block downsamples by scales[i] / scale, then by 4 more
        (two stride-2 convs). Never below the scale-1 value, as the references."""
        base = int(4 * max(self.scales))
        return max(base, int(base / scale))

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> RIFEConfig:
        """The layout of a RIFE state dict (keys as released, prefixes removed: `rife_state_dict`)."""
        _reject_unsupported(state)
        encoder, encoder_width, features = _encoder_shapes(state)
        count = 0
        while f"block{count}.conv0.0.0.weight" in state:
            count += 1
        if count not in (4, 5):
            raise CheckpointError(f"RIFE 4.x files have 4 or 5 flow blocks (block0..block4); found {count}.")
        widths = tuple(state[f"block{i}.conv0.1.0.weight"].shape[0] for i in range(count))
        res_convs = 0
        while f"block0.convblock.{res_convs}.conv.weight" in state:
            res_convs += 1
        extra = state["block0.lastconv.0.weight"].shape[1] // 4 - 5  # convT out = 4 * channels (PixelShuffle 2)
        later = state["block1.conv0.0.0.weight"].shape[1]
        plain = 12 + 2 * features
        if later not in (plain, plain + extra):
            raise CheckpointError(
                f"block1 takes {later} input channels; a RIFE 4.x file with {features} encoder features has "
                f"{plain} (4.7-4.20) or {plain + extra} (4.21+)."
            )
        scales = (8.0, 4.0, 2.0, 1.0) if count == 4 else (16.0, 8.0, 4.0, 2.0, 1.0)
        if widths == _LITE_425_WIDTHS:
            scales = (32.0, 16.0, 8.0, 4.0, 1.0)
        config = cls(encoder, encoder_width, features, widths, res_convs, extra, later != plain, scales)
        first = state["block0.conv0.0.0.weight"].shape[1]
        if first != config.block_inputs(0):
            raise CheckpointError(f"block0 takes {first} input channels; expected {config.block_inputs(0)} "
                                  f"(7 + 2 x {features} encoder features).")
        return config


# The released layouts (ComfyUI-Frame-Interpolation file names): widths and encoders as in Practical-RIFE.
RIFE_PRESETS: dict[str, RIFEConfig] = {
    "4.7": RIFEConfig("conv", 16, 4, (192, 128, 96, 64), 8, 1, False, (8.0, 4.0, 2.0, 1.0)),  # rife47/49.pth
    "4.17": RIFEConfig("head", 32, 8, (192, 128, 96, 64), 8, 1, False, (8.0, 4.0, 2.0, 1.0)),  # rife417.pth
    "4.22": RIFEConfig("head", 32, 8, (256, 192, 96, 48), 8, 8, True, (8.0, 4.0, 2.0, 1.0)),
    "4.26": RIFEConfig(),  # rife426.pth (4.25 has the same layout)
    "4.25_lite": RIFEConfig(widths=_LITE_425_WIDTHS, scales=(32.0, 16.0, 8.0, 4.0, 1.0)),
    "4.26_heavy": RIFEConfig(features=16),
}


def _reject_unsupported(state: dict[str, torch.Tensor]) -> None:
    """CheckpointError naming what the keys are when they are not a supported RIFE 4.x IFNet."""
    keys = state.keys()
    if "block0.conv0.0.0.weight" not in keys:
        raise CheckpointError(
            f"not a RIFE 4.x IFNet (no block0.conv0.0.0.weight); its keys start {describe_keys(keys)}. "
            f"Put a RIFE file (rife47.pth, rife49.pth, rife417.pth, rife426.pth) in models/frame_interpolation."
        )
    if any(k.startswith(("contextnet.", "unet.")) for k in keys) or "block0.lastconv.weight" in keys:
        raise CheckpointError("a RIFE 4.0-4.3 file (refinement U-Net `contextnet`/`unet`); only 4.7 and later are "
                              "supported. Use rife49.pth, rife417.pth or rife426.pth instead.")
    if not any(k.startswith("encode.") for k in keys):
        raise CheckpointError("a RIFE 4.5/4.6 file (no feature encoder `encode.*`); only 4.7 and later are "
                              "supported. Use rife49.pth, rife417.pth or rife426.pth instead.")
    if "encode.2.weight" in keys:
        raise CheckpointError("a RIFE 4.10-4.12 file (Sequential encoder `encode.0/2/4/6`), which is not supported "
                              "(ComfyUI-Frame-Interpolation disables it too). Use rife49.pth, rife417.pth or "
                              "rife426.pth instead.")


def _encoder_shapes(state: dict[str, torch.Tensor]) -> tuple[str, int, int]:
    """(kind, hidden width, output features) of the frame encoder."""
    if "encode.cnn0.weight" in state:
        return "head", state["encode.cnn0.weight"].shape[0], state["encode.cnn3.weight"].shape[1]
    if "encode.0.weight" in state and "encode.1.weight" in state:
        return "conv", state["encode.0.weight"].shape[0], state["encode.1.weight"].shape[1]
    found = sorted(k for k in state if k.startswith("encode."))
    raise CheckpointError(f"unknown RIFE encoder layout ({describe_keys(found)}); expected encode.cnn0..3 (4.13+) "
                          f"or encode.0/encode.1 (4.7-4.9).")


# 3. Layers -----------------------------------------------------------------------------------------------------


def _conv_act(cin: int, cout: int, stride: int, device, dtype) -> nn.Sequential:
    """Conv 3x3 + LeakyReLU(0.2) in a Sequential: keys `.0.weight`, `.0.bias` as released."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, device=device, dtype=dtype), nn.LeakyReLU(0.2, True))


class ResConv(nn.Module):
    """x -> LeakyReLU(x + beta * conv(x)), beta a learned per-channel gain [1, C, 1, 1]."""

    def __init__(self, channels: int, device=None, dtype=None):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, device=device, dtype=dtype)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1, device=device, dtype=dtype))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One coarse-to-fine step: input / scale -> two stride-2 convs -> ResConvs -> convT + PixelShuffle (x4 up)
    -> upsampled by scale. Returns (flow [B, 4, H, W] in pixels, mask logits [B, 1, H, W], extra [B, E, H, W])."""

    def __init__(self, in_planes: int, width: int, extra: int, res_convs: int = 8, device=None, dtype=None):
        super().__init__()
        self.conv0 = nn.Sequential(_conv_act(in_planes, width // 2, 2, device, dtype),
                                   _conv_act(width // 2, width, 2, device, dtype))
        self.convblock = nn.Sequential(*(ResConv(width, device, dtype) for _ in range(res_convs)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * (5 + extra), 4, 2, 1, device=device, dtype=dtype),
                                      nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            # the flow is in full-resolution pixels: resample it and shrink its values alike
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat([x, flow], 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1:
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class Head(nn.Module):
    """The 4.13+ frame encoder: conv s2 -> conv -> conv -> convT x2, LeakyReLU between (`encode.cnn0..3`)."""

    def __init__(self, width: int, features: int, device=None, dtype=None):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1, device=device, dtype=dtype)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1, device=device, dtype=dtype)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1, device=device, dtype=dtype)
        self.cnn3 = nn.ConvTranspose2d(width, features, 4, 2, 1, device=device, dtype=dtype)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


def _encoder(config: RIFEConfig, device, dtype) -> nn.Module:
    if config.encoder == "head":
        return Head(config.encoder_width, config.features, device, dtype)
    # 4.7-4.9: no activation between the two layers (`encode.0`, `encode.1`)
    return nn.Sequential(nn.Conv2d(3, config.encoder_width, 3, 2, 1, device=device, dtype=dtype),
                         nn.ConvTranspose2d(config.encoder_width, config.features, 4, 2, 1, device=device,
                                            dtype=dtype))


# 4. Network ----------------------------------------------------------------------------------------------------


class IFNet(nn.Module):
    """RIFE 4.x IFNet. Blocks are attributes `block0..blockN` (the released keys); `blocks` lists them.

    `forward(img0, img1, timestep, scale, ensemble)` is the whole thing. The pipeline uses the parts to encode
    each frame once: `pad` -> `encode` -> `synthesize` -> crop.
    """

    def __init__(self, config: RIFEConfig = RIFEConfig(), device=None, dtype=None):
        super().__init__()
        self.config = config
        self.encode = _encoder(config, device, dtype)
        for i, width in enumerate(config.widths):
            block = IFBlock(config.block_inputs(i), width, config.extra, config.res_convs, device, dtype)
            self.add_module(f"block{i}", block)

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.config.widths))]

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def check_options(self, scale: float, ensemble: bool) -> None:
        """SkyReelsInputError for a scale the network cannot run at, or ensemble on a 4.21+ layout."""
        if scale not in RIFE_SCALES:
            raise SkyReelsInputError(f"RIFE scale must be one of {', '.join(map(str, RIFE_SCALES))} "
                                     f"(0.5 for 4K input); got {scale}.")
        if ensemble and not self.config.supports_ensemble:
            raise SkyReelsInputError(f"Ensemble is not available for RIFE {self.config.version} files (it exists up "
                                     f"to 4.20/4.24, e.g. rife47/49/417.pth); turn ensemble off.")

    def pad(self, image: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """[B, 3, H, W] -> clamped to [0, 1] and zero-padded right/bottom to `pad_multiple(scale)`."""
        multiple = self.config.pad_multiple(scale)
        height, width = image.shape[-2:]
        padding = (0, -width % multiple, 0, -height % multiple)
        return F.pad(image.clamp(0.0, 1.0), padding)

    def synthesize(self, img0: torch.Tensor, img1: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor,
                   timestep: torch.Tensor, scale: float = 1.0, ensemble: bool = False) -> torch.Tensor:
        """The frame at `timestep` from padded frames [B, 3, H, W], their features `encode(img)` [B, F, H, W] and
        timestep [B] (any value in [0, 1] per sample). Returns [B, 3, H, W] (padded size)."""
        flow, mask, grid = self.estimate(img0, img1, f0, f1, timestep, scale, ensemble)
        return blend(img0, img1, flow, mask, grid)

    def estimate(self, img0, img1, f0, f1, timestep, scale: float = 1.0, ensemble: bool = False):
        """Flow [B, 4, H, W] = (F_t->0, F_t->1) in pixels, mask logits [B, 1, H, W] and the warp grid (see
        `synthesize` for the inputs)."""
        batch, _, height, width = img0.shape
        grid = _base_grid(height, width, img0.device)
        t = timestep.to(img0.dtype).view(batch, 1, 1, 1).expand(batch, 1, height, width)
        flow = mask = extra = None
        warped0, warped1 = img0, img1
        for block, block_scale in zip(self.blocks, self.config.scales, strict=True):
            block_scale = block_scale / scale
            if flow is None:
                flow, mask, extra = block(torch.cat([img0, img1, f0, f1, t], 1), None, block_scale)
                if ensemble:  # the reversed pair at 1 - t, its flows swapped and its mask negated, averaged in
                    flow_r, mask_r, _ = block(torch.cat([img1, img0, f1, f0, 1 - t], 1), None, block_scale)
                    flow, mask = (flow + _swap(flow_r)) / 2, (mask - mask_r) / 2
            else:
                wf0, wf1 = warp(f0, flow[:, :2], grid), warp(f1, flow[:, 2:4], grid)
                inputs = [warped0, warped1, wf0, wf1, t, mask] + ([extra] if self.config.passes_features else [])
                delta, new_mask, extra = block(torch.cat(inputs, 1), flow, block_scale)
                if ensemble:
                    reverse = torch.cat([warped1, warped0, wf1, wf0, 1 - t, -mask], 1)
                    delta_r, mask_r, _ = block(reverse, _swap(flow), block_scale)
                    delta, new_mask = (delta + _swap(delta_r)) / 2, (new_mask - mask_r) / 2
                flow, mask = flow + delta, new_mask
            warped0, warped1 = warp(img0, flow[:, :2], grid), warp(img1, flow[:, 2:4], grid)
        return flow, mask, grid

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5,
                scale: float = 1.0, ensemble: bool = False) -> torch.Tensor:
        """img0, img1: [B, 3, H, W] in [0, 1] (any H, W); timestep: a float or [B] in [0, 1]; scale: one of
        RIFE_SCALES (flow resolution, 0.5 for 4K); ensemble: also run the reversed pair (4.7-4.20/4.24 only).
        Returns the frame at `timestep`, [B, 3, H, W] in the model's dtype."""
        self.check_options(scale, ensemble)
        height, width = img0.shape[-2:]
        img0, img1 = self.pad(img0.to(self.dtype), scale), self.pad(img1.to(self.dtype), scale)
        if not isinstance(timestep, torch.Tensor):
            timestep = torch.full((img0.shape[0],), float(timestep))
        timestep = timestep.to(img0.device).reshape(-1).expand(img0.shape[0])
        out = self.synthesize(img0, img1, self.encode(img0), self.encode(img1), timestep, scale, ensemble)
        return out[:, :, :height, :width]


# 5. Loading ----------------------------------------------------------------------------------------------------


def rife_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released RIFE keys: `module.` (DataParallel, train_log/flownet.pkl) and `flownet.` prefixes removed,
    training-only `teacher.*` / `caltime.*` dropped."""
    state = strip_prefix(strip_prefix(state, ("module.",)), ("flownet.",))
    return {k: v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES)}


def _read(file: Path) -> dict[str, torch.Tensor]:
    """read_state_dict, plus Practical-RIFE's `flownet.pkl` (a torch.save zip despite the name; ComfyUI lists
    .pkl files in model folders), read with weights_only=True as every .pth."""
    if file.suffix != ".pkl":
        return read_state_dict(file)
    if not file.is_file():
        raise CheckpointError(f"Model file not found: {file}")
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"Cannot read {file.name} with torch.load(weights_only=True) ({type(exc).__name__}: "
                              f"{str(exc)[:200]}). Download it again, or use a .pth/.safetensors copy.") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{file.name} does not contain a state dict (found {type(state).__name__}).")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_rife(path: str | os.PathLike, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
              scales: tuple[float, ...] | None = None) -> IFNet:
    """Read a RIFE 4.x file (.pth / .pkl via torch.load(weights_only=True), or .safetensors) into an eval-mode
    IFNet: layout from the shapes, built on meta, loaded strictly. scales: override the per-block downsampling
    (only for a custom file trained with other scales). CheckpointError names the file and what it holds."""
    file = Path(path)
    state = _read(file)
    found = detect_kind(state.keys())
    if found != "unknown":  # another kind the pack knows: say which, and where it loads
        about = KIND_DESCRIPTIONS[found]
        article = "an" if about.name[0] in "aeiou" else "a"
        raise CheckpointError(f"{file.name}: this file looks like {article} {about.name}, not a RIFE frame "
                              f"interpolation model; load it with {about.loader}.")
    state = rife_state_dict(state)
    try:
        config = RIFEConfig.from_state_dict(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{file.name}: {exc}") from exc
    except (KeyError, IndexError) as exc:
        raise CheckpointError(f"{file.name}: an incomplete RIFE file (missing {exc}); download it again.") from exc
    if scales is not None:
        if len(scales) != len(config.widths):
            raise SkyReelsInputError(f"scales needs one value per block ({len(config.widths)}); got {scales}.")
        config = replace(config, scales=tuple(float(s) for s in scales))
    with torch.device("meta"):
        model = IFNet(config, dtype=dtype)
    state = {k: v.to(dtype) for k, v in state.items()}
    load_strict(model, state, file=str(file), kind=f"RIFE {config.version} IFNet", assign=True)
    log.info("Loaded RIFE %s IFNet from %s (blocks %s, %s)", config.version, file.name, config.widths, dtype)
    return model.to(device).eval().requires_grad_(False)
