"""AudioCodec (mel + MMAudio VAE + BigVGAN-v2): duration math, shapes, loaders, weight norm, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from scripts.tiny_builders import tiny_audio_vae_state_dict as tiny_vae_state_dict
from scripts.tiny_builders import tiny_vocoder_state_dict
from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models.audio_codec import (
    LATENT_RATE,
    SAMPLES_PER_LATENT,
    AudioCodec,
    AudioPlan,
    latent_frames_for,
    load_audio_codec,
    load_audio_vae,
    load_vocoder,
    num_samples_for,
    resample,
    samples_for,
)
from skyreels_core.models.audio_vae import AudioVAE, AudioVAEConfig, MelConverter
from skyreels_core.models.vocoder import BigVGAN, BigVGANConfig
from skyreels_core.shapes import AudioLatentShape
from tests.conftest import GOLDEN


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small convolutions: one thread avoids OpenMP spinning on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny VAE as safetensors, tiny vocoder as the released {'generator': sd} .pt."""
    folder = tmp_path_factory.mktemp("audio")
    save_file(tiny_vae_state_dict(), str(folder / "vae.safetensors"))
    torch.save({"generator": tiny_vocoder_state_dict()}, str(folder / "bigvgan_generator.pt"))
    return folder / "vae.safetensors", folder / "bigvgan_generator.pt"


@pytest.fixture(scope="module")
def codec(files):
    return load_audio_codec(*files)


# ---------------------------------------------------------------------------------------------------------
# duration math
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.05, 1 / 3, 1.0, 1.5, 5.0, 8.0, 10.01, 15.0])
def test_plan_covers_exactly_round_d_times_44100(seconds):
    plan = AudioPlan.for_seconds(seconds)
    assert plan.num_samples == round(seconds * 44100)
    assert plan.latent_frames == math.ceil(round(seconds * 44100) / 1024) == latent_frames_for(seconds)
    assert plan.decoded_samples == samples_for(plan.latent_frames) == 1024 * plan.latent_frames
    assert 0 <= plan.decoded_samples - plan.num_samples < SAMPLES_PER_LATENT


def test_latent_rate_facts():
    assert LATENT_RATE == 44100 / 1024 == 43.06640625
    assert latent_frames_for(5.0) == 216  # the paper reports 218 tokens for 5 s (its codec is not public)
    assert latent_frames_for(8.0) == 345  # MMAudio's released 8 s sequence config
    assert samples_for(345) == 353280


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_durations_raise(bad):
    with pytest.raises(SkyReelsInputError):
        num_samples_for(bad)


def test_zero_latent_frames_raise():
    with pytest.raises(SkyReelsInputError):
        samples_for(0)


# ---------------------------------------------------------------------------------------------------------
# codec shapes
# ---------------------------------------------------------------------------------------------------------


def test_decoded_length_is_samples_for_latent_frames(codec):
    latent = torch.randn(1, 40, 3, generator=torch.Generator().manual_seed(0))
    wave = codec.decode(latent)
    assert wave.shape == (1, 1, samples_for(3))
    assert wave.abs().max() <= 1.0 and torch.isfinite(wave).all()


def test_decode_trims_to_the_planned_duration(codec):
    plan = codec.plan(0.05)
    latent = torch.randn(1, 40, plan.latent_frames, generator=torch.Generator().manual_seed(1))
    full = codec.decode(latent)
    trimmed = codec.decode(latent, num_samples=plan.num_samples)
    assert trimmed.shape == (1, 1, round(0.05 * 44100)) == (1, 1, 2205)
    torch.testing.assert_close(trimmed, full[..., : plan.num_samples])


def test_encode_decode_stereo_48k(codec):
    gen = torch.Generator().manual_seed(2)
    wave = 0.3 * torch.randn(2, 2, 4800, generator=gen)  # 0.1 s stereo at 48 kHz
    latent = codec.encode(wave, 48000)
    assert latent.shape == (2, 40, math.ceil(4410 / 1024)) == (2, 40, 5)
    assert torch.isfinite(latent).all()
    out = codec.decode(latent)
    assert out.shape == (2, 1, 5 * 1024)
    assert torch.isfinite(out).all()


def test_encode_downmixes_to_mono(codec):
    gen = torch.Generator().manual_seed(3)
    left, right = 0.3 * torch.randn(1, 1, 3000, generator=gen), 0.3 * torch.randn(1, 1, 3000, generator=gen)
    stereo = codec.encode(torch.cat([left, right], 1), 44100)
    mono = codec.encode((left + right) / 2, 44100)
    torch.testing.assert_close(stereo, mono)
    assert not torch.allclose(codec.encode(left, 44100), mono, atol=1e-3)


