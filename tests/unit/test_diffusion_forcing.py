"""Diffusion forcing: timestep-matrix tables from the spec, window planning, and the DF sampling loop."""

from __future__ import annotations

import pytest
import torch

from skyreels_core.errors import SkyReelsInputError
from skyreels_core.pipelines.diffusion_forcing import (
    DFSettings,
    generate_df_video,
    match_color,
    plan_df,
)
from skyreels_core.sampling.diffusion_forcing import generate_timestep_matrix, num_matrix_rows
from skyreels_core.sampling.schedules import flow_sigmas

# research/skyreels_v2.md 7.3: steps 30, shift 8
TEMPLATE_30_8 = [999, 995, 991, 986, 980, 975, 969, 963, 956, 948, 941, 932, 922, 912, 901, 888, 874, 859, 841,
                 822, 799, 773, 743, 708, 666, 615, 551, 470, 363, 216]  # fmt: skip


def _template(steps=30, shift=8.0):
    return flow_sigmas(steps, shift)[1]


def _blocks(matrix, row, cbs=5):
    return matrix.step_matrix[row, ::cbs].tolist()


# -- timestep matrix ------------------------------------------------------------------------------------------------
def test_template_is_the_spec_one():
    assert _template().tolist() == TEMPLATE_30_8


@pytest.mark.parametrize(
    ("row", "blocks"),
    [
        (0, [999, 999, 999, 999, 999]),
        (5, [975, 999, 999, 999, 999]),
        (20, [799, 888, 941, 975, 999]),
        (34, [0, 216, 666, 822, 901]),
        (49, [0, 0, 0, 0, 216]),
    ],
)
def test_async_causal_blocks_spec_rows(row, blocks):
    m = generate_timestep_matrix(25, _template(), 25, ar_step=5, casual_block_size=5)
    assert m.step_matrix.shape == (50, 25)
    assert _blocks(m, row) == blocks
    # columns repeat per block of 5 frames
    assert torch.equal(m.step_matrix.view(50, 5, 5), m.step_matrix[:, ::5, None].expand(50, 5, 5))


def test_async_update_mask_spec_rows():
    m = generate_timestep_matrix(25, _template(), 25, ar_step=5, casual_block_size=5)
    assert m.update_mask[0, ::5].int().tolist() == [1, 0, 0, 0, 0]
    assert m.update_mask[5, ::5].int().tolist() == [1, 1, 0, 0, 0]
    # every frame is updated exactly `steps` times, in template order
    assert m.update_mask.sum(0).tolist() == [30] * 25
    for f in (0, 7, 24):
        assert m.step_matrix[m.update_mask[:, f], f].tolist() == TEMPLATE_30_8


def test_prefix_plus_async_spec():
    m = generate_timestep_matrix(25, _template(), 25, ar_step=5, num_pre_ready=5, casual_block_size=5)
    assert len(m.step_matrix) == 45
    assert (m.step_matrix[:, :5] == 0).all() and not m.update_mask[:, :5].any()
    assert _blocks(m, 0) == [0, 999, 999, 999, 999]
    assert m.update_mask[0, ::5].int().tolist() == [0, 1, 0, 0, 0]


def test_sync_rows_are_the_template():
    m = generate_timestep_matrix(10, _template(), 10, ar_step=0, num_pre_ready=2)
    assert len(m.step_matrix) == 30
    assert m.step_matrix[:, 2:].tolist() == [[t] * 8 for t in TEMPLATE_30_8]
    assert (m.step_matrix[:, :2] == 0).all() and m.update_mask[:, 2:].all() and not m.update_mask[:, :2].any()
    assert m.valid_interval == [(0, 10)] * 30


@pytest.mark.parametrize("ar_step", [0, 1, 3, 5, 10, 30, 45])
@pytest.mark.parametrize(("frames", "cbs", "prefix"), [(25, 5, 0), (25, 5, 5), (12, 1, 3), (8, 4, 4), (6, 2, 0)])
def test_row_count_closed_form(ar_step, frames, cbs, prefix):
    m = generate_timestep_matrix(frames, _template(), frames, ar_step, prefix, cbs)
    assert len(m.step_matrix) == num_matrix_rows(frames, 30, ar_step, prefix, cbs)


def test_ar_step_beyond_steps_equals_steps():
    a = generate_timestep_matrix(8, _template(), 8, ar_step=30, casual_block_size=2)
    b = generate_timestep_matrix(8, _template(), 8, ar_step=99, casual_block_size=2)
    assert torch.equal(a.step_matrix, b.step_matrix) and torch.equal(a.update_mask, b.update_mask)


