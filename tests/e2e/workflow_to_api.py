"""Convert a UI-format workflow (what the canvas saves; workflows/*.json) to the API ("prompt") format.

    api = workflow_to_api(ui_workflow, object_info)     # object_info: GET /object_info of the running server

Mirrors the frontend's ``app.graphToPrompt()`` (frontends 1.32.9 and 1.58.1), which tests/browser cross-checks:
- ``widgets_values`` is positional over the node's widgets, in the node definition's input order (required, then
  optional; ``forceInput`` inputs have no widget). An INT with ``control_after_generate`` (default for inputs named
  seed / noise_seed) has one extra value after it ("randomize", ...), a COMBO with it two; an upload combo
  (``image_upload`` ...) has an "upload" widget after all others. These extra values are not sent. The audio
  nodes get an "audioUI" player widget after their required inputs (saved by LoadAudio).
- the frontend also sends the values of its media preview widgets (LoadAudio's "audioUI", LoadVideo's
  "video-preview", depending on what the page has loaded); the server ignores inputs a node does not declare, and
  this converter never sends them: compare with ``declared_inputs_only(frontend_prompt, object_info)``.
- a linked input (also a widget converted to an input) becomes ``["<src id>", slot]``; a link from a muted or
  missing node drops the input; a bypassed (mode 4) node passes through the first input whose type matches;
  Reroute nodes are followed; a PrimitiveNode's value replaces the widget it feeds; Note nodes are dropped.
- muted (mode 2) and bypassed nodes are left out; list values are wrapped as ``{"__value__": [...]}``.
- newer schemas (ComfyUI 0.30): a DynamicCombo (SaveVideo's ``codec``) is a combo followed by the widgets of its
  selected option, sent as ``"codec.encoding"``; widgets the workflow saved no value for (inputs added since,
  e.g. CreateVideo's ``bit_depth``) are sent at their defaults; ``registry_meta=True`` copies
  ``properties.cnr_id/ver`` into ``_meta`` as frontend 1.58 does.
"""

from __future__ import annotations

import json
from pathlib import Path

MUTED, BYPASS = 2, 4
VIRTUAL_TYPES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
UPLOAD_FLAGS = ("image_upload", "audio_upload", "video_upload", "animated_image_upload", "model_upload")
# nodes that the frontend's Comfy.AudioWidget extension gives an extra "audioUI" widget (frontend 1.32.9)
AUDIO_UI_NODES = {"LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3", "SaveAudioOpus"}


class WorkflowConversionError(ValueError):
    pass


def load_workflow(path: Path | str) -> dict:
    return json.loads(Path(path).read_text())


def _spec(spec) -> tuple:
    type_ = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return type_, opts


def _default(type_, opts: dict):
    """The value the frontend gives a widget the workflow has no saved value for (an input added later)."""
    if "default" in opts:
        return opts["default"]
    if isinstance(type_, list):
        return type_[0] if type_ else None
    if type_ == "COMBO":
        return (opts.get("options") or [None])[0]
    if type_ == DYNAMIC_COMBO:
        return opts["options"][0]["key"]
    return {"INT": opts.get("min", 0), "FLOAT": opts.get("min", 0.0), "STRING": "", "BOOLEAN": False}.get(type_)


