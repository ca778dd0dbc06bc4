"""SkyReels-V3 nodes: reference-to-video (R2V), single-shot video extension and shot switching, over the recipes of
skyreels_core.pipelines.v3 (research/skyreels_v3.md §5-7, defaults §9).

V3 models are Wan2.1-family files: they load with SkyReels Model Loader / SkyReels VAE Loader and use SkyReels Text
Encode. Each sampler node calls the core's check_* first (nothing is loaded, no progress bar, no VAE or model call on
a bad input), then loads the DiT and the VAE together and runs the recipe with a progress callback (bar = Cancel
point, latent preview, status line). The shot type of a shot switch is a tag in the prompt: SkyReels V3 Shot Prompt
writes it before SkyReels Text Encode, so the text is encoded in one place and the final prompt is visible.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..skyreels_core.pipelines import v3
from . import comfy_bridge as bridge
from .sampler import solver_input
from .types import SkyReelsModel, SkyReelsTextEmbeds, SkyReelsVAE, TextEmbeds

CATEGORY = "SkyReels/V3"
FPS_TIP = "24: every SkyReels-V3 model makes 24 fps video. Connect to Create Video's fps."
SHOT_TYPES = ["none", *v3.SHOT_TAGS, *v3.UNDOCUMENTED_SHOT_TAGS]


# --------------------------------------------------------------------------------------------- shared inputs


def _size_widgets(source: str) -> list[io.Input]:
    return [
        io.Combo.Input("resolution", options=list(v3.ASPECT_RATIO_CONFIG), default="720P",
                       tooltip=f"Output size class. The size is the reference's bucket (ASPECT_RATIO_CONFIG) closest "
                       f"to the aspect ratio of {source}, e.g. 16:9 -> 1280x720 at 720P, 960x544 at 540P, 854x480 "
                       f"(floored to 848x480) at 480P. Reference: 720P. Ignored when width and height are set."),
        io.Int.Input("width", default=0, min=0, max=4096, step=16,
                     tooltip="0: from the resolution bucket (reference). Otherwise the output width in pixels "
                     "(multiple of 16); set height too."),
        io.Int.Input("height", default=0, min=0, max=4096, step=16,
                     tooltip="0: from the resolution bucket (reference). Otherwise the output height in pixels "
                     "(multiple of 16); set width too."),
    ]


def _sampling_widgets(shift: float, reference: str) -> list[io.Input]:
    return [
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed: the same seed and settings give the same video on any device."),
        io.Int.Input("steps", default=8, min=1, max=100,
                     tooltip="Sampling steps. 8 is the reference: the released V3 weights are step-distilled, so "
                     "more steps do not add detail."),
        io.Float.Input("shift", default=shift, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip=f"Flow-matching timestep shift; higher spends more steps at high noise. Reference: "
                       f"{shift} ({reference})."),
    ]


def _cfg_widget(name: str, what: str) -> io.Input:
    return io.Float.Input(name, default=1.0, min=0.0, max=30.0, step=0.1, round=0.01,
                          tooltip=f"{what} 1.0 is the reference (the weights are CFG-distilled): one model call "
                          "per step. Above 1 the negative prompt is used and each step costs more calls.")


def _scheduler(reference: str) -> io.Input:
    return solver_input("unipc", f"unipc: the reference solver ({reference}). euler: first-order flow Euler.")


def _size(width: int, height: int) -> dict:
    """Widget values -> the recipes' width/height (None = from the bucket); one of them 0 is reported by the core."""
    return {"width": width or None, "height": height or None}


def _text(text_embeds: TextEmbeds, device) -> dict:
    negative = text_embeds.negative
    return {"positive": text_embeds.positive.to(device), "negative": None if negative is None else negative.to(device)}


def _cancel_point(done: int, total: int) -> None:
    """The VAE's callback inside a recipe: Cancel is checked after every encode/decode time chunk too."""
    bridge.check_cancel()


def _model_tip(which: str) -> str:
    return f"From SkyReels Model Loader: {which}. A SkyReels-V2 I2V / V3 A2V model is refused (in_dim 36)."


TEXT_TIP = "The prompt, from SkyReels Text Encode (the negative prompt is only used when guidance > 1)."
VAE_TIP = ("From SkyReels VAE Loader: the Wan2.1 VAE (wan_2.1_vae.safetensors, or the diffusers vae/ folder of "
           "SkyReels-V3-R2V put under models/vae; both give the same result).")


# ------------------------------------------------------------------------------------------------------ nodes


