"""Flow-matching samplers against an analytic denoiser, CFG identities and schedule helpers."""

from __future__ import annotations

import math

import pytest
import torch

from skyreels_core.pipelines.denoisers import WanDenoiser
from skyreels_core.sampling.guidance import CFG, cfg_combine, to_denoised
from skyreels_core.sampling.loop import SOLVERS, Step, sample
from skyreels_core.sampling.noise import flow_noise
from skyreels_core.sampling.schedules import FlowSchedule, denoise_start_index, flow_grid, flow_sigmas
from skyreels_core.sampling.solvers import EulerSolver, UniPCSolver

MU, STD = 0.7, 0.6  # data x0 ~ N(MU, STD^2) per element
SHIFT = 1.0


def _marginal_std(sigma):
    return torch.sqrt((1 - sigma) ** 2 * STD**2 + sigma**2)


def gaussian_denoiser(x, sigma):
    """Exact E[x0 | x_sigma] for Gaussian data under x_sigma = (1 - sigma) x0 + sigma eps."""
    s = _per_frame(sigma, x).double()
    xd = x.double()
    out = MU + (1 - s) * STD**2 / _marginal_std(s) ** 2 * (xd - (1 - s) * MU)
    return out.to(x.dtype)


def gaussian_velocity(x, sigma):
    """The flow velocity whose x0 is the exact denoiser: v = (x - x0) / sigma."""
    return (x - gaussian_denoiser(x, sigma)) / _per_frame(sigma, x).float()


def _per_frame(sigma, x):
    """[] or [B] as before; the loop's per-frame [F] broadcast over dim 2."""
    sigma = torch.as_tensor(sigma)
    if sigma.ndim == 1 and x.ndim == 5 and sigma.shape[0] == x.shape[2] != x.shape[0]:
        return sigma.view(1, 1, -1, 1, 1)
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


def sample_grid(solver, x, sigmas):
    """The one loop over an explicit sigma grid (k-diffusion's `sample_*(model, x, sigmas)`)."""
    return sample(gaussian_velocity, x, FlowSchedule(torch.as_tensor(sigmas, dtype=torch.float64)), solver)


def sample_euler(model, x, sigmas):
    return sample_grid("euler", x, sigmas)


def sample_unipc(model, x, sigmas):
    return sample_grid("unipc", x, sigmas)


def exact_endpoint(x_start, sigma_start):
    """The probability-flow ODE keeps z = (x - (1 - sigma) MU) / std(sigma) constant: x0 = MU + STD z."""
    s = torch.tensor(float(sigma_start), dtype=torch.float64)
    z = (x_start.double() - (1 - s) * MU) / _marginal_std(s)
    return (MU + STD * z).float()


@pytest.fixture
def start():
    sigmas, _ = flow_sigmas(10, SHIFT)
    x = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * _marginal_std(sigmas[0]).item()
    return x + (1 - sigmas[0].item()) * MU


def _err(steps, sampler, x):
    sigmas, _ = flow_sigmas(steps, SHIFT)
    out = sampler(gaussian_denoiser, x.clone(), sigmas)
    return (out - exact_endpoint(x, sigmas[0])).abs().max().item()


def test_euler_converges_with_many_steps(start):
    assert _err(500, sample_euler, start) < 1.5e-2


def test_euler_is_first_order(start):
    e10, e20, e40 = (_err(n, sample_euler, start) for n in (10, 20, 40))
    assert 1.6 < e10 / e20 < 2.4 and 1.6 < e20 / e40 < 2.4


def test_unipc_converges_with_few_steps(start):
    assert _err(10, sample_unipc, start) < 5e-2
    assert _err(40, sample_unipc, start) < 1e-2


def test_unipc_error_much_smaller_than_euler_at_equal_steps(start):
    for steps in (10, 20, 40):
        assert _err(steps, sample_unipc, start) * 5 < _err(steps, sample_euler, start)


def test_registry_lists_both_solvers():
    assert SOLVERS == {"unipc": UniPCSolver, "euler": EulerSolver}


def test_solvers_step_by_hand_match_the_loop(start):
    """The loop is only: velocity, x0 = x - sigma v, solver step; stepping by hand gives the same bits."""
    schedule = FlowSchedule.for_steps(10, 3.0)
    for name, cls in SOLVERS.items():
        solver, x = cls(schedule.sigmas), start.clone()
        for i in range(len(schedule)):
            sigma = schedule[i].sigma
            v = gaussian_velocity(x, sigma)
            x = solver.step(x, v, to_denoised(x, v, float(sigma.float())), i)
        torch.testing.assert_close(x, sample(gaussian_velocity, start.clone(), schedule, name), atol=0, rtol=0)


def test_scheduler_never_aliases_caller_memory():
    """DF writes each result back into a view of its latents; the solver state must not see that write."""
    sigmas = flow_sigmas(6, 5.0)[0]
    solver_a, solver_b = UniPCSolver(sigmas), UniPCSolver(sigmas)
    lat = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    other = lat.clone()
    for i in range(6):
        v = 0.3 * lat[:, :, 0] - 0.1
        lat[:, :, 0] = solver_a.step(lat[:, :, 0], v, lat[:, :, 0] - sigmas[i].item() * v, i)  # write through a view
        v_b = 0.3 * other - 0.1
        other = solver_b.step(other, v_b, other - sigmas[i].item() * v_b, i)  # functional
    torch.testing.assert_close(lat[:, :, 0], other[:, :, 0], atol=0, rtol=0)


