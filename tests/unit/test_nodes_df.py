"""SkyReels DF Sampler node: schema contract, validation before any model call, and real tiny-checkpoint runs
(long text-to-video, image-to-video, video extension, end image, chaining, progress / preview / status, cancel).

The ComfyUI runtime is faked exactly as in test_nodes.py (its fixtures are reused, not copied).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
import torch.testing._comparison  # noqa: F401

# torch.testing.assert_close imports torch.distributed.tensor lazily, and that module cannot be imported twice; the
# node-test fixtures restore sys.modules after each test module, so import it now, before any snapshot is taken.
with contextlib.suppress(ImportError):
    import torch.distributed.tensor  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_nodes as shared  # noqa: E402  (the fixtures and fakes of the node tests)

PACK, REPO, FakeProgressBar, RecordingVAE = shared.PACK, shared.REPO, shared.FakeProgressBar, shared.RecordingVAE
_cached, _load, _widgets = shared._cached, shared._load, shared._widgets
env, tiny, tiny_dir, _fresh_logs = shared.env, shared.tiny, shared.tiny_dir, shared._fresh_logs  # fixtures

DF_MODEL = "diffusion_models/skyreels_v2_df_tiny.safetensors"
DF_WIDGETS = shared.WIDGETS["SkyReelsDFSampler"]  # the saved widget order (one snapshot of every node)
# 32x32 px -> 4x4 latents; base 9 frames = 3 latents, overlap 5 frames = 2 latents: every window adds 1 latent
SMALL = dict(width=32, height=32, num_frames=17, seed=3, steps=2, cfg=5.0, shift=5.0, scheduler="unipc",
             base_num_frames=9, overlap_history=5, ar_step=0, causal_block_size=1, addnoise_condition=20, fps=24,
             color_match=0.0)


def _df_class(env, node_id="11"):
    cls = env.nodes["SkyReelsDFSampler"]
    return type(cls.__name__, (cls,), {"hidden": types.SimpleNamespace(unique_id=node_id)})


def _df_module(env):
    return sys.modules[PACK + ".nodes.diffusion_forcing"]


# ------------------------------------------------------------------------------------------------ schema


def test_schema_contract(env):
    cls = env.nodes["SkyReelsDFSampler"]
    schema = cls.define_schema()
    assert schema.node_id == "SkyReelsDFSampler" and schema.category == "SkyReels/Diffusion Forcing"
    assert "windows" in schema.description and schema.display_name  # ComfyUI reads it from the schema
    assert _widgets(schema) == DF_WIDGETS  # widget order is a public contract: append new inputs only
    names = [i.id for i in schema.inputs]
    assert names[:3] == ["model", "text_embeds", "vae"]
    assert names[-4:] == ["start_image", "extend_video", "end_image", "extend_latent"]
    assert all(i.optional for i in schema.inputs[-4:]) and not any(i.optional for i in schema.inputs[:-4])
    for item in schema.inputs:
        assert item.tooltip and len(item.tooltip) > 20, item.id
    assert [o.display_name for o in schema.outputs] == ["latent", "tail"]
    defaults = {i.id: getattr(i, "default", None) for i in schema.inputs}
    assert (defaults["base_num_frames"], defaults["overlap_history"], defaults["addnoise_condition"],
            defaults["fps"], defaults["ar_step"]) == (97, 17, 20, 24, 0)


# -------------------------------------------------------------------------------------------- validation


class ForbiddenModel(torch.nn.Module):
    """A DF model/VAE stand-in that fails the test when called: validation must come first."""

    def __init__(self):
        super().__init__()
        self.config = types.SimpleNamespace(in_dim=16, inject_sample_info=False)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *a, **k):
        pytest.fail("the model was called although the inputs are invalid")

    def encode(self, *a, **k):
        pytest.fail("the VAE was called although the inputs are invalid")


def _embeds(env):
    types_mod = sys.modules[PACK + ".nodes.types"]
    return types_mod.TextEmbeds(positive=torch.zeros(1, 4, 8), negative=torch.zeros(1, 4, 8))


@pytest.mark.parametrize(("change", "match"), [
    (dict(overlap_history=9), r"overlap_history \(9\) must be smaller than base_num_frames \(9\).*Lower overlap"),
    (dict(causal_block_size=2, ar_step=1), r"causal_block_size=2 must divide every window.*num_frames in"),
    (dict(extend_video=torch.zeros(9, 24, 32, 3)), r"extend_video frames are 32x24 but the video is 32x32"),
    (dict(start_image=torch.zeros(1, 8, 8, 3), extend_latent={"samples": torch.zeros(1, 16, 2, 4, 4)}),
     "connect only one of"),
    (dict(extend_latent={"samples": torch.zeros(1, 16, 2, 6, 4)}), r"extend_latent must be one Wan2.1 video latent"),
    (dict(extend_latent={"samples": torch.zeros(1, 16, 5, 4, 4)}), "leaves nothing to generate"),
    (dict(width=44), "Nearest valid value: 48"),
])  # fmt: skip
def test_bad_inputs_fail_before_any_vae_or_model_call(env, change, match):
    model = env.pack.nodes.comfy_bridge.manage(ForbiddenModel(), "dit", "df.safetensors")
    vae = env.pack.nodes.comfy_bridge.manage(ForbiddenModel(), "vae", "vae.safetensors")
    with pytest.raises(ValueError, match=match):
        _df_class(env).execute(model=model, text_embeds=_embeds(env), vae=vae, **dict(SMALL, **change))
    assert env.loaded == [] and FakeProgressBar.instances == []  # nothing loaded, no progress bar


def test_image_to_video_model_is_refused(env):
    i2v = ForbiddenModel()
    i2v.config.in_dim = 36
    model = env.pack.nodes.comfy_bridge.manage(i2v, "dit", "i2v.safetensors")
    with pytest.raises(ValueError, match="needs a SkyReels-V2 DF"):
        _df_class(env).execute(model=model, text_embeds=_embeds(env), vae=model, **SMALL)


def test_decode_honours_num_frames(env):
    vae = env.pack.nodes.comfy_bridge.manage(RecordingVAE(), "vae", "vae.safetensors")
    latent = {"samples": torch.randn(1, 16, 3, 2, 2), "num_frames": 7}
    frames = env.nodes["SkyReelsVAEDecode"].execute(vae=vae, latent=latent, tile_size=0, tile_overlap=64)[0]
    assert frames.shape[0] == 7  # 3 latents decode to 9 frames; the sampler asked for 7
    frames = env.nodes["SkyReelsVAEDecode"].execute(vae=vae, latent={"samples": latent["samples"]}, tile_size=0,
                                                    tile_overlap=64)[0]
    assert frames.shape[0] == 9


# ------------------------------------------------------------------------------- real tiny checkpoints


@pytest.fixture(scope="module")
def df(tiny, tiny_dir):
    """`tiny` plus the DF checkpoint (with the fps branch) and the shared loaded models."""
    src = tiny_dir / DF_MODEL
    if not src.is_file():
        spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" / "make_tiny_checkpoints.py")
        maker = importlib.util.module_from_spec(spec)
        with patch.dict(sys.modules, {"make_tiny_checkpoints": maker}):
            spec.loader.exec_module(maker)
            maker.make_all(tiny_dir, only=[DF_MODEL])
    (tiny.models / DF_MODEL).symlink_to(src)
    torch.set_num_threads(1)  # the tiny models run ~10x faster single-threaded on the shared CI cores
    return tiny


def _inputs(env, **change):
    model = _cached(env, "df", "SkyReelsModelLoader", model_name="skyreels_v2_df_tiny.safetensors",
                    weight_dtype="default", attention="auto")
    encoder = _cached(env, "umt5", "SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                      tokenizer="auto")
    embeds = _cached(env, "embeds", "SkyReelsTextEncode", text_encoder=encoder, positive="a red fox",
                     negative="blurry")
    vae = _cached(env, "vae", "SkyReelsVAELoader", vae_name="wan_2.1_vae_tiny.safetensors")
    return dict(dict(model=model, text_embeds=embeds, vae=vae, **SMALL), **change)


def _count_calls(module):
    calls = []
    return calls, module.register_forward_hook(lambda m, a, k, out: calls.append(a[0].shape), with_kwargs=True)


def test_long_text_to_video_matches_core_and_reports_every_window(df):
    inputs = _inputs(df, num_frames=11)  # 11 frames: 4 latents (13 frames) decoded, trimmed to 11
    module = inputs["model"].module
    assert module.config.inject_sample_info  # the DF tiny model has the fps branch
    calls, hook = _count_calls(module)
    latent, tail = _df_class(df).execute(**inputs)
    hook.remove()
    core = importlib.import_module(PACK + ".skyreels_core.pipelines.diffusion_forcing")
    node = _df_module(df)
    settings = core.DFSettings(steps=2, shift=5.0, guidance_scale=5.0, base_num_frames=9, overlap_history=5,
                               addnoise_condition=20.0, fps=24)
    assert node.make_settings(**{k: SMALL[k] for k in ("steps", "cfg", "shift", "scheduler", "base_num_frames",
                                                       "overlap_history", "ar_step", "causal_block_size",
                                                       "addnoise_condition", "fps", "color_match")}) == settings
    plan = core.plan_df(11, settings)
    assert [w.length for w in plan.windows] == [3, 3]
    assert latent["samples"].shape == (1, 16, 4, 4, 4) and latent["num_frames"] == 11
    assert tail["samples"].shape == (1, 16, 2, 4, 4) and tail["num_frames"] == 5
    assert torch.equal(tail["samples"], latent["samples"][:, :, -2:])
    # cond + uncond: two passes of batch 1 per step (skyreels_core/pipelines/denoisers.py says why)
    assert len(calls) == 2 * plan.total_steps == 8 and all(c[0] == 1 for c in calls)
    # progress: one bar over all windows, a preview every step, "window k/n" status
    bar = FakeProgressBar.instances[-1]
    assert bar.total == 4 and [u[:2] for u in bar.updates] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(u[2] is not None and u[2][0] == "JPEG" and u[2][1] == (1, 16, 3, 4, 4) for u in bar.updates)
    texts = [t for n, t in df.server.texts if n == "11"]
    assert [t.split(" · ")[0] for t in texts] == ["window 1/2"] * 2 + ["window 2/2"] * 2
    assert texts[-1].split(" · ")[1] == "step 4/4" and "ETA 0:00" in texts[-1]
    # a thin adapter: the same latents as the core pipeline with the same model, prompt and seed
    bridge = df.pack.nodes.comfy_bridge
    ref = core.generate_df_video(module, inputs["text_embeds"].positive, 11, (4, 4), settings,
                                 negative_context=inputs["text_embeds"].negative, seed=3)
    torch.testing.assert_close(latent["samples"], bridge.latent_from_model(ref.latents), atol=1e-5, rtol=1e-5)
    frames = _load(df, "SkyReelsVAEDecode", vae=inputs["vae"], latent=latent, tile_size=0, tile_overlap=64)
    assert frames.shape == (11, 32, 32, 3)


def test_cancel_in_the_second_window_stops_within_one_step(df):
    class Interrupt(Exception):
        pass

    def cancel(self, value, total=None, preview=None):
        if value == 3:  # the first step of window 2
            raise Interrupt

    inputs = _inputs(df, num_frames=11)
    calls, hook = _count_calls(inputs["model"].module)
    with patch.object(FakeProgressBar, "update_absolute", cancel), pytest.raises(Interrupt):
        _df_class(df).execute(**inputs)
    hook.remove()
    assert len(calls) == 3 * 2  # 3 steps x (cond + uncond), then Cancel


def test_image_to_video_starts_on_the_image_and_ends_on_the_end_image(df):
    image = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(5))
    end = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(6))
    inputs = _inputs(df, num_frames=9, start_image=image, end_image=end)
    calls, hook = _count_calls(inputs["model"].module)
    latent, _ = _df_class(df).execute(**inputs)
    hook.remove()
    bridge, node = df.pack.nodes.comfy_bridge, _df_module(df)
    latent_mod = sys.modules[PACK + ".nodes.latent"]
    first = node.vae_encoder(inputs["vae"])(latent_mod.image_to_pixels(image, 32, 32).unsqueeze(2))
    assert torch.equal(latent["samples"][:, :, :1], bridge.latent_from_model(first))  # frame 0 is the image
    assert latent["samples"].shape[2] == 3 and latent["num_frames"] == 9
    assert calls[-1][2] == 4  # the last window also sees the end-image latent (dropped from the output)


def test_extend_video_keeps_the_clip_and_continues_it(df):
    clip = torch.rand(11, 32, 32, 3, generator=torch.Generator().manual_seed(7))  # 11 frames: the last 9 are used
    inputs = _inputs(df, num_frames=17, extend_video=clip)
    latent, tail = _df_class(df).execute(**inputs)
    bridge, node = df.pack.nodes.comfy_bridge, _df_module(df)
    encoded = node.vae_encoder(inputs["vae"])(clip[2:].permute(3, 0, 1, 2)[None] * 2 - 1)
    assert encoded.shape[2] == 3 and latent["samples"].shape == (1, 16, 5, 4, 4)
    torch.testing.assert_close(latent["samples"][:, :, :3], bridge.latent_from_model(encoded))
    frames = _load(df, "SkyReelsVAEDecode", vae=inputs["vae"], latent=latent, tile_size=0, tile_overlap=64)
    assert frames.shape == (17, 32, 32, 3)


def test_chaining_two_df_samplers_through_tail_and_latent(df):
    latent1, tail1 = _df_class(df).execute(**_inputs(df, num_frames=13))
    latent2, _ = _df_class(df, "12").execute(**_inputs(df, num_frames=13, seed=4, extend_latent=tail1))
    # continues from the tail (exact up to the float round trip raw <-> normalised latent space)
    torch.testing.assert_close(latent2["samples"][:, :, :2], tail1["samples"], atol=1e-5, rtol=1e-6)
    assert latent2["samples"].shape[2] == 4 and latent2["num_frames"] == 13
    whole, _ = _df_class(df, "13").execute(**_inputs(df, num_frames=21, seed=4, extend_latent=latent1))
    torch.testing.assert_close(whole["samples"][:, :, :4], latent1["samples"], atol=1e-5, rtol=1e-6)  # whole video
    assert whole["samples"].shape[2] == 6
    frames = _load(df, "SkyReelsVAEDecode", vae=_inputs(df)["vae"], latent=whole, tile_size=0, tile_overlap=64)
    assert frames.shape[0] == 21
