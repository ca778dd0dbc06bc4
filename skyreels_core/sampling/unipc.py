# original version: Wan2.1 / SkyReels-V2 `fm_solvers_unipc.py` (FlowUniPCMultistepScheduler, itself from diffusers
# UniPCMultistepScheduler), re-implemented for: solver_order 2, bh2, predict_x0, lower_order_final, corrector on.
"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework") for flow matching.

Flow parameterisation: alpha = 1 - sigma, lambda = log(alpha) - log(sigma), x0 = x - sigma * v.

Two entry points share one solver core:
- `FlowUniPCScheduler`: the stateful diffusers-style object (`set_timesteps`, `step(v, t, x)`), bit-compatible
  with the reference. Diffusion forcing creates one per latent frame; all per-step scalar coefficients live in a
  `UniPCTable` that is computed once per (steps, shift) and shared, so an instance is a few references.
- `sample_unipc(model, x, sigmas, ...)`: the k-diffusion-style sampler where `model(x, sigma) -> x0`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .guidance import to_denoised
from .schedules import SIGMA_MAX, SIGMA_MIN, denoise_start_index, flow_sigmas, schedule_index

__all__ = ["FlowUniPCScheduler", "UniPCTable", "sample_unipc"]

SOLVER_ORDER = 2


@dataclass(frozen=True)
class _Coefs:
    """Scalars of one UniP/UniC update from sigma_s0 to sigma_t (float32 values held as Python floats).

    x_t = ratio * x - a_phi * m0 - a_bh * (rho[0] * D1 [+ rho[1] * (m_t - m0)]),  D1 = (m1 - m0) / rk.
    """

    ratio: float  # sigma_t / sigma_s0
    a_phi: float  # alpha_t * expm1(-h)
    a_bh: float  # alpha_t * B(h), bh2: B(h) = expm1(-h)
    rk: float | None  # (lambda_s1 - lambda_s0) / h, order 2 only
    rhos: tuple[float, ...]


def _lam(sigma: torch.Tensor) -> torch.Tensor:
    return torch.log(1 - sigma) - torch.log(sigma)


def _coefs(sigmas: torch.Tensor, s0: int, t: int, order: int, corrector: bool) -> _Coefs:
    """Same float32 0-d tensor arithmetic as `multistep_uni_{p,c}_bh_update` (so results match to the bit)."""
    sigma_t, sigma_s0 = sigmas[t], sigmas[s0]
    alpha_t = 1 - sigma_t
    lam_s0 = _lam(sigma_s0)
    h = _lam(sigma_t) - lam_s0
    hh = -h
    h_phi_1 = torch.expm1(hh)
    b_h = torch.expm1(hh)
    rk = (_lam(sigmas[s0 - 1]) - lam_s0) / h if order == 2 else None
    if order == 1:
        rhos = (0.5,)
    elif not corrector:
        rhos = (0.5,)
    else:
        rks = torch.stack([rk, torch.ones((), dtype=sigmas.dtype)])
        h_phi_k = h_phi_1 / hh - 1
        factorial, rows, b = 1, [], []
        for i in range(1, order + 1):
            rows.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        rhos = tuple(torch.linalg.solve(torch.stack(rows), torch.stack(b)).tolist())
    return _Coefs(
        ratio=(sigma_t / sigma_s0).item(),
        a_phi=(alpha_t * h_phi_1).item(),
        a_bh=(alpha_t * b_h).item(),
        rk=None if rk is None else rk.item(),
        rhos=rhos,
    )


class UniPCTable:
    """Per-step UniPC coefficients for one sigma schedule (float32 [N + 1], trailing 0). Immutable, shareable."""

    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas.detach().to("cpu", torch.float32)
        n = len(self.sigmas) - 1
        self.predictor = [{o: _coefs(self.sigmas, i, i + 1, o, False) for o in (1, 2) if o <= i + 1} for i in range(n)]
        # corrector[i]: re-does the update from i - 1 to i with the model output at i (exists for i >= 1)
        self.corrector = [{}] + [
            {o: _coefs(self.sigmas, i - 1, i, o, True) for o in (1, 2) if o <= i} for i in range(1, n)
        ]

    @classmethod
    @functools.lru_cache(maxsize=32)
    def for_flow(cls, steps: int, shift: float, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN):
        return cls(flow_sigmas(steps, shift, sigma_max, sigma_min)[0])

    def __len__(self) -> int:
        return len(self.sigmas) - 1