def _walk_widgets(sections: dict, order: dict | None, values: list, pos: int, prefix: str, out: dict,
                  node_type: str | None) -> tuple[int, int]:
    """Assign saved values to widgets in the frontend's order; returns (next position, number of upload widgets).

    A DynamicCombo (ComfyUI 0.30+, e.g. SaveVideo's codec) is a combo whose selected option's inputs follow it as
    widgets named "<combo>.<input>" (depth first); values the workflow lacks take the widget's default."""
    uploads = 0
    for section in ("required", "optional"):
        specs = sections.get(section) or {}
        for name in (order or {}).get(section) or list(specs):
            if name not in specs:
                continue
            type_, opts = _spec(specs[name])
            full = prefix + name
            if type_ == DYNAMIC_COMBO:
                value = values[pos] if pos < len(values) else _default(type_, opts)
                out[full], pos = value, pos + 1
                option = next((o for o in opts.get("options", []) if o.get("key") == value), None)
                if option is not None:
                    pos, n = _walk_widgets(option.get("inputs") or {}, None, values, pos, full + ".", out, None)
                    uploads += n
                continue
            is_combo = isinstance(type_, list) or type_ == "COMBO"
            if opts.get("forceInput") or not (is_combo or type_ in WIDGET_TYPES):
                continue
            out[full] = values[pos] if pos < len(values) else _default(type_, opts)
            pos += 1
            if type_ == "INT" and opts.get("control_after_generate", name in ("seed", "noise_seed")):
                pos += 1
            elif is_combo and opts.get("control_after_generate"):
                pos += 2
            if any(opts.get(flag) for flag in UPLOAD_FLAGS):
                uploads += 1
        if section == "required" and node_type in AUDIO_UI_NODES:
            pos += 1  # the frontend's audio player widget, added as the last required input
    return pos, uploads


def widget_layout(info: dict) -> list[str]:
    """Names of the widgets a node gets with its default values (the inputs the frontend sends from widgets)."""
    out: dict = {}
    _walk_widgets(info["input"], info.get("input_order"), [], 0, "", out, info.get("name"))
    return list(out)


def _widget_values(node: dict, info: dict) -> dict:
    values = node.get("widgets_values") or []
    if isinstance(values, dict):  # some packs save widgets by name
        return {k: v for k, v in values.items() if k in widget_layout(info)}
    out: dict = {}
    pos, uploads = _walk_widgets(info["input"], info.get("input_order"), values, 0, "", out, info.get("name"))
    if len(values) > pos + uploads:  # "upload" buttons come after every other widget; saved, never sent
        raise WorkflowConversionError(
            f"node {node['id']} ({node['type']}): {len(values)} widgets_values but the node has {pos + uploads} "
            f"widgets ({list(out)}); the node definition changed since the workflow was saved")
    return out


def _valid_connection(a, b) -> bool:
    if a in ("*", "", 0, None) or b in ("*", "", 0, None):
        return True
    sa, sb = {t.strip().upper() for t in str(a).split(",")}, {t.strip().upper() for t in str(b).split(",")}
    return bool(sa & sb)


class _Graph:
    def __init__(self, workflow: dict):
        if (workflow.get("definitions") or {}).get("subgraphs"):
            raise WorkflowConversionError("subgraphs are not supported by this converter")
        self.nodes = {str(n["id"]): n for n in workflow["nodes"]}
        self.links = {}
        for link in workflow.get("links", []):
            if isinstance(link, dict):
                link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                        link.get("type")]
            self.links[link[0]] = link

    def resolve_input(self, node: dict, slot: int, want_type=None, seen=None):
        """-> ("link", src_id, src_slot) | ("value", v) | None, following reroutes, bypass and primitives."""
        seen = seen or set()
        key = (str(node["id"]), "in", slot)
        if key in seen:
            raise WorkflowConversionError(f"circular link at node {node['id']} input {slot}")
        seen.add(key)
        inp = node["inputs"][slot]
        if inp.get("link") is None:
            return None
        link = self.links.get(inp["link"])
        if link is None:
            raise WorkflowConversionError(f"node {node['id']} input {inp['name']}: link {inp['link']} is missing")
        origin = self.nodes.get(str(link[1]))
        if origin is None:
            raise WorkflowConversionError(f"node {node['id']} input {inp['name']}: source node {link[1]} is missing")
        return self.resolve_output(origin, link[2], want_type or inp.get("type"), seen)

    def resolve_output(self, node: dict, slot: int, want_type, seen):
        if node.get("mode") == BYPASS:
            idx = self._bypass_slot(node, slot, want_type)
            return None if idx < 0 else self.resolve_input(node, idx, want_type, seen)
        if node["type"] == "Reroute":
            return self.resolve_input(node, 0, want_type, seen) if node.get("inputs") else None
        if node["type"] == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return ("value", values[0]) if values else None
        return ("link", str(node["id"]), slot)

    @staticmethod
    def _bypass_slot(node: dict, slot: int, want_type) -> int:
        inputs = node.get("inputs") or []
        if want_type in ("*", ""):
            return slot if len(inputs) > slot else 0
        out_type = node["outputs"][slot].get("type")
        if slot < len(inputs) and _valid_connection(inputs[slot].get("type"), out_type) and \
                _valid_connection(inputs[slot].get("type"), want_type):
            return slot
        for i, inp in enumerate(inputs):
            if inp.get("type") == want_type:
                return i
        for i, inp in enumerate(inputs):
            if _valid_connection(inp.get("type"), out_type) and _valid_connection(inp.get("type"), want_type):
                return i
        return -1


