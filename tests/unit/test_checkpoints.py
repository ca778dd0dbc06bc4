"""DiT checkpoint loading: every released layout, kind detection, diffusers renames, bad files."""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from skyreels_core.checkpoints.convert import (
    WAN_DIFFUSERS_RENAMES,
    detect_dit_layout,
    to_diffusers_wan_keys,
    to_original_wan_keys,
)
from skyreels_core.checkpoints.detect import KIND_DESCRIPTIONS, KINDS, detect_kind, wrong_kind_message
from skyreels_core.checkpoints.fp8 import FP8Linear
from skyreels_core.errors import CheckpointError
from skyreels_core.models.wan_dit_loader import WAN_CONFIG_KEY, load_dit

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "fixtures"
DM = "diffusion_models"


def _maker():
    spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" / "make_tiny_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def maker():
    return _maker()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, maker):
    out = tmp_path_factory.mktemp("models")
    maker.make_all(out, only=[f"{DM}/"])
    return out / DM


@pytest.fixture(scope="module")
def inputs(maker):
    g = torch.Generator().manual_seed(0)
    text_dim = maker._wan_config("t2v").text_dim
    return torch.randn(1, 16, 2, 4, 4, generator=g), torch.tensor([741.0]), torch.randn(1, 6, text_dim, generator=g)


@pytest.fixture(scope="module")
def reference(tiny, inputs):
    model = load_dit(tiny / "skyreels_v2_t2v_tiny.safetensors", dtype=torch.float32)
    with torch.no_grad():
        return model.state_dict(), model(*inputs)


def _run(model, inputs):
    with torch.no_grad():
        return model(*inputs)


EXACT_LAYOUTS = [
    "skyreels_v2_t2v_tiny_comfy.safetensors",
    "skyreels_v2_t2v_tiny_diffusers.safetensors",
    "skyreels_v2_t2v_tiny_bf16.safetensors",
    "skyreels_v2_t2v_tiny_sharded",
    "skyreels_v2_t2v_tiny_sharded/diffusion_pytorch_model.safetensors.index.json",
    "skyreels_v2_t2v_tiny_sharded/diffusion_pytorch_model-00002-of-00002.safetensors",
]


@pytest.mark.parametrize("name", EXACT_LAYOUTS)
def test_every_layout_loads_to_the_same_model(tiny, inputs, reference, name):
    ref_state, ref_out = reference
    model = load_dit(tiny / name, dtype=torch.float32)
    state = model.state_dict()
    assert state.keys() == ref_state.keys()
    for key in ref_state:
        assert torch.equal(state[key], ref_state[key]), key
    assert torch.equal(_run(model, inputs), ref_out)


def test_pth_layout_loads_to_the_same_model(tiny, tmp_path, inputs, reference):
    state = load_file(tiny / "skyreels_v2_t2v_tiny.safetensors")
    torch.save(state, tmp_path / "model.pth")
    assert torch.equal(_run(load_dit(tmp_path / "model.pth", dtype=torch.float32), inputs), reference[1])


def test_default_dtype_is_the_file_dtype(tiny):
    assert load_dit(tiny / "skyreels_v2_t2v_tiny_bf16.safetensors").blocks[0].ffn[0].weight.dtype == torch.bfloat16
    assert load_dit(tiny / "skyreels_v2_t2v_tiny.safetensors").blocks[0].ffn[0].weight.dtype == torch.float32


@pytest.mark.parametrize("name, weight_dtype", [
    ("skyreels_v2_t2v_tiny_fp8_e4m3fn.safetensors", None),
    ("skyreels_v2_t2v_tiny_fp8_scaled.safetensors", None),
    ("skyreels_v2_t2v_tiny.safetensors", "fp8_e4m3fn"),
    ("skyreels_v2_t2v_tiny_bf16.safetensors", "fp8_e5m2"),
])
def test_fp8_layouts_stay_fp8_and_match_within_fp8_tolerance(tiny, inputs, reference, name, weight_dtype):
    model = load_dit(tiny / name, dtype=torch.float32, weight_dtype=weight_dtype)
    q = model.blocks[0].self_attn.q
    assert isinstance(q, FP8Linear) and q.weight.element_size() == 1
    assert model.patch_embedding.weight.dtype == torch.float32  # only block Linears are fp8
    out, ref = _run(model, inputs), reference[1]
    err = (out - ref).abs().max().item()
    assert 0 < err < 0.05 * ref.abs().max().item()


