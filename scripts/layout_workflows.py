#!/usr/bin/env python3
"""Lay out the shipped workflows so that no two nodes overlap in any renderer, with room for the live preview.

    python scripts/layout_workflows.py [NAME ...]      # needs the test host; COMFY=newest measures frontend 1.58

Node sizes differ between frontends (1.58 draws nodes taller than 1.32) and between the classic canvas and
"Nodes 2.0" (Vue nodes, sized by their DOM). A fixed grid in the JSON therefore overlaps somewhere. This script
loads each workflow in the real frontend, measures every node's box in both renderers, and re-stacks the nodes:

- columns are kept (nodes whose x are within COLUMN_SNAP of each other), and the order inside a column (by y);
- each node gets the largest box any renderer drew for it, plus GAP on every side; columns sit side by side;
- a sampler (SkyReels*Sampler and the V3 nodes that sample) and a node that shows its result (Save Video) is made
  PREVIEW_ROOM taller than its widgets in the classic canvas, where ComfyUI draws the preview inside the node;
- a Note much wider than a column (the V4 "weights not released" Note) is a banner across the top.

Run it on every tested host, oldest first (COMFY=oldest, then COMFY=newest): each run records the boxes its frontend
drew (artifacts/layout_boxes.json) and lays out with the largest box any recorded frontend drew. The browser test
test_shipped_layout_has_no_overlaps checks the result on every tested frontend in both renderers. `build_graph(page, nodes, links)`
and `layout(page, workflow)` are what make_v3_workflows.py / make_v4_workflows.py build new templates with.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "scripts", REPO / "tests" / "e2e", REPO / "tests" / "browser"):
    sys.path.insert(0, str(p))

import comfy_host  # noqa: E402
import templates  # noqa: E402

LOG = logging.getLogger("layout_workflows")
VUE_SETTING = "Comfy.VueNodes.Enabled"
GAP = 50  # px between boxes (canvas units at scale 1)
COLUMN_SNAP = 120  # nodes whose x differ by less are one column
PREVIEW_ROOM = 280  # px under a sampler's widgets (the browser test asks for 250)
ORIGIN = (40, 40)
SAMPLER_TYPES = ("SkyReelsV3ReferenceToVideo", "SkyReelsV3ExtendVideo", "SkyReelsV3ShotSwitch", "SkyReelsV3TalkingAvatar")
OUTPUT_TYPES = ("SaveVideo", "PreviewImage", "SaveImage", "PreviewAny")  # show the result inside the node
NOTE_HEIGHT = 160  # a Note tall enough to read without scrolling its box
BOXES_SEEN = REPO / "artifacts" / "layout_boxes.json"  # {frontend version: {workflow: {node id: box}}}
SIDES = ("left", "top", "right", "bottom")

# Every node's box in canvas units relative to its pos, in the current renderer: Vue nodes from their DOM element,
# classic nodes from LiteGraph (title bar included); for classic also computeSize (the widgets' own height).
MEASURE_JS = r"""
async ([wf, vue, VUE_SETTING]) => {
  await app.extensionManager.setting.set(VUE_SETTING, vue);
  await app.loadGraphData(wf);
  app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0]; app.canvas.setDirty(true, true);
  await new Promise(r => setTimeout(r, 700));
  const c = app.canvas.canvas.getBoundingClientRect();
  return app.graph.nodes.map(n => {
    let box;
    if (vue) {
      const r = document.querySelector(`[data-node-id="${n.id}"]`).getBoundingClientRect();
      const s = app.canvas.ds.scale, [ox, oy] = app.canvas.ds.offset;
      box = [(r.left - c.left) / s - ox, (r.top - c.top) / s - oy, r.width / s, r.height / s];
    } else { const b = n.getBounding(); box = [b[0], b[1], b[2], b[3]]; }
    return {id: Number(n.id), pos: [n.pos[0], n.pos[1]], box, min: vue ? null : n.computeSize()};
  });
}
"""


# Create a graph node by node with LiteGraph, as a user does on the canvas, and return what saving writes.
# nodes: {key: [type, column, row, {widget: value}, title or null]}; links: [[src key, slot, dst key, input name]].
BUILD_JS = r"""
async ({nodes, links}) => {
  app.graph.clear();
  const made = {};
  let order = 0;
  for (const [key, [type, col, row, widgets, title]] of Object.entries(nodes)) {
    const n = LiteGraph.createNode(type);
    if (!n) throw new Error("unknown node type " + type);
    n.pos = [40 + col * 430, 40 + row * 210];
    if (title) n.title = title;
    for (const [name, value] of Object.entries(widgets)) {
      const w = n.widgets.find(w => w.name === name);
      if (!w) throw new Error(type + " has no widget " + name);
      w.value = value;
    }
    app.graph.add(n);
    made[key] = n;
  }
  for (const [src, slot, dst, input] of links) {
    const d = made[dst], i = d.inputs.findIndex(x => x.name === input);
    if (i < 0) throw new Error(dst + " has no input " + input);
    if (!made[src].connect(slot, d, i)) throw new Error("cannot connect " + src + " -> " + dst + "." + input);
  }
  for (const n of app.graph.nodes) { const s = n.computeSize(); n.size = [Math.max(n.size[0], 380), s[1]]; }
  app.graph.setDirtyCanvas(true, true);
  return JSON.parse(JSON.stringify(app.graph.serialize()));  // drops undefined fields, as saving does
}
"""


def build_graph(page, nodes: dict, links: list) -> dict:
    """The saved (UI-format) workflow of a graph built in the page's frontend (BUILD_JS); lay it out with layout()."""
    return page.evaluate(BUILD_JS, {"nodes": nodes, "links": links})


