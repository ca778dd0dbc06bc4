"""Post-processing node tests: SkyReels RIFE Loader / Interpolate Frames and SkyReels Upscale Video on the tiny files
in the released layouts (rife47.pth, rife426.pth; a tiny Real-ESRGAN x2plus loaded through spandrel as ComfyUI's
Load Upscale Model does), ComfyUI's runtime faked as in tests/unit/test_nodes.py."""

from __future__ import annotations

import importlib
import sys

import pytest
import test_nodes as base
import torch
from test_nodes import PACK, FakeProgressBar, _fresh_logs, env  # noqa: F401 (fixtures)

RIFE_FILES = ("frame_interpolation/rife47.pth", "frame_interpolation/rife426.pth")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ctx(env, tmp_path_factory):  # noqa: F811 (the imported fixture)
    maker = importlib.import_module("make_tiny_checkpoints")
    out = tmp_path_factory.mktemp("tiny_post")
    maker.make_all(out, only=["frame_interpolation/", "upscale_models/"], registry=maker.REAL_NAMED_FILES)
    for folder in ("frame_interpolation", "upscale_models"):
        (env.models / folder).symlink_to(out / folder)
    env.cache = {}
    env.core_interp = sys.modules.get(PACK + ".skyreels_core.pipelines.interpolate") or importlib.import_module(
        PACK + ".skyreels_core.pipelines.interpolate")
    return env


def rife(ctx, name="rife47.pth", precision="auto"):
    key = (name, precision)
    if key not in ctx.cache:
        ctx.cache[key] = ctx.nodes["SkyReelsRIFELoader"].execute(model_name=name, precision=precision)[0]
    return ctx.cache[key]


def interpolate(ctx, images, node_id="31", **overrides):
    kwargs = dict(rife=rife(ctx), images=images, fps=24.0, multiplier=2, target_fps=0.0, scene_cut=0.2,
                  ensemble=False, scale=1.0, batch=3)
    node = base.with_hidden(ctx.nodes["SkyReelsInterpolateFrames"], node_id)
    return node.execute(**{**kwargs, **overrides})


def moving_square(frames=5, size=48, step=4):
    images = torch.full((frames, size, size, 3), 0.2)
    for i in range(frames):
        images[i, 16:32, 4 + step * i: 20 + step * i] = 0.9
    return images


def test_rife_loader_lists_the_folder_and_loads_each_version(ctx):
    schema = ctx.nodes["SkyReelsRIFELoader"].define_schema()
    assert list(schema.inputs[0].options) == ["rife426.pth", "rife47.pth"]
    assert rife(ctx).module.config.version.startswith("4.7")
    assert rife(ctx, "rife426.pth").module.config.version.startswith("4.2")  # module. prefix stripped
    assert rife(ctx, precision="auto").module.dtype == torch.float32  # the CPU runs float32
    with pytest.raises(ValueError, match="model_name"):
        ctx.nodes["SkyReelsRIFELoader"].execute(model_name="../rife47.pth", precision="auto")
    with pytest.raises(ValueError, match="precision"):
        ctx.nodes["SkyReelsRIFELoader"].execute(model_name="rife47.pth", precision="int8")


def test_interpolate_doubles_frames_and_fps_keeping_the_inputs(ctx):
    images = moving_square()
    FakeProgressBar.instances.clear()
    out, fps = interpolate(ctx, images)
    assert out.shape == (10, 48, 48, 3) and fps == 48.0  # 5 frames at 24 fps = 10 at 48: the same 0.208 s
    assert torch.equal(out[0::2], images)  # every input frame kept exactly, in place
    assert 0 <= out.min() and out.max() <= 1
    core = ctx.core_interp.interpolate_frames(rife(ctx).module, images, fps=24.0, multiplier=2, batch_size=1)
    assert torch.allclose(out, core.frames, atol=2e-5) and core.fps == 48.0
    assert FakeProgressBar.instances[-1].updates[-1][:2] == (4, 4)  # the 4 made frames, batch by batch


def test_interpolate_to_a_target_fps_and_rife426(ctx):
    out, fps = interpolate(ctx, moving_square(frames=4), rife=rife(ctx, "rife426.pth"), target_fps=60.0)
    assert fps == 60.0 and out.shape[0] == 10  # ceil(4 x 60 / 24): the same duration