def _update(c: _Coefs, x: torch.Tensor, m0: torch.Tensor, m1: torch.Tensor | None, m_t: torch.Tensor | None):
    """x_t = ratio * x - a_phi * m0 - a_bh * res (order 2 adds D1; the corrector adds the m_t term)."""
    x_t = c.ratio * x - c.a_phi * m0
    res = None
    if c.rk is not None:
        res = c.rhos[0] * ((m1 - m0) / c.rk)
    if m_t is not None:
        last = c.rhos[-1] * (m_t - m0)
        res = last if res is None else res + last
    if res is not None:
        x_t = x_t - c.a_bh * res
    return x_t.to(x.dtype)


class FlowUniPCScheduler:
    """Stateful UniPC bh2 order-2 flow scheduler (reference `FlowUniPCMultistepScheduler`, default config).

    `step(v, timestep, sample) -> prev_sample`: v = model velocity at `sample`. After a step, `x0_pred`,
    `corrected_sample` (the sample after UniC, == input at the first step) and `this_order` describe it.
    The state never aliases the caller's tensors, so writing the result back into a view is safe.
    """

    def __init__(self, steps: int | None = None, shift: float = 1.0, denoise: float = 1.0):
        self.table: UniPCTable | None = None
        self.timesteps: torch.Tensor | None = None
        self.begin_index: int | None = None
        if steps is not None:
            self.set_timesteps(steps, shift, denoise)

    # -- schedule -----------------------------------------------------------------------------------------------
    def set_timesteps(self, steps: int, shift: float = 1.0, denoise: float = 1.0) -> None:
        """Grid of `flow_sigmas(total, shift)`; with denoise < 1 sampling starts at step total - steps."""
        total, start = denoise_start_index(steps, denoise)
        self.set_table(UniPCTable.for_flow(total, float(shift)), flow_sigmas(total, float(shift))[1])
        self.begin_index = start if start > 0 else None

    def set_table(self, table: UniPCTable, timesteps: torch.Tensor | None = None) -> None:
        """Use a precomputed (shared) table; `timesteps` int64 [N] only matter for the step-index lookup."""
        self.table, self.timesteps = table, timesteps
        self.reset()

    def reset(self) -> None:
        self.step_index: int | None = None
        self.model_outputs: list[torch.Tensor | None] = [None] * SOLVER_ORDER
        self.last_sample: torch.Tensor | None = None
        self.lower_order_nums = 0
        self.this_order = 0

    @property
    def sigmas(self) -> torch.Tensor:
        return self.table.sigmas

    @property
    def x0_pred(self) -> torch.Tensor | None:
        return self.model_outputs[-1]

    @property
    def corrected_sample(self) -> torch.Tensor | None:
        return self.last_sample

    def index_for_timestep(self, timestep) -> int:
        return schedule_index(self.timesteps, timestep)

    # -- stepping -----------------------------------------------------------------------------------------------
    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor) -> torch.Tensor:
        """One UniC correction (after the first step) plus one UniP prediction; returns the next sample."""
        if self.table is None:
            raise RuntimeError("call set_timesteps(steps, shift) before step()")
        if self.step_index is None:
            self.step_index = self.begin_index if self.begin_index is not None else self.index_for_timestep(timestep)
        x0 = to_denoised(sample, model_output, self.table.sigmas[self.step_index].item())
        return self.step_denoised(x0, sample)

    def step_denoised(self, x0: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """Same as `step` but given the x0 prediction (k-diffusion denoiser output) instead of the velocity."""
        i = self.step_index if self.step_index is not None else 0
        if i > 0 and self.last_sample is not None:
            c = self.table.corrector[i][self.this_order]
            sample = _update(c, self.last_sample, self.model_outputs[-1], self.model_outputs[-2], x0)
        else:
            sample = sample.clone()  # never keep a reference to caller memory
        self.model_outputs = self.model_outputs[1:] + [x0]
        self.this_order = min(SOLVER_ORDER, len(self.table) - i, self.lower_order_nums + 1)
        self.last_sample = sample
        c = self.table.predictor[i][self.this_order]
        prev = _update(c, sample, self.model_outputs[-1], self.model_outputs[-2], None)
        self.lower_order_nums = min(self.lower_order_nums + 1, SOLVER_ORDER)
        self.step_index = i + 1
        return prev


@torch.no_grad()
def sample_unipc(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    disable: bool | None = None,
) -> torch.Tensor:
    """UniPC-2 bh2 predictor-corrector with x0 prediction (Zhao et al. 2023); model(x, sigma) returns x0."""
    extra_args = extra_args or {}
    solver = FlowUniPCScheduler()
    solver.set_table(UniPCTable(sigmas))
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        solver.step_index = i
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = solver.step_denoised(denoised, x)
    return x
