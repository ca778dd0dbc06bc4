"""SkyReels-V4 refiner: windowed attention, the refiner's guide condition, and `refine_video` on the tiny refiner."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_refiner_state_dict
from skyreels_core.conditioning.refine import (
    Keyframes,
    keyframe_condition,
    plan_keyframes,
    refine_timing,
    refiner_condition,
    upsample_guide,
)
from skyreels_core.conditioning.v4 import VideoCondition
from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models.av_mmdit import CONFIG_METADATA_KEY, AVDiTConfig, AVMMDiT, ModelType, VideoStream, load_av_dit
from skyreels_core.nn import attention as attention_module
from skyreels_core.nn.attention import attention, window_attention, window_pairs, window_plan, window_segments
from skyreels_core.pipelines.refine import refine_video
from skyreels_core.shapes import AudioLatentShape, pixel_frames

REFINER = AVDiTConfig.TINY_REFINER
TEXT_DIM = REFINER.text_dim


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(config: AVDiTConfig = REFINER, seed: int = 6) -> AVMMDiT:
    model = AVMMDiT(config).eval().requires_grad_(False)
    model.load_state_dict(tiny_refiner_state_dict(seed, config)[0])
    return model


@pytest.fixture(scope="module")
def refiner():
    return _model()


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- window partition --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, window, shifted, expected",
    [
        (10, 4, False, [(0, 4), (4, 4), (8, 2)]),
        (10, 4, True, [(0, 2), (2, 4), (6, 4)]),
        (7, 3, True, [(0, 2), (2, 3), (5, 2)]),
        (8, 4, True, [(0, 2), (2, 4), (6, 2)]),
        (5, 0, False, [(0, 5)]),  # 0 = the whole axis
        (5, 5, True, [(0, 5)]),  # a window covering the axis is never shifted
        (5, 9, False, [(0, 5)]),
        (1, 2, True, [(0, 1)]),
    ],
)
def test_window_segments(size, window, shifted, expected):
    assert window_segments(size, window, shifted) == expected


def _window_ids(grid, window, shifted):
    """Independent reference: the window id of every grid token, (coord + shift) // window per axis."""
    ids = []
    for n, w in zip(grid, window, strict=True):
        w = n if w <= 0 or w >= n else w
        shift = w // 2 if shifted and w < n else 0
        ids.append((torch.arange(n) + shift) // w)
    f, y, x = torch.meshgrid(*ids, indexing="ij")
    return (f * 10_000 + y * 100 + x).reshape(-1)


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("grid, window", [((3, 5, 7), (2, 2, 3)), ((4, 4, 4), (2, 2, 2)), ((5, 3, 6), (0, 2, 4)),
                                          ((2, 3, 3), (4, 4, 4)), ((1, 1, 1), (2, 2, 2))])
def test_window_plan_covers_every_token_once(grid, window, shifted):
    offset, num_text = 4, 6
    tokens = grid[0] * grid[1] * grid[2]
    plan = window_plan(grid, window, shifted=shifted, offset=offset, length=offset + tokens + num_text)
    everything = torch.cat([g.reshape(-1) for g in plan.groups] + [plan.global_index])
    assert sorted(everything.tolist()) == list(range(offset + tokens + num_text))
    assert plan.global_index.tolist() == [*range(offset), *range(offset + tokens, offset + tokens + num_text)]
    ids = _window_ids(grid, window, shifted)
    windows = [row - offset for g in plan.groups for row in g]
    for row in windows:  # every window is exactly one reference window
        assert ids[row].unique().numel() == 1 and (ids == ids[row[0]]).sum() == row.numel()
    assert len(windows) == ids.unique().numel()
    assert plan.pairs() == window_pairs(grid, window, shifted, offset + num_text)


def _qkv(length, heads=2, dim=8, seed=0):
    return (_randn(2, length, heads, dim, seed=seed + i) for i in range(3))


def _masked_reference(q, k, v, grid, window, shifted, offset, num_global_after):
    """Dense attention with a boolean mask built from the reference window ids: the windowed attention's meaning."""
    tokens = grid[0] * grid[1] * grid[2]
    length = offset + tokens + num_global_after
    ids = torch.full((length,), -1, dtype=torch.long)  # -1: global
    ids[offset:offset + tokens] = _window_ids(grid, window, shifted)
    glob = ids < 0
    allowed = (ids[:, None] == ids[None, :]) | glob[None, :] | glob[:, None]
    return attention(q, k, v, mask=allowed[None, None])


@pytest.mark.parametrize("chunk", [1 << 16, 5])  # 5 query tokens per call: every window its own call
@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_is_dense_attention_under_the_window_mask(shifted, chunk, monkeypatch):
    monkeypatch.setattr(attention_module, "WINDOW_CHUNK_TOKENS", chunk)
    grid, window, offset, text = (3, 4, 5), (2, 3, 2), 3, 5
    q, k, v = _qkv(offset + 60 + text)
    plan = window_plan(grid, window, shifted=shifted, offset=offset, length=offset + 60 + text)
    torch.testing.assert_close(window_attention(q, k, v, plan),
                               _masked_reference(q, k, v, grid, window, shifted, offset, text), atol=1e-6, rtol=1e-5)


def test_window_covering_the_grid_is_dense_and_small_windows_are_not():
    grid, offset, text = (3, 4, 5), 2, 5
    q, k, v = _qkv(offset + 60 + text, seed=3)
    dense = attention(q, k, v)
    for shifted in (False, True):
        whole = window_plan(grid, (3, 4, 5), shifted=shifted, offset=offset, length=q.shape[1])
        assert len(whole.groups) == 1 and whole.groups[0].shape == (1, 60)
        torch.testing.assert_close(window_attention(q, k, v, whole), dense, atol=1e-6, rtol=1e-5)
        small = window_plan(grid, (1, 2, 2), shifted=shifted, offset=offset, length=q.shape[1])
        assert (window_attention(q, k, v, small) - dense).abs().max() > 1e-2


def test_window_query_does_not_see_keys_outside_its_window():
    grid, window, offset, text = (2, 4, 4), (1, 2, 2), 0, 3
    length = 32 + text
    q, k, v = _qkv(length, seed=5)
    plan = window_plan(grid, window, shifted=False, offset=offset, length=length)
    out = window_attention(q, k, v, plan)
    window_of_0 = [0, 1, 4, 5]  # frame 0, rows 0-1, cols 0-1
    outside = [i for i in range(32) if i not in window_of_0]
    k2, v2 = k.clone(), v.clone()
    k2[:, outside] += 3.0 * _randn(2, len(outside), 2, 8, seed=9)
    v2[:, outside] += 3.0
    perturbed = window_attention(q, k2, v2, plan)
    torch.testing.assert_close(perturbed[:, window_of_0], out[:, window_of_0], atol=1e-6, rtol=0)
    assert (perturbed[:, outside] - out[:, outside]).abs().max() > 0.5
    assert (perturbed[:, 32:] - out[:, 32:]).abs().max() > 1e-3  # text queries are dense: they see everything
    k3 = k.clone()
    k3[:, 32] += 3.0  # one text key: every video query sees it
    assert (window_attention(q, k3, v, plan)[:, window_of_0] - out[:, window_of_0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="plan covers"):
        window_attention(q[:, :-1], k[:, :-1], v[:, :-1], plan)


# -- the windowed model --------------------------------------------------------------------------------------------


def _video_input(frames=3, height=8, width=8, batch=1, seed=1):
    return _randn(batch, 33, frames, height, width, seed=seed), _randn(batch, 5, TEXT_DIM, seed=seed + 1)


def _run(model, x, context, **stream):
    with torch.no_grad():
        return model(VideoStream(x, **stream), None, torch.tensor([500.0] * x.shape[0]), context, fps=16.0)[0]


def test_windowed_model_with_a_whole_grid_window_is_the_dense_model(refiner):
    x, context = _video_input()
    dense = AVMMDiT(dataclasses.replace(REFINER, attention_window=(0, 0, 0))).eval()
    whole = AVMMDiT(dataclasses.replace(REFINER, attention_window=(3, 4, 4))).eval()
    dense.load_state_dict(refiner.state_dict())
    whole.load_state_dict(refiner.state_dict())
    torch.testing.assert_close(_run(whole, x, context), _run(dense, x, context), atol=1e-5, rtol=1e-5)
    assert (_run(refiner, x, context) - _run(dense, x, context)).abs().max() > 1e-3


def test_blocks_alternate_regular_and_shifted_windows(refiner):
    x, context = _video_input(frames=3, height=10, width=8)  # token grid 3 x 5 x 4, windows (2, 2, 2)
    seen = []
    handles = [b.register_forward_pre_hook(lambda m, args: seen.append(args[2].window)) for b in refiner.video.blocks]
    try:
        _run(refiner, x, context)
    finally:
        for h in handles:
            h.remove()
    length = 60 + context.shape[1]
    for plan, shifted in zip(seen, (False, True), strict=True):
        expected = window_plan((3, 5, 4), (2, 2, 2), shifted=shifted, length=length)
        assert [g.tolist() for g in plan.groups] == [g.tolist() for g in expected.groups]
        assert plan.global_index.tolist() == list(range(60, length))


def test_one_block_windowed_model_is_local():
    """With one dual-stream block, a video token's output depends only on its window's latents (and the text)."""
    config = dataclasses.replace(REFINER, num_single_blocks=0, attention_window=(1, 2, 2))
    model = _model(config)
    x, context = _video_input(frames=2, height=8, width=8)  # token grid 2 x 4 x 4; window of token 0: 2 x 2 tokens
    out = _run(model, x, context)
    far = x.clone()
    far[:, :, 1] += 2.0  # every latent of frame 1 (another window)
    far[:, :, 0, 4:, :] -= 2.0  # and the bottom half of frame 0
    moved = _run(model, far, context)
    torch.testing.assert_close(moved[:, :, 0, :4, :4], out[:, :, 0, :4, :4], atol=1e-5, rtol=0)
    assert (moved[:, :, 1] - out[:, :, 1]).abs().max() > 1e-2
    near = x.clone()
    near[:, :, 0, 3, 3] += 2.0  # inside token 0's window (token (0, 1, 1))
    assert (_run(model, near, context)[:, :, 0, :2, :2] - out[:, :, 0, :2, :2]).abs().max() > 1e-3


def test_attention_window_in_metadata_round_trip_and_checks(tmp_path, refiner):
    tensors, metadata = tiny_refiner_state_dict()
    assert json.loads(metadata[CONFIG_METADATA_KEY])["attention_window"] == [2, 2, 2]
    path = tmp_path / "refiner.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    loaded = load_av_dit(path)
    assert loaded.config == REFINER and loaded.config.model_type is ModelType.VIDEO_ONLY and loaded.config.windowed
    assert not any(k.startswith(("audio", "av_cross")) for k in loaded.state_dict())
    save_file(tensors, str(tmp_path / "plain.safetensors"))  # no metadata: the window is not in the tensors -> dense
    assert load_av_dit(tmp_path / "plain.safetensors").config.attention_window == (0, 0, 0)
    for bad in ([2, 2], [2, -1, 2], [2, 2.5, 2], "2,2,2"):
        stored = json.loads(metadata[CONFIG_METADATA_KEY]) | {"attention_window": bad}
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={CONFIG_METADATA_KEY: json.dumps(stored)})
        with pytest.raises(CheckpointError, match="attention_window"):
            load_av_dit(tmp_path / "bad.safetensors")


def test_tiny_refiner_registry_entry(tmp_path, refiner):
    from scripts.make_tiny_checkpoints import make_all

    paths = make_all(tmp_path, only=["diffusion_models/skyreels_v4_refiner_tiny.safetensors"])
    assert [p.name for p in paths] == ["skyreels_v4_refiner_tiny.safetensors"]
    loaded = load_av_dit(paths[0])
    assert loaded.config == REFINER
    x, context = _video_input()
    torch.testing.assert_close(_run(loaded, x, context), _run(refiner, x, context), atol=0, rtol=0)


# -- keyframe plan and timing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("frames, count, expected", [(21, 5, (0, 5, 10, 15, 20)), (21, 0, ()), (21, 1, (0,)),
                                                     (21, 2, (0, 20)), (3, 3, (0, 1, 2)), (6, 4, (0, 2, 3, 5)),
                                                     (1, 1, (0,))])
