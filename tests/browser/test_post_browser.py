"""The upscaling / frame-rate templates in the real frontend (Chromium): "SkyReels-V2 Long Video to 1080p 48 fps" and
"SkyReels-V4 Cinematic 1080p 32 fps" load with no missing-nodes notice and no missing-model notice (the test host has
the tiny files under the released names, including models/frame_interpolation, which ComfyUI 0.3.75 only has
because the pack registers it), convert exactly as app.graphToPrompt does, and run from the Run button at a smoke
size (widgets edited in the page) to an mp4 shown by Save Video. Screenshots: artifacts/screenshots/post_<name>.png.
"""

from __future__ import annotations

import json
import random

import pytest
from comfy_host import workflow_path
from test_v4_browser import EDIT_JS, frontend_prompt
from test_workflows_browser import tiny_models  # noqa: F401  (fixture)
from workflow_to_api import workflow_to_api

# template -> {node type: widget edits} (a smoke size; the seed makes the server run it again)
EDITS = {
    "skyreels_v2_df_upscale": {
        "SkyReelsDFSampler": {"width": 64, "height": 48, "num_frames": 17, "base_num_frames": 13,
                              "overlap_history": 5, "steps": 2},
        "SkyReelsUpscaleVideo": {"tile": 32, "overlap": 8},
    },
    "skyreels_v4_cinematic": {
        "SkyReelsV4EmptyAVLatent": {"width": 32, "height": 32, "frames": 9},
        "SkyReelsV4Sampler": {"steps": 2},
        "SkyReelsV4Keyframes": {"width": 64, "height": 64, "count": 2},
        "SkyReelsV4Refine": {"width": 64, "height": 64, "steps": 2},
        "SkyReelsV4Decode": {"tile_size": 0},
    },
}
SEEDED = {"skyreels_v2_df_upscale": "SkyReelsDFSampler", "skyreels_v4_cinematic": "SkyReelsV4Refine"}


@pytest.mark.parametrize("name", list(EDITS))
def test_post_template_loads_converts_and_runs_from_ui(name, comfy_page, object_info, tiny_models):  # noqa: F811
    workflow = json.loads(workflow_path(name).read_text())
    comfy_page.load_workflow(workflow)
    assert comfy_page.missing_nodes_dialog() is None, comfy_page.missing_nodes_dialog()
    assert workflow_to_api(workflow, object_info, registry_meta=comfy_page.registry_meta) == frontend_prompt(comfy_page)

    edits = {node: dict(values) for node, values in EDITS[name].items()}
    edits[SEEDED[name]]["seed"] = random.randrange(1, 2**31)
    for node_type, values in edits.items():
        assert comfy_page.evaluate(EDIT_JS, {"type": node_type, "edits": values}) == values

    comfy_page.fit_view()
    _, entry = comfy_page.queue_from_ui(timeout=900)
    assert entry["status"]["status_str"] == "success", entry["status"]
    sent = entry["prompt"][2]
    for node_type, values in edits.items():
        node = next(n for n in sent.values() if n["class_type"] == node_type)
        assert {k: node["inputs"][k] for k in values} == values
    videos = [v for out in entry["outputs"].values() for vs in out.values() if isinstance(vs, list)
              for v in vs if isinstance(v, dict) and str(v.get("filename", "")).endswith(".mp4")]
    assert videos, entry["outputs"]
    comfy_page.page.wait_for_timeout(500)
    comfy_page.screenshot(f"post_{name}")
    ours = [e for e in comfy_page.errors if "skyreels" in e.lower() and "api.comfy.org" not in e]
    assert not ours, ours
