"""The real frontend (1.32.9 on ComfyUI 0.3.75, 1.58.1 on 0.30.0) with the pack: it loads, registers our nodes, detects missing
nodes, queues from the Run button, and converts graphs exactly as tests/e2e/workflow_to_api.py does."""

from __future__ import annotations

import json

import pytest
from comfy_host import pack_node_ids, workflow_files
from PIL import Image
from workflow_to_api import FRONTEND_ONLY_INPUTS, declared_inputs_only, workflow_to_api

# A graph of core nodes with every case the converter handles: seed/control_after_generate widgets, an upload
# combo, a widget fed by a link (PrimitiveInt) and by a legacy PrimitiveNode, a Reroute, a custom title, a bypassed
# node that passes through, one with no matching input, one whose matching input is unlinked, and muted nodes.
BUILD_CORE_GRAPH_JS = r"""
async () => {
  app.graph.clear();
  const add = (type, pos) => { const n = LiteGraph.createNode(type); n.pos = pos; app.graph.add(n); return n; };
  const slot = (n, name) => n.inputs.findIndex(i => i.name === name);
  const ckpt = add("CheckpointLoaderSimple", [0, 0]), pos = add("CLIPTextEncode", [300, 0]);
  const neg = add("CLIPTextEncode", [300, 250]), lat = add("EmptyLatentImage", [300, 500]);
  const ks = add("KSampler", [650, 0]), dec = add("VAEDecode", [1000, 0]), inv = add("ImageInvert", [1200, 0]);
  const save = add("SaveImage", [1400, 0]), load = add("LoadImage", [0, 500]), prev = add("PreviewImage", [1400, 400]);
  const pint = add("PrimitiveInt", [0, 800]), reroute = add("Reroute", [850, 350]);
  const prim = add("PrimitiveNode", [300, 800]);
  pos.widgets[0].value = "a cat"; neg.widgets[0].value = "blurry";
  ckpt.connect(0, ks, slot(ks, "model")); ckpt.connect(1, pos, 0); ckpt.connect(1, neg, 0);
  pos.connect(0, ks, slot(ks, "positive")); neg.connect(0, ks, slot(ks, "negative"));
  lat.connect(0, ks, slot(ks, "latent_image")); ks.connect(0, dec, 0);
  ckpt.connect(2, reroute, 0); reroute.connect(0, dec, 1);
  dec.connect(0, inv, 0); inv.connect(0, save, 0); load.connect(0, prev, 0);
  inv.mode = 4; prev.mode = 2;
  pint.widgets[0].value = 320; pint.connect(0, lat, slot(lat, "width"));
  prim.connect(0, ks, slot(ks, "steps")); prim.widgets[0].value = 7;
  ks.widgets.find(w => w.name === "seed").value = 1234; ks.widgets.find(w => w.name === "cfg").value = 5.5;
  ks.title = "My Sampler";
  const mutedSrc = add("EmptyImage", [0, 1100]), inv2 = add("ImageInvert", [300, 1100]);
  const prev2 = add("PreviewImage", [600, 1100]);
  mutedSrc.connect(0, inv2, 0); inv2.connect(0, prev2, 0); mutedSrc.mode = 2;
  const img3 = add("EmptyImage", [0, 1400]), enc = add("VAEEncode", [300, 1400]);
  const ks2 = add("KSamplerAdvanced", [600, 1400]);
  img3.connect(0, enc, 0); enc.connect(0, ks2, slot(ks2, "latent_image")); enc.mode = 4;
  const img4 = add("EmptyImage", [0, 1700]), blend = add("ImageBlend", [300, 1700]);
  const prev4 = add("PreviewImage", [600, 1700]);
  img4.connect(0, blend, 1); blend.connect(0, prev4, 0); blend.mode = 4;
  const audio = add("LoadAudio", [0, 2000]), paudio = add("PreviewAudio", [300, 2000]);
  audio.connect(0, paudio, 0);
  // SaveVideo's codec: a combo up to ComfyUI 0.3.x, a DynamicCombo from 0.30 (h264 adds a "codec.encoding" widget)
  const cvid = add("CreateVideo", [600, 2000]), svid = add("SaveVideo", [900, 2000]);
  img4.connect(0, cvid, 0); cvid.connect(0, svid, 0);
  const codec = svid.widgets.find(w => w.name === "codec");
  codec.value = "h264"; codec.callback?.(codec.value, app.canvas, svid);
  await new Promise(r => setTimeout(r, 200));
  app.graph.setDirtyCanvas(true, true);
  const ids = {svid: svid.id, audio: audio.id, paudio: paudio.id, ks: ks.id, lat: lat.id, dec: dec.id, save: save.id, load: load.id, inv2: inv2.id, ks2: ks2.id,
               prev4: prev4.id, inv: inv.id, prev: prev.id, prim: prim.id, reroute: reroute.id, pint: pint.id};
  return Object.fromEntries(Object.entries(ids).map(([k, v]) => [k, String(v)]));
}
"""

ADD_NODES_JS = r"""
(types) => {
  app.graph.clear();
  types.forEach((t, i) => {
    const n = LiteGraph.createNode(t); n.pos = [40 + (i % 4) * 320, 40 + Math.floor(i / 4) * 260]; app.graph.add(n);
  });
  app.graph.setDirtyCanvas(true, true);
  return app.graph.nodes.length;
}
"""