class SkyReelsV3ReferenceToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV3ReferenceToVideo",
            display_name="SkyReels V3 Reference To Video",
            category=CATEGORY,
            description="SkyReels-V3 R2V: a video of the people, objects and places in 1-4 reference images, "
            "following the prompt. Each reference is fitted into the video size, padded white and shown to the "
            "model as a clean frame after the video. Outputs the video latent (SkyReels VAE Decode gives exactly "
            "duration x 24 + 1 frames) and fps 24 for Create Video. Inputs are checked before anything runs.",
            inputs=[
                SkyReelsModel.Input("model", tooltip=_model_tip("the SkyReels-V3-R2V transformer (any shard of "
                                    "its transformer/ folder)")),
                SkyReelsTextEmbeds.Input("text_embeds", tooltip=TEXT_TIP),
                SkyReelsVAE.Input("vae", tooltip=VAE_TIP),
                io.Image.Input("reference_1", tooltip="The first reference image (a character, object or "
                               "background); the video size follows its aspect ratio. A batch of N images counts "
                               "as N references (4 at most in all)."),
                *[io.Image.Input(f"reference_{i}", optional=True,
                                 tooltip=f"Optional reference {i}: another character, object or background. "
                                 "Any size: each reference is fitted and padded white on its own.")
                  for i in (2, 3, 4)],
                *_size_widgets("the first reference image"),
                io.Int.Input("duration", default=5, min=1, max=30,
                             tooltip="Seconds of video at 24 fps: duration x 24 + 1 frames (5 s = 121 frames, the "
                             "reference)."),
                *_sampling_widgets(5.0, "R2V, diffusers UniPC flow schedule"),
                _cfg_widget("guidance", "Text guidance (classifier-free guidance on the prompt)."),
                _cfg_widget("image_guidance", "Reference-image guidance of the reference's dual CFG (the "
                            "references against no references); only used when guidance > 1."),
                _scheduler("UniPC"),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The video latent -> SkyReels VAE Decode."),
                     io.Float.Output(display_name="fps", tooltip=FPS_TIP)],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds, vae, reference_1, resolution: str, width: int, height: int, duration: int,
                seed: int, steps: int, shift: float, guidance: float, image_guidance: float, scheduler: str,
                reference_2=None, reference_3=None, reference_4=None) -> io.NodeOutput:
        size = _size(width, height)
        images, _, _ = v3.check_reference_to_video(model.module, [reference_1, reference_2, reference_3, reference_4],
                                                   duration=duration, resolution=resolution, **size)
        device = bridge.load_for_use(model, vae)
        latent = v3.reference_to_video(
            model.module, vae.runner, images, **_text(text_embeds, device), duration=duration, resolution=resolution,
            seed=seed, steps=steps, shift=shift, text_cfg=guidance, image_cfg=image_guidance, solver=scheduler,
            callback=bridge.StepProgress(steps, cls.hidden.unique_id, device), decode=False, **size,
        )
        return io.NodeOutput({"samples": bridge.latent_from_model(latent), "num_frames": duration * v3.FPS + 1},
                             float(v3.FPS))


class SkyReelsV3ExtendVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV3ExtendVideo",
            display_name="SkyReels V3 Extend Video",
            category=CATEGORY,
            description="SkyReels-V3 single-shot extension: continues a clip (e.g. Load Video -> Get Video "
            "Components) in the same shot, 5-30 s more, in chunks of about 5 s (132 frames) that each start from the "
            "last 25 frames so far. Outputs the new frames (or the clip + the new frames) and fps 24. The clip's "
            "audio is not extended: take it from Get Video Components to Create Video yourself (it then covers the "
            "input part only). Inputs are checked before anything runs.",
            inputs=[
                SkyReelsModel.Input("model", tooltip=_model_tip("the transformer/ folder of SkyReels-V3-V2V (any "
                                    "shard), not shot_transformer/")),
                SkyReelsTextEmbeds.Input("text_embeds", tooltip=TEXT_TIP + " Describe how the shot continues."),
                SkyReelsVAE.Input("vae", tooltip=VAE_TIP),
                io.Image.Input("video", tooltip="The clip to extend: its frames (at least 25; the last 25 are the "
                               "condition), any frame rate (the reference does not resample)."),
                *_size_widgets("the clip"),
                io.Int.Input("duration", default=5, min=5, max=30,
                             tooltip="Seconds to add, 5-30 (reference 5): 5 s gives 132 new frames (5.5 s at 24 fps), "
                             "10 s 264; longer videos are made in ~5 s chunks."),
                *_sampling_widgets(8.0, "V2V, Wan FlowUniPC schedule"),
                _cfg_widget("cfg", "Classifier-free guidance."),
                _scheduler("FlowUniPC"),
                io.Boolean.Input("keep_input", default=False,
                                 tooltip="Off (reference): output only the new frames. On: the clip (fitted to the "
                                 "output size) followed by the new frames."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="The new frames -> Create Video."),
                     io.Float.Output(display_name="fps", tooltip=FPS_TIP)],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds, vae, video, resolution: str, width: int, height: int, duration: int,
                seed: int, steps: int, shift: float, cfg: float, scheduler: str, keep_input: bool) -> io.NodeOutput:
        size = _size(width, height)
        chunks = v3.check_extension(model.module, video, duration=duration, resolution=resolution, **size)
        device = bridge.load_for_use(model, vae)
        frames = v3.extend_video(
            model.module, vae.runner, video, **_text(text_embeds, device), duration=duration, resolution=resolution,
            seed=seed, steps=steps, shift=shift, cfg=cfg, solver=scheduler, keep_input=keep_input,
            callback=bridge.PassProgress(steps, len(chunks), cls.hidden.unique_id, device,
                                         lambda k, n: f"chunk {k + 1}/{n}"),
            vae_callback=_cancel_point, **size,
        )
        return io.NodeOutput(frames, float(v3.FPS))


