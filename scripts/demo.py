"""Run the SkyReels-V2 text-to-video workflow in the embedded ComfyUI and write an mp4 (`make demo`).

    python scripts/demo.py [--workflow "workflows/SkyReels-V2 Text to Video.json"] [--tiny] [--port 8188] [--serve]

Starts the test host's ComfyUI (scripts/setup_test_host.py builds it) with this pack, converts the UI workflow to
API format with the server's /object_info, and queues it on /prompt. Model files: when the models folder holds real
files (names without "tiny" or "toy"), a loader takes the real one; otherwise the trained toy models of toy_models/
(copied there by the set-up) run with the prompt and settings they were trained for (TOY_RUN: a coloured shape
moving on a plain background, 64x64, 17 frames); with --no-toy (or no toy files) the tiny random-weight
checkpoints run at a small size (noise-like: it shows the pipeline works, not a model).
Prints the mp4 path and the UI URL; with --serve (default when run from a terminal) keeps the server up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

import comfy_host  # noqa: E402

LOG = logging.getLogger("demo")
DEFAULT_WORKFLOW = comfy_host.workflow_path("skyreels_v2_t2v")
MODEL_SUFFIXES = (".safetensors", ".sft", ".pth", ".pt", ".ckpt", ".gguf", ".bin")
TINY_SIZE = {"width": 160, "height": 96, "frames": 17, "steps": 4}  # keeps the tiny run at seconds on a CPU
# The trained toy models (toy_models/, scripts/train_toy.py): what they were trained on and sampled with
TOY_RUN = {"width": 64, "height": 64, "frames": 17, "steps": 12, "cfg": 5.0, "shift": 3.0, "scheduler": "unipc",
           "positive": "a red circle moves right on a blue background", "negative": ""}
SIZE_NODES = ("SkyReelsEmptyVideoLatent", "SkyReelsImageToVideo")


def _combo_options(spec: list) -> list | None:
    if isinstance(spec[0], list):
        return spec[0]
    return spec[1].get("options") if spec[0] == "COMBO" and len(spec) > 1 else None


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", Path(name).stem.lower())) - {"tiny", ""}


def tiny_names(models_dir: Path) -> set[str]:
    """Names (as the loaders list them) of the test host's tiny files, including the tiny copies under real file
    names (tiny_manifest.json of scripts/make_tiny_checkpoints.py); a file since replaced by a big one is not tiny."""
    try:
        manifest = json.loads((models_dir / "tiny_manifest.json").read_text())
    except (OSError, ValueError):
        return set()
    names = set()
    for files in manifest.get("files", {}).values():
        for rel in files:
            path = models_dir / rel
            if path.is_file() and path.stat().st_size < 64 * 2**20:
                inside = rel.split("/", 1)[1]  # as listed: a file, or a folder's files and the folder itself
                names.update({inside, inside.split("/")[0]})
    return names


def closest(found: list[str], name: str) -> str:
    """The file of `found` sharing most name tokens with `name` (the first on a tie)."""
    return max(found, key=lambda o: (len(_tokens(o) & _tokens(name)), -found.index(o)))


def is_toy(name: str) -> bool:
    return "toy" in _tokens(name)


def choose_models(api: dict, object_info: dict, force_tiny: bool, tiny: set[str] = frozenset(),
                  use_toy: bool = True) -> str:
    """Point each loader's file combo at a real file when one exists (the closest-named one), else at the trained toy
    model of that kind (toy_models/: names with "toy"), else keep the tiny random checkpoint; force_tiny keeps the
    tiny ones. Returns "real" (any real file), "toy" (every model a toy one) or "tiny"."""
    def is_tiny(name: str) -> bool:
        return "tiny" in name.lower() or name in tiny

    kinds = set()
    for nid, node in api.items():
        spec = object_info[node["class_type"]]["input"]
        for name, value in node["inputs"].items():
            opts = _combo_options(spec.get("required", {}).get(name) or spec.get("optional", {}).get(name) or [None])
            if not (isinstance(value, str) and value.endswith(MODEL_SUFFIXES) and opts):
                continue
            files = [o for o in opts if o.endswith(MODEL_SUFFIXES)]
            real = [o for o in files if not is_tiny(o) and not is_toy(o)]
            toy = [o for o in files if is_toy(o)] if use_toy else []
            if real and not force_tiny:
                node["inputs"][name], kind = closest(real, value), "real"
            elif toy and not force_tiny:
                node["inputs"][name], kind = closest(toy, value), "toy"
            elif value in opts:
                kind = "tiny"
            else:
                raise SystemExit(f"node {nid} ({node['class_type']}) needs {name}={value!r}, which is not in the "
                                 f"models folder (found {opts}). Run: make setup (it writes the tiny checkpoints)")
            kinds.add(kind)
            LOG.info("%s.%s = %s (%s)", node["class_type"], name, node["inputs"][name], kind)
    return "real" if "real" in kinds else "toy" if kinds == {"toy"} else "tiny"


def toy_settings(api: dict, run: dict = TOY_RUN) -> None:
    """The toy models' prompt, size and sampler settings (what they were trained on) on the T2V graph."""
    for node in api.values():
        inputs = node["inputs"]
        if node["class_type"] == "SkyReelsTextEncode":
            inputs.update({k: run[k] for k in ("positive", "negative") if not isinstance(inputs.get(k), list)})
        if node["class_type"] in SIZE_NODES:
            inputs.update({k: run[k] for k in ("width", "height", "frames") if k in inputs})
        if node["class_type"] == "SkyReelsSampler":
            inputs.update({k: run[k] for k in ("steps", "cfg", "shift", "scheduler")})