def test_latent_token_layout_round_trips(codec):
    latent = torch.randn(2, 40, 7)
    tokens = codec.to_tokens(latent)
    assert tokens.shape == (2, 7, 40)
    assert torch.equal(codec.from_tokens(tokens), latent)


# ---------------------------------------------------------------------------------------------------------
# resampling
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orig_sr", [48000, 22050, 16000])
def test_resample_keeps_a_sine(orig_sr):
    n = orig_sr // 10
    t = torch.arange(n, dtype=torch.float64) / orig_sr
    out = resample(torch.sin(2 * math.pi * 1000 * t).float()[None], orig_sr, 44100)
    assert out.shape == (1, math.ceil(n * 44100 / orig_sr))
    ref = torch.sin(2 * math.pi * 1000 * torch.arange(out.shape[-1], dtype=torch.float64) / 44100).float()
    interior = slice(200, out.shape[-1] - 200)  # away from the zero-padded edges
    torch.testing.assert_close(out[0, interior], ref[interior], atol=2e-3, rtol=0)


def test_resample_same_rate_is_identity_and_odd_rates_raise():
    x = torch.randn(2, 100)
    assert torch.equal(resample(x, 44100, 44100), x)
    with pytest.raises(SkyReelsInputError):
        resample(x, 48001, 44100)
    with pytest.raises(SkyReelsInputError):
        resample(x, 0, 44100)


# ---------------------------------------------------------------------------------------------------------
# weight norm
# ---------------------------------------------------------------------------------------------------------


