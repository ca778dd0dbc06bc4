"""Bad inputs of the SkyReels-V4 nodes (issue #9): refused with the input's name and the fix, before any model, VAE
or codec call and before any large allocation. Runs on the fake ComfyUI runtime of test_nodes_v4.py."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_nodes_v4 as v4_tests  # noqa: E402

PACK = v4_tests.PACK
env, tiny_dir, v4, _fresh_logs = v4_tests.env, v4_tests.tiny_dir, v4_tests.v4, v4_tests._fresh_logs  # fixtures
_one_thread = v4_tests._one_thread
NAN, INF = float("nan"), float("inf")


def input_error():
    return importlib.import_module(PACK + ".skyreels_core.errors").SkyReelsInputError


class Forbidden(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *a, **k):
        pytest.fail("the model was called although the inputs are invalid")

    def encode(self, *a, **k):
        pytest.fail("encode was called although the inputs are invalid")

    def decode(self, *a, **k):
        pytest.fail("decode was called although the inputs are invalid")


def forbidden(ctx, role):
    return ctx.pack.nodes.comfy_bridge.manage(Forbidden(), role, "forbidden.safetensors")


def joint_latent(frames=1, audio_frames=10, fps=16.0):
    return {"samples": torch.zeros(1, 16, frames, 4, 4), "audio_samples": torch.zeros(1, 40, audio_frames),
            "fps": fps}


def sampler_kwargs(ctx, **change):
    embeds = ctx.v4.AVTextEmbeds(positive=torch.zeros(1, 4, 8), negative=torch.zeros(1, 4, 8))
    kwargs = dict(model=forbidden(ctx, "dit"), text_embeds=embeds, latent=joint_latent(), seed=3, steps=2,
                  video_cfg=4.0, audio_cfg=2.0, sync_scale=1.0, shift=3.0, scheduler="euler")
    return {**kwargs, **change}


@pytest.mark.parametrize(("name", "value", "match"), [
    *[(n, v, f"^{n} must be a finite number") for n in ("video_cfg", "audio_cfg", "sync_scale") for v in (NAN, INF)],
    ("shift", NAN, "^shift must be a finite number > 0"), ("shift", 0.0, "^shift must be a finite number > 0"),
    ("shift", -INF, "^shift must be"), ("scheduler", None, "^scheduler = None is not one of its options"),
    ("steps", 0, "^steps must be a whole number"),
])  # fmt: skip
def test_v4_sampler_refuses_bad_values_before_loading(v4, name, value, match):
    with pytest.raises(input_error(), match=match):
        v4_tests.sampler(v4).execute(**sampler_kwargs(v4, **{name: value}))
    assert v4.loaded == []


@pytest.mark.parametrize(("change", "match"), [
    (dict(fps=NAN), "^fps must be a positive number"), (dict(fps=INF), "^fps must be a positive number"),
    (dict(width=4096, height=4096, frames=1025, batch=64), r"batch 64\) needs about 12300\.0 GiB"),
    (dict(fps=1.0, frames=1025), r"^The audio lasts 1025\.0 s, longer than the 120 s .*higher fps"),
])  # fmt: skip
def test_empty_av_latent_refuses_before_allocating(v4, monkeypatch, change, match):
    monkeypatch.setenv("SKYREELS_MAX_MEMORY_GB", "64")
    kwargs = dict(dict(width=32, height=32, frames=9, fps=16.0, batch=1), **change)
    with pytest.raises(input_error(), match=match):
        v4.nodes["SkyReelsV4EmptyAVLatent"].execute(**kwargs)


def test_task_combo_is_checked_before_the_vae(v4):
    lat = v4.nodes["SkyReelsV4EmptyAVLatent"].execute(width=32, height=32, frames=9, fps=16.0, batch=1)[0]
    for task in (None, "t2i", 3):
        with pytest.raises(input_error(), match="^task = .* choose one of: t2v, i2v"):
            v4.nodes["SkyReelsV4TaskCondition"].execute(vae=forbidden(v4, "vae"), latent=lat, task=task,
                                                        extend_frames=0)
    assert v4.loaded == []


def test_long_audio_is_refused_before_the_codec(v4):
    audio = {"waveform": torch.zeros(1, 2, 600 * 8000), "sample_rate": 8000}  # 600 s stereo
    with pytest.raises(input_error(), match=r"^The audio lasts 600\.0 s, longer than the 120 s .*Trim Audio"):
        v4.nodes["SkyReelsV4AudioEncode"].execute(audio_codec=forbidden(v4, "vae"), audio=audio)
    with pytest.raises(input_error(), match="sample_rate must be a positive number"):
        v4.nodes["SkyReelsV4AudioEncode"].execute(audio_codec=forbidden(v4, "vae"),
                                                  audio={"waveform": torch.zeros(1, 1, 10), "sample_rate": 0})
    long_latent = joint_latent(audio_frames=44_101)  # 1024 s of audio (fps 1, 1025 frames)
    with pytest.raises(input_error(), match=r"^The audio to decode lasts 1024\.0 s"):
        v4.nodes["SkyReelsV4Decode"].execute(vae=forbidden(v4, "vae"), audio_codec=forbidden(v4, "vae"),
                                             latent=long_latent, tile_size=0, tile_overlap=64)
    with pytest.raises(input_error(), match=r"^The audio to decode lasts"):
        v4.nodes["SkyReelsV4AudioDecode"].execute(audio_codec=forbidden(v4, "vae"), latent=long_latent)
    assert v4.loaded == []


def test_overlong_layers_input_is_not_echoed(v4):
    with pytest.raises(input_error()) as info:
        v4.v4.parse_layers("x" * 2_000_000)
    assert len(str(info.value)) < 300


def test_crafted_av_metadata_is_refused_fast_naming_the_field(v4, tiny_dir, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = tiny_dir / "diffusion_models/skyreels_v4_av_tiny.safetensors"
    av = importlib.import_module(PACK + ".skyreels_core.models.av_mmdit")
    key = av.CONFIG_METADATA_KEY
    stored = json.loads(safe_open(str(src), "pt").metadata()[key])
    state = load_file(str(src))
    for field, value in (("num_heads", 0), ("num_dual_blocks", 20000), ("dim", 0)):
        path = tmp_path / f"{field}.safetensors"
        save_file(state, str(path), metadata={key: json.dumps(stored | {field: value})})
        start = time.perf_counter()
        with pytest.raises(ValueError, match=rf"{field}.safetensors: .*{field} = {value}"):
            av.load_av_dit(path)
        assert time.perf_counter() - start < 10


@pytest.mark.parametrize(("steps", "shift", "scheduler"), [(251, 5.0, "euler")])
def test_v4_sampler_runs_past_the_old_step_limit(v4, steps, shift, scheduler):
    """Finding: V4 at shift 5 crashed from 251 steps; solvers step by index now."""
    kwargs = dict(v4_tests.sample_kwargs(v4), steps=steps, shift=shift, scheduler=scheduler, video_cfg=1.0,
                  audio_cfg=1.0)
    out = v4_tests.sampler(v4).execute(**kwargs)[0]
    assert torch.isfinite(out["samples"]).all() and torch.isfinite(out["audio_samples"]).all()
    assert v4_tests.FakeProgressBar.instances[-1].updates[-1][:2] == (steps, steps)
