#!/usr/bin/env python3
"""Build the upscaling / frame-rate templates in the real ComfyUI frontend and save them.

    python scripts/make_post_workflows.py            # on the oldest test host (COMFY=oldest, the default)
    COMFY=newest python scripts/layout_workflows.py skyreels_v2_df_upscale skyreels_v4_cinematic   # then lay out

As scripts/make_v3_workflows.py: node by node with LiteGraph in the embedded ComfyUI's page, then real model names
(scripts/templates.py) and the layout (scripts/layout_workflows.py). Thumbnails: scripts/make_thumbnails.py.

- "SkyReels-V2 Long Video to 1080p 48 fps": the DF long-video graph (960x544, 257 frames at 24 fps), then RIFE 4.26
  x2 (48 fps) and Real-ESRGAN x2plus (1920x1088), all on public weights.
- "SkyReels-V4 Cinematic 1080p 32 fps": the V4 text-to-video+audio graph at 960x544 / 81 frames / 16 fps with six
  1920x1088 keyframes, then the refiner (1920x1088, 161 frames at 32 fps) and a tiled decode with the audio.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "scripts", REPO / "tests" / "e2e", REPO / "tests" / "browser"):
    sys.path.insert(0, str(p))

import layout_workflows  # noqa: E402
import make_v4_workflows as v4  # noqa: E402

DF_PROMPT = ("A lone hiker walks along a winding mountain ridge at golden hour, clouds drifting below, the camera "
             "tracking slowly beside her as the valley opens up, cinematic, one continuous shot.")


def note(text: str, column: int, row: int):
    return ("Note", column, row, {"text": text}, "Models and settings")


# key: (node type, column, row, {widget: value}, title or None); layout_workflows.layout() sets the positions
WORKFLOWS = {
    "skyreels_v2_df_upscale": (
        {"model": ("SkyReelsModelLoader", 0, 0, {"model_name": "Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors"},
                   None),
         "te": ("SkyReelsTextEncoderLoader", 0, 1, {"text_encoder_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors"},
                None),
         "vae": ("SkyReelsVAELoader", 0, 2, {"vae_name": "wan_2.1_vae.safetensors"}, None),
         "rife": ("SkyReelsRIFELoader", 0, 3, {"model_name": "rife426.pth"}, None),
         "sr": ("UpscaleModelLoader", 0, 4, {"model_name": "RealESRGAN_x2plus.pth"}, None),
         "text": ("SkyReelsTextEncode", 1, 0, {"positive": DF_PROMPT}, None),
         "df": ("SkyReelsDFSampler", 2, 0, {"seed": 42, "color_match": 0.5}, None),
         "decode": ("SkyReelsVAEDecode", 3, 0, {}, None),
         "interpolate": ("SkyReelsInterpolateFrames", 3, 1, {"fps": 24.0, "multiplier": 2}, None),
         "upscale": ("SkyReelsUpscaleVideo", 4, 0, {}, None),
         "create": ("CreateVideo", 4, 1, {}, None),
         "save": ("SaveVideo", 5, 0, {"filename_prefix": "video/skyreels_v2_df_upscale"}, None),
         "note": note("Public weights: rife426.pth (RIFE 4.26, the file of ComfyUI-Frame-Interpolation) in "
                      "ComfyUI/models/frame_interpolation/, RealESRGAN_x2plus.pth in models/upscale_models/ (Load "
                      "Upscale Model), and the DF files of the V2 templates. 257 frames at 24 fps -> 514 at 48 fps "
                      "(the same 10.7 s) -> 1920x1088. Interpolate before upscaling: RIFE at 960x544 is 4x cheaper. "
                      "The frames of a long 1080p clip take RAM (514 x 1920 x 1088 float frames = 12.9 GB): for "
                      "longer videos lower num_frames or upscale in parts.", 5, 1)},
        [("te", 0, "text", "text_encoder"), ("model", 0, "df", "model"), ("text", 0, "df", "text_embeds"),
         ("vae", 0, "df", "vae"), ("vae", 0, "decode", "vae"), ("df", 0, "decode", "latent"),
         ("rife", 0, "interpolate", "rife"), ("decode", 0, "interpolate", "images"),
         ("sr", 0, "upscale", "upscale_model"), ("interpolate", 0, "upscale", "images"),
         ("upscale", 0, "create", "images"), ("interpolate", 1, "create", "fps"), ("create", 0, "save", "video")]),
    "skyreels_v4_cinematic": (
        {**{k: v for k, v in v4.COMMON.items() if k not in ("decode", "create")},
         # half of 1920x1088 in each direction: the refiner stretches the low-res video, so keep the aspect
         "latent": ("SkyReelsV4EmptyAVLatent", 1, 2, {"width": 960, "height": 544, "frames": 81, "fps": 16.0}, None),
         "keyframes": ("SkyReelsV4Keyframes", 1, 3, {"width": 1920, "height": 1088, "count": 6}, None),
         "refiner": ("SkyReelsV4RefinerLoader", 0, 4, {"model_name": "skyreels_v4_refiner.safetensors"}, None),
         "refine": ("SkyReelsV4Refine", 3, 0, {"width": 1920, "height": 1088, "seed": 42}, None),
         "decode": ("SkyReelsV4Decode", 4, 0, {"tile_size": 512, "tile_overlap": 64}, None),
         "create": ("CreateVideo", 4, 1, {}, None),
         "save": ("SaveVideo", 5, 0, {"filename_prefix": "video/skyreels_v4_cinematic"}, None),
         "note": note("Two stages (SkyReels-V4 paper §4.5): the base model samples 960x544 at 16 fps together with "
                      "6 keyframes at 1920x1088; the refiner (skyreels_v4_refiner.safetensors in "
                      "models/diffusion_models/, not released: any file in the documented layout) rebuilds the "
                      "video at 1920x1088 and doubles the frame rate (81 -> 161 frames, 32 fps, the same 5 s). Keep "
                      "the keyframe size and the refine size equal. The audio of the base stage is kept as it is. "
                      "Decode in 512-pixel tiles at 1080p.", 5, 1)},
        [("mllm", 0, "text", "mllm"), ("model", 0, "sampler", "model"), ("text", 0, "sampler", "text_embeds"),
         ("latent", 0, "sampler", "latent"), ("keyframes", 0, "sampler", "keyframes"),
         ("refiner", 0, "refine", "refiner"), ("text", 0, "refine", "text_embeds"), ("sampler", 0, "refine", "latent"),
         ("refine", 0, "decode", "latent"), ("vae", 0, "decode", "vae"), ("codec", 0, "decode", "audio_codec"),
         ("decode", 0, "create", "images"), ("decode", 1, "create", "audio"), ("decode", 2, "create", "fps"),
         ("create", 0, "save", "video")]),
}


def build(page, name: str) -> dict:
    nodes, links = WORKFLOWS[name]
    workflow = layout_workflows.build_graph(page, nodes, links)
    return layout_workflows.finish_template(page, name, workflow)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout_workflows.write_templates((sys.argv[1:] if argv is None else argv) or list(WORKFLOWS), build)
    return 0


if __name__ == "__main__":
    sys.exit(main())
