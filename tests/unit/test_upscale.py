"""Per-frame video super-resolution (pipelines/upscale.py) with tiny Real-ESRGAN models loaded by spandrel from
files in the released layouts: output size, tiles against whole frames, batching, bounded memory, model checks,
cancel and the out-of-memory retry."""

from __future__ import annotations

import logging
import weakref
from itertools import pairwise

import pytest
import spandrel  # a ComfyUI dependency, installed with the test host
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from scripts.make_tiny_checkpoints import make_all
from scripts.tiny_builders import tiny_rrdb_state_dict, tiny_srvgg_state_dict
from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models.video_vae_tiling import ramp_weights, tile_spans
from skyreels_core.pipelines.upscale import is_out_of_memory, spandrel_upscaler, upscale_frames

# Receptive-field radius in input px, measured by moving one input pixel (test_receptive_fields): the tiny
# SRVGG (6 convs at input resolution) reaches 6 px + a sub-pixel of the x4 output; the tiny RRDB (17 convs on the
# pixel-unshuffled half-resolution grid, then the x2 / x4 stages) reaches 38 px.
SRVGG_RF, RRDB_RF = 7, 38


def _frames(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, height, width, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{"x2": RealESRGAN_x2plus-layout RRDBNet, "x4": realesr-general-x4v3-layout SRVGGNetCompact}, each loaded
    the way ComfyUI's UpscaleModelLoader does (torch.load weights_only, then spandrel)."""
    out = tmp_path_factory.mktemp("upscale_models")
    make_all(out, only=["upscale_models/"])
    files = {"x2": "RealESRGAN_x2plus_tiny.pth", "x4": "realesr-general-x4v3_tiny.pth"}
    loaded = {}
    for key, name in files.items():
        state = torch.load(out / "upscale_models" / name, map_location="cpu", weights_only=True)
        loaded[key] = (state, spandrel.ModelLoader().load_from_state_dict(state).eval())
    return loaded


@pytest.fixture(autouse=True)
def one_thread():
    # oneDNN picks conv kernels by thread count and shape; one thread keeps the 1e-5 comparisons meaningful.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _whole(descriptor, frames: torch.Tensor) -> torch.Tensor:
    """Reference: the descriptor on each whole frame alone, [N, H*s, W*s, 3]."""
    return torch.cat([descriptor(f[None].permute(0, 3, 1, 2)).permute(0, 2, 3, 1) for f in frames])


# ---------------------------------------------------------------- the tiny files


def test_tiny_files_are_the_released_layouts(models):
    state, x2 = models["x2"]
    assert list(state) == ["params_ema"]  # RealESRGAN_x2plus.pth wraps its weights in params_ema
    sd = state["params_ema"]
    assert sd["conv_first.weight"].shape == (4, 12, 3, 3)  # pixel-unshuffled by 2: 3 * 4 input channels
    assert sd["body.0.rdb3.conv5.weight"].shape == (4, 4 + 4 * 32, 3, 3)  # dense growth 32, as released
    assert {"conv_body.weight", "conv_up1.weight", "conv_up2.weight", "conv_hr.weight"} <= set(sd)
    assert sd["conv_last.weight"].shape == (3, 4, 3, 3)
    assert (x2.architecture.id, x2.scale, x2.input_channels, x2.output_channels) == ("ESRGAN", 2, 3, 3)
    assert x2.tags == ["4nf", "1nb", "unshuffle"] and x2.size_requirements.multiple_of == 4
    torch.testing.assert_close(x2.model.state_dict()["model.0.weight"], sd["conv_first.weight"], rtol=0, atol=0)

    state, x4 = models["x4"]
    assert list(state) == ["params"]  # realesr-general-x4v3.pth wraps its weights in params
    sd = state["params"]
    assert [k for k in sd if k.endswith("weight")][:3] == ["body.0.weight", "body.1.weight", "body.2.weight"]
    assert sd["body.1.weight"].shape == (8,) and sd["body.10.weight"].shape == (3 * 16, 8, 3, 3)
    assert (x4.architecture.id, x4.scale, x4.tags) == ("Compact", 4, ["8nf", "4nc"])
    # small: ~196 k parameters, nearly all in the dense growth that spandrel fixes at 32 channels
    assert sum(t.numel() for t in tiny_rrdb_state_dict().values()) < 200_000


def test_real_sized_layouts_are_detected_like_the_released_files():
    x2plus = tiny_rrdb_state_dict(num_feat=64, num_block=2)  # released: 23 blocks; 2 keep this test fast
    descriptor = spandrel.ModelLoader().load_from_state_dict({"params_ema": x2plus})
    assert (descriptor.architecture.id, descriptor.scale, descriptor.tags) == (
        "ESRGAN",
        2,
        ["64nf", "2nb", "unshuffle"],
    )
    x4v3 = tiny_srvgg_state_dict(num_feat=64, num_conv=32)
    descriptor = spandrel.ModelLoader().load_from_state_dict({"params": x4v3})
    assert (descriptor.architecture.id, descriptor.scale, descriptor.tags) == ("Compact", 4, ["64nf", "32nc"])


def test_receptive_fields():
    """The radii the overlap choices below rest on: how far one moved input pixel changes the output."""
    for key, builder, radius in (("x2", tiny_rrdb_state_dict, RRDB_RF), ("x4", tiny_srvgg_state_dict, SRVGG_RF)):
        descriptor = spandrel.ModelLoader().load_from_state_dict(builder())
        x = torch.rand(1, 3, 120, 120, generator=torch.Generator().manual_seed(1))
        moved = x.clone()
        moved[..., 60, 60] += 0.5
        with torch.no_grad():  # the bare network: the descriptor's clamp to 0..1 would hide changes
            changed = (descriptor.model(moved) - descriptor.model(x)).abs().amax(dim=(0, 1)).nonzero()
        s = descriptor.scale
        reach = max(max(60 * s - changed[:, i].min().item(), changed[:, i].max().item() - 60 * s) for i in (0, 1)) / s
        assert radius - 1 < reach <= radius, (key, reach)


# ---------------------------------------------------------------- sizes, tiles, batches


def test_output_is_scale_times_the_input_and_matches_the_model(models):
    frames = _frames(2, 18, 26)  # not a multiple of x2plus's 4: the descriptor pads and crops
    for key, scale in (("x2", 2), ("x4", 4)):
        descriptor = models[key][1]
        model = spandrel_upscaler(descriptor)
        assert model.scale == scale
        out = upscale_frames(model.fn, frames, scale=model.scale, align=model.align)
        assert out.shape == (2, 18 * scale, 26 * scale, 3) and out.dtype == torch.float32
        assert out.device.type == "cpu" and 0 <= out.min() and out.max() <= 1
        torch.testing.assert_close(out, _whole(descriptor, frames), rtol=0, atol=1e-6)


def _max_tile_error(descriptor, frames, tile, overlap, align=1) -> float:
    tiled = upscale_frames(descriptor, frames, scale=descriptor.scale, tile=tile, overlap=overlap, align=align)
    return (tiled - _whole(descriptor, frames)).abs().max().item()


def test_tiles_equal_whole_frames_when_a_quarter_overlap_covers_the_receptive_field(models):
    x4 = models["x4"][1]
    # tile 56, overlap 28: 2 x 3 fitted tiles of 46 x 52 px (three meet at x 48..52), 7 px (= SRVGG_RF) dropped
    frames = _frames(1, 64, 100)
    assert _max_tile_error(x4, frames, tile=56, overlap=4 * SRVGG_RF) < 1e-5  # 1.8e-7 measured
    # and the overlap is needed: tiles that drop less than the receptive field differ at the seams
    assert _max_tile_error(x4, frames, tile=56, overlap=16) > 1e-3  # 4 px dropped: 1.8e-3 measured
    assert _max_tile_error(x4, frames, tile=56, overlap=0) > 1e-2  # 0.05 measured


def test_aligned_tiles_of_a_pixel_unshuffle_model_equal_whole_frames(models):
    x2 = models["x2"][1]
    model = spandrel_upscaler(x2)
    assert model.align == 4
    # 477 px: 2 tiles, [0, 320) and [160, 477), the last ending in a partial 4 px cell (padded as the frame is);
    # unaligned, the second would start at 157, an odd pixel, on another pixel-unshuffle grid
    frames = _frames(1, 40, 477)
    overlap = 4 * (RRDB_RF + 2)  # the dropped quarter, 40 px (whole cells), covers the 38 px
    assert _max_tile_error(x2, frames, tile=320, overlap=overlap, align=4) < 1e-5
    # Dropping 4 px: 1.1e-2 measured. (The trunk is a residual scaled by 0.2 per block, so far pixels weigh
    # little: 8 px gives 9e-5, 12 px 9e-6. A trained model's weights set its own effective reach.)
    assert _max_tile_error(x2, frames, tile=320, overlap=16, align=4) > 1e-3


def test_tile_weights_add_up_to_one_for_any_plan():
    """With a purely local model (no receptive field) every tile plan must give the whole-frame output exactly,
    including plans where three tiles meet (evenly spread tiles overlapping by more than half a tile)."""
    frames = _frames(2, 90, 100)

    def nearest(x):  # x2 nearest upsampling, stretched past 0..1 so that the clamp shows
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2) * 1.5 - 0.25

    expected = nearest(frames.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).clamp(0, 1)
    for tile, overlap, align in [(56, 28, 1), (48, 8, 1), (40, 0, 1), (32, 16, 4), (24, 12, 3)]:
        out = upscale_frames(nearest, frames, scale=2, tile=tile, overlap=overlap, align=align)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6, msg=f"tile {tile}, overlap {overlap}")


