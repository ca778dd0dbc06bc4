"""Post-processing nodes for any video in a graph: RIFE frame interpolation and per-frame super-resolution with the
image upscalers ComfyUI users already have (Real-ESRGAN, SPAN, ... through spandrel).

- SkyReels RIFE Loader reads the RIFE 4.x files of ComfyUI-Frame-Interpolation (rife47.pth, rife49.pth, rife417.pth,
  rife426.pth) from models/frame_interpolation, the folder newer ComfyUI versions register for their own frame
  interpolation node (registered here on older ones), so one copy of a file serves both.
- SkyReels Interpolate Frames: IMAGE + fps in, IMAGE + fps out, the same duration (the audio wire goes straight to
  Create Video). Cuts are detected and never morphed. Frames go to the device a batch at a time.
- SkyReels Upscale Video: the UPSCALE_MODEL of ComfyUI's own Load Upscale Model (same folder, same spandrel
  detection, so no second loader), applied a batch of frames at a time in tiles, output on the CPU. Core's Upscale
  Image (using Model) moves the whole clip to the GPU first and runs one tile of one frame per call; a 500-frame
  540p clip is 3.1 GB of device memory before the model runs, ours holds one batch.
"""

from __future__ import annotations

import math

import torch
from comfy_api.latest import io

from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.shapes import check_video_memory
from . import comfy_bridge as bridge
from .types import SkyReelsFrameInterpolation

