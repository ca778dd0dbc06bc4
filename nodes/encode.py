"""Encoder nodes: prompts -> umT5 contexts, images -> CLIP vision tokens."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from . import comfy_bridge as bridge
from .types import (
    ImageEmbeds,
    SkyReelsCLIPVision,
    SkyReelsImageEmbeds,
    SkyReelsTextEmbeds,
    SkyReelsTextEncoder,
    TextEmbeds,
)

# SkyReels-V2 generate_video.py (T2V / I2V) default negative prompt.
DEFAULT_NEGATIVE = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)


class SkyReelsTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsTextEncode",
            display_name="SkyReels Text Encode",
            category="SkyReels/conditioning",
            description="Encodes the positive and negative prompts with umT5-XXL (512 tokens each) for the "
            "SkyReels sampler. The negative prompt is used for classifier-free guidance.",
            inputs=[
                SkyReelsTextEncoder.Input("text_encoder", tooltip="From SkyReels Text Encoder Loader."),
                io.String.Input("positive", multiline=True, default="",
                                tooltip="What the video should show. Longer, concrete descriptions work best."),
                io.String.Input("negative", multiline=True, default=DEFAULT_NEGATIVE,
                                tooltip="What to steer away from (used when cfg > 1). The default is the "
                                "SkyReels-V2 negative prompt."),
            ],
            outputs=[SkyReelsTextEmbeds.Output(display_name="text_embeds")],
        )

    @classmethod
    def execute(cls, text_encoder, positive: str, negative: str) -> io.NodeOutput:
        bridge.load_for_use(text_encoder)
        with torch.no_grad():
            context = text_encoder.runner.encode([positive, negative]).float().cpu()
        return io.NodeOutput(TextEmbeds(positive=context[:1], negative=context[1:2]))


class SkyReelsCLIPVisionEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsCLIPVisionEncode",
            display_name="SkyReels CLIP Vision Encode",
            category="SkyReels/conditioning",
            description="Encodes the start image with CLIP ViT-H/14 (257 tokens, penultimate layer) for "
            "SkyReels-V2 image-to-video models. The image is squashed to 224x224 as in the reference.",
            inputs=[
                SkyReelsCLIPVision.Input("clip_vision", tooltip="From SkyReels CLIP Vision Loader."),
                io.Image.Input("image", tooltip="The image the video starts from (the first one of a batch)."),
            ],
            outputs=[SkyReelsImageEmbeds.Output(display_name="image_embeds")],
        )

    @classmethod
    def execute(cls, clip_vision, image: torch.Tensor) -> io.NodeOutput:
        bridge.load_for_use(clip_vision)
        with torch.no_grad():
            tokens = clip_vision.runner.encode_image(image[:1, ..., :3]).float().cpu()
        return io.NodeOutput(ImageEmbeds(clip_fea=tokens))
