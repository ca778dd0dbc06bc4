"""Spec tests for the SkyReels-V3 A2V speech adapter of the Wan DiT (tiny configs, CPU, float32)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from skyreels_core.checkpoints.detect import detect_kind
from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models.wan_audio import audio_windows_per_latent_frame
from skyreels_core.models.wan_dit import (
    A2V_19B,
    I2V_14B,
    TINY,
    WanDiTConfig,
    WanModel,
    param_count,
    shape_fields,
)
from skyreels_core.models.wan_dit_loader import load_dit

REPO = Path(__file__).resolve().parents[2]
TINY_A2V = dataclasses.replace(TINY, model_type="i2v", in_dim=36, image_dim=32, audio_adapter=True, audio_hidden_dim=16)
F, H, W = 3, 4, 6  # latent frames -> 4 * (3 - 1) + 1 = 9 video frames of speech windows
VIDEO_FRAMES = 4 * (F - 1) + 1


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(config: WanDiTConfig = TINY_A2V, seed: int = 0) -> WanModel:
    torch.manual_seed(seed)
    return WanModel(config).eval()


def inputs(config: WanDiTConfig = TINY_A2V, batch: int = 1, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(batch, 16, F, H, W, generator=g),
        t=torch.full((batch,), 741.0),
        context=torch.randn(batch, 7, config.text_dim, generator=g),
        clip_fea=torch.randn(batch, 5, config.image_dim, generator=g),
        y=torch.randn(batch, 20, F, H, W, generator=g),
        audio=torch.randn(batch, VIDEO_FRAMES, 5, 12, 768, generator=g),
    )


# keys, shapes and sizes


def test_adapter_keys_and_shapes_are_the_released_ones():
    shapes = {k: tuple(v.shape) for k, v in WanModel(A2V_19B, device="meta").state_dict().items()}
    expected = {
        "audio_proj.proj1.weight": (512, 46080), "audio_proj.proj1.bias": (512,),
        "audio_proj.proj1_vf.weight": (512, 73728), "audio_proj.proj1_vf.bias": (512,),
        "audio_proj.proj2.weight": (512, 512), "audio_proj.proj2.bias": (512,),
        "audio_proj.proj3.weight": (24576, 512), "audio_proj.proj3.bias": (24576,),
        "audio_proj.norm.weight": (768,), "audio_proj.norm.bias": (768,),
        "blocks.7.norm_x.weight": (5120,), "blocks.7.norm_x.bias": (5120,),
        "blocks.7.audio_cross_attn.q_linear.weight": (5120, 5120), "blocks.7.audio_cross_attn.q_linear.bias": (5120,),
        "blocks.7.audio_cross_attn.kv_linear.weight": (10240, 768),
        "blocks.7.audio_cross_attn.kv_linear.bias": (10240,),
        "blocks.7.audio_cross_attn.proj.weight": (5120, 5120), "blocks.7.audio_cross_attn.proj.bias": (5120,),
    }
    assert {k: shapes[k] for k in expected} == expected
    adapter = {k for k in shapes if k.startswith("audio_proj.") or ".norm_x." in k or ".audio_cross_attn." in k}
    assert len(adapter) == 10 + 8 * 40  # nothing else: no q/k norms (qk_norm=False in the reference)
    assert set(shapes) - adapter == set(WanModel(I2V_14B, device="meta").state_dict())


def test_param_counts_match_the_released_a2v_model():
    model = WanModel(A2V_19B, device="meta")
    in_blocks = sum(p.numel() for name, p in model.named_parameters()
                    if ".audio_cross_attn." in name or ".norm_x." in name)
    audio_proj = sum(p.numel() for p in model.audio_proj.parameters())
    assert round(in_blocks / 1e9, 3) == 2.413
    assert round(audio_proj / 1e6, 1) == 74.2
    assert param_count(A2V_19B) == param_count(I2V_14B) + in_blocks + audio_proj
    assert round(param_count(A2V_19B) / 1e9, 3) == 18.882


def test_config_inferred_from_shapes():
    sd = WanModel(A2V_19B, device="meta").state_dict()
    assert WanDiTConfig.from_state_dict(sd) == A2V_19B
    fields = shape_fields(sd)
    assert {k: fields[k][0] for k in ("audio_window", "vae_temporal_stride", "audio_tokens", "audio_token_dim",
                                      "audio_hidden_dim")} == dict(audio_window=5, vae_temporal_stride=4,
                                                                   audio_tokens=32, audio_token_dim=768,
                                                                   audio_hidden_dim=512)
    assert WanDiTConfig.from_state_dict(WanModel(TINY_A2V, device="meta").state_dict(), num_heads=2) == TINY_A2V
    assert not WanDiTConfig.from_state_dict(WanModel(I2V_14B, device="meta").state_dict()).audio_adapter


def test_incomplete_adapter_is_named():
    sd = WanModel(TINY_A2V, device="meta").state_dict()
    del sd["audio_proj.proj1_vf.weight"]
    with pytest.raises(CheckpointError, match="proj1_vf"):
        WanDiTConfig.from_state_dict(sd)


# math


def test_speech_windows_per_latent_frame():
    # value = 10 * video frame + window entry, so each picked entry says where it came from
    frame = torch.arange(VIDEO_FRAMES).view(1, -1, 1, 1, 1) * 10.0
    entry = torch.arange(5).view(1, 1, -1, 1, 1).float()
    first, later = audio_windows_per_latent_frame((frame + entry).expand(1, -1, -1, 2, 3), window=5, stride=4)
    assert first.shape == (1, 1, 5, 2, 3) and later.shape == (1, F - 1, 8, 2, 3)
    assert first[0, 0, :, 0, 0].tolist() == [0, 1, 2, 3, 4]
    # latent frame 1 = video frames 1..4: frame 1 entries 0..2, frames 2, 3 centre, frame 4 entries 2..4
    assert later[0, 0, :, 0, 0].tolist() == [10, 11, 12, 22, 32, 42, 43, 44]
    assert later[0, 1, :, 0, 0].tolist() == [50, 51, 52, 62, 72, 82, 83, 84]


def test_audio_cross_attention_is_per_frame_softmax_attention():
    model = build()
    block, adapter = model.blocks[0], model.blocks[0].audio_cross_attn
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, F * 6, TINY_A2V.dim, generator=g)
    audio = torch.randn(2, F, 32, 768, generator=g)
    with torch.no_grad():
        got = adapter(block.norm_x(x), audio)
        xn = torch.nn.functional.layer_norm(x, (TINY_A2V.dim,), block.norm_x.weight, block.norm_x.bias, 1e-6)
        heads, hd = TINY_A2V.num_heads, TINY_A2V.head_dim
        kv = audio @ adapter.kv_linear.weight.T + adapter.kv_linear.bias
        k, v = kv[..., : TINY_A2V.dim], kv[..., TINY_A2V.dim:]  # k = first half of the rows
        expected = torch.empty_like(x)
        for b in range(2):
            for f in range(F):
                rows = slice(f * 6, (f + 1) * 6)
                q = (xn[b, rows] @ adapter.q_linear.weight.T + adapter.q_linear.bias).view(6, heads, hd)
                kf, vf = k[b, f].view(32, heads, hd), v[b, f].view(32, heads, hd)
                scores = torch.einsum("qhd,khd->hqk", q, kf) / hd**0.5
                out = torch.einsum("hqk,khd->qhd", scores.softmax(-1), vf).reshape(6, -1)
                expected[b, rows] = out @ adapter.proj.weight.T + adapter.proj.bias
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_audio_of_one_latent_frame_changes_only_that_frames_output():
    """One block: self-attention runs before the speech enters, and everything after it (FFN, head) is per token,
    so the speech of latent frame f can only move the output of frame f."""
    model = build(dataclasses.replace(TINY_A2V, num_layers=1))
    kw = inputs()
    with torch.no_grad():
        base = model(**kw)
        for f, video_frames in ((0, slice(0, 1)), (2, slice(5, 9))):
            audio = kw["audio"].clone()
            audio[:, video_frames] += 1.0
            diff = (model(**{**kw, "audio": audio}) - base).abs().amax(dim=(0, 1, 3, 4))
            assert diff[f] > 1e-3
            assert torch.count_nonzero(diff) == 1, diff


def test_batch_rows_and_shared_audio():
    model = build()
    kw = inputs(batch=2)
    with torch.no_grad():
        both = model(**kw)
        one = model(**{k: v[1:] for k, v in kw.items()})
        shared = model(**{**kw, "audio": kw["audio"][:1]})
        first = model(**{k: v[:1] for k, v in kw.items()})
    torch.testing.assert_close(both[1:], one, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared[:1], first, rtol=1e-5, atol=1e-5)


# errors


def test_adapter_model_without_audio_says_what_it_needs():
    kw = inputs()
    del kw["audio"]
    with pytest.raises(SkyReelsInputError, match=r"A2V model.*\[B, 9, 5, 12, 768\]"):
        build()(**kw)


def test_audio_for_a_model_without_adapter_is_refused():
    config = dataclasses.replace(TINY_A2V, audio_adapter=False)
    with pytest.raises(SkyReelsInputError, match="no audio adapter"):
        build(config)(**inputs(config))


def test_audio_frame_count_is_checked():
    kw = inputs()
    kw["audio"] = kw["audio"][:, :8]
    with pytest.raises(SkyReelsInputError, match=r"\[B, 9, 5, 12, 768\].*got \(1, 8, 5, 12, 768\)"):
        build()(**kw)


# loading the released layout


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" / "make_tiny_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def a2v_folder(tmp_path_factory, maker) -> Path:
    out = tmp_path_factory.mktemp("models")
    maker.make_all(out, only=["diffusion_models/skyreels_v3_a2v_tiny"])
    return out / "diffusion_models" / "skyreels_v3_a2v_tiny"


def test_release_folder_loads_with_its_config_json(a2v_folder, maker):
    assert sorted(p.name for p in a2v_folder.iterdir()) == [
        "config.json", "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors"]
    state = {k: v for shard in sorted(a2v_folder.glob("*.safetensors")) for k, v in load_file(shard).items()}
    assert detect_kind(state) == "wan_dit"
    assert {t.dtype for t in state.values()} == {torch.bfloat16}
    model = load_dit(a2v_folder, dtype=torch.float32)
    assert model.config == maker._wan_config("a2v")
    assert load_dit(next(a2v_folder.glob("*-00002-of-*.safetensors")), dtype=torch.float32).config == model.config
    kw = inputs(model.config)
    with torch.no_grad():
        out = model(**kw)
    assert out.shape == (1, 16, F, H, W) and torch.isfinite(out).all()


@pytest.mark.parametrize("repack", ["comfy_prefixed", "to_scaled_fp8", "to_fp8"])
def test_single_file_repacks_load(a2v_folder, maker, tmp_path, repack):
    state = {k: v.float() for shard in sorted(a2v_folder.glob("*.safetensors")) for k, v in load_file(shard).items()}
    file = tmp_path / f"a2v_{repack}.safetensors"
    save_file(getattr(maker, repack)(state), str(file))
    (tmp_path / "config.json").write_text('{"dim": 5120}')  # a lone file ignores a config.json beside it
    model = load_dit(file)
    assert model.config == maker._wan_config("a2v")
    with torch.no_grad():
        assert torch.isfinite(model(**inputs(model.config))).all()


def test_config_json_contradicting_the_shapes_is_refused(a2v_folder, tmp_path):
    folder = tmp_path / "a2v"
    shutil.copytree(a2v_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "context_tokens": 16}))
    with pytest.raises(CheckpointError, match=r"audio_tokens = 16 .*config\.json.* 32 \(audio_proj\.proj3\.weight\)"):
        load_dit(folder)
