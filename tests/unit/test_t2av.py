"""SkyReels-V4 joint sampling with the real tiny AVMMDiT (random weights), tiny Wan VAE and tiny audio codec."""

import dataclasses
import math
import types

import pytest
import torch
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_audio_vae_state_dict as tiny_vae_state_dict
from scripts.tiny_builders import tiny_av_dit_state_dict as tiny_state_dict
from scripts.tiny_builders import tiny_vocoder_state_dict
from skyreels_core.conditioning.refine import Keyframes, keyframe_condition, plan_keyframes
from skyreels_core.conditioning.v4 import VideoCondition, build_condition, encode_audio, encode_references
from skyreels_core.errors import SkyReelsInputError
from skyreels_core.models.audio_codec import load_audio_codec, num_samples_for
from skyreels_core.models.av_mmdit import AudioStream, AVDiTConfig, AVMMDiT, ModelType, VideoStream
from skyreels_core.models.video_vae import VAE3DConfig, WanVAE
from skyreels_core.pipelines.denoisers import AVLayout
from skyreels_core.pipelines.t2av import audio_seed, av_latent_shape, keyframe_seed, sample_av
from skyreels_core.sampling.guidance import AVGuidance
from skyreels_core.sampling.noise import seeded_noise
from skyreels_core.sampling.schedules import flow_sigmas

TEXT_DIM = AVDiTConfig.TINY.text_dim


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(config=AVDiTConfig.TINY, seed=0):
    model = AVMMDiT(config)
    model.load_state_dict(tiny_state_dict(seed, config)[0])
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return _model()


def _ctx(seed, length=5):
    return torch.randn(1, length, TEXT_DIM, generator=torch.Generator().manual_seed(seed))


SHAPE, NUM_AUDIO = av_latent_shape(9, 16.0, 32, 32)  # 3 latent frames of 4x4; 0.5625 s -> 25 audio latents
BASE = dict(video_shape=SHAPE, num_audio_latents=NUM_AUDIO, context=_ctx(1), negative_context=_ctx(2), fps=16.0)


def _run(model, **kwargs):
    args = {**BASE, "steps": 2, "shift": 3.0, "video_cfg": 4.0, "audio_cfg": 2.0, "seed": 5, **kwargs}
    return sample_av(model, **args)


