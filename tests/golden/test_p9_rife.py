"""P9: RIFE 4.x IFNet (4.7, 4.17, 4.26 layouts) against the reference (tiny random weights, float32, CPU).

The fixture was recorded from HolyWu/vs-rife's per-version copies of Practical-RIFE's IFNet_HDv3.py with tiny
widths, padding and inputs as vs-rife builds them; case.json says how. The weights go through our own loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.models.rife import load_rife

FOLDER = Path(__file__).parent / "fixtures" / "p9_rife"
LAYOUTS = {"4.7": "4.7-4.9", "4.17": "4.13-4.20/4.24", "4.26": "4.25/4.26"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case():
    return json.loads((FOLDER / "case.json").read_text()), load_file(str(FOLDER / "io.safetensors"))


@pytest.mark.parametrize("version", sorted(LAYOUTS))
def test_layout_detected_from_weights(version):
    model = load_rife(FOLDER / f"weights_{version}.safetensors")
    assert model.config.version == LAYOUTS[version]
    assert model.config.widths[:4] == (16, 12, 8, 8)
    assert model.config.supports_ensemble == (version != "4.26")


def test_every_call_matches_reference(case):
    spec, io = case
    tol = spec["tolerance"]["out_*"]
    assert len(spec["calls"]) == 6
    assert {c["ensemble"] for c in spec["calls"]} == {False, True} and {c["scale"] for c in spec["calls"]} == {1.0, 0.5}
    for call in spec["calls"]:
        model = load_rife(FOLDER / call["weights"])
        assert model.config.pad_multiple(call["scale"]) == call["pad_multiple"]
        with torch.no_grad():
            out = model(io["img0"], io["img1"], io[call["timestep"]], scale=call["scale"], ensemble=call["ensemble"])
        name = call["output"]
        torch.testing.assert_close(out, io[name], atol=tol["atol"], rtol=tol["rtol"], msg=lambda m, n=name: f"{n}: {m}")


def test_fixture_is_sensitive_to_time_and_ensemble(case):
    """The comparison above can fail: another timestep or the other ensemble setting moves the frames a lot."""
    _, io = case
    model = load_rife(FOLDER / "weights_4.7.safetensors")
    recorded = io["out_4.7_t0.3_0.8_s1.0_noens"]
    with torch.no_grad():
        other_time = model(io["img0"], io["img1"], torch.tensor([0.8, 0.3]))
        with_ensemble = model(io["img0"], io["img1"], io["t_4.7_t0.3_0.8_s1.0_noens"], ensemble=True)
    assert (other_time - recorded).abs().max() > 0.1
    assert (with_ensemble - recorded).abs().max() > 0.1