def finish_template(page, name: str, workflow: dict) -> dict:
    """A built graph -> the shipped template: the frontend version it was saved with, real model names and
    metadata (templates.apply), laid out."""
    version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__")
    workflow["extra"] = {"ds": {"scale": 0.6, "offset": [20, 20]}, "frontendVersion": version}
    return layout(page, templates.apply(workflow), key=templates.workflow_path(name).stem)


def write_templates(names, build, prepare_inputs=None) -> None:
    """Build each named template with build(page, name) in one frontend page and write workflows/<title>.json."""
    with comfy_host.frontend_page((1920, 1200), prepare_inputs) as page:
        for name in names:
            path = templates.workflow_path(name)
            path.write_text(templates.dumps(build(page, name)))
            LOG.info("wrote %s", path.name)


def is_sampler(node: dict) -> bool:
    t = node["type"]
    return (t.startswith("SkyReels") and t.endswith("Sampler")) or t in SAMPLER_TYPES


def room_below(node: dict) -> int:
    """Free height wanted under a node's widgets in the classic canvas."""
    return PREVIEW_ROOM if is_sampler(node) or node["type"] in OUTPUT_TYPES else 0


def measure(page, workflow: dict) -> dict[int, dict]:
    """id -> {left, top, right, bottom} relative to pos (the largest over both renderers), min (classic size)."""
    out: dict[int, dict] = {}
    for vue in (False, True):
        for m in page.evaluate(MEASURE_JS, [workflow, vue, VUE_SETTING]):
            (px, py), (bx, by, bw, bh) = m["pos"], m["box"]
            rel = {"left": bx - px, "top": by - py, "right": bx + bw - px, "bottom": by + bh - py}
            cur = out.setdefault(int(m["id"]), {"left": 0.0, "top": 0.0, "right": 0.0, "bottom": 0.0, "min": None})
            for k in ("left", "top"):
                cur[k] = min(cur[k], rel[k])
            for k in ("right", "bottom"):
                cur[k] = max(cur[k], rel[k])
            if m["min"] is not None:
                cur["min"] = m["min"]
    page.evaluate(f"async () => app.extensionManager.setting.set('{VUE_SETTING}', false)")
    return out


