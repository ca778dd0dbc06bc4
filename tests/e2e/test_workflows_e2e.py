"""The shipped SkyReels workflows in a real ComfyUI server: they run via /prompt and write an mp4 with the requested
frame count, size and fps; bad inputs end in an execution_error that says what to change (and the server serves
the next prompt); POST /interrupt during sampling stops within one step.

The workflows ship with real-use settings (960x544, 97 frames, 30 steps). On this CPU host they run with the tiny
checkpoints at a smoke size (SMOKE below), set on the API graph exactly as a user would change the widgets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest

REPO = Path(__file__).resolve().parents[2]
START_IMAGE = REPO / "workflows" / "example_inputs" / "skyreels_i2v_start.png"
SMOKE = {"width": 64, "height": 48, "frames": 9, "steps": 3}
SIZE_NODES = ("SkyReelsEmptyVideoLatent", "SkyReelsImageToVideo")


def nodes_of(api: dict, class_type: str) -> list[dict]:
    return [n for n in api.values() if n["class_type"] == class_type]


def node_id_of(api: dict, class_type: str) -> str:
    (nid,) = [k for k, n in api.items() if n["class_type"] == class_type]
    return nid


def smoke(api: dict, **overrides) -> dict:
    """Set width/height/frames on the size node and steps on the sampler (what a user edits in the widgets)."""
    values = dict(SMOKE, **overrides)
    for node in api.values():
        if node["class_type"] in SIZE_NODES:
            node["inputs"].update({k: values[k] for k in ("width", "height", "frames")})
        if node["class_type"] == "SkyReelsSampler":
            node["inputs"]["steps"] = values["steps"]
    return api


@pytest.fixture(scope="module")
def start_image(comfy_server):
    comfy_server.input_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(START_IMAGE, comfy_server.input_dir / START_IMAGE.name)
    return START_IMAGE.name


def probe(path: Path) -> tuple[int, int, int, float]:
    """(frames, width, height, fps) of an mp4, decoding every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.codec_context.width, stream.codec_context.height, float(stream.average_rate)


@pytest.mark.parametrize("name", ["skyreels_v2_t2v", "skyreels_v2_i2v"])
def test_workflow_writes_mp4(name, api_workflow, comfy_client, comfy_server, tiny_models, start_image):
    api = smoke(api_workflow(name))
    fps = nodes_of(api, "CreateVideo")[0]["inputs"]["fps"]
    assert fps == 24  # SkyReels-V2 renders at 24 fps
    result = comfy_client.run(api, timeout=600).raise_for_status()
    sampler = node_id_of(api, "SkyReelsSampler")
    steps = [v for v, _ in result.steps(sampler)]
    assert steps == list(range(1, SMOKE["steps"] + 1)), result.custom_events
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    assert probe(mp4) == (SMOKE["frames"], SMOKE["width"], SMOKE["height"], 24.0)


def test_bad_frames_error_says_the_nearest_valid_value(api_workflow, comfy_client, comfy_server, tiny_models):
    result = comfy_client.run(smoke(api_workflow("skyreels_v2_t2v"), frames=50), timeout=300)
    assert result.status == "error"
    assert result.error["node_type"] == "SkyReelsEmptyVideoLatent"
    message = result.error["exception_message"]
    assert "4n+1" in message and "Nearest valid value: 49" in message, message
    # the server is fine afterwards
    good = comfy_client.run(smoke(api_workflow("skyreels_v2_t2v"), steps=1), timeout=300).raise_for_status()
    assert good.paths(comfy_server.output_dir, ".mp4")


def test_vae_picked_as_model_names_the_file_kind(api_workflow, comfy_client, comfy_server, tiny_models):
    wrong = tiny_models / "diffusion_models" / "wan_2.1_vae_in_wrong_folder.safetensors"
    shutil.copy(tiny_models / "vae" / "wan_2.1_vae_tiny.safetensors", wrong)
    try:
        api = smoke(api_workflow("skyreels_v2_t2v"), steps=1)
        nodes_of(api, "SkyReelsModelLoader")[0]["inputs"]["model_name"] = wrong.name
        result = comfy_client.run(api, timeout=300)
    finally:
        wrong.unlink()
    assert result.status == "error" and result.error["node_type"] == "SkyReelsModelLoader"
    message = result.error["exception_message"]
    assert wrong.name in message and "vae" in message.lower(), message
    comfy_client.run(smoke(api_workflow("skyreels_v2_t2v"), steps=1), timeout=300).raise_for_status()


def test_interrupt_stops_sampling_within_one_step(api_workflow, comfy_client, tiny_models):
    api = smoke(api_workflow("skyreels_v2_t2v"), width=128, height=96, frames=17, steps=40)
    sampler = node_id_of(api, "SkyReelsSampler")
    seen: list[int] = []

    def on_event(kind, data):
        if kind == "skyreels.progress" and str(data.get("node")) == sampler and data["text"]:
            seen.append(data["step"])
            if len(seen) == 1:
                comfy_client.interrupt()

    result = comfy_client.run(api, on_event=on_event, timeout=600)
    assert result.status == "interrupted", result.status
    assert seen and seen[0] == 1 and max(seen) <= 2, seen  # the step running when Cancel arrived, no more
    comfy_client.run(smoke(api_workflow("skyreels_v2_t2v"), steps=1), timeout=300).raise_for_status()