def test_fitted_tiles_cover_the_axis_with_the_same_count_and_no_more_overlap_than_asked():
    assert tile_spans(540, 512, 32, fit=True) == [(0, 286), (254, 540)]  # not [(0, 512), (28, 540)]
    for length in range(40, 400, 7):
        for tile, overlap in ((32, 8), (48, 16), (64, 0), (100, 50)):
            loose, fitted = tile_spans(length, tile, overlap), tile_spans(length, tile, overlap, fit=True)
            size = fitted[0][1] - fitted[0][0]
            assert len(fitted) == len(loose) and fitted[0][0] == 0 and fitted[-1][1] == length
            assert all(stop - start == size <= tile for start, stop in fitted)
            gaps = [a[1] - b[0] for a, b in pairwise(fitted)]
            assert all(overlap - 1 <= gap <= overlap + 1 for gap in gaps), (length, tile, overlap, fitted)


def test_ramp_weights_with_a_margin_are_a_partition_of_unity():
    spans = tile_spans(40, 16, 8)
    total = torch.zeros(40 * 2)
    for i, (start, stop) in enumerate(spans):
        weights = ramp_weights(spans, i, 2, margin=2)
        total[start * 2 : stop * 2] += weights
        if i > 0:  # the first 2 cells of every inner edge count for nothing
            assert weights[:4].eq(0).all() and weights[4] > 0
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-6)
    assert torch.equal(ramp_weights(spans, 1, 2, margin=0), ramp_weights(spans, 1, 2))


