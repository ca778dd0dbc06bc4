"""Fixtures for end-to-end tests against a real ComfyUI server with this pack linked in.

- ``comfy_server`` (session): the running server (scripts/comfy_host.ComfyServer): ``base_url``, ``log_text()``,
  ``log_since(offset)``, ``startup_log``, ``output_dir``, ``input_dir``, ``models_dir``. The set-up runs first when
  the host is not ready (scripts/setup_test_host.py). One server serves the e2e and browser tests of a session.
- ``comfy_client`` (session): tests/e2e/comfy_client.ComfyClient for it.
- ``object_info`` (session): GET /object_info.
- ``tiny_models`` (session): the models folder, after asserting the tiny checkpoints were generated (fails, never
  skips, when scripts/make_tiny_checkpoints.py did not run).
- ``api_workflow(name)``: a shipped template (id such as ``skyreels_v2_t2v``, or its title = file name, see
  scripts/templates.py) converted to API format for this server.
- ``pack_node_ids()`` / ``workflow_files()`` (from scripts/comfy_host.py): the keys of NODE_CLASS_MAPPINGS in the
  pack's __init__.py (read with ast, no import) / workflows/*.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (REPO / "scripts", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import comfy_host  # noqa: E402
import setup_test_host  # noqa: E402
from comfy_client import ComfyClient  # noqa: E402
from workflow_to_api import load_workflow, workflow_to_api  # noqa: E402

WORKFLOWS = REPO / "workflows"
PACK_DIR_NAME = setup_test_host.PACK_LINK_NAME  # the folder name under custom_nodes/ (and the module name)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def start_session_server(request) -> comfy_host.ComfyServer:
    """The one server of this pytest session (shared with tests/browser)."""
    srv = comfy_host.shared_server()
    request.config.add_cleanup(comfy_host.stop_shared)
    return srv


pack_node_ids = comfy_host.pack_node_ids
workflow_files = comfy_host.workflow_files


@pytest.fixture(scope="session")
def comfy_server(request) -> comfy_host.ComfyServer:
    return start_session_server(request)


@pytest.fixture(scope="session")
def comfy_client(comfy_server) -> ComfyClient:
    return ComfyClient(comfy_server.base_url)


@pytest.fixture(scope="session")
def object_info(comfy_client) -> dict:
    return comfy_client.object_info()


@pytest.fixture(scope="session")
def tiny_models(comfy_server) -> Path:
    stamp = setup_test_host.tiny_models_stamp(comfy_server.host)
    assert stamp.is_file(), (
        f"no tiny checkpoints in {comfy_server.models_dir}: scripts/make_tiny_checkpoints.py is missing or did not "
        "run. Run: python3.11 scripts/setup_test_host.py")
    return comfy_server.models_dir


@pytest.fixture(scope="session")
def api_workflow(object_info):
    def convert(name: str) -> dict:
        path = comfy_host.workflow_path(name)  # a template id (skyreels_v2_t2v) or its file name
        assert path.is_file(), f"{path} does not exist"
        return workflow_to_api(load_workflow(path), object_info)

    return convert
