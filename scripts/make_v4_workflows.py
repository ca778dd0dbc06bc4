#!/usr/bin/env python3
"""Build the SkyReels-V4 example workflows in the real ComfyUI frontend and save them.

    python scripts/make_v4_workflows.py            # needs the test host (scripts/setup_test_host.py)

Each graph is created node by node with LiteGraph in the embedded ComfyUI's page (Chromium via playwright), so
workflows/skyreels_v4_*.json are what the canvas saves (app.graph.serialize()), then passed through
scripts/templates.py (real file names, properties.models, the "weights not released" Note) and laid out by
scripts/layout_workflows.py (no overlaps in any tested frontend or renderer). Thumbnails:
scripts/make_thumbnails.py. The example inputs they name ship in workflows/example_inputs/
(scripts/make_example_inputs.py). Widget values are real-use settings (832x480, 81 frames at 16 fps, 30 steps).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "scripts", REPO / "tests" / "e2e", REPO / "tests" / "browser"):
    sys.path.insert(0, str(p))

import layout_workflows  # noqa: E402
import v4_inputs  # noqa: E402

N = v4_inputs.NAMES
PROMPT = ("A street musician plays an acoustic guitar on a rainy evening, neon reflections on the wet pavement, slow "
          "push-in. <sfx>rain on the pavement, distant traffic</sfx> <bgm>gentle fingerpicked acoustic guitar</bgm> "
          "<dialogue>Thank you for stopping by.</dialogue>")
NEGATIVE = ("blurry, low quality, distorted faces, extra fingers, static frame, watermark, subtitles, noisy audio, "
            "clipping, muffled speech, out-of-sync lips")

# key: (node type, column, row, {widget: value}, title or None)
COMMON = {
    "model": ("SkyReelsV4ModelLoader", 0, 0, {"model_name": "skyreels_v4_av.safetensors"}, None),
    "mllm": ("SkyReelsV4TextEncoderLoader", 0, 1, {"mllm_name": "Qwen2.5-VL-7B-Instruct", "layers": "-1"}, None),
    "vae": ("SkyReelsVAELoader", 0, 2, {"vae_name": "wan_2.1_vae.safetensors"}, None),
    "codec": ("SkyReelsV4AudioCodecLoader", 0, 3, {"vae_name": "v1-44.pth",
                                                   "vocoder_name": "bigvgan_generator.pt"}, None),
    "text": ("SkyReelsV4TextEncode", 1, 0, {"prompt": PROMPT, "negative": NEGATIVE}, None),
    "latent": ("SkyReelsV4EmptyAVLatent", 1, 2, {"width": 832, "height": 480, "frames": 81, "fps": 16.0}, None),
    "sampler": ("SkyReelsV4Sampler", 2, 0, {"seed": 42, "steps": 30}, None),
    "decode": ("SkyReelsV4Decode", 3, 0, {}, None),
    "create": ("CreateVideo", 3, 2, {}, None),
}
COMMON_LINKS = [
    ("mllm", 0, "text", "mllm"), ("model", 0, "sampler", "model"), ("text", 0, "sampler", "text_embeds"),
    ("latent", 0, "sampler", "latent"), ("sampler", 0, "decode", "latent"), ("vae", 0, "decode", "vae"),
    ("codec", 0, "decode", "audio_codec"), ("decode", 0, "create", "images"), ("decode", 1, "create", "audio"),
    ("decode", 2, "create", "fps"), ("create", 0, "save", "video"),
]


def save_node(name: str):
    return ("SaveVideo", 4, 0, {"filename_prefix": f"video/{name}"}, None)


def note(text: str):
    return ("Note", 4, 2, {"text": text}, "Inputs to replace")


WORKFLOWS = {
    "skyreels_v4_t2av": (
        {"save": save_node("skyreels_v4_t2av"),
         "note": note("Text to video + audio. One prompt describes picture and sound; structured tags: "
                      "<dialogue>, <sfx>, <bgm>, <singing>, <text>. fps sets the audio length (frames / fps s).")},
        []),
    "skyreels_v4_i2av": (
        {"image": ("LoadImage", 0, 4, {"image": N["start"]}, "Start image"),
         "cond": ("SkyReelsV4TaskCondition", 1, 4, {"task": "i2v"}, None),
         "save": save_node("skyreels_v4_i2av"),
         "note": note(f"Image to video + audio: replace {N['start']} (Load Image) with your first frame; it is "
                      "centre-cropped to the latent's aspect.")},
        [("vae", 0, "cond", "vae"), ("latent", 0, "cond", "latent"), ("image", 0, "cond", "start_image"),
         ("cond", 0, "sampler", "condition")]),
    "skyreels_v4_extend": (
        {"clip": ("LoadVideo", 0, 4, {"file": N["clip"]}, "Clip to extend"),
         "parts": ("GetVideoComponents", 1, 4, {}, None),
         "cond": ("SkyReelsV4TaskCondition", 2, 2, {"task": "extend"}, None),
         "save": save_node("skyreels_v4_extend"),
         "note": note(f"Video extension: replace {N['clip']} (Load Video). Its frames open the new video (the last "
                      "extend_frames of them; 0 = all) and the rest is generated with fresh audio; fps follows the "
                      "clip. frames must be more than the clip's.")},
        [("clip", 0, "parts", "video"), ("parts", 0, "cond", "video"), ("parts", 2, "latent", "fps"),
         ("vae", 0, "cond", "vae"), ("latent", 0, "cond", "latent"), ("cond", 0, "sampler", "condition")]),
    "skyreels_v4_inpaint_edit": (
        {"clip": ("LoadVideo", 0, 4, {"file": N["clip"]}, "Video to edit"),
         "parts": ("GetVideoComponents", 1, 4, {}, None),
         "size": ("GetImageSize", 1, 5, {}, None),
         "mask": ("LoadImageMask", 2, 4, {"image": N["mask"], "channel": "red"}, "Mask (white = regenerate)"),
         "cond": ("SkyReelsV4TaskCondition", 2, 2, {"task": "inpaint_edit"}, None),
         "save": save_node("skyreels_v4_inpaint_edit"),
         "note": note(f"Inpainting / editing: replace {N['clip']} (Load Video) and {N['mask']} (white = "
                      "regenerate, black = keep; the video's size, or one mask per frame). Size, frames (4n+1) and "
                      "fps come from the video; the audio is generated fresh.")},
        [("clip", 0, "parts", "video"), ("parts", 0, "cond", "video"), ("parts", 0, "size", "image"),
         ("size", 0, "latent", "width"), ("size", 1, "latent", "height"), ("size", 2, "latent", "frames"),
         ("parts", 2, "latent", "fps"), ("mask", 0, "cond", "mask"), ("vae", 0, "cond", "vae"),
         ("latent", 0, "cond", "latent"), ("cond", 0, "sampler", "condition")]),
    "skyreels_v4_references": (
        {"ref": ("LoadImage", 0, 4, {"image": N["ref"]}, "Reference image"),
         "voice": ("LoadAudio", 1, 4, {"audio": N["voice"]}, "Reference audio"),
         "refs": ("SkyReelsV4References", 2, 2, {}, None),
         "save": save_node("skyreels_v4_references"),
         "note": note(f"References -> video + audio: replace {N['ref']} (a person / object / style image; also "
                      f"shown to the MLLM) and {N['voice']} (a voice or sound). They steer the result and never "
                      "appear in it.")},
        [("ref", 0, "refs", "images"), ("ref", 0, "text", "images"), ("voice", 0, "refs", "audio"),
         ("codec", 0, "refs", "audio_codec"), ("vae", 0, "refs", "vae"), ("latent", 0, "refs", "latent"),
         ("refs", 0, "sampler", "references")]),
}

def build(page, name: str) -> dict:
    extra_nodes, extra_links = WORKFLOWS[name]
    nodes = {**COMMON, **extra_nodes}
    workflow = layout_workflows.build_graph(page, nodes, COMMON_LINKS + extra_links)
    return layout_workflows.finish_template(page, name, workflow)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout_workflows.write_templates(list(WORKFLOWS), build, v4_inputs.write_v4_inputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
