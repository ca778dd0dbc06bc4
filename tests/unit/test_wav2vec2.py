"""wav2vec2 speech encoder (SkyReels-V3 A2V): parity with transformers' Wav2Vec2Model, loudness vs pyloudnorm,
resampling vs soxr_hq, per-frame windows, loading the released layouts, and clear errors.

The golden file tests/unit/fixtures/wav2vec2_golden.json (pyloudnorm loudness, soxr_hq output) was written with
    python3 -m venv /tmp/lufs-venv && /tmp/lufs-venv/bin/pip install pyloudnorm soxr numpy scipy
    /tmp/lufs-venv/bin/python scripts/make_wav2vec2_golden.py
(neither package is a test dependency).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_wav2vec2_config_json, tiny_wav2vec2_files, tiny_wav2vec2_state_dict
from skyreels_core.conditioning.speech import audio_windows, pad_reversed
from skyreels_core.encoders.wav2vec2 import (
    MAX_SECONDS,
    MIN_SECONDS,
    SAMPLE_RATE,
    Wav2Vec2Config,
    integrated_loudness,
    load_wav2vec2,
    prepare_speech,
    resample,
    wav2vec2_from_state_dict,
)
from skyreels_core.errors import CheckpointError, SkyReelsInputError

torch.set_num_threads(1)
GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "wav2vec2_golden.json").read_text())
TINY = Wav2Vec2Config.TINY


def synthesize(spec: dict) -> torch.Tensor:
    """The signal of a golden entry (same formula as scripts/make_wav2vec2_golden.py), float64 [samples]."""
    n = round(spec["seconds"] * spec["rate"])
    t = torch.arange(n, dtype=torch.float64) / spec["rate"]
    x = torch.zeros(n, dtype=torch.float64)
    for freq, amp, phase in spec["tones"]:
        x += amp * torch.sin(2 * math.pi * freq * t + phase)
    if "envelope" in spec:
        freq, depth = spec["envelope"]
        x *= 1 - depth * (0.5 - 0.5 * torch.cos(2 * math.pi * freq * t))
    if "silence" in spec:
        x[(t >= spec["silence"][0]) & (t < spec["silence"][1])] = 0
    return x


def speech_like(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = round(seconds * rate)
    t = torch.arange(n) / rate
    voice = sum(torch.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 8))
    voice = voice * (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t))  # syllable-rate envelope
    return (0.1 * voice + 0.01 * torch.randn(channels, n, generator=gen)).float()


# ---------------------------------------------------------------------------------------------------------
# parity with transformers


def _hf_model(cfg: Wav2Vec2Config = TINY):
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.Wav2Vec2Config(**{k: v for k, v in tiny_wav2vec2_config_json(cfg).items()
                                               if k not in ("architectures", "model_type")})
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(hf_config).eval()
    with torch.no_grad():  # non-trivial norms and biases (they start at 1 / 0)
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    return model


def test_every_hidden_state_matches_transformers():
    hf = _hf_model()
    ours = wav2vec2_from_state_dict(dict(hf.state_dict()), config=TINY)  # parametrizations.weight.original0/1
    x = torch.randn(2, 16_000)
    with torch.no_grad():
        reference = hf(x, output_hidden_states=True).hidden_states
        states = ours(x)
    assert len(states) == len(reference) == TINY.num_hidden_layers + 1
    for ref, got in zip(reference, states, strict=True):
        assert got.shape == ref.shape == (2, 49, TINY.hidden_size)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_interpolated_path_matches_the_reference_recipe():
    """The reference runs HF's CNN, interpolates to the video length, then projection + encoder."""
    hf = _hf_model()
    ours = wav2vec2_from_state_dict(dict(hf.state_dict()), config=TINY)
    speech = prepare_speech(speech_like(1.37), SAMPLE_RATE)
    frames = math.ceil(speech.shape[0] / SAMPLE_RATE * 25)
    with torch.no_grad():
        features = hf.feature_extractor(speech[None])  # [1, C, 68]
        features = F.interpolate(features, size=frames, mode="linear", align_corners=True).transpose(1, 2)
        projected, _ = hf.feature_projection(features)
        # transformers 5 collects hidden states at the Model level only: hook the layers (= hidden_states[1:])
        layer_outputs = []
        hooks = [layer.register_forward_hook(lambda _m, _i, out: layer_outputs.append(out))
                 for layer in hf.encoder.layers]
        last = hf.encoder(projected).last_hidden_state
        for hook in hooks:
            hook.remove()
        layer_outputs = [out[0] if isinstance(out, tuple) else out for out in layer_outputs]
        assert torch.equal(layer_outputs[-1], last)
        reference = torch.stack(layer_outputs, dim=2)[0]  # [T, layers, C]
    got = ours.encode_speech(speech_like(1.37), SAMPLE_RATE)
    assert frames == 35 and got.shape == (35, TINY.num_hidden_layers, TINY.hidden_size)
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)


