"""Fixtures for tests in the real ComfyUI frontend, in Debian's Chromium driven by PyPI playwright.

- ``browser_context`` (session): a persistent Chromium context with a fresh profile and HOME (never a downloaded
  browser: executable_path=/usr/bin/chromium), on the session's server (tests/e2e/conftest.py ``comfy_server``).
- ``comfy_page``: a fresh tab with the UI loaded (``window.app`` and its graph ready, node defs registered), as a
  ``ComfyPage``: ``load_workflow(wf)``, ``missing_nodes_dialog()``, ``graph_to_prompt()``, ``serialize()``,
  ``queue_from_ui()``, ``screenshot(name)`` (artifacts/screenshots/<name>.png), ``history()``, ``errors``,
  ``frontend_version`` (e.g. (1, 58, 1)), ``registry_meta`` (graphToPrompt copies cnr_id/ver into _meta),
  ``assert_saved_widgets_kept(workflow)``.

Frontend versions differ (the server is ComfyUI 0.3.75 + frontend 1.32.9, or 0.30.0 + 1.58.1; see
scripts/setup_test_host.py): the missing-node notice is a dialog up to 1.32 and a ``[role=status]`` notice from
1.47; from 1.58 graphToPrompt adds ``_meta.cnr_id/ver`` and a node's progress text is cleared after the run.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (REPO / "scripts", REPO / "tests" / "e2e"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import comfy_host  # noqa: E402
from comfy_client import ComfyClient  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
REGISTRY_META_FRONTEND = (1, 58)  # graphToPrompt copies properties.cnr_id/ver into _meta (seen on 1.58.1, not 1.47.12)
PROGRESS_TEXT_CLEARED_FRONTEND = (1, 58)  # the node's progress text widget is emptied when the run ends
MISSING_NOTICE = ".p-dialog, [role=dialog], [role=status]"  # a dialog up to frontend 1.32, a notice from 1.47
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
UI_READY_JS = ("() => window.app && window.app.graph && window.app.canvas && window.LiteGraph && "
               "Object.keys(window.LiteGraph.registered_node_types).length > 100")
# first-run UI that would cover the canvas (the templates browser, the "Nodes 2.0" banner), and no workflow
# restored from an earlier tab (each page starts from the default graph)
SERVER_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.Persist": False, "Comfy.Minimap.Visible": False}
INIT_SCRIPT = ("localStorage.clear(); sessionStorage.clear(); "
               "localStorage.setItem('vueNodesBannerDismissed', 'true');")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def comfy_server(request) -> comfy_host.ComfyServer:
    srv = comfy_host.shared_server()  # the same server as tests/e2e in this session
    request.config.add_cleanup(comfy_host.stop_shared)
    return srv


@pytest.fixture(scope="session")
def comfy_client(comfy_server) -> ComfyClient:
    return ComfyClient(comfy_server.base_url)


@pytest.fixture(scope="session")
def object_info(comfy_client) -> dict:
    return comfy_client.object_info()


@pytest.fixture(scope="session")
def browser_context(comfy_server, comfy_client, tmp_path_factory):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run python3.11 scripts/setup_test_host.py"
    status, body = comfy_client.post_json("/settings", SERVER_SETTINGS)
    assert status == 200, (status, body)
    home, profile = tmp_path_factory.mktemp("chromium_home"), tmp_path_factory.mktemp("chromium_profile")
    t0 = time.monotonic()
    pw = sync_playwright().start()
    ctx = pw.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        env={**os.environ, "HOME": str(home)}, viewport={"width": 1280, "height": 800})
    ctx.add_init_script(INIT_SCRIPT)
    ctx.launch_seconds = time.monotonic() - t0
    yield ctx
    ctx.close()
    pw.stop()


class ComfyPage:
    """One tab on the ComfyUI frontend, with helpers for workflows, queueing and screenshots."""

    def __init__(self, page: Page, server: comfy_host.ComfyServer, client: ComfyClient):
        self.page, self.server, self.client = page, server, client
        self.errors: list[str] = []  # page errors and console errors
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)

    def open(self, timeout_ms: int = 90_000) -> ComfyPage:
        self.page.goto(self.server.base_url)
        self.page.wait_for_function(UI_READY_JS, timeout=timeout_ms)
        version = self.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || '0'")
        self.frontend_version = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
        return self

    @property
    def registry_meta(self) -> bool:
        """graphToPrompt puts the nodes' properties.cnr_id / ver into _meta (workflow_to_api(registry_meta=...))."""
        return self.frontend_version >= REGISTRY_META_FRONTEND

    @property
    def progress_text_cleared_after_run(self) -> bool:
        return self.frontend_version >= PROGRESS_TEXT_CLEARED_FRONTEND

    def evaluate(self, js: str, arg=None):
        return self.page.evaluate(js, arg)

    def registered_node_types(self) -> list[str]:
        return self.evaluate("() => Object.keys(LiteGraph.registered_node_types)")

    def load_workflow(self, workflow: dict) -> None:
        """app.loadGraphData(workflow), then let the canvas settle."""
        self.evaluate("async (wf) => { await app.loadGraphData(wf); app.graph.setDirtyCanvas(true, true); }", workflow)
        self.page.wait_for_timeout(500)

    def fit_view(self) -> None:
        """Fit the whole graph into the canvas (for screenshots)."""
        self.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        self.page.wait_for_timeout(300)

    def _missing_notice(self):
        # frontend 1.58 also posts "Media input missing" (an input file not in input/): not a missing node
        return self.page.locator(MISSING_NOTICE).filter(has_text=re.compile("missing", re.I)) \
            .filter(has_not_text=re.compile("media", re.I))

    def missing_nodes_dialog(self) -> str | None:
        """The text of a visible dialog or notice that mentions missing nodes, else None."""
        found = self._missing_notice()
        return found.first.inner_text() if found.count() and found.first.is_visible() else None

    def close_dialogs(self) -> None:
        self.page.keyboard.press("Escape")
        self.page.wait_for_timeout(200)
        notice = self._missing_notice()
        if notice.count() and notice.first.is_visible():  # frontend 1.47+: a notice with a close (x) button
            buttons = notice.first.get_by_role("button").filter(has_not_text=re.compile(r"\w"))
            if buttons.count():
                buttons.first.click()
                self.page.wait_for_timeout(300)

    def widget_values(self) -> dict[str, list]:
        """{node id: widgets_values} of the current graph, as saving writes them."""
        return self.evaluate("() => Object.fromEntries(app.graph.serialize().nodes.map("
                             "n => [String(n.id), n.widgets_values ?? []]))")

    def assert_saved_widgets_kept(self, workflow: dict) -> None:
        """Every node keeps its saved widget values; a core node may have more widgets than the workflow saved
        (inputs ComfyUI added later, e.g. CreateVideo's bit_depth in 0.30: at their defaults), ours may not."""
        now = self.widget_values()
        for node in workflow["nodes"]:
            saved, got = node.get("widgets_values") or [], now[str(node["id"])]
            if node["type"].startswith("SkyReels") or len(got) <= len(saved):
                assert got == saved, (node["id"], node["type"], got, saved)
            else:
                assert got[:len(saved)] == saved, (node["id"], node["type"], got, saved)

    def serialize(self) -> dict:
        """The UI-format workflow of the current graph (what saving writes)."""
        return self.evaluate("() => app.graph.serialize()")

    def graph_to_prompt(self) -> dict:
        """API format of the current graph, as the frontend sends it to /prompt."""
        return self.evaluate("async () => (await app.graphToPrompt()).output")

    def history(self) -> dict:
        return self.client.history()

    def queue_from_ui(self, timeout: float = 300.0) -> tuple[str, dict]:
        """Click Run; return (prompt_id, history entry) once /history has the finished prompt.

        app.queuePrompt resolves false even on success, so /history is the source of truth.
        """
        before = set(self.history())
        self.page.get_by_role("button", name=re.compile(r"^\s*Run\s*$")).first.click()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = {k: v for k, v in self.history().items() if k not in before}
            done = {k: v for k, v in new.items() if v.get("status", {}).get("completed") is not None
                    and v["status"].get("status_str")}
            if done:
                return next(iter(done.items()))
            time.sleep(0.25)
        raise TimeoutError(f"no finished prompt in /history {timeout:.0f} s after clicking Run; errors {self.errors}")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def comfy_page(browser_context, comfy_server, comfy_client):
    page = browser_context.new_page()
    cp = ComfyPage(page, comfy_server, comfy_client).open()
    yield cp
    page.close()
