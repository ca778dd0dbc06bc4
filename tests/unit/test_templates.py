"""The shipped templates (workflows/*.json) as a user gets them: they name the real released model files (never a
tiny test file) with the frontend's download metadata, every input file they load ships in
workflows/example_inputs/, each has a small .jpg thumbnail, the V4 ones say their weights are not released, and the
test host writes a tiny model under every real name they use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import make_tiny_checkpoints as maker
from scripts import templates

REPO = Path(__file__).resolve().parents[2]

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
IDS = [p.stem for p in WORKFLOWS]
FOLDER_OF = {"SkyReelsModelLoader": "diffusion_models", "SkyReelsV4ModelLoader": "diffusion_models",
             "SkyReelsVAELoader": "vae", "SkyReelsV4AudioCodecLoader": "vae",
             "SkyReelsTextEncoderLoader": "text_encoders", "SkyReelsV4TextEncoderLoader": "text_encoders",
             "SkyReelsCLIPVisionLoader": "clip_vision", "SkyReelsV3AudioEncoderLoader": "audio_encoders",
             "SkyReelsV4RefinerLoader": "diffusion_models", "SkyReelsRIFELoader": "frame_interpolation",
             "UpscaleModelLoader": "upscale_models"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_shipped_workflow_is_a_listed_template():
    assert IDS and sorted(t.title for t in templates.TEMPLATES) == sorted(IDS)
    assert all(templates.workflow_path(t.name) == t.path for t in templates.TEMPLATES)
    assert not (REPO / "workflows" / "index.json").exists()  # ComfyUI would list it as a template named "index"


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_no_workflow_names_a_tiny_test_file(path):
    assert "_tiny" not in path.read_text().lower(), f"{path.name} names a tiny test file"


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_loaders_name_real_files_with_download_metadata(path):
    workflow = load(path)
    names = templates.model_names(workflow)
    assert names, f"{path.name} has no loader"
    for node in workflow["nodes"]:
        widgets = templates.LOADER_WIDGETS.get(node["type"])
        if not widgets:
            continue
        expected = []
        for name in node["widgets_values"][:len(widgets)]:
            model = templates.MODEL_FILES.get(name)
            assert model is not None, f"{path.name}: {node['type']} names {name!r}, not a known released file"
            assert model.directory == FOLDER_OF[node["type"]], (name, node["type"])
            if model.url:
                assert model.url.startswith("https://huggingface.co/") and model.url.endswith("/" + name), model
                expected.append({"name": name, "url": model.url, "directory": model.directory})
        assert node["properties"].get("models", []) == expected, (path.name, node["type"])
    # the file is exactly what scripts/templates.py writes (re-running it changes nothing)
    assert templates.dumps(templates.apply(load(path)), path.read_text()) == path.read_text()


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_every_input_file_ships_in_example_inputs(path):
    for name in templates.input_files(load(path)):
        assert (templates.EXAMPLE_INPUTS / name).is_file(), f"{path.name} loads {name}, not in workflows/example_inputs/"


@pytest.mark.parametrize("path", WORKFLOWS, ids=IDS)
def test_thumbnail_is_a_small_jpg(path):
    from PIL import Image

    thumb = path.with_suffix(".jpg")  # the template browser requests <name>.jpg
    assert thumb.is_file(), f"{thumb.name} is missing"
    assert thumb.stat().st_size < 150_000, thumb.stat().st_size
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and 320 <= im.width <= 1280, (im.format, im.size)
    assert not path.with_suffix(".png").exists(), "the thumbnail is the .jpg; the .png is not shown"


@pytest.mark.parametrize("path", [p for p in WORKFLOWS if "SkyReels-V4" in p.name], ids=lambda p: p.stem)
def test_v4_templates_say_the_weights_are_not_released(path):
    notes = [n for n in load(path)["nodes"] if n["type"] == "Note" and n.get("title") == templates.NOTE_V4_TITLE]
    assert len(notes) == 1 and "not released" in notes[0]["widgets_values"][0]
    assert ("SkyReelsV4ModelLoader", "skyreels_v4_av.safetensors") in templates.model_names(load(path))


def test_the_test_host_writes_a_tiny_model_under_every_real_name():
    real = {e.path.split("/", 1)[1]: e.path.split("/", 1)[0] for e in maker.REAL_NAMED_FILES}
    used = {name.rstrip("/") for p in WORKFLOWS for _, name in templates.model_names(load(p))}  # "<dir>/": a folder
    assert used <= set(real), used - set(real)
    for name in used:
        model = templates.MODEL_FILES.get(name) or templates.MODEL_FILES[name + "/"]
        assert real[name] == model.directory, name
    assert not {e.path for e in maker.REAL_NAMED_FILES} & {e.path for e in maker.TINY_FILES}


def test_example_inputs_are_small_and_all_used():
    used = {name for p in WORKFLOWS for name in templates.input_files(load(p))}
    shipped = {f.name for f in templates.EXAMPLE_INPUTS.iterdir() if f.is_file()}
    assert used == shipped, (used ^ shipped)
    assert sum((templates.EXAMPLE_INPUTS / f).stat().st_size for f in shipped) < 500_000
