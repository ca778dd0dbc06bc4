"""VAE decode node: video latent -> IMAGE frames for core CreateVideo / SaveVideo."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..skyreels_core.errors import SkyReelsInputError
from . import comfy_bridge as bridge
from .types import SkyReelsVAE


def check_tiles(tile_size: int, tile_overlap: int) -> None:
    if tile_size and tile_overlap >= tile_size // 2:
        raise SkyReelsInputError(
            f"tile_overlap ({tile_overlap}) must be less than half of tile_size ({tile_size}); "
            f"use tile_overlap <= {max(0, tile_size // 2 - 16)} or a larger tile_size."
        )


def video_to_images(video: torch.Tensor) -> torch.Tensor:
    """[B, 3, F, H, W] in [-1, 1] -> IMAGE [B*F, H, W, 3] in [0, 1] (batches one after another)."""
    images = ((video.float() + 1.0) * 0.5).clamp(0.0, 1.0)
    return images.permute(0, 2, 3, 4, 1).reshape(-1, video.shape[-2], video.shape[-1], 3).cpu()


class SkyReelsVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsVAEDecode",
            display_name="SkyReels VAE Decode",
            category="SkyReels/latent",
            description="Decodes a Wan2.1 video latent to frames (IMAGE, 4(F-1)+1 frames per video), optionally "
            "in spatial tiles to save memory. Feed the frames to Create Video -> Save Video.",
            inputs=[
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader."),
                io.Latent.Input("latent", tooltip="Video latent from SkyReels Sampler."),
                io.Int.Input("tile_size", default=0, min=0, max=4096, step=32,
                             tooltip="Decode in square tiles of this many pixels to cut memory; 0 decodes the "
                             "whole frame at once."),
                io.Int.Input("tile_overlap", default=64, min=0, max=2048, step=16,
                             tooltip="Pixels two neighbouring tiles share (blended to hide seams); less than "
                             "half of tile_size."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, tile_size: int, tile_overlap: int) -> io.NodeOutput:
        check_tiles(tile_size, tile_overlap)
        samples = latent["samples"]
        if samples.ndim != 5 or samples.shape[1] != 16:
            raise SkyReelsInputError(
                f"latent must be a Wan2.1 video latent [B, 16, F, h, w]; got shape {list(samples.shape)}."
            )
        device = bridge.load_for_use(vae)
        z = bridge.latent_to_model(samples).to(device)
        progress = bridge.SimpleProgress(samples.shape[2])
        with torch.no_grad():
            video = vae.runner.decode(z, tile=tile_size or None, overlap=tile_overlap, callback=progress)
        return io.NodeOutput(video_to_images(video))


DECODE_NODES = [SkyReelsVAEDecode]
