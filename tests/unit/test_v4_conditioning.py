"""SkyReels-V4 conditioning: mask recipes, pixel -> latent mask resampling, references (tiny random Wan VAE)."""

import pytest
import torch
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_audio_vae_state_dict as tiny_vae_state_dict
from scripts.tiny_builders import tiny_vocoder_state_dict
from skyreels_core.conditioning.v4 import (
    VideoCondition,
    build_condition,
    condition_extend,
    condition_i2v,
    condition_inpaint,
    condition_start_end,
    condition_t2v,
    encode_audio,
    encode_references,
    latent_keep_mask,
)
from skyreels_core.errors import SkyReelsInputError
from skyreels_core.models.audio_codec import load_audio_codec
from skyreels_core.models.av_mmdit import AVDiTConfig, AVMMDiT
from skyreels_core.models.video_vae import VAE3DConfig, WanVAE
from skyreels_core.shapes import VideoLatentShape


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return WanVAE(VAE3DConfig.TINY).eval()


def _images(n, h=32, w=32, seed=0):
    return torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(seed))


def _video(images):  # IMAGE [N, H, W, 3] -> [1, 3, N, H, W] in [-1, 1]
    return images.permute(3, 0, 1, 2)[None] * 2 - 1


SHAPE = VideoLatentShape.from_pixels(13, 32, 32, batch=2)  # 4 latent frames of 4x4


def test_t2v_is_all_zero_and_batched():
    cond = condition_t2v(SHAPE)
    assert cond.latent.shape == (2, 16, 4, 4, 4) and cond.mask.shape == (2, 1, 4, 4, 4)
    assert not cond.latent.any() and not cond.mask.any()
    assert cond.input_channels().shape == (2, 17, 4, 4, 4)


def test_i2v_keeps_exactly_latent_frame_zero(vae):
    image = _images(1)
    cond = condition_i2v(vae, image, SHAPE)
    assert cond.mask[:, :, 0].eq(1).all() and not cond.mask[:, :, 1:].any()
    expected = vae.encode(_video(image))[0, :, 0]
    torch.testing.assert_close(cond.latent[1, :, 0], expected)
    assert not cond.latent[:, :, 1:].any()