def test_fp8_file_computes_in_bf16_by_default(tiny, inputs, reference):
    model = load_dit(tiny / "skyreels_v2_t2v_tiny_fp8_scaled.safetensors")
    assert model.compute_dtype == torch.bfloat16
    assert (_run(model, inputs) - reference[1]).abs().max() < 0.05 * reference[1].abs().max()


def test_i2v_and_df_variants_are_detected(tiny):
    i2v = load_dit(tiny / "skyreels_v2_i2v_tiny.safetensors")
    assert i2v.config.model_type == "i2v" and i2v.config.in_dim == 36 and hasattr(i2v, "img_emb")
    df = load_dit(tiny / "skyreels_v2_df_tiny.safetensors")
    assert df.config.inject_sample_info and df.config.model_type == "t2v"


def test_attn_backend_and_device_are_applied(tiny):
    model = load_dit(tiny / "skyreels_v2_t2v_tiny.safetensors", attn_backend="sdpa", device="cpu")
    assert model.attn_backend == "sdpa" and not model.training
    assert all(not p.requires_grad and p.device.type == "cpu" for p in model.parameters())


def test_golden_p1_weights_through_the_loader(tmp_path):
    """The reference DiT (head_dim 64, so num_heads comes from metadata) in diffusers + ComfyUI layouts."""
    case = json.loads((GOLDEN / "P1_dit_t2v" / "case.json").read_text())
    io = load_file(GOLDEN / "P1_dit_t2v" / "io.safetensors")
    state = load_file(GOLDEN / "P1_dit_t2v" / "weights.safetensors")
    heads = str(case["constructor_args"]["num_heads"])
    save_file({f"model.diffusion_model.{k}": v for k, v in to_diffusers_wan_keys(state).items()},
              tmp_path / "p1.safetensors", metadata={WAN_CONFIG_KEY: json.dumps({"num_heads": int(heads)})})
    model = load_dit(tmp_path / "p1.safetensors", dtype=torch.float32)
    assert model.config.num_heads == 2 and model.config.dim == 128
    tol = case["tolerance"]["out*"]
    out = _run(model, (io["x"], io["t_741"], io["context"]))
    torch.testing.assert_close(out, io["out_t741"], atol=tol["atol"], rtol=tol["rtol"])