@pytest.mark.parametrize("frames, fps", [(81, 16.0), (9, 16.0), (121, 24.0), (97, 30.0), (1, 16.0)])
def test_av_latent_shape_covers_frames_over_fps_seconds(frames, fps):
    shape, num_audio = av_latent_shape(frames, fps, 480, 832)
    assert shape.as_tuple() == (1, 16, (frames - 1) // 4 + 1, 60, 104)
    assert num_audio == math.ceil(round(frames / fps * 44100) / 1024)
    assert (num_audio - 1) * 1024 < round(frames / fps * 44100) <= num_audio * 1024


def test_av_latent_shape_rejects_bad_values():
    with pytest.raises(SkyReelsInputError, match="Nearest valid value: 81"):
        av_latent_shape(80, 16.0, 480, 832)
    with pytest.raises(SkyReelsInputError, match="fps"):
        av_latent_shape(81, 0.0, 480, 832)


def _fake_call(log):
    """(context, cross_modal) -> distinct constant velocities that encode which pass produced them."""

    def call(context, cross_modal):
        log.append((float(context[0, 0, 0]), cross_modal))
        base = float(context[0, 0, 0]) + (0.0 if cross_modal else 100.0)
        return torch.full((1, 2), base), torch.full((1, 3), 10 * base)

    return call


def guided_av_velocity(call, context, negative, vcfg, acfg, sync):
    """What AVDenoiser does with AVGuidance: run the branches it names, combine their (video, audio) velocities."""
    guidance = AVGuidance(vcfg, acfg, sync)
    contexts = {"cond": (context, True), "uncond": (negative, True), "nocross": (context, False)}
    preds = {b: call(*contexts[b]) for b in guidance.branches(negative is not None)}
    video, audio = guidance.combine(preds)
    return types.SimpleNamespace(video=video, audio=audio)


@pytest.mark.parametrize("vcfg, acfg, sync", [(1.0, 1.0, 1.0), (3.0, 1.0, 1.0), (1.0, 5.0, 2.5), (3.0, 5.0, 0.5)])
def test_guidance_formula_and_number_of_passes(vcfg, acfg, sync):
    log = []
    pos, neg = torch.full((1, 1, 1), 2.0), torch.full((1, 1, 1), -1.0)
    out = guided_av_velocity(_fake_call(log), pos, neg, vcfg, acfg, sync)
    vc, ac, vu, au, vn, an = 2.0, 20.0, -1.0, -10.0, 102.0, 1020.0
    expected_v = vu + vcfg * (vc - vu) + (sync - 1) * (vc - vn)
    expected_a = au + acfg * (ac - au) + (sync - 1) * (ac - an)
    torch.testing.assert_close(out.video, torch.full((1, 2), expected_v))
    torch.testing.assert_close(out.audio, torch.full((1, 3), expected_a))
    assert len(log) == 1 + (vcfg != 1 or acfg != 1) + (sync != 1)
    assert ((2.0, False) in log) == (sync != 1)


def test_guidance_cfg_one_is_exactly_the_conditional_velocity():
    out = guided_av_velocity(_fake_call([]), torch.full((1, 1, 1), 0.1), torch.full((1, 1, 1), 0.7), 1.0, 3.0, 1.0)
    assert torch.equal(out.video, torch.full((1, 2), 0.1))  # no v_u + (v_c - v_u) rounding


def _manual_euler(model, steps, shift, vcfg, acfg, sync, seed=5):
    """Independent reference: plain flow-Euler loop over the model with per-modality CFG + sync guidance."""
    sigmas, _ = flow_sigmas(steps, shift)
    xv = seeded_noise(SHAPE.as_tuple(), seed)
    xa = seeded_noise((1, 40, NUM_AUDIO), audio_seed(seed))
    zeros = torch.zeros(1, 17, *SHAPE.as_tuple()[2:])
    for i in range(steps):
        t = torch.tensor([float(sigmas[i]) * 1000.0])

        def f(ctx, cross, xv=xv, xa=xa, t=t):
            return model(VideoStream(torch.cat([xv, zeros], 1)), AudioStream(xa), t, ctx, fps=16.0, cross_modal=cross)

        (vc, ac), (vu, au), (vn, an) = (
            f(BASE["context"], True),
            f(BASE["negative_context"], True),
            f(BASE["context"], False),
        )
        v = vu + vcfg * (vc - vu) + (sync - 1) * (vc - vn)
        a = au + acfg * (ac - au) + (sync - 1) * (ac - an)
        dt = float(sigmas[i + 1] - sigmas[i])
        xv, xa = xv + dt * v, xa + dt * a
    return xv, model.denormalize_audio(xa)


@pytest.mark.parametrize("sync", [1.0, 2.0])
def test_sample_matches_an_independent_euler_loop(model, sync):
    video, audio = _run(model, solver="euler", sync_scale=sync)
    ref_v, ref_a = _manual_euler(model, 2, 3.0, 4.0, 2.0, sync)
    torch.testing.assert_close(video, ref_v, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(audio, ref_a, rtol=1e-5, atol=1e-5)


def test_sync_scale_one_is_plain_cfg_exactly_and_other_values_differ(model):
    class NoCross(torch.nn.Module):  # plain CFG: the cross_modal=False pass must never run
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.denormalize_audio = inner.denormalize_audio

        def forward(self, *args, cross_modal=True, **kwargs):
            assert cross_modal, "sync pass ran with sync_scale 1"
            return self.inner(*args, cross_modal=cross_modal, **kwargs)

    plain = _run(NoCross(model), solver="unipc")
    assert all(torch.equal(a, b) for a, b in zip(plain, _run(model, solver="unipc", sync_scale=1.0), strict=True))
    synced = _run(model, solver="unipc", sync_scale=3.0)
    assert not torch.allclose(plain[0], synced[0]) and not torch.allclose(plain[1], synced[1])


def test_per_modality_cfg_at_the_first_step(model):
    """One Euler step: the video update uses only the video velocity, so with video_cfg 1 it must not depend on
    audio_cfg at all (and equal the no-uncond run), while the audio changes."""
    runs = [_run(model, steps=1, video_cfg=1.0, audio_cfg=g) for g in (1.0, 3.0, 6.0)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[1][0], runs[2][0])
    assert not torch.allclose(runs[1][1], runs[2][1]) and not torch.allclose(runs[0][1], runs[1][1])
    v3, v6 = (_run(model, steps=1, video_cfg=g, audio_cfg=1.0) for g in (3.0, 6.0))
    assert torch.equal(v3[1], v6[1]) and not torch.allclose(v3[0], v6[0])


def test_same_seed_same_result_and_callback(model):
    seen = []
    a = _run(model, solver="unipc", callback=lambda i, n, x0: seen.append((i, n, tuple(x0.shape))))
    b = _run(model, solver="unipc")
    c = _run(model, solver="unipc", seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.allclose(a[0], c[0]) and not torch.allclose(a[1], c[1])
    assert seen == [(1, 2, SHAPE.as_tuple()), (2, 2, SHAPE.as_tuple())]
    assert a[0].shape == SHAPE.as_tuple() and a[1].shape == (1, 40, NUM_AUDIO)


def test_callback_raising_cancels(model):
    def stop(i, n, x0):
        raise InterruptedError("cancel")

    with pytest.raises(InterruptedError):
        _run(model, callback=stop)


@pytest.mark.parametrize("sampler", ["euler", "unipc"])
def test_condition_positions_come_back_unchanged(model, sampler):
    gen = torch.Generator().manual_seed(3)
    mask = torch.zeros(1, 1, *SHAPE.as_tuple()[2:])
    mask[:, :, 0] = 1.0  # first latent frame (I2V)
    mask[:, :, 2, 1:3, :2] = 1.0  # and a patch of the last one (editing)
    latent = torch.randn(SHAPE.as_tuple(), generator=gen) * mask
    video, _ = _run(model, solver=sampler, condition=VideoCondition(latent, mask))
    keep = mask.expand_as(video).bool()
    assert torch.equal(video[keep], latent[keep])
    assert not torch.allclose(video[~keep], torch.zeros_like(video[~keep]))
    free, _ = _run(model, solver=sampler)
    assert not torch.allclose(video[~keep], free[~keep])  # the condition steers the rest


def test_references_reach_the_model(model):
    gen = torch.Generator().manual_seed(4)
    video_refs = torch.randn(1, 16, 2, 4, 4, generator=gen)
    audio_refs = torch.randn(1, 40, 7, generator=gen)
    plain = _run(model)
    with_video = _run(model, video_refs=video_refs)
    with_audio = _run(model, audio_refs=audio_refs)
    assert with_video[0].shape == plain[0].shape and not torch.allclose(with_video[0], plain[0])
    assert with_audio[1].shape == plain[1].shape and not torch.allclose(with_audio[1], plain[1])
    with pytest.raises(SkyReelsInputError, match="refs"):
        _run(model, video_refs=torch.zeros(1, 16, 1, 2, 2))


def test_audio_is_denormalised_with_the_model_statistics():
    model = _model()
    before = _run(model, steps=1)[1]
    mean, std = model.audio_latent_mean.clone(), model.audio_latent_std.clone()
    model.audio_latent_mean += 1.5
    model.audio_latent_std *= 2.0  # the DiT works in normalised space, so only the final mapping changes
    after = _run(model, steps=1)[1]
    expected = (before - mean[:, None]) / std[:, None] * (2 * std[:, None]) + mean[:, None] + 1.5
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_single_modality_models():
    video_only = _model(dataclasses.replace(AVDiTConfig.TINY, model_type=ModelType.VIDEO_ONLY))
    v, a = _run(video_only, num_audio_latents=0)
    assert a is None and v.shape == SHAPE.as_tuple()
    with pytest.raises(SkyReelsInputError, match="video-only"):
        _run(video_only)
    audio_only = _model(dataclasses.replace(AVDiTConfig.TINY, model_type=ModelType.AUDIO_ONLY))
    v, a = _run(audio_only, video_shape=None)
    assert v is None and a.shape == (1, 40, NUM_AUDIO)


class _NeverCalled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *args, **kwargs):
        raise AssertionError("the model must not run for invalid inputs")


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": 0},
        {"solver": "ddim"},
        {"fps": 0.0},
        {"context": torch.zeros(5, TEXT_DIM)},
        {"video_shape": None, "num_audio_latents": 0},
        {"condition": VideoCondition(torch.zeros(1, 16, 2, 4, 4), torch.zeros(1, 1, 2, 4, 4))},
    ],
)
def test_bad_inputs_raise_before_any_model_call(bad):
    with pytest.raises(SkyReelsInputError):
        _run(_NeverCalled(), **bad)