def test_ramp_weights_stay_continuous_where_three_tiles_meet():
    spans = tile_spans(90, 48, 8)  # (0, 48), (21, 69), (42, 90): the middle tile's two ramps cross at 42..48
    assert spans == [(0, 48), (21, 69), (42, 90)]
    middle = ramp_weights(spans, 1, 1)
    # both ramps apply (multiplied): no jump where the second one starts (overwriting gave a 5/28 step)
    assert middle.diff().abs().max() <= 1 / 28 + 1e-6
    assert middle[0] == 1 / 28 and middle[-1] == 1 / 28


def test_any_batch_size_gives_the_same_frames(models):
    x4 = models["x4"][1]
    frames = _frames(5, 24, 32)
    one = upscale_frames(x4, frames, scale=4, batch=1, tile=16, overlap=8)
    for batch in (2, 5):
        torch.testing.assert_close(
            upscale_frames(x4, frames, scale=4, batch=batch, tile=16, overlap=8), one, rtol=0, atol=1e-6
        )


class _Recorder:
    """Wraps a model and records the largest input and output it ever saw (what the device holds per call)."""

    def __init__(self, fn):
        self.fn, self.calls, self.largest_in, self.largest_out, self.frames_per_call = fn, 0, 0, 0, set()

    def __call__(self, x):
        y = self.fn(x)
        self.calls += 1
        self.largest_in, self.largest_out = max(self.largest_in, x.numel()), max(self.largest_out, y.numel())
        self.frames_per_call.add(x.shape[0])
        return y


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of tensors created inside the mode and still alive (CPU stands in for the device here)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def _free(self, nbytes):
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:  # a new storage (views and in-place results share their input's)
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.live += t.untyped_storage().nbytes()
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, t.untyped_storage().nbytes())
        return out


