"""Latent nodes: an empty video latent for T2V, and the image condition + latent for I2V.

LATENT["samples"] is [B, 16, F, h, w] in the raw Wan2.1-VAE space, like ComfyUI's own Wan nodes, so these
latents also work with core latent nodes. Shape math comes from skyreels_core.shapes only.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..skyreels_core.conditioning.images import fit_crop
from ..skyreels_core.pipelines.video import make_i2v_condition
from ..skyreels_core.shapes import VideoLatentShape
from . import comfy_bridge as bridge
from .types import SkyReelsImageCond, SkyReelsImageEmbeds, SkyReelsVAE

MAX_SIZE = 4096
MAX_FRAMES = 1025


def size_inputs() -> list[io.Input]:
    """width, height, frames widgets in this order (saved workflows store widgets by position)."""
    return [
        io.Int.Input("width", default=832, min=16, max=MAX_SIZE, step=16,
                     tooltip="Video width in pixels; a multiple of 16. SkyReels-V2 540P is 960x544."),
        io.Int.Input("height", default=480, min=16, max=MAX_SIZE, step=16,
                     tooltip="Video height in pixels; a multiple of 16."),
        io.Int.Input("frames", default=81, min=1, max=MAX_FRAMES, step=4,
                     tooltip="Number of frames; must be 4n+1 (81 = 3.4 s at 24 fps, 97 = 4 s, 121 = 5 s)."),
    ]


def empty_latent(width: int, height: int, frames: int, batch: int = 1) -> dict:
    """LATENT of zeros; raises SkyReelsInputError naming the nearest valid value for bad sizes."""
    shape = VideoLatentShape.from_pixels(frames, height, width, batch=batch)
    return {"samples": torch.zeros(shape.as_tuple())}


def image_to_pixels(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE [B,H,W,C] 0..1 -> first image as [1,3,height,width] in [-1,1] (the core image fit)."""
    return fit_crop(image[:1], height, width)


class SkyReelsEmptyVideoLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsEmptyVideoLatent",
            display_name="SkyReels Empty Video Latent",
            category="SkyReels/latent",
            description="An empty Wan2.1 video latent [batch, 16, (frames-1)/4+1, height/8, width/8] for "
            "text-to-video.",
            inputs=size_inputs() + [
                io.Int.Input("batch", default=1, min=1, max=64, tooltip="Videos sampled at once."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, width: int, height: int, frames: int, batch: int) -> io.NodeOutput:
        return io.NodeOutput(empty_latent(width, height, frames, batch))


class SkyReelsImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsImageToVideo",
            display_name="SkyReels Image To Video",
            category="SkyReels/latent",
            description="Builds the image-to-video condition for SkyReels-V2 I2V models: the start image (and "
            "optionally an end image) VAE-encoded at their frames, mid-grey elsewhere, plus the frame mask. "
            "Images are center-cropped to the video's aspect ratio and resized.",
            inputs=[
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader."),
                io.Image.Input("start_image", tooltip="The first frame of the video."),
                *size_inputs(),
                io.Image.Input("end_image", optional=True, tooltip="Optional last frame of the video."),
                SkyReelsImageEmbeds.Input("image_embeds", optional=True,
                                          tooltip="CLIP vision tokens of the start image (SkyReels CLIP Vision "
                                          "Encode); required by the official I2V checkpoints."),
            ],
            outputs=[
                SkyReelsImageCond.Output(display_name="image_cond"),
                io.Latent.Output(display_name="latent"),
            ],
        )

    @classmethod
    def execute(cls, vae, start_image: torch.Tensor, width: int, height: int, frames: int,
                end_image: torch.Tensor | None = None, image_embeds=None) -> io.NodeOutput:
        latent = empty_latent(width, height, frames)
        bridge.load_for_use(vae)
        start = image_to_pixels(start_image, width, height)
        end = None if end_image is None else image_to_pixels(end_image, width, height)
        clip_fea = None if image_embeds is None else image_embeds.clip_fea
        with torch.no_grad():
            cond = make_i2v_condition(vae.runner, start, end, frames, height, width, clip_fea)
        cond = type(cond)(y=cond.y.float().cpu(), clip_fea=cond.clip_fea)
        return io.NodeOutput(cond, latent)