def test_per_frame_steps_match_whole_tensor_steps(start):
    """Diffusion forcing's per-frame solver states: frames that step together give the whole-tensor result."""
    schedule = FlowSchedule.for_steps(8, 3.0)
    frames = start.shape[2]

    class PerFrame:
        sigmas = schedule.sigmas

        def __len__(self):
            return len(schedule)

        def __getitem__(self, i):
            step = schedule[i]
            return Step(step.sigma.expand(frames), torch.full((frames,), step.index), torch.ones(frames, dtype=bool))

    whole = sample(gaussian_velocity, start.clone(), schedule, "unipc")
    torch.testing.assert_close(sample(gaussian_velocity, start.clone(), PerFrame(), "unipc"), whole, atol=0, rtol=0)


def test_unipc_handles_sigma_one_start(start):
    """ComfyUI flow schedules start at exactly sigma = 1 (lambda = -inf): must stay finite and converge."""
    sigmas = torch.cat([torch.linspace(1.0, 0.05, 12), torch.zeros(1)])
    out = sample_unipc(gaussian_denoiser, start.clone(), sigmas)
    assert torch.isfinite(out).all()


def test_denoise_starts_at_the_right_sigma():
    full, _ = flow_sigmas(20, 5.0)
    schedule = FlowSchedule.for_steps(10, 5.0, denoise=0.5)
    assert denoise_start_index(10, 0.5) == (20, 10)
    assert len(schedule) == 10 and [schedule[i].index for i in range(10)] == list(range(10, 20))
    torch.testing.assert_close(schedule.sigmas[schedule.first:], full[10:], atol=0, rtol=0)
    torch.testing.assert_close(FlowSchedule.for_steps(10, 5.0).sigmas, flow_sigmas(10, 5.0)[0], atol=0, rtol=0)
    assert schedule.start_sigma == full[10].item()  # started at index 10 of the 20-step grid
    with pytest.raises(ValueError, match="denoise"):
        denoise_start_index(10, 0.0)


def test_denoise_partial_sampling_recovers_clean_data():
    """img2img on Gaussian data: noise the exact x0 to sigmas[0], sample the tail; lands near a plausible x0."""
    schedule = FlowSchedule.for_steps(40, SHIFT, denoise=0.4)
    sigmas = schedule.sigmas[schedule.first:]
    x0 = MU + STD * torch.randn(1, 2, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    x = flow_noise(x0, noise, sigmas[0].item())
    out = sample(gaussian_velocity, x, schedule, "unipc")
    torch.testing.assert_close(out, exact_endpoint(x, sigmas[0]), atol=1e-2, rtol=0)
    assert sigmas[0] < 0.5  # genuinely part-way


class _CountingModel:
    def __init__(self):
        self.calls = []

    def __call__(self, x, t, context, **kw):
        self.calls.append((x.shape[0], tuple(t.shape), kw))
        return x * context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1) + t.float().mean() / 1000


def test_cfg_scale_one_is_cond_only_and_skips_uncond():
    model = _CountingModel()
    x, sigma = torch.randn(2, 3, 2, 2, 2), torch.tensor(0.5, dtype=torch.float64)
    cond, neg = torch.ones(2, 4, 5), torch.full((2, 4, 5), 3.0)
    v = WanDenoiser(model, cond, neg, CFG(1.0))(x, sigma)
    assert len(model.calls) == 1 and model.calls[0][0] == 2
    torch.testing.assert_close(v, model(x, torch.tensor([500, 500]), cond))
    WanDenoiser(model, cond, None, CFG(5.0))(x, sigma)
    assert model.calls[-1][0] == 2  # no negative context: cond only


def test_cfg_two_passes_and_formula():
    model = _CountingModel()
    x = torch.randn(1, 3, 2, 2, 2)
    sigma = torch.tensor([0.9990000128746033, 0.5], dtype=torch.float64)  # per-frame sigmas: t [B, F]
    cond, neg = torch.ones(1, 4, 5), torch.full((1, 4, 5), 3.0)
    v = WanDenoiser(model, cond, neg, CFG(6.0), fps=[1])(x, sigma)
    assert [c[:2] for c in model.calls] == [(1, (1, 2))] * 2 and model.calls[-1][2]["fps"] == [1]
    t = torch.tensor([[999, 500]])
    c, u = model(x, t, cond), model(x, t, neg)
    torch.testing.assert_close(v, u + 6.0 * (c - u))
    torch.testing.assert_close(cfg_combine(c, u, 0.0), u)
    neg_long = torch.full((1, 6, 5), 3.0)  # a different text length works the same (no batching)
    n = len(model.calls)
    WanDenoiser(model, cond, neg_long, CFG(6.0))(x, sigma)
    assert len(model.calls) == n + 2


def test_wan_time_is_the_references_truncated_integer():
    """t = int64(1000 sigma) of the float64 grid: the reference's timesteps, exactly."""
    model = _CountingModel()
    grid = flow_grid(30, 8.0)
    seen = []
    WanDenoiser(lambda x, t, c: seen.append(t) or x, torch.ones(1, 4, 5))(torch.zeros(1, 3, 1, 2, 2), grid[:-1])
    assert torch.equal(seen[0][0], flow_sigmas(30, 8.0)[1])
    assert model.calls == []


def test_to_denoised_per_frame_sigma():
    x, v = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    sigma = torch.rand(2, 4)
    out = to_denoised(x, v, sigma)
    for b in range(2):
        for f in range(4):
            torch.testing.assert_close(out[b, :, f], x[b, :, f] - sigma[b, f] * v[b, :, f])
    torch.testing.assert_close(to_denoised(x, v, 0.25), x - 0.25 * v)
    per_frame = torch.rand(4).view(1, 1, 4, 1, 1)  # the loop's per-frame broadcast
    torch.testing.assert_close(to_denoised(x, v, per_frame), x - per_frame * v)


def test_flow_noise():
    assert math.isclose(flow_noise(torch.tensor(2.0), torch.tensor(0.0), 0.25).item(), 1.5)
