"""SkyReels-V4 node tests: every V4 node's `execute` on tiny inputs, with ComfyUI's runtime modules faked.

Reuses the fake runtime of tests/unit/test_nodes.py (model management, ModelPatcher, ProgressBar, latent_preview,
folder_paths, server; the real V3 schema from the test host). Models are the real tiny random-weight checkpoints
(scripts/make_tiny_checkpoints.py): the V4 AV DiT, the Wan2.1 VAE, the MMAudio VAE and the BigVGAN vocoder. The
MLLM is a tiny random Qwen2.5-VL folder (transformers); most sampler tests get MLLM-shaped embeddings directly.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from unittest.mock import patch

import pytest
import test_nodes as base  # the V2 node tests' fake runtime (same folder)
import torch
from test_nodes import PACK, FakePatcher, FakeProgressBar, _fresh_logs, env  # noqa: F401 (fixtures)

V4_TINY = ("diffusion_models/skyreels_v4_av_tiny.safetensors", "vae/wan_2.1_vae_tiny.safetensors",
           "vae/mmaudio_vae_44k_tiny.safetensors", "vae/bigvgan_v2_44k_tiny.safetensors",
           "text_encoders/qwen2.5_vl_tiny")  # the last one is a Hugging Face folder (the MLLM)
RATE = 44100

# Widgets are stored by position in saved workflows: this order is a contract (test_nodes.WIDGETS, one snapshot of
# every registered node).
V4_WIDGETS = {node_id: widgets for node_id, widgets in base.WIDGETS.items() if node_id.startswith("SkyReelsV4")}


def _with_v4_types(make):
    """The stand-in V3 schema (used only without the test host) plus the AUDIO and MASK types V4 nodes use."""

    def fake():
        modules = make()
        io = modules["comfy_api.latest"].io
        for name, io_type in (("Audio", "AUDIO"), ("Mask", "MASK")):
            setattr(io, name, io.Custom(io_type))
        return modules

    return fake


base._fake_comfy_api = _with_v4_types(base._fake_comfy_api)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    host_models = base.HOST_COMFY / "models"
    if all((host_models / rel).exists() for rel in V4_TINY):
        return host_models
    spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", base.REPO / "scripts" /
                                                  "make_tiny_checkpoints.py")
    maker = importlib.util.module_from_spec(spec)
    with patch.dict(sys.modules, {"make_tiny_checkpoints": maker}):
        spec.loader.exec_module(maker)
        out = tmp_path_factory.mktemp("tiny_models_v4")
        maker.make_all(out, only=list(V4_TINY))
    return out


@pytest.fixture(scope="module")
def v4(env, tiny_dir):  # noqa: F811 (the imported fixture)
    for rel in V4_TINY:
        (env.models / rel).symlink_to(tiny_dir / rel)
    env.cache = {}
    env.v4 = sys.modules[PACK + ".nodes.v4"]
    return env


def run(ctx, node_id, **kwargs):
    return ctx.nodes[node_id].execute(**kwargs)


def cached(ctx, key, node_id, **kwargs):
    if key not in ctx.cache:
        ctx.cache[key] = run(ctx, node_id, **kwargs)[0]
    return ctx.cache[key]


def av_model(ctx):
    return cached(ctx, "model", "SkyReelsV4ModelLoader", model_name="skyreels_v4_av_tiny.safetensors",
                  weight_dtype="default", attention="auto")


def codec(ctx):
    return cached(ctx, "codec", "SkyReelsV4AudioCodecLoader", vae_name="mmaudio_vae_44k_tiny.safetensors",
                  vocoder_name="bigvgan_v2_44k_tiny.safetensors")


def vae(ctx):
    return cached(ctx, "vae", "SkyReelsVAELoader", vae_name="wan_2.1_vae_tiny.safetensors")


def latent(ctx, frames=9, fps=16.0, width=32, height=32, batch=1):
    return run(ctx, "SkyReelsV4EmptyAVLatent", width=width, height=height, frames=frames, fps=fps, batch=batch)[0]


def embeds(ctx, seed=0, length=6):
    text_dim = av_model(ctx).module.config.text_dim
    g = torch.Generator().manual_seed(seed)
    return ctx.v4.AVTextEmbeds(positive=torch.randn(1, length, text_dim, generator=g),
                               negative=torch.randn(1, length + 2, text_dim, generator=g))


def sampler(ctx, node_id="11"):
    return base.with_hidden(ctx.nodes["SkyReelsV4Sampler"], node_id)


def sample_kwargs(ctx, **overrides):
    kwargs = dict(model=av_model(ctx), text_embeds=embeds(ctx), latent=latent(ctx), seed=3, steps=2, video_cfg=4.0,
                  audio_cfg=2.0, sync_scale=1.0, shift=3.0, scheduler="euler")
    return {**kwargs, **overrides}


def tone(seconds=0.5, rate=22050, channels=2, freq=440.0):
    t = torch.arange(round(seconds * rate)) / rate
    wave = 0.3 * torch.sin(2 * math.pi * freq * t)
    return {"waveform": wave.expand(1, channels, -1).clone(), "sample_rate": rate}


def frames_of(n, height=32, width=32, seed=0):
    return torch.rand(n, height, width, 3, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- schema


def test_v4_nodes_registered_with_category_descriptions_and_tooltips(v4):
    ids = [k for k in v4.nodes if k.startswith("SkyReelsV4")]
    assert ids == list(V4_WIDGETS)  # registration order in the literal mappings
    for node_id in ids:
        schema = v4.nodes[node_id].define_schema()
        assert schema.node_id == node_id and schema.category == "SkyReels/V4" and schema.description
        assert schema.display_name.startswith("SkyReels V4 ")  # ComfyUI reads it from the schema
        for item in schema.inputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"
        assert base._widgets(schema) == V4_WIDGETS[node_id], f"{node_id}: never reorder widgets"


def test_prompt_tooltip_explains_the_structured_tags(v4):
    (prompt,) = [i for i in v4.nodes["SkyReelsV4TextEncode"].define_schema().inputs if i.id == "prompt"]
    for tag in ("<dialogue>", "<sfx>", "<bgm>", "<singing>", "<text>"):
        assert tag in prompt.tooltip


# ---------------------------------------------------------------------------------------------- latent


@pytest.mark.parametrize(("frames", "fps", "size"), [(81, 16.0, (832, 480)), (9, 16.0, (32, 32)), (121, 24.0, (64, 48))])
def test_empty_av_latent_audio_lasts_frames_over_fps(v4, frames, fps, size):
    out = latent(v4, frames=frames, fps=fps, width=size[0], height=size[1], batch=2)
    assert out["samples"].shape == (2, 16, (frames - 1) // 4 + 1, size[1] // 8, size[0] // 8)
    assert out["audio_samples"].shape == (2, 40, math.ceil(frames / fps * RATE / 1024))
    assert out["fps"] == fps and out["audio_num_samples"] == round(frames / fps * RATE)
    assert out["samples"].abs().sum() == 0 and out["audio_samples"].abs().sum() == 0


@pytest.mark.parametrize(("kwargs", "hint"), [({"frames": 10}, "Nearest valid value: 9"),
                                              ({"width": 44}, "Nearest valid value: 48"),
                                              ({"fps": 0.0}, "fps must be a positive number")])
def test_empty_av_latent_errors_name_the_fix(v4, kwargs, hint):
    with pytest.raises(ValueError, match=hint):
        latent(v4, **kwargs)


def test_non_v4_latent_is_rejected_with_the_node_to_use(v4):
    with pytest.raises(ValueError, match="SkyReels V4 Empty AV Latent"):
        sampler(v4).execute(**sample_kwargs(v4, latent={"samples": torch.zeros(1, 16, 3, 4, 4)}))


# ---------------------------------------------------------------------------------------------- audio


def test_audio_encode_decode_round_trips_length_alone(v4):
    audio = tone(0.5, rate=22050, channels=2)
    lat = run(v4, "SkyReelsV4AudioEncode", audio_codec=codec(v4), audio=audio)[0]
    assert lat["type"] == "audio" and lat["samples"].shape == (1, 40, math.ceil(0.5 * RATE / 1024))
    assert lat["audio_num_samples"] == round(0.5 * RATE)
    out = run(v4, "SkyReelsV4AudioDecode", audio_codec=codec(v4), latent=lat)[0]
    assert out["sample_rate"] == RATE and out["waveform"].shape == (1, 1, round(0.5 * RATE))
    assert torch.isfinite(out["waveform"]).all() and out["waveform"].abs().max() <= 1.0
    assert v4.loaded and all(p is codec(v4).patcher for p in v4.loaded)


def test_audio_nodes_reject_wrong_inputs(v4):
    with pytest.raises(ValueError, match="AUDIO"):
        run(v4, "SkyReelsV4AudioEncode", audio_codec=codec(v4), audio={"waveform": torch.zeros(2, 10)})
    with pytest.raises(ValueError, match="no SkyReels-V4 audio"):
        run(v4, "SkyReelsV4AudioDecode", audio_codec=codec(v4), latent={"samples": torch.zeros(1, 16, 2, 4, 4)})
    with pytest.raises(ValueError, match=r"\[B, 40, frames\]"):
        run(v4, "SkyReelsV4AudioDecode", audio_codec=codec(v4), latent={"samples": torch.zeros(1, 8, 5),
                                                                           "type": "audio"})


def test_codec_loader_names_wrong_file_kind(v4):
    with pytest.raises(ValueError) as info:
        run(v4, "SkyReelsV4AudioCodecLoader", vae_name="wan_2.1_vae_tiny.safetensors",
            vocoder_name="bigvgan_v2_44k_tiny.safetensors")
    assert "wan_2.1_vae_tiny.safetensors" in str(info.value)


# ---------------------------------------------------------------------------------------------- loaders


def test_model_loader_wraps_the_av_dit_in_a_model_patcher(v4):
    model = av_model(v4)
    assert isinstance(model.patcher, FakePatcher) and model.module.config.model_type.value == "audio_video"
    assert model.module.compute_dtype == torch.float32  # CPU
    assert v4.loaded == []  # loading reads the file; the sampler moves it to the GPU
    (dtype,) = [i for i in v4.nodes["SkyReelsV4ModelLoader"].define_schema().inputs if i.id == "weight_dtype"]
    options = dtype.options if hasattr(dtype, "options") else dtype.kw["options"]
    assert options == ["default", "bf16", "fp16", "fp32"]  # no fp8 path in the AV loader


def test_wan_vae_picked_as_av_model_names_the_problem(v4):
    wrong = v4.models / "diffusion_models" / "vae_as_av.safetensors"
    wrong.symlink_to(v4.models / "vae" / "wan_2.1_vae_tiny.safetensors")
    try:
        with pytest.raises(ValueError) as info:
            run(v4, "SkyReelsV4ModelLoader", model_name=wrong.name, weight_dtype="default", attention="auto")
    finally:
        wrong.unlink()
    assert "vae" in str(info.value).lower() and wrong.name in str(info.value)


def test_layers_widget_parsing(v4):
    assert v4.v4.parse_layers("-1") == (-1,) and v4.v4.parse_layers(" -1, -8 ") == (-1, -8)
    with pytest.raises(ValueError, match="comma-separated"):
        v4.v4.parse_layers("last")


def test_mllm_loader_lists_folders_and_text_encode_feeds_the_sampler(v4):
    (name,) = [i for i in v4.nodes["SkyReelsV4TextEncoderLoader"].define_schema().inputs if i.id == "mllm_name"]
    options = name.options if hasattr(name, "options") else name.kw["options"]
    assert options == ["qwen2.5_vl_tiny"]
    mllm = cached(v4, "mllm", "SkyReelsV4TextEncoderLoader", mllm_name="qwen2.5_vl_tiny", layers="-1")
    assert isinstance(mllm.patcher, FakePatcher) and mllm.runner.text_dim == av_model(v4).module.config.text_dim
    prompt = "A cat in the rain <dialogue>hello</dialogue> <sfx>rain</sfx>"
    out = run(v4, "SkyReelsV4TextEncode", mllm=mllm, prompt=prompt, negative="blurry", images=frames_of(1, 56, 56))[0]
    plain = run(v4, "SkyReelsV4TextEncode", mllm=mllm, prompt=prompt, negative="blurry")[0]
    assert out.positive.ndim == 3 and out.positive.shape[-1] == 32 and out.negative.shape[-1] == 32
    assert out.positive.shape[1] > plain.positive.shape[1]  # the reference image adds vision tokens
    assert v4.loaded[-1] is mllm.patcher
    latent_out = sampler(v4).execute(**sample_kwargs(v4, text_embeds=plain, steps=1))[0]
    assert torch.isfinite(latent_out["audio_samples"]).all()
    wide = run(v4, "SkyReelsV4TextEncoderLoader", mllm_name="qwen2.5_vl_tiny", layers="-1,-2")[0]
    wide_embeds = run(v4, "SkyReelsV4TextEncode", mllm=wide, prompt="a cat", negative="")[0]
    with pytest.raises(ValueError, match="hidden_size x number of layers = 32"):
        sampler(v4).execute(**sample_kwargs(v4, text_embeds=wide_embeds, steps=1))


# ---------------------------------------------------------------------------------------------- conditions


def condition(ctx, task, lat=None, **kwargs):
    args = dict(vae=vae(ctx), latent=lat or latent(ctx), task=task, extend_frames=0)
    return run(ctx, "SkyReelsV4TaskCondition", **{**args, **kwargs})[0]


def test_task_conditions_keep_the_right_latent_frames(v4):
    cases = {
        "t2v": ({}, [0, 0, 0]),
        "i2v": ({"start_image": frames_of(1)}, [1, 0, 0]),
        "start_end": ({"start_image": frames_of(1), "end_image": frames_of(1, seed=1)}, [1, 0, 1]),
        "extend": ({"video": frames_of(5)}, [1, 1, 0]),  # 5 frames = 2 latent frames
    }
    for task, (inputs, kept) in cases.items():
        cond = condition(v4, task, **inputs)
        assert cond.task == task
        mask = cond.condition.mask
        assert mask.shape == (1, 1, 3, 4, 4)
        assert mask[0, 0, :, 0, 0].tolist() == kept, task
        assert (cond.condition.latent[:, :, torch.tensor(kept) == 0] == 0).all(), task


def test_extend_frames_takes_the_last_frames_of_the_clip(v4):
    clip = frames_of(13)
    cond = condition(v4, "extend", video=clip, extend_frames=5)
    same = condition(v4, "extend", video=clip[-5:])
    assert torch.equal(cond.condition.latent, same.condition.latent)
    with pytest.raises(ValueError, match="at most 13"):
        condition(v4, "extend", video=clip, extend_frames=20)


def test_inpaint_mask_regenerates_only_masked_cells(v4):
    mask = torch.zeros(1, 32, 32)
    mask[:, :16, :16] = 1.0  # regenerate the top-left quarter
    cond = condition(v4, "inpaint_edit", video=frames_of(9), mask=mask)
    keep = cond.condition.mask[0, 0]
    assert keep[:, :2, :2].sum() == 0 and keep[:, 2:, :].min() == 1 and keep[:, :, 2:].min() == 1


@pytest.mark.parametrize(("task", "inputs", "message"), [
    ("i2v", {}, "task 'i2v' needs start_image"),
    ("extend", {}, "task 'extend' needs video"),
    ("inpaint_edit", {"video": "clip"}, "task 'inpaint_edit' needs mask"),
    ("start_end", {}, "start_image, end_image or both"),
    ("inpaint_edit", {"video": "clip", "mask": torch.zeros(1, 16, 16)}, r"expected \[9, 32, 32\]"),
    ("inpaint_edit", {"video": frames_of(5), "mask": torch.zeros(1, 32, 32)}, "set frames to 5"),
])
def test_task_condition_errors_say_what_to_connect(v4, task, inputs, message):
    inputs = {k: frames_of(9) if isinstance(v, str) else v for k, v in inputs.items()}
    with pytest.raises(ValueError, match=message):
        condition(v4, task, **inputs)


def test_references_encode_images_clip_and_audio(v4):
    refs = run(v4, "SkyReelsV4References", vae=vae(v4), latent=latent(v4, batch=2), images=frames_of(2, 40, 24),
               clip=frames_of(5), audio=tone(0.25, rate=16000, channels=1), audio_codec=codec(v4))[0]
    assert refs.video.shape == (2, 16, 2 + 2, 4, 4)  # 2 images + a 5-frame clip (2 latent frames)
    assert refs.audio.shape == (2, 40, math.ceil(0.25 * RATE / 1024))
    with pytest.raises(ValueError, match="needs audio_codec"):
        run(v4, "SkyReelsV4References", vae=vae(v4), latent=latent(v4), audio=tone())
    with pytest.raises(ValueError, match="nothing to encode"):
        run(v4, "SkyReelsV4References", vae=vae(v4), latent=latent(v4))


# ---------------------------------------------------------------------------------------------- sampling


def test_sampler_reports_every_step_and_matches_core(v4):
    kwargs = sample_kwargs(v4)
    out = sampler(v4).execute(**kwargs)[0]
    assert out["samples"].shape == (1, 16, 3, 4, 4) and out["audio_samples"].shape == kwargs["latent"][
        "audio_samples"].shape
    assert out["fps"] == 16.0 and out["audio_num_samples"] == kwargs["latent"]["audio_num_samples"]
    bar = FakeProgressBar.instances[-1]
    assert [u[:2] for u in bar.updates] == [(1, 2), (2, 2)] and all(u[2][0] == "JPEG" for u in bar.updates)
    assert [t[0] for t in v4.server.texts] == ["11", "11"] and v4.server.texts[-1][1].startswith("step 2/2 · ")
    t2av = importlib.import_module(PACK + ".skyreels_core.pipelines.t2av")
    shape, num_audio = t2av.av_latent_shape(9, 16.0, 32, 32)
    video, audio = t2av.sample_av(kwargs["model"].module, video_shape=shape, num_audio_latents=num_audio,
                                  context=kwargs["text_embeds"].positive, negative_context=kwargs["text_embeds"].negative,
                                  steps=2, shift=3.0, video_cfg=4.0, audio_cfg=2.0, seed=3, fps=16.0)
    bridge = v4.pack.nodes.comfy_bridge
    assert torch.allclose(out["samples"], bridge.latent_from_model(video), atol=1e-5)
    assert torch.allclose(out["audio_samples"], audio, atol=1e-5)
    assert out["samples"].abs().sum() > 0 and out["audio_samples"].abs().sum() > 0


def test_sampler_keeps_the_i2v_frame_and_uses_references(v4):
    lat = latent(v4)
    cond = condition(v4, "i2v", lat=lat, start_image=frames_of(1))
    refs = run(v4, "SkyReelsV4References", vae=vae(v4), latent=lat, images=frames_of(1, seed=4),
               audio=tone(0.2), audio_codec=codec(v4))[0]
    out = sampler(v4).execute(**sample_kwargs(v4, latent=lat, condition=cond))[0]
    kept = v4.pack.nodes.comfy_bridge.latent_to_model(out["samples"])[:, :, 0]
    assert torch.allclose(kept, cond.condition.latent[:, :, 0], atol=1e-4)
    with_refs = sampler(v4).execute(**sample_kwargs(v4, latent=lat, condition=cond, references=refs))[0]
    assert not torch.allclose(with_refs["audio_samples"], out["audio_samples"])
    other = latent(v4, width=48)
    with pytest.raises(ValueError, match="connect the same latent"):
        sampler(v4).execute(**sample_kwargs(v4, latent=other, references=refs))
    with pytest.raises(ValueError, match="build the condition for the same frames and size"):
        sampler(v4).execute(**sample_kwargs(v4, latent=other, condition=cond))


def test_sampler_rejects_text_of_the_wrong_width(v4):
    bad = v4.v4.AVTextEmbeds(positive=torch.zeros(1, 4, 7), negative=None)
    with pytest.raises(ValueError, match="expects text_dim"):
        sampler(v4).execute(**sample_kwargs(v4, text_embeds=bad))


def test_sampler_cancel_stops_within_one_step(v4):
    class Interrupt(Exception):
        pass

    def cancel(self, value, total=None, preview=None):
        raise Interrupt

    calls = []
    module = av_model(v4).module
    handle = module.register_forward_hook(lambda *a: calls.append(1))
    try:
        with patch.object(FakeProgressBar, "update_absolute", cancel), pytest.raises(Interrupt):
            sampler(v4).execute(**sample_kwargs(v4, steps=5))
    finally:
        handle.remove()
    assert len(calls) == 2  # one step = cond + uncond pass, then Cancel


# ---------------------------------------------------------------------------------------------- decode


def test_decode_gives_frames_audio_and_fps_of_the_same_duration(v4):
    lat = latent(v4, frames=9, fps=16.0, batch=2)
    lat["samples"] = torch.randn_like(lat["samples"]) * 0.1
    images, audio, fps = run(v4, "SkyReelsV4Decode", vae=vae(v4), audio_codec=codec(v4), latent=lat, tile_size=0,
                             tile_overlap=64)
    assert images.shape == (2 * 9, 32, 32, 3) and 0 <= images.min() and images.max() <= 1
    assert fps == 16.0 and audio["sample_rate"] == RATE
    assert audio["waveform"].shape == (1, 1, 2 * round(9 / 16 * RATE))  # batch after batch, like the frames
    with pytest.raises(ValueError, match="no 'audio_samples'"):
        run(v4, "SkyReelsV4Decode", vae=vae(v4), audio_codec=codec(v4), latent={"samples": lat["samples"]},
            tile_size=0, tile_overlap=64)
