#!/usr/bin/env python3
"""The shipped templates (workflows/*.json): the real model files they name, the frontend's model metadata, the
example inputs they use, titles and descriptions.

    python scripts/templates.py          # rewrite workflows/*.json in place (idempotent)
    python scripts/templates.py --check  # exit 1 when a workflow differs from what this script writes

- Every loader names a real released file (MODEL_FILES, the names ComfyUI users download) and carries
  ``properties.models`` = [{name, url, directory}] for it, the convention of ComfyUI's own templates: frontend
  1.32.9 reads it on load and offers the download when the file is not in that models folder. Folders (the
  Qwen2.5-VL MLLM) and the unreleased V4 DiT have no single download URL and carry no entry.
- The test host writes tiny random-weight files under these same names (scripts/make_tiny_checkpoints.py,
  REAL_NAMED_FILES), so the templates run unchanged in the e2e and browser tests.
- The V4 templates get a Note saying the V4 weights are not released (NOTE_V4_WEIGHTS).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
EXAMPLE_INPUTS = WORKFLOWS / "example_inputs"

COMFY_WAN = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
KIJAI_SKYREELS = "https://huggingface.co/Kijai/WanVideo_comfy/resolve/main/Skyreels"


@dataclass(frozen=True)
class ModelFile:
    name: str  # the file (or folder) name in ComfyUI's models/<directory>/
    directory: str
    url: str | None  # a single-file download; None: a folder or not released
    source: str  # where it comes from, for the README


MODEL_FILES: dict[str, ModelFile] = {m.name: m for m in (
    ModelFile("Wan2_1-SkyReels-V2-T2V-14B-720P_fp8_e4m3fn.safetensors", "diffusion_models",
              f"{KIJAI_SKYREELS}/Wan2_1-SkyReels-V2-T2V-14B-720P_fp8_e4m3fn.safetensors", "Kijai/WanVideo_comfy"),
    ModelFile("Wan2_1-SkyReels-V2-I2V-14B-540P_fp8_e4m3fn.safetensors", "diffusion_models",
              f"{KIJAI_SKYREELS}/Wan2_1-SkyReels-V2-I2V-14B-540P_fp8_e4m3fn.safetensors", "Kijai/WanVideo_comfy"),
    ModelFile("Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors", "diffusion_models",
              f"{KIJAI_SKYREELS}/Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors", "Kijai/WanVideo_comfy"),
    ModelFile("wan_2.1_vae.safetensors", "vae", f"{COMFY_WAN}/vae/wan_2.1_vae.safetensors",
              "Comfy-Org/Wan_2.1_ComfyUI_repackaged"),
    ModelFile("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders",
              f"{COMFY_WAN}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
              "Comfy-Org/Wan_2.1_ComfyUI_repackaged"),
    ModelFile("clip_vision_h.safetensors", "clip_vision", f"{COMFY_WAN}/clip_vision/clip_vision_h.safetensors",
              "Comfy-Org/Wan_2.1_ComfyUI_repackaged"),
    ModelFile("v1-44.pth", "vae", "https://huggingface.co/hkchengrex/MMAudio/resolve/main/ext_weights/v1-44.pth",
              "hkchengrex/MMAudio"),
    ModelFile("bigvgan_generator.pt", "vae",
              "https://huggingface.co/nvidia/bigvgan_v2_44khz_128band_512x/resolve/main/bigvgan_generator.pt",
              "nvidia/bigvgan_v2_44khz_128band_512x"),
    ModelFile("Qwen2.5-VL-7B-Instruct", "text_encoders", None, "Qwen/Qwen2.5-VL-7B-Instruct (the whole folder)"),
    ModelFile("skyreels_v4_av.safetensors", "diffusion_models", None, "not released"),
    # sharded releases: the loader lists their folder ("<dir>/") after the files (nodes/comfy_bridge.py)
    ModelFile("SkyReels-V3-R2V-14B/transformer/", "diffusion_models", None,
              "Skywork/SkyReels-V3-R2V-14B, the transformer/ folder (config.json + shards)"),
    ModelFile("SkyReels-V3-V2V-14B/transformer/", "diffusion_models", None,
              "Skywork/SkyReels-V3-V2V-14B, the transformer/ folder (single-shot extension)"),
    ModelFile("SkyReels-V3-V2V-14B/shot_transformer/", "diffusion_models", None,
              "Skywork/SkyReels-V3-V2V-14B, the shot_transformer/ folder (shot switching)"),
    ModelFile("SkyReels-V3-A2V-19B/", "diffusion_models", None,
              "Skywork/SkyReels-V3-A2V-19B, the root config.json + *.safetensors shards"),
    ModelFile("chinese-wav2vec2-base", "audio_encoders", None,
              "the chinese-wav2vec2-base/ folder of Skywork/SkyReels-V3-A2V-19B"),
    ModelFile("skyreels_v4_refiner.safetensors", "diffusion_models", None, "not released"),
    # .pth files on GitHub releases: the frontend downloads only .safetensors from Hugging Face / Civitai, so these
    # carry no properties.models entry; the Note and the README say where they come from
    ModelFile("rife426.pth", "frame_interpolation", None,
              "RIFE 4.26 (hzwer/Practical-RIFE) as ComfyUI-Frame-Interpolation downloads it: "
              "github.com/styler00dollar/VSGAN-tensorrt-docker/releases/download/models/rife426.pth"),
    ModelFile("RealESRGAN_x2plus.pth", "upscale_models", None,
              "github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"),
)}

# tiny test file -> the real file a template names instead
TINY_TO_REAL = {
    "skyreels_v2_t2v_tiny.safetensors": "Wan2_1-SkyReels-V2-T2V-14B-720P_fp8_e4m3fn.safetensors",
    "skyreels_v2_i2v_tiny.safetensors": "Wan2_1-SkyReels-V2-I2V-14B-540P_fp8_e4m3fn.safetensors",
    "skyreels_v2_df_tiny.safetensors": "Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors",
    "wan_2.1_vae_tiny.safetensors": "wan_2.1_vae.safetensors",
    "umt5_xxl_tiny.safetensors": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "clip_vision_h_tiny.safetensors": "clip_vision_h.safetensors",
    "mmaudio_vae_44k_tiny.safetensors": "v1-44.pth",
    "bigvgan_v2_44k_tiny.safetensors": "bigvgan_generator.pt",
    "qwen2.5_vl_tiny": "Qwen2.5-VL-7B-Instruct",
    "skyreels_v4_av_tiny.safetensors": "skyreels_v4_av.safetensors",
    "skyreels_v4_refiner_tiny.safetensors": "skyreels_v4_refiner.safetensors",
}

# node type -> the widgets that name a model file
LOADER_WIDGETS = {
    "SkyReelsModelLoader": ["model_name"], "SkyReelsVAELoader": ["vae_name"],
    "SkyReelsTextEncoderLoader": ["text_encoder_name"], "SkyReelsCLIPVisionLoader": ["clip_name"],
    "SkyReelsV4ModelLoader": ["model_name"], "SkyReelsV4TextEncoderLoader": ["mllm_name"],
    "SkyReelsV4AudioCodecLoader": ["vae_name", "vocoder_name"],
    "SkyReelsV3AudioEncoderLoader": ["audio_encoder_name"],
    "SkyReelsV4RefinerLoader": ["model_name"], "SkyReelsRIFELoader": ["model_name"],
    "UpscaleModelLoader": ["model_name"],
}
# node type -> widget index of the input file it loads (ComfyUI core loaders)
INPUT_WIDGETS = {"LoadImage": 0, "LoadImageMask": 0, "LoadVideo": 0, "LoadAudio": 0}


@dataclass(frozen=True)
class Template:
    """One shipped template. Its file is workflows/<title>.json (+ <title>.jpg): for a custom pack's templates the
    frontend (1.32.9 to 1.58.1) shows the file name as the title and, with '-'/'_' as spaces, as the description,
    and reads no index or metadata file, so the file name is the title. `name` is the short id tests use."""

    name: str
    title: str
    description: str  # README table

    @property
    def path(self) -> Path:
        return WORKFLOWS / f"{self.title}.json"


# in the order a user meets them (README table, thumbnails script)
TEMPLATES = (
    Template("skyreels_v2_t2v", "SkyReels-V2 Text to Video",
             "A prompt -> a 960x544, 97-frame (4 s) clip at 24 fps; cfg 6, shift 8, 30 steps."),
    Template("skyreels_v2_i2v", "SkyReels-V2 Image to Video",
             "A start image (+ CLIP vision) -> a 960x544, 97-frame clip; cfg 5, shift 5."),
    Template("skyreels_v2_df_long_t2v", "SkyReels-V2 DF Long Video",
             "Diffusion forcing: a prompt -> a 257-frame (10.7 s) video in overlapping 97-frame windows."),
    Template("skyreels_v2_df_i2v", "SkyReels-V2 DF Image to Long Video",
             "Diffusion forcing from a start image (Load Image -> start_image)."),
    Template("skyreels_v2_df_extend", "SkyReels-V2 DF Extend a Clip",
             "Continue a clip: Load Video -> Get Video Components -> extend_video (width/height = the clip's)."),
    Template("skyreels_v2_df_upscale", "SkyReels-V2 Long Video to 1080p 48 fps",
             "Diffusion forcing 960x544 at 24 fps -> RIFE x2 (48 fps) -> Real-ESRGAN x2 (1920x1088) -> mp4."),
    Template("skyreels_v3_r2v", "SkyReels-V3 Reference to Video",
             "1-4 reference images (people, objects, a place) + a prompt -> a 5 s, 24 fps video of them; 8 steps."),
    Template("skyreels_v3_extend", "SkyReels-V3 Extend a Clip",
             "Continue a clip in the same shot (5-30 s more, 24 fps); the clip's own audio is kept."),
    Template("skyreels_v3_shot_switch", "SkyReels-V3 Shot Switch",
             "A cut to the next shot (cut-in, cut-out, reverse shot...) after a clip, joined into one mp4."),
    Template("skyreels_v3_talking_avatar", "SkyReels-V3 Talking Avatar",
             "A portrait + a voice track -> a lip-synced video as long as the voice (up to 200 s) at 25 fps."),
    Template("skyreels_v4_t2av", "SkyReels-V4 Text to Video and Audio",
             "One prompt with <dialogue>/<sfx>/<bgm> tags -> video with a 44.1 kHz soundtrack."),
    Template("skyreels_v4_i2av", "SkyReels-V4 Image to Video and Audio", "A first frame -> video + audio."),
    Template("skyreels_v4_references", "SkyReels-V4 References to Video and Audio",
             "A reference image and a voice steer the result (never copied into it)."),
    Template("skyreels_v4_extend", "SkyReels-V4 Extend a Clip",
             "Continue a clip with sound; size and fps follow the clip."),
    Template("skyreels_v4_inpaint_edit", "SkyReels-V4 Inpaint and Edit",
             "Regenerate the white region of a mask in a clip; fresh audio."),
    Template("skyreels_v4_cinematic", "SkyReels-V4 Cinematic 1080p 32 fps",
             "Base 960x544 at 16 fps + 1920x1088 keyframes -> refiner -> 1920x1088 at 32 fps, tiled decode, with audio."),
)
BY_NAME = {t.name: t for t in TEMPLATES}


def workflow_path(name: str) -> Path:
    """workflows/<file>.json of a template id (skyreels_v2_t2v), a title, or a file name with or without .json."""
    stem = name[:-5] if name.endswith(".json") else name
    return BY_NAME[stem].path if stem in BY_NAME else WORKFLOWS / f"{stem}.json"


NOTE_V4_TITLE = "SkyReels-V4 weights: not released"
NOTE_V4_WEIGHTS = (
    "The SkyReels-V4 weights are not released yet. This template shows how the V4 nodes connect and runs end to "
    "end with a checkpoint in the pack's documented key layout (README, section SkyReels-V4): put it in "
    "models/diffusion_models/ as skyreels_v4_av.safetensors (or pick it in the loader) and it drops in. "
    "The other files are public: Qwen2.5-VL-7B-Instruct (the whole Hugging Face folder) in models/text_encoders/, "
    "wan_2.1_vae.safetensors, v1-44.pth (MMAudio) and bigvgan_generator.pt (BigVGAN-v2 44 kHz) in models/vae/.")


def model_entry(name: str) -> dict | None:
    m = MODEL_FILES[name]
    return None if m.url is None else {"name": m.name, "url": m.url, "directory": m.directory}


def _widget_values(node: dict, names: list[str]) -> list[tuple[int, str]]:
    """(index, widget name) of the model widgets: they come first, in order, on every loader of this pack."""
    return list(enumerate(names))


def apply(workflow: dict) -> dict:
    """Real model names + properties.models on every loader; the V4 weights Note on V4 templates."""
    is_v4 = any(n["type"].startswith("SkyReelsV4") for n in workflow["nodes"])
    for node in workflow["nodes"]:
        widgets = LOADER_WIDGETS.get(node["type"])
        if not widgets:
            continue
        values = node["widgets_values"]
        models = []
        for i, _ in _widget_values(node, widgets):
            values[i] = TINY_TO_REAL.get(values[i], values[i])
            if values[i] not in MODEL_FILES:
                raise ValueError(f"node {node['id']} ({node['type']}) names {values[i]!r}, not in MODEL_FILES")
            entry = model_entry(values[i])
            if entry:
                models.append(entry)
        node.setdefault("properties", {})
        if models:
            node["properties"]["models"] = models
        else:
            node["properties"].pop("models", None)
    if is_v4 and not any(n.get("title") == NOTE_V4_TITLE for n in workflow["nodes"]):
        ids = [n["id"] for n in workflow["nodes"]]
        right = max(n["pos"][0] + n["size"][0] for n in workflow["nodes"])
        new_id = max(ids) + 1
        workflow["nodes"].append({
            "id": new_id, "type": "Note", "pos": [40, -200], "size": [max(760, right - 40), 150], "flags": {},
            "order": max(n.get("order", 0) for n in workflow["nodes"]) + 1, "mode": 0, "inputs": [], "outputs": [],
            "title": NOTE_V4_TITLE, "properties": {}, "widgets_values": [NOTE_V4_WEIGHTS],
            "color": "#322", "bgcolor": "#533"})
        workflow["last_node_id"] = max(workflow.get("last_node_id", 0), new_id)
    return workflow


def model_names(workflow: dict) -> list[tuple[str, str]]:
    """(node type, file name) of every model a workflow's loaders name."""
    out = []
    for node in workflow["nodes"]:
        for i, _ in _widget_values(node, LOADER_WIDGETS.get(node["type"], [])):
            out.append((node["type"], node["widgets_values"][i]))
    return out


def input_files(workflow: dict) -> list[str]:
    """The input files (ComfyUI input/ folder) a workflow's Load Image/Video/Audio nodes name."""
    return [n["widgets_values"][INPUT_WIDGETS[n["type"]]] for n in workflow["nodes"] if n["type"] in INPUT_WIDGETS]


def dumps(workflow: dict, like: str = "") -> str:
    """JSON text with the indent of `like` (the file's current text; 1 space by default), for small diffs."""
    second = like.split("\n", 2)[1] if like.count("\n") > 1 else " "
    indent = len(second) - len(second.lstrip(" ")) or 1
    return json.dumps(workflow, indent=indent) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when a workflow would change")
    args = ap.parse_args(argv)
    changed = []
    for t in TEMPLATES:
        path = t.path
        text = path.read_text()
        new = dumps(apply(json.loads(text)), text)
        if new != text:
            changed.append(path.name)
            if not args.check:
                path.write_text(new)
    sys.stdout.write(("would change: " if args.check else "rewrote: ") + (", ".join(changed) or "nothing") + "\n")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
