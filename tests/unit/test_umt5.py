"""umT5 encoder: config, key layouts (Wan .pth, HF / ComfyUI, scaled fp8), loader, pipeline padding."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_umt5_state_dict as tiny_state_dict
from skyreels_core.checkpoints.fp8 import FP8Linear
from skyreels_core.encoders.tokenizer import UMT5Tokenizer, make_tiny_spiece_model
from skyreels_core.encoders.umt5 import (
    UMT5Config,
    UMT5Encoder,
    convert_state_dict,
    load_text_encoder,
    relative_position_bucket,
    umt5_from_state_dict,
)
from skyreels_core.errors import CheckpointError


@pytest.fixture(scope="module")
def spiece() -> bytes:
    return make_tiny_spiece_model()


def _ids(seed=0, batch=2, length=12):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 256, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[1, 7:] = 0
    return ids, mask


def test_presets():
    xxl = UMT5Config.XXL
    assert (xxl.vocab, xxl.dim, xxl.dim_attn, xxl.dim_ffn, xxl.num_heads, xxl.num_layers, xxl.num_buckets) == (
        256384,
        4096,
        4096,
        10240,
        64,
        24,
        32,
    )
    assert xxl.shared_pos is False and xxl.head_dim == 64
    assert UMT5Config.from_state_dict(tiny_state_dict()) == UMT5Config.TINY


def test_xxl_key_set_and_shapes_on_meta():
    with torch.device("meta"):
        model = UMT5Encoder(UMT5Config.XXL)
    sd = model.state_dict()
    assert len(sd) == 2 + 24 * 10
    assert sd["token_embedding.weight"].shape == (256384, 4096)
    assert sd["blocks.23.attn.o.weight"].shape == (4096, 4096)
    assert sd["blocks.0.ffn.gate.0.weight"].shape == (10240, 4096)
    assert sd["blocks.0.ffn.fc2.weight"].shape == (4096, 10240)
    assert sd["blocks.5.pos_embedding.embedding.weight"].shape == (32, 64)
    assert sd["norm.weight"].shape == (4096,)
    assert UMT5Config.from_state_dict(sd) == UMT5Config.XXL
    ids = torch.zeros(1, 512, dtype=torch.int64, device="meta")
    assert model.encode(ids, torch.ones_like(ids)).shape == (1, 512, 4096)


def test_buckets_hand_computed():
    b = relative_position_bucket(1, 400)[0]  # query 0, key j: rel = j
    assert b[0].item() == 0 and b[1].item() == 17 and b[7].item() == 23
    assert b[8].item() == 16 + 8  # log bucket start
    assert b[127].item() == 16 + 8 + math.floor(math.log(127 / 8) / math.log(16) * 8)
    assert b[399].item() == 31
    back = relative_position_bucket(400, 1)[:, 0]  # key 0, query i: rel = -i
    assert back[1].item() == 1 and back[8].item() == 8 and back[399].item() == 15


@torch.no_grad()
def test_comfy_layout_converts_to_the_same_model():
    wan = tiny_state_dict(seed=3)
    comfy = tiny_state_dict(seed=3, layout="comfy")
    assert {
        "shared.weight",
        "encoder.final_layer_norm.weight",
        "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
        "encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
        "encoder.block.0.layer.1.DenseReluDense.wi_1.weight",
        "encoder.block.0.layer.1.DenseReluDense.wo.weight",
    } <= comfy.keys()
    converted = convert_state_dict(comfy)
    assert converted.keys() == wan.keys()
    assert all(torch.equal(converted[k], wan[k]) for k in wan)
    assert torch.equal(
        converted["blocks.0.ffn.gate.0.weight"], comfy["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"]
    )
    # prefixed ComfyUI export with the tied HF copy of the embedding
    prefixed = {f"umt5xxl.transformer.{k}": v for k, v in comfy.items()}
    prefixed["umt5xxl.transformer.encoder.embed_tokens.weight"] = comfy["shared.weight"]
    ids, mask = _ids()
    a = umt5_from_state_dict(wan).encode(ids, mask)
    b = umt5_from_state_dict(prefixed).encode(ids, mask)
    assert torch.equal(a, b)


@torch.no_grad()
def test_scaled_fp8_file_loads_fp8_linears_and_matches_dequantized_weights():
    fp8 = tiny_state_dict(seed=1, layout="comfy", scaled_fp8=True)
    assert fp8["encoder.block.0.layer.0.SelfAttention.q.weight"].dtype == torch.float8_e4m3fn
    assert "encoder.block.0.layer.0.SelfAttention.q.scale_weight" in fp8 and "scaled_fp8" in fp8
    model = umt5_from_state_dict(fp8, dtype=torch.float32)
    assert isinstance(model.blocks[0].attn.q, FP8Linear) and isinstance(model.blocks[1].ffn.gate[0], FP8Linear)
    assert model.blocks[0].attn.q.weight.dtype == torch.float8_e4m3fn
    deq = {}
    for key, value in convert_state_dict(fp8).items():
        if key.endswith("scale_weight") or key == "scaled_fp8":
            continue
        scale = convert_state_dict(fp8).get(key[: -len("weight")] + "scale_weight")
        deq[key] = value.float() * scale if scale is not None else value
    reference = umt5_from_state_dict(deq, dtype=torch.float32)
    ids, mask = _ids()
    torch.testing.assert_close(model.encode(ids, mask), reference.encode(ids, mask), atol=1e-6, rtol=1e-6)
    # fp8 is a lossy copy of the bf16 weights, but close
    full = umt5_from_state_dict(tiny_state_dict(seed=1), dtype=torch.float32).encode(ids, mask)
    assert (model.encode(ids, mask) - full).abs().mean() < 0.1 * full.abs().mean()


@torch.no_grad()
def test_bf16_file_stored_as_fp8_on_request():
    model = umt5_from_state_dict(tiny_state_dict(seed=1), dtype=torch.float32, weight_dtype="fp8_e4m3fn")
    assert isinstance(model.blocks[0].ffn.fc2, FP8Linear) and model.token_embedding.weight.dtype == torch.float32
    ids, mask = _ids()
    reference = umt5_from_state_dict(tiny_state_dict(seed=1), dtype=torch.float32).encode(ids, mask)
    assert (model.encode(ids, mask) - reference).abs().mean() < 0.1 * reference.abs().mean()


@torch.no_grad()
def test_dtype_and_bf16_run():
    model = umt5_from_state_dict(tiny_state_dict(), dtype=torch.bfloat16)
    assert model.blocks[0].attn.q.weight.dtype == torch.bfloat16
    ids, mask = _ids()
    out = model.encode(ids, mask)
    ref = umt5_from_state_dict(tiny_state_dict(), dtype=torch.float32).encode(ids, mask)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


@torch.no_grad()
def test_text_encoder_pads_to_512_and_real_rows_do_not_depend_on_padding(spiece, tmp_path):
    path = tmp_path / "umt5_tiny_fp32.safetensors"
    save_file(tiny_state_dict(seed=2, with_spiece=spiece, layout="comfy"), str(path))
    encoder = load_text_encoder(path)
    prompts = ["A cat walks along the beach at sunset.", "a dog"]
    context = encoder.encode(prompts)
    assert context.shape == (2, 512, 32) and context.dtype == torch.float32
    ids, mask = UMT5Tokenizer(spiece)(prompts)
    for row in range(2):
        n = int(mask[row].sum())
        assert torch.all(context[row, n:] == 0) and torch.all(context[row, :n].abs().sum(-1) > 0)
        unpadded = encoder.model(ids[row : row + 1, :n], mask[row : row + 1, :n])[0]
        torch.testing.assert_close(context[row, :n], unpadded, atol=1e-5, rtol=1e-5)


def test_tokenizer_lookup_order_and_missing_tokenizer_error(spiece, tmp_path):
    wan_file = tmp_path / "models_t5_umt5-xxl-enc-bf16.pth"
    torch.save(tiny_state_dict(), wan_file)
    with pytest.raises(CheckpointError, match="spiece.model"):
        load_text_encoder(wan_file)
    (tmp_path / "google" / "umt5-xxl").mkdir(parents=True)
    (tmp_path / "google" / "umt5-xxl" / "spiece.model").write_bytes(spiece)
    encoder = load_text_encoder(wan_file)  # the official layout: tokenizer folder next to the .pth
    assert encoder.encode(["a cat"]).shape == (1, 512, 32)
    explicit = load_text_encoder(wan_file, tmp_path / "google" / "umt5-xxl" / "spiece.model")
    assert torch.equal(explicit.encode(["a cat"]), encoder.encode(["a cat"]))


def test_wrong_files_raise_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not a umT5"):
        umt5_from_state_dict({"visual.patch_embedding.weight": torch.zeros(4, 3, 2, 2)})
    state = tiny_state_dict()
    del state["blocks.1.ffn.fc2.weight"]
    with pytest.raises(CheckpointError, match="Missing 1 keys: blocks.1.ffn.fc2.weight"):
        umt5_from_state_dict(state, file="broken.safetensors")
