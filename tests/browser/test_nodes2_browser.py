"""web/skyreels.js with "Nodes 2.0" (Vue nodes, setting Comfy.VueNodes.Enabled) on and off, in the real frontend
(comfyui-frontend-package 1.32.9, Chromium): the duration line is visible and right (also on the DF sampler), a typed
off-grid value snaps and the box shows the snapped value, the sampler's status line shows during a run and is cleared
after Cancel, and no two nodes of a shipped workflow overlap (room left under the samplers for the live preview).
Screenshots: artifacts/screenshots/nodes2_<mode>_*.png."""

from __future__ import annotations

import json
import random
import re

import pytest
from comfy_host import workflow_files, workflow_path
from test_workflows_browser import EDIT_JS, tiny_models  # noqa: F401  (fixture)

VUE_SETTING = "Comfy.VueNodes.Enabled"
MODES = {"nodes2": True, "classic": False}
VUE_PROGRESS_TEXT_FRONTEND = (1, 58)  # Vue nodes draw the backend's progress text (a markdown box) from 1.58
PREVIEW_ROOM = 250  # px under a sampler's widgets for the live preview image and the progress text

SET_MODE_JS = (f"async (on) => {{ await app.extensionManager.setting.set('{VUE_SETTING}', on); "
               f"return app.extensionManager.setting.get('{VUE_SETTING}'); }}")
FOCUS_JS = r"""
(type) => {
  const n = app.graph.nodes.find(n => n.comfyClass === type);
  const h = n.size[1];  // a tall node: its bottom (where our line is) in view
  app.canvas.ds.scale = 1; app.canvas.ds.offset = [-n.pos[0] + 150, h > 500 ? -(n.pos[1] + h) + 700 : -n.pos[1] + 150];
  app.canvas.setDirty(true, true);
  return n.id;
}
"""
# A Vue node's number box for a widget: the input carries the widget name as aria-label up to frontend 1.5x; on
# 1.58.1 the label is on the box around the input.
BOX_SELECTOR = 'input[aria-label="{name}"], [aria-label="{name}"] input'
SCROLL_TO_JS = r"""
([id, name]) => {  // pan the canvas so a Vue node's number box is on screen
  const boxSelector = (n) => `:is(input[aria-label="${n}"], [aria-label="${n}"] input)`;
  const r = document.querySelector(`[data-node-id="${id}"] ${boxSelector(name)}`).getBoundingClientRect();
  const s = app.canvas.ds.scale;
  app.canvas.ds.offset[0] += (500 - r.left) / s; app.canvas.ds.offset[1] += (400 - r.top) / s;
  app.canvas.setDirty(true, true);
}
"""
# The line as the user sees it: the DOM element's text, and whether it is laid out and on screen.
INFO_JS = r"""
(type) => {
  const n = app.graph.nodes.find(n => n.comfyClass === type);
  const el = n.skyreelsInfoElement;
  if (!el) return null;
  const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
  const visible = el.isConnected && r.width > 50 && r.height >= 14 && cs.visibility !== "hidden" && cs.display !== "none"
    && r.bottom > 0 && r.top < innerHeight;
  return {text: el.textContent, visible, status: n.skyreelsStatus ?? null,
          values: Object.fromEntries(n.widgets.map(w => [w.name, w.value]))};
}
"""
# Texts of the visible on-screen elements that show a status line "step k/n · ..." (ours or the frontend's).
SHOWN_STATUS_JS = r"""
() => Array.from(document.querySelectorAll("body *")).filter(e => {
  const text = (e.textContent || "").trim();  // (a markdown box and its paragraph: one line)
  if (!/^step \d+\/\d+ · /.test(text) || [...e.children].some(c => c.textContent.trim() === text))
    return false;
  const r = e.getBoundingClientRect(), cs = getComputedStyle(e);
  return r.width > 50 && r.height >= 10 && r.bottom > 0 && r.top < innerHeight && cs.visibility !== "hidden";
}).map(e => e.textContent.trim())
"""
# Boxes in canvas units: Vue nodes from their DOM element, classic nodes from LiteGraph (title bar included).
BOXES_JS = r"""
(vue) => app.graph.nodes.map(n => {
  if (vue) {
    const el = document.querySelector(`[data-node-id="${n.id}"]`);
    const r = el.getBoundingClientRect(), s = app.canvas.ds.scale, [ox, oy] = app.canvas.ds.offset;
    const c = app.canvas.canvas.getBoundingClientRect();
    return {id: n.id, type: n.comfyClass ?? n.type,
            box: [(r.left - c.left) / s - ox, (r.top - c.top) / s - oy, r.width / s, r.height / s]};
  }
  const b = n.getBounding(); return {id: n.id, type: n.comfyClass ?? n.type, box: [b[0], b[1], b[2], b[3]]};
})
"""


