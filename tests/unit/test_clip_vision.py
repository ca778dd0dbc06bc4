"""CLIP ViT-H/14 vision tower: layouts (Wan .pth, ComfyUI clip_vision), penultimate features, preprocessing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_clip_vision_state_dict as tiny_state_dict
from skyreels_core.encoders.clip_vision import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPVisionConfig,
    CLIPVisionEncoder,
    clip_vision_from_state_dict,
    convert_state_dict,
    load_clip_vision,
    preprocess,
)
from skyreels_core.errors import CheckpointError, SkyReelsInputError


def test_vit_h_14_shapes_on_meta():
    cfg = CLIPVisionConfig.VIT_H_14
    assert (cfg.image_size, cfg.patch_size, cfg.dim, cfg.mlp_dim, cfg.num_heads, cfg.num_layers) == (
        224,
        14,
        1280,
        5120,
        16,
        32,
    )
    assert cfg.num_tokens == 257 and cfg.feature_blocks == 31
    with torch.device("meta"):
        model = CLIPVisionEncoder(cfg)
    sd = model.state_dict()
    assert sd["patch_embedding.weight"].shape == (1280, 3, 14, 14)
    assert sd["cls_embedding"].shape == (1, 1, 1280) and sd["pos_embedding"].shape == (1, 257, 1280)
    assert sd["transformer.31.attn.to_qkv.weight"].shape == (3840, 1280)
    assert sd["transformer.0.mlp.0.weight"].shape == (5120, 1280)
    assert CLIPVisionConfig.from_state_dict(sd) == cfg
    out = model(torch.empty(2, 3, 224, 224, device="meta"))
    assert out.shape == (2, 257, 1280)


def test_comfy_key_names_and_fused_qkv():
    wan = tiny_state_dict(seed=4, layout="wan")
    comfy = tiny_state_dict(seed=4, layout="comfy")
    assert {
        "vision_model.embeddings.class_embedding",
        "vision_model.embeddings.position_embedding.weight",
        "vision_model.pre_layrnorm.weight",
        "vision_model.encoder.layers.2.self_attn.k_proj.bias",
        "vision_model.encoder.layers.0.self_attn.out_proj.weight",
        "vision_model.encoder.layers.1.mlp.fc2.weight",
        "vision_model.post_layernorm.bias",
        "visual_projection.weight",
    } <= comfy.keys()
    qkv = wan["visual.transformer.1.attn.to_qkv.weight"]
    dim = qkv.shape[1]
    assert torch.equal(comfy["vision_model.encoder.layers.1.self_attn.q_proj.weight"], qkv[:dim])
    assert torch.equal(comfy["vision_model.encoder.layers.1.self_attn.v_proj.weight"], qkv[2 * dim :])
    a, b = convert_state_dict(wan), convert_state_dict(comfy)
    for key in b:
        assert torch.equal(a[key], b[key]), key


@torch.no_grad()
def test_both_layouts_load_to_identical_outputs(tmp_path):
    save_file(tiny_state_dict(seed=1, layout="comfy"), str(tmp_path / "clip_vision_h.safetensors"))
    torch.save(tiny_state_dict(seed=1, layout="wan"), tmp_path / "models_clip_tiny.pth")
    comfy = load_clip_vision(tmp_path / "clip_vision_h.safetensors")
    wan = load_clip_vision(tmp_path / "models_clip_tiny.pth")
    assert comfy.cfg == wan.cfg == CLIPVisionConfig.TINY
    images = torch.rand(2, 40, 72, 3, generator=torch.Generator().manual_seed(0))
    out = wan.encode_image(images)
    assert out.shape == (2, 17, 128) and out.dtype == torch.float32
    assert torch.equal(out, comfy.encode_image(images))


@torch.no_grad()
def test_forward_matches_a_plain_functional_vit_and_stops_before_the_last_block():
    sd = convert_state_dict(tiny_state_dict(seed=2))
    model = clip_vision_from_state_dict(sd)
    pixels = torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    x = F.conv2d(pixels, sd["patch_embedding.weight"], stride=14).flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_embedding"], x], 1) + sd["pos_embedding"]
    x = F.layer_norm(x, (128,), sd["pre_norm.weight"], sd["pre_norm.bias"], 1e-5)
    for i in range(2):  # 3 blocks in the file, features after 2
        p = f"transformer.{i}."
        h = F.layer_norm(x, (128,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-5)
        q, k, v = F.linear(h, sd[p + "attn.to_qkv.weight"], sd[p + "attn.to_qkv.bias"]).view(1, 17, 3, 2, 64).unbind(2)
        w = torch.softmax(torch.einsum("bihd,bjhd->bhij", q, k) / 8.0, dim=-1)
        h = torch.einsum("bhij,bjhd->bihd", w, v).reshape(1, 17, 128)
        x = x + F.linear(h, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, (128,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-5)
        h = F.gelu(F.linear(h, sd[p + "mlp.0.weight"], sd[p + "mlp.0.bias"]))
        x = x + F.linear(h, sd[p + "mlp.2.weight"], sd[p + "mlp.2.bias"])
    torch.testing.assert_close(model(pixels), x, atol=1e-5, rtol=1e-5)


def test_preprocess_matches_hand_computation():
    gen = torch.Generator().manual_seed(3)
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    # same size: only the normalisation
    image = torch.rand(1, 224, 224, 3, generator=gen)
    expected = (image[0].permute(2, 0, 1) - mean[:, None, None]) / std[:, None, None]
    torch.testing.assert_close(preprocess(image)[0], expected, atol=1e-6, rtol=1e-6)
    # 2x bicubic downscale (A = -0.75, half-pixel centres): taps at -1..2 around 2i with weights
    # w(1.5), w(0.5), w(0.5), w(1.5) = -0.09375, 0.59375, 0.59375, -0.09375
    big = torch.rand(1, 448, 448, 3, generator=gen)
    taps = torch.tensor([-0.09375, 0.59375, 0.59375, -0.09375])
    out = preprocess(big)
    for i, j, c in ((10, 20, 0), (100, 7, 1), (223 - 5, 111, 2)):
        patch = big[0, 2 * i - 1 : 2 * i + 3, 2 * j - 1 : 2 * j + 3, c]
        value = (taps[:, None] * taps[None, :] * patch).sum()
        assert abs(out[0, c, i, j].item() - ((value - mean[c]) / std[c]).item()) < 1e-5
    # a constant image stays constant (no crop, weights sum to 1); RGBA drops alpha
    flat = torch.full((2, 300, 500, 4), 0.25)
    torch.testing.assert_close(preprocess(flat), ((0.25 - mean) / std).view(1, 3, 1, 1).expand(2, 3, 224, 224))
    with pytest.raises(SkyReelsInputError, match=r"\[B, H, W, 3\]"):
        preprocess(torch.rand(1, 3, 64, 64))


def test_wrong_file_and_missing_keys_raise_checkpoint_errors():
    with pytest.raises(CheckpointError, match="not a CLIP vision model"):
        clip_vision_from_state_dict({"token_embedding.weight": torch.zeros(4, 4)})
    state = tiny_state_dict(layout="comfy")
    del state["vision_model.encoder.layers.1.self_attn.v_proj.weight"]
    with pytest.raises(CheckpointError, match="incomplete"):
        clip_vision_from_state_dict(state)
    state = tiny_state_dict(layout="wan")
    del state["visual.transformer.2.mlp.2.bias"]
    with pytest.raises(CheckpointError, match="Missing 1 keys: transformer.2.mlp.2.bias"):
        clip_vision_from_state_dict(state)