def workflow_to_api(workflow: dict, object_info: dict, registry_meta: bool = False) -> dict:
    """UI workflow -> {"<id>": {"inputs": {...}, "class_type": ..., "_meta": {"title": ...}}}.

    registry_meta: also copy a node's properties.cnr_id / ver into _meta, as frontend 1.58 does (see
    REGISTRY_META_FRONTEND)."""
    graph = _Graph(workflow)
    out: dict[str, dict] = {}
    for nid, node in graph.nodes.items():
        if node.get("mode") in (MUTED, BYPASS) or node["type"] in VIRTUAL_TYPES:
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise WorkflowConversionError(f"node {nid}: type {node['type']!r} is not registered on the server "
                                          "(missing or failed node pack)")
        inputs = _widget_values(node, info)
        for slot, inp in enumerate(node.get("inputs") or []):
            resolved = graph.resolve_input(node, slot)
            if resolved is None:
                continue
            inputs[inp["name"]] = resolved[1] if resolved[0] == "value" else [resolved[1], resolved[2]]
        inputs = {k: {"__value__": v} if isinstance(v, list) and not _is_link(v) else v for k, v in inputs.items()}
        meta = {"title": node.get("title") or info.get("display_name") or node["type"]}
        props = node.get("properties") or {}
        if registry_meta and props.get("cnr_id") and props.get("ver"):
            meta.update(cnr_id=props["cnr_id"], ver=props["ver"])
        out[nid] = {"inputs": inputs, "class_type": node["type"], "_meta": meta}
    for entry in out.values():  # links from nodes that are not sent (muted, missing) are dropped, like the frontend
        for name, value in list(entry["inputs"].items()):
            if _is_link(value) and value[0] not in out:
                del entry["inputs"][name]
    return out


FRONTEND_ONLY_INPUTS = ("audioUI", "video-preview")


def declared_inputs_only(prompt: dict, object_info: dict) -> tuple[dict, set[str]]:
    """The prompt without inputs its node types do not declare (what the server reads), and the names dropped."""
    clean, dropped = {}, set()
    for nid, node in prompt.items():
        declared = _declared_names(object_info.get(node["class_type"], {}).get("input", {}))
        inputs = {k: v for k, v in node["inputs"].items() if k in declared}
        dropped |= set(node["inputs"]) - set(inputs)
        clean[nid] = {**node, "inputs": inputs}
    return clean, dropped


def _declared_names(sections: dict, prefix: str = "") -> set[str]:
    """Input names a node declares, with the inputs of every DynamicCombo option as "<combo>.<input>"."""
    names = set()
    for section in sections.values():
        if not isinstance(section, dict):
            continue
        for name, spec in section.items():
            names.add(prefix + name)
            type_, opts = _spec(spec) if isinstance(spec, list | tuple) and spec else (None, {})
            if type_ == DYNAMIC_COMBO:
                for option in opts.get("options", []):
                    names |= _declared_names(option.get("inputs") or {}, f"{prefix}{name}.")
    return names


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)