CATEGORY = "SkyReels/Post"
FOLDER = "frame_interpolation"
RIFE_DTYPES = {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def list_rife_models() -> list[str]:
    bridge.ensure_model_folder(FOLDER)
    return bridge.list_models(FOLDER)


def _frames(images, what: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise SkyReelsInputError(f"{what} must be a ComfyUI IMAGE [frames, height, width, 3]; got {shape}.")
    return images[..., :3]


class SkyReelsRIFELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsRIFELoader",
            display_name="SkyReels RIFE Loader",
            category=CATEGORY,
            description="Loads a RIFE 4.x frame interpolation model (rife47.pth, rife49.pth, rife417.pth, "
            "rife426.pth: the files of ComfyUI-Frame-Interpolation, or Practical-RIFE's flownet.pkl renamed .pth) from "
            "ComfyUI/models/frame_interpolation. The version is recognised from the file.",
            inputs=[
                io.Combo.Input("model_name", options=list_rife_models(),
                               tooltip="A RIFE file in ComfyUI/models/frame_interpolation (and extra_model_paths.yaml). "
                               "4.26 is the newest architecture; 4.7 / 4.9 are fast."),
                io.Combo.Input("precision", options=list(RIFE_DTYPES), default="auto",
                               tooltip="auto: fp16 on a GPU that has it, fp32 on the CPU. fp32 is the exact "
                               "reference; fp16 is about twice as fast on a GPU."),
            ],
            outputs=[SkyReelsFrameInterpolation.Output(display_name="rife")],
        )

    @classmethod
    def execute(cls, model_name: str, precision: str) -> io.NodeOutput:
        from ..skyreels_core.models.rife import load_rife

        bridge.check_choice("precision", precision, list(RIFE_DTYPES))
        path = bridge.model_path(FOLDER, model_name)
        device, _ = bridge.devices("vae")
        dtype = RIFE_DTYPES[precision] or bridge.half_dtype(device)
        return io.NodeOutput(bridge.manage(load_rife(path, dtype=dtype, device="cpu"), "vae", model_name))


class SkyReelsInterpolateFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsInterpolateFrames",
            display_name="SkyReels Interpolate Frames (RIFE)",
            category=CATEGORY,
            description="Makes in-between frames with RIFE: x2 / x4 or any target frame rate, the same duration, so "
            "the original audio still fits (connect it straight to Create Video). A cut between two frames is "
            "detected and not morphed. Frames go to the GPU a batch at a time, so long 1080p clips fit.",
            inputs=[
                SkyReelsFrameInterpolation.Input("rife", tooltip="From SkyReels RIFE Loader."),
                io.Image.Input("images", tooltip="The video frames (a decoder's images, Get Video Components...)."),
                io.Float.Input("fps", default=24.0, min=0.01, max=1000.0, step=1.0, round=0.001,
                               tooltip="The frame rate of the input frames (connect a decoder's or Get Video "
                               "Components' fps)."),
                io.Int.Input("multiplier", default=2, min=1, max=16,
                             tooltip="Output fps = fps x multiplier (2: 24 -> 48 fps). Ignored when target_fps is "
                             "set."),
                io.Float.Input("target_fps", default=0.0, min=0.0, max=1000.0, step=1.0, round=0.001,
                               tooltip="0: use multiplier. Otherwise any higher frame rate (24 -> 60): each output "
                               "frame is made at its own time between two input frames."),
                io.Float.Input("scene_cut", default=0.2, min=0.0, max=1.0, step=0.01, round=0.001,
                               tooltip="Cut detection: two neighbouring frames less similar than this (SSIM of small "
                               "thumbnails, 0..1) are a cut, and the frames between them hold the earlier frame "
                               "instead of morphing (the new shot starts on time). 0.2 is Practical-RIFE's value; "
                               "0 = off."),
                io.Boolean.Input("ensemble", default=False,
                                 tooltip="Also run the pair in reverse and average (slightly smoother, twice the "
                                 "time; 4.26 was trained without it)."),
                io.Float.Input("scale", default=1.0, min=0.125, max=4.0, step=0.125, round=0.001,
                               tooltip="Flow resolution: 1 for up to 1080p, 0.5 for 4K (faster, coarser motion), 2 "
                               "for small clips with fine motion."),
                io.Int.Input("batch", default=8, min=1, max=256,
                             tooltip="In-between frames made per model call: more is faster on a big GPU, fewer "
                             "uses less memory."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="Original and new frames -> Create Video."),
                     io.Float.Output(display_name="fps", tooltip="The new frame rate -> Create Video's fps.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, rife, images, fps: float, multiplier: int, target_fps: float, scene_cut: float, ensemble: bool,
                scale: float, batch: int) -> io.NodeOutput:
        from ..skyreels_core.pipelines.interpolate import frame_ratio, interpolate_frames

        frames = _frames(images)
        ratio = frame_ratio(fps, None if target_fps else multiplier, target_fps or None)
        check_video_memory(1, math.ceil(frames.shape[0] * ratio), frames.shape[1], frames.shape[2],
                           "The interpolated video")
        bridge.load_for_use(rife)
        result = interpolate_frames(
            rife.module, frames, fps=fps, multiplier=None if target_fps else multiplier, target_fps=target_fps or None,
            scene_cut_threshold=scene_cut, scale=scale, ensemble=ensemble, batch_size=batch,
            callback=bridge.SimpleProgress(1))
        return io.NodeOutput(result.frames, float(result.fps))


class SkyReelsUpscaleVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsUpscaleVideo",
            display_name="SkyReels Upscale Video (model)",
            category=CATEGORY,
            description="Upscales every frame with an image super-resolution model (Real-ESRGAN x2/x4, SPAN, "
            "realesr-general... from Load Upscale Model), a batch of frames at a time in overlapping tiles, so a long "
            "clip needs no more GPU memory than one batch. Per-frame SR sharpens but does not add temporal detail; "
            "see the README for video SR models.",
            inputs=[
                io.UpscaleModel.Input("upscale_model", tooltip="From Load Upscale Model (ComfyUI/models/upscale_"
                                      "models), e.g. RealESRGAN_x2plus.pth."),
                io.Image.Input("images", tooltip="The video frames."),
                io.Int.Input("tile", default=512, min=0, max=4096, step=16,
                             tooltip="Tile size in input pixels (0: whole frames). Smaller tiles use less memory."),
                io.Int.Input("overlap", default=64, min=0, max=1024, step=4,
                             tooltip="Input pixels neighbouring tiles share, cross-faded to hide seams; at most half "
                             "the tile. Tiles match whole frames exactly once a quarter of it covers the model's "
                             "reach (about 40 px for Real-ESRGAN x2/x4plus, 8 px for realesr-general)."),
                io.Int.Input("batch", default=4, min=1, max=256,
                             tooltip="Frames per model call: more is faster on a big GPU, fewer uses less memory."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The upscaled frames (same count and fps).")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, upscale_model, images, tile: int, overlap: int, batch: int) -> io.NodeOutput:
        from ..skyreels_core.pipelines.upscale import check_upscale_settings, spandrel_upscaler, upscale_frames

        frames = _frames(images)
        device, _ = bridge.devices("dit")
        dtype = bridge.half_dtype(device) if getattr(upscale_model, "supports_half", False) else torch.float32
        upscaler = spandrel_upscaler(upscale_model, dtype)
        tile = 0 if upscaler.whole_frame else tile
        check_upscale_settings(frames, scale=upscaler.scale, tile=tile, overlap=overlap, batch=batch,
                               align=upscaler.align)
        height, width = frames.shape[1] * upscaler.scale, frames.shape[2] * upscaler.scale
        check_video_memory(1, frames.shape[0], height, width, "The upscaled video")
        bridge.free_memory_for(upscale_model.model, device)
        upscale_model.to(device=device, dtype=dtype)  # ComfyUI's own upscale node moves the model by hand too
        try:
            out = upscale_frames(upscaler.fn, frames, scale=upscaler.scale, tile=tile, overlap=overlap, batch=batch,
                                 align=upscaler.align, device=device, dtype=dtype, callback=bridge.SimpleProgress(1))
        finally:
            upscale_model.to(device="cpu", dtype=torch.float32)
        return io.NodeOutput(out)
