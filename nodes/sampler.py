"""The SkyReels-V2 text/image-to-video sampler node (flow matching, UniPC or Euler, CFG)."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..skyreels_core.errors import SkyReelsInputError
from ..skyreels_core.pipelines.video import check_guidance, sample_video
from ..skyreels_core.sampling.loop import SOLVERS
from ..skyreels_core.sampling.schedules import check_schedule
from . import comfy_bridge as bridge
from .types import ImageCondition, SkyReelsImageCond, SkyReelsModel, SkyReelsTextEmbeds

LATENT_CHANNELS = 16


def solver_input(default: str, tooltip: str) -> io.Combo.Input:
    """The solver combo of every sampler node, listing the core registry. Its name stays "scheduler" because saved
    workflows and API prompts address inputs by name."""
    return io.Combo.Input("scheduler", options=list(SOLVERS), default=default, tooltip=tooltip)


def check_sampler_values(steps: int, shift: float, scheduler: str, denoise: float = 1.0, **guidance: float) -> None:
    """The sampler widgets a model call would choke on (NaN passes ComfyUI's range check), before the model loads."""
    bridge.check_choice("scheduler", scheduler, list(SOLVERS))
    check_schedule(steps, shift, denoise)
    check_guidance(**guidance)


def check_inputs(model_in_dim: int | None, samples: torch.Tensor, image_cond: ImageCondition | None,
                 df_model: bool = False) -> None:
    """Raise SkyReelsInputError (saying what to change) when latent, model kind and image condition disagree."""
    if samples.ndim != 5 or samples.shape[1] != LATENT_CHANNELS:
        raise SkyReelsInputError(
            f"latent must be a Wan2.1 video latent [B, 16, F, h, w]; got shape {list(samples.shape)}. "
            "Use SkyReels Empty Video Latent or SkyReels Image To Video."
        )
    if df_model:
        raise SkyReelsInputError(
            "This is a SkyReels-V2 DF (diffusion forcing) model with a frame-rate input: use it with SkyReels DF "
            "Sampler (long video), which sets fps. SkyReels Sampler takes the T2V and I2V models."
        )
    needs_image = model_in_dim is not None and model_in_dim > LATENT_CHANNELS
    if needs_image and image_cond is None:
        raise SkyReelsInputError(
            "This is an image-to-video model: connect image_cond from SkyReels Image To Video, "
            "or load a T2V model for text-to-video."
        )
    if image_cond is None:
        return
    if model_in_dim == LATENT_CHANNELS:
        raise SkyReelsInputError(
            "image_cond is connected but the model is a text-to-video model; load an I2V model "
            "(e.g. SkyReels-V2-I2V-*) or disconnect image_cond."
        )
    if tuple(image_cond.y.shape[2:]) != tuple(samples.shape[2:]):
        raise SkyReelsInputError(
            f"image_cond was built for latent size {list(image_cond.y.shape[2:])} (F, h, w) but the latent is "
            f"{list(samples.shape[2:])}; use the latent output of the same SkyReels Image To Video node."
        )


class SkyReelsSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsSampler",
            display_name="SkyReels Sampler",
            category="SkyReels/sampling",
            description="Samples a SkyReels-V2 T2V/I2V video latent with the flow-matching UniPC (reference) or "
            "Euler solver and classifier-free guidance. Shows a preview, step time and ETA while it runs.",
            inputs=[
                SkyReelsModel.Input("model", tooltip="From SkyReels Model Loader."),
                SkyReelsTextEmbeds.Input("text_embeds", tooltip="From SkyReels Text Encode."),
                io.Latent.Input("latent", tooltip="Video latent to fill: SkyReels Empty Video Latent (T2V) or "
                                "the latent of SkyReels Image To Video (I2V); with denoise < 1 its content is kept."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed; the same seed gives the same video on any device."),
                io.Int.Input("steps", default=30, min=1, max=1000, tooltip="Sampling steps (reference: 30-50)."),
                io.Float.Input("cfg", default=6.0, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale; 1 disables the negative prompt "
                               "(2x faster). Reference: 6.0 T2V, 5.0 I2V."),
                io.Float.Input("shift", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Flow-matching timestep shift; higher spends more steps at high noise. "
                               "Reference: 8.0 T2V, 5.0 I2V."),
                solver_input("unipc", "unipc: the reference FlowUniPC multistep solver. euler: first-order "
                             "flow Euler."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01,
                               tooltip="1 generates from pure noise; lower keeps more of the input latent "
                               "(video-to-video)."),
                SkyReelsImageCond.Input("image_cond", optional=True,
                                        tooltip="From SkyReels Image To Video; required by I2V models."),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, text_embeds, latent: dict, seed: int, steps: int, cfg: float, shift: float,
                scheduler: str, denoise: float, image_cond: ImageCondition | None = None) -> io.NodeOutput:
        samples = latent["samples"]
        check_sampler_values(steps, shift, scheduler, denoise, cfg=cfg)
        config = getattr(model.module, "config", None)
        check_inputs(getattr(config, "in_dim", None), samples, image_cond, getattr(config, "inject_sample_info", False))
        device = bridge.load_for_use(model)
        with bridge.StepProgress(steps, cls.hidden.unique_id, device) as progress:
            out = sample_video(
                model.module, bridge.latent_to_model(samples), positive=text_embeds.positive.to(device),
                negative=None if text_embeds.negative is None else text_embeds.negative.to(device),
                steps=steps, cfg=cfg, shift=shift, seed=seed, solver=scheduler, denoise=denoise,
                image_cond=image_cond, callback=progress,
            )
        result = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask")}
        result["samples"] = bridge.latent_from_model(out)
        return io.NodeOutput(result)