def test_ui_loads_and_registers_pack_nodes(comfy_page, browser_context):
    ids = pack_node_ids()
    assert ids, "the pack's NODE_CLASS_MAPPINGS is empty"
    missing = sorted(set(ids) - set(comfy_page.registered_node_types()))
    assert not missing, f"not registered in LiteGraph: {missing}"
    assert comfy_page.evaluate(ADD_NODES_JS, ids) == len(ids)
    comfy_page.fit_view()
    shot = comfy_page.screenshot("frontend_pack_nodes")
    ours = [e for e in comfy_page.errors if "skyreels" in e.lower()]
    assert not ours, f"errors from the pack's frontend code: {ours}"
    with Image.open(shot) as im:
        assert im.size == (1280, 800)
        colors = im.convert("RGB").resize((128, 80)).getcolors(128 * 80)
        assert colors is not None and len(colors) > 20, "screenshot is (nearly) blank"
    assert browser_context.launch_seconds < 60


def test_missing_nodes_dialog_is_detected(comfy_page):
    comfy_page.load_workflow({"last_node_id": 1, "last_link_id": 0, "links": [], "groups": [], "config": {},
                              "extra": {}, "version": 0.4,
                              "nodes": [{"id": 1, "type": "NoSuchNodeXYZ", "pos": [0, 0], "size": [200, 100],
                                         "flags": {}, "order": 0, "mode": 0, "inputs": [], "outputs": [],
                                         "properties": {}, "widgets_values": [1]}]})
    text = comfy_page.missing_nodes_dialog()
    assert text is not None and "NoSuchNodeXYZ" in text, text
    comfy_page.screenshot("frontend_missing_nodes_dialog")
    comfy_page.close_dialogs()
    assert comfy_page.missing_nodes_dialog() is None


def test_converter_matches_graph_to_prompt_on_core_graph(comfy_page, object_info):
    ids = comfy_page.evaluate(BUILD_CORE_GRAPH_JS)
    frontend = comfy_page.graph_to_prompt()
    ours = workflow_to_api(comfy_page.serialize(), object_info, registry_meta=comfy_page.registry_meta)
    declared, dropped = declared_inputs_only(frontend, object_info)
    # the only undeclared input the frontend sends here: LoadAudio's and PreviewAudio's player (1.32.9; not 1.58.1)
    assert dropped == ({"audioUI"} if comfy_page.frontend_version < (1, 58) else set()), dropped
    assert ours == declared
    # and the frontend really exercised each case (so the equality is not vacuous)
    ks = frontend[ids["ks"]]
    assert ks["_meta"]["title"] == "My Sampler" and ks["inputs"]["seed"] == 1234 and ks["inputs"]["steps"] == 7
    assert "control_after_generate" not in ks["inputs"]
    assert frontend[ids["lat"]]["inputs"]["width"] == [ids["pint"], 0]
    assert frontend[ids["dec"]]["inputs"]["vae"] == ["1", 2]  # through the Reroute
    assert frontend[ids["save"]]["inputs"]["images"] == [ids["dec"], 0]  # through the bypassed ImageInvert
    assert "upload" not in frontend[ids["load"]]["inputs"]
    assert "image" not in frontend[ids["inv2"]]["inputs"]  # its source is muted
    assert "latent_image" not in frontend[ids["ks2"]]["inputs"]  # bypassed VAEEncode has no LATENT input
    assert frontend[ids["prev4"]]["inputs"] == {}  # bypassed ImageBlend's matching input is unlinked
    assert declared[ids["paudio"]]["inputs"] == {"audio": [ids["audio"], 0]}
    codec_inputs = {k: v for k, v in frontend[ids["svid"]]["inputs"].items() if k.startswith("codec")}
    dynamic = object_info["SaveVideo"]["input"]["required"]["codec"][0] == "COMFY_DYNAMICCOMBO_V3"
    assert codec_inputs == ({"codec": "h264", "codec.encoding": "auto"} if dynamic else {"codec": "h264"})
    for gone in ("inv", "prev", "prim", "reroute"):
        assert ids[gone] not in frontend


@pytest.mark.parametrize("path", workflow_files() or [None], ids=lambda p: p.stem if p else "none")
def test_workflow_loads_and_converts_like_the_frontend(path, comfy_page, object_info):
    assert path is not None, "workflows/ has no *.json"
    workflow = json.loads(path.read_text())
    comfy_page.load_workflow(workflow)
    assert comfy_page.missing_nodes_dialog() is None, f"{path.name}: {comfy_page.missing_nodes_dialog()}"
    comfy_page.fit_view()
    comfy_page.screenshot(f"workflow_{path.stem}")
    frontend, dropped = declared_inputs_only(comfy_page.graph_to_prompt(), object_info)
    assert dropped <= set(FRONTEND_ONLY_INPUTS), f"the frontend sends undeclared inputs {dropped}"
    assert workflow_to_api(workflow, object_info, registry_meta=comfy_page.registry_meta) == frontend


def test_queue_from_ui_runs_on_the_server(comfy_page):
    comfy_page.evaluate(r"""() => {
      app.graph.clear();
      const img = LiteGraph.createNode("EmptyImage"); img.pos = [50, 50]; app.graph.add(img);
      const prev = LiteGraph.createNode("PreviewImage"); prev.pos = [450, 50]; app.graph.add(prev);
      img.widgets.find(w => w.name === "width").value = 64; img.widgets.find(w => w.name === "height").value = 32;
      img.connect(0, prev, 0);
    }""")
    sent = comfy_page.graph_to_prompt()
    prompt_id, entry = comfy_page.queue_from_ui(timeout=60)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert entry["prompt"][2] == sent
    (images,) = [out["images"] for out in entry["outputs"].values()]
    assert images and images[0]["type"] == "temp"
    comfy_page.fit_view()
    comfy_page.screenshot("frontend_after_run")
