#!/usr/bin/env python3
"""Screenshot every shipped template in the real frontend and save it as its template-browser thumbnail.

    python scripts/make_thumbnails.py [NAME ...]     # needs the test host (scripts/setup_test_host.py)

Each template is loaded with app.loadGraphData in the embedded ComfyUI (Chromium via playwright),
fitted to the canvas and saved as workflows/<title>.jpg next to workflows/<title>.json (the frontend's template
browser requests <file name>.jpg); NAME is a template id (skyreels_v2_t2v) or title, default all;
640x400, JPEG quality 80 (a few tens of kB).
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for p in (REPO / "scripts", REPO / "tests" / "e2e", REPO / "tests" / "browser"):
    sys.path.insert(0, str(p))

import comfy_host  # noqa: E402
import templates  # noqa: E402

LOG = logging.getLogger("make_thumbnails")
SIZE, QUALITY = (640, 400), 80


def main(argv=None) -> int:
    from PIL import Image

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = (sys.argv[1:] if argv is None else argv) or [t.name for t in templates.TEMPLATES]
    with comfy_host.frontend_page((1600, 1000)) as page:
        # node text at any zoom (the canvas skips it below 8 px), and only the canvas on screen
        # (and no canvas info corner: FPS, node counts)
        page.evaluate("async () => { await app.extensionManager.setting.set('LiteGraph.Canvas.MinFontSizeForLOD', 1);"
                      " await app.extensionManager.setting.set('Comfy.Graph.CanvasInfo', false);"
                      " await app.extensionManager.command.execute('Workspace.ToggleFocusMode'); }")
        for name in names:
            path = templates.workflow_path(name)
            page.evaluate("async (wf) => { await app.loadGraphData(wf); }", json.loads(path.read_text()))
            page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
            page.wait_for_timeout(800)
            shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
            shot.thumbnail(SIZE, Image.Resampling.LANCZOS)
            out = path.with_suffix(".jpg")
            shot.save(out, "JPEG", quality=QUALITY, optimize=True, progressive=True)
            LOG.info("wrote %s (%d bytes)", out.name, out.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
