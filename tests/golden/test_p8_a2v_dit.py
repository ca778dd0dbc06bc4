"""P8: the SkyReels-V3 A2V DiT (Wan2.1-I2V + speech adapter) forward against the reference (tiny random weights,
float32, CPU). The fixture was recorded from skyreels_v3/modules/transformer_a2v.py with torch SDPA standing in
for flash attention; case.json says how."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.checkpoints.io import load_strict, read_state_dict
from skyreels_core.models.wan_dit import WanDiTConfig, WanModel

FOLDER = Path(__file__).parent / "fixtures" / "p8_a2v"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case():
    spec = json.loads((FOLDER / "case.json").read_text())
    sd = {k: v.float() for k, v in read_state_dict(FOLDER / "weights.safetensors").items()}
    config = WanDiTConfig.from_state_dict(sd, num_heads=spec["constructor_args"]["num_heads"])
    model = WanModel(config)
    load_strict(model, sd, file=str(FOLDER / "weights.safetensors"), kind="Wan A2V DiT")
    return spec, model.eval(), load_file(str(FOLDER / "io.safetensors"))


def _tolerance(spec: dict, name: str) -> dict:
    patterns = sorted((p for p in spec["tolerance"] if fnmatch.fnmatch(name, p)), key=len, reverse=True)
    tol = spec["tolerance"][patterns[0]]
    return dict(atol=tol["atol"], rtol=tol["rtol"])


def test_config_inferred_from_weights(case):
    spec, model, _ = case
    args, c = spec["constructor_args"], model.config
    assert c.audio_adapter and c.is_i2v
    names = ("in_dim", "dim", "ffn_dim", "freq_dim", "text_dim", "out_dim", "num_heads", "num_layers", "eps",
             "audio_window")
    assert {n: getattr(c, n) for n in names} == {n: args[n] for n in names}
    assert (c.audio_hidden_dim, c.audio_token_dim, c.audio_tokens, c.vae_temporal_stride) == (
        args["intermediate_dim"], args["output_dim"], args["context_tokens"], args["vae_scale"])


def test_audio_tokens_match_reference(case):
    spec, model, io = case
    with torch.no_grad():
        tokens = model.embed_audio(io["audio"], 1)
    torch.testing.assert_close(tokens, io["audio_tokens"], **_tolerance(spec, "audio_tokens"))


def test_every_call_matches_reference(case):
    spec, model, io = case
    assert len(spec["calls"]) == 3
    for call in spec["calls"]:
        name = call["output"]
        kwargs = {arg: io[tensor] for arg, tensor in call["inputs"].items()}
        with torch.no_grad():
            out = model(**kwargs)
        torch.testing.assert_close(out, io[name], **_tolerance(spec, name), msg=lambda m, n=name: f"{n}: {m}")
    # the speech matters: the two audio inputs give different outputs
    assert (io["out_t741"] - io["out_t741_audio_b"]).abs().max() > 0.1