class SkyReelsV3ShotSwitch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsV3ShotSwitch",
            display_name="SkyReels V3 Shot Switch",
            category=CATEGORY,
            description="SkyReels-V3 shot switching: the next shot after a clip (a cut-in, cut-out, reverse shot, "
            "...), 2-5 s, continuing its people and place. The shot type is a tag in the prompt: write the prompt in "
            "SkyReels V3 Shot Prompt, then SkyReels Text Encode. Outputs the new shot's frames (duration x 24 + 1; "
            "with keep_input the clip first) and fps 24. Inputs are checked before anything runs.",
            inputs=[
                SkyReelsModel.Input("model", tooltip=_model_tip("the shot_transformer/ folder of SkyReels-V3-V2V "
                                    "(any shard), not transformer/")),
                SkyReelsTextEmbeds.Input("text_embeds", tooltip=TEXT_TIP + " The prompt starts with the shot tag "
                                         "(SkyReels V3 Shot Prompt)."),
                SkyReelsVAE.Input("vae", tooltip=VAE_TIP),
                io.Image.Input("video", tooltip="The clip before the cut: its frames; the last 9/17/25/33 frames "
                               "(for 2/3/4/5 s) are the condition, so give at least that many."),
                *_size_widgets("the clip"),
                io.Int.Input("duration", default=5, min=2, max=5,
                             tooltip="Seconds of the new shot: 2, 3, 4 or 5 (reference 5 = 121 frames); the only "
                             "lengths the shot model supports."),
                *_sampling_widgets(8.0, "V2V, Wan FlowUniPC schedule"),
                _cfg_widget("cfg", "Classifier-free guidance."),
                _scheduler("FlowUniPC"),
                io.Boolean.Input("keep_input", default=False, optional=True,
                                 tooltip="Off: output only the new shot. On: the clip (fitted to the output size) "
                                 "followed by the new shot, one video with the cut in it (the clip's audio from Get "
                                 "Video Components then lines up with it)."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="The new shot (with keep_input: the clip, then "
                                     "the new shot) -> Create Video."),
                     io.Float.Output(display_name="fps", tooltip=FPS_TIP)],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds, vae, video, resolution: str, width: int, height: int, duration: int,
                seed: int, steps: int, shift: float, cfg: float, scheduler: str,
                keep_input: bool = False) -> io.NodeOutput:
        size = _size(width, height)
        v3.check_shot_switch(model.module, video, duration=duration, resolution=resolution, **size)
        device = bridge.load_for_use(model, vae)
        frames = v3.switch_shot(
            model.module, vae.runner, video, **_text(text_embeds, device), duration=duration, resolution=resolution,
            seed=seed, steps=steps, shift=shift, cfg=cfg, solver=scheduler, keep_input=keep_input,
            callback=bridge.StepProgress(steps, cls.hidden.unique_id, device), vae_callback=_cancel_point, **size,
        )
        return io.NodeOutput(frames, float(v3.FPS))


class SkyReelsV3ShotPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        tags = ", ".join(f"{k} {t}" for k, t in v3.SHOT_TAGS.items())
        guessed = ", ".join(f"{k} {t}" for k, t in v3.UNDOCUMENTED_SHOT_TAGS.items())
        return io.Schema(
            node_id="SkyReelsV3ShotPrompt",
            display_name="SkyReels V3 Shot Prompt",
            category=CATEGORY,
            description="Puts the shot-type tag of SkyReels-V3 shot switching in front of a prompt (cut_in -> "
            "\"[ZOOM_IN_CUT] ...\"). Connect the output to the positive prompt of SkyReels Text Encode, which feeds "
            "SkyReels V3 Shot Switch.",
            inputs=[
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The new shot, described as for any prompt (the reference recommends a "
                                "detailed, LLM-written one)."),
                io.Combo.Input("shot_type", options=SHOT_TYPES, default="cut_in",
                               tooltip=f"The transition. Documented by SkyReels: {tags}. The other README "
                               f"transitions have no published tag; these are guesses: {guessed}. none: the "
                               "prompt unchanged, to type a tag yourself."),
            ],
            outputs=[io.String.Output(display_name="prompt", tooltip="Tag + prompt -> SkyReels Text Encode.")],
        )

    @classmethod
    def execute(cls, prompt: str, shot_type: str) -> io.NodeOutput:
        return io.NodeOutput(v3.shot_prompt(prompt, shot_type))
