"""Spec tests for the Wan2.1-family DiT (tiny configs, CPU, float32)."""

from __future__ import annotations

import dataclasses
import math
import types

import pytest
import torch
import torch.nn as nn

from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models import wan_dit
from skyreels_core.models.wan_dit import (
    DF_1_3B,
    I2V_1_3B,
    I2V_14B,
    T2V_1_3B,
    T2V_14B,
    TINY,
    WanDiTConfig,
    WanModel,
    param_count,
)
from skyreels_core.nn.embeddings import sinusoidal_embedding
from skyreels_core.nn.modulation import gated_residual, modulate
from skyreels_core.nn.norms import layer_norm, rms_norm

TINY_I2V = dataclasses.replace(TINY, model_type="i2v", in_dim=36, image_dim=32)
TINY_DF = dataclasses.replace(TINY, inject_sample_info=True)
F, H, W = 3, 4, 6  # latent frames / height / width -> 3 x 2 x 3 = 18 tokens


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matmuls: one thread is ~100x faster than OpenMP spinning on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(config: WanDiTConfig, seed: int = 0) -> WanModel:
    torch.manual_seed(seed)
    return WanModel(config).eval()


def inputs(batch: int = 1, seed: int = 1, config: WanDiTConfig = TINY):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, F, H, W, generator=g)
    context = torch.randn(batch, 7, config.text_dim, generator=g)
    context[:, -2:] = 0  # padding rows, attended like the reference
    return x, torch.full((batch,), 741), context


@pytest.fixture(scope="module")
def t2v():
    return build(TINY)


@pytest.fixture(scope="module")
def i2v():
    return build(TINY_I2V)


def i2v_inputs(batch: int = 1):
    x, t, context = inputs(batch)
    g = torch.Generator().manual_seed(5)
    y = torch.randn(batch, 20, F, H, W, generator=g)
    clip = torch.randn(batch, 257, TINY_I2V.image_dim, generator=g)
    return x, t, context, clip, y


# nn helpers


def test_modulate_per_frame_equals_per_token_table():
    torch.manual_seed(0)
    x, y = torch.randn(2, 12, 8), torch.randn(2, 12, 8)
    shift, scale, gate = torch.randn(3, 2, 3, 8).unbind(0)  # 3 frames of 4 tokens
    per_token = [m.repeat_interleave(4, dim=1) for m in (shift, scale, gate)]
    assert torch.allclose(modulate(x, shift, scale), x * (1 + per_token[1]) + per_token[0])
    assert torch.allclose(gated_residual(x, y, gate), x + y * per_token[2])
    with pytest.raises(ValueError, match="equal modulation groups"):
        modulate(x, shift[:, :1].expand(2, 5, 8), scale[:, :1].expand(2, 5, 8))


def test_norms_precision_contract():
    x = torch.randn(2, 5, 16).to(torch.bfloat16)
    w = torch.rand(16).to(torch.bfloat16)
    out = rms_norm(x, w, 1e-6)
    xf = x.float()
    assert out.dtype == torch.float32
    assert torch.allclose(out, xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * w.float())
    ln = layer_norm(x, 1e-6)
    assert ln.dtype == torch.bfloat16
    assert torch.equal(ln, torch.nn.functional.layer_norm(xf, (16,), eps=1e-6).to(torch.bfloat16))


def test_sinusoidal_embedding_is_cos_first_float64():
    emb = sinusoidal_embedding(torch.tensor([0, 741]), 256)
    assert emb.dtype == torch.float64 and emb.shape == (2, 256)
    assert torch.equal(emb[0, :128], torch.ones(128, dtype=torch.float64))  # cos(0)
    assert torch.equal(emb[0, 128:], torch.zeros(128, dtype=torch.float64))
    assert emb[1, 0] == math.cos(741.0) and emb[1, 128] == math.sin(741.0)  # frequency 1 first


# forward