def test_start_end_encodes_each_image_as_one_frame(vae):
    start, end = _images(1, seed=1), _images(1, seed=2)
    cond = condition_start_end(vae, start, end, SHAPE)
    assert cond.mask[0, 0, :, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    torch.testing.assert_close(cond.latent[0, :, 3], vae.encode(_video(end))[0, :, 0])
    torch.testing.assert_close(cond.latent[0, :, 0], vae.encode(_video(start))[0, :, 0])
    end_only = condition_start_end(vae, None, end, SHAPE)
    assert end_only.mask[0, 0, :, 0, 0].tolist() == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(SkyReelsInputError):
        condition_start_end(vae, None, None, SHAPE)


@pytest.mark.parametrize("given, kept", [(1, 1), (4, 1), (5, 2), (8, 2), (9, 3), (12, 3)])
def test_extension_keeps_only_fully_given_latent_frames(vae, given, kept):
    clip = _images(13, seed=3)
    cond = condition_extend(vae, clip[:given], SHAPE)
    assert cond.mask[0, 0, :, 0, 0].tolist() == [1.0] * kept + [0.0] * (4 - kept)
    assert cond.mask.amin(dim=(3, 4)).equal(cond.mask.amax(dim=(3, 4)))  # whole frames
    # The causal VAE: latents of the first frames equal those of the same frames inside the full video.
    full = vae.encode(_video(clip))[0]
    torch.testing.assert_close(cond.latent[0, :, :kept], full[:, :kept], rtol=1e-4, atol=1e-4)
    assert not cond.latent[:, :, kept:].any()


def test_extension_needs_fewer_frames_than_the_output(vae):
    with pytest.raises(SkyReelsInputError, match="13 frames"):
        condition_extend(vae, _images(13), SHAPE)


def test_keep_mask_time_rule_and_frame_zero():
    shape = VideoLatentShape.from_pixels(13, 32, 32)
    for pixel_frame, latent_frame in [(0, 0), (1, 1), (4, 1), (5, 2), (8, 2), (12, 3)]:
        mask = torch.zeros(13, 32, 32)
        mask[pixel_frame, 9, 17] = 1.0  # latent cell (1, 2)
        keep = latent_keep_mask(mask, shape)
        assert keep.shape == (1, 1, 4, 4, 4)
        regen = (keep[0, 0] == 0).nonzero().tolist()
        assert regen == [[latent_frame, 1, 2]], (pixel_frame, regen)


def _pixel_keep(keep, frames, stride=8):
    """Latent keep mask [1, 1, T, h, w] -> [F, H, W] over pixel frames (frame 0 -> latent 0, 4j-3..4j -> j)."""
    k = keep[0, 0].repeat_interleave(stride, 1).repeat_interleave(stride, 2)
    index = torch.tensor([0] + [(f + 3) // 4 for f in range(1, frames)])
    return k[index]


@pytest.mark.parametrize("seed", range(6))
def test_keep_mask_never_keeps_a_regenerated_pixel(seed):
    gen = torch.Generator().manual_seed(seed)
    shape = VideoLatentShape.from_pixels(9, 32, 48)
    mask = (torch.rand(9, 32, 48, generator=gen) > 0.995).float() * torch.rand(9, 32, 48, generator=gen)
    keep = latent_keep_mask(mask, shape)
    assert (_pixel_keep(keep, 9) * (mask > 0)).sum() == 0
    assert keep.sum() > 0  # sparse masks leave most cells kept


def test_keep_mask_resamples_other_sizes_conservatively():
    shape = VideoLatentShape.from_pixels(5, 32, 32)
    mask = torch.zeros(5, 64, 64)  # 2x the target: each latent cell covers 16x16 mask pixels
    mask[3, 40, 17] = 0.01  # a faint value still counts as regenerate
    keep = latent_keep_mask(mask, shape)
    assert (keep[0, 0] == 0).nonzero().tolist() == [[1, 2, 1]]
    wide = torch.zeros(5, 32, 64)  # centre crop to 32x32 drops columns 0..15 and 48..63
    wide[:, :, 0] = 1.0
    wide[:, 5, 16] = 1.0
    assert (latent_keep_mask(wide, shape)[0, 0] == 0).nonzero().tolist() == [[0, 0, 0], [1, 0, 0]]


def test_inpaint_encodes_the_video_and_zeroes_regenerated_cells(vae):
    video = _images(13, seed=4)
    mask = torch.zeros(1, 32, 32)  # static mask
    mask[0, :16, :] = 1.0  # regenerate the top half
    cond = condition_inpaint(vae, video, mask, SHAPE)
    assert cond.mask[0, 0, :, :2].eq(0).all() and cond.mask[0, 0, :, 2:].eq(1).all()
    full = vae.encode(_video(video))
    torch.testing.assert_close(cond.latent[:1], full * cond.mask[:1])
    built = build_condition(vae, SHAPE, video=video, mask=mask)
    assert torch.equal(built.mask, cond.mask)


def test_inpaint_rejects_wrong_mask_and_frame_counts(vae):
    video = _images(13)
    with pytest.raises(SkyReelsInputError, match=r"\[13, 32, 32\]"):
        condition_inpaint(vae, video, torch.zeros(5, 32, 32), SHAPE)
    with pytest.raises(SkyReelsInputError, match=r"\[1, 32, 32\]"):
        condition_inpaint(vae, video, torch.zeros(13, 16, 32), SHAPE)
    with pytest.raises(SkyReelsInputError, match="13"):
        condition_inpaint(vae, _images(9), torch.zeros(9, 32, 32), SHAPE)


def test_build_condition_picks_the_recipe(vae):
    image = _images(1)
    assert not build_condition(vae, SHAPE).mask.any()
    assert build_condition(vae, SHAPE, image=image).mask[0, 0, :, 0, 0].tolist() == [1.0, 0, 0, 0]
    assert build_condition(vae, SHAPE, image=image, end_image=image).mask[0, 0, :, 0, 0].tolist() == [1.0, 0, 0, 1]
    assert build_condition(vae, SHAPE, video=_images(5)).mask[0, 0, :, 0, 0].tolist() == [1.0, 1, 0, 0]
    with pytest.raises(SkyReelsInputError):
        build_condition(vae, SHAPE, mask=torch.zeros(13, 32, 32))
    with pytest.raises(SkyReelsInputError):
        build_condition(vae, SHAPE, image=image, video=_images(5))


def test_bad_images_raise_input_errors(vae):
    with pytest.raises(SkyReelsInputError, match=r"\[N, H, W, 3\]"):
        condition_i2v(vae, torch.rand(1, 3, 32, 32), SHAPE)
    with pytest.raises(SkyReelsInputError, match="Nearest valid value: 5"):
        encode_references(vae, None, _images(6), SHAPE)


def test_other_sizes_are_center_cropped(vae):
    wide = torch.zeros(1, 32, 64, 3)
    wide[:, :, 16:48] = _images(1)  # the centred 32x32 square
    cond = condition_i2v(vae, wide, SHAPE)
    torch.testing.assert_close(cond.latent[0, :, 0], vae.encode(_video(_images(1)))[0, :, 0])


def test_references_one_latent_frame_per_image_then_the_clip(vae):
    a, b, clip = _images(2, seed=5), _images(1, 16, 32, seed=6), _images(5, seed=7)
    refs = encode_references(vae, [a, b], clip, SHAPE)
    assert refs.shape == (2, 16, 3 + 2, 4, 4)
    torch.testing.assert_close(refs[0, :, 1], vae.encode(_video(a[1:2]))[0, :, 0])
    padded = torch.zeros(1, 3, 1, 32, 32)  # 16x32 fitted into 32x32: grey (0) bands above and below
    padded[:, :, :, 8:24] = _video(b)
    torch.testing.assert_close(refs[0, :, 2], vae.encode(padded)[0, :, 0])
    torch.testing.assert_close(refs[0, :, 3:], vae.encode(_video(clip))[0])
    assert encode_references(vae, None, None, SHAPE) is None


def test_audio_reference_is_normalised_codec_latent(tmp_path):
    save_file(tiny_vae_state_dict(), str(tmp_path / "vae.safetensors"))
    torch.save({"generator": tiny_vocoder_state_dict()}, str(tmp_path / "voc.pt"))
    codec = load_audio_codec(tmp_path / "vae.safetensors", tmp_path / "voc.pt")
    wave = torch.randn(1, 2, 4410, generator=torch.Generator().manual_seed(0)) * 0.1
    model = AVMMDiT(AVDiTConfig.TINY, device="meta")
    mean, std = torch.linspace(-1, 1, 40), torch.linspace(0.5, 2, 40)
    model.audio_latent_mean, model.audio_latent_std = mean, std  # buffers replaced by real tensors
    z = model.normalize_audio(encode_audio(codec, {"waveform": wave, "sample_rate": 22050}))  # as sample_av does
    raw = codec.encode(wave, 22050)
    assert z.shape == (1, 40, 9)  # 0.2 s at 44.1 kHz = 8820 samples -> ceil(8820 / 1024) = 9 latents
    torch.testing.assert_close(z, (raw - mean.view(1, -1, 1)) / std.view(1, -1, 1))
    with pytest.raises(SkyReelsInputError):
        encode_audio(codec, {"waveform": wave})


def test_condition_is_frozen():
    cond = condition_t2v(SHAPE)
    assert isinstance(cond, VideoCondition)
    with pytest.raises(AttributeError):
        cond.mask = None
