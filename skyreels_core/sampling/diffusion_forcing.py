"""Diffusion forcing (Chen et al. 2024; SkyReels-V2 DF): per-frame noise levels as data.

`generate_timestep_matrix` is a pure function re-implementing SkyReels-V2
`DiffusionForcingPipeline.generate_timestep_matrix`: row r of the matrix is the timestep of every latent frame at
model call r. Frames start at t = 999 ("not started", not updated), walk the step template one entry per row once
they start, and stop at t = 0 ("finished", not updated). With ar_step > 0, block i starts ar_step rows after
block i - 1 (asynchronous / causal generation); with ar_step = 0 all blocks move together (synchronous).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..errors import SkyReelsInputError
from .loop import Step
from .schedules import SIGMA_MAX

__all__ = ["DFSchedule", "TimestepMatrix", "append_clean_column", "generate_timestep_matrix", "num_matrix_rows"]


class TimestepMatrix(NamedTuple):
    """Output of `generate_timestep_matrix` (unpacks like the reference's 4-tuple).

    step_matrix: int64 [R, F] model timestep per row and latent frame.
    step_index: int64 [R, F] index into the extended template [999] + template + [0] (0 = not started, N + 1 = done).
    update_mask: bool [R, F] frames whose scheduler steps at row r.
    valid_interval: R tuples (start, end): the frame range fed to the model at row r.
    """

    step_matrix: torch.Tensor
    step_index: torch.Tensor
    update_mask: torch.Tensor
    valid_interval: list[tuple[int, int]]


def _check_args(num_frames: int, steps: int, base_num_frames: int, ar_step: int, block: int) -> None:
    if steps < 1:
        raise SkyReelsInputError(f"the step template is empty; use at least 1 sampling step (got {steps}).")
    if block < 1 or num_frames < 1 or num_frames % block:
        raise SkyReelsInputError(
            f"causal_block_size={block} must divide the number of latent frames ({num_frames}); frames past the "
            f"last full block would never be denoised. Use causal_block_size 1 or a divisor of {num_frames}."
        )
    if ar_step < 0:
        raise SkyReelsInputError(f"ar_step must be >= 0 (0 = synchronous), got {ar_step}.")
    base_blocks = base_num_frames // block
    if base_blocks < num_frames // block:
        min_ar_step = math.ceil(steps / max(base_blocks, 1))
        if ar_step < steps / max(base_blocks, 1):
            raise SkyReelsInputError(
                f"ar_step should be at least {min_ar_step} when {num_frames} latent frames are split into windows "
                f"of {base_num_frames} (got {ar_step})."
            )


def _block_rows(n_blocks: int, steps: int, ar_step: int, ready_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-level counters in closed form: (step_index int64 [R, n_blocks], update_mask bool [R, n_blocks]).

    The reference loops row by row (each block starts ar_step rows after the one before, or once that one is
    finished if sooner). Generated block j (counting after the `ready_blocks` clean ones) is therefore at index
    clamp(r - j * a, 0, steps + 1) at row r = 1..R with a = min(ar_step, steps), and R = steps + (G - 1) * a for G
    generated blocks (`num_matrix_rows`); ready blocks stay done (steps + 1). A frame is updated at row r when its
    index moved and is not done. One tensor expression: 257 blocks x 1000 steps x ar_step 1000 (257,000 rows) is
    built in about a second instead of minutes.
    """
    done, a = steps + 1, min(ar_step, steps)
    generated = n_blocks - ready_blocks
    rows = steps + (generated - 1) * a if generated > 0 else 0
    r = torch.arange(rows + 1, dtype=torch.long)[:, None]  # row 0 is the state before the first model call
    j = torch.arange(n_blocks, dtype=torch.long)[None] - ready_blocks
    index = (r - j * a).clamp_(0, done)
    index[:, :ready_blocks] = done
    update = (index[1:] != index[:-1]) & (index[1:] != done)
    return index[1:], update


def _valid_intervals(update: torch.Tensor, n_blocks: int, base_blocks: int, shrink_interval_with_mask: bool):
    terminal = base_blocks
    if shrink_interval_with_mask:
        terminal = int(torch.arange(n_blocks)[update[0]][-1]) + 1
    intervals = []
    if terminal >= n_blocks:  # every block fits in the model's window: one interval for every row
        return [(max(terminal - base_blocks, 0), terminal)] * len(update)
    rows = update.numpy()
    for row in rows:
        if terminal < n_blocks and row[terminal]:
            terminal += 1
        intervals.append((max(terminal - base_blocks, 0), terminal))
    return intervals


def generate_timestep_matrix(
    num_frames: int,
    step_template: torch.Tensor,
    base_num_frames: int,
    ar_step: int = 5,
    num_pre_ready: int = 0,
    casual_block_size: int = 1,
    shrink_interval_with_mask: bool = False,
) -> TimestepMatrix:
    """Per-row, per-latent-frame timesteps of diffusion forcing (SkyReels-V2 reference, same outputs).

    num_frames / base_num_frames / num_pre_ready are LATENT frames; step_template int64 [N] are the scheduler's
    timesteps. The first num_pre_ready // casual_block_size blocks are clean (t = 0 from row 0) and never updated.
    Rows: N when ar_step = 0, N + (generated_blocks - 1) * ar_step otherwise. Raises SkyReelsInputError where the
    reference would assert or silently skip frames (casual_block_size not dividing num_frames).
    """
    template = torch.as_tensor(step_template).long().flatten()
    steps, block = len(template), int(casual_block_size)
    _check_args(num_frames, steps, base_num_frames, ar_step, block)
    n_blocks, base_blocks = num_frames // block, base_num_frames // block
    extended = torch.cat([template.new_tensor([999]), template, template.new_tensor([0])])
    step_index, update_mask = _block_rows(n_blocks, steps, ar_step, num_pre_ready // block)
    intervals = _valid_intervals(update_mask, n_blocks, base_blocks, shrink_interval_with_mask)
    if block > 1:
        step_index = step_index.repeat_interleave(block, dim=1)
        update_mask = update_mask.repeat_interleave(block, dim=1)
        intervals = [(s * block, e * block) for s, e in intervals]
    return TimestepMatrix(extended[step_index], step_index, update_mask, intervals)


def num_matrix_rows(num_frames: int, steps: int, ar_step: int, num_pre_ready: int = 0, causal_block_size: int = 1):
    """Closed form of the row count (= model calls per window): N, or N + (gen_blocks - 1) * min(ar_step, N)."""
    gen_blocks = num_frames // causal_block_size - num_pre_ready // causal_block_size
    if gen_blocks <= 0:
        return 0
    return steps + (gen_blocks - 1) * min(ar_step, steps) if ar_step > 0 else steps


def append_clean_column(matrix: TimestepMatrix, steps: int) -> TimestepMatrix:
    """One more latent frame, clean from the start and never updated (an end image): t = 0, index steps + 1 (done).

    It is fed to the model once the valid interval reaches the last generated frame.
    """
    rows, width = matrix.step_matrix.shape
    zeros = matrix.step_matrix.new_zeros(rows, 1)
    intervals = [(a, b + 1 if b == width else b) for a, b in matrix.valid_interval]
    return TimestepMatrix(
        torch.cat([matrix.step_matrix, zeros], 1),
        torch.cat([matrix.step_index, torch.full_like(zeros, steps + 1)], 1),
        torch.cat([matrix.update_mask, matrix.update_mask.new_zeros(rows, 1)], 1),
        intervals,
    )


class DFSchedule:
    """Diffusion forcing as data for the one sampling loop: one `Step` per timestep-matrix row.

    grid: the flow grid the matrix's template comes from (float64 [N + 1], trailing 0). A frame at index k of the
    extended template [999] + template + [0] is at sigma SIGMA_MAX (k = 0, not started: pure noise, t = 999),
    grid[k - 1] (solver step k - 1) or 0 (k = N + 1, clean). The first `prefix` frames are given clean; with addnoise > 0 the
    model sees them re-noised to sigma = addnoise / 1000 (t = addnoise) at every row. Only frames inside a row's
    valid interval are seen and updated (as the reference).
    """

    def __init__(self, matrix: TimestepMatrix, grid: torch.Tensor, prefix: int = 0, addnoise: float = 0.0):
        self.matrix, self.sigmas = matrix, grid.float()
        levels = torch.cat([grid.new_tensor([SIGMA_MAX]), grid[:-1], grid.new_zeros(1)])
        self.sigma_rows = levels[matrix.step_index]
        self.renoise = None
        if addnoise > 0 and prefix > 0:
            self.sigma_rows[:, :prefix] = 0.001 * addnoise
            self.renoise = torch.zeros(matrix.step_index.shape[1], dtype=torch.bool)
            self.renoise[:prefix] = True

    def __len__(self) -> int:
        return len(self.matrix.step_matrix)

    def __getitem__(self, r: int) -> Step:
        start, end = self.matrix.valid_interval[r]
        update = torch.zeros_like(self.matrix.update_mask[r])
        update[start:end] = self.matrix.update_mask[r, start:end]
        return Step(self.sigma_rows[r], self.matrix.step_index[r] - 1, update, (start, end), self.renoise)
