"""P4: diffusion-forcing timestep matrix (SkyReels-V2 generate_timestep_matrix), exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.sampling.diffusion_forcing import generate_timestep_matrix
from skyreels_core.sampling.schedules import flow_sigmas

FOLDER = Path(__file__).resolve().parent / "fixtures" / "P4_df_schedule"
META = json.loads((FOLDER / "case.json").read_text())


@pytest.fixture(scope="module")
def io():
    return load_file(str(FOLDER / "io.safetensors"))


@pytest.mark.parametrize("label", sorted(META["configs"]))
def test_matrix_matches_reference(io, label):
    cfg = META["configs"][label]
    args = dict(cfg["args"])
    steps, shift = args.pop("steps"), args.pop("shift")
    _, template = flow_sigmas(steps, shift)
    assert torch.equal(template, io[f"{label}.step_template"])
    assert template.tolist() == cfg["step_template"]
    out = generate_timestep_matrix(step_template=template, **args)
    assert len(out.step_matrix) == cfg["num_rows"]
    assert out.step_matrix.dtype == torch.int64 and out.step_index.dtype == torch.int64
    assert out.update_mask.dtype == torch.bool
    assert torch.equal(out.step_matrix, io[f"{label}.step_matrix"])
    assert torch.equal(out.step_index, io[f"{label}.step_index"])
    assert torch.equal(out.update_mask, io[f"{label}.step_update_mask"])
    assert torch.equal(torch.tensor(out.valid_interval, dtype=torch.int64), io[f"{label}.valid_interval"])
    assert out.step_matrix.tolist() == cfg["step_matrix"]
    assert out.valid_interval == [tuple(v) for v in cfg["valid_interval"]]
