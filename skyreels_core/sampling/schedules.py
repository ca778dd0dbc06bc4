"""Flow-matching noise schedules (SkyReels-V2 / Wan2.1 `FlowUniPCMultistepScheduler.set_timesteps`).

Conventions (flow matching, rectified flow):
- x_sigma = (1 - sigma) * x0 + sigma * noise, sigma in [0, 1], velocity v = noise - x0, x0 = x - sigma * v.
- The model sees the timestep t = int64(1000 * sigma) (TRUNCATED), the solver uses the float32 sigma.
- Schedules return sigmas with a trailing 0 (k-diffusion `append_zero` convention).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "SIGMA_MAX",
    "SIGMA_MIN",
    "denoise_start_index",
    "flow_noise",
    "flow_sigmas",
    "flow_sigmas_denoise",
    "schedule_index",
    "shift_sigmas",
]

NUM_TRAIN_TIMESTEPS = 1000
# The training grid is 1 - linspace(1, 1/1000, 1000) reversed in float32: its first value is float32(0.999),
# which the reference promotes to float64 (0.9990000128746033) before building the inference grid.
SIGMA_MAX = float(np.float32(0.999))
SIGMA_MIN = 0.0


def shift_sigmas(sigmas, shift: float):
    """Time shift of flow models: s * sigma / (1 + (s - 1) * sigma). Works on floats, numpy arrays and tensors."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(
    steps: int, shift: float, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference grid of `FlowUniPCMultistepScheduler.set_timesteps(steps, shift=shift)`.

    Returns (sigmas float32 [steps + 1] ending in 0, timesteps int64 [steps]). The grid is computed in float64
    (numpy linspace, as the reference), timesteps are truncated, sigmas are rounded to float32 at the end.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sigmas = np.linspace(sigma_max, sigma_min, steps + 1)[:-1]
    sigmas = shift_sigmas(sigmas, float(shift))
    timesteps = torch.from_numpy(sigmas * NUM_TRAIN_TIMESTEPS).to(torch.int64)
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    return sigmas, timesteps


def denoise_start_index(steps: int, denoise: float) -> tuple[int, int]:
    """For denoise < 1 (img2img, video extension): (total steps of the full schedule, index of the first step).

    Same rule as ComfyUI's KSampler: the full schedule has int(steps / denoise) steps and only its last `steps`
    steps are run, so sampling starts at sigma = full_sigmas[total - steps].
    """
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise}")
    total = max(steps, int(steps / denoise))
    return total, total - steps


def flow_sigmas_denoise(
    steps: int, shift: float, denoise: float = 1.0, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """The last `steps` steps of the `int(steps / denoise)`-step schedule: (sigmas [steps + 1], timesteps [steps]).

    With denoise = 1 this is `flow_sigmas(steps, shift)`. Start from `flow_noise(x0, noise, sigmas[0])`.
    """
    total, start = denoise_start_index(steps, denoise)
    sigmas, timesteps = flow_sigmas(total, shift, sigma_max, sigma_min)
    return sigmas[start:], timesteps[start:]


def flow_noise(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """Forward flow process: (1 - sigma) * x0 + sigma * noise (sigma: float, or a tensor broadcastable to x0)."""
    return x0 * (1.0 - sigma) + noise * sigma


def schedule_index(timesteps: torch.Tensor, timestep) -> int:
    """Index of `timestep` on a schedule; the reference starts at the 2nd match when a value repeats."""
    idx = (timesteps == int(timestep)).nonzero().flatten()
    if len(idx) == 0:
        raise ValueError(f"timestep {int(timestep)} is not on this schedule: {timesteps.tolist()}")
    return int(idx[1 if len(idx) > 1 else 0])
