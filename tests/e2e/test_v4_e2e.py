"""The SkyReels-V4 workflows in a real ComfyUI server: each runs via /prompt with the tiny checkpoints and writes an
mp4 whose video has the expected frame count, size and fps and whose AAC audio stream is 44.1 kHz and lasts
frames / fps seconds (within one 1024-sample audio frame); the audio encode/decode pair alone round-trips a clip's
length; bad inputs end in an execution_error that says what to change.

The workflows ship with real-use settings (832x480, 81 frames, 30 steps); here they run at a smoke size, set on
the API graph as a user would edit the widgets. Inputs come from tests/e2e/v4_inputs.py (generated, never
downloaded). Wall-clock times per workflow go to artifacts/v4_e2e_timings.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import pytest
from v4_inputs import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, NAMES, write_v4_inputs

REPO = Path(__file__).resolve().parents[2]
TIMINGS = REPO / "artifacts" / "v4_e2e_timings.json"
RATE, AAC_FRAME = 44100, 1024
SMOKE = {"width": 32, "height": 32, "frames": 9, "steps": 2}
# workflow -> (latent overrides, expected (frames, width, height, fps) of the mp4)
CASES = {
    "skyreels_v4_t2av": ({}, (9, 32, 32, 16.0)),
    "skyreels_v4_i2av": ({}, (9, 32, 32, 16.0)),
    "skyreels_v4_extend": ({"frames": 25}, (25, 32, 32, float(CLIP_FPS))),  # the 17-frame clip opens 25 frames
    "skyreels_v4_inpaint_edit": ({}, (CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, float(CLIP_FPS))),  # size from the clip
    "skyreels_v4_references": ({}, (9, 32, 32, 16.0)),
}
_timings: dict[str, float] = {}


def node_id_of(api: dict, class_type: str) -> str:
    (nid,) = [k for k, n in api.items() if n["class_type"] == class_type]
    return nid


def smoke(api: dict, **overrides) -> dict:
    """Smoke size on the Empty AV Latent (only widgets not fed by a link) and steps on the sampler."""
    values = dict(SMOKE, **overrides)
    for node in api.values():
        if node["class_type"] == "SkyReelsV4EmptyAVLatent":
            for key in ("width", "height", "frames"):
                if not isinstance(node["inputs"].get(key), list):
                    node["inputs"][key] = values[key]
        if node["class_type"] == "SkyReelsV4Sampler":
            node["inputs"]["steps"] = values["steps"]
    return api


@pytest.fixture(scope="module")
def v4_inputs(comfy_server):
    return write_v4_inputs(comfy_server.input_dir)


@pytest.fixture(scope="module", autouse=True)
def _write_timings():
    yield
    if _timings:
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text(json.dumps(_timings, indent=1, sort_keys=True) + "\n")


def probe(path: Path) -> dict:
    """Video (frames, width, height, fps) and audio (sample rate, decoded samples, channels) of an mp4."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        info = {"video": (frames, video.codec_context.width, video.codec_context.height, float(video.average_rate))}
    with av.open(str(path)) as container:
        assert container.streams.audio, f"{path.name} has no audio stream"
        audio = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(audio))
        info["audio"] = (audio.codec_context.sample_rate, samples, audio.codec_context.channels)
    return info


@pytest.mark.parametrize("name", list(CASES))
def test_v4_workflow_writes_mp4_with_synchronised_audio(name, api_workflow, comfy_client, comfy_server, tiny_models,
                                                         v4_inputs):
    overrides, (frames, width, height, fps) = CASES[name]
    api = smoke(api_workflow(name), **overrides)
    t0 = time.perf_counter()
    result = comfy_client.run(api, timeout=600).raise_for_status()
    _timings[name] = round(time.perf_counter() - t0, 2)
    sampler = node_id_of(api, "SkyReelsV4Sampler")
    steps = [v for v, _ in result.steps(sampler)]
    assert steps == list(range(1, SMOKE["steps"] + 1)), result.custom_events
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    info = probe(mp4)
    assert info["video"] == (frames, width, height, fps)
    rate, samples, _channels = info["audio"]  # core SaveVideo writes a stereo AAC stream (our audio is mono)
    expected = round(frames / fps * RATE)
    assert rate == RATE
    assert abs(samples - expected) < AAC_FRAME, (samples, expected)  # AAC pads to whole 1024-sample frames


def test_audio_encode_decode_alone_round_trips(comfy_client, comfy_server, tiny_models, v4_inputs):
    prompt = {
        "1": {"class_type": "SkyReelsV4AudioCodecLoader", "inputs": {"vae_name": "mmaudio_vae_44k_tiny.safetensors",
                                                                     "vocoder_name": "bigvgan_v2_44k_tiny.safetensors"}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": NAMES["voice"]}},
        "3": {"class_type": "SkyReelsV4AudioEncode", "inputs": {"audio_codec": ["1", 0], "audio": ["2", 0]}},
        "4": {"class_type": "SkyReelsV4AudioDecode", "inputs": {"audio_codec": ["1", 0], "latent": ["3", 0]}},
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "audio/skyreels_v4_rt"}},
    }
    t0 = time.perf_counter()
    result = comfy_client.run(prompt, timeout=300).raise_for_status()
    _timings["audio_encode_decode"] = round(time.perf_counter() - t0, 2)
    (flac,) = result.paths(comfy_server.output_dir, ".flac")
    with av.open(str(flac)) as container:
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(stream))
        assert stream.codec_context.sample_rate == RATE and stream.codec_context.channels == 1
    assert samples == round(1.0 * RATE)  # the 1 s, 22.05 kHz voice file, resampled and trimmed to its own length


def test_i2v_without_start_image_says_what_to_connect(api_workflow, comfy_client, tiny_models, v4_inputs):
    api = smoke(api_workflow("skyreels_v4_i2av"))
    cond = node_id_of(api, "SkyReelsV4TaskCondition")
    del api[cond]["inputs"]["start_image"]
    api.pop(node_id_of(api, "LoadImage"))
    result = comfy_client.run(api, timeout=300)
    assert result.status == "error" and result.error["node_type"] == "SkyReelsV4TaskCondition"
    message = result.error["exception_message"]
    assert "task 'i2v' needs start_image" in message and "connect it" in message, message


def test_bad_frames_and_mask_size_errors_name_the_fix(api_workflow, comfy_client, comfy_server, tiny_models,
                                                      v4_inputs):
    result = comfy_client.run(smoke(api_workflow("skyreels_v4_t2av"), frames=10), timeout=300)
    assert result.status == "error" and result.error["node_type"] == "SkyReelsV4EmptyAVLatent"
    assert "Nearest valid value: 9" in result.error["exception_message"], result.error["exception_message"]

    api = smoke(api_workflow("skyreels_v4_inpaint_edit"))
    api[node_id_of(api, "LoadImageMask")]["inputs"]["image"] = NAMES["ref"]  # 64x48: not the clip's 64x64
    result = comfy_client.run(api, timeout=300)
    assert result.status == "error" and result.error["node_type"] == "SkyReelsV4TaskCondition"
    message = result.error["exception_message"]
    assert f"[{CLIP_FRAMES}, {CLIP_SIZE}, {CLIP_SIZE}]" in message and "static mask" in message, message
    # the server is fine afterwards
    ok = comfy_client.run(smoke(api_workflow("skyreels_v4_t2av"), steps=1), timeout=300).raise_for_status()
    assert ok.paths(comfy_server.output_dir, ".mp4")