def test_memory_per_call_does_not_grow_with_the_number_of_frames(models):
    x4 = models["x4"][1]
    seen, extra = {}, {}
    for n in (2, 12):
        frames = _frames(n, 40, 48)
        recorder, live = _Recorder(x4), _LiveBytes()
        with live:
            out = upscale_frames(recorder, frames, scale=4, tile=24, overlap=8, batch=2)
        seen[n] = (recorder.largest_in, recorder.largest_out, recorder.frames_per_call)
        extra[n] = live.peak - out.untyped_storage().nbytes()  # everything but the output itself
        assert recorder.calls == n // 2 * 2 * 3  # 2 x 3 tiles per batch of 2 frames
    assert seen[2] == seen[12] == (2 * 3 * 24 * 22, 2 * 3 * 96 * 88, {2})  # tiles fitted: 24 x 22 px
    assert extra[2] == extra[12] > 0


# ---------------------------------------------------------------- checks


def test_settings_are_checked_before_the_model_runs(models):
    recorder = _Recorder(models["x4"][1])
    frames = _frames(2, 64, 64)
    bad = [
        (dict(frames=frames[..., :1]), "IMAGE batch"),
        (dict(frames=frames[0]), "IMAGE batch"),
        (dict(frames=frames.to(torch.uint8)), "float"),
        (dict(tile=40, overlap=24), r"at least twice the overlap \(24 px\).*use tile 48 or overlap 20"),
        (dict(batch=0), "batch must be an integer >= 1"),
        (dict(overlap=-1), "overlap must be"),
        (dict(scale=0), "scale must be"),
    ]
    for change, message in bad:
        kwargs = dict(frames=frames, scale=4, tile=16, overlap=8) | change
        with pytest.raises(SkyReelsInputError, match=message):
            upscale_frames(recorder, kwargs.pop("frames"), **kwargs)
    with pytest.raises(SkyReelsInputError, match=r"rounded to multiples of 4 px"):
        upscale_frames(recorder, frames, scale=4, tile=30, overlap=13, align=4)  # tile 28 < 2 x 16
    assert recorder.calls == 0
    # a tile that covers the frame needs no overlap check
    assert upscale_frames(recorder, frames, scale=4, tile=64, overlap=40).shape == (2, 256, 256, 3)


def test_a_model_of_another_scale_is_named_with_expected_and_found_sizes(models):
    with pytest.raises(
        CheckpointError,
        match=r"returned \[1, 3, 64, 80\] for a \[1, 3, 16, 20\] input; a x2 "
        r"model returns \[1, 3, 32, 40\]",
    ):
        upscale_frames(models["x4"][1], _frames(3, 16, 20), scale=2)