def test_folder_written_by_transformers_save_pretrained_loads(tmp_path):
    hf = _hf_model()
    hf.save_pretrained(tmp_path / "w2v")
    ours = load_wav2vec2(tmp_path / "w2v")  # its own config.json (heads from the file, not guessed)
    assert ours.cfg == TINY
    x = torch.randn(1, 12_000)
    with torch.no_grad():
        reference = hf(x, output_hidden_states=True).hidden_states
    for ref, got in zip(reference, ours(x), strict=True):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_weight_g_v_and_prefixed_keys_load_the_same_numbers():
    hf = _hf_model()
    state = dict(hf.state_dict())
    pos = "encoder.pos_conv_embed.conv."
    legacy = {k.replace("parametrizations.weight.original0", "weight_g").replace(
        "parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
    assert pos + "weight_g" in legacy
    pretraining = {f"wav2vec2.{k}": v for k, v in legacy.items()}
    pretraining.update({"quantizer.codevectors": torch.zeros(1, 4, 8), "project_q.weight": torch.zeros(8, 8),
                        "project_hid.weight": torch.zeros(8, 32), "wav2vec2.masked_spec_embed": torch.zeros(32)})
    a = wav2vec2_from_state_dict(state, config=TINY)
    b = wav2vec2_from_state_dict(pretraining, config=TINY)
    x = torch.randn(1, 8000)
    torch.testing.assert_close(a(x)[-1], b(x)[-1], atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# preprocessing


@pytest.mark.parametrize("spec", GOLDEN["loudness"], ids=lambda s: s["name"])
def test_loudness_matches_pyloudnorm(spec):
    assert integrated_loudness(synthesize(spec), spec["rate"]) == pytest.approx(spec["lufs"], abs=1e-6)


def test_loudness_known_values_and_silence():
    t = torch.arange(48_000 * 2, dtype=torch.float64) / 48_000
    sine = torch.sin(2 * math.pi * 997 * t)
    assert integrated_loudness(sine, 48_000) == pytest.approx(-3.05, abs=0.05)  # BS.1770: 997 Hz 0 dBFS ~ -3.01
    assert integrated_loudness(0.1 * sine, 48_000) == pytest.approx(integrated_loudness(sine, 48_000) - 20, abs=1e-9)
    assert integrated_loudness(torch.zeros(16_000), 16_000) == float("-inf")


@pytest.mark.parametrize("spec", GOLDEN["resample"], ids=lambda s: s["name"])
def test_resampler_is_close_to_soxr_hq(spec):
    reference = torch.tensor(spec["soxr_hq_16k"], dtype=torch.float64)
    got = resample(synthesize(spec), spec["rate"], SAMPLE_RATE)
    assert got.shape == reference.shape == (math.ceil(spec["seconds"] * SAMPLE_RATE),)
    interior = slice(160, -160)
    error = (got - reference)[interior].square().mean().sqrt() / reference[interior].square().mean().sqrt()
    assert error < 1e-3  # measured 7.3e-4 (44.1 kHz) and 1.9e-7 (48 kHz)


def test_prepare_speech_mixes_normalises_and_keeps_the_duration():
    stereo = speech_like(2.0, rate=44_100, channels=2)
    speech = prepare_speech(stereo, 44_100)
    assert speech.dtype == torch.float32 and speech.shape == (32_000,)
    assert abs(speech.mean().item()) < 1e-6 and speech.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    mono = prepare_speech(stereo.double().mean(0), 44_100)
    torch.testing.assert_close(speech, mono)
    # loudness normalisation does not survive the unit-variance step, but it decides whether silence is scaled
    quiet = prepare_speech(torch.zeros(16_000), SAMPLE_RATE)
    assert torch.equal(quiet, torch.zeros(16_000))


def test_normalisation_matches_the_feature_extractor():
    """-23 LUFS gain (pyloudnorm's formula on our loudness) then transformers' Wav2Vec2FeatureExtractor."""
    transformers = pytest.importorskip("transformers")
    x = speech_like(1.5)[0].double()
    gain = 10 ** ((-23 - integrated_loudness(x, SAMPLE_RATE)) / 20)
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    reference = extractor((x * gain).numpy(), sampling_rate=SAMPLE_RATE).input_values[0]
    torch.testing.assert_close(prepare_speech(x, SAMPLE_RATE), torch.from_numpy(reference), atol=2e-6, rtol=0)
    unnormalised = prepare_speech(x, SAMPLE_RATE, normalize=False).double()
    assert integrated_loudness(unnormalised, SAMPLE_RATE) == pytest.approx(-23.0, abs=1e-4)


def test_resampled_length_sets_the_video_frame_count():
    ours = wav2vec2_from_state_dict(tiny_wav2vec2_state_dict(), config=TINY)
    for seconds, rate, frames in ((0.4, 16_000, 10), (1.0, 48_000, 25), (1.001, 44_100, 26)):
        assert ours.encode_speech(speech_like(seconds, rate)[0], rate).shape[0] == frames


# ---------------------------------------------------------------------------------------------------------
# windows and padding


def test_audio_windows_clamp_at_both_ends():
    features = torch.arange(10.0)[:, None, None].expand(10, 2, 3)
    window = audio_windows(features, start=0, frames=10)
    assert window.shape == (1, 10, 5, 2, 3)
    assert window[0, :, :, 0, 0].tolist()[:3] == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4]]
    assert window[0, -2:, :, 0, 0].tolist() == [[6, 7, 8, 9, 9], [7, 8, 9, 9, 9]]
    later = audio_windows(features, start=6, frames=3)
    assert later[0, :, :, 1, 2].tolist() == [[4, 5, 6, 7, 8], [5, 6, 7, 8, 9], [6, 7, 8, 9, 9]]


def test_pad_reversed_appends_the_time_reversed_tail():
    features = torch.arange(6.0)[:, None]
    assert pad_reversed(features, 9)[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 5, 4, 3]
    assert pad_reversed(features, 14)[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0, 0, 1]
    assert pad_reversed(features, 4)[:, 0].tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------------------------------------------------
# loading and errors


def _write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_hf_folder_single_file_and_bin_load_the_same_model(tmp_path):
    folder = _write_folder(tmp_path / "chinese-wav2vec2-base_tiny", tiny_wav2vec2_files())
    from_folder = load_wav2vec2(folder)
    assert from_folder.cfg == TINY and from_folder.normalize_input
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False, "sampling_rate": 16000}))
    assert not load_wav2vec2(folder).normalize_input
    state = tiny_wav2vec2_state_dict(prefix="wav2vec2.")
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    from_bin = load_wav2vec2(folder)
    single = tmp_path / "wav2vec2_single.safetensors"  # no config.json next to it: sizes from shapes
    save_file(tiny_wav2vec2_state_dict(cfg=TINY), str(single))
    x = torch.randn(1, 8000)
    expected = from_folder(x)
    torch.testing.assert_close(from_bin(x)[-1], expected[-1], atol=0, rtol=0)
    inferred = load_wav2vec2(single)
    assert inferred.cfg.conv_dim == TINY.conv_dim and inferred.cfg.num_hidden_layers == TINY.num_hidden_layers
    assert inferred.cfg.num_conv_pos_embedding_groups == TINY.num_conv_pos_embedding_groups


