"""fp8 storage: FP8Linear numerics, apply_fp8 on plain / ComfyUI scaled / comfy_quant state dicts, memory."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skyreels_core.checkpoints.fp8 import (
    FP8Linear,
    apply_fp8,
    fp8_dtype_of,
    has_fp8,
    parse_weight_dtype,
    quantize_weight,
)
from skyreels_core.checkpoints.io import load_strict
from skyreels_core.errors import CheckpointError

FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


class Tiny(nn.Module):
    """A generic model (not the DiT): a norm, a conv, two linears, an embedding."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.embed = nn.Embedding(10, 16, dtype=dtype)
        self.norm = nn.LayerNorm(16, dtype=dtype)
        self.conv = nn.Conv1d(16, 16, 3, padding=1, dtype=dtype)
        self.body = nn.Sequential(nn.Linear(16, 32, dtype=dtype), nn.GELU(), nn.Linear(32, 16, bias=False, dtype=dtype))

    def forward(self, ids):
        x = self.norm(self.embed(ids))
        x = x + self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.body(x)


def _float_state(seed=0):
    g = _gen(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in Tiny().state_dict().items()}


@pytest.mark.parametrize("fp8_dtype", FP8)
@pytest.mark.parametrize("scale", [None, "scalar", "per_channel"])
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.bfloat16])
def test_fp8_linear_matches_dequantised_float_linear(fp8_dtype, scale, x_dtype):
    g = _gen(1)
    w8 = (torch.randn(24, 40, generator=g) * 3).to(fp8_dtype)
    bias = torch.randn(24, generator=g)
    s = {None: None, "scalar": torch.tensor(0.037), "per_channel": torch.rand(24, generator=g) + 0.5}[scale]
    layer = FP8Linear(40, 24, fp8_dtype=fp8_dtype)
    layer.weight.data = w8
    layer.bias.data = bias
    layer.set_scales(s)
    x = torch.randn(3, 5, 40, generator=g).to(x_dtype)

    w_ref = w8.to(torch.float32) * (1.0 if s is None else s.reshape(-1, 1) if s.numel() > 1 else s)
    expected = F.linear(x.float(), w_ref, bias)
    out = layer(x)
    assert out.dtype == x_dtype and out.shape == (3, 5, 24)
    tol = 1e-5 if x_dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.float(), expected, atol=tol * expected.abs().max().item(), rtol=tol)
    torch.testing.assert_close(layer.dequantized_weight(), w_ref)


@pytest.mark.parametrize("fp8_dtype", FP8)
def test_quantize_weight_error_is_within_fp8_precision(fp8_dtype):
    w = torch.randn(64, 64, generator=_gen(2)) * 0.02
    q, s = quantize_weight(w, fp8_dtype)
    assert q.dtype == fp8_dtype and s.dtype == torch.float32 and s.numel() == 1
    mantissa_bits = 3 if fp8_dtype == torch.float8_e4m3fn else 2
    err = (q.float() * s - w).abs()
    # half an ulp of the element itself, or of the smallest normal (subnormal range) times the scale
    smallest_normal = torch.finfo(fp8_dtype).smallest_normal
    bound = w.abs() * 2.0 ** -(mantissa_bits + 1) + s * smallest_normal * 2.0 ** -(mantissa_bits + 1)
    assert bool((err <= bound * 1.0001).all())
    assert torch.isclose((q.float() * s).abs().max(), w.abs().max(), rtol=1e-6)


def _fp8_file_state(fp8_dtype=torch.float8_e4m3fn, scaled=False):
    """What a plain or ComfyUI-scaled fp8 file of `Tiny` holds."""
    state = _float_state()
    out = {}
    for key, t in state.items():
        if key.startswith("body.") and key.endswith("weight"):
            if scaled:
                out[key], out[key.replace("weight", "scale_weight")] = quantize_weight(t, fp8_dtype)
                out[key.replace("weight", "scale_input")] = torch.ones(())
            else:
                out[key] = t.to(fp8_dtype)
        elif key == "conv.weight":  # some files also store conv / embedding weights in fp8
            out[key] = t.to(fp8_dtype)
        else:
            out[key] = t.to(torch.bfloat16)
    if scaled:
        out["scaled_fp8"] = torch.empty(0, dtype=fp8_dtype)
    return out


