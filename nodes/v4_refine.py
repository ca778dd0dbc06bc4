"""SkyReels-V4 two-stage "cinematic" path: the base sampler makes a low-resolution video plus a few high-resolution
keyframes (SkyReels V4 Keyframes -> the sampler's optional keyframes input), then the refiner turns them into the
high-resolution video at twice the frame rate (SkyReels V4 Refiner Loader, SkyReels V4 Refine), over
skyreels_core.conditioning.refine and skyreels_core.pipelines.refine.

The keyframes travel from the base sampler to the refiner inside the joint LATENT dict (nodes/v4.py's format):
    "keyframe_samples": [B, 16, K, H, W] raw Wan2.1-VAE latents, "keyframe_indices": their low-res latent frames.
The refined LATENT is the same joint format at the new size and fps; its audio latent is the base's, untouched,
and "audio_num_samples" is the refined video's duration, so SkyReels V4 Decode gives sound exactly as long as the
picture (the base audio covers 1 / (2 fps) s more, cut at the end).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from comfy_api.latest import io

from ..skyreels_core.conditioning.refine import plan_keyframes, refine_timing
from ..skyreels_core.conditioning.v4 import condition_inpaint
from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.shapes import SPACE_STRIDE, VideoLatentShape
from . import comfy_bridge as bridge
from .loaders import ATTENTION_CHOICES
from .sampler import check_sampler_values, solver_input
from .types import (
    AVTextEmbeds,
    SkyReelsAVTextEmbeds,
    SkyReelsV4KeyframeRequest,
    SkyReelsV4Refiner,
    SkyReelsVAE,
    V4Keyframes,
)
from .v4 import AV_WEIGHT_DTYPES, CATEGORY, MAX_SIZE, av_geometry, check_text_width, load_av_module
from .v4_audio import AUDIO_KEY, LENGTH_KEY

log = logging.getLogger("SkyReels")

KEYFRAME_SAMPLES, KEYFRAME_INDICES = "keyframe_samples", "keyframe_indices"
SPARSE_CHOICES = ["checkpoint", "dense"]
MAX_KEYFRAMES = 64


def keyframes_of(latent: dict) -> tuple[torch.Tensor | None, tuple[int, ...]]:
    """(keyframe latents [B, 16, K, H, W] raw | None, their low-res latent frames) of a base sampler's LATENT."""
    samples = latent.get(KEYFRAME_SAMPLES)
    if samples is None:
        return None, ()
    return samples, tuple(int(i) for i in latent.get(KEYFRAME_INDICES, ()))


class SkyReelsV4RefinerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4RefinerLoader",
            display_name="SkyReels V4 Refiner Loader",
            category=CATEGORY,
            description="Loads the SkyReels-V4 refiner: a video-only V4 model (our documented key layout, config in "
            "the safetensors metadata) whose attention runs in 3-D windows. The official refiner is not released; "
            "files in this layout load, and any V4 file with a video tower runs as a (dense) refiner.",
            inputs=[
                io.Combo.Input("model_name", options=bridge.list_models("diffusion_models"),
                               tooltip="The refiner file in ComfyUI/models/diffusion_models."),
                io.Combo.Input("weight_dtype", options=AV_WEIGHT_DTYPES, default="default",
                               tooltip="Weight and compute dtype. default: bf16 on GPUs that support it (fp16, else "
                               "fp32; fp32 on CPU)."),
                io.Combo.Input("attention", options=ATTENTION_CHOICES, default="auto",
                               tooltip="Attention kernel (each window is one call). auto uses flash-attn when "
                               "importable on CUDA, else PyTorch SDPA."),
                io.Combo.Input("sparse_attention", options=SPARSE_CHOICES, default="checkpoint",
                               tooltip="checkpoint: the attention windows stored in the file (about 11x fewer "
                               "attention FLOPs at 1080p x2 than dense). dense: every token sees every token "
                               "(for comparison; far slower at 1080p)."),
            ],
            outputs=[SkyReelsV4Refiner.Output(display_name="refiner")],
        )

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str, attention: str, sparse_attention: str) -> io.NodeOutput:
        from ..skyreels_core.pipelines.refine import check_refiner_model

        bridge.check_choice("sparse_attention", sparse_attention, SPARSE_CHOICES)
        module = load_av_module(model_name, weight_dtype, attention)
        check_refiner_model(module)
        if sparse_attention == "dense":
            module.config = dataclasses.replace(module.config, attention_window=(0, 0, 0))
        elif not module.config.windowed:
            log.info("SkyReels: %s has no attention windows in its metadata; the refiner runs dense.", model_name)
        return io.NodeOutput(bridge.manage(module, "dit", model_name))