def test_base_config_shapes_on_meta():
    cfg = Wav2Vec2Config.BASE
    assert cfg.frame_rate == 50
    with torch.device("meta"):
        from skyreels_core.encoders.wav2vec2 import Wav2Vec2Encoder

        sd = Wav2Vec2Encoder(cfg).state_dict()
    assert sd["feature_extractor.conv_layers.0.conv.weight"].shape == (512, 1, 10)
    assert "feature_extractor.conv_layers.0.layer_norm.weight" in sd
    assert "feature_extractor.conv_layers.1.layer_norm.weight" not in sd
    assert sd["encoder.pos_conv_embed.conv.weight"].shape == (768, 48, 128)
    assert sd["encoder.layers.11.feed_forward.intermediate_dense.weight"].shape == (3072, 768)
    assert sum(v.numel() for v in sd.values()) == pytest.approx(94.4e6, rel=0.01)


@pytest.mark.parametrize("seconds", [0.3, MAX_SECONDS + 0.5])
def test_too_short_or_too_long_audio_names_both_limits(seconds):
    with pytest.raises(SkyReelsInputError, match=rf"between {MIN_SECONDS} s and {MAX_SECONDS:.0f} s"):
        prepare_speech(torch.zeros(round(seconds * 8000)), 8000)


def test_bad_waveforms_are_refused():
    with pytest.raises(SkyReelsInputError, match="one item"):
        prepare_speech(torch.zeros(1, 2, 16_000), SAMPLE_RATE)
    with pytest.raises(SkyReelsInputError, match="float waveform"):
        prepare_speech(torch.zeros(16_000, dtype=torch.int16), SAMPLE_RATE)
    with pytest.raises(SkyReelsInputError, match="positive integer"):
        prepare_speech(torch.zeros(16_000), 0)


