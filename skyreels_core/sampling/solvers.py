# original version: Wan2.1 / SkyReels-V2 `fm_solvers_unipc.py` (FlowUniPCMultistepScheduler, itself from diffusers
# UniPCMultistepScheduler), re-implemented for: solver_order 2, bh2, predict_x0, lower_order_final, corrector on.
"""Flow-matching solvers: one small stateful object per sampled tensor, `step(x, v, x0, i) -> x_next`.

A solver is built on the schedule's float32 sigma grid [N + 1] (trailing 0) and advances x from sigmas[i] to
sigmas[i + 1] given the model's velocity v and x0 = x - sigmas[i] v at x. `SOLVERS` is the one registry (nodes
list it in their solver widget). Each solver keeps only its own history, so diffusion forcing holds one per
latent frame and a frame may start at any step (denoise < 1, frames that start late).

- euler: x_next = x + (sigma_next - sigma) v (rectified-flow Euler; Lipman et al. 2023, Liu et al. 2023).
- unipc: UniPC bh2 order 2 predictor-corrector on x0 (Zhao et al. 2023), bit-compatible with the reference
  `FlowUniPCMultistepScheduler` (alpha = 1 - sigma, lambda = log(alpha) - log(sigma)).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import torch

__all__ = ["SOLVERS", "EulerSolver", "Solver", "UniPCSolver", "UniPCTable"]

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
    def for_sigmas(cls, sigmas: torch.Tensor) -> UniPCTable:
        """One shared table per grid (diffusion forcing builds a solver per latent frame)."""
        return _table(tuple(sigmas.detach().to("cpu", torch.float32).tolist()))

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


@functools.lru_cache(maxsize=32)
def _table(sigmas: tuple[float, ...]) -> UniPCTable:
    return UniPCTable(torch.tensor(sigmas, dtype=torch.float32))


class Solver(Protocol):
    def __init__(self, sigmas: torch.Tensor) -> None: ...

    def step(self, x: torch.Tensor, v: torch.Tensor, x0: torch.Tensor, i: int) -> torch.Tensor: ...


class EulerSolver:
    """Flow Euler (first order): steps with the velocity itself, as the reference."""

    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas.detach().to("cpu", torch.float32)

    def step(self, x: torch.Tensor, v: torch.Tensor, x0: torch.Tensor, i: int) -> torch.Tensor:
        sigma, sigma_next = self.sigmas[i].item(), self.sigmas[i + 1].item()
        return (x + (sigma_next - sigma) * v).to(x.dtype)


class UniPCSolver:
    """UniPC bh2 order 2: one corrector (UniC, from the second step on) and one predictor (UniP) per step.

    After a step, `x0_pred`, `corrected_sample` (the input after UniC) and `this_order` describe it. The state never
    aliases the caller's tensors, so writing the result back into a view (a frame of a window) is safe.
    """

    def __init__(self, sigmas: torch.Tensor):
        self.table = UniPCTable.for_sigmas(sigmas)
        self.model_outputs: list[torch.Tensor | None] = [None] * SOLVER_ORDER
        self.last_sample: torch.Tensor | None = None
        self.lower_order_nums = 0
        self.this_order = 0

    @property
    def x0_pred(self) -> torch.Tensor | None:
        return self.model_outputs[-1]

    @property
    def corrected_sample(self) -> torch.Tensor | None:
        return self.last_sample

    def step(self, x: torch.Tensor, v: torch.Tensor, x0: torch.Tensor, i: int) -> torch.Tensor:
        if i > 0 and self.last_sample is not None:
            c = self.table.corrector[i][self.this_order]
            x = _update(c, self.last_sample, self.model_outputs[-1], self.model_outputs[-2], x0)
        else:
            x = x.clone()  # never keep a reference to caller memory
        self.model_outputs = self.model_outputs[1:] + [x0]
        self.this_order = min(SOLVER_ORDER, len(self.table) - i, self.lower_order_nums + 1)
        self.last_sample = x
        c = self.table.predictor[i][self.this_order]
        prev = _update(c, x, self.model_outputs[-1], self.model_outputs[-2], None)
        self.lower_order_nums = min(self.lower_order_nums + 1, SOLVER_ORDER)
        return prev


SOLVERS: dict[str, type[Solver]] = {"unipc": UniPCSolver, "euler": EulerSolver}
