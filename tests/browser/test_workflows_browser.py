"""The shipped SkyReels workflows in the real frontend (comfyui-frontend-package 1.32.9, Chromium): each loads with
no missing-nodes dialog, keeps its saved widget values, snaps width/height/frames as they are edited and shows the
duration (web/skyreels.js), runs from the Run button to success, and the sampler shows its live status line.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import setup_test_host
from comfy_host import workflow_path

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
START_IMAGE = WORKFLOWS / "example_inputs" / "skyreels_i2v_start.png"
SIZE_NODES = ("SkyReelsEmptyVideoLatent", "SkyReelsImageToVideo")

# Edit widgets the way the canvas does (BaseWidget.setValue -> callback + node.onWidgetChanged); return what stuck.
EDIT_JS = r"""
({type, edits}) => {
  const node = app.graph.nodes.find(n => n.comfyClass === type);
  const out = {};
  for (const [name, value] of Object.entries(edits)) {
    const w = node.widgets.find(w => w.name === name);
    w.setValue(value, {e: undefined, node, canvas: app.canvas});
    out[name] = w.value;
  }
  out.info = node.skyreelsInfo;
  return out;
}
"""

SAMPLER_STATUS_JS = r"""
() => {
  const node = app.graph.nodes.find(n => n.comfyClass === "SkyReelsSampler");
  const text = node.widgets?.find(w => w.name === "$$node-text-preview");
  return {status: node.skyreelsStatus ?? null, progress: node.skyreelsProgress ?? null,
          text_widget: text ? String(text.value) : null};
}
"""

GRAPH_CHANGED_JS = "() => app.extensionManager.workflow.activeWorkflow.changeTracker.checkState()"


@pytest.fixture(scope="module")
def tiny_models(comfy_server) -> Path:
    assert setup_test_host.tiny_models_stamp(comfy_server.host).is_file(), (
        "no tiny checkpoints: run python3.11 scripts/setup_test_host.py")
    return comfy_server.models_dir


@pytest.fixture(scope="module")
def start_image(comfy_server):
    comfy_server.input_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(START_IMAGE, comfy_server.input_dir / START_IMAGE.name)
    return START_IMAGE.name


@pytest.mark.parametrize("name", ["skyreels_v2_t2v", "skyreels_v2_i2v"])
def test_workflow_loads_snaps_and_runs_from_ui(name, comfy_page, tiny_models, start_image):
    workflow = json.loads(workflow_path(name).read_text())
    comfy_page.load_workflow(workflow)
    assert comfy_page.missing_nodes_dialog() is None
    comfy_page.assert_saved_widgets_kept(workflow)  # the extension adds no widget

    size_type = next(n["type"] for n in workflow["nodes"] if n["type"] in SIZE_NODES)
    loaded = comfy_page.evaluate(EDIT_JS, {"type": size_type, "edits": {}})
    assert loaded["info"] == "960x544, 97 frames = 4.04 s at 24 fps"  # fps from the graph's Create Video node

    # Smoke size for the CPU host, typed off-grid: the widgets snap to multiples of 16 and to 4n+1 frames.
    snapped = comfy_page.evaluate(EDIT_JS, {"type": size_type, "edits": {"width": 70, "height": 50, "frames": 10}})
    assert snapped == {"width": 64, "height": 48, "frames": 9, "info": "64x48, 9 frames = 0.38 s at 24 fps"}
    # a core node's edit reaches our nodes through the frontend's change tracker ("graphChanged"), which the canvas
    # runs after each mouse/key action
    comfy_page.evaluate(EDIT_JS, {"type": "CreateVideo", "edits": {"fps": 16}})
    comfy_page.evaluate(GRAPH_CHANGED_JS)
    assert comfy_page.evaluate(EDIT_JS, {"type": size_type, "edits": {}})["info"].endswith("= 0.56 s at 16 fps")
    comfy_page.evaluate(EDIT_JS, {"type": "CreateVideo", "edits": {"fps": 24}})
    seed = random.randrange(1, 2**31)  # a new seed: the server must not answer from its cache of earlier runs
    sampler = comfy_page.evaluate(EDIT_JS, {"type": "SkyReelsSampler", "edits": {"steps": 3, "seed": seed}})
    assert (sampler["steps"], sampler["seed"]) == (3, seed)

    comfy_page.fit_view()
    prompt_id, entry = comfy_page.queue_from_ui(timeout=600)
    assert entry["status"]["status_str"] == "success", entry["status"]
    prompt = entry["prompt"][2]
    size_node = next(n for n in prompt.values() if n["class_type"] == size_type)
    assert (size_node["inputs"]["width"], size_node["inputs"]["height"], size_node["inputs"]["frames"]) == (64, 48, 9)
    videos = [v for out in entry["outputs"].values() for k, vs in out.items() if k in ("images", "videos")
              for v in vs if str(v.get("filename", "")).endswith(".mp4")]
    assert videos, entry["outputs"]

    comfy_page.page.wait_for_function(
        "() => (app.graph.nodes.find(n => n.comfyClass === 'SkyReelsSampler').skyreelsStatus || '')"
        ".startsWith('step 3/3')", timeout=10_000)
    status = comfy_page.evaluate(SAMPLER_STATUS_JS)
    assert status["status"].startswith("step 3/3 · ") and " s/step · ETA 0:00" in status["status"], status
    assert status["progress"]["total"] == 3 and status["progress"]["s_per_step"] > 0
    if comfy_page.progress_text_cleared_after_run:  # frontend 1.58+ empties the progress text when the run ends
        assert not status["text_widget"], status
    else:
        assert status["text_widget"] is not None and status["text_widget"].startswith("step 3/3"), status
    comfy_page.screenshot(f"{name}_ran")
    # (the frontend's registry lookup of the pack, blocked offline by its own CSP, is not an error of ours)
    ours = [e for e in comfy_page.errors if "skyreels" in e.lower() and "api.comfy.org" not in e]
    assert not ours, ours
