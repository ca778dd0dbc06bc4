"""P1: the Wan/SkyReels-V2 T2V DiT forward against the reference (tiny random weights, float32, CPU)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.checkpoints.io import load_strict, read_state_dict
from skyreels_core.models.wan_dit import WanDiTConfig, WanModel

FOLDER = Path(__file__).parent / "fixtures" / "P1_dit_t2v"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matmuls: one thread is ~100x faster than OpenMP spinning on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case():
    folder = FOLDER
    spec = json.loads((folder / "case.json").read_text())
    sd = read_state_dict(folder / "weights.safetensors")
    config = WanDiTConfig.from_state_dict(sd, num_heads=2)  # the fixture uses head_dim 64
    model = WanModel(config)
    load_strict(model, sd, file=str(folder / "weights.safetensors"), kind="Wan DiT")
    return spec, model.eval(), load_file(str(folder / "io.safetensors"))


def _tolerance(spec: dict, name: str) -> dict:
    # More specific patterns ("*_bf16blockout") win over "out*".
    patterns = sorted((p for p in spec["tolerance"] if fnmatch.fnmatch(name, p)), key=len, reverse=True)
    tol = spec["tolerance"][patterns[0]]
    return dict(atol=tol["atol"], rtol=tol["rtol"])


def _assert_close(spec, name, got, want):
    torch.testing.assert_close(got, want, **_tolerance(spec, name), msg=lambda m: f"{name}: {m}")


def test_config_inferred_from_weights(case):
    spec, model, _ = case
    args = spec["constructor_args"]
    names = ("model_type", "in_dim", "dim", "ffn_dim", "freq_dim", "text_dim", "out_dim", "num_heads", "num_layers")
    names += ("qk_norm", "cross_attn_norm", "inject_sample_info", "eps")
    assert {n: getattr(model.config, n) for n in names} == {n: args[n] for n in names}
    assert list(model.config.patch_size) == args["patch_size"]


def test_every_call_matches_reference(case):
    spec, model, io = case
    assert len(spec["calls"]) == 4
    for call in spec["calls"]:
        name = call["output"]
        model.residual_dtype = torch.bfloat16 if name.endswith("_bf16blockout") else None
        kwargs = {arg: io[tensor] for arg, tensor in call["inputs"].items()}
        with torch.no_grad():
            out = model(**kwargs)
        assert out.dtype == torch.float32
        _assert_close(spec, name, out, io[name])
    model.residual_dtype = None


def test_intermediates_match_reference(case):
    spec, model, io = case
    first = spec["calls"][0]["inputs"]
    captured = {}

    def hook(name):
        return lambda module, args, out: captured.__setitem__(name, out)

    modules = {"patch_embedding_out": model.patch_embedding, "text_embedding_out": model.text_embedding}
    modules |= {f"block{i}_out": block for i, block in enumerate(model.blocks)}
    modules["head_out_tokens"] = model.head
    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            model(io[first["x"]], io[first["t"]], io[first["context"]])
            e, e0 = model.embed_time(io[first["t"]])
    finally:
        for h in handles:
            h.remove()
    captured["time_embedding_out_e"] = e.flatten(0, 1)
    captured["time_projection_out_e0"] = e0.transpose(1, 2).flatten(2).flatten(0, 1)  # [B*G, 6*D]
    inter = sorted(k for k in io if k.startswith("inter."))
    assert len(inter) == 7
    for key in inter:
        _assert_close(spec, key, captured[key.removeprefix("inter.")], io[key])