@pytest.fixture(params=list(MODES), ids=list(MODES))
def mode_page(request, comfy_page):
    on = MODES[request.param]
    assert comfy_page.evaluate(SET_MODE_JS, on) is on
    yield request.param, comfy_page
    comfy_page.evaluate(SET_MODE_JS, False)  # the setting is stored on the server: leave it as other tests expect


def load(page, name):
    page.load_workflow(json.loads(workflow_path(name).read_text()))
    assert page.missing_nodes_dialog() is None


def type_value(mode, page, node_type, name, value):
    """Enter a value the way a user does in each renderer: typed into the Vue node's number box, or set through the
    canvas widget (what the canvas's prompt dialog calls)."""
    if mode == "nodes2":
        node_id = page.evaluate(FOCUS_JS, node_type)
        page.page.wait_for_timeout(200)
        page.evaluate(SCROLL_TO_JS, [node_id, name])
        page.page.wait_for_timeout(300)
        box = page.page.locator(f'[data-node-id="{node_id}"] :is({BOX_SELECTOR.format(name=name)})')
        box.focus()  # (frontend 1.58 lays a drag-to-scrub layer over the box; a click there starts a drag)
        box.press("Control+a")
        box.type(str(value), delay=30)
        box.press("Tab")
        page.page.wait_for_timeout(300)
        return box.input_value()
    page.evaluate(EDIT_JS, {"type": node_type, "edits": {name: value}})
    page.page.wait_for_timeout(100)
    return None


def test_duration_line_and_snapping(mode_page):
    mode, page = mode_page
    load(page, "skyreels_v2_t2v")
    page.evaluate(FOCUS_JS, "SkyReelsEmptyVideoLatent")
    page.page.wait_for_timeout(400)
    info = page.evaluate(INFO_JS, "SkyReelsEmptyVideoLatent")
    assert info["visible"] and info["text"] == "960x544, 97 frames = 4.04 s at 24 fps", info

    shown = type_value(mode, page, "SkyReelsEmptyVideoLatent", "frames", 70)
    shown_w = type_value(mode, page, "SkyReelsEmptyVideoLatent", "width", 70)
    info = page.evaluate(INFO_JS, "SkyReelsEmptyVideoLatent")
    assert (info["values"]["frames"], info["values"]["width"]) == (69, 64), info
    if mode == "nodes2":
        assert (shown, shown_w) == ("69", "64")  # the box shows the value that will be used
    assert info["visible"] and info["text"] == "64x544, 69 frames = 2.88 s at 24 fps", info
    prompt = page.graph_to_prompt()
    (latent,) = [n for n in prompt.values() if n["class_type"] == "SkyReelsEmptyVideoLatent"]
    assert (latent["inputs"]["frames"], latent["inputs"]["width"]) == (69, 64)
    assert "skyreels_info" not in latent["inputs"]
    page.evaluate(FOCUS_JS, "SkyReelsEmptyVideoLatent")
    page.page.wait_for_timeout(300)
    page.screenshot(f"nodes2_{mode}_snapped")

    load(page, "skyreels_v2_df_long_t2v")  # the DF sampler has its own frames and fps
    page.evaluate(FOCUS_JS, "SkyReelsDFSampler")
    page.page.wait_for_timeout(400)
    info = page.evaluate(INFO_JS, "SkyReelsDFSampler")
    frames, fps = info["values"]["num_frames"], info["values"]["fps"]
    w, h = info["values"]["width"], info["values"]["height"]
    assert info["visible"] and info["text"].split("\n")[0] == f"{w}x{h}, {frames} frames = {frames / fps:.2f} s at {fps} fps"
    type_value(mode, page, "SkyReelsDFSampler", "num_frames", 30)
    page.evaluate(FOCUS_JS, "SkyReelsDFSampler")
    page.page.wait_for_timeout(300)
    info = page.evaluate(INFO_JS, "SkyReelsDFSampler")
    assert info["values"]["num_frames"] == 29 and f", 29 frames = {29 / fps:.2f} s at {fps} fps" in info["text"]
    page.screenshot(f"nodes2_{mode}_df_sampler")
    ours = [e for e in page.errors if "skyreels" in e.lower() and "api.comfy.org" not in e]
    assert not ours, ours


