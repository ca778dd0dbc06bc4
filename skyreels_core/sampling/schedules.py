"""Flow-matching noise schedules (SkyReels-V2 / Wan2.1 `FlowUniPCMultistepScheduler.set_timesteps`).

Conventions (flow matching, rectified flow):
- x_sigma = (1 - sigma) * x0 + sigma * noise, sigma in [0, 1], velocity v = noise - x0, x0 = x - sigma * v.
- The model sees the timestep t = int64(1000 * sigma) (TRUNCATED), the solver uses the float32 sigma.
- Schedules return sigmas with a trailing 0 (k-diffusion `append_zero` convention).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import SkyReelsInputError
from .loop import Step

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "SIGMA_MAX",
    "SIGMA_MIN",
    "FlowSchedule",
    "check_schedule",
    "denoise_start_index",
    "diffusers_flow_grid",
    "flow_grid",
    "flow_sigmas",
    "shift_sigmas",
    "shifted_timestep_grid",
]

NUM_TRAIN_TIMESTEPS = 1000
# The training grid is 1 - linspace(1, 1/1000, 1000) reversed in float32: its first value is float32(0.999),
# which the reference promotes to float64 (0.9990000128746033) before building the inference grid.
SIGMA_MAX = float(np.float32(0.999))
SIGMA_MIN = 0.0


def shift_sigmas(sigmas, shift: float):
    """Time shift of flow models: s * sigma / (1 + (s - 1) * sigma). Works on floats, numpy arrays and tensors."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def check_schedule(steps: int, shift: float, denoise: float = 1.0) -> None:
    """steps >= 1, a finite shift > 0 and denoise in (0, 1] (NaN fails every check), else SkyReelsInputError.

    Any step count works at any shift: solvers step by index, so repeated integer timesteps are harmless.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise SkyReelsInputError(f"steps must be a whole number >= 1 (reference: 30-50); got {steps!r}.")
    if not (isinstance(shift, int | float) and math.isfinite(shift) and shift > 0):
        raise SkyReelsInputError(
            f"shift must be a finite number > 0 (reference: 8.0 T2V, 5.0 I2V and V4); got {shift!r}. "
            "0 would put every step at the same noise level."
        )
    if not (isinstance(denoise, int | float) and 0.0 < denoise <= 1.0):
        raise SkyReelsInputError(f"denoise must be in (0, 1] (1 = from pure noise); got {denoise!r}.")


def flow_grid(steps: int, shift: float, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN) -> torch.Tensor:
    """Inference grid of `FlowUniPCMultistepScheduler.set_timesteps(steps, shift=shift)` in float64 [steps + 1].

    Computed like the reference (numpy linspace in float64, then the shift), with the trailing 0 appended.
    """
    check_schedule(steps, shift)
    sigmas = shift_sigmas(np.linspace(sigma_max, sigma_min, steps + 1)[:-1], float(shift))
    return torch.from_numpy(np.concatenate([sigmas, [0.0]]))


def diffusers_flow_grid(steps: int, shift: float) -> torch.Tensor:
    """Inference grid of diffusers `UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=shift)` (the
    SkyReels-V3 R2V sampler) in float64 [steps + 1], trailing 0.

    Not Wan's grid: diffusers starts from s = 1 - linspace(1, 1/1000, steps + 1) (ascending, exactly 0.999 at
    the top), shifts it, flips it and drops the final 0 before appending its own final sigma 0. 8 steps at
    shift 5 give the timesteps [999, 972, 937, 892, 833, 749, 624, 416].
    """
    if steps < 1:
        raise SkyReelsInputError(f"steps must be at least 1, got {steps}.")
    if not (math.isfinite(shift) and shift > 0):
        raise SkyReelsInputError(f"shift must be a positive number (SkyReels-V3 R2V: 5.0); got {shift}.")
    s = 1.0 - np.linspace(1.0, 1.0 / NUM_TRAIN_TIMESTEPS, steps + 1)
    sigmas = np.flip(shift_sigmas(s, float(shift)))[:-1]
    return torch.from_numpy(np.concatenate([sigmas, [0.0]]))


def shifted_timestep_grid(steps: int, shift: float) -> torch.Tensor:
    """The SkyReels-V3 talking-avatar grid (MultiTalk's custom Euler) as sigmas, float64 [steps + 1], trailing 0.

    Timesteps t = linspace(1000, 1, steps) in float32 plus a final 0, each shifted in float32:
    t' = 1000 s u / (1 + (s - 1) u), u = t / 1000; sigma = t' / 1000. Not Wan's grid (which starts at 0.999 and
    spaces sigmas, not timesteps). 4 steps at shift 11 give t' = [1000, 956.58, 846.54, 10.89, 0]. The model is given
    t' itself as a float (see pipelines/avatar.AvatarDenoiser), so t' is kept exactly: sigma * 1000 in float64
    rounds back to the float32 t'.
    """
    check_schedule(steps, shift)
    t = torch.from_numpy(np.append(np.linspace(NUM_TRAIN_TIMESTEPS, 1, steps, dtype=np.float32), np.float32(0.0)))
    u = t / NUM_TRAIN_TIMESTEPS
    shifted = shift_sigmas(u, torch.tensor(shift, dtype=torch.float32)) * NUM_TRAIN_TIMESTEPS
    return shifted.double() / NUM_TRAIN_TIMESTEPS


def flow_sigmas(
    steps: int, shift: float, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's tables: (sigmas float32 [steps + 1] ending in 0, timesteps int64 [steps]).

    The model sees int64(1000 sigma) of the float64 grid (TRUNCATED); the solver uses the float32 sigmas.
    """
    grid = flow_grid(steps, shift, sigma_max, sigma_min)
    return grid.float(), (grid[:-1] * NUM_TRAIN_TIMESTEPS).to(torch.int64)


def denoise_start_index(steps: int, denoise: float) -> tuple[int, int]:
    """For denoise < 1 (img2img, video extension): (total steps of the full schedule, index of the first step).

    Same rule as ComfyUI's KSampler: the full schedule has int(steps / denoise) steps and only its last `steps`
    steps are run, so sampling starts at sigma = full_sigmas[total - steps].
    """
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise}")
    total = max(steps, int(steps / denoise))
    return total, total - steps


class FlowSchedule:
    """Every frame down one sigma grid: a model call per grid point from `first` on (k-diffusion's `sigmas`).

    grid: float64 [N + 1] with the trailing 0; `sigmas` is the solver's float32 copy. `for_steps` builds the
    reference grid, with denoise < 1 the last `steps` steps of an int(steps / denoise)-step grid: sampling then
    starts from `flow_noise(x0, noise, start_sigma)`.
    """

    def __init__(self, grid: torch.Tensor, first: int = 0):
        self.grid, self.first = grid.to(torch.float64), int(first)
        self.sigmas = self.grid.float()

    @classmethod
    def for_steps(cls, steps: int, shift: float, denoise: float = 1.0) -> FlowSchedule:
        check_schedule(steps, shift, denoise)
        total, first = denoise_start_index(steps, denoise)
        return cls(flow_grid(total, shift), first)

    @property
    def start_sigma(self) -> float:
        return float(self.sigmas[self.first])

    def __len__(self) -> int:
        return len(self.grid) - 1 - self.first

    def __getitem__(self, i: int) -> Step:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return Step(sigma=self.grid[self.first + i], index=self.first + i)
