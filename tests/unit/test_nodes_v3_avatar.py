"""SkyReels-V3 talking avatar nodes on the fake ComfyUI runtime of test_nodes.py with real files: the tiny A2V DiT in
its release layout (a root folder, picked as "SkyReels-V3-A2V-19B/"), the tiny Wan VAE, CLIP and umT5, and a
wav2vec2 folder in the Hugging Face layout built here with the real feature sizes (12 hidden states of width 768,
what the A2V adapter takes; everything else tiny).

Checked: the loaders list and load the folders; a short voice (< 81 frames) gives the key-frame clip cut to its
length, a longer one the key-frame pass + sliding windows ((1 + windows) x steps model calls) and exactly
ceil(seconds x 25) frames at 25 fps, equal to the core recipe; progress labels; Cancel; every bad input refused
before the speech is encoded or any network is loaded.
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_nodes as shared  # noqa: E402  (the fixtures and fakes of the node tests)
import test_nodes_v3 as v3_shared  # noqa: E402

from scripts import tiny_builders  # noqa: E402

PACK, REPO, FakeProgressBar = shared.PACK, shared.REPO, shared.FakeProgressBar
_cached, _load = shared._cached, shared._load
env, tiny, tiny_dir, _fresh_logs = shared.env, shared.tiny, shared.tiny_dir, shared._fresh_logs  # fixtures

A2V = "SkyReels-V3-A2V-19B"
SPEECH = "chinese-wav2vec2-base"
RATE = 16000
ARGS = dict(resolution="720P", width=32, height=32, seed=5, steps=2, shift=11.0, guidance=1.0, audio_guidance=1.0)


def _node(env, node_id, unique_id="31"):
    cls = env.nodes[node_id]
    return type(cls.__name__, (cls,), {"hidden": types.SimpleNamespace(unique_id=unique_id)})


def _voice(seconds: float, rate: int = RATE) -> dict:
    t = torch.arange(round(seconds * rate)) / rate
    wave = 0.3 * torch.sin(2 * math.pi * 150 * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 3 * t))
    return {"waveform": wave[None, None].repeat(1, 2, 1), "sample_rate": rate}


def _portrait(h: int = 40, w: int = 40) -> torch.Tensor:
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def a2v(tiny, tiny_dir):
    """`tiny` + the A2V release folder + a wav2vec2 folder with the real feature sizes, listed as ComfyUI does."""
    from scripts.make_tiny_checkpoints import tiny_a2v_files

    dm = tiny.models / "diffusion_models" / A2V
    dm.mkdir()
    for name, data in tiny_a2v_files().items():
        (dm / name).write_bytes(data)
    speech = tiny.models / "audio_encoders" / SPEECH
    speech.mkdir(parents=True)
    files = tiny_builders.tiny_wav2vec2_files(seed=1, cfg=tiny_builders.speech_sized_wav2vec2_config())
    for name, data in files.items():
        (speech / name).write_bytes(data)
    names, full_path = v3_shared._comfy_listing(tiny.models)
    from unittest.mock import patch

    with patch.object(sys.modules["folder_paths"], "get_filename_list", names), \
            patch.object(sys.modules["folder_paths"], "get_full_path_or_raise", full_path):
        torch.set_num_threads(1)
        yield tiny


def _inputs(env, key="a2v"):
    model = _cached(env, key, "SkyReelsModelLoader", model_name=f"{A2V}/", weight_dtype="default", attention="auto")
    encoder = _cached(env, "umt5", "SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                      tokenizer="auto")
    embeds = _cached(env, "embeds", "SkyReelsTextEncode", text_encoder=encoder, positive="a woman speaks",
                     negative="blurry")
    connection = _cached(env, "connection", "SkyReelsTextEncode", text_encoder=encoder,
                         positive="a person is talking", negative="blurry")
    vae = _cached(env, "vae", "SkyReelsVAELoader", vae_name="wan_2.1_vae_tiny.safetensors")
    clip = _cached(env, "clip", "SkyReelsCLIPVisionLoader", clip_name="clip_vision_h_tiny.safetensors")
    speech = _cached(env, "speech", "SkyReelsV3AudioEncoderLoader", audio_encoder_name=SPEECH)
    return dict(model=model, text_embeds=embeds, vae=vae, clip_vision=clip, audio_encoder=speech), connection


def _count_calls(module):
    calls = []
    return calls, module.register_forward_hook(lambda *a: calls.append(1))


def test_loaders_list_the_a2v_folder_and_the_speech_encoder(a2v):
    options = v3_shared._options(a2v.nodes["SkyReelsModelLoader"].define_schema())
    assert f"{A2V}/" in options  # the release root folder (2 shards), picked whole
    # the folder, and the file in it (which loads with the folder's config.json)
    assert v3_shared._options(a2v.nodes["SkyReelsV3AudioEncoderLoader"].define_schema()) == [
        f"{SPEECH}/model.safetensors", SPEECH]
    inputs, _ = _inputs(a2v)
    assert inputs["model"].module.config.audio_adapter and inputs["model"].module.config.is_i2v
    assert inputs["audio_encoder"].runner.cfg.hidden_size == 768


def test_short_voice_gives_the_key_frame_clip_cut_to_its_length(a2v):
    inputs, connection = _inputs(a2v)
    calls, hook = _count_calls(inputs["model"].module)
    frames, fps = _node(a2v, "SkyReelsV3TalkingAvatar").execute(
        portrait=_portrait(), audio=_voice(1.2), connection_embeds=connection, **inputs, **ARGS)
    hook.remove()
    assert fps == 25.0 and frames.shape == (30, 32, 32, 3)  # 1.2 s x 25
    assert 0 <= frames.min() and frames.max() <= 1
    assert len(calls) == 2  # one pass of 2 steps
    assert [u[:2] for u in FakeProgressBar.instances[-1].updates] == [(1, 2), (2, 2)]
    assert a2v.server.texts[-1][1].startswith("key frames · step 2/2")


def test_long_voice_runs_windows_and_matches_the_core_recipe(a2v):
    inputs, connection = _inputs(a2v)
    voice = _voice(4.0)  # 100 frames -> padded to 145 -> 2 windows after the key-frame pass
    calls, hook = _count_calls(inputs["model"].module)
    frames, _ = _node(a2v, "SkyReelsV3TalkingAvatar").execute(
        portrait=_portrait(), audio=voice, connection_embeds=connection, **inputs, **ARGS)
    hook.remove()
    assert frames.shape == (100, 32, 32, 3) and len(calls) == 3 * 2
    labels = [t.split(" · ")[0] for n, t in a2v.server.texts if n == "31"][-6:]
    assert labels == ["key frames", "key frames", "window 1/2", "window 1/2", "window 2/2", "window 2/2"]

    core_avatar = sys.modules[PACK + ".skyreels_core.pipelines.avatar"]
    with torch.no_grad():
        features = inputs["audio_encoder"].runner.encode_speech(voice["waveform"][0], RATE, fps=25)
        ref = core_avatar.talking_avatar(
            inputs["model"].module, inputs["vae"].runner, inputs["clip_vision"].runner.encode_image, _portrait(),
            features, inputs["text_embeds"].positive, connection.positive, seed=5, steps=2, shift=11.0,
            width=32, height=32)
    torch.testing.assert_close(frames, ref)


class _Forbidden(torch.nn.Module):
    def forward(self, *a, **k):
        raise AssertionError("no network may run on a bad input")


@pytest.mark.parametrize(("change", "match"), [
    (dict(audio=_voice(0.2)), r"audio is 0.20 s; the talking avatar takes 0.4 to 200 s"),
    (dict(audio=_voice(201.0, rate=100)), r"audio is 201.00 s"),
    (dict(audio={"waveform": torch.zeros(1, 1, 0), "sample_rate": RATE}), "audio has no samples"),
    (dict(audio={"waveform": torch.zeros(1, 2, RATE), "sample_rate": RATE}), r"audio is silent \(1.00 s"),
    (dict(portrait=torch.rand(1, 40, 40)), "portrait"),
    (dict(resolution="540P"), r"resolution = '540P' is not one of its options"),
    (dict(width=32, height=0), "Give both width and height"),
    (dict(guidance=2.0, negative=True), "needs a negative prompt"),
])  # fmt: skip
def test_bad_inputs_fail_before_the_speech_is_encoded(a2v, change, match):
    inputs, _ = _inputs(a2v)
    change = dict(change)
    if change.pop("negative", False):
        inputs["text_embeds"] = type(inputs["text_embeds"])(positive=inputs["text_embeds"].positive, negative=None)
    bridge = a2v.pack.nodes.comfy_bridge
    inputs["audio_encoder"] = bridge.manage(_Forbidden(), "text_encoder", "speech")
    a2v.loaded.clear()
    with pytest.raises(ValueError, match=match):
        _node(a2v, "SkyReelsV3TalkingAvatar").execute(**inputs,
                                                      **{**ARGS, "audio": _voice(1.0), "portrait": _portrait(),
                                                         **change})
    assert a2v.loaded == []  # nothing was loaded


def test_a_v2_i2v_model_is_refused_with_the_fix(a2v):
    inputs, _ = _inputs(a2v)
    inputs["model"] = _cached(a2v, "i2v", "SkyReelsModelLoader", model_name="skyreels_v2_i2v_tiny.safetensors",
                              weight_dtype="default", attention="auto")
    a2v.loaded.clear()
    with pytest.raises(ValueError, match="no speech adapter.*Load SkyReels-V3-A2V-19B"):
        _node(a2v, "SkyReelsV3TalkingAvatar").execute(portrait=_portrait(), audio=_voice(1.0), **inputs, **ARGS)
    assert a2v.loaded == []


def test_cancel_stops_within_one_step(a2v):
    inputs, connection = _inputs(a2v)
    calls, hook = _count_calls(inputs["model"].module)

    def cancel(self, value, total=None, preview=None):
        if value == 3:  # the first step of window 1
            shared.FakeCancel.pressed = True

    from unittest.mock import patch

    with patch.object(FakeProgressBar, "update_absolute", cancel), pytest.raises(shared.InterruptProcessingException):
        _node(a2v, "SkyReelsV3TalkingAvatar").execute(portrait=_portrait(), audio=_voice(4.0),
                                                      connection_embeds=connection, **inputs, **ARGS)
    hook.remove()
    assert len(calls) == 4  # 2 key-frame steps, 1 window step, then the check at the next step raised


def test_cancel_during_a_windows_vae_work_stops_it(a2v):
    """Cancel pressed after the key-frame pass's last step is seen in its VAE decode, before any window samples."""
    inputs, connection = _inputs(a2v)
    calls, hook = _count_calls(inputs["model"].module)

    def cancel(self, value, total=None, preview=None):
        if value == 2:  # the last key-frame step
            shared.FakeCancel.pressed = True

    from unittest.mock import patch

    with patch.object(FakeProgressBar, "update_absolute", cancel), pytest.raises(shared.InterruptProcessingException):
        _node(a2v, "SkyReelsV3TalkingAvatar").execute(portrait=_portrait(), audio=_voice(4.0),
                                                      connection_embeds=connection, **inputs, **ARGS)
    hook.remove()
    assert len(calls) == 2 and shared.FakeCancel.pressed is False  # no window sampled; the press was consumed