def test_plan_keyframes(frames, count, expected):
    assert plan_keyframes(frames, count) == expected


def test_plan_keyframes_rejects_bad_counts():
    with pytest.raises(SkyReelsInputError, match="Nearest valid value: 3"):
        plan_keyframes(3, 4)
    with pytest.raises(SkyReelsInputError, match="Nearest valid value: 0"):
        plan_keyframes(3, -1)
    with pytest.raises(SkyReelsInputError):
        plan_keyframes(0, 0)


@pytest.mark.parametrize("latents, fps", [(21, 16.0), (2, 16.0), (31, 24.0), (1, 30.0)])
def test_refine_timing_and_audio_coverage(latents, fps):
    timing = refine_timing(latents, fps, 2)
    assert timing.latent_frames == 2 * (latents - 1) + 1
    assert timing.pixel_frames == 8 * (latents - 1) + 1 == pixel_frames(timing.latent_frames)
    assert timing.fps == 2 * fps
    base_frames = pixel_frames(latents)
    # the refined clip ends half a base frame earlier: the base audio always covers it
    assert timing.pixel_frames / timing.fps == pytest.approx(base_frames / fps - 0.5 / fps)
    assert AudioLatentShape.from_video(timing.pixel_frames, timing.fps).frames <= \
        AudioLatentShape.from_video(base_frames, fps).frames
    same = refine_timing(latents, fps, 1)
    assert (same.latent_frames, same.pixel_frames, same.fps) == (latents, base_frames, fps)