def test_sliding_valid_interval_when_window_is_smaller():
    m = generate_timestep_matrix(12, _template(10), 4, ar_step=5, casual_block_size=1)
    widths = {e - s for s, e in m.valid_interval}
    assert widths == {4}
    assert m.valid_interval[0] == (0, 4) and m.valid_interval[-1] == (8, 12)
    starts = [s for s, _ in m.valid_interval]
    assert starts == sorted(starts)
    for r, (s, e) in enumerate(m.valid_interval):  # updates happen only inside the model's view
        assert not m.update_mask[r, :s].any() and not m.update_mask[r, e:].any()


def test_matrix_rejects_bad_arguments():
    with pytest.raises(SkyReelsInputError, match="causal_block_size=5 must divide"):
        generate_timestep_matrix(12, _template(), 12, ar_step=5, casual_block_size=5)
    with pytest.raises(SkyReelsInputError, match="ar_step should be at least 8"):
        generate_timestep_matrix(12, _template(), 4, ar_step=5)


# -- planning -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("num_frames", "base", "latents", "windows"),
    [
        (257, 97, 65, [25, 25, 25]),
        (377, 97, 95, [25, 25, 25, 25, 15]),
        (737, 97, 185, [25] * 9),
        (237, 97, 60, [25, 25, 20]),
        (257, 121, 65, [31, 31, 13]),
        (97, 97, 25, [25]),
    ],
)
def test_window_plan_matches_reference_table(num_frames, base, latents, windows):
    plan = plan_df(num_frames, DFSettings(base_num_frames=base))
    assert plan.latent_frames == latents
    assert [w.length for w in plan.windows] == windows
    assert [w.prefix for w in plan.windows] == [0] + [5] * (len(windows) - 1)
    for prev, nxt in zip(plan.windows, plan.windows[1:], strict=False):
        assert nxt.start == prev.end - 5
    # pixel frames generated by the windows tile [0, 4(L-1)+1) exactly
    ranges = [w.pixel_range for w in plan.windows]
    assert ranges[0][0] == 0 and ranges[-1][1] == 4 * (latents - 1) + 1
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_plan_counts_model_steps():
    plan = plan_df(737, DFSettings(ar_step=5, causal_block_size=5))
    assert [w.rows for w in plan.windows] == [50] + [45] * 8 and plan.total_steps == 410


@pytest.mark.parametrize("num_frames", [30, 33, 34, 97, 98, 101])
def test_latents_cover_requested_frames_minimally(num_frames):
    plan = plan_df(num_frames, DFSettings(overlap_history=None, base_num_frames=121))
    latents = plan.latent_frames
    assert 4 * (latents - 1) + 1 >= num_frames > 4 * (latents - 2) + 1


# -- sampling loop --------------------------------------------------------------------------------------------------
H = W = 2
TARGET = torch.tensor([0.5, -1.0, 2.0, 0.0]).view(1, 4, 1, 1, 1)


class ToyModel:
    """Exact velocity for a point-mass data distribution at TARGET: v = (x - TARGET) / sigma(t). Records calls."""

    def __init__(self, forbid: bool = False):
        self.forbid, self.calls = forbid, []

    def __call__(self, x, t, context, fps=None):
        if self.forbid:
            pytest.fail("the model must not be called for invalid inputs")
        assert t.shape == (x.shape[0], x.shape[2])
        self.calls.append({"x": x.clone(), "t": t.clone(), "fps": fps, "ctx": context.clone()})
        sigma = (t.float() / 1000).clamp_min(1e-3)[:, None, :, None, None]
        return (x - TARGET) / sigma + 0.01 * context.mean()


def _ctx(batch=1, value=1.0):
    return torch.full((batch, 3, 8), value)


def _run(model, num_frames=45, settings=None, **kw):
    settings = settings or DFSettings(steps=4, shift=3.0, base_num_frames=17, overlap_history=5, guidance_scale=1.0)
    return generate_df_video(model, _ctx(), num_frames, (H, W), settings, channels=4, **kw)


def test_generated_frames_reach_the_data():
    for solver in ("unipc", "euler"):
        res = _run(
            ToyModel(),
            settings=DFSettings(
                steps=6,
                shift=3.0,
                base_num_frames=17,
                overlap_history=5,
                guidance_scale=1.0,
                solver=solver,
                addnoise_condition=0,
            ),
        )
        expected = TARGET.expand_as(res.latents) + 0.0
        torch.testing.assert_close(res.latents, expected, atol=2e-2, rtol=0)


def test_same_seed_same_video_and_seed_matters():
    a, b, c = _run(ToyModel(), seed=3), _run(ToyModel(), seed=3), _run(ToyModel(), seed=4)
    assert torch.equal(a.latents, b.latents)
    assert not torch.equal(a.latents, c.latents)


