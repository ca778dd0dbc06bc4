"""Frame interpolation, upscaling and the SkyReels-V4 refiner in a real ComfyUI server, with the tiny files the test
host writes under the released names (rife426.pth / rife47.pth in models/frame_interpolation, RealESRGAN_x2plus.pth
in models/upscale_models read by ComfyUI's own Load Upscale Model, skyreels_v4_refiner.safetensors):

- "SkyReels-V2 Long Video to 1080p 48 fps" at a smoke size: DF -> RIFE x2 -> Real-ESRGAN x2 -> an mp4 with twice
  the frames at 48 fps and twice the size;
- RIFE on a clip with sound (Load Video -> Get Video Components -> interpolate -> Create Video with the clip's
  audio): x2 and 24 -> 60 fps keep the duration, so the audio still fits the picture;
- "SkyReels-V4 Cinematic 1080p 32 fps" at a smoke size: base + keyframes -> refiner -> 2x fps with the base audio,
  as long as the picture;
- bad settings end in an execution_error that says what to change, and the next prompt runs.
"""

from __future__ import annotations

import math

import pytest
from make_example_inputs import NAMES, V3_CLIP_FPS, V3_CLIP_FRAMES
from test_v3_e2e import probe

RATE, AAC_FRAME = 44100, 1024


def node_id_of(api: dict, class_type: str) -> str:
    (nid,) = [k for k, n in api.items() if n["class_type"] == class_type]
    return nid


def df_upscale_smoke(api_workflow) -> dict:
    api = api_workflow("skyreels_v2_df_upscale")
    api[node_id_of(api, "SkyReelsDFSampler")]["inputs"].update(
        width=64, height=48, num_frames=17, base_num_frames=13, overlap_history=5, steps=2, cfg=5.0)
    api[node_id_of(api, "SkyReelsUpscaleVideo")]["inputs"].update(tile=32, overlap=8, batch=4)
    return api


def test_df_long_video_to_48_fps_and_twice_the_size(api_workflow, comfy_client, comfy_server, tiny_models):
    api = df_upscale_smoke(api_workflow)
    result = comfy_client.run(api, timeout=600).raise_for_status()
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    # 17 frames at 24 fps -> 34 at 48 fps (the same 0.71 s) -> 128x96
    assert probe(mp4)["video"] == (34, 128, 96, 48.0)


def clip_prompt(**interpolate) -> dict:
    return {
        "1": {"class_type": "SkyReelsRIFELoader", "inputs": {"model_name": "rife426.pth", "precision": "auto"}},
        "2": {"class_type": "LoadVideo", "inputs": {"file": NAMES["v3_clip"]}},
        "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["2", 0]}},
        "4": {"class_type": "SkyReelsInterpolateFrames", "inputs": {
            "rife": ["1", 0], "images": ["3", 0], "fps": ["3", 2], "multiplier": 2, "target_fps": 0.0,
            "scene_cut": 0.2, "ensemble": False, "scale": 1.0, "batch": 8, **interpolate}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "audio": ["3", 1], "fps": ["4", 1]}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "video/skyreels_rife",
                                                    "format": "mp4", "codec": "h264"}},
    }


@pytest.mark.parametrize("settings, frames, fps", [
    ({}, 2 * V3_CLIP_FRAMES, 2.0 * V3_CLIP_FPS),
    ({"target_fps": 60.0}, math.ceil(V3_CLIP_FRAMES * 60 / V3_CLIP_FPS), 60.0),
])
def test_interpolated_clip_keeps_its_duration_and_audio(settings, frames, fps, comfy_client, comfy_server, tiny_models):
    prompt = clip_prompt(**settings)
    result = comfy_client.run(prompt, timeout=600).raise_for_status()
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    info = probe(mp4)
    assert info["video"] == (frames, 64, 64, fps)
    clip_seconds = V3_CLIP_FRAMES / V3_CLIP_FPS  # 1.375 s, picture and sound
    assert abs(frames / fps - clip_seconds) < 1 / fps
    assert abs(info["audio_seconds"] - clip_seconds) < 2 * AAC_FRAME / RATE, info


def test_v4_cinematic_refines_to_twice_the_fps_with_the_base_audio(api_workflow, comfy_client, comfy_server,
                                                                     tiny_models):
    api = api_workflow("skyreels_v4_cinematic")
    api[node_id_of(api, "SkyReelsV4EmptyAVLatent")]["inputs"].update(width=32, height=32, frames=9)
    api[node_id_of(api, "SkyReelsV4Sampler")]["inputs"]["steps"] = 2
    api[node_id_of(api, "SkyReelsV4Keyframes")]["inputs"].update(width=64, height=64, count=2)
    api[node_id_of(api, "SkyReelsV4Refine")]["inputs"].update(width=64, height=64, steps=2)
    api[node_id_of(api, "SkyReelsV4Decode")]["inputs"].update(tile_size=0)
    result = comfy_client.run(api, timeout=600).raise_for_status()
    refine = node_id_of(api, "SkyReelsV4Refine")
    assert [v for v, _ in result.steps(refine)] == [1, 2], result.custom_events
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    info = probe(mp4)
    assert info["video"] == (17, 64, 64, 32.0)  # 9 frames at 16 fps -> 17 at 32 fps
    assert abs(info["audio_seconds"] - 17 / 32) < 2 * AAC_FRAME / RATE, info  # the picture's duration


@pytest.mark.parametrize("edit, message", [
    (lambda api: api[node_id_of(api, "SkyReelsV4Refine")]["inputs"].update(width=96),
     "same size here and in SkyReels V4 Keyframes"),
    (lambda api: api[node_id_of(api, "SkyReelsV4Keyframes")]["inputs"].update(width=16, height=16),
     "at least the video's size"),
])
def test_v4_cinematic_bad_sizes_say_what_to_change(edit, message, api_workflow, comfy_client, tiny_models):
    api = api_workflow("skyreels_v4_cinematic")
    api[node_id_of(api, "SkyReelsV4EmptyAVLatent")]["inputs"].update(width=32, height=32, frames=9)
    api[node_id_of(api, "SkyReelsV4Sampler")]["inputs"]["steps"] = 1
    api[node_id_of(api, "SkyReelsV4Keyframes")]["inputs"].update(width=64, height=64, count=2)
    api[node_id_of(api, "SkyReelsV4Refine")]["inputs"].update(width=64, height=64, steps=1)
    edit(api)
    result = comfy_client.run(api, timeout=600)
    assert result.error is not None and message in result.error["exception_message"], result.error


def test_interpolation_errors_then_the_next_prompt_runs(comfy_client, comfy_server, tiny_models):
    bad = clip_prompt(target_fps=12.0)
    result = comfy_client.run(bad, timeout=300)
    assert result.error is not None and "below the input" in result.error["exception_message"], result.error
    wrong_kind = clip_prompt()
    wrong_kind["1"]["inputs"]["model_name"] = "rife47.pth"
    wrong_kind["4"]["inputs"]["ensemble"] = True  # 4.7 supports it: this one runs
    wrong_kind["4"]["inputs"]["batch"] = 64
    del wrong_kind["5"], wrong_kind["6"]
    wrong_kind["7"] = {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}
    comfy_client.run(wrong_kind, timeout=600).raise_for_status()
