"""SkyReels-V4 two-stage node tests: SkyReels V4 Keyframes -> SkyReels V4 Sampler (keyframes) -> SkyReels V4 Refiner
Loader / SkyReels V4 Refine -> SkyReels V4 Decode, on the tiny random-weight files, ComfyUI's runtime faked as in
tests/unit/test_nodes_v4.py."""

from __future__ import annotations

import importlib
import sys

import pytest
import test_nodes_v4 as v4t  # the V4 node tests' helpers and tiny files (same folder)
import torch
from test_nodes import PACK, FakeProgressBar, _fresh_logs, env  # noqa: F401 (fixtures)
from test_nodes_v4 import _one_thread  # noqa: F401 (fixture)

REFINER = "diffusion_models/skyreels_v4_refiner_tiny.safetensors"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    files = (*v4t.V4_TINY, REFINER)
    host_models = v4t.base.HOST_COMFY / "models"
    if all((host_models / rel).exists() for rel in files):
        return host_models
    maker = importlib.import_module("make_tiny_checkpoints")
    out = tmp_path_factory.mktemp("tiny_models_refine")
    maker.make_all(out, only=list(files))
    return out


@pytest.fixture(scope="module")
def ctx(env, tiny_dir):  # noqa: F811 (the imported fixture)
    for rel in (*v4t.V4_TINY, REFINER):
        target = env.models / rel
        if not target.exists():
            target.symlink_to(tiny_dir / rel)
    env.cache = {}
    env.v4 = sys.modules[PACK + ".nodes.v4"]
    env.refine = sys.modules[PACK + ".nodes.v4_refine"]
    env.bridge = sys.modules[PACK + ".nodes.comfy_bridge"]
    return env


def refiner(ctx, sparse="checkpoint"):
    return v4t.cached(ctx, f"refiner-{sparse}", "SkyReelsV4RefinerLoader", model_name="skyreels_v4_refiner_tiny.safetensors",
                      weight_dtype="default", attention="auto", sparse_attention=sparse)


def keyframes(ctx, count=2, width=64, height=64):
    return v4t.run(ctx, "SkyReelsV4Keyframes", width=width, height=height, count=count)[0]


def base_latent(ctx, count=2, seed=3):
    """The base sampler's output for a 9-frame 32x32 latent with `count` 64x64 keyframes."""
    key = f"base-{count}-{seed}"
    if key not in ctx.cache:
        kwargs = v4t.sample_kwargs(ctx, seed=seed, keyframes=keyframes(ctx, count) if count else None)
        ctx.cache[key] = v4t.sampler(ctx).execute(**kwargs)[0]
    return ctx.cache[key]


def refine(ctx, latent=None, node_id="21", **overrides):
    kwargs = dict(refiner=refiner(ctx), text_embeds=v4t.embeds(ctx), latent=latent or base_latent(ctx), width=64,
                  height=64, double_fps=True, seed=5, steps=2, cfg=3.0, shift=3.0, scheduler="euler", denoise=1.0)
    return v4t.base.with_hidden(ctx.nodes["SkyReelsV4Refine"], node_id).execute(**{**kwargs, **overrides})[0]


def test_sampler_generates_keyframes_into_the_latent(ctx):
    out = base_latent(ctx, count=2)
    assert out["samples"].shape == (1, 16, 3, 4, 4)
    assert out["keyframe_samples"].shape == (1, 16, 2, 8, 8) and out["keyframe_indices"] == [0, 2]
    assert out["keyframe_samples"].abs().sum() > 0
    plain = base_latent(ctx, count=0)
    assert "keyframe_samples" not in plain and "keyframe_indices" not in plain
    # the keyframes take part in the joint attention: the low-res video is not the one sampled without them
    assert not torch.allclose(out["samples"], plain["samples"])
    # a sampler fed a latent that already carries keyframes does not pass stale ones on
    again = v4t.sampler(ctx).execute(**v4t.sample_kwargs(ctx, latent=out))[0]
    assert "keyframe_samples" not in again


def test_keyframes_node_and_sampler_check_the_request(ctx):
    request = keyframes(ctx, count=3, width=1920, height=1088)
    assert (request.count, request.width, request.height) == (3, 1920, 1088)
    with pytest.raises(ValueError, match="multiple of 16"):
        keyframes(ctx, width=1000)
    with pytest.raises(ValueError, match="at least the video's size"):
        v4t.sampler(ctx).execute(**v4t.sample_kwargs(ctx, keyframes=keyframes(ctx, width=16, height=16)))
    with pytest.raises(ValueError, match="at most 3"):
        v4t.sampler(ctx).execute(**v4t.sample_kwargs(ctx, keyframes=keyframes(ctx, count=4)))


def test_refiner_loader_keeps_the_file_windows_or_runs_dense(ctx):
    sparse, dense = refiner(ctx).module, refiner(ctx, "dense").module
    assert sparse.config.attention_window == (2, 2, 2) and sparse.config.windowed
    assert not dense.config.windowed and dense.config.model_type.value == "video_only"
    with pytest.raises(ValueError, match="sparse_attention"):
        v4t.run(ctx, "SkyReelsV4RefinerLoader", model_name="skyreels_v4_refiner_tiny.safetensors",
                weight_dtype="default", attention="auto", sparse_attention="fast")