def test_frame_count_and_windows():
    model = ToyModel()
    res = _run(model, num_frames=42)  # not 4n+1: 11 latents cover 41 < 42 -> 12 latents = 45 frames, trimmed to 42
    assert res.num_frames == 42 and res.latents.shape == (1, 4, 12, H, W)
    assert [w.length for w in res.plan.windows] == [5, 5, 5, 3]  # base 5 latents, overlap 2
    decoded = torch.cat([res.latents[:, :, :1], res.latents[:, :, 1:].repeat_interleave(4, dim=2)], 2)  # 4(L-1)+1
    assert res.trim_frames(decoded).shape[2] == 42
    with pytest.raises(SkyReelsInputError, match="fewer than the requested 42"):
        res.trim_frames(decoded[:, :, :41])
    assert len(model.calls) == res.plan.total_steps == 16


def test_carried_latents_are_the_next_window_prefix():
    model = ToyModel()
    settings = DFSettings(steps=4, shift=3.0, base_num_frames=17, overlap_history=5, guidance_scale=1.0,
                          addnoise_condition=0)  # fmt: skip
    res = _run(model, settings=settings)
    rows = [w.rows for w in res.plan.windows]
    firsts = [sum(rows[:i]) for i in range(len(rows))]
    for w, first in zip(res.plan.windows[1:], firsts[1:], strict=True):
        call = model.calls[first]
        torch.testing.assert_close(call["x"][:, :, : w.prefix], res.latents[:, :, w.start : w.start + w.prefix])
        assert (call["t"][:, : w.prefix] == 0).all() and (call["t"][:, w.prefix :] == 999).all()


def test_addnoise_condition_renoises_prefix_input_only():
    model = ToyModel()
    prefix = torch.randn(1, 4, 1, H, W, generator=torch.Generator().manual_seed(9))
    settings = DFSettings(steps=4, shift=3.0, base_num_frames=17, overlap_history=5, guidance_scale=1.0,
                          addnoise_condition=20)  # fmt: skip
    res = _run(model, num_frames=21, settings=settings, prefix_latents=prefix)
    assert torch.equal(res.latents[:, :, :1], prefix)  # stored prefix unchanged
    first = model.calls[0]
    assert (first["t"][:, 0] == 20).all()
    diff = first["x"][:, :, 0:1] - prefix
    assert 0 < diff.abs().max() < 0.2  # 0.98 x + 0.02 eps


def test_video_extension_keeps_given_latents():
    model = ToyModel()
    video = torch.randn(1, 4, 7, H, W, generator=torch.Generator().manual_seed(2))
    res = _run(model, num_frames=45, prefix_latents=video)
    assert torch.equal(res.latents[:, :, :7], video)
    assert res.plan.windows[0].start == 5 and res.plan.windows[0].prefix == 2  # last overlap latents of the video
    torch.testing.assert_close(model.calls[0]["x"][:, :, :2], video[:, :, 5:], atol=0.2, rtol=0)


def test_end_latent_is_seen_clean_and_dropped():
    model = ToyModel()
    end = torch.full((1, 4, 1, H, W), 7.0)
    res = _run(model, num_frames=17, end_latent=end)
    assert res.latents.shape[2] == 5
    last = model.calls[-1]
    assert last["x"].shape[2] == 6 and torch.equal(last["x"][:, :, -1:], end) and (last["t"][:, -1] == 0).all()


def test_cfg_uses_negative_context_and_fps_index():
    model = ToyModel()
    settings = DFSettings(steps=2, shift=3.0, base_num_frames=9, overlap_history=None, guidance_scale=5.0, fps=16)
    generate_df_video(model, _ctx(), 9, (H, W), settings, negative_context=_ctx(value=-1.0), channels=4)
    # cond + uncond: two passes of batch 1 per step (pipelines/denoisers.py says why), the negative prompt second
    assert len(model.calls) == 4 and all(c["x"].shape[0] == 1 for c in model.calls)
    assert model.calls[1]["ctx"].eq(-1).all() and model.calls[0]["ctx"].eq(1).all() and model.calls[0]["fps"] == 0


def test_progress_counts_real_steps_and_can_cancel():
    seen = []
    res = _run(ToyModel(), callback=lambda d, t, x0: seen.append((d, t)))
    total = res.plan.total_steps
    assert seen == [(i, total) for i in range(1, total + 1)]

    class Cancelled(Exception):
        pass

    def cancel(done, total, x0):
        if done == 3:
            raise Cancelled

    model = ToyModel()
    with pytest.raises(Cancelled):
        _run(model, callback=cancel)
    assert len(model.calls) == 3


