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