def test_descriptor_checks(models):
    gray = spandrel.ModelLoader().load_from_state_dict(tiny_srvgg_state_dict(in_ch=1))
    with pytest.raises(CheckpointError, match=r"takes 1 and returns 1 channels.*RGB"):
        spandrel_upscaler(gray)
    with pytest.raises(CheckpointError, match="not a single-image model"):
        spandrel_upscaler(models["x4"][1].model)  # the bare torch module, not a descriptor
    x2 = models["x2"][1]
    x2.supports_half = False
    try:
        with pytest.raises(SkyReelsInputError, match="does not run in float16; it runs in float32, bfloat16"):
            spandrel_upscaler(x2, dtype=torch.float16)
        assert spandrel_upscaler(x2, dtype=torch.bfloat16).scale == 2
    finally:
        x2.supports_half = True
    model = spandrel_upscaler(x2)
    assert (model.scale, model.align, model.whole_frame) == (2, 4, False) and "ESRGAN x2" in model.name


# ---------------------------------------------------------------- progress, cancel, out of memory


def test_progress_and_cancel(models):
    x4 = models["x4"][1]
    frames = _frames(6, 16, 16)
    progress = []
    upscale_frames(x4, frames, scale=4, batch=4, callback=lambda done, total: progress.append((done, total)))
    assert progress == [(4, 6), (6, 6)]

    class Cancelled(Exception):
        pass

    def cancel_after_two(done, total):
        if done >= 2:
            raise Cancelled

    recorder = _Recorder(x4)
    with pytest.raises(Cancelled):
        upscale_frames(recorder, frames, scale=4, batch=1, callback=cancel_after_two)
    assert recorder.calls == 2


class FakeOOM(RuntimeError):
    pass


def test_out_of_memory_halves_the_batch_then_the_tile(models, caplog):
    x4 = models["x4"][1]
    frames = _frames(3, 64, 64)

    def small_only(x):  # "device" of one frame and 48 px tiles
        if x.shape[0] > 1 or max(x.shape[-2:]) > 48:
            raise FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x4(x)

    with caplog.at_level(logging.WARNING, logger="skyreels_core.pipelines.upscale"):
        out = upscale_frames(small_only, frames, scale=4, batch=4, overlap=8, is_oom=lambda e: isinstance(e, FakeOOM))
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 3 and "batch 4, tile whole frame; retrying with batch 2, tile whole frame" in retries[0]
    assert "retrying with batch 1, tile 32 px" in retries[-1] and "FakeOOM: CUDA out of memory" in retries[-1]
    expected = upscale_frames(x4, frames, scale=4, tile=32, overlap=8)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)

    # frames already done are kept: only the frame that ran out is redone, and the smaller tile stays
    shapes = []

    def third_call_runs_out(x):
        shapes.append(tuple(x.shape))
        if len(shapes) == 3:
            raise FakeOOM("out of memory")
        return x4(x)

    out = upscale_frames(third_call_runs_out, frames, scale=4, overlap=8, is_oom=lambda e: isinstance(e, FakeOOM))
    assert shapes[:3] == [(1, 3, 64, 64)] * 3 and len(shapes) == 3 + 9  # then 3 x 3 fitted tiles of 27 px
    assert all(shape[-1] == shape[-2] == 27 for shape in shapes[3:])
    torch.testing.assert_close(out[:2], _whole(x4, frames[:2]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[2:], upscale_frames(x4, frames[2:], scale=4, tile=32, overlap=8), rtol=0, atol=0)

    def never(x):
        raise FakeOOM("out of memory")

    with pytest.raises(
        SkyReelsInputError,
        match=r"Out of device memory upscaling frames 0-0 even with batch 1, "
        r"tile 32 px and overlap 8 px",
    ):
        upscale_frames(never, frames, scale=4, overlap=8, is_oom=lambda e: isinstance(e, FakeOOM))

    def broken(x):
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        upscale_frames(broken, frames, scale=4)


def test_out_of_memory_predicate():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("Input type (float) and bias type (c10::Half) should be the same"))
    assert not is_out_of_memory(ValueError("out of memory"))
