"""P2 golden parity: Wan2.1 causal video VAE (tiny dim-8 config) against the SkyReels-V2 reference outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.checkpoints.io import load_strict, read_state_dict
from skyreels_core.models.video_vae import LATENT_MEAN, LATENT_STD, VAE3DConfig, WanVAE, load_video_vae


@pytest.fixture(scope="module")
def case():
    folder = Path(__file__).resolve().parent / "fixtures" / "P2_vae"
    return {
        "json": json.loads((folder / "case.json").read_text()),
        "io": load_file(str(folder / "io.safetensors")),
        "weights": folder / "weights.safetensors",
    }


@pytest.fixture(scope="module")
def vae(case):
    sd = read_state_dict(case["weights"])
    config = VAE3DConfig.from_state_dict(sd)
    args = case["json"]["constructor_args"]
    assert config == VAE3DConfig.TINY
    assert (config.dim, config.z_dim, list(config.dim_mult)) == (args["dim"], args["z_dim"], args["dim_mult"])
    model = WanVAE(config)
    load_strict(model, sd, file=str(case["weights"]), kind="Wan2.1 video VAE")
    return model.eval().requires_grad_(False)


def _close(case, name, actual):
    expected = case["io"][name]
    tol = case["json"]["tolerance"]["latent*" if name.startswith("latent") else "decoded*"]
    assert actual.shape == expected.shape, name
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, atol=tol["atol"], rtol=tol["rtol"], msg=name)


def test_constants_match_fixture(case):
    assert torch.equal(torch.tensor(LATENT_MEAN, dtype=torch.float32), case["io"]["latents_mean"])
    assert torch.equal(torch.tensor(LATENT_STD, dtype=torch.float32), case["io"]["latents_std"])


def test_encode_moments_raw_and_normalised(case, vae):
    video = case["io"]["video"]
    with torch.no_grad():
        moments = vae.encode_moments(video)
        tol = case["json"]["tolerance"]["enc_conv1_out_mu_logvar"]
        torch.testing.assert_close(moments, case["io"]["enc_conv1_out_mu_logvar"], **tol)
        _close(case, "latent_mu_raw", vae.encode_raw(video))
        _close(case, "latent_normalized", vae.encode(video))


def test_decode_clamped_unclamped_and_from_raw(case, vae):
    z = case["io"]["latent_normalized"]
    with torch.no_grad():
        _close(case, "decoded", vae.decode(z))
        _close(case, "decoded_unclamped", vae.decode_raw(vae.denormalize_latent(z)))
        _close(case, "decoded_from_raw_unclamped", vae.decode_raw(case["io"]["latent_mu_raw"]))


def test_single_image_path(case, vae):
    with torch.no_grad():
        latent = vae.encode(case["io"]["image_1frame"])
        _close(case, "latent_normalized_1frame", latent)
        _close(case, "decoded_1frame", vae.decode(case["io"]["latent_normalized_1frame"]))


def test_causality(case, vae):
    io = case["io"]
    with torch.no_grad():
        first5 = vae.encode(io["video_first5"])
        _close(case, "latent_normalized_first5frames", first5)
        _close(case, "decoded_first2latents", vae.decode(io["latent_normalized"][:, :, :2]))
        # our own full-length outputs restricted to the prefix equal the prefix-only outputs
        torch.testing.assert_close(vae.encode(io["video"])[:, :, :2], first5, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(vae.decode(io["latent_normalized"])[:, :, :5],
                                   io["decoded_first2latents"], atol=1e-5, rtol=1e-5)


def test_load_video_vae_from_fixture_file(case, vae):
    loaded = load_video_vae(case["weights"])
    assert loaded.config == VAE3DConfig.TINY
    for key, value in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        _close(case, "latent_normalized_1frame", loaded.encode(case["io"]["image_1frame"]))
