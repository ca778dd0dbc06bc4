"""P5: umT5 encoder (Wan naming) against SkyReels-V2's T5Encoder on a tiny random-weight config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.checkpoints.io import load_strict, read_state_dict
from skyreels_core.encoders.umt5 import UMT5Config, UMT5Encoder, relative_position_bucket, umt5_from_state_dict

FOLDER = Path(__file__).resolve().parent / "fixtures" / "P5_t5"


@pytest.fixture(scope="module")
def case():
    folder = FOLDER
    spec = json.loads((folder / "case.json").read_text())
    io = load_file(str(folder / "io.safetensors"))
    state = read_state_dict(folder / "weights.safetensors")
    cfg = UMT5Config.from_state_dict(state)
    model = UMT5Encoder(cfg)
    load_strict(model, state, file=str(folder / "weights.safetensors"), kind="umT5 text encoder")
    return spec, io, model.eval(), folder


def _tol(spec):
    tol = spec["tolerance"]["hidden*"]
    return dict(atol=tol["atol"], rtol=tol["rtol"])


def test_config_inferred_from_weights_matches_constructor_args(case):
    spec, _, model, _ = case
    args = spec["constructor_args"]
    cfg = model.cfg
    assert (cfg.vocab, cfg.dim, cfg.dim_attn, cfg.dim_ffn) == (
        args["vocab"],
        args["dim"],
        args["dim_attn"],
        args["dim_ffn"],
    )
    assert (cfg.num_heads, cfg.num_layers, cfg.num_buckets, cfg.shared_pos) == (
        args["num_heads"],
        args["num_layers"],
        args["num_buckets"],
        args["shared_pos"],
    )
    assert cfg == UMT5Config.TINY


def test_relative_buckets_exact(case):
    _, io, _, _ = case
    assert torch.equal(relative_position_bucket(40, 40, 32, 128), io["rel_buckets_L40"])


@torch.no_grad()
def test_hidden_and_intermediates(case):
    spec, io, model, _ = case
    captured = {}
    hooks = []
    for i, block in enumerate(model.blocks):
        hooks.append(
            block.register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(f"inter.block{i}_out", out))
        )
        hooks.append(
            block.pos_embedding.register_forward_hook(
                lambda m, a, out, i=i: captured.__setitem__(f"inter.block{i}_pos_bias", out)
            )
        )
    try:
        hidden = model(io["ids"], io["mask"])
    finally:
        for h in hooks:
            h.remove()
    for name in ("inter.block0_pos_bias", "inter.block1_pos_bias", "inter.block0_out", "inter.block1_out"):
        torch.testing.assert_close(captured[name], io[name], **_tol(spec))
    torch.testing.assert_close(hidden, io["hidden"], **_tol(spec))
    torch.testing.assert_close(model.encode(io["ids"], io["mask"]), io["hidden_masked"], **_tol(spec))
    assert torch.all(model.encode(io["ids"], io["mask"])[0, 10:] == 0)


@torch.no_grad()
def test_batch2(case):
    spec, io, model, _ = case
    torch.testing.assert_close(model(io["ids_b2"], io["mask_b2"]), io["hidden_b2"], **_tol(spec))
    torch.testing.assert_close(model.encode(io["ids_b2"], io["mask_b2"]), io["hidden_b2_masked"], **_tol(spec))


@torch.no_grad()
def test_masked_ids_do_not_change_real_rows(case):
    spec, io, model, _ = case
    out = model(io["ids_padvariant"], io["mask"])
    torch.testing.assert_close(out, io["hidden_padvariant"], **_tol(spec))
    torch.testing.assert_close(out[0, :10], io["hidden"][0, :10], **_tol(spec))
    assert not torch.allclose(out[0, 10:], io["hidden"][0, 10:])


@torch.no_grad()
def test_loader_path_gives_the_same_numbers(case):
    spec, io, _, folder = case
    model = umt5_from_state_dict(read_state_dict(folder / "weights.safetensors"), file="weights.safetensors")
    torch.testing.assert_close(model.encode(io["ids"], io["mask"]), io["hidden_masked"], **_tol(spec))
