"""The shipped templates as a user meets them in the real frontend (comfyui-frontend-package 1.32.9, Chromium):
Workflow -> Browse Templates lists the pack's ten templates with their .jpg thumbnails loaded; every template loads
with neither a missing-nodes nor a missing-models notice (the test host has tiny files under the real names); and
when a named model is not in its models folder, the frontend's missing-models dialog offers its download URL from
the node's properties.models. Screenshots: artifacts/screenshots/template_browser.png, missing_models.png."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from comfy_host import workflow_path

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
NAMES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
MISSING_MODELS = re.compile(r"missing models|models were not found", re.I)



ISSUES_PANEL_FRONTEND = (1, 58)  # a "... is missing / View details" toast, then the Workflow Overview's Issues panel


def missing_models_dialog(comfy_page) -> str | None:
    """The text of the frontend's missing-models notice: a dialog up to 1.47; from 1.58 a toast whose View details
    opens the Issues panel ("Missing Models", each file with its folder and a Download button)."""
    page = comfy_page.page
    if comfy_page.frontend_version >= ISSUES_PANEL_FRONTEND:
        page.wait_for_timeout(800)
        details = page.get_by_role("button", name=re.compile("View details"))
        if not details.count():
            return None
        details.first.click()
        panel = page.locator("div.rounded-lg").filter(has_text="Missing Models").filter(has_text="Download all")
        panel.last.wait_for(timeout=10_000)
        return panel.last.inner_text()
    dialogs = page.locator(".p-dialog, [role=dialog]").filter(has_text=MISSING_MODELS)
    return dialogs.first.inner_text() if dialogs.count() and dialogs.first.is_visible() else None


@pytest.mark.parametrize("name", NAMES)
def test_template_loads_without_missing_nodes_or_models(name, comfy_page):
    comfy_page.load_workflow(json.loads((WORKFLOWS / f"{name}.json").read_text()))
    assert comfy_page.missing_nodes_dialog() is None, comfy_page.missing_nodes_dialog()
    assert missing_models_dialog(comfy_page) is None, missing_models_dialog(comfy_page)


def test_a_missing_model_is_offered_for_download(comfy_page):
    workflow = json.loads(workflow_path("skyreels_v2_t2v").read_text())
    original = copy.deepcopy(workflow)
    vae = next(n for n in workflow["nodes"] if n["type"] == "SkyReelsVAELoader")
    url = vae["properties"]["models"][0]["url"]
    # as if the user had not downloaded it: a name that is not in models/vae/
    vae["widgets_values"][0] = vae["properties"]["models"][0]["name"] = "wan_2.1_vae_not_downloaded.safetensors"
    comfy_page.load_workflow(workflow)
    text = missing_models_dialog(comfy_page)
    comfy_page.screenshot("missing_models")
    assert text is not None, "no missing-models dialog"
    assert "SkyReels" not in text and "umt5" not in text, text  # only the missing one (the others are present)
    if comfy_page.frontend_version >= ISSUES_PANEL_FRONTEND:  # its Download button fetches the URL from JS state
        assert "wan_2.1_vae_not_downloaded.safetensors\nvae" in text and "Download" in text, text
        comfy_page.page.keyboard.press("Escape")
    else:
        assert "vae / wan_2.1_vae_not_downloaded.safetensors" in text and "Download" in text, text
        html = comfy_page.page.locator(".p-dialog, [role=dialog]").filter(has_text=MISSING_MODELS).first.inner_html()
        assert url in html, html  # the Download / Copy URL buttons carry the URL from properties.models
        comfy_page.close_dialogs()
    comfy_page.load_workflow(original)
    assert missing_models_dialog(comfy_page) is None


def test_template_browser_lists_the_templates_with_thumbnails(comfy_page, comfy_client):
    page = comfy_page.page
    page.set_viewport_size({"width": 1600, "height": 1000})
    listing = comfy_client.workflow_templates()
    (module,) = [m for m, names in listing.items() if set(names) == set(NAMES)]
    served: dict[str, int] = {}  # thumbnail file -> HTTP status (the cards show them as blob: URLs)
    prefix = f"/api/workflow_templates/{module}/"

    def on_response(response):
        path = unquote(urlparse(response.url).path)
        if path.startswith(prefix) and path.endswith(".jpg"):
            served[path[len(prefix):]] = response.status

    page.on("response", on_response)
    comfy_page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = page.locator("[role=dialog]").first
    dialog.wait_for(state="visible", timeout=30_000)
    page.get_by_text(module, exact=True).first.click()  # the pack's category in the left nav
    for name in NAMES:  # the card title is the file name; a thumbnail loads when its card scrolls into view
        title = dialog.get_by_text(name, exact=True).first
        title.wait_for(state="visible", timeout=30_000)
        title.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    for _ in range(100):
        if len(served) == len(NAMES):
            break
        page.wait_for_timeout(300)
    assert served == {f"{n}.jpg": 200 for n in NAMES}, served
    dialog.get_by_text(NAMES[0], exact=True).first.scroll_into_view_if_needed()
    page.wait_for_function(  # the cards on screen show them (our 640x400 thumbnails, decoded)
        "() => [...document.querySelectorAll('[role=dialog] img')].filter(i => i.complete && i.naturalWidth === 640)"
        ".length >= 3", timeout=30_000)
    page.wait_for_timeout(500)
    comfy_page.screenshot("template_browser")
