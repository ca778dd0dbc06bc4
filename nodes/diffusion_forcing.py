"""SkyReels-V2 diffusion forcing (DF): long text/image-to-video, video extension, start/end frames, chaining.

One node, `SkyReelsDFSampler`, over `skyreels_core.pipelines.diffusion_forcing`:
- the whole video is ONE latent sequence, generated window by window (base_num_frames each); every window starts
  with the last overlap_history frames of the previous one as its clean context (kept in latent space);
- everything the user can get wrong (sizes, overlap >= base, block sizes, a clip of the wrong size) is checked
  by `plan_df` and `df_start` BEFORE any VAE or model call, so the error appears before any progress;
- progress counts every model step of every window (one ComfyUI progress bar; Cancel stops within one step),
  with a latent preview of the current window and a "window k/n" status line.

Outputs: `latent` (LATENT with "num_frames", which SkyReels VAE Decode honours so the video has exactly
num_frames frames) and `tail` (LATENT: the last overlap_history frames, clean, for the `extend_latent` input of
another DF sampler; no decode / re-encode, so chaining adds no colour drift).
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..skyreels_core.conditioning.df import df_end_latent, df_prefix_latents, df_start, df_tail
from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.pipelines.diffusion_forcing import DFPlan, DFSettings, generate_df_video, plan_df
from ..skyreels_core.sampling.loop import SOLVERS
from ..skyreels_core.shapes import SPACE_STRIDE, check_size, check_video_memory, latent_frames, pixel_frames
from . import comfy_bridge as bridge
from .sampler import LATENT_CHANNELS, solver_input
from .types import SkyReelsModel, SkyReelsTextEmbeds, SkyReelsVAE

log = logging.getLogger("SkyReels")

MAX_FRAMES = 100_001
CATEGORY = "SkyReels/Diffusion Forcing"


# ------------------------------------------------------------------------------------------------- inputs


def _widgets() -> list[io.Input]:
    """The DF sampler's widgets, in their saved order (a public contract: append new ones at the end only)."""
    return [
        io.Int.Input("width", default=960, min=16, max=4096, step=16,
                     tooltip="Video width in pixels (multiple of 16). SkyReels-V2 540P is 960x544, 720P 1280x720."),
        io.Int.Input("height", default=544, min=16, max=4096, step=16,
                     tooltip="Video height in pixels (multiple of 16)."),
        io.Int.Input("num_frames", default=257, min=1, max=MAX_FRAMES,
                     tooltip="Length of the finished video in frames, any number (257 = 10 s, 737 = 30 s at 24 "
                     "fps). Longer than base_num_frames, it is made in overlapping windows, one after the "
                     "other. A start image or the frames of extend_video / extend_latent count toward it."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed: the same seed and settings give the same video, window for window."),
        io.Int.Input("steps", default=30, min=1, max=1000,
                     tooltip="Denoising steps per frame (reference: 30; 50 for the best detail). Each window "
                     "takes this many model steps (more with ar_step > 0)."),
        io.Float.Input("cfg", default=6.0, min=0.0, max=30.0, step=0.1, round=0.01,
                       tooltip="How strongly the prompt is followed (classifier-free guidance). 1 ignores the "
                       "negative prompt and runs twice as fast. Reference: 6.0 text-to-video, 5.0 image-to-video."),
        io.Float.Input("shift", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Spends more of the steps on the overall layout (higher) or on fine detail "
                       "(lower). Reference: 8.0 text-to-video, 5.0 image-to-video."),
        solver_input("unipc", "unipc: the reference solver (best at 30 steps). euler: simpler, needs more steps."),
        io.Int.Input("base_num_frames", default=97, min=5, max=1025, step=4,
                     tooltip="Frames the model makes at once (one window; 4n+1). 97 for 540P, 121 for 720P; "
                     "lower (77, 57) to save memory, at the cost of more windows and seams."),
        io.Int.Input("overlap_history", default=17, min=1, max=1021, step=4,
                     tooltip="Frames each window re-uses from the end of the previous one so motion and look "
                     "continue across the seam (4n+1, smaller than base_num_frames). More = smoother seams, "
                     "fewer new frames per window. Reference: 17."),
        io.Int.Input("ar_step", default=0, min=0, max=1000,
                     tooltip="0: all frames of a window develop together (fastest). 5: each block of frames starts "
                     "a few steps after the one before, so later frames follow earlier ones - more natural "
                     "cause-and-effect motion and more consistent long shots, but slower. Use with "
                     "causal_block_size 5."),
        io.Int.Input("causal_block_size", default=1, min=1, max=64,
                     tooltip="Frames (in groups of 4, latent frames) that start together when ar_step > 0. 1 "
                     "with ar_step 0; 5 with ar_step 5. Every window and overlap must split into whole blocks: "
                     "the error lists frame counts that do."),
        io.Int.Input("addnoise_condition", default=20, min=0, max=100,
                     tooltip="A touch of noise on the frames carried into each window, so the new window does not "
                     "copy their flaws and the seam blends. 20 is recommended; above 50 the seam can jump; 0 "
                     "carries them exactly."),
        io.Int.Input("fps", default=24, min=1, max=120,
                     tooltip="Frame rate the DF-1.3B model is told to animate for (16 gives the 16 fps look, "
                     "anything else the 24 fps look; other models ignore it). Set Create Video to the same fps."),
        io.Float.Input("color_match", default=0.0, min=0.0, max=1.0, step=0.05, round=0.01,
                       tooltip="Pulls the colours and brightness of every later window back to the first one, "
                       "fixing the slow colour drift of long videos. 0 = off (reference), 0.5-1 for long shots."),
    ]


def _optional_inputs() -> list[io.Input]:
    return [
        io.Image.Input("start_image", optional=True,
                       tooltip="Image-to-video: the first frame (center-cropped to the video size). Use with "
                       "causal_block_size 1."),
        io.Image.Input("extend_video", optional=True,
                       tooltip="Frames of an existing clip to continue (e.g. Load Video -> Get Video Components), "
                       "at the video's width x height. The output is the clip followed by the new frames; "
                       "with a frame count that is not 4n+1 the first 1-3 frames are dropped."),
        io.Image.Input("end_image", optional=True,
                       tooltip="A frame the video should arrive at: the last window ends on it."),
        io.Latent.Input("extend_latent", optional=True,
                        tooltip="Continue another DF sampler: connect its `tail` (only the context; this output "
                        "then starts with those frames) or its `latent` (this output is then the whole video). "
                        "No decode / re-encode, so no colour shift."),
    ]


# ------------------------------------------------------------------------------------------------ adapters


def make_settings(steps, cfg, shift, scheduler, base_num_frames, overlap_history, ar_step, causal_block_size,
                  addnoise_condition, fps, color_match) -> DFSettings:
    return DFSettings(steps=steps, shift=shift, guidance_scale=cfg, ar_step=ar_step,
                      causal_block_size=causal_block_size, base_num_frames=base_num_frames,
                      overlap_history=overlap_history, addnoise_condition=float(addnoise_condition), fps=fps,
                      solver=scheduler, color_match=color_match)


def check_model(model) -> None:
    in_dim = getattr(getattr(model.module, "config", None), "in_dim", LATENT_CHANNELS)
    if in_dim != LATENT_CHANNELS:
        raise SkyReelsInputError(
            f"diffusion forcing needs a SkyReels-V2 DF (or T2V) model with 16 input channels; this one has {in_dim} "
            "(an image-to-video model). Load SkyReels-V2-DF-*; give the first frame through start_image."
        )


def vae_encoder(vae):
    """pixels [1, 3, F, H, W] in [-1, 1] -> normalised latents (float32, CPU), with a Cancel point per latent frame."""

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        device = bridge.load_for_use(vae)
        progress = bridge.SimpleProgress(latent_frames(pixels.shape[2]))
        with torch.no_grad():
            return vae.runner.encode(pixels.to(device), callback=progress).float().cpu()

    return encode


class _DFProgress:
    """The core callback(done, total, x0) over all windows -> ComfyUI progress bar, preview and 'window k/n'."""

    def __init__(self, plan: DFPlan, node_id, device):
        self.ends = []
        for w in plan.windows:
            self.ends.append((self.ends[-1] if self.ends else 0) + w.rows)
        self.inner = bridge.StepProgress(plan.total_steps, node_id, device)

    def __call__(self, done: int, total: int, x0: torch.Tensor) -> None:
        window = next(i for i, end in enumerate(self.ends) if done <= end)
        self.inner(done, total, x0[:1], label=f"window {window + 1}/{len(self.ends)}")

    def __enter__(self) -> _DFProgress:
        return self

    def __exit__(self, *exc) -> bool:
        return self.inner.__exit__(*exc)  # clears the status line on Cancel or an error


# --------------------------------------------------------------------------------------------------- node


class SkyReelsDFSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsDFSampler",
            display_name="SkyReels DF Sampler (long video)",
            category=CATEGORY,
            description="SkyReels-V2 diffusion forcing: videos of any length from a prompt, a start image, or an "
            "existing clip to continue, optionally ending on an end image. Long videos are made in overlapping "
            "windows of base_num_frames; each continues from the last overlap_history frames of the one before. "
            "Settings are checked before anything runs. Outputs the whole video latent (decode with SkyReels VAE "
            "Decode: exactly num_frames frames) and its last frames (tail) to chain another DF sampler.",
            inputs=[
                SkyReelsModel.Input("model", tooltip="A SkyReels-V2 DF model from SkyReels Model Loader."),
                SkyReelsTextEmbeds.Input("text_embeds", tooltip="The prompt, from SkyReels Text Encode."),
                SkyReelsVAE.Input("vae", tooltip="From SkyReels VAE Loader; encodes the start/end image or the "
                                  "clip to continue (unused for plain text-to-video)."),
                *_widgets(),
                *_optional_inputs(),
            ],
            outputs=[
                io.Latent.Output(display_name="latent",
                                 tooltip="The whole video (clip or start image included) -> SkyReels VAE Decode."),
                io.Latent.Output(display_name="tail",
                                 tooltip="The last overlap_history frames -> extend_latent of the next DF sampler."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds, vae, width: int, height: int, num_frames: int, seed: int, steps: int,
                cfg: float, shift: float, scheduler: str, base_num_frames: int, overlap_history: int, ar_step: int,
                causal_block_size: int, addnoise_condition: int, fps: int, color_match: float,
                start_image=None, extend_video=None, end_image=None, extend_latent=None) -> io.NodeOutput:
        # 1. everything that can be wrong, before any VAE or model call
        check_size(width, height)
        bridge.check_choice("scheduler", scheduler, list(SOLVERS))
        check_model(model)
        settings = make_settings(steps, cfg, shift, scheduler, base_num_frames, overlap_history, ar_step,
                                 causal_block_size, addnoise_condition, fps, color_match)
        given_latent = None if extend_latent is None else bridge.latent_to_model(extend_latent["samples"]).cpu()
        start = df_start(width, height, start_image, extend_video, given_latent)
        plan = plan_df(num_frames, settings, start.count, end_image is not None)
        check_video_memory(1, pixel_frames(plan.latent_frames), height, width, "The DF video")
        # 2. encode the images / clip, then sample every window
        encode = vae_encoder(vae)
        prefix = df_prefix_latents(encode, start, width, height, start_image, extend_video, given_latent)
        if start.dropped_frames:
            log.info("SkyReels DF: extend_video has %d frames; using the last %d (4n+1).", extend_video.shape[0],
                     extend_video.shape[0] - start.dropped_frames)
        end = df_end_latent(encode, end_image, width, height)
        device = bridge.load_for_use(model)
        log.info("SkyReels DF: %d frames in %d window(s) %s, %d model steps", num_frames, len(plan.windows),
                 [w.length for w in plan.windows], plan.total_steps)
        with _DFProgress(plan, cls.hidden.unique_id, device) as progress:
            result = generate_df_video(
                model.module, text_embeds.positive.to(device), num_frames, (height // SPACE_STRIDE, width // SPACE_STRIDE),
                settings, negative_context=None if text_embeds.negative is None else text_embeds.negative.to(device),
                prefix_latents=None if prefix is None else prefix.to(device),
                end_latent=None if end is None else end.to(device), seed=seed,
                callback=progress, device=device, output_device="cpu",
            )
        tail, tail_frames = df_tail(result.latents.cpu(), overlap_history)
        return io.NodeOutput({"samples": bridge.latent_from_model(result.latents.cpu()), "num_frames": num_frames},
                             {"samples": bridge.latent_from_model(tail), "num_frames": tail_frames})
