"""Flow-matching Euler: x_next = x + (sigma_next - sigma) * v (Lipman et al. 2023 / Liu et al. 2023, rectified flow).

`sample_euler` is the k-diffusion-style function (model returns x0, v = (x - x0) / sigma); `FlowEulerScheduler` has
the same `set_timesteps` / `step(v, timestep, sample)` interface as `FlowUniPCScheduler`, so diffusion forcing can
use either.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .guidance import to_denoised
from .schedules import denoise_start_index, flow_sigmas, schedule_index

__all__ = ["FlowEulerScheduler", "sample_euler"]


@torch.no_grad()
def sample_euler(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable | None = None,
    disable: bool | None = None,
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 1 / flow-matching Euler)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        v = (x - denoised) / sigmas[i]
        x = x + (sigmas[i + 1] - sigmas[i]) * v
    return x


class FlowEulerScheduler:
    """Stateless-per-step flow Euler with the `FlowUniPCScheduler` interface (`step(v, t, x) -> x_next`)."""

    def __init__(self, steps: int | None = None, shift: float = 1.0, denoise: float = 1.0):
        self.sigmas: torch.Tensor | None = None
        self.timesteps: torch.Tensor | None = None
        self.begin_index: int | None = None
        self.step_index: int | None = None
        self.x0_pred: torch.Tensor | None = None
        if steps is not None:
            self.set_timesteps(steps, shift, denoise)

    def set_timesteps(self, steps: int, shift: float = 1.0, denoise: float = 1.0) -> None:
        total, start = denoise_start_index(steps, denoise)
        self.sigmas, self.timesteps = flow_sigmas(total, float(shift))
        self.begin_index = start if start > 0 else None
        self.reset()

    def reset(self) -> None:
        self.step_index = None
        self.x0_pred = None

    def index_for_timestep(self, timestep) -> int:
        return schedule_index(self.timesteps, timestep)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor) -> torch.Tensor:
        if self.sigmas is None:
            raise RuntimeError("call set_timesteps(steps, shift) before step()")
        if self.step_index is None:
            self.step_index = self.begin_index if self.begin_index is not None else self.index_for_timestep(timestep)
        sigma, sigma_next = self.sigmas[self.step_index].item(), self.sigmas[self.step_index + 1].item()
        self.x0_pred = to_denoised(sample, model_output, sigma)
        self.step_index += 1
        return (sample + (sigma_next - sigma) * model_output).to(sample.dtype)