def shrink(api: dict, size: dict) -> None:
    for node in api.values():
        if node["class_type"] in SIZE_NODES:
            node["inputs"].update({k: size[k] for k in ("width", "height", "frames") if k in node["inputs"]})
        if node["class_type"] == "SkyReelsSampler":
            node["inputs"]["steps"] = size["steps"]


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW)
    ap.add_argument("--tiny", action="store_true", help="use the tiny checkpoints even when real files exist")
    ap.add_argument("--full-size", action="store_true", help="keep the workflow's size/frames/steps with tiny files")
    ap.add_argument("--no-toy", action="store_true",
                    help="without real files, run the tiny random checkpoints instead of the trained toy models")
    ap.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--serve", action=argparse.BooleanOptionalAction, default=sys.stdin.isatty(),
                    help="keep the server running after the run (default: when started from a terminal)")
    args = ap.parse_args(argv)
    if not args.workflow.is_file():
        raise SystemExit(f"{args.workflow} does not exist (the pack's example workflows are in workflows/)")
    comfy_host.ensure_host()
    from comfy_client import ComfyClient
    from workflow_to_api import load_workflow, workflow_to_api

    run_dir = comfy_host.REPO / "artifacts" / "demo"
    with comfy_host.ComfyServer(run_dir, port=args.port) as srv:
        client = ComfyClient(srv.base_url)
        object_info = client.object_info()
        api = workflow_to_api(load_workflow(args.workflow), object_info)
        kind = choose_models(api, object_info, args.tiny, tiny_names(srv.models_dir), use_toy=not args.no_toy)
        if kind == "toy":
            LOG.info("no real model files: the trained toy models (toy_models/, demonstration models) with %s",
                     TOY_RUN)
            toy_settings(api)
        elif kind == "tiny" and not args.full_size:
            LOG.info("tiny random checkpoints: running at %s", TINY_SIZE)
            shrink(api, TINY_SIZE)

        def on_event(kind: str, data: dict) -> None:
            if kind == "progress":
                LOG.info("node %s: step %d/%d", data.get("node"), data["value"], data["max"])
            elif kind == "executing" and data.get("node"):
                LOG.info("running node %s (%s)", data["node"], api.get(data["node"], {}).get("class_type"))

        result = client.run(api, timeout=args.timeout, on_event=on_event)
        if result.status != "success":
            err = result.error or {}
            LOG.error("the workflow failed in %s (node %s): %s: %s", err.get("node_type"), err.get("node_id"),
                      err.get("exception_type"), err.get("exception_message"))
            LOG.error("server log: %s", srv.log_path)
            return 1
        videos = result.paths(srv.output_dir, ".mp4")
        if not videos:
            LOG.error("the workflow finished but wrote no mp4; outputs: %s", result.outputs)
            return 1
        for v in videos:
            print(f"video: {v.resolve()}")  # noqa: T201
        print(f"UI:    {srv.base_url}  (server log: {srv.log_path})")  # noqa: T201
        if args.serve:
            LOG.info("serving the UI until Ctrl-C")
            try:
                srv.proc.wait()
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