def _columns(nodes: list[dict]) -> list[list[dict]]:
    cols: list[list[dict]] = []
    for node in sorted(nodes, key=lambda n: n["pos"][0]):
        if cols and node["pos"][0] - cols[-1][0]["pos"][0] < COLUMN_SNAP:
            cols[-1].append(node)
        else:
            cols.append([node])
    return [sorted(c, key=lambda n: n["pos"][1]) for c in cols]


def merged_boxes(page, key: str | None, boxes: dict[int, dict]) -> dict[int, dict]:
    """The boxes measured here, stored in BOXES_SEEN under this frontend's version, widened by the boxes other
    frontends drew for the same workflow (run the script on each tested host, oldest first; the last run uses all)."""
    if key is None:
        return boxes
    version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__")
    seen = json.loads(BOXES_SEEN.read_text()) if BOXES_SEEN.is_file() else {}
    seen.setdefault(version, {})[key] = {str(i): {k: b[k] for k in SIDES} for i, b in boxes.items()}
    BOXES_SEEN.parent.mkdir(parents=True, exist_ok=True)
    BOXES_SEEN.write_text(json.dumps(seen, indent=1, sort_keys=True))
    out = {i: dict(b) for i, b in boxes.items()}
    for other in seen.values():
        for i, b in other.get(key, {}).items():
            if int(i) in out:
                box = out[int(i)]
                box.update(left=min(box["left"], b["left"]), top=min(box["top"], b["top"]),
                           right=max(box["right"], b["right"]), bottom=max(box["bottom"], b["bottom"]))
    return out


def layout(page, workflow: dict, key: str | None = None) -> dict:
    """Sizes from the classic canvas (samplers get PREVIEW_ROOM), then positions from the measured boxes (with
    `key`, also those other frontends drew for it: merged_boxes)."""
    for node in workflow["nodes"]:  # classic sizes first: Vue boxes follow them
        node["size"] = list(node.get("size") or [0, 0])
    sizes = measure(page, workflow)
    for node in workflow["nodes"]:
        mw, mh = sizes[node["id"]]["min"]
        extra = room_below(node)
        height = mh + extra if extra else max(node["size"][1], mh, NOTE_HEIGHT if node["type"] == "Note" else 0)
        # a saved width is kept: a media preview's computeSize grows with the width it is given
        node["size"] = [round(node["size"][0] or mw), round(height)]
    boxes = merged_boxes(page, key, measure(page, workflow))

    widths = sorted(b["right"] - b["left"] for b in boxes.values())
    median = widths[len(widths) // 2]
    banners = [n for n in workflow["nodes"]
               if n["type"] == "Note" and boxes[n["id"]]["right"] - boxes[n["id"]]["left"] > 1.6 * median]
    rest = [n for n in workflow["nodes"] if n not in banners]

    y = ORIGIN[1]
    for node in sorted(banners, key=lambda n: n["pos"][1]):
        b = boxes[node["id"]]
        node["pos"] = [round(ORIGIN[0] - b["left"]), round(y - b["top"])]
        y += b["bottom"] - b["top"] + GAP
    x = ORIGIN[0]
    for col in _columns(rest):
        width = max(boxes[n["id"]]["right"] - boxes[n["id"]]["left"] for n in col)
        cy = y
        for node in col:
            b = boxes[node["id"]]
            node["pos"] = [round(x - b["left"]), round(cy - b["top"])]
            cy += b["bottom"] - b["top"] + GAP
        x += width + GAP
    if banners:  # banners span the columns below them
        right = x - GAP - ORIGIN[0]
        for node in banners:
            node["size"][0] = round(max(node["size"][0], right))
    return workflow


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = (sys.argv[1:] if argv is None else argv) or [t.name for t in templates.TEMPLATES]
    with comfy_host.frontend_page((1920, 1200)) as page:
        for name in names:
            path = templates.workflow_path(name)
            text = path.read_text()
            workflow = layout(page, json.loads(text), key=path.stem)
            path.write_text(templates.dumps(workflow, text))
            LOG.info("laid out %s", path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
