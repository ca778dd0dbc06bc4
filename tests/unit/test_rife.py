"""Spec tests for RIFE 4.x frame interpolation: layouts and loading (models/rife.py), the warp + blend synthesis,
and the interpolation pipeline's timing, scene cuts, batching, progress and input checks (pipelines/interpolate.py).
Parity with the reference network is in tests/golden/test_p9_rife.py."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_rife_config, tiny_rife_state_dict, tiny_video_vae_state_dict
from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models.rife import RIFE_PRESETS, IFNet, RIFEConfig, blend, load_rife, warp
from skyreels_core.pipelines.interpolate import (
    DEFAULT_SCENE_CUT_THRESHOLD,
    FrameSource,
    detect_scene_cuts,
    frame_ratio,
    frame_similarity,
    interpolate_frames,
    measure_speed,
    output_positions,
    plan_frames,
)

VERSIONS = ("4.7", "4.17", "4.22", "4.26", "4.25_lite", "4.26_heavy")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The networks here are tiny: one thread is as fast, and immune to other jobs on a shared CPU (two threads
    spinning against them made single tests 30x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(version: str = "4.26", seed: int = 0) -> IFNet:
    model = IFNet(tiny_rife_config(version))
    model.load_state_dict(tiny_rife_state_dict(version, seed=seed))
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def rife426():
    return _model("4.26")


@pytest.fixture(scope="module")
def rife47():
    return _model("4.7")


def _pattern(seed: int, height: int = 48, width: int = 72) -> torch.Tensor:
    """A smooth random RGB picture [3, H, W] in [0, 1]."""
    coarse = torch.rand(1, 3, height // 6, width // 6, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def _moving(frames: int, step: int = 2, seed: int = 0) -> torch.Tensor:
    """IMAGE [frames, 48, 72, 3]: one picture moving `step` px right per frame."""
    base = _pattern(seed)
    return torch.stack([torch.roll(base, i * step, dims=2) for i in range(frames)]).movedim(1, -1).contiguous()


# 1. Layouts and loading ----------------------------------------------------------------------------------------


def test_released_block_layouts():
    """The full-size presets have the released shapes (read from the reference files), and the shapes alone give
    the layout back."""
    expected = {  # version: (block0 conv0 in, block1 conv0 in, lastconv out, encoder key + shape, blocks, scales)
        "4.7": (15, 20, 24, ("encode.1.weight", (16, 4, 4, 4)), 4, (8, 4, 2, 1)),
        "4.17": (23, 28, 24, ("encode.cnn3.weight", (32, 8, 4, 4)), 4, (8, 4, 2, 1)),
        "4.22": (23, 36, 52, ("encode.cnn3.weight", (32, 8, 4, 4)), 4, (8, 4, 2, 1)),
        "4.26": (15, 28, 52, ("encode.cnn3.weight", (16, 4, 4, 4)), 5, (16, 8, 4, 2, 1)),
        "4.25_lite": (15, 28, 52, ("encode.cnn3.weight", (16, 4, 4, 4)), 5, (32, 16, 8, 4, 1)),
        "4.26_heavy": (39, 52, 52, ("encode.cnn3.weight", (16, 16, 4, 4)), 5, (16, 8, 4, 2, 1)),
    }
    for version, (in0, in1, last, (enc_key, enc_shape), blocks, scales) in expected.items():
        with torch.device("meta"):
            state = IFNet(RIFE_PRESETS[version]).state_dict()
        widths = RIFE_PRESETS[version].widths
        assert state["block0.conv0.0.0.weight"].shape == (widths[0] // 2, in0, 3, 3), version
        assert state["block1.conv0.0.0.weight"].shape[1] == in1, version
        assert state["block0.lastconv.0.weight"].shape == (widths[0], last, 4, 4), version
        assert state[enc_key].shape == enc_shape, version
        assert state["block0.convblock.7.beta"].shape == (1, widths[0], 1, 1)
        assert f"block{blocks - 1}.conv0.0.0.weight" in state and f"block{blocks}.conv0.0.0.weight" not in state
        assert RIFEConfig.from_state_dict(state) == RIFE_PRESETS[version]
        assert RIFE_PRESETS[version].scales == scales
    assert [RIFE_PRESETS["4.7"].pad_multiple(s) for s in (0.25, 0.5, 1, 2)] == [128, 64, 32, 32]
    assert [RIFE_PRESETS["4.26"].pad_multiple(s) for s in (0.5, 1)] == [128, 64]
    assert RIFE_PRESETS["4.25_lite"].pad_multiple() == 128
    assert sum(p.numel() for p in IFNet(RIFE_PRESETS["4.26"]).parameters()) == pytest.approx(5.4e6, rel=0.1)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("form", ["pth", "module_pth", "pkl", "safetensors"])
def test_tiny_files_load_strictly(tmp_path, version, form):
    state = tiny_rife_state_dict(version, seed=3)
    path = tmp_path / f"rife.{form.split('_')[-1]}"
    if form == "safetensors":
        save_file(state, str(path))
    else:
        torch.save({("module." + k if form == "module_pth" else k): v for k, v in state.items()}, path)
    # the 4.25 lite scales are recognised by the released widths only: a tiny file of that layout names them
    scales = (32, 16, 8, 4, 1) if version == "4.25_lite" else None
    model = load_rife(path, dtype=torch.bfloat16, scales=scales)
    assert model.config == tiny_rife_config(version)
    assert not model.training and all(p.dtype == torch.bfloat16 for p in model.parameters())
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k].float(), v) for k, v in state.items())


def test_training_only_modules_and_prefixes_are_dropped(tmp_path):
    """The 4.25 train_log file: `module.` prefixes plus `teacher.*` / `caltime.*` modules."""
    state = {"module." + k: v for k, v in tiny_rife_state_dict("4.26").items()}
    state["module.teacher.conv0.0.0.weight"] = torch.zeros(4, 3, 3, 3)
    state["module.caltime.0.weight"] = torch.zeros(8, 41, 3, 3)
    torch.save(state, tmp_path / "flownet.pkl")
    assert load_rife(tmp_path / "flownet.pkl").config.version == "4.25/4.26"


def _renamed(state: dict, mapping: dict) -> dict:
    out = {}
    for key, value in state.items():
        for old, new in mapping.items():
            if key.startswith(old):
                key = new + key[len(old):]
        out[key] = value
    return out


def _wrong_files() -> dict:
    s417, s47 = tiny_rife_state_dict("4.17"), tiny_rife_state_dict("4.7")
    return {
        "4.10": (_renamed(s417, {"encode.cnn0": "encode.0", "encode.cnn1": "encode.2", "encode.cnn2": "encode.4",
                                 "encode.cnn3": "encode.6"}), "4.10-4.12"),
        "4.6": ({k: v for k, v in s47.items() if not k.startswith("encode.")}, "4.5/4.6"),
        "4.3": ({**s47, "contextnet.conv1.conv1.0.weight": torch.zeros(16, 3, 3, 3)}, "4.0-4.3"),
        "realesrgan": ({"conv_first.weight": torch.zeros(64, 3, 3, 3), "body.0.rdb1.conv1.weight":
                        torch.zeros(32, 64, 3, 3)}, "not a RIFE 4.x IFNet"),
        "3_blocks": ({k: v for k, v in s47.items() if not k.startswith("block3.")}, "4 or 5 flow blocks"),
        "missing_key": ({k: v for k, v in s47.items() if k != "block2.convblock.3.beta"},
                        "Missing 1 keys: block2.convblock.3.beta"),
        "wrong_width": ({**s47, "block1.conv0.0.0.weight": torch.zeros(6, 30, 3, 3)}, "block1 takes 30 input"),
    }


@pytest.mark.parametrize("name", list(_wrong_files()))
def test_wrong_files_name_what_they_found(tmp_path, name):
    state, message = _wrong_files()[name]
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_rife(path)
    assert f"{name}.pth" in str(error.value)
    if name not in ("missing_key", "wrong_width", "3_blocks"):
        assert "rife426.pth" in str(error.value)  # says what to use instead


def test_garbage_and_other_kinds(tmp_path):
    (tmp_path / "rife.pth").write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="rife.pth"):
        load_rife(tmp_path / "rife.pth")
    (tmp_path / "rife.pkl").write_bytes(b"PK\x03\x04 a broken zip")
    with pytest.raises(CheckpointError, match="rife.pkl"):
        load_rife(tmp_path / "rife.pkl")
    save_file(tiny_video_vae_state_dict(), str(tmp_path / "vae.safetensors"))
    with pytest.raises(CheckpointError, match="looks like a video VAE"):
        load_rife(tmp_path / "vae.safetensors")


def test_registry_files_load_and_interpolate(tmp_path):
    from scripts import make_tiny_checkpoints as maker

    paths = maker.make_all(tmp_path, only=["frame_interpolation/"], registry=maker.REAL_NAMED_FILES)
    files = {p.name: p for p in paths}
    assert set(files) == {"rife47.pth", "rife426.pth"}
    assert all(p.stat().st_size < 500_000 for p in paths)
    raw = torch.load(files["rife426.pth"], weights_only=True)
    assert all(k.startswith("module.") for k in raw)
    for name, version in (("rife47.pth", "4.7-4.9"), ("rife426.pth", "4.25/4.26")):
        model = load_rife(files[name])
        assert model.config.version == version
        assert interpolate_frames(model, _moving(2), multiplier=2).frames.shape == (4, 48, 72, 3)


# 2. Synthesis: warp and blend with hand-made flows -------------------------------------------------------------


def _square(x0: int, size: int = 8, height: int = 32, width: int = 48) -> torch.Tensor:
    image = torch.zeros(1, 3, height, width)
    image[:, :, 12:12 + size, x0:x0 + size] = torch.tensor([0.9, 0.5, 0.2]).view(1, 3, 1, 1)
    return image


def _flows(dx0: float, dx1: float, height: int = 32, width: int = 48) -> torch.Tensor:
    flow = torch.zeros(1, 4, height, width)
    flow[:, 0], flow[:, 2] = dx0, dx1
    return flow


def test_warp_samples_at_position_plus_flow():
    image = torch.arange(12.0).view(1, 1, 3, 4)
    flow = torch.zeros(1, 2, 3, 4)
    flow[:, 0] = 1.0  # out(x) = image(x + 1)
    assert torch.allclose(warp(image, flow)[0, 0, :, :3], image[0, 0, :, 1:], atol=1e-5)
    assert torch.allclose(warp(image, flow)[0, 0, :, 3], image[0, 0, :, 3], atol=1e-5)  # clamped at the border
    flow[:, 0], flow[:, 1] = 0.5, -1.0
    expected = (image[0, 0, :2, :3] + image[0, 0, :2, 1:]) / 2
    assert torch.allclose(warp(image, flow)[0, 0, 1:, :3], expected, atol=1e-5)


def test_blend_puts_a_moving_square_at_the_mid_position():
    """A square at x = 10 in frame 0 and x = 18 in frame 1 (8 px right): with F_t->0 = -4 px and F_t->1 = +4 px
    both warps put it at x = 14, the mid position, whatever the mask."""
    img0, img1 = _square(10), _square(18)
    for mask_value in (0.0, 3.0, -3.0):
        out = blend(img0, img1, _flows(-4, 4), torch.full((1, 1, 32, 48), mask_value))
        torch.testing.assert_close(out, _square(14), atol=1e-5, rtol=0)
    # t = 1/4: F_t->0 = -2, F_t->1 = +6 -> x = 12; the mask picks how much of each warp, here both agree
    torch.testing.assert_close(blend(img0, img1, _flows(-2, 6), torch.zeros(1, 1, 32, 48)), _square(12), atol=1e-5,
                               rtol=0)
    # wrong flows give two half squares: the mask weighs them, sigmoid(m) for frame 0
    out = blend(img0, img1, torch.zeros(1, 4, 32, 48), torch.full((1, 1, 32, 48), math.log(3.0)))
    torch.testing.assert_close(out, 0.75 * img0 + 0.25 * img1, atol=1e-5, rtol=0)


def test_constant_frames_come_out_unchanged(rife426, rife47):
    """Warping a constant picture gives that constant and the blend is convex: any t, any weights. (64 x 64 needs no
    padding; the zero padding of other sizes is part of what gets warped, as in the references.)"""
    frame = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(2, 3, 64, 64)
    for model, ensemble in ((rife426, False), (rife47, False), (rife47, True)):
        for t in (0.0, 0.3, 1.0):
            with torch.no_grad():
                out = model(frame, frame, t, ensemble=ensemble)
            torch.testing.assert_close(out, frame, atol=1e-6, rtol=0)


def test_output_stays_in_the_inputs_flow_neighbourhood(rife426):
    """What the architecture guarantees at t = 0 and t = 1 (and at any t): each output pixel is a convex blend of
    bilinear samples of the two inputs taken within the estimated flow's reach, so it lies between the min and
    max of both inputs over a window of radius ceil(max |flow|) + 1. (A trained model also makes F_t->0 ~ 0 at
    t = 0; random weights do not, so that is not testable here. The pipeline copies inputs at t = 0 exactly.)"""
    img0, img1 = _pattern(1, 64, 64)[None], _pattern(2, 64, 64)[None]  # a multiple of 64: no padding
    f0, f1 = rife426.encode(img0), rife426.encode(img1)
    for t in (0.0, 0.5, 1.0):
        with torch.no_grad():
            flow, mask, grid = rife426.estimate(img0, img1, f0, f1, torch.tensor([t]))
            out = blend(img0, img1, flow, mask, grid)
            assert torch.equal(out, rife426(img0, img1, t))
        radius = math.ceil(flow.abs().max().item()) + 1
        assert radius < 20  # the bound means something
        both = torch.cat([img0, img1], 0)
        high = F.max_pool2d(both, 2 * radius + 1, 1, radius).amax(0, keepdim=True)
        low = -F.max_pool2d(-both, 2 * radius + 1, 1, radius).amax(0, keepdim=True)
        assert (out <= high + 1e-5).all() and (out >= low - 1e-5).all()
        assert (out - img0).abs().max() > 0.01  # not a trivial copy


def test_forward_pads_to_the_layout_multiple_and_crops_back(rife426, rife47):
    a, b = _pattern(3, 37, 50)[None], _pattern(4, 37, 50)[None]
    for model, multiple in ((rife426, 64), (rife47, 32)):
        padded_a, padded_b = model.pad(a), model.pad(b)
        assert padded_a.shape[-2:] == (multiple * math.ceil(37 / multiple), multiple * math.ceil(50 / multiple))
        with torch.no_grad():
            out = model(a, b, 0.4)
            direct = model.synthesize(padded_a, padded_b, model.encode(padded_a), model.encode(padded_b),
                                      torch.tensor([0.4]))
        assert out.shape == (1, 3, 37, 50)
        torch.testing.assert_close(out, direct[:, :, :37, :50], atol=0, rtol=0)
    assert rife426.pad(a, scale=0.5).shape[-2:] == (128, 128)


def test_per_sample_timesteps_and_ensemble_symmetry(rife47):
    """A [B] timestep equals B separate calls; with ensemble the pair (I0, I1, t) and its reverse (I1, I0, 1 - t)
    give the same frame (the ensemble averages exactly these two passes)."""
    a, b = _pattern(5)[None].repeat(2, 1, 1, 1), _pattern(6)[None].repeat(2, 1, 1, 1)
    with torch.no_grad():
        both = rife47(a, b, torch.tensor([0.25, 0.75]))
        torch.testing.assert_close(both[1:], rife47(a[:1], b[:1], 0.75), atol=2e-5, rtol=0)
        forward = rife47(a[:1], b[:1], 0.3, ensemble=True)
        reverse = rife47(b[:1], a[:1], 0.7, ensemble=True)
        plain_reverse = rife47(b[:1], a[:1], 0.7)
    torch.testing.assert_close(forward, reverse, atol=1e-5, rtol=0)
    assert (rife47(a[:1], b[:1], 0.3) - plain_reverse).abs().max() > 1e-3  # without ensemble it is not symmetric


def test_options_the_layout_cannot_run(rife426):
    frame = torch.rand(1, 3, 32, 32)
    with pytest.raises(SkyReelsInputError, match="turn ensemble off"):
        rife426(frame, frame, ensemble=True)
    with pytest.raises(SkyReelsInputError, match="0.25, 0.5, 1.0, 2.0, 4.0"):
        rife426(frame, frame, scale=0.3)


# 3. Timing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "options", "keep", "count", "step"),
    [
        (5, dict(multiplier=2), True, 10, Fraction(1, 2)),
        (5, dict(multiplier=2), False, 9, Fraction(1, 2)),
        (5, dict(multiplier=4), True, 20, Fraction(1, 4)),
        (10, dict(fps=24, target_fps=60), True, 25, Fraction(2, 5)),
        (10, dict(fps=24, target_fps=60), False, 23, Fraction(2, 5)),
        (11, dict(fps=24, target_fps=60), True, 28, Fraction(2, 5)),
        (4, dict(fps=24, target_fps=30), True, 5, Fraction(4, 5)),
        (7, dict(fps=23.976, target_fps=47.952), True, 14, Fraction(1, 2)),  # exact: no drift from decimals
        (3, dict(fps=16, target_fps=16), True, 3, Fraction(1)),
        (3, dict(multiplier=1), False, 3, Fraction(1)),
    ],
)
def test_frame_counts_and_positions(frames, options, keep, count, step):
    ratio = frame_ratio(**options)
    positions = output_positions(frames, ratio, keep)
    assert len(positions) == count
    assert positions == [k * step for k in range(count)]
    assert positions[-1] < frames if keep else positions[-1] <= frames - 1
    if keep:  # the output lasts as long as the input, to within one output frame
        assert 0 <= count / ratio - frames < 1 / ratio


def test_plan_copies_inputs_holds_the_tail_and_skips_listed_pairs():
    sources = plan_frames(3, 2, keep_duration=True, copy_pairs=[1])
    assert sources == [FrameSource(0), FrameSource(0, 0.5), FrameSource(1), FrameSource(1), FrameSource(2),
                       FrameSource(2)]
    assert plan_frames(1, 3) == [FrameSource(0)] * 3 and plan_frames(1, 3, keep_duration=False) == [FrameSource(0)]


# 4. The pipeline -----------------------------------------------------------------------------------------------


class _Counting:
    """Counts model passes (synthesize calls and encoded frames) of a wrapped IFNet."""

    def __init__(self, model: IFNet):
        self.passes, self.encoded = 0, 0
        self._synthesize = model.synthesize
        model.synthesize = self._count_synthesize
        model.encode.register_forward_hook(self._count_encode)

    def _count_synthesize(self, *args, **kwargs):
        self.passes += 1
        return self._synthesize(*args, **kwargs)

    def _count_encode(self, module, inputs, output):
        self.encoded += inputs[0].shape[0]


def test_interpolated_frames_are_the_model_at_each_time(rife426):
    images = _moving(3)
    result = interpolate_frames(rife426, images, fps=24, target_fps=60, scene_cut_threshold=0)
    assert result.fps == 60.0 and result.frames.shape == (8, 48, 72, 3) and result.frames.dtype == torch.float32
    for k, source in enumerate(result.sources):
        if source.t == 0:
            assert torch.equal(result.frames[k], images[source.index])
            continue
        pair = images[source.index:source.index + 2].movedim(-1, 1)
        with torch.no_grad():
            expected = rife426(pair[:1], pair[1:], source.t)[0].movedim(0, -1)
        torch.testing.assert_close(result.frames[k], expected, atol=1e-5, rtol=0)
    assert [s.t for s in result.sources] == pytest.approx([0, 0.4, 0.8, 0.2, 0.6, 0, 0, 0])  # 2.4, 2.8: held


def test_scene_cut_is_not_blended(rife426):
    """Frames 0-1 show one picture moving, frames 2-3 an unrelated one: the cut pair (1, 2) holds frame 1."""
    images = torch.cat([_moving(2, seed=0), _moving(2, seed=9)])
    similarity = frame_similarity(images)
    assert similarity[0] > 0.6 and similarity[2] > 0.6 and similarity[1] < DEFAULT_SCENE_CUT_THRESHOLD
    assert detect_scene_cuts(images) == (1,) and detect_scene_cuts(images, 0) == ()
    result = interpolate_frames(rife426, images, multiplier=2)
    assert result.scene_cuts == (1,)
    assert torch.equal(result.frames[3], images[1])  # position 1.5: the earlier shot until the new one starts
    assert not torch.equal(result.frames[1], images[0]) and not torch.equal(result.frames[1], images[1])
    morphed = interpolate_frames(rife426, images, multiplier=2, scene_cut_threshold=0)
    assert morphed.scene_cuts == () and (morphed.frames[3] - images[1]).abs().max() > 0.05


def test_identical_neighbours_and_single_frames_need_no_model():
    model = _model("4.7")
    counter = _Counting(model)
    still = torch.cat([_moving(1), _moving(1), _moving(1)])
    result = interpolate_frames(model, still, multiplier=3)
    assert result.frames.shape[0] == 9 and all(torch.equal(f, still[0]) for f in result.frames)
    one = interpolate_frames(model, still[:1], fps=24, target_fps=60)
    assert one.frames.shape[0] == 3 and one.fps == 60.0
    assert counter.passes == 0 and counter.encoded == 0


def test_batching_gives_the_same_frames_and_encodes_each_frame_once():
    images = _moving(5)
    results, counts = [], []
    for batch_size in (1, 3, 8):
        model = _model("4.26")
        counter = _Counting(model)
        results.append(interpolate_frames(model, images, multiplier=4, batch_size=batch_size,
                                          scene_cut_threshold=0).frames)
        counts.append((counter.passes, counter.encoded))
    for other in results[1:]:  # float noise only: CPU convolutions sum in another order for other batch sizes
        torch.testing.assert_close(other, results[0], atol=2e-5, rtol=0)
    assert counts == [(12, 5), (4, 5), (2, 5)]  # 4 pairs x 3 times; every input frame encoded once


def test_progress_and_cancel(rife47):
    images = _moving(5)
    seen = []
    interpolate_frames(rife47, images, multiplier=3, batch_size=3, callback=lambda *progress: seen.append(progress))
    assert seen == [(3, 8), (6, 8), (8, 8)]

    model = _model("4.7")
    counter = _Counting(model)

    def cancel(done, total):
        raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        interpolate_frames(model, images, multiplier=3, batch_size=2, callback=cancel)
    assert counter.passes == 1


def test_compute_dtype_runs_a_copy(rife426):
    images = _moving(3)
    reference = interpolate_frames(rife426, images, multiplier=2).frames
    half = interpolate_frames(rife426, images, multiplier=2, dtype=torch.bfloat16).frames
    assert half.dtype == torch.float32 and (half - reference).abs().max() < 0.1
    assert (half - reference).abs().max() > 0  # it did run in bfloat16
    assert all(p.dtype == torch.float32 for p in rife426.parameters())


@pytest.mark.parametrize(
    ("images", "options", "message"),
    [
        (torch.rand(2, 3, 16, 16), dict(multiplier=2), r"\[frames, height, width, 3\]"),
        (torch.rand(0, 16, 16, 3), dict(multiplier=2), "empty"),
        (torch.zeros(2, 16, 16, 3, dtype=torch.uint8), dict(multiplier=2), "float"),
        (None, dict(multiplier=0), "multiplier must be a whole number >= 1"),
        (None, dict(multiplier=2.5), "multiplier"),
        (None, dict(multiplier=2, target_fps=60, fps=24), "not both"),
        (None, dict(), "not both and not neither"),
        (None, dict(target_fps=60), "needs the input's fps"),
        (None, dict(target_fps=60, fps=0), "positive number"),
        (None, dict(target_fps=60, fps=float("nan")), "positive number"),
        (None, dict(target_fps=12, fps=24), "below the input's 24 fps"),
        (None, dict(multiplier=2, scale=0.3), "0.25, 0.5, 1.0"),
        (None, dict(multiplier=2, ensemble=True), "turn ensemble off"),
        (None, dict(multiplier=2, scene_cut_threshold=1.5), "scene_cut_threshold"),
        (None, dict(multiplier=2, batch_size=0), "batch_size"),
        (None, dict(multiplier=2, dtype=torch.float64), "float32, float16 or bfloat16"),
    ],
)
def test_bad_inputs_are_refused_before_any_model_call(images, options, message):
    model = _model("4.26")
    counter = _Counting(model)
    with pytest.raises(SkyReelsInputError, match=message):
        interpolate_frames(model, _moving(3) if images is None else images, **options)
    assert counter.passes == 0 and counter.encoded == 0


def test_measure_speed(rife47):
    speed = measure_speed(rife47, 32, 48, frames=3, multiplier=2, batch_size=2)
    assert speed["model_frames"] == 2 and speed["model_frames_per_s"] > 0 and speed["seconds"] > 0