def test_t2v_forward_shape_and_dtype(t2v):
    x, t, context = inputs()
    with torch.no_grad():
        out = t2v(x, t, context)
    assert out.shape == (1, 16, F, H, W) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_i2v_forward_uses_image_condition_and_clip_tokens(i2v):
    x, t, context, clip, y = i2v_inputs()
    with torch.no_grad():
        out = i2v(x, t, context, clip_fea=clip, y=y)
        other_clip = i2v(x, t, context, clip_fea=torch.randn_like(clip), y=y)  # not affine: LN undoes that
        other_y = i2v(x, t, context, clip_fea=clip, y=torch.zeros_like(y))
        concatenated = i2v(torch.cat([x, y], dim=1), t, context, clip_fea=clip)
    assert out.shape == (1, 16, F, H, W)
    assert (out - other_clip).abs().max() > 1e-3
    assert (out - other_y).abs().max() > 1e-3
    assert torch.equal(out, concatenated)  # y is just channel-concatenated after x


def test_per_frame_t_all_equal_matches_per_sample_t(t2v):
    x, t, context = inputs()
    with torch.no_grad():
        per_sample = t2v(x, t, context)
        per_frame = t2v(x, t[:, None].expand(1, F), context)
    torch.testing.assert_close(per_frame, per_sample, atol=1e-6, rtol=1e-6)


def test_per_frame_t_changes_only_that_frames_modulation(t2v):
    x, _, context = inputs()
    t_a = torch.tensor([[999, 500, 0]])
    t_b = torch.tensor([[999, 250, 0]])  # only frame 1 differs
    with torch.no_grad():
        e_a, e0_a = t2v.embed_time(t_a)
        e_b, e0_b = t2v.embed_time(t_b)
        out_a, out_b = t2v(x, t_a, context), t2v(x, t_b, context)
    assert e0_a.shape == (1, 6, F, TINY.dim) and e_a.shape == (1, F, TINY.dim)  # never per token
    assert torch.equal(e0_a[:, :, [0, 2]], e0_b[:, :, [0, 2]]) and torch.equal(e_a[:, [0, 2]], e_b[:, [0, 2]])
    assert not torch.allclose(e0_a[:, :, 1], e0_b[:, :, 1])
    diff = (out_a - out_b).abs().amax(dim=(0, 1, 3, 4))
    assert diff[1] > 1e-3 and diff[1] == diff.max()  # frame 1 moves most (the head of other frames is unchanged)


def test_fps_branch_changes_output_and_is_ignored_without_it(t2v):
    df = build(TINY_DF)
    assert "fps_embedding.weight" in df.state_dict() and "fps_projection.2.weight" in df.state_dict()
    x, t, context = inputs()
    with torch.no_grad():
        out0, out1 = df(x, t, context, fps=[0]), df(x, t, context, fps=1)
        e_0, _ = df.embed_time(t, torch.tensor([0]))
        e_1, _ = df.embed_time(t, torch.tensor([1]))
        plain = t2v(x, t, context)
        plain_fps = t2v(x, t, context, fps=[1])
        df_frames = df(x, t[:, None].expand(1, F), context, fps=[1])
    assert (out0 - out1).abs().max() > 1e-3
    assert torch.equal(e_0, e_1)  # fps goes into e0 only; the head's e is unchanged
    assert torch.equal(plain, plain_fps)
    torch.testing.assert_close(df_frames, out1, atol=1e-6, rtol=1e-6)
    with pytest.raises(SkyReelsInputError, match="fps"):
        df(x, t, context)
    with pytest.raises(SkyReelsInputError, match="fps"):
        df(x, t, context, fps=[2])