def generate_av(model, vae, codec, context, negative_context=None, *, frames, fps, height, width, steps,
                image=None, reference_images=None, reference_audio=None):
    """The README's Python API recipe for SkyReels-V4: shapes -> condition + references -> sample_av -> decode."""
    shape, num_audio = av_latent_shape(frames, fps, height, width)
    condition = build_condition(vae, shape, image=image)
    video_refs = encode_references(vae, reference_images, None, shape)
    audio_refs = None if reference_audio is None else encode_audio(codec, reference_audio, "reference audio")
    latent, audio = sample_av(model, video_shape=shape, num_audio_latents=num_audio, context=context,
                              negative_context=negative_context, steps=steps, fps=fps, condition=condition,
                              video_refs=video_refs, audio_refs=audio_refs)
    return vae.decode(latent), codec.decode(audio, num_samples=num_samples_for(frames / fps))


def test_generate_av_bad_frames_fail_before_encoding():
    with pytest.raises(SkyReelsInputError, match="Nearest valid value: 9"):
        generate_av(_NeverCalled(), None, None, _ctx(1), frames=10, fps=16.0, height=32, width=32, steps=1)


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codec")
    save_file(tiny_vae_state_dict(), str(folder / "vae.safetensors"))
    torch.save({"generator": tiny_vocoder_state_dict()}, str(folder / "voc.pt"))
    return load_audio_codec(folder / "vae.safetensors", folder / "voc.pt")