class SkyReelsV4Keyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4Keyframes",
            display_name="SkyReels V4 Keyframes",
            category=CATEGORY,
            description="Asks SkyReels V4 Sampler for high-resolution keyframes, generated together with the "
            "low-resolution video (the first stage of the paper's base + refiner path). Connect to the sampler's "
            "keyframes input; SkyReels V4 Refine then rebuilds the whole video at this size around them.",
            inputs=[
                io.Int.Input("width", default=1920, min=16, max=MAX_SIZE, step=16,
                             tooltip="Keyframe (and final video) width in pixels; a multiple of 16, at least the "
                             "low-res width."),
                io.Int.Input("height", default=1088, min=16, max=MAX_SIZE, step=16,
                             tooltip="Keyframe (and final video) height in pixels; a multiple of 16 (1088 for "
                             "1080p), at least the low-res height."),
                io.Int.Input("count", default=6, min=0, max=MAX_KEYFRAMES,
                             tooltip="How many keyframes, evenly spaced, the first and last frame included (the "
                             "paper does not say; 6 for 81 frames is one every ~1 s at 16 fps). 0: none (the "
                             "refiner then works from the low-res video alone)."),
            ],
            outputs=[SkyReelsV4KeyframeRequest.Output(display_name="keyframes")],
        )

    @classmethod
    def execute(cls, width: int, height: int, count: int) -> io.NodeOutput:
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or value < 16 or value % 16:
                raise SkyReelsInputError(f"{name} = {bridge.shown(value)} must be a multiple of 16 (pixels); "
                                         f"nearest valid value: {max(16, round(value / 16) * 16)}.")
        if not isinstance(count, int) or not 0 <= count <= MAX_KEYFRAMES:
            raise SkyReelsInputError(f"count = {bridge.shown(count)} must be 0..{MAX_KEYFRAMES}.")
        return io.NodeOutput(V4Keyframes(count=count, width=width, height=height))


