"""The SkyReels-V2 diffusion-forcing workflows in the real frontend (comfyui-frontend-package 1.32.9, Chromium): each
loads with no missing-nodes dialog and keeps its saved widget values, runs from the Run button at a smoke size to
success, writes an mp4 with exactly the requested frames, and the DF sampler shows its "window k/n · step" status.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from comfy_host import workflow_path
from test_df_e2e import SMOKE, df_inputs  # noqa: F401  (fixture: generated start image and clip)
from test_workflows_browser import EDIT_JS, tiny_models  # noqa: F401  (fixture)
from test_workflows_e2e import probe

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
DF = "SkyReelsDFSampler"
STATUS_JS = r"""
() => {
  const node = app.graph.nodes.find(n => n.comfyClass === "SkyReelsDFSampler");
  const text = node.widgets?.find(w => w.name === "$$node-text-preview");
  return text ? String(text.value) : null;
}
"""
SKYREELS_STATUS_JS = r"""
() => app.graph.nodes.find(n => n.comfyClass === "SkyReelsDFSampler").skyreelsStatus
"""


@pytest.mark.parametrize(("name", "frames", "steps"), [
    ("skyreels_v2_df_long_t2v", 25, 9),  # 3 windows of 3 steps
    ("skyreels_v2_df_i2v", 21, 6),  # start image + 2 windows
    ("skyreels_v2_df_extend", 25, 6),  # 9-frame clip + 2 windows
])  # fmt: skip
def test_df_workflow_loads_and_runs_from_ui(name, frames, steps, comfy_page, tiny_models, df_inputs):  # noqa: F811
    workflow = json.loads(workflow_path(name).read_text())
    comfy_page.load_workflow(workflow)
    assert comfy_page.missing_nodes_dialog() is None
    comfy_page.assert_saved_widgets_kept(workflow)

    seed = random.randrange(1, 2**31)  # a new seed: the server must not answer from its cache of earlier runs
    edits = {k: SMOKE[k] for k in ("width", "height", "steps", "base_num_frames", "overlap_history", "cfg")}
    edits.update(num_frames=frames, seed=seed)
    got = comfy_page.evaluate(EDIT_JS, {"type": DF, "edits": edits})
    assert {k: got[k] for k in edits} == edits

    comfy_page.fit_view()
    _, entry = comfy_page.queue_from_ui(timeout=600)
    assert entry["status"]["status_str"] == "success", entry["status"]
    prompt = entry["prompt"][2]
    (df,) = [n for n in prompt.values() if n["class_type"] == DF]
    assert {k: df["inputs"][k] for k in edits} == edits
    videos = [v for out in entry["outputs"].values() for k, vs in out.items() if k in ("images", "videos")
              for v in vs if str(v.get("filename", "")).endswith(".mp4")]
    assert len(videos) == 1, entry["outputs"]
    mp4 = comfy_page.server.output_dir / videos[0].get("subfolder", "") / videos[0]["filename"]
    assert probe(mp4) == (frames, SMOKE["width"], SMOKE["height"], 24.0)

    windows = {9: 3, 6: 2}[steps]
    expected = f"window {windows}/{windows} · step {steps}/{steps} · "
    # the node's progress text (frontend 1.58+ empties it when the run ends: then the extension's status line)
    status_js = SKYREELS_STATUS_JS if comfy_page.progress_text_cleared_after_run else STATUS_JS
    comfy_page.page.wait_for_function(f"() => String(({status_js})() || '').startsWith({json.dumps(expected)})",
                                      timeout=10_000)
    comfy_page.screenshot(f"{name}_ran")
    ours = [e for e in comfy_page.errors if "skyreels" in e.lower() and "api.comfy.org" not in e]
    assert not ours, ours
