"""P6: MMAudio 44.1 kHz mel front-end + mel VAE (hidden 32) against the reference outputs (case.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skyreels_core.checkpoints.io import read_state_dict
from skyreels_core.models.audio_codec import LATENT_RATE, SAMPLES_PER_LATENT, load_audio_vae
from skyreels_core.models.audio_vae import (
    DATA_MEAN_128D,
    DATA_STD_128D,
    AudioVAEConfig,
    MelConverter,
    mel_filterbank,
)

FOLDER = Path(__file__).parent / "fixtures" / "P6_mmaudio_vae_44k"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convolutions: one thread avoids OpenMP spinning on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case():
    return json.loads((FOLDER / "case.json").read_text())


@pytest.fixture(scope="module")
def io():
    return load_file(str(FOLDER / "io.safetensors"))


@pytest.fixture(scope="module")
def vae():
    """Loaded the way users load v1-44.pth: read_state_dict + load_audio_vae (weight norm removed)."""
    return load_audio_vae(FOLDER / "weights.safetensors")


@pytest.fixture(scope="module")
def mel_converter(case):
    args = case["mel_converter_args"]
    return MelConverter(args["sampling_rate"], args["n_fft"], args["num_mels"], args["hop_size"], args["win_size"],
                        args["fmin"], args["fmax"])  # fmt: skip


def _mel_tol(case):
    tol = case["tolerance"]["mel*, stft*"]
    return dict(atol=tol["atol"], rtol=tol["rtol"])


def _vae_tol(case):
    tol = case["tolerance"]["posterior*, moments, decoded*"]
    return dict(atol=tol["atol"], rtol=tol["rtol"])


def test_mel_basis_is_the_librosa_slaney_filterbank(case, io):
    args = case["mel_converter_args"]
    basis = mel_filterbank(args["sampling_rate"], args["n_fft"], args["num_mels"], args["fmin"], args["fmax"])
    torch.testing.assert_close(basis, io["mel_basis"], **_mel_tol(case))
    # fmax None means sr/2 (BigVGAN's config writes null)
    torch.testing.assert_close(mel_filterbank(44100, 2048, 128, 0, None), basis, atol=0, rtol=0)


def test_stft_intermediates_and_mel(case, io, mel_converter):
    torch.testing.assert_close(mel_converter.hann_window, io["hann_window"], atol=0, rtol=0)
    torch.testing.assert_close(mel_converter.padded_input(io["wave"]), io["inter.stft_input_padded"], **_mel_tol(case))
    torch.testing.assert_close(mel_converter.magnitude(io["wave"]), io["inter.stft_magnitude"], **_mel_tol(case))
    torch.testing.assert_close(mel_converter(io["wave"]), io["mel"], **_mel_tol(case))


def test_mel_exact_1p5s_has_floor_frames(case, io, mel_converter):
    mel = mel_converter(io["wave_exact_1p5s"])
    assert mel.shape[-1] == mel_converter.num_frames(66150) == 129
    torch.testing.assert_close(mel, io["mel_exact_1p5s"], **_mel_tol(case))


def test_config_inferred_from_released_layout(case):
    sd = read_state_dict(FOLDER / "weights.safetensors")
    cfg = AudioVAEConfig.from_state_dict(sd)
    args = case["constructor_args"]
    assert (cfg.data_dim, cfg.embed_dim, cfg.hidden_dim) == (args["data_dim"], args["embed_dim"], args["hidden_dim"])
    assert (cfg.ch_mult, cfg.num_res_blocks, cfg.down_layers) == ((1, 2, 4), 2, (0,))
    assert torch.equal(sd["data_mean"].flatten(), torch.tensor(DATA_MEAN_128D))
    assert torch.equal(sd["data_std"].flatten(), torch.tensor(DATA_STD_128D))


def test_effective_weights_after_remove_weight_norm(io, vae):
    for key in ("encoder.conv_in.weight", "decoder.conv_out.weight"):
        module = vae.get_submodule(key.rsplit(".", 1)[0])
        assert module.weight_norm_removed
        torch.testing.assert_close(module.weight, io[f"inter.effective_weight.{key}"], atol=1e-6, rtol=1e-5)


def test_posterior_from_recorded_mel(case, io, vae):
    tol = _vae_tol(case)
    torch.testing.assert_close(vae.normalize(io["mel"]), io["mel_normalized"], **tol)
    with torch.no_grad():
        post = vae.encode(io["mel"])
    torch.testing.assert_close(torch.cat([post.mean, post.logvar], 1), io["moments"], **tol)
    torch.testing.assert_close(post.mean, io["posterior_mean"], **tol)
    torch.testing.assert_close(post.logvar, io["posterior_logvar_clamped"], **tol)
    torch.testing.assert_close(post.std, io["posterior_std"], **tol)
    torch.testing.assert_close(post.mean.transpose(1, 2), io["latents_BTC_mean"], **tol)


def test_seeded_sample_matches_the_reference_rng_stream(case, io, vae):
    """z = mean + std * torch.empty_like(mean).normal_(generator=Generator().manual_seed(77)) (MMAudio)."""
    with torch.no_grad():
        post = vae.encode(io["mel"])
    z = post.sample(torch.Generator().manual_seed(77))
    torch.testing.assert_close(z, io["z_sample_seed77"], **_vae_tol(case))
    assert not torch.allclose(post.sample(torch.Generator().manual_seed(78)), io["z_sample_seed77"], atol=1e-2)


def test_decode(case, io, vae):
    tol = _vae_tol(case)
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(io["posterior_mean"]), io["decoded_mel_from_mean"], **tol)
        torch.testing.assert_close(vae.decode(io["posterior_mean"], unnormalize=False), io["decoded_raw_from_mean"],
                                   **tol)  # fmt: skip
        torch.testing.assert_close(vae.decode(io["z_sample_seed77"]), io["decoded_mel_from_sample"], **tol)


def test_full_chain_from_waveform(case, io, vae, mel_converter):
    tol = _vae_tol(case)
    with torch.no_grad():
        post = vae.encode(mel_converter(io["wave"]))
        torch.testing.assert_close(post.mean, io["posterior_mean"], **tol)
        torch.testing.assert_close(vae.decode(post.mean), io["decoded_mel_from_mean"], **tol)


def test_exact_1p5s_chain_floors_odd_lengths(case, io, vae, mel_converter):
    tol = _vae_tol(case)
    with torch.no_grad():
        post = vae.encode(mel_converter(io["wave_exact_1p5s"]))
        assert post.mean.shape == (1, 40, 64)
        torch.testing.assert_close(post.mean, io["posterior_mean_exact_1p5s"], **tol)
        decoded = vae.decode(post.mean)
    assert decoded.shape == (1, 128, 128)
    torch.testing.assert_close(decoded, io["decoded_mel_from_mean_exact_1p5s"], **tol)


def test_latent_rate_facts(case):
    assert LATENT_RATE == case["latent_rate_per_second"]
    shapes = case["released_8s_shapes"]
    assert shapes["samples"] == shapes["latents"] * SAMPLES_PER_LATENT
    assert MelConverter().num_frames(shapes["samples"]) == shapes["mel_frames"]