def test_vae_remove_weight_norm_leaves_outputs_unchanged():
    vae = AudioVAE(AudioVAEConfig(hidden_dim=8))
    vae.load_state_dict(tiny_vae_state_dict(seed=4))
    mel = -4 + torch.randn(1, 128, 12, generator=torch.Generator().manual_seed(5))
    z = torch.randn(1, 40, 6, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        before_z, before_mel = vae.encode(mel).mean, vae.decode(z)
        vae.remove_weight_norm()
        torch.testing.assert_close(vae.encode(mel).mean, before_z, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(vae.decode(z), before_mel, atol=1e-6, rtol=1e-6)
    assert all(m.weight_norm_removed for m in vae.modules() if hasattr(m, "weight_norm_removed"))


def test_vocoder_remove_weight_norm_leaves_outputs_unchanged():
    model = BigVGAN(
        BigVGANConfig(upsample_initial_channel=64, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))
    )
    model.load_state_dict(tiny_vocoder_state_dict(model.config, seed=6))
    mel = -4 + torch.randn(1, 128, 4, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        before = model(mel)
        after = model.remove_weight_norm()(mel)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------------------


def test_wrong_mel_count_raises(codec):
    with pytest.raises(SkyReelsInputError, match="128"):
        codec.vae.encode(torch.zeros(1, 80, 10))
    with pytest.raises(SkyReelsInputError, match="128"):
        codec.vocoder(torch.zeros(1, 80, 10))


@pytest.mark.parametrize("shape", [(1, 1, 0), (0, 2, 100), (1, 100)])
def test_empty_or_misshaped_audio_raises(codec, shape):
    with pytest.raises(SkyReelsInputError):
        codec.encode(torch.zeros(shape), 44100)


def test_wrong_latent_channels_raise(codec):
    with pytest.raises(SkyReelsInputError, match="40"):
        codec.decode(torch.zeros(1, 20, 4))


def test_too_short_for_mel_raises():
    with pytest.raises(SkyReelsInputError, match="too short"):
        MelConverter()(torch.zeros(1, 300))


# ---------------------------------------------------------------------------------------------------------
# loaders and tiny builders
# ---------------------------------------------------------------------------------------------------------


def test_tiny_builders_are_deterministic_and_in_the_released_layouts():
    assert all(
        torch.equal(a, b) for a, b in zip(tiny_vae_state_dict().values(), tiny_vae_state_dict().values(), strict=True)
    )
    assert tiny_vae_state_dict().keys() == load_file(str(GOLDEN / "P6_mmaudio_vae_44k" / "weights.safetensors")).keys()
    p7 = load_file(str(GOLDEN / "P7_bigvgan_v2_44k_tiny" / "weights.safetensors"))
    assert tiny_vocoder_state_dict(BigVGANConfig(upsample_initial_channel=128)).keys() == p7.keys()
    assert not torch.equal(
        tiny_vae_state_dict(seed=1)["encoder.conv_in.weight"], tiny_vae_state_dict()["encoder.conv_in.weight"]
    )


def _vocoder_wave(model):
    mel = -4 + torch.randn(1, 128, 3, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        return model(mel)


def test_vocoder_layouts_load_to_the_same_model(files, tmp_path):
    reference = _vocoder_wave(load_vocoder(files[1]))
    sd = tiny_vocoder_state_dict()
    parametrized = {
        k.replace("weight_g", "parametrizations.weight.original0").replace(
            "weight_v", "parametrizations.weight.original1"
        ): v
        for k, v in sd.items()
    }
    save_file(parametrized, str(tmp_path / "param.safetensors"))
    plain = BigVGAN(BigVGANConfig.from_state_dict(sd))
    plain.load_state_dict(sd)
    save_file(plain.remove_weight_norm().state_dict(), str(tmp_path / "plain.safetensors"))
    for name in ("param.safetensors", "plain.safetensors"):
        torch.testing.assert_close(_vocoder_wave(load_vocoder(tmp_path / name)), reference, atol=1e-6, rtol=0)


def test_vae_file_with_baked_weights_is_detected(files, tmp_path):
    raw = load_audio_vae(files[0])
    save_file(raw.state_dict(), str(tmp_path / "baked.safetensors"))
    baked = load_audio_vae(tmp_path / "baked.safetensors")
    mel = -4 + torch.randn(1, 128, 8, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(baked.encode(mel).mean, raw.encode(mel).mean, atol=1e-6, rtol=0)
        twice = load_audio_vae(tmp_path / "baked.safetensors", weight_norm_removed=False).encode(mel).mean
    assert not torch.allclose(twice, raw.encode(mel).mean, atol=1e-7, rtol=0)  # normalising again is not a no-op


def test_combined_file_with_prefixes(tmp_path):
    combined = {f"vae.{k}": v for k, v in tiny_vae_state_dict().items()}
    combined.update({f"vocoder.{k}": v for k, v in tiny_vocoder_state_dict().items()})
    save_file(combined, str(tmp_path / "audio.safetensors"))
    codec = load_audio_codec(tmp_path / "audio.safetensors", tmp_path / "audio.safetensors")
    assert codec.decode(torch.zeros(1, 40, 1)).shape == (1, 1, 1024)


def test_wrong_files_raise_checkpoint_errors(files, tmp_path):
    vae_file, vocoder_file = files
    with pytest.raises(CheckpointError, match="MMAudio"):
        load_audio_vae(vocoder_file)
    with pytest.raises(CheckpointError, match="BigVGAN"):
        load_vocoder(vae_file)
    sixteen_k = AudioVAE(AudioVAEConfig(data_dim=80, embed_dim=20, hidden_dim=8)).state_dict()
    save_file(sixteen_k, str(tmp_path / "v1-16.safetensors"))
    with pytest.raises(CheckpointError, match="v1-44"):
        load_audio_vae(tmp_path / "v1-16.safetensors")
    broken = tiny_vae_state_dict()
    broken["decoder.conv_out.weight"] = broken["decoder.conv_out.weight"][:, :4].contiguous()
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match="decoder.conv_out.weight"):
        load_audio_vae(tmp_path / "broken.safetensors")


def test_codec_rejects_a_vocoder_with_another_hop():
    vae = AudioVAE(AudioVAEConfig(hidden_dim=8))
    vocoder = BigVGAN(
        BigVGANConfig(
            upsample_rates=(4, 4, 2, 2, 2, 2), upsample_kernel_sizes=(8, 8, 4, 4, 4, 4), upsample_initial_channel=64
        )
    )
    with pytest.raises(CheckpointError, match="hop"):
        AudioCodec(vae, vocoder)


def test_audio_latent_shape_is_the_plan_for_a_video():
    for frames, fps in ((81, 16), (121, 24), (1, 16)):
        shape, plan = AudioLatentShape.from_video(frames, fps), AudioPlan.for_seconds(frames / fps)
        assert (shape.frames, shape.num_samples, shape.decoded_samples) == \
            (plan.latent_frames, plan.num_samples, plan.decoded_samples)
        assert shape.as_tuple() == (1, 40, plan.latent_frames) and abs(shape.seconds - frames / fps) <= 0.5 / 44100
