"""SkyReels-V4 nodes: joint video + audio generation, image-to-video, extension, start/end, inpainting/editing and
in-context references, over skyreels_core's AV MMDiT (models/av_mmdit.py) and pipeline (pipelines/t2av.py).

The joint latent is ONE ComfyUI LATENT dict (our choice; documented in the README):
    {"samples": video [B, 16, F, h, w] in the raw Wan2.1-VAE space (like core Wan latents and the V2 nodes),
     "audio_samples": raw audio-codec latents [B, 40, T_a], "fps": float, "audio_num_samples": int}
ComfyUI 0.3.75 has comfy.nested_tensor.NestedTensor but no node that builds or splits one, and core latent nodes
(Save Latent: `.contiguous()`, batch/crop nodes) fail on it; with an extra key every core node that copies the dict
keeps working, and nodes that only read "samples" see an ordinary Wan video latent (Save/Load Latent keep the video
only; the V4 decoders then say the audio is missing). The audio length always follows the video: frames / fps s.
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..skyreels_core.conditioning.v4 import TASKS, build_task_condition, encode_audio, encode_references
from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.shapes import VideoLatentShape
from . import comfy_bridge as bridge
from .decode import decode_video
from .loaders import ATTENTION_CHOICES, WEIGHT_DTYPES, resolve_attention
from .sampler import check_sampler_values, solver_input
from .types import (
    AVTextEmbeds,
    SkyReelsAudioCodec,
    SkyReelsAVModel,
    SkyReelsAVTextEmbeds,
    SkyReelsMLLM,
    SkyReelsV4Cond,
    SkyReelsV4KeyframeRequest,
    SkyReelsV4Refs,
    SkyReelsVAE,
    V4Condition,
    V4Keyframes,
    V4References,
)
from .v4_audio import AUDIO_KEY, LENGTH_KEY, audio_latent_of, audio_value, decode_audio

log = logging.getLogger("SkyReels")

CATEGORY = "SkyReels/V4"
AV_WEIGHT_DTYPES = [k for k, (_, fp8) in WEIGHT_DTYPES.items() if fp8 is None]  # the AV loader has no fp8 path
STRUCTURED_TAGS = ("Structured tags (kept intact, as in the SkyReels-V4 captions): <dialogue>spoken words</dialogue>, "
                   "<sfx>sound effects</sfx>, <bgm>background music</bgm>, <singing>sung lyrics</singing>, "
                   "<text>on-screen text</text>.")
DEFAULT_PROMPT = ("A street musician plays an acoustic guitar on a rainy evening, neon reflections on the wet "
                  "pavement, slow push-in. <sfx>rain on the pavement, distant traffic</sfx> <bgm>gentle fingerpicked "
                  "acoustic guitar</bgm> <dialogue>Thank you for stopping by.</dialogue>")
DEFAULT_NEGATIVE = ("blurry, low quality, distorted faces, extra fingers, static frame, watermark, subtitles, "
                    "noisy audio, clipping, muffled speech, out-of-sync lips")
MAX_SIZE, MAX_FRAMES = 4096, 1025


# --------------------------------------------------------------------------------------------- helpers


def av_geometry(latent: dict) -> tuple[VideoLatentShape, float, int]:
    """(video latent shape, fps, audio latent frames) of a joint V4 LATENT; raises saying where to get one."""
    samples, audio, fps = latent.get("samples"), latent.get(AUDIO_KEY), latent.get("fps")
    if audio is None or fps is None:
        raise SkyReelsInputError(
            "This LATENT is not a SkyReels-V4 video+audio latent (it has no 'audio_samples' / 'fps'): use SkyReels "
            "V4 Empty AV Latent.")
    if not isinstance(samples, torch.Tensor) or samples.ndim != 5 or samples.shape[1] != 16:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else None
        raise SkyReelsInputError(f"The video part of the latent must be [B, 16, F, h, w]; got {shape}.")
    audio_latent_of(latent)  # validates the audio part
    if audio.shape[0] != samples.shape[0]:
        raise SkyReelsInputError(f"Video batch {samples.shape[0]} and audio batch {audio.shape[0]} differ; rebuild "
                                 "the latent with SkyReels V4 Empty AV Latent.")
    return VideoLatentShape(*samples.shape), float(fps), int(audio.shape[2])


def _images(image: torch.Tensor | None) -> list[torch.Tensor] | None:
    """IMAGE [N, H, W, C] -> list of N [H, W, 3] tensors (the MLLM's image input), or None."""
    return None if image is None else [frame[..., :3] for frame in image]


def parse_layers(text: str) -> tuple[int, ...]:
    """'-1' or '-1, -8' -> (-1,) / (-1, -8): MLLM hidden-state indices, concatenated on channels."""
    try:
        layers = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        layers = ()
    if not layers:
        raise SkyReelsInputError(f"layers must be comma-separated hidden-state indices such as '-1' or '-1,-8'; got "
                                 f"{bridge.shown(text)}.")
    return layers


def check_text_width(embeds: AVTextEmbeds, text_dim: int) -> None:
    width = embeds.positive.shape[-1]
    if width != text_dim:
        raise SkyReelsInputError(
            f"The text embeddings are {width} wide but this SkyReels-V4 model expects text_dim {text_dim}: load the "
            f"MLLM the model was trained with and set layers so that hidden_size x number of layers = {text_dim}.")


def check_references(refs: V4References | None, shape: VideoLatentShape) -> None:
    if refs is not None and refs.video is not None:
        if refs.video.shape[0] != shape.batch or tuple(refs.video.shape[3:]) != (shape.height, shape.width):
            raise SkyReelsInputError(
                f"The references were built for a latent of batch {refs.video.shape[0]} and size "
                f"{tuple(refs.video.shape[3:])} (h, w) but the latent is {shape.batch}, {(shape.height, shape.width)}: "
                "connect the same latent to SkyReels V4 References and the sampler.")


# --------------------------------------------------------------------------------------------- loaders


def load_av_module(model_name: str, weight_dtype: str, attention: str):
    """An AV MMDiT file of models/diffusion_models on the CPU, in the loader's weight dtype (default: the device's
    compute dtype) and attention backend (the V4 model and refiner loaders)."""
    from ..skyreels_core.models.av_mmdit import load_av_dit

    load_device, _ = bridge.devices("dit")
    dtype = WEIGHT_DTYPES[bridge.check_choice("weight_dtype", weight_dtype, AV_WEIGHT_DTYPES)][0]
    return load_av_dit(bridge.model_path("diffusion_models", model_name),
                       dtype=dtype or bridge.compute_dtype(load_device), device="cpu",
                       attn_backend=resolve_attention(attention))


class SkyReelsV4ModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4ModelLoader",
            display_name="SkyReels V4 Model Loader",
            category=CATEGORY,
            description="Loads a SkyReels-V4 dual-stream audio-video diffusion transformer (our documented key layout, "
            "config in the safetensors metadata; optional model.diffusion_model. prefix). Official V4 weights are not "
            "released: files in this layout (audio+video, video-only or audio-only) load.",
            inputs=[
                io.Combo.Input("model_name", options=bridge.list_models("diffusion_models"),
                               tooltip="The SkyReels-V4 AV DiT file. Files in ComfyUI/models/diffusion_models."),
                io.Combo.Input("weight_dtype", options=AV_WEIGHT_DTYPES, default="default",
                               tooltip="Weight and compute dtype. default: bf16 on GPUs that support it (fp16, else "
                               "fp32; fp32 on CPU). The audio latent statistics always stay fp32."),
                io.Combo.Input("attention", options=ATTENTION_CHOICES, default="auto",
                               tooltip="Attention kernel. auto uses flash-attn when importable on CUDA, else PyTorch "
                               "SDPA; flash_attn falls back to sdpa with a log line if missing."),
            ],
            outputs=[SkyReelsAVModel.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str, attention: str) -> io.NodeOutput:
        return io.NodeOutput(bridge.manage(load_av_module(model_name, weight_dtype, attention), "dit", model_name))


class SkyReelsV4TextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4TextEncoderLoader",
            display_name="SkyReels V4 Text Encoder Loader (MLLM)",
            category=CATEGORY,
            description="Loads the multimodal LLM that encodes SkyReels-V4 prompts (and reference images): a "
            "Hugging Face Qwen2.5-VL / Qwen3-VL folder under models/text_encoders (config.json, weights, tokenizer). "
            "Needs the transformers package; nothing is downloaded.",
            inputs=[
                io.Combo.Input("mllm_name", options=bridge.list_model_dirs("text_encoders"),
                               tooltip="A model folder in ComfyUI/models/text_encoders holding config.json, the "
                               "safetensors weights and the tokenizer/processor files."),
                io.String.Input("layers", default="-1",
                                tooltip="Hidden states fed to the DiT, comma-separated (-1 = last layer; '-1,-8' "
                                "concatenates two). hidden_size x count must equal the DiT's text_dim."),
            ],
            outputs=[SkyReelsMLLM.Output(display_name="mllm")],
        )

    @classmethod
    def execute(cls, mllm_name: str, layers: str) -> io.NodeOutput:
        from ..skyreels_core.encoders.mllm import load_mllm

        load_device, _ = bridge.devices("text_encoder")
        encoder = load_mllm(bridge.model_dir_path("text_encoders", mllm_name), layers=parse_layers(layers),
                            dtype=bridge.compute_dtype(load_device), device="cpu")
        return io.NodeOutput(bridge.manage(_Holder(encoder.model), "text_encoder", mllm_name, encoder))


