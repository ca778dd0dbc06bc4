"""T2V / I2V sampling loop with the tiny real DiT and VAE (random weights, real layouts)."""

import pytest
import torch

from skyreels_core.errors import SkyReelsInputError
from skyreels_core.models.video_vae import VAE3DConfig, WanVAE
from skyreels_core.models.wan_dit import TINY, WanDiTConfig, WanModel
from skyreels_core.pipelines.video import i2v_mask, make_i2v_condition, sample_video
from skyreels_core.shapes import VideoLatentShape


def _dit(config=TINY, seed=0):
    torch.manual_seed(seed)
    model = WanModel(config)
    for p in model.parameters():  # Wan zero-inits nothing we rely on; make outputs non-trivial
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return WanVAE(VAE3DConfig.TINY).eval()


def _ctx(seed, width=TINY.text_dim):
    return torch.randn(1, 6, width, generator=torch.Generator().manual_seed(seed))


def test_i2v_mask_matches_wan_convention():
    known = torch.zeros(9, dtype=torch.bool)
    known[0] = True
    mask = i2v_mask(known, 2, 3)
    assert mask.shape == (4, 3, 2, 3)
    assert torch.all(mask[:, 0] == 1) and torch.all(mask[:, 1:] == 0)
    known[-1] = True  # first + last frame: last latent frame covers pixel frames 5..8, only 8 is given
    mask = i2v_mask(known, 1, 1)
    assert mask[:, 2, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_same_seed_same_latent_and_steps_reported():
    model = _dit()
    latent = torch.zeros(1, 16, 2, 4, 4)
    seen = []
    kwargs = dict(positive=_ctx(1), negative=_ctx(2), steps=3, cfg=5.0, shift=8.0)
    a = sample_video(model, latent, seed=7, callback=lambda i, n, x0: seen.append((i, n, x0.shape)), **kwargs)
    b = sample_video(model, latent, seed=7, **kwargs)
    c = sample_video(model, latent, seed=8, **kwargs)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    assert torch.isfinite(a).all() and a.shape == latent.shape


def test_cfg_one_ignores_negative_and_euler_differs_from_unipc():
    model = _dit()
    latent = torch.zeros(1, 16, 1, 4, 4)
    base = dict(positive=_ctx(1), steps=3, cfg=1.0, shift=8.0, seed=3)
    with_neg = sample_video(model, latent, negative=_ctx(2), **base)
    without = sample_video(model, latent, negative=None, **base)
    assert torch.equal(with_neg, without)
    euler = sample_video(model, latent, negative=None, solver="euler", **base)
    assert not torch.allclose(euler, without)


def test_denoise_keeps_input_close():
    model = _dit()
    start = torch.randn(1, 16, 1, 4, 4)
    kwargs = dict(positive=_ctx(1), negative=None, steps=4, cfg=1.0, shift=1.0, seed=0)
    light = sample_video(model, start, denoise=0.1, **kwargs)
    full = sample_video(model, start, denoise=1.0, **kwargs)
    assert (light - start).abs().mean() < (full - start).abs().mean()


def test_cancel_from_callback_stops_sampling():
    model = _dit()

    def cancel(i, n, x0):
        if i == 1:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        sample_video(model, torch.zeros(1, 16, 1, 4, 4), positive=_ctx(1), negative=None, steps=5, cfg=1.0,
                     shift=8.0, seed=0, callback=cancel)


def test_bad_inputs_are_clear():
    model = _dit()
    latent = torch.zeros(1, 16, 1, 4, 4)
    for kwargs, match in (({"steps": 0}, "steps"), ({"solver": "dpm"}, "unipc"), ({"denoise": 0.0}, "denoise")):
        args = dict(positive=_ctx(1), negative=None, steps=2, cfg=1.0, shift=8.0, seed=0) | kwargs
        with pytest.raises(SkyReelsInputError, match=match):
            sample_video(model, latent, **args)


def _generate(model, vae, positive, negative, *, frames, height, width, steps, cfg=6.0, seed=0, start_image=None,
              end_image=None, clip_fea=None):
    """The README's Python API recipe: (condition) -> sample_video -> VAE decode."""
    shape = VideoLatentShape.from_pixels(frames, height, width)
    cond = None
    if start_image is not None or end_image is not None:
        cond = make_i2v_condition(vae, start_image, end_image, frames, height, width, clip_fea)
    latent = sample_video(model, torch.zeros(shape.as_tuple()), positive=positive, negative=negative, steps=steps,
                          cfg=cfg, shift=8.0, seed=seed, image_cond=cond)
    return vae.decode(latent)


def test_generate_t2v_and_i2v_end_to_end(vae):
    t2v = _dit()
    video = _generate(t2v, vae, _ctx(1), _ctx(2), frames=5, height=32, width=32, steps=2, seed=1)
    assert video.shape == (1, 3, 5, 32, 32) and video.abs().max() <= 1.0

    i2v_config = WanDiTConfig(**{**TINY.__dict__, "model_type": "i2v", "in_dim": 36})
    i2v = _dit(i2v_config)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    clip = torch.randn(1, 257, 1280)
    video = _generate(i2v, vae, _ctx(1), None, frames=5, height=32, width=32, steps=2, cfg=1.0, seed=1,
                      start_image=image, end_image=image, clip_fea=clip)
    assert video.shape == (1, 3, 5, 32, 32)
    cond = make_i2v_condition(vae, image, None, 5, 32, 32)
    assert cond.y.shape == (1, 20, 2, 4, 4)


def test_i2v_condition_rejects_wrong_image_size(vae):
    with pytest.raises(SkyReelsInputError, match="resize"):
        make_i2v_condition(vae, torch.zeros(1, 3, 16, 16), None, 5, 32, 32)
    with pytest.raises(SkyReelsInputError, match="4n\\+1"):
        make_i2v_condition(vae, torch.zeros(1, 3, 32, 32), None, 6, 32, 32)
