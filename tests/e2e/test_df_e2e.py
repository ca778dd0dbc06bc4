"""SkyReels-V2 diffusion forcing in a real ComfyUI server: the three DF workflows run via /prompt and write an mp4
with exactly the requested frame count, size and fps; two DF samplers chain through `tail`; a bad setting ends in an
execution_error that says what to change before any sampling step (and the server serves the next prompt); POST
/interrupt during the second window stops within one step.

The workflows ship with real-use settings (960x544, 257 frames, 30 steps); here they run with the tiny checkpoints
at smoke sizes (SMOKE), set on the API graph exactly as a user edits the widgets. The start image and the clip to
extend are the shipped example inputs (workflows/example_inputs/).
"""

from __future__ import annotations

import copy
import random
import shutil
import time
from pathlib import Path

import pytest
from test_workflows_e2e import node_id_of, nodes_of, probe

DF = "SkyReelsDFSampler"
START_IMAGE = "skyreels_df_start.png"
CLIP = "skyreels_df_clip.mp4"
EXAMPLE_INPUTS = Path(__file__).resolve().parents[2] / "workflows" / "example_inputs"
# 64x48 px -> 8x6 latents; base 13 frames = 4 latents, overlap 5 frames = 2 latents: every window adds 2 latents
SMOKE = {"width": 64, "height": 48, "steps": 3, "base_num_frames": 13, "overlap_history": 5, "cfg": 5.0}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def df_inputs(comfy_server):
    """The shipped start image and 9-frame 64x48 h264 clip at 24 fps (workflows/example_inputs/, drawn by
    scripts/make_example_inputs.py), copied into the server's input folder."""
    comfy_server.input_dir.mkdir(parents=True, exist_ok=True)
    for name in (START_IMAGE, CLIP):
        shutil.copy(EXAMPLE_INPUTS / name, comfy_server.input_dir / name)
    return comfy_server.input_dir


def smoke(api: dict, **overrides) -> dict:
    """Smoke settings on every DF sampler (what a user edits in the widgets); a fresh seed defeats the cache."""
    values = dict(SMOKE, seed=random.randrange(1, 2**31), **overrides)
    for node in nodes_of(api, DF):
        node["inputs"].update(values)
    return api


def run_timed(client, api, name, **kw):
    t0 = time.monotonic()
    result = client.run(api, timeout=600, **kw)
    TIMINGS[name] = round(time.monotonic() - t0, 2)
    return result


def df_progress(result, api) -> list[tuple[int, int]]:
    """(step, total) of the DF sampler's steps (its skyreels.progress events: one per step on every version)."""
    return result.steps(node_id_of(api, DF))


@pytest.mark.parametrize(("name", "frames", "windows_steps"), [
    ("skyreels_v2_df_long_t2v", 25, 9),  # 7 latents: windows [0,4) [2,6) [4,7), 3 steps each
    ("skyreels_v2_df_i2v", 21, 6),  # start image (1 latent) + 5 latents: windows [0,4) [2,6)
    ("skyreels_v2_df_extend", 25, 6),  # 9-frame clip (3 latents) + 4 new latents: windows [1,5) [3,7)
])  # fmt: skip
def test_df_workflow_writes_exact_mp4(name, frames, windows_steps, api_workflow, comfy_client, comfy_server,
                                      tiny_models, df_inputs):
    api = smoke(api_workflow(name), num_frames=frames)
    assert nodes_of(api, "CreateVideo")[0]["inputs"]["fps"] == 24 and nodes_of(api, DF)[0]["inputs"]["fps"] == 24
    result = run_timed(comfy_client, api, name).raise_for_status()
    progress = df_progress(result, api)
    # one count over all windows (the VAE encode of the start image / clip has its own bar, reported by ComfyUI)
    assert progress == [(i, windows_steps) for i in range(1, windows_steps + 1)], progress
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    assert probe(mp4) == (frames, SMOKE["width"], SMOKE["height"], 24.0)


def test_two_df_samplers_chain_through_tail(api_workflow, comfy_client, comfy_server, tiny_models):
    api = smoke(api_workflow("skyreels_v2_df_long_t2v"), num_frames=17)
    first = node_id_of(api, DF)
    second = str(max(int(k) for k in api) + 1)
    api[second] = copy.deepcopy(api[first])
    api[second]["inputs"].update(num_frames=25, seed=api[first]["inputs"]["seed"] + 1, extend_latent=[first, 1])
    decode = node_id_of(api, "SkyReelsVAEDecode")
    api[decode]["inputs"]["latent"] = [second, 0]
    result = run_timed(comfy_client, api, "chain").raise_for_status()
    steps = {node: result.steps(node)[-1][1] for node in (first, second)}
    assert steps == {first: 6, second: 9}, steps  # 5 latents: 2 windows; then tail (2) + 5 new latents: 3 windows
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    assert probe(mp4) == (25, SMOKE["width"], SMOKE["height"], 24.0)  # tail (5 frames) + 20 new frames


def test_bad_overlap_fails_before_sampling_with_the_fix(api_workflow, comfy_client, comfy_server, tiny_models):
    api = smoke(api_workflow("skyreels_v2_df_long_t2v"), num_frames=25, overlap_history=13)
    result = run_timed(comfy_client, api, "bad_overlap")
    assert result.status == "error" and result.error["node_type"] == DF, result.error
    message = result.error["exception_message"]
    assert "overlap_history (13) must be smaller than base_num_frames (13)" in message, message
    assert "Lower overlap_history or raise base_num_frames" in message, message
    assert result.progress == [], result.progress  # no step ran (no VAE, no sampling)
    good = run_timed(comfy_client, smoke(api_workflow("skyreels_v2_df_long_t2v"), num_frames=9, steps=1),
                     "after_error").raise_for_status()
    assert good.paths(comfy_server.output_dir, ".mp4")


def test_interrupt_in_the_second_window_stops_within_one_step(api_workflow, comfy_client, tiny_models):
    # 128x96, base 9 (3 latents) / overlap 5 (2): 17 frames = 5 latents in 3 windows of 20 steps
    api = smoke(api_workflow("skyreels_v2_df_long_t2v"), width=128, height=96, num_frames=17, steps=20,
                base_num_frames=9)
    sampler = node_id_of(api, DF)
    seen: list[int] = []

    def on_event(kind, data):
        if kind == "skyreels.progress" and str(data.get("node")) == sampler and data["text"]:
            seen.append(data["step"])
            if data["step"] == 21:  # the first step of window 2
                comfy_client.interrupt()

    result = run_timed(comfy_client, api, "interrupt", on_event=on_event)
    assert result.status == "interrupted", (result.status, seen)
    assert seen[:21] == list(range(1, 22)) and max(seen) <= 22, seen  # the step running at Cancel, no more
    comfy_client.run(smoke(api_workflow("skyreels_v2_df_long_t2v"), num_frames=9, steps=1), timeout=300)\
        .raise_for_status()


def test_zz_report_timings(request):
    """Writes the measured wall times (s, queue to history) of this module's runs to artifacts/df_e2e_timings.txt."""
    out = Path(request.config.rootpath) / "artifacts" / "df_e2e_timings.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{k}\t{v}\n" for k, v in TIMINGS.items()))
    assert TIMINGS, "no run was timed"
