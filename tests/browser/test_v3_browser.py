"""The SkyReels-V3 workflows in the real frontend (Chromium): each loads with no missing-nodes notice and no
missing-model notice (the test host has the tiny models under the released folder names), converts exactly as
app.graphToPrompt does, and runs from the Run button to success at a smoke size (widgets edited in the page),
writing an mp4. Screenshots: artifacts/screenshots/v3_<workflow>.png."""

from __future__ import annotations

import json
import random

import pytest
from comfy_host import workflow_path
from test_v4_browser import EDIT_JS, frontend_prompt
from test_workflows_browser import tiny_models  # noqa: F401  (fixture)
from workflow_to_api import workflow_to_api

SAMPLER = {"skyreels_v3_r2v": "SkyReelsV3ReferenceToVideo", "skyreels_v3_extend": "SkyReelsV3ExtendVideo",
           "skyreels_v3_shot_switch": "SkyReelsV3ShotSwitch", "skyreels_v3_talking_avatar": "SkyReelsV3TalkingAvatar"}
SMOKE = {"width": 32, "height": 32, "steps": 2}


@pytest.mark.parametrize("name", list(SAMPLER))
def test_v3_workflow_loads_converts_and_runs_from_ui(name, comfy_page, object_info, tiny_models):  # noqa: F811
    workflow = json.loads(workflow_path(name).read_text())
    comfy_page.load_workflow(workflow)
    assert comfy_page.missing_nodes_dialog() is None, comfy_page.missing_nodes_dialog()
    assert workflow_to_api(workflow, object_info, registry_meta=comfy_page.registry_meta) == frontend_prompt(comfy_page)

    seed = random.randrange(1, 2**31)  # a new seed: the server must not answer from its cache
    edits = dict(SMOKE, seed=seed, **({"duration": 1} if name == "skyreels_v3_r2v" else {}))
    edited = comfy_page.evaluate(EDIT_JS, {"type": SAMPLER[name], "edits": edits})
    assert edited == edits

    comfy_page.fit_view()
    _, entry = comfy_page.queue_from_ui(timeout=900)
    assert entry["status"]["status_str"] == "success", entry["status"]
    sent = next(n for n in entry["prompt"][2].values() if n["class_type"] == SAMPLER[name])
    assert {k: sent["inputs"][k] for k in edits} == edits
    videos = [v for out in entry["outputs"].values() for vs in out.values() if isinstance(vs, list)
              for v in vs if isinstance(v, dict) and str(v.get("filename", "")).endswith(".mp4")]
    assert videos, entry["outputs"]
    comfy_page.page.wait_for_timeout(500)
    comfy_page.screenshot(f"v3_{name}")
    ours = [e for e in comfy_page.errors if "skyreels" in e.lower() and "api.comfy.org" not in e]
    assert not ours, ours