def test_interpolate_holds_a_cut_instead_of_morphing(ctx):
    images = moving_square(frames=4)
    images[2:] = torch.rand(2, 48, 48, 3, generator=torch.Generator().manual_seed(1))  # a hard cut after frame 1
    out, _ = interpolate(ctx, images)
    assert torch.equal(out[3], images[1])  # the in-between of the cut holds the earlier frame
    off, _ = interpolate(ctx, images, scene_cut=0.0)
    assert not torch.equal(off[3], images[1])


@pytest.mark.parametrize("overrides, message", [
    ({"fps": 0.0}, "fps"),
    ({"target_fps": 12.0}, "below the input"),
    ({"images": torch.zeros(3, 8, 8)}, "IMAGE"),
    ({"ensemble": True, "rife": "426"}, "ensemble"),
])
def test_interpolate_errors_say_what_to_change(ctx, overrides, message):
    if overrides.get("rife") == "426":
        overrides["rife"] = rife(ctx, "rife426.pth")
    kwargs = {"images": moving_square(frames=3), **overrides}
    with pytest.raises(ValueError, match=message):
        interpolate(ctx, **kwargs)


def test_interpolate_cancel_stops_after_one_batch(ctx):
    class Interrupt(Exception):
        pass

    calls = []
    module = rife(ctx).module
    estimate = module.estimate

    def counted(*args, **kwargs):
        calls.append(args[0].shape[0])
        return estimate(*args, **kwargs)

    def cancel(self, value, total=None, preview=None):
        raise Interrupt

    with pytest.MonkeyPatch.context() as mp, pytest.raises(Interrupt):
        mp.setattr(module, "estimate", counted)
        mp.setattr(FakeProgressBar, "update_absolute", cancel)
        interpolate(ctx, moving_square(frames=8), batch=2)
    assert calls == [2]  # one batch of 2 in-betweens of the 7 ran, then Cancel


# ---------------------------------------------------------------------------------------------- upscale


def upscale_model(name="RealESRGAN_x2plus.pth"):
    """What ComfyUI's Load Upscale Model returns: a spandrel ImageModelDescriptor of the file."""
    import spandrel

    return spandrel.ModelLoader().load_from_file(str(CTX_MODELS[0] / "upscale_models" / name)).eval()


CTX_MODELS: list = []


@pytest.fixture(scope="module")
def sr(ctx):
    CTX_MODELS[:] = [ctx.models]
    return ctx


def upscale(ctx, images, node_id="32", **overrides):
    kwargs = dict(upscale_model=upscale_model(), images=images, tile=512, overlap=64, batch=4)
    return base.with_hidden(ctx.nodes["SkyReelsUpscaleVideo"], node_id).execute(**{**kwargs, **overrides})[0]


def test_upscale_video_doubles_the_size_batch_by_batch(sr):
    images = torch.rand(5, 24, 40, 3, generator=torch.Generator().manual_seed(2))
    FakeProgressBar.instances.clear()
    model = upscale_model()
    out = upscale(sr, images, upscale_model=model, batch=2)
    assert out.shape == (5, 48, 80, 3) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert [u[:2] for u in FakeProgressBar.instances[-1].updates] == [(2, 5), (4, 5), (5, 5)]
    with torch.no_grad():  # the model on each whole frame, as ComfyUI's own node gives it
        whole = model(images.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    assert torch.allclose(out, whole, atol=1e-5)
    assert next(model.model.parameters()).device.type == "cpu"  # handed back after the run
    x4 = upscale(sr, images[:1], upscale_model=upscale_model("realesr-general-x4v3.pth"), tile=16, overlap=8)
    assert x4.shape == (1, 96, 160, 3)


@pytest.mark.parametrize("overrides, message", [
    ({"images": torch.zeros(2, 8, 8)}, "IMAGE"),
    ({"tile": 64, "overlap": 40}, "overlap"),
])
def test_upscale_video_errors_say_what_to_change(sr, overrides, message):
    kwargs = {"images": torch.rand(2, 128, 128, 3), **overrides}
    with pytest.raises(ValueError, match=message):
        upscale(sr, **kwargs)
