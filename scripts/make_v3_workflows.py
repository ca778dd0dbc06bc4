#!/usr/bin/env python3
"""Build the SkyReels-V3 example workflows in the real ComfyUI frontend and save them.

    python scripts/make_v3_workflows.py            # on the oldest test host (COMFY=oldest, the default)
    COMFY=newest python scripts/layout_workflows.py skyreels_v3_r2v ...   # then lay out with the newest frontend too

Built on the oldest supported ComfyUI: a template saves the widget values its nodes have there, and newer ComfyUI
versions load them (they add widgets such as Create Video's bit_depth that 0.3.75 would refuse).

As scripts/make_v4_workflows.py: each graph is created node by node with LiteGraph in the embedded ComfyUI's page
(layout_workflows.build_graph), passed through scripts/templates.py (real model names: the V3 releases are
sharded, so the loaders name their folders, e.g. "SkyReels-V3-V2V-14B/transformer/") and laid out by
layout_workflows.layout. Thumbnails: scripts/make_thumbnails.py. The example inputs they name ship in
workflows/example_inputs/ (scripts/make_example_inputs.py). Widget values are the reference's defaults (720P
bucket, 5 s at 24 fps, 8 steps); the tests run them at a smoke size.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "scripts", REPO / "tests" / "e2e", REPO / "tests" / "browser"):
    sys.path.insert(0, str(p))

import layout_workflows  # noqa: E402
from make_example_inputs import NAMES  # noqa: E402

R2V, EXT, SHOT, A2V = ("SkyReels-V3-R2V-14B/transformer/", "SkyReels-V3-V2V-14B/transformer/",
                       "SkyReels-V3-V2V-14B/shot_transformer/", "SkyReels-V3-A2V-19B/")
FILES_NOTE = (
    "Models: download {where} of Hugging Face {repo}{all} into "
    "ComfyUI/models/diffusion_models/{repo_name}/ and pick \"{name}\" in SkyReels Model Loader (or any one shard). "
    "Text encoder umt5_xxl_fp8_e4m3fn_scaled.safetensors (models/text_encoders) and wan_2.1_vae.safetensors "
    "(models/vae) are the Wan2.1 files of the V2 templates. ")


def files_note(name: str) -> str:
    repo_name, _, folder = name.rstrip("/").partition("/")
    where = f"the {folder}/ folder" if folder else "the root files (config.json + *.safetensors)"
    return FILES_NOTE.format(where=where, repo="Skywork/" + repo_name, all=" (all its files)" if folder else "",
                             repo_name=repo_name, name=name)


# key: (node type, column, row, {widget: value}, title or None); layout_workflows.layout() sets the positions
def common(model: str) -> dict:
    return {
        "model": ("SkyReelsModelLoader", 0, 0, {"model_name": model}, None),
        "te": ("SkyReelsTextEncoderLoader", 0, 1, {"text_encoder_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors"},
               None),
        "vae": ("SkyReelsVAELoader", 0, 2, {"vae_name": "wan_2.1_vae.safetensors"}, None),
        "create": ("CreateVideo", 3, 1, {}, None),
    }


def save(name: str):
    return ("SaveVideo", 4, 0, {"filename_prefix": f"video/{name}"}, None)


def note(text: str):
    return ("Note", 4, 1, {"text": text}, "Inputs to replace")


COMMON_LINKS = [("te", 0, "text", "text_encoder"), ("create", 0, "save", "video")]
SAMPLE = {"seed": 42}

WORKFLOWS = {
    "skyreels_v3_r2v": (
        {**common(R2V),
         "text": ("SkyReelsTextEncode", 1, 0, {"positive": (
             "A young woman in a red jacket walks along a grassy hillside path at golden hour, rolling hills and a "
             "warm sky behind her; she stops, turns to the camera and smiles. Handheld tracking shot, natural "
             "light.")}, None),
         "person": ("LoadImage", 0, 3, {"image": NAMES["v3_person"]}, "Reference 1: the person"),
         "place": ("LoadImage", 0, 4, {"image": NAMES["v3_place"]}, "Reference 2: the place"),
         "r2v": ("SkyReelsV3ReferenceToVideo", 2, 0, SAMPLE, None),
         "decode": ("SkyReelsVAEDecode", 3, 0, {}, None),
         "save": save("skyreels_v3_r2v"),
         "note": note(files_note(R2V) + f"Replace {NAMES['v3_person']} and {NAMES['v3_place']} (Load Image) with "
                      "your references: 1-4 images of people, objects or a place (reference_3/4 are optional "
                      "inputs). The video size follows the first reference's aspect ratio at the resolution class "
                      "(720P: 1280x720 for 16:9), or set width and height. They are never copied into the video.")},
        [("model", 0, "r2v", "model"), ("text", 0, "r2v", "text_embeds"), ("vae", 0, "r2v", "vae"),
         ("person", 0, "r2v", "reference_1"), ("place", 0, "r2v", "reference_2"), ("r2v", 0, "decode", "latent"),
         ("vae", 0, "decode", "vae"), ("decode", 0, "create", "images"), ("r2v", 1, "create", "fps")]),
    "skyreels_v3_extend": (
        {**common(EXT),
         "text": ("SkyReelsTextEncode", 1, 0, {"positive": (
             "The white square keeps gliding to the right over the blue-green gradient; the camera holds still, the "
             "light and colours stay the same.")}, None),
         "clip": ("LoadVideo", 0, 3, {"file": NAMES["v3_clip"]}, "Clip to extend"),
         "parts": ("GetVideoComponents", 1, 1, {}, None),
         "extend": ("SkyReelsV3ExtendVideo", 2, 0, {**SAMPLE, "keep_input": True}, None),
         "save": save("skyreels_v3_extend"),
         "note": note(files_note(EXT) + f"Replace {NAMES['v3_clip']} (Load Video) with your clip (at least 25 "
                      "frames; its last 25 start the extension). duration adds 5-30 s in ~5 s chunks; keep_input "
                      "puts the clip first, so its own audio (from Get Video Components) plays over it.")},
        [("model", 0, "extend", "model"), ("text", 0, "extend", "text_embeds"), ("vae", 0, "extend", "vae"),
         ("clip", 0, "parts", "video"), ("parts", 0, "extend", "video"), ("extend", 0, "create", "images"),
         ("parts", 1, "create", "audio"), ("extend", 1, "create", "fps")]),
    "skyreels_v3_shot_switch": (
        {**common(SHOT),
         "shot": ("SkyReelsV3ShotPrompt", 1, 0, {"prompt": (
             "A close-up of the white square's edge sliding past, the blue-green gradient soft behind it; the same "
             "light and colours."), "shot_type": "cut_in"}, None),
         "text": ("SkyReelsTextEncode", 1, 1, {}, None),
         "clip": ("LoadVideo", 0, 3, {"file": NAMES["v3_clip"]}, "Clip before the cut"),
         "parts": ("GetVideoComponents", 1, 2, {}, None),
         "switch": ("SkyReelsV3ShotSwitch", 2, 0, {**SAMPLE, "keep_input": True}, None),
         "save": save("skyreels_v3_shot_switch"),
         "note": note(files_note(SHOT) + f"Replace {NAMES['v3_clip']} (Load Video) with the shot before the cut (at "
                      "least 33 frames for a 5 s shot). Pick the transition in SkyReels V3 Shot Prompt (it writes "
                      "the tag, e.g. [ZOOM_IN_CUT], in front of the prompt). keep_input joins the clip and the new "
                      "shot into one video with the clip's audio.")},
        [("shot", 0, "text", "positive"), ("model", 0, "switch", "model"), ("text", 0, "switch", "text_embeds"),
         ("vae", 0, "switch", "vae"), ("clip", 0, "parts", "video"), ("parts", 0, "switch", "video"),
         ("switch", 0, "create", "images"), ("parts", 1, "create", "audio"), ("switch", 1, "create", "fps")]),
    "skyreels_v3_talking_avatar": (
        {"model": ("SkyReelsModelLoader", 0, 0, {"model_name": A2V}, None),
         "te": ("SkyReelsTextEncoderLoader", 0, 1, {"text_encoder_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors"},
                None),
         "vae": ("SkyReelsVAELoader", 0, 2, {"vae_name": "wan_2.1_vae.safetensors"}, None),
         "clip": ("SkyReelsCLIPVisionLoader", 0, 3, {"clip_name": "clip_vision_h.safetensors"}, None),
         "speech": ("SkyReelsV3AudioEncoderLoader", 0, 4, {"audio_encoder_name": "chinese-wav2vec2-base"}, None),
         "portrait": ("LoadImage", 0, 5, {"image": NAMES["v3_person"]}, "Portrait"),
         "voice": ("LoadAudio", 0, 6, {"audio": NAMES["v3_speech"]}, "Voice"),
         "text": ("SkyReelsTextEncode", 1, 0, {"positive": (
             "A young woman with short dark hair speaks warmly to the camera in a bright room, natural head "
             "movements and expressions, soft daylight, medium close-up.")}, None),
         "connection": ("SkyReelsTextEncode", 1, 1, {"positive": "a person is talking"},
                        "Window prompt (reference: a person is talking)"),
         "avatar": ("SkyReelsV3TalkingAvatar", 2, 0, SAMPLE, None),
         "create": ("CreateVideo", 3, 0, {}, None),
         "save": save("skyreels_v3_talking_avatar"),
         "note": note(files_note(A2V) + "Also chinese-wav2vec2-base/ of the same repo into "
                      "ComfyUI/models/audio_encoders/, and clip_vision_h.safetensors (models/clip_vision). Replace "
                      f"{NAMES['v3_person']} (Load Image) with the portrait and {NAMES['v3_speech']} (Load Audio) with the "
                      "voice: the video lasts as long as the voice (0.4-200 s), at 25 fps, with that audio.")},
        [("te", 0, "connection", "text_encoder"), ("model", 0, "avatar", "model"),
         ("text", 0, "avatar", "text_embeds"), ("vae", 0, "avatar", "vae"), ("clip", 0, "avatar", "clip_vision"),
         ("speech", 0, "avatar", "audio_encoder"), ("portrait", 0, "avatar", "portrait"),
         ("voice", 0, "avatar", "audio"), ("connection", 0, "avatar", "connection_embeds"),
         ("avatar", 0, "create", "images"), ("voice", 0, "create", "audio"), ("avatar", 1, "create", "fps")]),
}


def build(page, name: str) -> dict:
    nodes, links = WORKFLOWS[name]
    workflow = layout_workflows.build_graph(page, nodes, COMMON_LINKS + links)
    return layout_workflows.finish_template(page, name, workflow)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layout_workflows.write_templates((sys.argv[1:] if argv is None else argv) or list(WORKFLOWS), build)
    return 0


if __name__ == "__main__":
    sys.exit(main())
