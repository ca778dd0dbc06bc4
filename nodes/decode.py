"""VAE decode node: video latent -> IMAGE frames for core CreateVideo / SaveVideo."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.shapes import SPACE_STRIDE, check_video_memory, pixel_frames  # tiles: latent units (px / 8)
from . import comfy_bridge as bridge
from .types import SkyReelsVAE

MIN_TILE = 64


def latent_tiles(tile_size: int, tile_overlap: int) -> tuple[int | None, int]:
    """Pixel tile widgets -> (tile, overlap) in latent units for WanVAE.decode; tile None = untiled."""
    if tile_size == 0:
        return None, tile_overlap // SPACE_STRIDE
    if tile_size < MIN_TILE:
        raise SkyReelsInputError(f"tile_size must be 0 (no tiling) or at least {MIN_TILE} pixels; got {tile_size}.")
    if tile_overlap >= tile_size:
        raise SkyReelsInputError(
            f"tile_overlap ({tile_overlap}) must be smaller than tile_size ({tile_size}); "
            f"try tile_overlap {tile_size // 4}."
        )
    return tile_size // SPACE_STRIDE, tile_overlap // SPACE_STRIDE


def video_to_images(video: torch.Tensor) -> torch.Tensor:
    """[B, 3, F, H, W] in [-1, 1] -> IMAGE [B*F, H, W, 3] in [0, 1] (batches one after another)."""
    images = ((video.float() + 1.0) * 0.5).clamp(0.0, 1.0)
    return images.permute(0, 2, 3, 4, 1).reshape(-1, video.shape[-2], video.shape[-1], 3).cpu()


def decode_video(vae, samples: torch.Tensor, tile_size: int, tile_overlap: int, num_frames: int | None = None):
    """LATENT samples [B, 16, F, h, w] -> IMAGE frames (the first `num_frames` of each video when given)."""
    tile, overlap = latent_tiles(tile_size, tile_overlap)
    if samples.ndim != 5 or samples.shape[1] != 16:
        raise SkyReelsInputError(
            f"latent must be a Wan2.1 video latent [B, 16, F, h, w]; got shape {list(samples.shape)}."
        )
    b, _, f, h, w = samples.shape
    check_video_memory(b, pixel_frames(f), h * SPACE_STRIDE, w * SPACE_STRIDE, "The decoded video")
    device = bridge.load_for_use(vae)
    z = bridge.latent_to_model(samples).to(device)
    progress = bridge.SimpleProgress(samples.shape[2])  # total is corrected by the VAE's callback
    with torch.no_grad():
        video = vae.runner.decode(z, tile=tile, overlap=overlap, callback=progress)
    if num_frames is not None:
        video = video[:, :, : int(num_frames)]
    return video_to_images(video)


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
                             tooltip="Decode in square tiles of this many pixels (at least 64) to cut memory; "
                             "0 decodes whole frames. 256-512 suits 8-12 GB GPUs."),
                io.Int.Input("tile_overlap", default=64, min=0, max=2048, step=8,
                             tooltip="Pixels two neighbouring tiles share, cross-faded to hide seams; smaller "
                             "than tile_size."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, tile_size: int, tile_overlap: int) -> io.NodeOutput:
        # the exact length set by a sampler that makes any number of frames (SkyReels DF Sampler)
        return io.NodeOutput(decode_video(vae, latent["samples"], tile_size, tile_overlap, latent.get("num_frames")))