def test_metadata_config_is_checked_against_the_shapes_before_building(tiny, tmp_path):
    state = load_file(tiny / "skyreels_v2_t2v_tiny.safetensors")
    stored = json.loads(safe_open(tiny / "skyreels_v2_t2v_tiny.safetensors", "pt").metadata()[WAN_CONFIG_KEY])
    cases = [({"num_layers": 4000}, r"num_layers = 4000 .*tensors say 2"), ({"num_heads": 0}, "num_heads = 0"),
             ({"eps": "tiny"}, "eps = 'tiny'"), ({"bogus": 1}, "bogus"), ({"num_heads": 3}, "3 heads")]
    for i, (claim, message) in enumerate(cases):
        save_file(state, tmp_path / f"bad{i}.safetensors", metadata={WAN_CONFIG_KEY: json.dumps(stored | claim)})
        with pytest.raises(CheckpointError, match=f"bad{i}.safetensors: .*{message}"):
            load_dit(tmp_path / f"bad{i}.safetensors")
    save_file(state, tmp_path / "json.safetensors", metadata={WAN_CONFIG_KEY: "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_dit(tmp_path / "json.safetensors")


# ------------------------------------------------------------------ diffusers renames


def test_diffusers_round_trip_is_exact(maker):
    for variant in ("t2v", "i2v", "df"):
        state = maker.tiny_dit_state_dict(variant, marker=False)
        diffusers = to_diffusers_wan_keys(state)
        assert detect_dit_layout(diffusers) == "diffusers" and detect_dit_layout(state) == "original"
        back = to_original_wan_keys(diffusers)
        assert back.keys() == state.keys()
        assert all(back[k] is state[k] for k in state)


def test_diffusers_names_follow_the_diffusers_model(maker):
    """Key names of diffusers' WanTransformer3DModel / SkyReelsV2Transformer3DModel (research/skyreels_v2.md §3)."""
    names = set(to_diffusers_wan_keys(maker.tiny_dit_state_dict("i2v", marker=False)))
    names |= set(to_diffusers_wan_keys(maker.tiny_dit_state_dict("df", marker=False)))
    expected = {
        "patch_embedding.weight", "scale_shift_table", "proj_out.weight",
        "condition_embedder.time_embedder.linear_1.weight", "condition_embedder.time_embedder.linear_2.bias",
        "condition_embedder.text_embedder.linear_1.weight", "condition_embedder.time_proj.weight",
        "condition_embedder.image_embedder.norm1.weight", "condition_embedder.image_embedder.ff.net.0.proj.weight",
        "condition_embedder.image_embedder.ff.net.2.weight", "condition_embedder.image_embedder.norm2.bias",
        "blocks.1.scale_shift_table", "blocks.0.attn1.to_q.weight", "blocks.0.attn1.to_out.0.bias",
        "blocks.0.attn1.norm_q.weight", "blocks.0.attn2.to_k.weight", "blocks.0.attn2.norm_k.weight",
        "blocks.0.attn2.add_k_proj.weight", "blocks.0.attn2.add_v_proj.bias", "blocks.0.attn2.norm_added_k.weight",
        "blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.1.ffn.net.0.proj.weight", "blocks.1.ffn.net.2.bias",
        "fps_embedding.weight", "fps_projection.net.0.proj.weight", "fps_projection.net.2.bias",
    }
    assert expected <= names
    assert not any(re.search(r"(self_attn|cross_attn|modulation|norm3|ffn\.0|head\.|_embedding\.\d)", k) for k in names)


def test_norm2_norm3_swap_and_prefixes():
    t = torch.zeros(1)
    assert set(to_original_wan_keys({"model.diffusion_model.blocks.3.norm2.weight": t,
                                     "model.diffusion_model.blocks.3.attn1.to_q.weight": t})) == \
        {"blocks.3.norm3.weight", "blocks.3.self_attn.q.weight"}
    assert set(to_diffusers_wan_keys({"diffusion_model.blocks.0.norm3.bias": t, "blocks.0.norm2.x": t})) == \
        {"blocks.0.norm2.bias", "blocks.0.norm3.x"}


def test_rename_table_is_a_bijection():
    originals = [a for a, _ in WAN_DIFFUSERS_RENAMES]
    targets = [b for _, b in WAN_DIFFUSERS_RENAMES]
    assert len(set(originals)) == len(originals) and len(set(targets)) == len(targets)


# ------------------------------------------------------------------ kind detection


def _golden_keys(case):
    with safe_open(str(GOLDEN / case / "weights.safetensors"), "pt") as f:
        return list(f.keys())


SYNTHETIC_KEYS = {
    "wan_dit": ["condition_embedder.time_embedder.linear_1.weight", "blocks.0.attn1.to_q.weight",
                "blocks.0.attn2.to_q.weight", "scale_shift_table"],
    "wan_vae": ["quant_conv.weight", "encoder.conv_in.weight", "decoder.mid_block.resnets.0.norm1.gamma"],
    "umt5": ["shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
             "encoder.block.0.layer.1.DenseReluDense.wi_0.weight", "encoder.final_layer_norm.weight", "scaled_fp8"],
    "clip_vision": ["vision_model.embeddings.patch_embedding.weight", "vision_model.pre_layrnorm.weight",
                    "vision_model.encoder.layers.0.self_attn.q_proj.weight", "visual_projection.weight"],
    "wav2vec2": ["wav2vec2.feature_extractor.conv_layers.0.conv.weight", "wav2vec2.encoder.layers.0.attention.k_proj.weight",
                 "wav2vec2.feature_projection.projection.weight", "wav2vec2.masked_spec_embed"],
    "av_dit": ["blocks.0.self_attn.q.weight", "blocks.0.cross_attn.q.weight", "head.modulation",
               "audio_blocks.0.self_attn.q.weight", "audio_patch_embedding.weight"],
}
WAN_CLIP_PTH = ["log_scale", "visual.patch_embedding.weight", "visual.cls_embedding", "visual.pos_embedding",
                "visual.transformer.0.attn.to_qkv.weight", "visual.pre_norm.weight",
                "textual.token_embedding.weight"]
OPEN_CLIP = ["visual.conv1.weight", "visual.transformer.resblocks.0.attn.in_proj_weight", "logit_scale"]
A2V_DIT = ["head.modulation", "blocks.0.self_attn.q.weight", "blocks.0.cross_attn.q.weight",
           "blocks.0.audio_cross_attn.q_linear.weight", "audio_proj.proj1.weight"]


@pytest.mark.parametrize("case, kind", [
    ("P1_dit_t2v", "wan_dit"), ("P2_vae", "wan_vae"), ("P5_t5", "umt5"),
    ("P6_mmaudio_vae_44k", "mmaudio_vae"), ("P7_bigvgan_v2_44k_tiny", "bigvgan"),
])
def test_detect_kind_on_reference_files(case, kind):
    keys = _golden_keys(case)
    assert detect_kind(keys) == kind
    assert detect_kind([f"model.diffusion_model.{k}" for k in keys]) == kind


@pytest.mark.parametrize("kind", sorted(SYNTHETIC_KEYS))
def test_detect_kind_on_other_layouts(kind):
    assert detect_kind(SYNTHETIC_KEYS[kind]) == kind


def test_detect_kind_special_cases():
    assert detect_kind(WAN_CLIP_PTH) == "clip_vision"
    assert detect_kind(OPEN_CLIP) == "clip_vision"
    assert detect_kind(A2V_DIT) == "wan_dit"  # the V3 avatar adapter is a Wan DiT with extra modules
    assert detect_kind(["generator.conv_pre.weight", "generator.ups.0.0.weight", "generator.resblocks.0.convs1.0.weight",
                        "generator.conv_post.weight"]) == "bigvgan"
    assert detect_kind([f"first_stage_model.{k}" for k in _golden_keys("P2_vae")]) == "wan_vae"
    assert detect_kind(["foo.weight", "bar.bias"]) == "unknown"
    assert detect_kind([]) == "unknown"
    assert set(KINDS) == set(KIND_DESCRIPTIONS) and "unknown" in KINDS


def test_wrong_kind_message_says_what_and_where():
    msg = wrong_kind_message("/x/wan_2.1_vae.safetensors", "wan_vae", "wan_dit")
    assert msg.startswith("wan_2.1_vae.safetensors: this file looks like a video VAE (Wan2.1 VAE)")
    assert "not a video diffusion model" in msg and msg.endswith("load it with SkyReels VAE Loader.")
    # every hint names a node that exists (display names), never "SkyReels AV Model loader"
    assert "SkyReels V4 Model Loader" in wrong_kind_message("a", "av_dit", "wan_dit")
    assert "SkyReels V4 Audio Codec Loader (as vocoder_name)" in wrong_kind_message("a", "bigvgan", "wan_vae")
    assert "SkyReels V4 Audio Codec Loader (as vae_name)" in wrong_kind_message("a", "mmaudio_vae", "wan_vae")


# ------------------------------------------------------------------ bad files


def _fails(path, *needles):
    with pytest.raises(CheckpointError) as info:
        load_dit(path)
    message = str(info.value)
    assert Path(path).name in message, message
    for needle in needles:
        assert re.search(needle, message, re.IGNORECASE), message
    return message


def test_truncated_file(tiny, tmp_path):
    data = (tiny / "skyreels_v2_t2v_tiny.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    _fails(tmp_path / "cut.safetensors", "truncated")
    (tmp_path / "header.safetensors").write_bytes(data[:100])
    _fails(tmp_path / "header.safetensors", "truncated")


def test_empty_file(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    _fails(tmp_path / "empty.safetensors", "truncated|not a safetensors")


def test_missing_file_and_incomplete_shards(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_dit(tmp_path / "nope.safetensors")
    folder = tmp_path / "sharded"
    shutil.copytree(tiny / "skyreels_v2_t2v_tiny_sharded", folder)
    (folder / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="00002-of-00002"):
        load_dit(folder / "diffusion_pytorch_model-00001-of-00002.safetensors")


@pytest.mark.parametrize("case, loader", [("P2_vae", "SkyReels VAE Loader"), ("P5_t5", "Text Encoder Loader"),
                                          ("P7_bigvgan_v2_44k_tiny", "vocoder_name")])
def test_other_model_kind_picked_as_dit(tmp_path, case, loader):
    path = tmp_path / f"{case}.safetensors"
    shutil.copy(GOLDEN / case / "weights.safetensors", path)
    _fails(path, "this file looks like", "not a video diffusion model", loader)


def test_unrecognised_file(tmp_path):
    save_file({"foo.weight": torch.zeros(2)}, tmp_path / "foo.safetensors")
    _fails(tmp_path / "foo.safetensors", "not recognise")


def test_dit_with_missing_blocks(tiny, tmp_path):
    state = load_file(tiny / "skyreels_v2_t2v_tiny.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("blocks.0.")}, tmp_path / "first.safetensors")
    _fails(tmp_path / "first.safetensors", "incomplete", r"missing blocks\.0\.")
    gap = {re.sub(r"^blocks\.1\.", "blocks.2.", k): v for k, v in state.items()}  # blocks 0 and 2, no 1
    save_file(gap, tmp_path / "gap.safetensors")
    _fails(tmp_path / "gap.safetensors", r"missing blocks \[1\]", "shard")
    save_file({k: v for k, v in state.items() if k != "blocks.1.cross_attn.k.weight"}, tmp_path / "hole.safetensors")
    _fails(tmp_path / "hole.safetensors", "Missing 1 keys", "blocks.1.cross_attn.k.weight")
    save_file({k: v for k, v in state.items() if k != "head.head.weight"}, tmp_path / "nohead.safetensors")
    _fails(tmp_path / "nohead.safetensors", "head.head.weight")


def test_unexpected_keys_and_wrong_shapes(tiny, tmp_path):
    state = load_file(tiny / "skyreels_v2_t2v_tiny.safetensors")
    save_file({**state, "blocks.0.extra.weight": torch.zeros(3)}, tmp_path / "extra.safetensors")
    _fails(tmp_path / "extra.safetensors", "Unexpected 1 keys", "blocks.0.extra.weight")
    bad = dict(state)
    bad["blocks.1.self_attn.o.weight"] = torch.zeros(256, 128)
    save_file(bad, tmp_path / "shape.safetensors")
    _fails(tmp_path / "shape.safetensors", r"blocks.1.self_attn.o.weight", r"\(256, 128\)", r"\(256, 256\)")


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"head.modulation": _Evil()}, handle)
    _fails(path, "weights_only", "refused")
    assert "this must never run" not in capsys.readouterr().out


# ------------------------------------------------------------------ the tiny maker


def test_tiny_maker_is_deterministic_and_idempotent(maker, tiny, tmp_path):
    manifest = json.loads((tiny.parent / maker.MANIFEST).read_text())
    target = tiny / "skyreels_v2_t2v_tiny.safetensors"
    stamp = target.stat().st_mtime_ns
    maker.make_all(tiny.parent, only=[f"{DM}/skyreels_v2_t2v_tiny.safetensors"])
    assert target.stat().st_mtime_ns == stamp  # up to date: not rewritten
    target.write_bytes(target.read_bytes()[:-8])  # damaged: rewritten with the recorded content
    maker.make_all(tiny.parent, only=[f"{DM}/skyreels_v2_t2v_tiny.safetensors"])
    digest = manifest["files"][f"{DM}/skyreels_v2_t2v_tiny.safetensors"][f"{DM}/skyreels_v2_t2v_tiny.safetensors"]
    import hashlib

    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    other = tmp_path / "again"
    maker.make_all(other, only=[f"{DM}/skyreels_v2_t2v_tiny_fp8_scaled.safetensors"])
    assert (other / DM / "skyreels_v2_t2v_tiny_fp8_scaled.safetensors").read_bytes() == \
        (tiny / "skyreels_v2_t2v_tiny_fp8_scaled.safetensors").read_bytes()


def test_tiny_dit_connects_to_the_tiny_encoders(maker):
    from skyreels_core.encoders.clip_vision import CLIPVisionConfig
    from skyreels_core.encoders.umt5 import UMT5Config
    from skyreels_core.models.wan_dit import TINY

    i2v = maker._wan_config("i2v")
    assert i2v.text_dim == UMT5Config.TINY.dim and i2v.image_dim == CLIPVisionConfig.TINY.dim
    assert (i2v.dim, i2v.num_heads, i2v.num_layers, i2v.head_dim) == (TINY.dim, TINY.num_heads, TINY.num_layers, 128)


def test_tiny_files_use_the_real_layouts(tiny):
    with safe_open(str(tiny / "skyreels_v2_t2v_tiny_comfy.safetensors"), "pt") as f:
        assert all(k.startswith("model.diffusion_model.") for k in f.keys())
    with safe_open(str(tiny / "skyreels_v2_t2v_tiny_fp8_scaled.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert "scaled_fp8" in keys and "blocks.0.ffn.0.scale_weight" in keys
        assert f.get_tensor("blocks.0.ffn.0.weight").dtype == torch.float8_e4m3fn
    with safe_open(str(tiny / "skyreels_v2_t2v_tiny.safetensors"), "pt") as f:
        assert any(k.startswith("model_type.") for k in f.keys())
        assert f.metadata().get("skyreels.tiny_version")
    index = json.loads((tiny / "skyreels_v2_t2v_tiny_sharded" /
                        "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {
        "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"}
    total = sum(p.stat().st_size for p in tiny.rglob("*.safetensors"))
    assert total < 104 * 2**20  # 4 MiB of it the A2V speech adapter, whose input widths are the released ones


EXPECTED_KIND = {"vae/wan_2": "wan_vae", "vae/Wan2.1": "wan_vae", "vae/mmaudio": "mmaudio_vae",
                 "vae/bigvgan": "bigvgan", "text_encoders/umt5": "umt5", "text_encoders/models_t5": "umt5",
                 "clip_vision/": "clip_vision", "audio_encoders/chinese-wav2vec2": "wav2vec2"}


def test_every_other_tiny_file_is_detected_as_its_kind(maker, tmp_path):
    from skyreels_core.checkpoints.io import read_state_dict

    # the weights only (a folder entry such as the wav2vec2 one also writes its config.json)
    paths = [p for p in maker.make_all(tmp_path, only=[p for p in EXPECTED_KIND]) if p.suffix != ".json"]
    # Every single-file entry outside diffusion_models/ (the MLLM entry is a transformers folder, not a state dict;
    # upscale_models/ are read by spandrel, test_upscale.py).
    expected = [e for e in maker.TINY_FILES if any(e.path.startswith(p) for p in EXPECTED_KIND)]
    others = [e for e in maker.TINY_FILES if not e.path.startswith((DM, "upscale_models/"))]
    assert len(expected) == len(others) - 1
    assert len(paths) == len(expected)
    for path in paths:
        rel = path.relative_to(tmp_path).as_posix()
        kind = next(k for prefix, k in EXPECTED_KIND.items() if rel.startswith(prefix))
        assert detect_kind(read_state_dict(path)) == kind, rel
        with pytest.raises(CheckpointError, match="this file looks like"):
            load_dit(path)