# -- the refiner's condition ---------------------------------------------------------------------------------------


def test_upsample_guide_even_frames_are_the_resized_base_frames():
    low = _randn(2, 16, 3, 4, 6, seed=2)
    guide = upsample_guide(low, 8, 10, 2)
    assert guide.shape == (2, 16, 5, 8, 10)
    for j in range(3):
        resized = F.interpolate(low[:, :, j], size=(8, 10), mode="bilinear", align_corners=False)
        torch.testing.assert_close(guide[:, :, 2 * j], resized, atol=1e-6, rtol=0)
    torch.testing.assert_close(guide[:, :, 1], 0.5 * (guide[:, :, 0] + guide[:, :, 2]), atol=1e-6, rtol=0)
    assert torch.equal(upsample_guide(low, 4, 6, 1), low)


def test_refiner_condition_keyframes_and_kept_regions():
    low = _randn(1, 16, 3, 4, 4, seed=3)
    keyframes = _randn(1, 16, 2, 8, 8, seed=4)
    keep_latent = _randn(1, 16, 5, 8, 8, seed=5)
    keep_mask = torch.zeros(1, 1, 5, 8, 8)
    keep_mask[:, :, 1, 2:5, 3:6] = 0.9  # binarised at 0.5
    keep_mask[:, :, 2, 0, 0] = 0.3  # not kept
    cond = refiner_condition(low, height=8, width=8, temporal_factor=2, keyframes=keyframes, keyframe_indices=(0, 2),
                             keep_latent=keep_latent, keep_mask=keep_mask)
    guide = upsample_guide(low, 8, 8, 2)
    assert cond.latent.shape == (1, 16, 5, 8, 8) and cond.mask.shape == (1, 1, 5, 8, 8)
    assert torch.equal(cond.latent[:, :, 0], keyframes[:, :, 0]) and torch.equal(cond.latent[:, :, 4], keyframes[:, :, 1])
    assert torch.equal(cond.latent[:, :, 1, 2:5, 3:6], keep_latent[:, :, 1, 2:5, 3:6])
    assert torch.equal(cond.latent[:, :, 2], guide[:, :, 2]) and torch.equal(cond.latent[:, :, 3], guide[:, :, 3])
    expected = torch.zeros(1, 1, 5, 8, 8)
    expected[:, :, [0, 4]] = 1.0
    expected[:, :, 1, 2:5, 3:6] = 1.0
    assert torch.equal(cond.mask, expected)
    loose = refiner_condition(low, height=8, width=8, keyframes=keyframes, keyframe_indices=(0, 2),
                              keep_keyframes=False)
    assert torch.equal(loose.latent[:, :, 4], keyframes[:, :, 1]) and loose.mask.sum() == 0
    same_fps = refiner_condition(low, height=8, width=8, temporal_factor=1, keyframes=keyframes,
                                 keyframe_indices=(0, 2))
    assert same_fps.latent.shape[2] == 3 and torch.equal(same_fps.latent[:, :, 2], keyframes[:, :, 1])


