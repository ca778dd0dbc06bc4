"""Flow-matching samplers against an analytic denoiser, CFG identities and schedule helpers."""

from __future__ import annotations

import math

import pytest
import torch

from skyreels_core.sampling.euler import FlowEulerScheduler, sample_euler
from skyreels_core.sampling.guidance import cfg_combine, guided_velocity, to_denoised, velocity_to_denoised
from skyreels_core.sampling.schedules import denoise_start_index, flow_noise, flow_sigmas, flow_sigmas_denoise
from skyreels_core.sampling.unipc import FlowUniPCScheduler, sample_unipc

MU, STD = 0.7, 0.6  # data x0 ~ N(MU, STD^2) per element
SHIFT = 1.0


def _marginal_std(sigma):
    return torch.sqrt((1 - sigma) ** 2 * STD**2 + sigma**2)


def gaussian_denoiser(x, sigma):
    """Exact E[x0 | x_sigma] for Gaussian data under x_sigma = (1 - sigma) x0 + sigma eps."""
    s = sigma.view(-1, *([1] * (x.ndim - 1))).double()
    xd = x.double()
    out = MU + (1 - s) * STD**2 / _marginal_std(s) ** 2 * (xd - (1 - s) * MU)
    return out.to(x.dtype)


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


def _run_scheduler(scheduler, x, steps=10, shift=3.0):
    scheduler.set_timesteps(steps, shift)
    for t in scheduler.timesteps:
        sigma = scheduler.sigmas[scheduler.step_index if scheduler.step_index is not None else 0]
        x0 = gaussian_denoiser(x, sigma.expand(x.shape[0]))
        v = (x - x0) / sigma  # the velocity that gives this x0
        x = scheduler.step(v, t, x)
    return x


def test_stateful_schedulers_match_k_diffusion_functions(start):
    sigmas, _ = flow_sigmas(10, 3.0)
    ref_pc = sample_unipc(gaussian_denoiser, start.clone(), sigmas)
    ref_eu = sample_euler(gaussian_denoiser, start.clone(), sigmas)
    torch.testing.assert_close(_run_scheduler(FlowUniPCScheduler(), start.clone()), ref_pc, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_run_scheduler(FlowEulerScheduler(), start.clone()), ref_eu, atol=1e-5, rtol=1e-5)


def test_scheduler_never_aliases_caller_memory():
    """DF writes each result back into a view of its latents; the solver state must not see that write."""
    sched_a, sched_b = FlowUniPCScheduler(6, 5.0), FlowUniPCScheduler(6, 5.0)
    lat = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    other = lat.clone()
    for t in sched_a.timesteps:
        v = 0.3 * lat[:, :, 0] - 0.1
        lat[:, :, 0] = sched_a.step(v, t, lat[:, :, 0])  # in-place write through a view
        other = sched_b.step(0.3 * other - 0.1, t, other)  # functional
    torch.testing.assert_close(lat[:, :, 0], other[:, :, 0], atol=0, rtol=0)


def test_unipc_handles_sigma_one_start(start):
    """ComfyUI flow schedules start at exactly sigma = 1 (lambda = -inf): must stay finite and converge."""
    sigmas = torch.cat([torch.linspace(1.0, 0.05, 12), torch.zeros(1)])
    out = sample_unipc(gaussian_denoiser, start.clone(), sigmas)
    assert torch.isfinite(out).all()


def test_denoise_starts_at_the_right_sigma():
    full, _ = flow_sigmas(20, 5.0)
    sigmas, timesteps = flow_sigmas_denoise(10, 5.0, denoise=0.5)
    assert denoise_start_index(10, 0.5) == (20, 10)
    assert len(sigmas) == 11 and len(timesteps) == 10
    torch.testing.assert_close(sigmas, full[10:], atol=0, rtol=0)
    torch.testing.assert_close(flow_sigmas_denoise(10, 5.0, 1.0)[0], flow_sigmas(10, 5.0)[0], atol=0, rtol=0)
    sched = FlowUniPCScheduler(10, 5.0, denoise=0.5)
    x = torch.zeros(1, 2, 1, 2, 2)
    sched.step(torch.zeros_like(x), timesteps[0], x)
    assert sched.step_index == 11  # started at index 10 of the 20-step grid
    with pytest.raises(ValueError, match="denoise"):
        denoise_start_index(10, 0.0)


def test_denoise_partial_sampling_recovers_clean_data():
    """img2img on Gaussian data: noise the exact x0 to sigmas[0], sample the tail; lands near a plausible x0."""
    sigmas, _ = flow_sigmas_denoise(40, SHIFT, denoise=0.4)
    x0 = MU + STD * torch.randn(1, 2, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    x = flow_noise(x0, noise, sigmas[0].item())
    out = sample_unipc(gaussian_denoiser, x, sigmas)
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
    x, t = torch.randn(2, 3, 2, 2, 2), torch.tensor([500, 500])
    cond, neg = torch.ones(2, 4, 5), torch.full((2, 4, 5), 3.0)
    v = guided_velocity(model, x, t, cond, neg, 1.0)
    assert len(model.calls) == 1 and model.calls[0][0] == 2
    torch.testing.assert_close(v, model(x, t, cond))
    guided_velocity(model, x, t, cond, None, 5.0)
    assert model.calls[-1][0] == 2  # no negative context: cond only


def test_cfg_batched_equals_two_passes_and_formula():
    model = _CountingModel()
    x, t = torch.randn(1, 3, 2, 2, 2), torch.tensor([[999, 500]])  # per-frame timesteps [B, F]
    cond, neg = torch.ones(1, 4, 5), torch.full((1, 4, 5), 3.0)
    v_b = guided_velocity(model, x, t, cond, neg, 6.0, fps=[1])
    assert model.calls[-1][:2] == (2, (2, 2)) and model.calls[-1][2]["fps"] == [1, 1]
    v_2 = guided_velocity(model, x, t, cond, neg, 6.0, batch_cfg=False, fps=[1])
    torch.testing.assert_close(v_b, v_2)
    c, u = model(x, t, cond), model(x, t, neg)
    torch.testing.assert_close(v_b, u + 6.0 * (c - u))
    torch.testing.assert_close(cfg_combine(c, u, 0.0), u)
    neg_long = torch.full((1, 6, 5), 3.0)  # different text length: two passes
    n = len(model.calls)
    guided_velocity(model, x, t, cond, neg_long, 6.0)
    assert len(model.calls) == n + 2


def test_to_denoised_per_frame_sigma():
    x, v = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    sigma = torch.rand(2, 4)
    out = to_denoised(x, v, sigma)
    for b in range(2):
        for f in range(4):
            torch.testing.assert_close(out[b, :, f], x[b, :, f] - sigma[b, f] * v[b, :, f])
    torch.testing.assert_close(to_denoised(x, v, 0.25), x - 0.25 * v)


def test_velocity_denoiser_adapter():
    model = _CountingModel()
    den = velocity_to_denoised(model, torch.ones(1, 4, 5), timestep_fn=lambda s: (s * 1000).long())
    x = torch.randn(1, 3, 2, 2, 2)
    out = den(x, torch.tensor([0.5]))
    assert model.calls[-1][1] == (1,)
    torch.testing.assert_close(out, x - 0.5 * model(x, torch.tensor([500]), torch.ones(1, 4, 5)))
    assert math.isclose(flow_noise(torch.tensor(2.0), torch.tensor(0.0), 0.25).item(), 1.5)
