"""Wire types between SkyReels nodes, and the typed payloads they carry.

Every socket type is an `io.Custom` prefixed `SKYREELS_`; every payload is a frozen dataclass with its
fields documented, so no node reads untyped dict keys from another node's output. ComfyUI's own types
(LATENT, IMAGE) are used unchanged where they fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from comfy_api.latest import io

from ..skyreels_core.pipelines.video import ImageCondition

__all__ = [
    "SkyReelsModel", "SkyReelsVAE", "SkyReelsTextEncoder", "SkyReelsTextEmbeds", "SkyReelsCLIPVision",
    "SkyReelsImageEmbeds", "SkyReelsImageCond",
    "ManagedModel", "TextEmbeds", "ImageEmbeds", "ImageCondition",
]

SkyReelsModel = io.Custom("SKYREELS_MODEL")
SkyReelsVAE = io.Custom("SKYREELS_VAE")
SkyReelsTextEncoder = io.Custom("SKYREELS_TEXT_ENCODER")
SkyReelsTextEmbeds = io.Custom("SKYREELS_TEXT_EMBEDS")
SkyReelsCLIPVision = io.Custom("SKYREELS_CLIP_VISION")
SkyReelsImageEmbeds = io.Custom("SKYREELS_IMAGE_EMBEDS")
SkyReelsImageCond = io.Custom("SKYREELS_IMAGE_COND")
SkyReelsAudioEncoder = io.Custom("SKYREELS_AUDIO_ENCODER")  # the V3 talking avatar's speech encoder (wav2vec2)


@dataclass(frozen=True)
class ManagedModel:
    """A skyreels_core network handed to ComfyUI's model management.

    patcher: comfy.model_patcher.ModelPatcher wrapping the nn.Module (`patcher.model`); ComfyUI moves it
        between `load_device` and `offload_device` and frees it when another model needs the memory.
    runner: the object whose methods the nodes call (the module itself, or a wrapper such as a text encoder
        that owns a tokenizer plus the module).
    file: the model file name as picked in the loader, for messages.
    """

    patcher: Any
    runner: Any
    file: str

    @property
    def module(self) -> torch.nn.Module:
        return self.patcher.model


@dataclass(frozen=True)
class TextEmbeds:
    """umT5 contexts. positive: [1, L, 4096]; negative: [1, L, 4096] or None (CFG off). L is 512."""

    positive: torch.Tensor
    negative: torch.Tensor | None


@dataclass(frozen=True)
class ImageEmbeds:
    """CLIP vision tokens of the conditioning image(s): clip_fea [B, 257, 1280] (penultimate ViT-H layer)."""

    clip_fea: torch.Tensor


# --------------------------------------------------------------------------------------------------------- V4
# SkyReels-V4 (joint video + audio). Payloads carry core objects; nodes/v4.py and nodes/v4_audio.py use them.

SkyReelsAVModel = io.Custom("SKYREELS_AV_MODEL")
SkyReelsAudioCodec = io.Custom("SKYREELS_AUDIO_CODEC")
SkyReelsMLLM = io.Custom("SKYREELS_MLLM")
SkyReelsAVTextEmbeds = io.Custom("SKYREELS_AV_TEXT_EMBEDS")
SkyReelsV4Cond = io.Custom("SKYREELS_V4_CONDITION")
SkyReelsV4Refs = io.Custom("SKYREELS_V4_REFERENCES")


@dataclass(frozen=True)
class AVTextEmbeds:
    """MLLM contexts shared by both towers. positive: [1, L, text_dim]; negative: [1, L', text_dim] or None."""

    positive: torch.Tensor
    negative: torch.Tensor | None


@dataclass(frozen=True)
class V4Condition:
    """A task condition for the V4 video tower, built for one latent size.

    task: "t2v" | "i2v" | "extend" | "start_end" | "inpaint_edit" (for messages).
    condition: skyreels_core.conditioning.v4.VideoCondition; latent [B, 16, F, h, w] (normalised Wan latent,
        zeros where mask = 0) and mask [B, 1, F, h, w] (1 = keep).
    """

    task: str
    condition: Any


@dataclass(frozen=True)
class V4References:
    """In-context references. video: normalised Wan latents [B, 16, F_r, h, w] or None, built for one latent size;
    audio: RAW audio-codec latents [B, 40, T_r] or None (the sampler normalises them with the DiT's
    audio_latent_mean / audio_latent_std)."""

    video: torch.Tensor | None
    audio: torch.Tensor | None


# --------------------------------------------------------------------------------------------------------- post
# Refiner, frame interpolation and upscaling (nodes/post.py, nodes/v4_refine.py).

SkyReelsFrameInterpolation = io.Custom("SKYREELS_FRAME_INTERPOLATION")  # a ManagedModel over a RIFE IFNet
SkyReelsV4Refiner = io.Custom("SKYREELS_V4_REFINER")  # a ManagedModel over a video-only AV MMDiT (the refiner)
SkyReelsV4KeyframeRequest = io.Custom("SKYREELS_V4_KEYFRAMES")


@dataclass(frozen=True)
class V4Keyframes:
    """The base sampler's high-resolution keyframe request: `count` keyframes (evenly spaced latent frames, the
    first and last included) generated at width x height pixels together with the low-resolution video."""

    count: int
    width: int
    height: int