def test_wrong_files_are_refused_with_the_fix(tmp_path):
    from scripts.tiny_builders import tiny_clip_vision_state_dict

    clip = tmp_path / "clip_vision_h.safetensors"
    save_file(tiny_clip_vision_state_dict(layout="comfy"), str(clip))
    with pytest.raises(CheckpointError, match="looks like an image encoder"):
        load_wav2vec2(clip)
    other = tmp_path / "other.safetensors"
    save_file({"foo.weight": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not a wav2vec2 speech encoder.*chinese-wav2vec2-base"):
        load_wav2vec2(other)
    hubert = _write_folder(tmp_path / "hubert", tiny_wav2vec2_files())
    (hubert / "config.json").write_text(json.dumps({**tiny_wav2vec2_config_json(), "model_type": "hubert"}))
    with pytest.raises(CheckpointError, match="model_type is 'hubert', not 'wav2vec2'"):
        load_wav2vec2(hubert)
    large = _write_folder(tmp_path / "large", tiny_wav2vec2_files())
    (large / "config.json").write_text(json.dumps({**tiny_wav2vec2_config_json(), "do_stable_layer_norm": True}))
    with pytest.raises(CheckpointError, match="do_stable_layer_norm"):
        load_wav2vec2(large)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        load_wav2vec2(empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_wav2vec2(tmp_path / "missing")
    truncated = _write_folder(tmp_path / "truncated", tiny_wav2vec2_files())
    state = tiny_wav2vec2_state_dict()
    del state["encoder.layers.2.final_layer_norm.bias"]
    save_file(state, str(truncated / "model.safetensors"))
    with pytest.raises(CheckpointError, match="Missing 1 keys: encoder.layers.2.final_layer_norm.bias"):
        load_wav2vec2(truncated)
