"""SkyReels-V3 talking avatar (A2V) recipe: planning, schedule, guidance, colour matching, and the windows it runs,
checked with a recording stand-in DiT and VAE against research/skyreels_v3.md §8-9."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from scripts.tiny_builders import tiny_video_vae_state_dict
from skyreels_core.conditioning.color import lab_to_rgb, match_color, rgb_to_lab
from skyreels_core.conditioning.images import fit_crop
from skyreels_core.conditioning.speech import audio_windows, pad_reversed
from skyreels_core.errors import SkyReelsInputError
from skyreels_core.models.video_vae import VAE3DConfig, WanVAE
from skyreels_core.pipelines import avatar
from skyreels_core.sampling.guidance import TextAudioCFG
from skyreels_core.sampling.schedules import shifted_timestep_grid

torch.set_num_threads(1)

SIZE = dict(width=16, height=16)


# ---------------------------------------------------------------- fakes


def _features(frames):
    """[T, 12, 768] whose every value is its frame index (so windows can be read back)."""
    return torch.arange(frames, dtype=torch.float32)[:, None, None].expand(-1, 12, 768).clone()


class FakeDiT(torch.nn.Module):
    """Records every call; returns a deterministic velocity of its inputs."""

    def __init__(self, i2v=True, adapter=True):
        super().__init__()
        self.config = SimpleNamespace(is_i2v=i2v, in_dim=36 if i2v else 16, audio_adapter=adapter)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, x, t, context, clip_fea=None, y=None, audio=None):
        self.calls.append(dict(x=x.clone(), t=t.clone(), context=context, clip_fea=clip_fea, y=y, audio=audio))
        return 0.1 * x + 0.01 * y[:, 4:] + 1e-4 * audio.mean() + 1e-3 * context.mean()


class FakeVAE:
    """Latent j = frame 4j (frame 0 for j = 0) averaged over 8x8 pixels, channels repeated to 16; decode inverts."""

    def __init__(self):
        self.encoded, self.decoded = [], []

    def encode(self, video, callback=None):
        self.encoded.append(video.clone())
        rgb = F.avg_pool3d(video[:, :, ::4], (1, 8, 8))
        return torch.cat([rgb] * 5 + [rgb[:, :1]], dim=1)

    def decode(self, latent, callback=None):
        rgb = latent[:, :3]
        frames = torch.cat([rgb[:, :, :1], rgb[:, :, 1:].repeat_interleave(4, dim=2)], dim=2)
        self.decoded.append(F.interpolate(frames, scale_factor=(1, 8, 8), mode="nearest").clamp(-1, 1))
        return self.decoded[-1]


class FakeCLIP:
    def __init__(self):
        self.images = []

    def __call__(self, image):
        self.images.append(image.clone())
        return image.mean().expand(1, 257, 1280).clone()


def _portrait(h=24, w=20):
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(0))


def _run(frames, model=None, **kwargs):
    model, vae, clip = model or FakeDiT(), FakeVAE(), FakeCLIP()
    positive, connection = torch.ones(1, 3, 8), torch.full((1, 3, 8), 2.0)
    out = avatar.talking_avatar(model, vae, clip, _portrait(), _features(frames), positive, connection,
                                **SIZE, **kwargs)
    return out, model, vae, clip


# ---------------------------------------------------------------- planning


def test_padding_window_count_and_plan():
    assert [avatar.padded_frames(n) for n in (81, 82, 145, 146, 500)] == [81, 145, 145, 209, 529]
    assert [avatar.window_count(n) for n in (81, 145, 529)] == [1, 2, 8]
    plan = avatar.plan_talking_avatar(500)
    assert (plan.frames, plan.padded, plan.windows) == (500, 529, 8) and len(plan.key_frames) == 8
    short = avatar.plan_talking_avatar(50)
    assert (short.frames, short.windows, short.key_frames) == (50, 0, ())


def test_key_frame_indices_match_the_research_examples():
    assert avatar.key_frame_indices(500) == [13, 23, 33, 44, 54, 64, 74, 80]
    assert avatar.key_frame_indices(127) == [51, 80]
    assert avatar.key_frame_indices(81) == [80]
    # one key frame per window for every padded length, the last always the clip's last frame
    for frames in (81, 100, 300, 4990, 5000):
        plan = avatar.plan_talking_avatar(frames)
        assert len(plan.key_frames) == plan.windows and plan.key_frames[-1] == 80


def test_kept_frames_tile_the_padded_timeline():
    assert avatar.kept_frames(0, 1) == (0, 81)
    assert avatar.kept_frames(0, 3) == (0, 69) and avatar.kept_frames(1, 3) == (5, 69)
    assert avatar.kept_frames(2, 3) == (5, 81)
    for windows in range(1, 6):
        covered = []
        for k in range(windows):
            start, end = avatar.kept_frames(k, windows)
            covered += [64 * k + f for f in range(start, end)]
        assert covered == list(range(81 + 64 * (windows - 1)))


def test_pad_features_mirrors_the_tail():
    features = torch.arange(90.0)[:, None]
    padded = pad_reversed(features, 145)
    assert padded.shape == (145, 1)
    assert padded[:90, 0].tolist() == list(range(90))
    assert padded[90:, 0].tolist() == list(range(89, 34, -1))  # the last 55 frames backwards


# ---------------------------------------------------------------- schedule, guidance, colour


def test_schedule_is_shifted_linear_timesteps():
    t = shifted_timestep_grid(4, 11.0) * 1000
    assert torch.allclose(t, torch.tensor([1000, 956.58, 846.54, 10.89, 0], dtype=torch.float64), atol=0.01)
    assert len(shifted_timestep_grid(40, 11.0)) == 41
    # sigma * 1000 gives back exactly the float32 timesteps the reference computes (and passes as floats)
    t32 = torch.cat([torch.linspace(1000, 1, 4, dtype=torch.float32), torch.zeros(1)]) / 1000
    assert torch.equal(t.float(), 11.0 * t32 / (1 + 10.0 * t32) * 1000)


def test_text_audio_cfg_branches_and_formula():
    g = TextAudioCFG(3.0, 2.0)
    assert g.branches(True) == ("cond", "uncond_text", "uncond")
    assert g.branches(False) == ("cond", "uncond_audio")
    assert TextAudioCFG(3.0, 1.0).branches(True) == ("cond", "uncond_text")
    assert TextAudioCFG(1.0, 1.0).branches(True) == ("cond",)
    c, ut, u, ua = (torch.tensor(v) for v in (5.0, 2.0, 1.0, 4.0))
    assert g.combine({"cond": c, "uncond_text": ut, "uncond": u}) == u + 3.0 * (c - ut) + 2.0 * (ut - u)
    assert g.combine({"cond": c, "uncond_audio": ua}) == ua + 2.0 * (c - ua)
    assert TextAudioCFG(3.0).combine({"cond": c, "uncond_text": ut}) == ut + 3.0 * (c - ut)


def _pixel(r, g, b):
    return torch.tensor([r, g, b], dtype=torch.float32).view(3, 1, 1)


def test_rgb_to_lab_known_values_and_round_trip():
    white = rgb_to_lab(_pixel(1, 1, 1)).flatten()
    red = rgb_to_lab(_pixel(1, 0, 0)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(red, torch.tensor([53.24, 80.09, 67.20]), atol=0.01)
    assert torch.allclose(rgb_to_lab(_pixel(0, 0, 0)).flatten(), torch.zeros(3), atol=1e-4)
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lab_to_rgb(rgb_to_lab(image)), image, atol=1e-3)


def test_match_color_moves_every_frame_to_the_reference_statistics():
    generator = torch.Generator().manual_seed(2)
    reference = torch.rand(3, 16, 16, generator=generator) * 0.5 + 0.25
    frames = torch.rand(3, 3, 16, 16, generator=generator) * 0.3  # darker
    matched = rgb_to_lab(match_color(frames, reference)).flatten(2)
    ref = rgb_to_lab(reference[None]).flatten(2)
    assert torch.allclose(matched.mean(-1), ref.mean(-1).expand(3, -1), atol=0.5)
    assert torch.allclose(matched.std(-1, unbiased=False), ref.std(-1, unbiased=False).expand(3, -1), atol=0.5)
    assert torch.equal(match_color(frames, reference, 0.0), frames)


# ---------------------------------------------------------------- the recipe, recorded


def _mask(known):
    """The 4 mask channels per latent frame: [4, 21] from a per-pixel-frame flag list of 81."""
    flags = torch.tensor([known[0]] * 4 + known[1:], dtype=torch.float32)
    return flags.view(21, 4).T


def test_windows_calls_masks_text_and_speech():
    steps = 4
    out, model, vae, clip = _run(150, steps=steps)  # 150 -> padded 209 -> 3 windows
    assert out.shape == (150, 16, 16, 3) and 0 <= out.min() and out.max() <= 1
    assert len(model.calls) == (1 + 3) * steps
    passes = [model.calls[i * steps:(i + 1) * steps] for i in range(4)]
    expected_t = torch.tensor([1000.0, 956.5841, 846.5437, 10.8911])  # floats: not truncated to 10
    for calls in passes:
        assert torch.allclose(torch.stack([c["t"][0] for c in calls]), expected_t, atol=1e-4)
        assert all(c["t"].dtype == torch.float32 for c in calls)
    # key-frame pass: user prompt, mask on frame 0 only; windows: connection prompt, motion + last 5 frames
    known = [
        [1] + [0] * 80,
        [1] + [0] * 75 + [1] * 5,
        [1] * 5 + [0] * 71 + [1] * 5,
        [1] * 5 + [0] * 71 + [1] * 5,
    ]
    for p, calls in enumerate(passes):
        y = calls[0]["y"]
        assert y.shape == (1, 20, 21, 2, 2)
        assert torch.equal(y[0, :4, :, 0, 0], _mask(known[p]))
        assert calls[0]["context"].eq(1.0 if p == 0 else 2.0).all()
        start = 0 if p == 0 else 64 * (p - 1)
        audio = calls[0]["audio"]
        assert audio.shape == (1, 81, 5, 12, 768)
        assert torch.equal(audio, audio_windows(pad_reversed(_features(150), 209), start))
    # spelled out: latent frame j holds pixel frames 4j-3..4j on its 4 mask channels (frame 0 four times)
    first_window, later_window = passes[1][0]["y"][0, :4, :, 0, 0], passes[2][0]["y"][0, :4, :, 0, 0]
    assert first_window[:, 0].eq(1).all() and not first_window[:, 1:19].any()
    assert later_window[:, :2].eq(1).all() and not later_window[:, 2:19].any()
    for mask in (first_window, later_window):
        assert mask[:, 19].tolist() == [0, 0, 0, 1] and mask[:, 20].eq(1).all()  # key frame on pixel frames 76-80
    # the speech beyond 150 frames is the mirrored tail: frame 150 hears frame 149, frame 151 frame 148
    assert passes[3][0]["audio"][0, 150 - 128, 2, 0, 0] == 149 and passes[3][0]["audio"][0, 151 - 128, 2, 0, 0] == 148
    # condition videos: portrait first, then for k > 0 the previous window's last 5 kept frames
    assert len(vae.encoded) == 4 and len(clip.images) == 4
    assert torch.equal(clip.images[0], clip.images[1])
    for k in (1, 2):
        assert torch.allclose(clip.images[k + 1][0], out[64 * k], atol=1e-5)


def test_key_frames_come_from_the_colour_matched_key_frame_pass():
    _, _, vae, _ = _run(150, steps=1)
    plan = avatar.plan_talking_avatar(150)
    assert plan.key_frames == (31, 55, 80)  # boundaries 0, 80, 144, 208 of the padded 209 frames onto 0..80
    portrait = (fit_crop(_portrait(), 16, 16)[0] + 1) * 0.5
    key_clip = match_color((vae.decoded[0][0].permute(1, 0, 2, 3) + 1) * 0.5, portrait) * 2 - 1
    for k in range(3):
        condition = vae.encoded[k + 1][0]
        assert torch.allclose(condition[:, -5:], key_clip[plan.key_frames[k]][:, None].expand(-1, 5, -1, -1))
        assert not condition[:, 5:76].any()  # grey between


def test_motion_latents_reinjected_after_every_update():
    steps, seed = 3, 7
    _, model, vae, _ = _run(150, steps=steps, seed=seed)
    sigmas = shifted_timestep_grid(steps, 11.0)
    for window in (1, 2):  # loop windows after the first: passes 2 and 3
        calls = model.calls[(window + 1) * steps:(window + 2) * steps]
        motion = calls[0]["y"][:, 4:, :2]  # VAE(condition video), before the mask concat
        generator = avatar._window_generator(seed, window + 1)
        start = torch.randn((1, 16, 21, 2, 2), generator=generator)
        for i, call in enumerate(calls):
            fresh = torch.randn((1, 16, 2, 2, 2), generator=generator)
            level = float(sigmas[i])
            assert torch.allclose(call["x"][:, :, :2], motion * (1 - level) + fresh * level, atol=1e-6)
        assert torch.equal(calls[0]["x"][:, :, 2:], start[:, :, 2:])
    # the first loop window and the key-frame pass start from plain noise
    for p in (0, 1):
        start = torch.randn((1, 16, 21, 2, 2), generator=avatar._window_generator(seed, p))
        assert torch.equal(model.calls[p * steps]["x"], start)


def test_motion_frames_end_exactly_clean():
    motion = torch.randn(1, 16, 2, 2, 2)
    condition = avatar.WindowCondition(y=torch.randn(1, 20, 21, 2, 2), clip_fea=torch.zeros(1, 257, 1280),
                                       motion=motion)
    latent = avatar.sample_window(FakeDiT(), condition, torch.zeros(1, 81, 5, 12, 768), positive=torch.ones(1, 3, 8))
    assert torch.equal(latent[:, :, :2], motion)


def test_short_speech_is_the_key_frame_pass_alone():
    out, model, _, _ = _run(50, steps=2)
    assert out.shape == (50, 16, 16, 3) and len(model.calls) == 2
    audio = model.calls[0]["audio"]
    assert audio[0, 80, :, 0, 0].tolist() == [49.0] * 5  # clamped to the last frame, not mirrored


def test_guidance_branches_use_negative_text_and_zero_speech():
    negative = torch.zeros(1, 3, 8)
    out, model, _, _ = _run(50, steps=1, text_cfg=2.0, audio_cfg=3.0, negative=negative)
    cond, uncond_text, uncond = model.calls
    assert cond["context"].eq(1).all() and uncond_text["context"].eq(0).all() and uncond["context"].eq(0).all()
    assert cond["audio"].any() and uncond_text["audio"].any() and not uncond["audio"].any()
    _, model, _, _ = _run(50, steps=1, audio_cfg=3.0)
    cond, uncond_audio = model.calls
    assert uncond_audio["context"].eq(1).all() and not uncond_audio["audio"].any()


def test_bucket_sizes():
    assert avatar.avatar_size(1280, 720, "720P") == (1280, 720)
    assert avatar.avatar_size(720, 1280, "720P") == (720, 1280)
    assert avatar.avatar_size(500, 500, "480P") == (640, 640)
    assert avatar.avatar_size(480, 832, "480P") == (480, 832)


# ---------------------------------------------------------------- bad inputs: before any encoder, VAE or DiT call


class _Untouchable:
    def __getattr__(self, name):
        raise AssertionError("must not run on bad input")

    def __call__(self, *args, **kwargs):
        raise AssertionError("must not run on bad input")


def _never_called(**config):
    model = FakeDiT(**config)
    model.forward = None
    return model


@pytest.mark.parametrize("model_config, frames, kwargs, match", [
    (dict(i2v=False), 100, {}, "I2V DiT"),
    (dict(adapter=False), 100, {}, "no speech adapter"),
    ({}, 9, {}, "at least 0.4 s"),
    ({}, 5001, {}, "longer than the 200 s"),
    ({}, 100, dict(resolution="540P", width=None, height=None), "no 540P buckets"),
    ({}, 100, dict(resolution="1080P", width=None, height=None), "480P or 720P"),
    ({}, 100, dict(width=20), "multiple of 16"),
    ({}, 100, dict(width=None), "Give both width and height"),
    ({}, 100, dict(text_cfg=2.0), "needs a negative prompt"),
    ({}, 100, dict(audio_cfg=float("nan")), "finite"),
    ({}, 100, dict(steps=0), "steps"),
])
def test_bad_inputs_rejected_before_any_model_call(model_config, frames, kwargs, match):
    kwargs = {**SIZE, **kwargs}
    with pytest.raises(SkyReelsInputError, match=match):
        avatar.talking_avatar(_never_called(**model_config), _Untouchable(), _Untouchable(), _portrait(),
                              _features(frames), torch.ones(1, 3, 8), torch.ones(1, 3, 8), **kwargs)


def test_bad_features_rejected():
    for features in (torch.zeros(100, 768), torch.zeros(100, 13, 768), "speech"):
        with pytest.raises(SkyReelsInputError, match=r"\[T, 12, 768\]"):
            avatar.check_talking_avatar(FakeDiT(), _portrait(), features)
    nan = _features(100)
    nan[3] = float("nan")
    with pytest.raises(SkyReelsInputError, match="NaN"):
        avatar.check_talking_avatar(FakeDiT(), _portrait(), nan)


def test_end_to_end_with_the_tiny_wan_vae():
    vae = WanVAE(VAE3DConfig.TINY)
    vae.load_state_dict(tiny_video_vae_state_dict())
    model, clip = FakeDiT(), FakeCLIP()
    out = avatar.talking_avatar(model, vae, clip, _portrait(), _features(100), torch.ones(1, 3, 8),
                                torch.ones(1, 3, 8), steps=1, **SIZE)
    assert out.shape == (100, 16, 16, 3) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert len(model.calls) == 3  # key-frame pass + 2 windows (100 -> 145 frames)
    assert model.calls[2]["y"].shape == (1, 20, 21, 2, 2)


def test_lab_conversions_match_kornia():
    kornia = pytest.importorskip("kornia")
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    lab = kornia.color.rgb_to_lab(image)
    assert torch.allclose(rgb_to_lab(image), lab, atol=1e-4)
    shifted = lab + torch.tensor([5.0, -20.0, 30.0]).view(1, 3, 1, 1)  # some values leave the sRGB gamut
    assert torch.allclose(lab_to_rgb(shifted), kornia.color.lab_to_rgb(shifted), atol=1e-5)


def test_euler_update_is_the_reference_step_and_progress_counts_every_pass():
    class ConstantVelocity(FakeDiT):
        def forward(self, x, t, context, clip_fea=None, y=None, audio=None):
            super().forward(x, t, context, clip_fea, y, audio)
            return torch.full_like(x, 0.5)

    condition = avatar.WindowCondition(y=torch.zeros(1, 20, 21, 2, 2), clip_fea=torch.zeros(1, 257, 1280), motion=None)
    model = ConstantVelocity()
    latent = avatar.sample_window(model, condition, torch.zeros(1, 81, 5, 12, 768), positive=torch.ones(1, 3, 8),
                                  seed=3)
    # x <- x - v (t_i - t_{i+1}) / 1000 summed over the grid: from t = 1000 to 0, x_end = x_start - v
    assert torch.allclose(latent, model.calls[0]["x"] - 0.5, atol=1e-6)

    progress = []
    _run(150, steps=2, callback=lambda done, total, x0: progress.append((done, total)))
    assert progress == [(i, 8) for i in range(1, 9)]  # key-frame pass + 3 windows, 2 steps each