@pytest.mark.parametrize("frames, fps", [(5, 16.0), (9, 24.0)])
def test_generate_av_returns_video_and_exactly_trimmed_audio(model, codec, frames, fps):
    torch.manual_seed(0)
    vae = WanVAE(VAE3DConfig.TINY).eval()
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    reference_audio = {"waveform": 0.1 * torch.randn(1, 1, 8000, generator=torch.Generator()), "sample_rate": 16000}
    video, wave = generate_av(
        model,
        vae,
        codec,
        _ctx(1),
        _ctx(2),
        frames=frames,
        fps=fps,
        height=32,
        width=32,
        steps=1,
        image=image,
        reference_images=[image],
        reference_audio=reference_audio,
    )
    assert video.shape == (1, 3, frames, 32, 32) and video.abs().max() <= 1.0
    assert wave.shape == (1, 1, round(frames / fps * 44100)) and torch.isfinite(wave).all()


# hi-res keyframes (base model of the two-stage path)

KEYFRAMES = Keyframes(plan_keyframes(SHAPE.frames, 2), 8, 8)  # latent frames (0, 2) at twice the 4x4 size


def test_layout_packs_keyframes_after_video_and_audio():
    layout = AVLayout((2, 16, 3, 4, 4), (2, 40, 5), (2, 16, 2, 8, 8))
    video, audio, keyframes = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 40, 5), torch.randn(2, 16, 2, 8, 8)
    packed = layout.pack(video, audio, keyframes)
    assert packed.shape == (2, 768 + 200 + 2048)
    assert torch.equal(packed[:, :968], AVLayout((2, 16, 3, 4, 4), (2, 40, 5)).pack(video, audio))
    out_v, out_a = layout.unpack(packed)
    assert torch.equal(out_v, video) and torch.equal(out_a, audio) and torch.equal(layout.unpack_keyframes(packed),
                                                                                   keyframes)
    assert AVLayout((2, 16, 3, 4, 4), None).unpack_keyframes(video.flatten(1)) is None