def test_batch_two_matches_single_samples_and_context_broadcasts(t2v):
    x, t, context = inputs(batch=2)
    t = torch.tensor([741, 100])
    with torch.no_grad():
        both = t2v(x, t, context)
        first = t2v(x[:1], t[:1], context[:1])
        second = t2v(x[1:], t[1:], context[1:])
        shared = t2v(x, t, context[:1])
        frames = t2v(x, torch.tensor([[741, 500, 0], [100, 100, 100]]), context)
    torch.testing.assert_close(both, torch.cat([first, second]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shared[:1], first, atol=1e-5, rtol=1e-5)
    assert frames.shape == (2, 16, F, H, W)
    torch.testing.assert_close(frames[1:], second, atol=1e-5, rtol=1e-5)


def test_i2v_batch_two(i2v):
    x, t, context, clip, y = i2v_inputs(batch=2)
    with torch.no_grad():
        both = i2v(x, t, context, clip_fea=clip, y=y)
        second = i2v(x[1:], t[1:], context[1:], clip_fea=clip[1:], y=y[1:])
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=1e-5)


def test_attention_backend_attribute_is_respected(monkeypatch):
    model = build(TINY)
    seen = []
    real = wan_dit.attention

    def spy(q, k, v, *, backend="auto", **kw):
        seen.append(backend)
        return real(q, k, v, backend=backend, **kw)

    monkeypatch.setattr(wan_dit, "attention", spy)
    x, t, context = inputs()
    model.attn_backend = "sdpa"
    with torch.no_grad():
        model(x, t, context)
    assert seen == ["sdpa"] * (2 * TINY.num_layers)  # self + cross attention per block
    model.attn_backend = "xformers"
    with pytest.raises(SkyReelsInputError, match="attn_backend"):
        model(x, t, context)


def test_bf16_weights_and_block_output_cast():
    model = build(TINY)
    x, t, context = inputs()
    with torch.no_grad():
        ref = model(x, t, context)
        model.residual_dtype = torch.bfloat16
        cast = model(x, t, context)
        model.residual_dtype = None
        model.to(torch.bfloat16)
        low = model(x, t, context)
    assert model.compute_dtype == torch.bfloat16 and low.dtype == torch.float32
    assert 0 < (cast - ref).abs().max() < 0.1
    assert (low - ref).abs().max() < 0.25 * ref.abs().max()


def test_operations_namespace_is_used():
    made = []

    class CountingLinear(nn.Linear):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def forward(self, x):
            return nn.functional.linear(x, self.weight.to(x.dtype), self.bias.to(x.dtype))

    ops = types.SimpleNamespace(Linear=CountingLinear, Conv3d=nn.Conv3d, LayerNorm=nn.LayerNorm, Embedding=nn.Embedding)
    model = WanModel(TINY, operations=ops)
    assert len(made) == sum(isinstance(m, nn.Linear) for m in model.modules()) > 10
    with torch.no_grad():
        assert model(*inputs()).shape == (1, 16, F, H, W)


# validation


def test_input_validation_messages(t2v, i2v):
    x, t, context = inputs()
    _, _, _, clip, y = i2v_inputs()
    cases = [
        (i2v, dict(x=x, t=t, context=context, clip_fea=clip), "I2V model.*image condition y.*20 channels"),
        (i2v, dict(x=x, t=t, context=context, y=y), "clip_fea"),
        (t2v, dict(x=x, t=t, context=context, y=y), "T2V model.*no image condition"),
        (t2v, dict(x=x, t=t, context=context, clip_fea=clip), "no image branch"),
        (t2v, dict(x=x[:, :4], t=t, context=context), "expects 16 input channels but got 4"),
        (t2v, dict(x=x[..., :5], t=t, context=context), "divisible by the patch size"),
        (t2v, dict(x=x[0], t=t, context=context), r"\[B, C, F, H, W\]"),
        (t2v, dict(x=x, t=t, context=context.expand(3, -1, -1)), "context batch 3 does not match"),
        (t2v, dict(x=x, t=t, context=context[..., :10]), "context width 10 .* text_dim 64"),
        (t2v, dict(x=x, t=torch.tensor([1, 2]), context=context), r"t must have shape \[B\]"),
        (t2v, dict(x=x, t=torch.zeros(1, F + 1), context=context), r"\[B, F\] = \[1, 3\]"),
        (i2v, dict(x=x, t=t, context=context, y=y, clip_fea=clip[..., :5]), "clip_fea width 5"),
    ]
    for model, kwargs, message in cases:
        with pytest.raises(SkyReelsInputError, match=message):
            model(**kwargs)


