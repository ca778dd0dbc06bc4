"""P3: FlowUniPCMultistepScheduler parity (shift 8, 10 steps, order 2, bh2) and timestep/sigma tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.sampling.guidance import to_denoised
from skyreels_core.sampling.loop import sample
from skyreels_core.sampling.schedules import NUM_TRAIN_TIMESTEPS, FlowSchedule, flow_sigmas
from skyreels_core.sampling.solvers import UniPCSolver

FOLDER = Path(__file__).resolve().parent / "fixtures" / "P3_unipc"


@pytest.fixture(scope="module")
def case():
    folder = FOLDER
    meta = json.loads((folder / "case.json").read_text())
    return meta, load_file(str(folder / "io.safetensors"))


def _tol(meta):
    tol = meta["tolerance"]["samples/x0_pred/corrected_sample"]
    return {"atol": tol["atol"], "rtol": tol["rtol"]}


def _toy_velocity(x: torch.Tensor, t: int) -> torch.Tensor:
    # case.json: model_output = 0.5 * sample - c_t, c_t = float32(0.1 * (t / 1000)) computed in float64
    c_t = torch.tensor(0.1 * (int(t) / 1000), dtype=torch.float64).float()
    return 0.5 * x - c_t


def test_schedule_matches(case):
    meta, io = case
    args = meta["set_timesteps_args"]
    sigmas, timesteps = flow_sigmas(args["num_inference_steps"], args["shift"])
    assert timesteps.dtype == torch.int64 and sigmas.dtype == torch.float32
    assert torch.equal(timesteps, io["timesteps"])
    assert timesteps.tolist() == meta["timesteps_list"]
    torch.testing.assert_close(sigmas, io["sigmas"], atol=meta["tolerance"]["sigmas"]["atol"], rtol=0)


@pytest.mark.parametrize("name", ["n30_shift8", "n50_shift8", "n30_shift5", "n8_shift8", "n4_shift8", "n20_shift8"])
def test_timestep_tables(case, name):
    meta, io = case
    steps, shift = name[1:].split("_shift")
    sigmas, timesteps = flow_sigmas(int(steps), float(shift))
    assert timesteps.tolist() == meta["extra_timestep_tables"][name]
    assert torch.equal(timesteps, io[f"table_timesteps_{name}"])
    torch.testing.assert_close(sigmas, io[f"table_sigmas_{name}"], atol=meta["tolerance"]["sigmas"]["atol"], rtol=0)


def test_trajectory_step_by_step(case):
    meta, io = case
    tol = _tol(meta)
    args = meta["set_timesteps_args"]
    sigmas, timesteps = flow_sigmas(args["num_inference_steps"], args["shift"])
    scheduler = UniPCSolver(sigmas)
    latent = io["noise"].clone()
    torch.testing.assert_close(latent, io["samples"][0], atol=0, rtol=0)
    for i, t in enumerate(timesteps):
        mo = _toy_velocity(latent, t)
        torch.testing.assert_close(mo, io["model_outputs"][i], **tol)
        latent = scheduler.step(latent[None], mo[None], to_denoised(latent[None], mo[None], sigmas[i].item()), i)[0]
        assert scheduler.this_order == int(io["solver_order_used"][i]), f"order at step {i}"
        torch.testing.assert_close(scheduler.x0_pred[0], io["x0_pred"][i], **tol, msg=f"x0_pred step {i}")
        torch.testing.assert_close(
            scheduler.corrected_sample[0], io["corrected_sample"][i], **tol, msg=f"corrected step {i}"
        )
        torch.testing.assert_close(latent, io["samples"][i + 1], **tol, msg=f"sample after step {i}")


def test_the_sampling_loop_matches_trajectory(case):
    """The one sampling loop (a velocity denoiser, the reference's truncated integer t) walks the same trajectory."""
    meta, io = case
    args = meta["set_timesteps_args"]

    def denoiser(x, sigma):
        return _toy_velocity(x, int((sigma * NUM_TRAIN_TIMESTEPS).to(torch.int64)))

    schedule = FlowSchedule.for_steps(args["num_inference_steps"], args["shift"])
    out = sample(denoiser, io["noise"][None].clone(), schedule, "unipc")
    torch.testing.assert_close(out[0], io["samples"][-1], **_tol(meta))