def test_async_blocks_and_sliding_window():
    model = ToyModel()
    settings = DFSettings(steps=4, shift=3.0, base_num_frames=9, overlap_history=None, ar_step=2, causal_block_size=1,
                          guidance_scale=1.0, addnoise_condition=0)  # fmt: skip
    res = generate_df_video(model, _ctx(), 25, (H, W), settings, channels=4)
    assert res.latents.shape[2] == 7 and max(c["x"].shape[2] for c in model.calls) == 3
    assert len(model.calls) == 4 + 6 * 2
    torch.testing.assert_close(res.latents, TARGET.expand_as(res.latents) + 0.0, atol=5e-2, rtol=0)


@pytest.mark.parametrize(
    ("settings", "kwargs", "match"),
    [
        (DFSettings(base_num_frames=17, overlap_history=17), {}, "overlap_history .17. must be smaller"),
        (DFSettings(base_num_frames=17, overlap_history=5, ar_step=2, causal_block_size=2), {}, "must divide"),
        (DFSettings(base_num_frames=17, overlap_history=5, ar_step=31), {}, "ar_step must be in"),
        (DFSettings(base_num_frames=18), {}, "base_num_frames must be 4n"),
        (DFSettings(solver="dpm"), {}, "solver must be"),
        (DFSettings(base_num_frames=17, overlap_history=5), {"prefix_latents": torch.zeros(1, 4, 1, 3, 3)}, "prefix_la"),
        (DFSettings(base_num_frames=17, overlap_history=5), {"end_latent": torch.zeros(1, 4, 2, H, W)}, "1 latent fr"),
        (DFSettings(base_num_frames=17, overlap_history=5, causal_block_size=5, ar_step=5),
         {"prefix_latents": torch.zeros(1, 4, 1, H, W)}, "must divide"),
        (DFSettings(base_num_frames=17, overlap_history=5), {"prefix_latents": torch.zeros(1, 4, 12, H, W)}, "nothing"),
        (DFSettings(base_num_frames=17, overlap_history=None, ar_step=0), {}, "asynchronous"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_before_any_model_call(settings, kwargs, match):
    with pytest.raises(SkyReelsInputError, match=match):
        generate_df_video(ToyModel(forbid=True), _ctx(), 45, (H, W), settings, channels=4, **kwargs)


def test_match_color_is_a_pure_stats_match():
    g = torch.Generator().manual_seed(0)
    x, ref = torch.randn(1, 3, 4, 5, 5, generator=g) * 3 + 1, torch.randn(1, 3, 2, 5, 5, generator=g) * 0.5 - 2
    x0 = x.clone()
    out = match_color(x, ref, 1.0)
    assert torch.equal(x, x0)
    torch.testing.assert_close(out.mean((2, 3, 4)), ref.mean((2, 3, 4)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std((2, 3, 4)), ref.std((2, 3, 4)), atol=1e-5, rtol=1e-5)
    assert torch.equal(match_color(x, ref, 0.0), x)
    torch.testing.assert_close(match_color(x, ref, 0.5), (x + out) / 2)


def test_color_match_applies_to_later_windows_only():
    base = DFSettings(steps=4, shift=3.0, base_num_frames=17, overlap_history=5, guidance_scale=1.0)
    plain = _run(ToyModel(), settings=base)
    matched = _run(ToyModel(), settings=DFSettings(**{**base.__dict__, "color_match": 1.0}))
    w0 = plain.plan.windows[0]
    assert torch.equal(plain.latents[:, :, : w0.end], matched.latents[:, :, : w0.end])
    assert not torch.equal(plain.latents, matched.latents)


@pytest.fixture
def one_thread():
    """The shared 2-core CI box is oversubscribed; one intra-op thread is ~10x faster for this tiny model."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_real_tiny_dit_long_video_is_deterministic(one_thread):
    """Integration: the real WanModel (TINY preset, random weights) as the DF model, 2 windows, CFG, async."""
    from skyreels_core.models.wan_dit import TINY, WanModel

    torch.manual_seed(0)
    model = WanModel(TINY).eval()
    ctx = torch.randn(1, 6, TINY.text_dim, generator=torch.Generator().manual_seed(1))
    settings = DFSettings(steps=2, shift=5.0, base_num_frames=9, overlap_history=5, guidance_scale=4.0, ar_step=1)
    run = lambda: generate_df_video(model, ctx, 13, (4, 4), settings, negative_context=torch.zeros_like(ctx), seed=7)  # noqa: E731
    a, b = run(), run()
    assert a.latents.shape == (1, 16, 4, 4, 4) and len(a.plan.windows) == 2 and a.plan.total_steps == 6
    assert torch.isfinite(a.latents).all() and torch.equal(a.latents, b.latents)
