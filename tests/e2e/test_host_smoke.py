"""The real ComfyUI test host: the pack loads cleanly, registers every node, serves its workflows; the host's own
video/audio I/O and the client's queue/websocket/history/rejection paths work."""

from __future__ import annotations

import json
import re

import av
import pytest
from comfy_client import PromptRejected
from comfy_host import PACK_LINK_NAME as PACK_DIR_NAME
from comfy_host import pack_node_ids, workflow_files
from workflow_to_api import workflow_to_api

PACK_MODULE = f"custom_nodes.{PACK_DIR_NAME}"


def test_pack_imports_without_errors(comfy_server):
    log = comfy_server.startup_log  # later prompts of the session may log expected execution errors
    import_lines = [ln for ln in log.splitlines() if ln.rstrip().endswith(f"custom_nodes/{PACK_DIR_NAME}")]
    assert import_lines, f"the pack was not loaded at all; log:\n{comfy_server.log_tail()}"
    assert not any("IMPORT FAILED" in ln for ln in import_lines), f"pack import failed; log:\n{log}"
    assert f"Cannot import {comfy_server.models_dir.parent}/custom_nodes/{PACK_DIR_NAME}" not in log, log
    # any traceback printed while starting must not come from our pack
    for block in re.split(r"(?m)^Traceback \(most recent call last\):$", log)[1:]:
        assert PACK_DIR_NAME not in block.split("\n\n")[0], f"traceback from the pack at start-up:\n{block[:3000]}"


def test_every_pack_node_is_registered(object_info):
    ids = pack_node_ids()
    assert ids, "NODE_CLASS_MAPPINGS is empty"
    assert all(i.startswith("SkyReels") for i in ids), [i for i in ids if not i.startswith("SkyReels")]
    missing = sorted(set(ids) - set(object_info))
    assert not missing, f"in NODE_CLASS_MAPPINGS but not in /object_info: {missing}"
    ours = {k for k, v in object_info.items() if v.get("python_module") == PACK_MODULE}
    assert ours == set(ids), f"/object_info nodes from the pack differ from NODE_CLASS_MAPPINGS: {ours ^ set(ids)}"
    for node_id in ids:
        info = object_info[node_id]
        assert info["category"].startswith("SkyReels"), (node_id, info["category"])
        assert info.get("description"), f"{node_id} has no description"


def test_workflow_templates_lists_our_workflows(comfy_client):
    files = workflow_files()
    assert files, "workflows/ has no *.json"
    templates = comfy_client.workflow_templates()
    assert sorted(templates.get(PACK_DIR_NAME, [])) == sorted(f.stem for f in files), templates.get(PACK_DIR_NAME)
    for f in files:
        served = comfy_client.workflow_template(PACK_DIR_NAME, f.stem)
        assert served == json.loads(f.read_text()), f"{f.name} served differently"


@pytest.mark.parametrize("path", workflow_files() or [None], ids=lambda p: p.stem if p else "none")
def test_workflow_converts_to_api_with_registered_nodes(path, object_info):
    assert path is not None, "workflows/ has no *.json"
    api = workflow_to_api(json.loads(path.read_text()), object_info)
    assert api, f"{path.name} has no executable node"
    for nid, node in api.items():
        assert node["class_type"] in object_info, (nid, node["class_type"])
        required = object_info[node["class_type"]]["input"].get("required", {})
        missing = [name for name in required if name not in node["inputs"]]
        assert not missing, f"{path.name} node {nid} ({node['class_type']}) lacks required inputs {missing}"


def test_host_saves_mp4_with_audio(comfy_client, comfy_server):
    """Core nodes only: the host's PyAV writes an h264 mp4 with an audio track (what our video workflows end in)."""
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 9, "color": 0x336699}},
        "2": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 16000, "channels": 1}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0, "audio": ["2", 0]}},
        "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "smoke/host",
                                                    "format": "mp4", "codec": "h264"}},
    }
    result = comfy_client.run(prompt, timeout=120).raise_for_status()
    assert [t for t, _ in result.events][0] == "execution_start"
    assert set(result.executed_nodes) == {"1", "2", "3", "4"}
    (mp4,) = result.paths(comfy_server.output_dir, ".mp4")
    with av.open(str(mp4)) as f:
        assert f.streams.video[0].codec_context.name == "h264"
        assert (f.streams.video[0].codec_context.width, f.streams.video[0].codec_context.height) == (64, 48)
        assert f.streams.audio, "no audio stream"
        assert sum(1 for _ in f.decode(video=0)) == 9


def test_invalid_prompt_is_rejected_with_node_errors(comfy_client):
    with pytest.raises(PromptRejected) as exc:
        comfy_client.queue({"1": {"class_type": "EmptyImage", "inputs": {"width": -5, "height": 8, "batch_size": 1,
                                                                          "color": 0}},
                            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})
    assert "1" in exc.value.node_errors, exc.value.body
    assert "width" in str(exc.value), str(exc.value)


def test_execution_error_reports_type_and_message(comfy_client):
    """A node that raises at run time: the websocket and /history carry the exception type and message."""
    prompt = {"1": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 8000, "channels": 1}},
              "2": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["1", 0], "start_index": 0.0,
                                                                  "duration": 0.0}},
              "3": {"class_type": "PreviewAudio", "inputs": {"audio": ["2", 0]}}}
    result = comfy_client.run(prompt, timeout=60)
    assert result.status == "error"
    assert result.error["node_id"] == "2" and result.error["node_type"] == "TrimAudioDuration"
    assert result.error["exception_type"] == "ValueError"
    assert "Start time must be less than end time" in result.error["exception_message"]
    assert result.history["status"]["status_str"] == "error"
    with pytest.raises(AssertionError, match="ValueError"):
        result.raise_for_status()