def test_keyframe_condition_selects_frames():
    latent, mask = _randn(1, 16, 5, 8, 8, seed=6), (torch.rand(1, 1, 5, 8, 8) > 0.5).float()
    picked = keyframe_condition(VideoCondition(latent, mask), (0, 3))
    assert torch.equal(picked.latent, latent[:, :, [0, 3]]) and torch.equal(picked.mask, mask[:, :, [0, 3]])
    with pytest.raises(SkyReelsInputError, match="0 to 4"):
        keyframe_condition(VideoCondition(latent, mask), (0, 5))


# -- refine_video --------------------------------------------------------------------------------------------------


LOW = _randn(1, 16, 3, 4, 4, seed=7)
KEYFRAMES = _randn(1, 16, 2, 8, 8, seed=8)
CONTEXT, NEGATIVE = _randn(1, 5, TEXT_DIM, seed=9), _randn(1, 4, TEXT_DIM, seed=10)


def _refine(model, **kwargs):
    args = dict(low_latent=LOW, context=CONTEXT, height=8, width=8, keyframes=KEYFRAMES, keyframe_indices=(0, 2),
                steps=2, cfg=1.0, seed=3)
    return refine_video(model, **{**args, **kwargs})


def test_model_sees_noisy_guide_and_mask_on_channels(refiner):
    seen = []
    handle = refiner.register_forward_pre_hook(lambda m, args: seen.append(args[0].x.clone()))
    try:
        out = _refine(refiner, steps=1)
    finally:
        handle.remove()
    cond = refiner_condition(LOW, height=8, width=8, keyframes=KEYFRAMES, keyframe_indices=(0, 2))
    x = seen[0]
    assert x.shape == (1, 33, 5, 8, 8)
    assert torch.equal(x[:, 16:32], cond.latent) and torch.equal(x[:, 32:], cond.mask)
    assert torch.equal(x[:, :16, [0, 4]], KEYFRAMES)  # kept frames are shown clean
    torch.testing.assert_close(x[:, :16, 1:4], torch.randn(1, 16, 5, 8, 8, generator=torch.Generator().manual_seed(3))
                               [:, :, 1:4])  # the rest starts from the seeded noise
    assert out.shape == (1, 16, 5, 8, 8)


