"""The SkyReels-V3 workflows in a real ComfyUI server: each runs via /prompt with the tiny checkpoints (written by the
test host under the released folder names) and writes an mp4 with the expected frame count, size and fps; the
extension and shot-switch mp4s carry the clip's audio; bad inputs end in an execution_error that says what to change,
before any model call.

The workflows ship with the reference's settings (720P bucket, 5 s, 8 steps); here width/height are set to a smoke
size and steps to 2 on the API graph, as a user would edit the widgets. The durations stay at the defaults, so the
frame counts are the reference's: R2V 5 s -> 121 frames, extension 5 s -> 132 new frames, shot switch 5 s -> 121.
The example clip (workflows/example_inputs/skyreels_v3_clip.mp4) has 33 frames of 64x64 at 24 fps with an AAC track.
"""

from __future__ import annotations

import math

import av
import pytest
from make_example_inputs import V3_CLIP_FPS, V3_CLIP_FRAMES

SMOKE = {"width": 32, "height": 32, "steps": 2}
SAMPLERS = ("SkyReelsV3ReferenceToVideo", "SkyReelsV3ExtendVideo", "SkyReelsV3ShotSwitch", "SkyReelsV3TalkingAvatar")
CLIP_SECONDS = V3_CLIP_FRAMES / V3_CLIP_FPS  # the example clip's audio (1.375 s)
SPEECH_SECONDS = 93935 / 22050  # workflows/example_inputs/skyreels_v3_speech.wav: 4.26 s
SPEECH_FRAMES = math.ceil(SPEECH_SECONDS * 25)  # 107 at 25 fps -> padded to 145: the key-frame pass + 2 windows
# workflow -> (frames, width, height, fps) of the mp4, seconds of audio in it (None: no audio stream), passes
CASES = {
    "skyreels_v3_r2v": ((121, 32, 32, 24.0), None, 1),
    "skyreels_v3_extend": ((V3_CLIP_FRAMES + 132, 32, 32, 24.0), CLIP_SECONDS, 1),  # the clip, then 132 new
    "skyreels_v3_shot_switch": ((V3_CLIP_FRAMES + 121, 32, 32, 24.0), CLIP_SECONDS, 1),  # the clip, the cut, 121
    # as long as the speech at 25 fps, with the speech as its audio
    "skyreels_v3_talking_avatar": ((SPEECH_FRAMES, 32, 32, 25.0), SPEECH_SECONDS, 3),
}


def sampler_id(api: dict) -> str:
    (nid,) = [k for k, n in api.items() if n["class_type"] in SAMPLERS]
    return nid


def smoke(api: dict, **overrides) -> dict:
    api[sampler_id(api)]["inputs"].update(dict(SMOKE, **overrides))
    return api


def probe(path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        info = {"video": (frames, video.codec_context.width, video.codec_context.height, float(video.average_rate)),
                "audio_seconds": None}
    with av.open(str(path)) as container:
        if container.streams.audio:
            audio = container.streams.audio[0]
            samples = sum(f.samples for f in container.decode(audio))
            info["audio_seconds"] = samples / audio.codec_context.sample_rate
    return info


@pytest.mark.parametrize("name", list(CASES))
def test_v3_workflow_writes_mp4(name, api_workflow, comfy_client, comfy_server, tiny_models):
    (frames, width, height, fps), seconds, passes = CASES[name]
    api = smoke(api_workflow(name))
    result = comfy_client.run(api, timeout=900).raise_for_status()
    steps = [v for v, _ in result.steps(sampler_id(api))]
    assert steps == list(range(1, SMOKE["steps"] * passes + 1)), result.custom_events  # (5 s: one extension chunk)
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    info = probe(mp4)
    assert info["video"] == (frames, width, height, fps)
    if seconds is not None:  # the input's own audio, carried to Create Video
        assert info["audio_seconds"] is not None, f"{mp4.name} has no audio"
        assert abs(info["audio_seconds"] - seconds) < 0.05, info
    else:
        assert info["audio_seconds"] is None


def cut_clip(api: dict, frames: int) -> dict:
    """Feed the sampler only the first `frames` frames of the clip (an Image From Batch between them)."""
    node = api[sampler_id(api)]
    api["900"] = {"class_type": "ImageFromBatch", "inputs": {"image": node["inputs"]["video"], "batch_index": 0,
                                                             "length": frames}}
    node["inputs"]["video"] = ["900", 0]
    return api


@pytest.mark.parametrize(("name", "edit", "expected"), [
    ("skyreels_v3_extend", lambda api: cut_clip(api, 20), "has 20 frames; this mode uses its last 25 frames"),
    ("skyreels_v3_shot_switch", lambda api: cut_clip(api, 20), "at least 33 frames"),
    ("skyreels_v3_r2v", lambda api: smoke(api, height=0), "Give both width and height, or neither"),
    ("skyreels_v3_talking_avatar", lambda api: smoke(api, height=0), "Give both width and height, or neither"),
])  # fmt: skip
def test_bad_v3_inputs_fail_before_any_step_with_the_fix(name, edit, expected, api_workflow, comfy_client,
                                                         tiny_models):
    api = edit(smoke(api_workflow(name)))
    result = comfy_client.run(api, timeout=300)
    assert result.status == "error" and result.error["node_type"] in SAMPLERS, result.error
    assert expected in result.error["exception_message"], result.error["exception_message"]
    assert result.steps(sampler_id(api)) == []


def test_v2_model_given_to_a_v3_node_says_which_model(api_workflow, comfy_client, comfy_server, tiny_models):
    api = smoke(api_workflow("skyreels_v3_extend"))
    loader = next(k for k, n in api.items() if n["class_type"] == "SkyReelsModelLoader")
    api[loader]["inputs"]["model_name"] = "Wan2_1-SkyReels-V2-I2V-14B-540P_fp8_e4m3fn.safetensors"
    result = comfy_client.run(api, timeout=300)
    assert result.status == "error" and result.error["node_type"] == "SkyReelsV3ExtendVideo", result.error
    assert "in_dim 36" in result.error["exception_message"], result.error
    assert result.steps(sampler_id(api)) == []
    # the server serves the next prompt
    ok = comfy_client.run(smoke(api_workflow("skyreels_v3_r2v"), duration=1), timeout=300).raise_for_status()
    assert ok.paths(comfy_server.output_dir, ".mp4")