def sampler_keyframes(request: V4Keyframes | None, shape: VideoLatentShape):
    """The core Keyframes request of the base sampler (None when none asked), checked against the latent."""
    from ..skyreels_core.conditioning.refine import Keyframes

    if request is None or request.count == 0:
        return None
    low_h, low_w = shape.pixel_size
    if request.height < low_h or request.width < low_w:
        raise SkyReelsInputError(
            f"The keyframes ({request.width}x{request.height}) must be at least the video's size ({low_w}x{low_h}): "
            "they are the high-resolution frames the refiner builds on.")
    if request.count > shape.frames:
        raise SkyReelsInputError(f"{request.count} keyframes for a video of {shape.frames} latent frames "
                                 f"({shape.pixel_frames} frames): ask for at most {shape.frames}.")
    indices = plan_keyframes(shape.frames, request.count)
    return Keyframes(indices, request.height // SPACE_STRIDE, request.width // SPACE_STRIDE)


def _keep_inputs(vae, video, mask, shape: VideoLatentShape):
    """(keep latent, keep mask) on the refined grid from a source hi-res video and a MASK (1 = refine, 0 = keep):
    the V4 inpainting condition (one encoding and mask path for both), a missing mask keeping the whole video."""
    if video is None and mask is None:
        return None, None
    if video is None or vae is None:
        raise SkyReelsInputError("Keeping regions needs keep_video and vae (the source video is VAE-encoded at the "
                                 "refined size); connect both, or disconnect mask.")
    if isinstance(video, torch.Tensor) and video.ndim == 4 and video.shape[0] != shape.pixel_frames:
        raise SkyReelsInputError(
            f"keep_video has {video.shape[0]} frames but the refined video has {shape.pixel_frames} (at the doubled "
            "frame rate when double_fps is on); give one frame per output frame.")
    if mask is None:
        mask = torch.zeros(1, *video.shape[1:3])  # nothing to refine: the whole source is kept
    bridge.load_for_use(vae)
    with torch.no_grad():
        condition = condition_inpaint(vae.runner, video, mask, shape)
    return condition.latent, condition.mask


class SkyReelsV4Refine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4Refine",
            display_name="SkyReels V4 Refine",
            category=CATEGORY,
            description="SkyReels-V4 refiner: the base sampler's low-resolution video (and its high-resolution "
            "keyframes) -> the video at width x height and, with double_fps, twice the frame rate (16 -> 32 fps). "
            "The refiner sees the low-res video stretched to the new size and frame count, with the keyframes put "
            "in place (kept exactly). The audio is passed through untouched. Output -> SkyReels V4 Decode (use "
            "tile_size at 1080p).",
            inputs=[
                SkyReelsV4Refiner.Input("refiner", tooltip="From SkyReels V4 Refiner Loader."),
                SkyReelsAVTextEmbeds.Input("text_embeds", tooltip="From SkyReels V4 Text Encode: the same prompt "
                                           "as the base sampler."),
                io.Latent.Input("latent", tooltip="The joint latent from SkyReels V4 Sampler (with keyframes when "
                                "its keyframes input was connected)."),
                io.Int.Input("width", default=1920, min=16, max=MAX_SIZE, step=16,
                             tooltip="Output width in pixels (multiple of 16, at least the input's). With keyframes: "
                             "their width."),
                io.Int.Input("height", default=1088, min=16, max=MAX_SIZE, step=16,
                             tooltip="Output height in pixels (multiple of 16; 1088 for 1080p). With keyframes: "
                             "their height."),
                io.Boolean.Input("double_fps", default=True,
                                 tooltip="Twice the frame rate (81 frames at 16 fps -> 161 at 32 fps, the same "
                                 "duration). Off: same frames, higher resolution only."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed of the refined video."),
                io.Int.Input("steps", default=30, min=1, max=1000, tooltip="Sampling steps."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance with the negative prompt; 1 = off (one model pass "
                               "per step)."),
                io.Float.Input("shift", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Flow-matching timestep shift."),
                solver_input("euler", "euler: first-order flow Euler. unipc: FlowUniPC multistep."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01, round=0.001,
                               tooltip="1: start from noise (the guide enters through the refiner's condition "
                               "channels). Lower: start from the stretched low-res video, noised (refine strength)."),
                SkyReelsVAE.Input("vae", optional=True, tooltip="Needed with keep_video: the Wan2.1 VAE that encodes "
                                  "it."),
                io.Image.Input("keep_video", optional=True,
                               tooltip="A high-resolution source video to keep (one frame per OUTPUT frame): where "
                               "mask is 0 it comes back unchanged, where 1 it is refined. Without mask: kept whole."),
                io.Mask.Input("mask", optional=True, tooltip="With keep_video: 1 = refine, 0 = keep (one mask, or one "
                              "per output frame)."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The refined joint latent (video at the new "
                                      "size and fps, the same audio) -> SkyReels V4 Decode.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, refiner, text_embeds: AVTextEmbeds, latent: dict, width: int, height: int, double_fps: bool,
                seed: int, steps: int, cfg: float, shift: float, scheduler: str, denoise: float, vae=None,
                keep_video=None, mask=None) -> io.NodeOutput:
        from ..skyreels_core.models.audio_codec import num_samples_for
        from ..skyreels_core.pipelines.refine import check_refiner_model, refine_video

        shape, fps, _ = av_geometry(latent)
        check_sampler_values(steps, shift, scheduler, denoise, cfg=cfg)
        module = refiner.module
        check_refiner_model(module)
        check_text_width(text_embeds, module.config.text_dim)
        for name, value, low in (("width", width, shape.pixel_size[1]), ("height", height, shape.pixel_size[0])):
            if value % 16 or value < low:
                raise SkyReelsInputError(f"{name} = {value} must be a multiple of 16 and at least the input's {low}.")
        low_h, low_w = shape.pixel_size
        if abs(width * low_h / (height * low_w) - 1) > 0.01:
            log.warning("SkyReels V4 Refine: %dx%d is not the aspect ratio of the %dx%d video; the picture is "
                        "stretched (give the base latent the same aspect, e.g. half the size).", width, height, low_w,
                        low_h)
        factor = 2 if double_fps else 1
        timing = refine_timing(shape.frames, fps, factor)
        target = VideoLatentShape(shape.batch, 16, timing.latent_frames, height // SPACE_STRIDE, width // SPACE_STRIDE)
        keyframes, indices = keyframes_of(latent)
        if keyframes is not None and tuple(keyframes.shape[3:]) != (target.height, target.width):
            raise SkyReelsInputError(
                f"The latent's keyframes are {keyframes.shape[4] * SPACE_STRIDE}x{keyframes.shape[3] * SPACE_STRIDE} "
                f"but width x height is {width}x{height}: set the same size here and in SkyReels V4 Keyframes.")
        keep_latent, keep_mask = _keep_inputs(vae, keep_video, mask, target)
        device = bridge.load_for_use(refiner)
        with bridge.StepProgress(steps, cls.hidden.unique_id, device) as progress:
            video = refine_video(
                module, low_latent=bridge.latent_to_model(latent["samples"]), context=text_embeds.positive,
                negative_context=text_embeds.negative, height=target.height, width=target.width,
                temporal_factor=factor, keyframes=None if keyframes is None else bridge.latent_to_model(keyframes),
                keyframe_indices=indices, keep_latent=keep_latent, keep_mask=keep_mask, steps=steps, shift=shift,
                cfg=cfg, seed=seed, solver=scheduler, fps=fps, denoise=denoise, callback=progress)
        result = {k: v for k, v in latent.items() if k not in ("samples", KEYFRAME_SAMPLES, KEYFRAME_INDICES,
                                                                "noise_mask")}
        result.update({"samples": bridge.latent_from_model(video), "fps": float(timing.fps),
                       AUDIO_KEY: latent[AUDIO_KEY], LENGTH_KEY: num_samples_for(timing.pixel_frames / timing.fps)})
        return io.NodeOutput(result)