def test_status_line_during_run_and_cleared_after_cancel(mode_page, tiny_models):  # noqa: F811
    mode, page = mode_page
    load(page, "skyreels_v2_t2v")
    page.evaluate(EDIT_JS, {"type": "SkyReelsEmptyVideoLatent", "edits": {"width": 32, "height": 32, "frames": 5}})
    seed = random.randrange(1, 2**31)  # a new seed: the server must not answer from its cache
    page.evaluate(EDIT_JS, {"type": "SkyReelsSampler", "edits": {"steps": 500, "seed": seed}})
    page.evaluate(FOCUS_JS, "SkyReelsSampler")
    page.page.get_by_role("button", name=re.compile(r"^\s*Run\s*$")).first.click()
    page.page.wait_for_function(
        "() => /^step [2-9]\\d*\\/500 · /.test(app.graph.nodes.find(n => n.comfyClass === 'SkyReelsSampler')"
        ".skyreelsStatus || '')", timeout=300_000)
    page.page.wait_for_timeout(200)
    shown = page.evaluate(SHOWN_STATUS_JS)
    assert len(shown) == 1 and re.match(r"^step \d+/500 · [\d.]+ s/step · ETA \d+:\d\d", shown[0]), shown
    info = page.evaluate(INFO_JS, "SkyReelsSampler")
    assert info["visible"]
    if mode == "nodes2" and page.frontend_version < VUE_PROGRESS_TEXT_FRONTEND:
        assert info["text"].startswith("step "), info  # these Vue nodes do not draw the progress text: our line does
    page.screenshot(f"nodes2_{mode}_running")

    page.client.post_json("/interrupt", {})  # what the Cancel button sends
    page.page.wait_for_function(
        "() => app.graph.nodes.find(n => n.comfyClass === 'SkyReelsSampler').skyreelsStatus === null", timeout=60_000)
    page.page.wait_for_timeout(300)
    assert page.evaluate(SHOWN_STATUS_JS) == []  # no line keeps showing the last step
    assert page.evaluate(INFO_JS, "SkyReelsSampler")["text"] == ""
    page.page.wait_for_timeout(300)
    page.screenshot(f"nodes2_{mode}_cancelled")


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_shipped_layout_has_no_overlaps(path, mode_page):
    mode, page = mode_page
    page.load_workflow(json.loads(path.read_text()))
    page.evaluate("() => { app.canvas.ds.scale = 1; app.canvas.setDirty(true, true); }")
    page.page.wait_for_timeout(500)
    boxes = page.evaluate(BOXES_JS, mode == "nodes2")
    clashes = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = a["box"], b["box"]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                clashes.append((a["type"], b["type"]))
    assert not clashes, f"{path.name} ({mode}): overlapping nodes {clashes}"
    if mode == "classic":  # room for the live preview inside each sampler, below its widgets
        room = page.evaluate(r"""() => app.graph.nodes.filter(n =>
          /^SkyReels.*Sampler$|^SkyReelsV3(ReferenceToVideo|ExtendVideo|ShotSwitch|TalkingAvatar)$/.test(n.comfyClass))
          .map(n => n.size[1] - n.computeSize()[1])""")
        assert room and min(room) >= PREVIEW_ROOM, f"{path.name}: free height under the samplers {room}"