def test_refine_doubles_fps_keeps_keyframes_and_passes_the_audio_through(ctx):
    base = base_latent(ctx, count=2)
    FakeProgressBar.instances.clear()
    out = refine(ctx, base)
    assert out["samples"].shape == (1, 16, 5, 8, 8)  # 2 (3 - 1) + 1 latent frames = 17 frames at 32 fps
    assert out["fps"] == 32.0 and "keyframe_samples" not in out
    assert out["audio_samples"] is base["audio_samples"]  # the audio latent is untouched
    codec = importlib.import_module(PACK + ".skyreels_core.models.audio_codec")
    assert out["audio_num_samples"] == codec.num_samples_for(17 / 32)
    # keyframe k sits at refined latent frame 2 x its low-res index, exactly
    for k, index in enumerate(base["keyframe_indices"]):
        assert torch.allclose(out["samples"][:, :, 2 * index], base["keyframe_samples"][:, :, k], atol=1e-5)
    assert [u[:2] for u in FakeProgressBar.instances[-1].updates] == [(1, 2), (2, 2)]
    # the node runs the core recipe with the node's settings
    core = importlib.import_module(PACK + ".skyreels_core.pipelines.refine")
    bridge = ctx.bridge
    expected = core.refine_video(
        refiner(ctx).module, low_latent=bridge.latent_to_model(base["samples"]), context=v4t.embeds(ctx).positive,
        negative_context=v4t.embeds(ctx).negative, height=8, width=8, temporal_factor=2,
        keyframes=bridge.latent_to_model(base["keyframe_samples"]), keyframe_indices=(0, 2), steps=2, shift=3.0,
        cfg=3.0, seed=5, fps=16.0)
    assert torch.allclose(bridge.latent_to_model(out["samples"]), expected, atol=1e-5)


def test_refine_without_double_fps_and_decode_lengths_match(ctx):
    out = refine(ctx, base_latent(ctx, count=0), double_fps=False, width=48, height=32)
    assert out["samples"].shape == (1, 16, 3, 4, 6) and out["fps"] == 16.0
    images, audio, fps = v4t.run(ctx, "SkyReelsV4Decode", vae=v4t.vae(ctx), audio_codec=v4t.codec(ctx), latent=out,
                                 tile_size=0, tile_overlap=64)
    assert images.shape == (9, 32, 48, 3) and fps == 16.0
    assert audio["waveform"].shape[-1] == round(9 / 16 * v4t.RATE)
    doubled = refine(ctx, base_latent(ctx, count=0))
    images, audio, fps = v4t.run(ctx, "SkyReelsV4Decode", vae=v4t.vae(ctx), audio_codec=v4t.codec(ctx),
                                 latent=doubled, tile_size=0, tile_overlap=64)
    assert images.shape[0] == 17 and fps == 32.0
    assert audio["waveform"].shape[-1] == round(17 / 32 * v4t.RATE)  # the picture's duration exactly


def test_refine_keeps_the_unmasked_source_video(ctx):
    base = base_latent(ctx, count=0)
    source = v4t.frames_of(17, 64, 64, seed=8)
    mask = torch.zeros(64, 64)
    mask[:, 32:] = 1.0  # refine the right half, keep the left
    out = refine(ctx, base, vae=v4t.vae(ctx), keep_video=source, mask=mask)
    vae = v4t.vae(ctx).runner
    conditioning = importlib.import_module(PACK + ".skyreels_core.conditioning.images")
    with torch.no_grad():
        encoded = vae.encode(conditioning.pixels_to_video(conditioning.fit_crop(source, 64, 64))).float()
    refined = ctx.bridge.latent_to_model(out["samples"])
    assert torch.allclose(refined[..., :4], encoded[..., :4], atol=1e-4)  # latent columns 0..3 = pixels 0..31
    assert not torch.allclose(refined[..., 4:], encoded[..., 4:], atol=1e-2)


@pytest.mark.parametrize("overrides, message", [
    ({"width": 40}, "multiple of 16"),
    ({"width": 16}, "at least the input's 32"),
    ({"width": 96}, "same size here and in SkyReels V4 Keyframes"),
    ({"keep_video": torch.zeros(17, 64, 64, 3)}, "needs keep_video and vae"),
    ({"vae": "later", "keep_video": torch.zeros(9, 64, 64, 3)}, "one frame per output frame"),
    ({"scheduler": "ddim"}, "scheduler"),
])
def test_refine_errors_say_what_to_change(ctx, overrides, message):
    if overrides.get("vae") == "later":
        overrides["vae"] = v4t.vae(ctx)
    calls = []
    handle = refiner(ctx).module.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            refine(ctx, base_latent(ctx, count=2), **overrides)
    finally:
        handle.remove()
    assert not calls  # refused before the refiner ran


def test_refine_rejects_a_latent_that_is_not_v4(ctx):
    with pytest.raises(ValueError, match="SkyReels V4 Empty AV Latent"):
        refine(ctx, {"samples": torch.zeros(1, 16, 3, 4, 4)})


def test_refine_cancel_stops_within_one_step(ctx):
    class Interrupt(Exception):
        pass

    def cancel(self, value, total=None, preview=None):
        raise Interrupt

    calls = []
    handle = refiner(ctx).module.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.MonkeyPatch.context() as mp, pytest.raises(Interrupt):
            mp.setattr(FakeProgressBar, "update_absolute", cancel)
            refine(ctx, steps=5)
    finally:
        handle.remove()
    assert len(calls) == 2  # one step = cond + uncond pass, then Cancel
