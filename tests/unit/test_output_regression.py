"""Same seed, same settings, same outputs: every sampling path of the pack pinned to recorded latents.

Each case runs the real nodes (fake ComfyUI runtime of test_nodes.py, real tiny checkpoints in the real key
layouts) exactly as a workflow does: V2 T2V (UniPC; Euler with denoise < 1), V2 I2V with CLIP tokens, diffusion
forcing (synchronous, asynchronous, start + end image with colour match, extension of a clip, chaining through
`tail`) and SkyReels-V4 (T2AV with per-modality CFG and sync guidance; I2V with image and voice references).
The outputs were recorded by `SKYREELS_RECORD_REGRESSION=1 pytest tests/unit/test_output_regression.py` on the
main branch BEFORE the sampling-core refactor; a refactor must reproduce them bit for bit.

Bit-exactness needs the same arithmetic: the file also records a probe (a few matmul / conv / attention / norm
results on fixed inputs). Where this machine's kernels reproduce the probe bit for bit, outputs must be equal;
where they do not (another CPU instruction set, another torch build), they must agree to float32 round-off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

# Modules imported lazily inside the node fixtures' sys.modules snapshot are dropped afterwards and cannot be imported
# twice (they register torch libraries): import them once now (see test_nodes_df.py).
with contextlib.suppress(ImportError):
    import torch._dynamo  # noqa: F401  (torch.manual_seed imports it on first use)
    import torch.distributed.tensor  # noqa: F401
    import torch.testing._comparison  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_nodes as shared  # noqa: E402  (fake runtime and fixtures of the node tests)
import test_nodes_v4 as v4_shared  # noqa: E402,F401  (adds AUDIO / MASK to the stand-in schema)

PACK, REPO, HOST_COMFY = shared.PACK, shared.REPO, shared.HOST_COMFY
env, _fresh_logs = shared.env, shared._fresh_logs  # fixtures

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECORD = os.environ.get("SKYREELS_RECORD_REGRESSION") == "1"
CAPABILITY = torch.backends.cpu.get_cpu_capability()  # "AVX2", "AVX512", ...: which float32 kernels run
# One recording per CPU capability: output_regression.safetensors was recorded on AVX2 (before the sampling-core
# refactor), output_regression_avx512.safetensors on AVX512 from the same code (commit 81d6f07, where the AVX2 file
# still matched bit for bit on an AVX2 CPU). The probe alone does not tell them apart: its small kernels agree while
# the models' larger matmuls and convolutions take other oneDNN paths (max diff 2e-5 over a whole sampling run).
FIXTURE = FIXTURES / ("output_regression.safetensors" if CAPABILITY == "AVX2"
                      else f"output_regression_{CAPABILITY.lower()}.safetensors")
if not RECORD and not FIXTURE.is_file():
    FIXTURE = FIXTURES / "output_regression.safetensors"  # compared to float32 round-off below
FILES = ("diffusion_models/skyreels_v2_t2v_tiny.safetensors", "diffusion_models/skyreels_v2_i2v_tiny.safetensors",
         "diffusion_models/skyreels_v2_df_tiny.safetensors", "diffusion_models/skyreels_v4_av_tiny.safetensors",
         "vae/wan_2.1_vae_tiny.safetensors", "vae/mmaudio_vae_44k_tiny.safetensors",
         "vae/bigvgan_v2_44k_tiny.safetensors", "text_encoders/umt5_xxl_tiny.safetensors",
         "clip_vision/clip_vision_h_tiny.safetensors")
DF_BASE = dict(width=32, height=32, num_frames=17, seed=3, steps=2, cfg=5.0, shift=5.0, scheduler="unipc",
               base_num_frames=9, overlap_history=5, ar_step=0, causal_block_size=1, addnoise_condition=20, fps=24,
               color_match=0.0)


# ------------------------------------------------------------------------------------------------ fixtures


def _probe() -> dict[str, torch.Tensor]:
    """Results of the kernels the models use, on fixed inputs: equal bits here = equal arithmetic."""
    g = torch.Generator().manual_seed(1234)
    a, b = torch.randn(37, 129, generator=g), torch.randn(129, 65, generator=g)
    video = torch.randn(1, 5, 3, 9, 9, generator=g)
    q, k, v = (torch.randn(1, 2, 23, 12, generator=g) for _ in range(3))
    conv = torch.randn(4, 5, 3, 3, 3, generator=g)
    return {
        "probe.matmul": a @ b,
        "probe.conv3d": F.conv3d(video, conv, padding=1),
        "probe.sdpa": F.scaled_dot_product_attention(q, k, v),
        "probe.norm": F.layer_norm(a, (129,)) * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + 1e-6),
        "probe.trig": torch.polar(torch.ones(64), torch.linspace(0, 300, 64)).real,
    }


@pytest.fixture(scope="module")
def models(env):  # noqa: F811 (the imported fixture)
    host = HOST_COMFY / "models"
    source = host if all((host / rel).is_file() for rel in FILES) else None
    if source is None:
        spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" /
                                                      "make_tiny_checkpoints.py")
        maker = importlib.util.module_from_spec(spec)
        with patch.dict(sys.modules, {"make_tiny_checkpoints": maker}):
            spec.loader.exec_module(maker)
            source = env.models.parent / "regression_tiny"
            maker.make_all(source, only=list(FILES))
    for rel in FILES:
        (env.models / rel).parent.mkdir(parents=True, exist_ok=True)
        (env.models / rel).symlink_to(source / rel)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    env.cache = {}
    yield env
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def recorded():
    """The recorded outputs (filled and written at the end of the module when recording)."""
    if RECORD:
        store = dict(_probe())
        yield store
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in store.items()}, str(FIXTURE), metadata={"cpu_capability": CAPABILITY})
        return
    assert FIXTURE.is_file(), f"{FIXTURE} is missing: record it on main with SKYREELS_RECORD_REGRESSION=1"
    with safe_open(str(FIXTURE), "pt") as f:  # the first recording has no metadata: it was made on AVX2
        capability = (f.metadata() or {}).get("cpu_capability", "AVX2")
    yield {**load_file(str(FIXTURE)), "capability": capability}


def _check(recorded: dict, name: str, value: torch.Tensor) -> None:
    value = value.detach().float().cpu().contiguous()
    if RECORD:
        recorded[name] = value
        return
    expected = recorded[name]
    same_kernels = recorded["capability"] == CAPABILITY and all(torch.equal(v, recorded[k]) for k, v in _probe().items())
    if same_kernels:
        assert torch.equal(value, expected), f"{name}: not bit-identical (max diff {(value - expected).abs().max()})"
    else:
        torch.testing.assert_close(value, expected, rtol=1e-4, atol=1e-5, msg=f"{name} (other kernels)")


# -------------------------------------------------------------------------------------------- helpers


def _node(env, node_id, unique_id="9"):
    return shared.with_hidden(env.nodes[node_id], unique_id)


def _load(env, key, node_id, **kwargs):
    if key not in env.cache:
        env.cache[key] = env.nodes[node_id].execute(**kwargs)[0]
    return env.cache[key]


def _dit(env, name):
    return _load(env, name, "SkyReelsModelLoader", model_name=f"skyreels_v2_{name}_tiny.safetensors",
                 weight_dtype="default", attention="auto")


def _vae(env):
    return _load(env, "vae", "SkyReelsVAELoader", vae_name="wan_2.1_vae_tiny.safetensors")


def _embeds(env):
    encoder = _load(env, "umt5", "SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                    tokenizer="auto")
    return _load(env, "embeds", "SkyReelsTextEncode", text_encoder=encoder, positive="a red fox runs",
                 negative="blurry")


def _image(seed, height=40, width=48, n=1):
    return torch.rand(n, height, width, 3, generator=torch.Generator().manual_seed(seed))


def _v2_inputs(env, **change):
    latent = env.nodes["SkyReelsEmptyVideoLatent"].execute(width=32, height=32, frames=5, batch=1)[0]
    inputs = dict(model=_dit(env, "t2v"), text_embeds=_embeds(env), latent=latent, seed=1, steps=3, cfg=5.0,
                  shift=8.0, scheduler="unipc", denoise=1.0)
    return {**inputs, **change}


def _df(env, **change):
    inputs = dict(model=_dit(env, "df"), text_embeds=_embeds(env), vae=_vae(env), **DF_BASE)
    return _node(env, "SkyReelsDFSampler").execute(**{**inputs, **change})


# ------------------------------------------------------------------------------------------------- V2


def test_v2_text_to_video(models, recorded):
    out = _node(models, "SkyReelsSampler").execute(**_v2_inputs(models))[0]
    _check(recorded, "v2.t2v.unipc", out["samples"])
    start = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(8))
    out = _node(models, "SkyReelsSampler").execute(**_v2_inputs(
        models, scheduler="euler", denoise=0.6, steps=3, cfg=1.0, latent={"samples": start}))[0]
    _check(recorded, "v2.t2v.euler_denoise", out["samples"])


def test_v2_image_to_video(models, recorded):
    vae, image = _vae(models), _image(2)
    clip = _load(models, "clip", "SkyReelsCLIPVisionLoader", clip_name="clip_vision_h_tiny.safetensors")
    tokens = models.nodes["SkyReelsCLIPVisionEncode"].execute(clip_vision=clip, image=image)[0]
    cond, latent = models.nodes["SkyReelsImageToVideo"].execute(vae=vae, start_image=image, width=32, height=32,
                                                                frames=9, end_image=_image(3),
                                                                image_embeds=tokens)
    _check(recorded, "v2.i2v.y", cond.y)
    out = _node(models, "SkyReelsSampler").execute(**_v2_inputs(
        models, model=_dit(models, "i2v"), latent=latent, image_cond=cond, steps=2, shift=5.0))[0]
    _check(recorded, "v2.i2v.unipc", out["samples"])


# ------------------------------------------------------------------------------------------------- DF


def test_diffusion_forcing_sync_async_and_chaining(models, recorded):
    latent, tail = _df(models)
    _check(recorded, "df.sync", latent["samples"])
    latent, _ = _df(models, scheduler="euler", ar_step=1, steps=3, num_frames=13)
    _check(recorded, "df.async", latent["samples"])
    _, _ = _df(models, num_frames=13)  # nothing recorded: the chained run below continues its tail
    chained, _ = _df(models, seed=4, num_frames=13, extend_latent=tail)
    _check(recorded, "df.chained", chained["samples"])


def test_diffusion_forcing_images_and_extension(models, recorded):
    latent, _ = _df(models, num_frames=13, start_image=_image(5), end_image=_image(6, 32, 32), color_match=0.5,
                    addnoise_condition=0)
    _check(recorded, "df.start_end", latent["samples"])
    latent, _ = _df(models, num_frames=17, extend_video=_image(7, 32, 32, n=11), fps=16)
    _check(recorded, "df.extend", latent["samples"])


# ------------------------------------------------------------------------------------------------- V4


def _v4_common(env):
    model = _load(env, "av", "SkyReelsV4ModelLoader", model_name="skyreels_v4_av_tiny.safetensors",
                  weight_dtype="default", attention="auto")
    codec = _load(env, "codec", "SkyReelsV4AudioCodecLoader", vae_name="mmaudio_vae_44k_tiny.safetensors",
                  vocoder_name="bigvgan_v2_44k_tiny.safetensors")
    latent = env.nodes["SkyReelsV4EmptyAVLatent"].execute(width=32, height=32, frames=9, fps=16.0, batch=1)[0]
    g = torch.Generator().manual_seed(11)
    text_dim = model.module.config.text_dim
    embeds = sys.modules[PACK + ".nodes.types"].AVTextEmbeds(
        positive=torch.randn(1, 6, text_dim, generator=g), negative=torch.randn(1, 8, text_dim, generator=g))
    return model, codec, latent, embeds


def test_v4_text_to_video_and_audio(models, recorded):
    model, _, latent, embeds = _v4_common(models)
    out = _node(models, "SkyReelsV4Sampler").execute(
        model=model, text_embeds=embeds, latent=latent, seed=3, steps=3, video_cfg=4.0, audio_cfg=2.0,
        sync_scale=1.5, shift=3.0, scheduler="euler")[0]
    _check(recorded, "v4.t2av.video", out["samples"])
    _check(recorded, "v4.t2av.audio", out["audio_samples"])


def test_v4_image_to_video_with_references(models, recorded):
    model, codec, latent, embeds = _v4_common(models)
    cond = models.nodes["SkyReelsV4TaskCondition"].execute(vae=_vae(models), latent=latent, task="i2v",
                                                           extend_frames=0, start_image=_image(9))[0]
    t = torch.arange(8820) / 22050
    voice = {"waveform": (0.3 * torch.sin(2 * torch.pi * 330.0 * t)).expand(1, 2, -1).clone(), "sample_rate": 22050}
    refs = models.nodes["SkyReelsV4References"].execute(vae=_vae(models), latent=latent, images=_image(10),
                                                        audio=voice, audio_codec=codec)[0]
    out = _node(models, "SkyReelsV4Sampler").execute(
        model=model, text_embeds=embeds, latent=latent, seed=5, steps=3, video_cfg=3.0, audio_cfg=1.0,
        sync_scale=1.0, shift=5.0, scheduler="unipc", condition=cond, references=refs)[0]
    _check(recorded, "v4.i2v_refs.video", out["samples"])
    _check(recorded, "v4.i2v_refs.audio", out["audio_samples"])