def _dequantised(file_state):
    ref = {}
    for key, t in file_state.items():
        if key.endswith(("scale_weight", "scale_input")) or key == "scaled_fp8":
            continue
        scale = file_state.get(key.replace("weight", "scale_weight"), torch.ones(())) if key.endswith("weight") else 1
        ref[key] = t.float() * scale
    return ref


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("fp8_dtype", FP8)
def test_apply_fp8_generic_model_memory_and_numerics(scaled, fp8_dtype):
    file_state = _fp8_file_state(fp8_dtype, scaled)
    assert has_fp8(file_state) and fp8_dtype_of(file_state) == fp8_dtype
    model = Tiny()
    state = apply_fp8(model, dict(file_state), dtype=torch.float32)
    assert not any(k.endswith(("scale_weight", "scale_input", "scaled_fp8")) for k in state)
    load_strict(model, state, file="tiny.safetensors", kind="tiny", assign=True)

    for layer in (model.body[0], model.body[2]):
        assert isinstance(layer, FP8Linear)
        assert layer.weight.dtype == fp8_dtype and layer.weight.element_size() == 1
        assert (layer.scale_weight is not None) == scaled
        assert (layer.scale_input is not None) == scaled
    # fp8 tensors of other modules are upcast, other float tensors cast, to the requested dtype
    assert model.conv.weight.dtype == torch.float32 and model.norm.weight.dtype == torch.float32
    assert model.body[0].bias.dtype == torch.float32

    reference = Tiny()
    reference.load_state_dict(_dequantised(file_state))
    ids = torch.randint(0, 10, (2, 7), generator=_gen(3))
    torch.testing.assert_close(model(ids), reference(ids), atol=1e-5, rtol=1e-5)

    # moving the model to another float dtype keeps the fp8 storage and the float32 scales
    model.to(torch.bfloat16)
    assert model.body[0].weight.dtype == fp8_dtype and model.body[0].weight.element_size() == 1
    if scaled:
        assert model.body[0].scale_weight.dtype == torch.float32
    assert model.body[0].bias.dtype == torch.bfloat16
    torch.testing.assert_close(model(ids).float(), reference(ids), atol=5e-2, rtol=5e-2)


def test_marker_as_float32_means_e4m3fn_and_prefixed_marker_is_dropped():
    state = _fp8_file_state(scaled=True)
    marker = state.pop("scaled_fp8")
    state["model.diffusion_model.scaled_fp8"] = torch.zeros(2, dtype=torch.float32)
    assert fp8_dtype_of(state) == torch.float8_e4m3fn
    out = apply_fp8(Tiny(), state)
    assert "model.diffusion_model.scaled_fp8" not in out and marker.numel() == 0


def test_comfy_quant_format_weight_scale_is_supported():
    file_state = _fp8_file_state(scaled=True)
    state = {}
    for key, t in file_state.items():
        if key == "scaled_fp8":
            continue
        key = key.replace("scale_weight", "weight_scale").replace("scale_input", "input_scale")
        state[key] = t
    for layer in ("body.0", "body.2"):
        state[f"{layer}.comfy_quant"] = torch.tensor(list(json.dumps({"format": "float8_e4m3fn"}).encode()),
                                                     dtype=torch.uint8)
    model = Tiny()
    load_strict(model, apply_fp8(model, state, dtype=torch.float32), file="q.safetensors", kind="tiny", assign=True)
    reference = Tiny()
    reference.load_state_dict(_dequantised(file_state))
    ids = torch.randint(0, 10, (1, 5), generator=_gen(4))
    torch.testing.assert_close(model(ids), reference(ids), atol=1e-5, rtol=1e-5)


def test_unsupported_comfy_quant_format_is_refused():
    state = _fp8_file_state(scaled=True)
    state["body.0.comfy_quant"] = torch.tensor(list(b'{"format": "nvfp4"}'), dtype=torch.uint8)
    with pytest.raises(CheckpointError, match="nvfp4"):
        apply_fp8(Tiny(), state)


def test_scale_for_a_layer_the_model_lacks_is_an_error():
    state = _fp8_file_state(scaled=True)
    state["nonexistent.scale_weight"] = torch.ones(())
    with pytest.raises(CheckpointError, match="nonexistent"):
        apply_fp8(Tiny(), state)


def test_quantize_float_file_at_load_respects_keep():
    state = _float_state()
    model = Tiny()
    out = apply_fp8(model, dict(state), quantize=torch.float8_e4m3fn, keep=(r"^body\.2$",))
    load_strict(model, out, file="f.safetensors", kind="tiny", assign=True)
    assert isinstance(model.body[0], FP8Linear) and model.body[0].weight.element_size() == 1
    assert type(model.body[2]) is nn.Linear and model.body[2].weight.dtype == torch.float32
    reference = Tiny()
    reference.load_state_dict(state)
    ids = torch.randint(0, 10, (2, 6), generator=_gen(5))
    expected = reference(ids)
    err = (model(ids) - expected).abs().max()
    assert 0 < err < 0.05 * expected.abs().max()


def test_model_built_on_meta_gets_fp8_layers():
    with torch.device("meta"):
        model = Tiny()
    state = apply_fp8(model, _fp8_file_state(scaled=True), dtype=torch.float32)
    load_strict(model, state, file="m.safetensors", kind="tiny", assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert model(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 16)


def test_parse_weight_dtype():
    assert parse_weight_dtype(None) is None
    assert parse_weight_dtype("default") is None
    assert parse_weight_dtype("fp8_e4m3fn") == torch.float8_e4m3fn
    assert parse_weight_dtype("fp8_e5m2") == torch.float8_e5m2
    with pytest.raises(CheckpointError, match="fp8_e4m3fn"):
        parse_weight_dtype("int8")
    with pytest.raises(CheckpointError):
        parse_weight_dtype(torch.float16)