@pytest.mark.parametrize("solver", ["euler", "unipc"])
def test_kept_regions_and_keyframes_come_back_unchanged(refiner, solver):
    keep_latent = _randn(1, 16, 5, 8, 8, seed=11)
    keep_mask = torch.zeros(1, 1, 5, 8, 8)
    keep_mask[:, :, 1:3, :4, 4:] = 1.0
    out = _refine(refiner, solver=solver, keep_latent=keep_latent, keep_mask=keep_mask, steps=3)
    assert torch.equal(out[:, :, [0, 4]], KEYFRAMES)
    assert torch.equal(out[:, :, 1:3, :4, 4:], keep_latent[:, :, 1:3, :4, 4:])
    free = keep_mask.expand_as(out).clone()
    free[:, :, [0, 4]] = 1.0
    guide = refiner_condition(LOW, height=8, width=8, keyframes=KEYFRAMES, keyframe_indices=(0, 2)).latent
    assert (out - guide)[free == 0].abs().min() > 0 and torch.isfinite(out).all()


def test_refine_video_end_to_end_on_the_tiny_refiner_file(tmp_path):
    from scripts.make_tiny_checkpoints import make_all

    model = load_av_dit(make_all(tmp_path, only=["diffusion_models/skyreels_v4_refiner_tiny.safetensors"])[0])
    steps = []
    out = _refine(model, negative_context=NEGATIVE, cfg=3.0, callback=lambda i, n, x0: steps.append((i, n, x0.shape)))
    assert out.shape == (1, 16, 5, 8, 8) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert steps == [(1, 2, (1, 16, 5, 8, 8)), (2, 2, (1, 16, 5, 8, 8))]
    assert torch.equal(out, _refine(model, negative_context=NEGATIVE, cfg=3.0))  # same seed, same result
    assert not torch.allclose(out, _refine(model, negative_context=NEGATIVE, cfg=3.0, seed=4))
    assert not torch.allclose(out, _refine(model, negative_context=NEGATIVE, cfg=1.0))  # CFG pass runs
    strength = _refine(model, denoise=0.5)  # SDEdit start from the noised guide
    assert strength.shape == out.shape and not torch.allclose(strength, _refine(model))
    plain = refine_video(model, low_latent=LOW, context=CONTEXT, height=12, width=8, temporal_factor=1, steps=1)
    assert plain.shape == (1, 16, 3, 12, 8)


