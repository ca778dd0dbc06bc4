"""The one flow-matching sampling loop (k-diffusion style) that every pipeline runs.

    x = sample(denoiser, x, schedule, solver, callback)

- `denoiser(x, sigma) -> v`: the model's flow velocity for the latents x at noise level sigma ([] for all frames,
  or [F] per latent frame). A per-model adapter (pipelines/denoisers.py) owns the model's time convention, dtype
  casts and guidance; the loop knows nothing about the model.
- `schedule`: one `Step` per model call. A plain text/image-to-video run steps every frame down the same sigma
  grid (`FlowSchedule`); diffusion forcing gives every latent frame its own sigma, solver index and update flag
  per call, and a window of frames the model sees (`sampling/diffusion_forcing.DFSchedule`). Same loop.
- `solver`: a name in `SOLVERS` or a class; one state per tensor it steps (per frame when the schedule has
  per-frame indices, since each frame then keeps its own multistep history).
- `callback(step, total, x0)`: after every model call, with step counting from 1 and x0 the estimate of the clean
  latents the model saw (for previews); raising from it cancels sampling.

Conventions (rectified flow): x_sigma = (1 - sigma) x0 + sigma noise, v = noise - x0, x0 = x - sigma v. Sigmas are
float64 (the reference builds the grid in float64 and derives the model's integer timesteps from it); solvers and
x0 use them rounded to float32, as the reference's float32 sigma table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import SkyReelsInputError
from .guidance import to_denoised
from .noise import flow_noise
from .solvers import SOLVERS, Solver

__all__ = ["SOLVERS", "Schedule", "Step", "StepCallback", "sample", "solver_class"]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]
NoiseSampler = Callable[[tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True)
class Step:
    """One model call.

    sigma: float64 [] (every frame at the same level) or [F] (per latent frame, dim 2 of x).
    index: the solver step (position on `Schedule.sigmas`): an int, or int64 [F] per frame.
    update: bool [F], the frames the solver advances after this call (None: all).
    window: (start, end) latent frames the model sees (None: all); frames outside are neither seen nor updated.
    renoise: bool [F], clean frames (never updated) that the model sees noised to their sigma with fresh noise at
        every call, so that it does not copy their flaws (diffusion forcing's addnoise_condition); None: none.
    """

    sigma: torch.Tensor
    index: int | torch.Tensor
    update: torch.Tensor | None = None
    window: tuple[int, int] | None = None
    renoise: torch.Tensor | None = None


class Schedule(Protocol):
    """A sequence of `Step`s over one solver grid `sigmas` (float32 [N + 1], trailing 0)."""

    sigmas: torch.Tensor

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Step: ...


def solver_class(solver: str | type[Solver]) -> type[Solver]:
    """`SOLVERS[name]`, or the class itself; a ValueError lists the names."""
    if not isinstance(solver, str):
        return solver
    if solver not in SOLVERS:
        raise SkyReelsInputError(f"Unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    return SOLVERS[solver]


class _FrameStates:
    """Solver state per latent frame (created at a frame's first update) for per-frame schedules."""

    def __init__(self, make: Callable[[], Solver]):
        self.make, self.states = make, {}

    def step(self, x: torch.Tensor, v: torch.Tensor, x0: torch.Tensor, step: Step, start: int) -> torch.Tensor:
        update = step.update if step.update is not None else torch.ones(x.shape[2], dtype=torch.bool)
        for f in range(start, start + v.shape[2]):
            if update[f]:
                state = self.states.setdefault(f, self.make())
                x[:, :, f] = state.step(x[:, :, f], v[:, :, f - start], x0[:, :, f - start], int(step.index[f]))
        return x


def _sigma32(sigma: torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
    """The float32 noise level for x0 (a Python float for one level, as the reference's `.item()` scalars; per-frame
    levels broadcast over frames, dim 2)."""
    if sigma.ndim == 0:
        return float(sigma.float())
    return sigma.to(x.device, torch.float32).view(1, 1, -1, *([1] * (x.ndim - 3)))


def _renoised(x: torch.Tensor, frames: torch.Tensor, sigma: torch.Tensor, noise: NoiseSampler) -> torch.Tensor:
    """A copy of x [B, C, F, ...] with `frames` (bool [F]; one shared level) moved to their sigma with fresh noise."""
    x = x.clone()
    level = float(sigma[frames][0])
    fresh = noise(tuple(x[:, :, frames].shape)).to(x.device, x.dtype)
    x[:, :, frames] = flow_noise(x[:, :, frames], fresh, level)
    return x


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    x: torch.Tensor,
    schedule: Schedule,
    solver: str | type[Solver] = "unipc",
    callback: StepCallback | None = None,
    noise: NoiseSampler | None = None,
) -> torch.Tensor:
    """Run every step of `schedule` from the noisy latents x (float32); returns the denoised latents.

    Frame-wise schedules (a tensor `index`) update x in place, frame by frame, in their window. `noise(shape)` draws
    the fresh noise of `Step.renoise` frames (seeded by the caller).
    """
    make = solver_class(solver)
    whole = frames = None
    for i in range(len(schedule)):
        step = schedule[i]
        start, end = step.window or (0, x.shape[2] if x.ndim > 2 else 0)
        x_in = x if step.window is None else x[:, :, start:end]
        sigma = step.sigma if step.sigma.ndim == 0 else step.sigma[start:end]
        model_in = x_in
        if step.renoise is not None and bool(step.renoise[start:end].any()):
            model_in = _renoised(x_in, step.renoise[start:end], sigma, noise)
        v = denoiser(model_in, sigma)
        x0 = to_denoised(x_in, v, _sigma32(sigma, x_in))
        if isinstance(step.index, torch.Tensor):
            frames = frames or _FrameStates(lambda: make(schedule.sigmas))
            x = frames.step(x, v, x0, step, start)
        else:
            whole = whole or make(schedule.sigmas)
            x = whole.step(x, v, x0, step.index)
        if callback is not None:
            callback(i + 1, len(schedule), x0)
    return x