# config and checkpoint keys


@pytest.mark.parametrize("preset", [T2V_1_3B, T2V_14B, I2V_1_3B, I2V_14B, DF_1_3B, TINY, TINY_I2V])
def test_from_state_dict_round_trip_on_meta(preset):
    sd = WanModel(preset, device="meta").state_dict()
    overrides = {} if preset.head_dim == 128 else {"num_heads": preset.num_heads}
    assert WanDiTConfig.from_state_dict(sd, **overrides) == preset


def test_state_dict_uses_original_wan_keys():
    keys = set(WanModel(dataclasses.replace(I2V_1_3B, inject_sample_info=True), device="meta").state_dict())
    expected = {
        "patch_embedding.weight", "text_embedding.0.weight", "text_embedding.2.bias", "time_embedding.0.weight",
        "time_embedding.2.weight", "time_projection.1.weight", "head.head.weight", "head.modulation",
        "blocks.29.modulation", "blocks.0.self_attn.norm_q.weight", "blocks.0.self_attn.o.bias",
        "blocks.0.norm3.weight", "blocks.0.norm3.bias", "blocks.0.cross_attn.k_img.weight",
        "blocks.0.cross_attn.v_img.bias", "blocks.0.cross_attn.norm_k_img.weight", "blocks.0.ffn.2.weight",
        "img_emb.proj.0.weight", "img_emb.proj.1.weight", "img_emb.proj.3.weight", "img_emb.proj.4.bias",
        "fps_embedding.weight", "fps_projection.0.weight", "fps_projection.2.bias",
    }  # fmt: skip
    assert expected <= keys
    assert not any(".norm1." in k or ".norm2." in k or "freqs" in k for k in keys)  # parameter-free / not stored


def test_param_counts_match_released_models():
    assert round(param_count(T2V_14B) / 1e9, 3) == 14.288
    assert round(param_count(I2V_14B) / 1e9, 3) == 16.395
    assert round(param_count(DF_1_3B) / 1e9, 3) == 1.436


def test_from_state_dict_rejects_non_wan_files():
    sd = WanModel(TINY, device="meta").state_dict()
    with pytest.raises(CheckpointError, match="does not look like a Wan/SkyReels diffusion model"):
        WanDiTConfig.from_state_dict({"encoder.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="prefix .'model.diffusion_model.'.; strip it"):
        WanDiTConfig.from_state_dict({f"model.diffusion_model.{k}": v for k, v in sd.items()})
    with pytest.raises(CheckpointError, match="diffusers key names"):
        WanDiTConfig.from_state_dict({"scale_shift_table": torch.zeros(1, 2, 8)})
    partial = {k: v for k, v in sd.items() if not k.startswith("time_embedding.")}
    with pytest.raises(CheckpointError, match="missing time_embedding.0.weight"):
        WanDiTConfig.from_state_dict(partial)
    gappy = {k: v for k, v in sd.items() if not k.startswith("blocks.1.")}
    gappy |= {k.replace("blocks.0.", "blocks.2."): v for k, v in sd.items() if k.startswith("blocks.0.")}
    with pytest.raises(CheckpointError, match=r"missing blocks \[1\]"):
        WanDiTConfig.from_state_dict(gappy)
    odd = WanModel(dataclasses.replace(TINY, dim=192, num_heads=3), device="meta").state_dict()
    with pytest.raises(CheckpointError, match="Pass num_heads explicitly"):
        WanDiTConfig.from_state_dict(odd)
    assert WanDiTConfig.from_state_dict(odd, num_heads=3).head_dim == 64