class _NeverCalled(torch.nn.Module):
    config = REFINER

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *args, **kwargs):
        raise AssertionError("the model must not run for invalid inputs")


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"height": 7}, "patch 2x2"),
        ({"width": 2}, "at least the low-res"),
        ({"temporal_factor": 3}, "temporal_factor"),
        ({"keyframe_indices": (0, 3)}, "0 to 2"),
        ({"keyframe_indices": (0,)}, "keyframes must be"),
        ({"keyframes": KEYFRAMES[..., :4, :4]}, "keyframes must be"),
        ({"keyframes": None}, "without the keyframe latents"),
        ({"keep_latent": torch.zeros(1, 16, 5, 8, 8)}, "go together"),
        ({"keep_latent": torch.zeros(1, 16, 3, 8, 8), "keep_mask": torch.zeros(1, 1, 3, 8, 8)}, "2 x \\(3 - 1\\)"),
        ({"keep_latent": torch.zeros(1, 16, 5, 8, 8), "keep_mask": torch.full((1, 1, 5, 8, 8), 2.0)}, "0..1"),
        ({"low_latent": torch.zeros(1, 16, 3, 4)}, "low_latent"),
        ({"low_latent": torch.zeros(1, 12, 3, 4, 4)}, "channels"),
        ({"context": torch.zeros(1, 5, 7)}, "context"),
        ({"steps": 0}, "steps"),
        ({"denoise": 0.0}, "denoise"),
        ({"solver": "ddim"}, "solver"),
        ({"cfg": float("nan")}, "cfg"),
        ({"fps": 0.0}, "fps"),
    ],
)
def test_bad_inputs_raise_clear_errors_before_any_model_call(bad, message):
    with pytest.raises(SkyReelsInputError, match=message):
        _refine(_NeverCalled(), **bad)


def test_audio_only_model_is_refused():
    audio_only = AVMMDiT(dataclasses.replace(AVDiTConfig.TINY, model_type=ModelType.AUDIO_ONLY), device="meta")
    with pytest.raises(SkyReelsInputError, match="refiner must be a SkyReels-V4 video model"):
        _refine(audio_only)
    with pytest.raises(SkyReelsInputError, match="refiner must be"):
        _refine(torch.nn.Linear(2, 2))


def test_keyframes_spec_checks():
    with pytest.raises(SkyReelsInputError, match="keyframes latent height"):
        Keyframes((0,), 3, 8).check(3, 4, 4, 1)
    with pytest.raises(SkyReelsInputError, match="0 to 2"):
        Keyframes((0, 3), 8, 8).check(3, 4, 4, 1)
    with pytest.raises(SkyReelsInputError, match="keyframe condition"):
        Keyframes((0,), 8, 8, VideoCondition(torch.zeros(1, 16, 2, 8, 8), torch.zeros(1, 1, 2, 8, 8))).check(3, 4, 4, 1)
    Keyframes((0, 2), 8, 8).check(3, 4, 4, 1)


def test_two_stage_recipe_base_keyframes_refiner_decode(refiner):
    """The README's recipe on tiny models: base (low-res + keyframes) -> refiner x2 -> VAE decode."""
    from scripts.tiny_builders import tiny_av_dit_state_dict
    from skyreels_core.models.video_vae import VAE3DConfig, WanVAE
    from skyreels_core.pipelines.t2av import av_latent_shape, sample_av

    base = AVMMDiT(AVDiTConfig.TINY).eval()
    base.load_state_dict(tiny_av_dit_state_dict(0)[0])
    shape, num_audio = av_latent_shape(9, 16.0, 32, 32)  # 3 latent frames of 4 x 4
    kf = Keyframes(plan_keyframes(shape.frames, 2), height=8, width=8)
    low, audio, keyframes = sample_av(base, video_shape=shape, num_audio_latents=num_audio, context=CONTEXT,
                                      negative_context=NEGATIVE, fps=16.0, steps=1, keyframes=kf)
    hi = refine_video(refiner, low_latent=low, context=CONTEXT, negative_context=NEGATIVE, height=8, width=8,
                      temporal_factor=2, keyframes=keyframes, keyframe_indices=kf.indices, fps=16.0, steps=1)
    timing = refine_timing(shape.frames, 16.0, 2)
    torch.manual_seed(0)
    frames = WanVAE(VAE3DConfig.TINY).eval().decode(hi)
    assert frames.shape == (1, 3, timing.pixel_frames, 64, 64) and timing.pixel_frames == 17 and timing.fps == 32.0
    assert torch.equal(hi[:, :, [0, 4]], keyframes)
    assert AudioLatentShape.from_video(timing.pixel_frames, timing.fps).frames <= audio.shape[2]