def test_zero_keyframes_is_exactly_the_run_without_them(model):
    plain = _run(model, solver="unipc")
    video, audio, keyframes = _run(model, solver="unipc", keyframes=Keyframes((), 8, 8))
    assert torch.equal(video, plain[0]) and torch.equal(audio, plain[1]) and keyframes.shape == (1, 16, 0, 8, 8)


def _manual_euler_keyframes(model, steps, shift, vcfg, acfg, keyframes, seed=5):
    """Independent reference: flow-Euler over video, audio and keyframes with per-modality CFG (keyframes: video's)."""
    sigmas, _ = flow_sigmas(steps, shift)
    xv = seeded_noise(SHAPE.as_tuple(), seed)
    xa = seeded_noise((1, 40, NUM_AUDIO), audio_seed(seed))
    xk = seeded_noise(keyframes.shape(1), keyframe_seed(seed))
    zeros_v, zeros_k = torch.zeros(1, 17, *SHAPE.as_tuple()[2:]), torch.zeros(1, 17, *xk.shape[2:])
    for i in range(steps):
        t = torch.tensor([float(sigmas[i]) * 1000.0])

        def f(ctx, xv=xv, xa=xa, xk=xk, t=t):
            stream = VideoStream(torch.cat([xv, zeros_v], 1), keyframes=torch.cat([xk, zeros_k], 1),
                                 keyframe_index=keyframes.indices)
            return model(stream, AudioStream(xa), t, ctx, fps=16.0)

        (vc, ac, kc), (vu, au, ku) = f(BASE["context"]), f(BASE["negative_context"])
        dt = float(sigmas[i + 1] - sigmas[i])
        xv = xv + dt * (vu + vcfg * (vc - vu))
        xa = xa + dt * (au + acfg * (ac - au))
        xk = xk + dt * (ku + vcfg * (kc - ku))
    return xv, model.denormalize_audio(xa), xk


def test_keyframes_sample_matches_an_independent_euler_loop(model):
    video, audio, keyframes = _run(model, solver="euler", keyframes=KEYFRAMES)
    ref_v, ref_a, ref_k = _manual_euler_keyframes(model, 2, 3.0, 4.0, 2.0, KEYFRAMES)
    assert keyframes.shape == (1, 16, 2, 8, 8)
    torch.testing.assert_close(video, ref_v, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(audio, ref_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(keyframes, ref_k, rtol=1e-5, atol=1e-5)
    plain_v, _ = _run(model, solver="euler")
    assert not torch.allclose(video, plain_v)  # the video saw the keyframes


def test_keyframe_condition_comes_back_unchanged(model):
    hi = torch.randn(1, 16, SHAPE.frames, 8, 8, generator=torch.Generator().manual_seed(8))
    mask = torch.zeros(1, 1, SHAPE.frames, 8, 8)
    mask[:, :, 0] = 1.0  # e.g. the I2V start image at hi-res
    condition = keyframe_condition(VideoCondition(hi * mask, mask), KEYFRAMES.indices)
    _, _, keyframes = _run(model, keyframes=Keyframes(KEYFRAMES.indices, 8, 8, condition))
    assert torch.equal(keyframes[:, :, 0], hi[:, :, 0]) and not torch.allclose(keyframes[:, :, 1], hi[:, :, 2])


@pytest.mark.parametrize(
    "bad",
    [
        {"keyframes": Keyframes((0, 3), 8, 8)},  # index past the 3 latent frames
        {"keyframes": Keyframes((0,), 2, 8)},  # smaller than the low-res latent
        {"keyframes": Keyframes((0,), 8, 7)},  # not a multiple of the patch
        {"keyframes": KEYFRAMES, "video_shape": None},
    ],
)
def test_bad_keyframes_raise_before_any_model_call(bad):
    with pytest.raises(SkyReelsInputError):
        _run(_NeverCalled(), **bad)