class _Holder(torch.nn.Module):
    """Wraps a transformers model for ModelPatcher, which assigns `module.device` (read-only on PreTrainedModel).
    Moving the holder moves the wrapped model in place, so the encoder keeps using it."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner


# --------------------------------------------------------------------------------------------- conditioning


class SkyReelsV4TextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4TextEncode",
            display_name="SkyReels V4 Text Encode",
            category=CATEGORY,
            description="Encodes one combined prompt (picture and sound) with the MLLM for both the video and the audio "
            "tower, plus the negative prompt for classifier-free guidance. Optional reference images are shown to "
            "the MLLM with both prompts.",
            inputs=[
                SkyReelsMLLM.Input("mllm", tooltip="From SkyReels V4 Text Encoder Loader."),
                io.String.Input("prompt", multiline=True, default=DEFAULT_PROMPT,
                                tooltip="What the video shows and what it sounds like, in one prompt. " + STRUCTURED_TAGS),
                io.String.Input("negative", multiline=True, default=DEFAULT_NEGATIVE,
                                tooltip="What to steer away from, for picture and sound (used when a cfg > 1)."),
                io.Image.Input("images", optional=True,
                               tooltip="Reference images the prompt talks about (each image of the batch is one "
                               "image for the MLLM), e.g. a person's face for 'in the style of @image_1'."),
            ],
            outputs=[SkyReelsAVTextEmbeds.Output(display_name="text_embeds")],
        )

    @classmethod
    def execute(cls, mllm, prompt: str, negative: str, images: torch.Tensor | None = None) -> io.NodeOutput:
        bridge.load_for_use(mllm)
        with torch.no_grad():
            positive = mllm.runner.encode(prompt, _images(images)).float().cpu()
            negative_ctx = mllm.runner.encode(negative, _images(images)).float().cpu()
        return io.NodeOutput(AVTextEmbeds(positive=positive, negative=negative_ctx))


class SkyReelsV4EmptyAVLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4EmptyAVLatent",
            display_name="SkyReels V4 Empty AV Latent",
            category=CATEGORY,
            description="An empty joint latent: video [batch, 16, (frames-1)/4+1, height/8, width/8] and audio "
            "[batch, 40, ceil(frames/fps x 44100 / 1024)], so the sound lasts exactly as long as the video.",
            inputs=[
                io.Int.Input("width", default=832, min=16, max=MAX_SIZE, step=16,
                             tooltip="Video width in pixels; a multiple of 16."),
                io.Int.Input("height", default=480, min=16, max=MAX_SIZE, step=16,
                             tooltip="Video height in pixels; a multiple of 16."),
                io.Int.Input("frames", default=81, min=1, max=MAX_FRAMES, step=4,
                             tooltip="Number of frames; must be 4n+1 (81 = 5.06 s at 16 fps, 121 = 7.56 s)."),
                io.Float.Input("fps", default=16.0, min=1.0, max=120.0, step=1.0, round=0.001,
                               tooltip="Frame rate of the video (SkyReels-V4 trains at 16 fps). Sets the audio "
                               "length (frames / fps seconds) and the audio-video time alignment; give the same fps "
                               "to Create Video (the decoder outputs it)."),
                io.Int.Input("batch", default=1, min=1, max=64, tooltip="Videos sampled at once."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, width: int, height: int, frames: int, fps: float, batch: int) -> io.NodeOutput:
        from ..skyreels_core.models.audio_codec import num_samples_for
        from ..skyreels_core.pipelines.t2av import av_latent_shape

        shape, num_audio = av_latent_shape(frames, fps, height, width, batch)
        return io.NodeOutput({"samples": torch.zeros(shape.as_tuple()), AUDIO_KEY: torch.zeros(batch, 40, num_audio),
                              "fps": float(fps), LENGTH_KEY: num_samples_for(frames / fps)})


class SkyReelsV4TaskCondition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4TaskCondition",
            display_name="SkyReels V4 Task Condition",
            category=CATEGORY,
            description="Builds the SkyReels-V4 video condition (condition latent + keep mask, channel-concatenated "
            "to the noisy latent): t2v (nothing kept), i2v (first frame), extend (the given clip opens the video), "
            "start_end (first and/or last frame), inpaint_edit (the video kept where the mask is 0, regenerated where "
            "it is 1). Images/videos are centre-cropped to the latent's aspect and resized. The audio is always "
            "generated fresh.",
            inputs=[
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader (Wan2.1 video VAE)."),
                io.Latent.Input("latent", tooltip="The SkyReels V4 Empty AV Latent the sampler fills: the condition "
                                "is built for its size, frames and batch."),
                io.Combo.Input("task", options=list(TASKS), default="i2v",
                               tooltip="t2v: text only. i2v: needs start_image. extend: needs video (its frames "
                               "open the output). start_end: start_image and/or end_image. inpaint_edit: needs "
                               "video (same frame count as the latent) and mask."),
                io.Int.Input("extend_frames", default=0, min=0, max=MAX_FRAMES,
                             tooltip="extend only: how many of the video's LAST frames open the output (0 = the "
                             "whole video). Best as 4n+1; must be fewer than the output frames."),
                io.Image.Input("start_image", optional=True, tooltip="First frame (i2v, start_end)."),
                io.Image.Input("end_image", optional=True, tooltip="Last frame (start_end)."),
                io.Image.Input("video", optional=True,
                               tooltip="Video frames (IMAGE batch, e.g. Get Video Components): the clip to extend, "
                               "or the video to inpaint/edit."),
                io.Mask.Input("mask", optional=True,
                              tooltip="inpaint_edit: 1 = regenerate, 0 = keep; one mask per frame or one static "
                              "mask, the video's width and height (e.g. Load Image As Mask)."),
            ],
            outputs=[SkyReelsV4Cond.Output(display_name="condition")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, task: str, extend_frames: int, start_image=None, end_image=None, video=None,
                mask=None) -> io.NodeOutput:
        shape, _, _ = av_geometry(latent)
        bridge.check_choice("task", task, list(TASKS))
        bridge.load_for_use(vae)
        with torch.no_grad():
            condition = build_task_condition(vae.runner, shape, task, start_image=start_image, end_image=end_image,
                                             video=video, mask=mask, extend_frames=extend_frames)
        return io.NodeOutput(V4Condition(task=task, condition=condition))


class SkyReelsV4References(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4References",
            display_name="SkyReels V4 References",
            category=CATEGORY,
            description="In-context references (SkyReels-V4 §3.3): reference images and/or a reference clip are "
            "VAE-encoded and placed before the video at negative times; reference audio (e.g. a voice) likewise "
            "before the audio. They steer identity, style and voice and never appear in the output.",
            inputs=[
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader (Wan2.1 video VAE)."),
                io.Latent.Input("latent", tooltip="The SkyReels V4 Empty AV Latent the sampler fills (references are "
                                "fitted inside its size with grey padding)."),
                io.Image.Input("images", optional=True,
                               tooltip="Reference images; each image of the batch is one reference frame."),
                io.Image.Input("clip", optional=True,
                               tooltip="A reference video clip (IMAGE frames, 4n+1 of them)."),
                io.Audio.Input("audio", optional=True,
                               tooltip="Reference audio (a voice, a sound); needs audio_codec."),
                SkyReelsAudioCodec.Input("audio_codec", optional=True,
                                         tooltip="From SkyReels V4 Audio Codec Loader; required with audio."),
            ],
            outputs=[SkyReelsV4Refs.Output(display_name="references")],
        )

    @classmethod
    def execute(cls, vae, latent: dict, images=None, clip=None, audio=None, audio_codec=None) -> io.NodeOutput:
        shape, _, _ = av_geometry(latent)
        if images is None and clip is None and audio is None:
            raise SkyReelsInputError("SkyReels V4 References has nothing to encode: connect images, clip or audio.")
        if audio is not None and audio_codec is None:
            raise SkyReelsInputError("Reference audio needs audio_codec: connect SkyReels V4 Audio Codec Loader.")
        video_refs = None
        if images is not None or clip is not None:
            bridge.load_for_use(vae)
            with torch.no_grad():
                video_refs = encode_references(vae.runner, None if images is None else [images], clip, shape)
        audio_refs = None
        if audio is not None:
            bridge.load_for_use(audio_codec)
            with torch.no_grad():
                audio_refs = encode_audio(audio_codec.runner, audio, "reference audio")
            audio_refs = audio_refs.expand(shape.batch, -1, -1).contiguous()
        return io.NodeOutput(V4References(video=video_refs, audio=audio_refs))


# --------------------------------------------------------------------------------------------- sampling


class SkyReelsV4Sampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4Sampler",
            display_name="SkyReels V4 Sampler",
            category=CATEGORY,
            description="Samples video and audio together with the SkyReels-V4 AV DiT (flow matching, Euler or UniPC), "
            "with separate video and audio guidance and optional audio-video sync guidance. Shows a preview of the "
            "video, step time and ETA; Cancel stops within one step.",
            inputs=[
                SkyReelsAVModel.Input("model", tooltip="From SkyReels V4 Model Loader."),
                SkyReelsAVTextEmbeds.Input("text_embeds", tooltip="From SkyReels V4 Text Encode."),
                io.Latent.Input("latent", tooltip="From SkyReels V4 Empty AV Latent: sets size, frames, fps, audio "
                                "length and batch (its values are not used; sampling starts from noise)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed (video and audio noise both follow it); same seed, same result on "
                             "any device."),
                io.Int.Input("steps", default=30, min=1, max=1000, tooltip="Sampling steps."),
                io.Float.Input("video_cfg", default=5.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance of the video; 1 = off for the video."),
                io.Float.Input("audio_cfg", default=5.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance of the audio; 1 = off for the audio. With both at 1 "
                               "the negative prompt is not run (faster)."),
                io.Float.Input("sync_scale", default=1.0, min=0.0, max=10.0, step=0.1, round=0.01,
                               tooltip="Audio-video sync guidance: >1 pushes both away from a prediction made without "
                               "the audio<->video cross-attention (tighter lip sync, one extra model pass per step); "
                               "1 = off."),
                io.Float.Input("shift", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Flow-matching timestep shift; higher spends more steps at high noise."),
                solver_input("euler", "euler: first-order flow Euler. unipc: the FlowUniPC multistep solver "
                             "(fewer steps for the same quality)."),
                SkyReelsV4Cond.Input("condition", optional=True,
                                          tooltip="From SkyReels V4 Task Condition (i2v, extend, start_end, "
                                          "inpaint_edit); none = text-to-video+audio."),
                SkyReelsV4Refs.Input("references", optional=True,
                                           tooltip="From SkyReels V4 References (images, clip, audio)."),
                SkyReelsV4KeyframeRequest.Input("keyframes", optional=True,
                                          tooltip="From SkyReels V4 Keyframes: also generate a few high-resolution "
                                          "keyframes with the video, for SkyReels V4 Refine (the two-stage 1080p / "
                                          "32 fps path)."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds: AVTextEmbeds, latent: dict, seed: int, steps: int, video_cfg: float,
                audio_cfg: float, sync_scale: float, shift: float, scheduler: str,
                condition: V4Condition | None = None, references: V4References | None = None,
                keyframes: V4Keyframes | None = None) -> io.NodeOutput:
        from ..skyreels_core.pipelines.t2av import sample_av
        from .v4_refine import KEYFRAME_INDICES, KEYFRAME_SAMPLES, sampler_keyframes

        shape, fps, num_audio = av_geometry(latent)
        check_sampler_values(steps, shift, scheduler, video_cfg=video_cfg, audio_cfg=audio_cfg, sync_scale=sync_scale)
        module = model.module
        model_type = module.config.model_type
        check_text_width(text_embeds, module.config.text_dim)
        check_references(references, shape)
        request = sampler_keyframes(keyframes, shape) if model_type.has_video else None
        device = bridge.load_for_use(model)
        audio_refs = None if references is None or not model_type.has_audio else references.audio
        with bridge.StepProgress(steps, cls.hidden.unique_id, device, preview=model_type.has_video) as progress:
            video, audio, *hires = sample_av(
                module, video_shape=shape if model_type.has_video else None,
                num_audio_latents=num_audio if model_type.has_audio else 0,
                context=text_embeds.positive, negative_context=text_embeds.negative, steps=steps, shift=shift,
                video_cfg=video_cfg, audio_cfg=audio_cfg, sync_scale=sync_scale, solver=scheduler, seed=seed, fps=fps,
                condition=None if condition is None or not model_type.has_video else condition.condition,
                video_refs=None if references is None else references.video, audio_refs=audio_refs, callback=progress,
                keyframes=request,
            )
        result = {k: v for k, v in latent.items()
                  if k not in ("samples", AUDIO_KEY, "noise_mask", KEYFRAME_SAMPLES, KEYFRAME_INDICES)}
        if hires:
            result[KEYFRAME_SAMPLES] = bridge.latent_from_model(hires[0])
            result[KEYFRAME_INDICES] = list(request.indices)
        result["samples"] = latent["samples"] if video is None else bridge.latent_from_model(video)
        result[AUDIO_KEY] = latent[AUDIO_KEY] if audio is None else audio
        return io.NodeOutput(result)


class SkyReelsV4Decode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV4Decode",
            display_name="SkyReels V4 Decode",
            category=CATEGORY,
            description="Decodes a joint latent to frames (IMAGE), a 44.1 kHz waveform (AUDIO, exactly frames / fps "
            "seconds) and the fps. Feed all three to Create Video -> Save Video for an mp4 with sound. A batch is "
            "laid out one video after another, with the audio concatenated the same way.",
            inputs=[
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader (Wan2.1 video VAE)."),
                SkyReelsAudioCodec.Input("audio_codec", tooltip="From SkyReels V4 Audio Codec Loader."),
                io.Latent.Input("latent", tooltip="The joint latent from SkyReels V4 Sampler."),
                io.Int.Input("tile_size", default=0, min=0, max=4096, step=32,
                             tooltip="Decode the video in square tiles of this many pixels (at least 64) to cut "
                             "memory; 0 decodes whole frames."),
                io.Int.Input("tile_overlap", default=64, min=0, max=2048, step=8,
                             tooltip="Pixels two neighbouring tiles share, cross-faded to hide seams; smaller than "
                             "tile_size."),
            ],
            outputs=[io.Image.Output(display_name="images"), io.Audio.Output(display_name="audio"),
                     io.Float.Output(display_name="fps")],
        )

    @classmethod
    def execute(cls, vae, audio_codec, latent: dict, tile_size: int, tile_overlap: int) -> io.NodeOutput:
        from ..skyreels_core.models.audio_codec import num_samples_for

        shape, fps, _ = av_geometry(latent)
        z, length = audio_latent_of(latent)
        length = length or num_samples_for(shape.pixel_frames / fps)
        waveform = decode_audio(audio_codec, z, length)  # [B, 1, S]; first: it refuses an overlong audio
        images = decode_video(vae, latent["samples"], tile_size, tile_overlap)
        waveform = waveform.permute(1, 0, 2).reshape(1, 1, -1)  # batch after batch, like the frames
        return io.NodeOutput(images, audio_value(waveform), fps)

