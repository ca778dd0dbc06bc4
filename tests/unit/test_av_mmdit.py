"""Spec tests for the SkyReels-V4 audio-video MMDiT (tiny configs, CPU, float32)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from scripts.tiny_builders import tiny_av_dit_state_dict as tiny_state_dict
from skyreels_core.checkpoints.detect import detect_kind
from skyreels_core.errors import CheckpointError, SkyReelsInputError
from skyreels_core.models import av_mmdit
from skyreels_core.models.av_mmdit import (
    CONFIG_METADATA_KEY,
    AudioStream,
    AVDiTConfig,
    AVMMDiT,
    ModelType,
    VideoStream,
    av_time_positions,
    load_av_dit,
    param_count,
)
from skyreels_core.nn.rope import rope_angles

TINY = AVDiTConfig.TINY
B, F, H, W, T_A, L_TXT = 2, 3, 4, 6, 11, 7  # video grid 3 x 2 x 3 = 18 tokens per sample


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matmuls: one thread is far faster than OpenMP spinning on a shared, loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(config: AVDiTConfig = TINY, seed: int = 0) -> AVMMDiT:
    model = AVMMDiT(config).eval().requires_grad_(False)
    model.load_state_dict(tiny_state_dict(seed, config)[0])
    return model


def data(seed: int = 1, batch: int = B):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 33, F, H, W, generator=g)
    audio = torch.randn(batch, 40, T_A, generator=g)
    context = torch.randn(batch, L_TXT, TINY.text_dim, generator=g)
    return video, audio, context


@pytest.fixture(scope="module")
def model():
    return build()


@pytest.fixture(scope="module")
def inputs():
    return data()


def run(model, video, audio, context, timestep=(400.0, 800.0), **kw):
    v = None if video is None else (video if isinstance(video, VideoStream) else VideoStream(video))
    a = None if audio is None else (audio if isinstance(audio, AudioStream) else AudioStream(audio))
    with torch.no_grad():
        return model(v, a, torch.tensor(timestep[: context.shape[0]]), context, fps=16, **{"cross_modal": True, **kw})


def capture(module, store: list, *, pre: bool = True):
    """Record a module's positional args (pre) or output; returns the hook handle."""
    if pre:
        return module.register_forward_pre_hook(lambda m, args: store.append(args))
    return module.register_forward_hook(lambda m, args, out: store.append(out))


# shapes and builds


def test_output_shapes_audio_video(model, inputs):
    video, audio, context = inputs
    out_v, out_a = run(model, video, audio, context)
    assert out_v.shape == (B, 16, F, H, W) and out_v.dtype == torch.float32
    assert out_a.shape == (B, 40, T_A) and out_a.dtype == torch.float32
    assert torch.isfinite(out_v).all() and torch.isfinite(out_a).all()


@pytest.mark.parametrize("model_type", [ModelType.VIDEO_ONLY, ModelType.AUDIO_ONLY])
def test_single_modality_builds(model_type, inputs):
    video, audio, context = inputs
    config = dataclasses.replace(TINY, model_type=model_type)
    single = build(config)
    keys = single.state_dict().keys()
    assert not any(k.startswith("av_cross.") for k in keys)
    if model_type is ModelType.VIDEO_ONLY:
        assert not any(k.startswith("audio") for k in keys)
        out_v, out_a = run(single, video, None, context)
        assert out_v.shape == (B, 16, F, H, W) and out_a is None
        with pytest.raises(SkyReelsInputError, match="video-only"):
            run(single, video, audio, context)
    else:
        assert not any(k.startswith("video.") for k in keys)
        out_v, out_a = run(single, None, audio, context)
        assert out_v is None and out_a.shape == (B, 40, T_A)
        with pytest.raises(SkyReelsInputError, match="audio-only"):
            run(single, video, audio, context)
    assert detect_kind(keys) == "av_dit"


def test_batch_items_are_independent(model, inputs):
    """Sample 1 of a batch (own timestep) equals a batch-of-one call: per-sample modulation is indexed right."""
    video, audio, context = inputs
    out_v, out_a = run(model, video, audio, context, timestep=(400.0, 800.0))
    one_v, one_a = run(model, video[1:], audio[1:], context[1:], timestep=(800.0,))
    torch.testing.assert_close(one_v[0], out_v[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one_a[0], out_a[1], atol=1e-5, rtol=1e-5)


def test_block_layout_and_key_names(model):
    sd = model.state_dict()
    c = TINY
    assert sd["video.patch_embedding.weight"].shape == (c.dim, 33, 1, 2, 2)
    assert sd["audio.patch_embedding.weight"].shape == (c.dim, 40)
    assert sd["video.head.head.weight"].shape == (16 * 4, c.dim) and sd["audio.head.head.weight"].shape == (40, c.dim)
    assert "video.blocks.0.text.self_attn.q.weight" in sd and "video.blocks.0.text.modulation" in sd  # dual
    assert "video.blocks.1.cross_attn.q.weight" in sd and "video.blocks.1.norm3.weight" in sd  # single
    assert "video.blocks.1.text.modulation" not in sd and "video.blocks.0.cross_attn.q.weight" not in sd
    for i in range(c.num_blocks):
        for direction in ("v2a", "a2v"):
            assert sd[f"av_cross.{i}.{direction}.gate"].shape == (c.dim,)
            assert f"av_cross.{i}.{direction}.norm_kv.weight" in sd and f"av_cross.{i}.{direction}.norm_k.weight" in sd
    assert sd["audio_latent_mean"].shape == (40,) and sd["audio_latent_std"].shape == (40,)
    assert param_count(TINY) == sum(p.numel() for p in model.parameters())


# time axis


def test_av_time_positions_same_second_same_phase():
    # fps 25: video latent 64 (pixel frame 256 -> 10.24 s) and audio latent 441 (441 * 1024 / 44100 = 10.24 s).
    video_t, audio_t = av_time_positions(65, 442, fps=25)
    assert video_t[64] == 64 and audio_t[441] == pytest.approx(64.0, abs=1e-9)
    zeros = torch.zeros(1, dtype=torch.float64)
    head_dim = TINY.head_dim
    a_video = rope_angles(torch.stack([video_t[64:65], zeros, zeros], -1), head_dim)
    a_audio = rope_angles(torch.stack([audio_t[441:442], zeros, zeros], -1), head_dim)
    torch.testing.assert_close(a_audio, a_video, atol=1e-5, rtol=0)
    assert a_audio[0, 12:].abs().max() == 0  # (t, 0, 0): only the time pairs rotate (64 -> 12 / 10 / 10 pairs)
    # fps 16, 5 s: audio spans the same time as the 21 video latents; the paper's ratio 21/218 is the same idea
    video_t, audio_t = av_time_positions(21, 216, fps=16)
    assert (audio_t[1] - audio_t[0]).item() == pytest.approx(1024 / 44100 * 4, rel=1e-12)
    assert audio_t[1].item() == pytest.approx(21 / 218, rel=0.04)
    assert abs(audio_t[-1].item() - video_t[-1].item()) < 0.2


def test_model_cross_attention_uses_shared_time_axis(model, inputs):
    video, audio, context = inputs
    calls: list = []
    handle = capture(model.av_cross[0].a2v, calls)
    try:
        run(model, VideoStream(video, torch.randn(B, 16, 2, H, W)), audio, context)
    finally:
        handle.remove()
    _, _, video_angles, audio_angles, *_ = calls[0]
    video_t, audio_t = av_time_positions(F, T_A, fps=16)
    tokens_per_frame = (H // 2) * (W // 2)
    zeros = torch.zeros_like(audio_t)
    expected_audio = rope_angles(torch.stack([audio_t, zeros, zeros], -1), TINY.head_dim)
    torch.testing.assert_close(audio_angles, expected_audio)
    # video target tokens (the references are not part of the cross-attention) at 0..F-1, time only
    assert video_angles.shape[0] == F * tokens_per_frame
    torch.testing.assert_close(video_angles[::tokens_per_frame, 0], video_t.float())
    assert video_angles[:, 12:].abs().max() == 0


# references


def test_references_prepended_at_negative_positions_and_stripped(model, inputs):
    video, audio, context = inputs
    g = torch.Generator().manual_seed(5)
    vrefs, arefs = torch.randn(B, 16, 2, H, W, generator=g), torch.randn(B, 40, 4, generator=g)
    calls_v, calls_a = [], []
    hv, ha = capture(model.video.blocks[0], calls_v), capture(model.audio.blocks[0], calls_a)
    try:
        out_v, out_a = run(model, VideoStream(video, vrefs), AudioStream(audio, arefs), context)
    finally:
        hv.remove()
        ha.remove()
    assert out_v.shape == (B, 16, F, H, W) and out_a.shape == (B, 40, T_A)
    tokens_per_frame = (H // 2) * (W // 2)
    video_angles = calls_v[0][2].angles  # [L_ref + L, head_dim/2]; time pair 0 has inverse frequency 1
    assert calls_v[0][0].shape[1] == (2 + F) * tokens_per_frame
    torch.testing.assert_close(video_angles[::tokens_per_frame, 0], torch.arange(-2.0, F))
    audio_angles = calls_a[0][2].angles
    scale = 1024 / 44100 * 16 / 4
    torch.testing.assert_close(audio_angles[:, 0], torch.arange(-4.0, T_A) * scale)
    # a reference changes the output (in-context), through self-attention
    base_v, base_a = run(model, VideoStream(video, vrefs), AudioStream(audio, arefs), context)
    torch.testing.assert_close(base_v, out_v)
    other_v, _ = run(model, VideoStream(video, vrefs + 1.0), AudioStream(audio, arefs), context, cross_modal=False)
    same_v, _ = run(model, VideoStream(video, vrefs), AudioStream(audio, arefs), context, cross_modal=False)
    assert (other_v - same_v).abs().max() > 1e-3
    _, other_a = run(model, VideoStream(video, vrefs), AudioStream(audio, arefs * 2), context, cross_modal=False)
    _, same_a = run(model, VideoStream(video, vrefs), AudioStream(audio, arefs), context, cross_modal=False)
    assert (other_a - same_a).abs().max() > 1e-3


def test_references_are_clean_per_frame_timestep(model, inputs):
    video, audio, context = inputs
    calls_v, calls_a = [], []
    hv, ha = capture(model.video.blocks[0], calls_v), capture(model.audio.blocks[0], calls_a)
    try:
        run(model, VideoStream(video, torch.randn(B, 16, 2, H, W)), AudioStream(audio, torch.randn(B, 40, 3)), context)
    finally:
        hv.remove()
        ha.remove()
    t = torch.tensor([400.0, 800.0])
    _, e0_clean = model.embed_time(torch.zeros(B, 1))
    _, e0_noisy = model.embed_time(t[:, None])
    e0_v, e0_a = calls_v[0][2].e0, calls_a[0][2].e0
    assert e0_v.shape == (B, 6, 2 + F, TINY.dim) and e0_a.shape == (B, 6, 3 + T_A, TINY.dim)
    for e0, refs in ((e0_v, 2), (e0_a, 3)):
        torch.testing.assert_close(e0[:, :, :refs], e0_clean.expand(-1, -1, refs, -1))
        torch.testing.assert_close(e0[:, :, refs:], e0_noisy.expand(-1, -1, e0.shape[2] - refs, -1))
    torch.testing.assert_close(calls_v[0][2].e0_text, e0_noisy)  # text tokens: the sample's timestep


# audio <-> video cross-attention


def test_cross_modal_attention_couples_the_streams(model, inputs):
    video, audio, context = inputs
    out_v, out_a = run(model, video, audio, context)
    solo_v, solo_a = run(model, video, audio, context, cross_modal=False)
    assert (out_v - solo_v).abs().max() > 1e-3 and (out_a - solo_a).abs().max() > 1e-3
    # without it, audio ignores the video input (and vice versa); with it, it does not
    video2 = video + torch.randn_like(video)
    _, solo_a2 = run(model, video2, audio, context, cross_modal=False)
    torch.testing.assert_close(solo_a2, solo_a, atol=0, rtol=0)
    _, out_a2 = run(model, video2, audio, context)
    assert (out_a2 - out_a).abs().max() > 1e-3
    solo_v2, _ = run(model, video, audio + 1.0, context, cross_modal=False)
    torch.testing.assert_close(solo_v2, solo_v, atol=0, rtol=0)
    # a stream passed alone in an AUDIO_VIDEO build runs its tower without the exchange
    alone_v, none_a = run(model, video, None, context)
    assert none_a is None
    torch.testing.assert_close(alone_v, solo_v)


def test_cross_modal_directions_and_order(inputs):
    """v2a is audio reading video, a2v video reading audio; a2v reads the audio v2a just updated (paper eq. 5)."""
    video, audio, context = inputs
    model = build(seed=3)
    solo_v, solo_a = run(model, video, audio, context, cross_modal=False)
    for block in model.av_cross:
        block.a2v.gate.zero_()
    out_v, out_a = run(model, video, audio, context)
    torch.testing.assert_close(out_v, solo_v)  # video no longer reads audio
    assert (out_a - solo_a).abs().max() > 1e-3  # audio still reads video
    model = build(seed=3)
    updated, read = [], []
    h1, h2 = capture(model.av_cross[0].v2a, updated, pre=False), capture(model.av_cross[0].a2v, read)
    try:
        run(model, video, audio, context)
    finally:
        h1.remove()
        h2.remove()
    torch.testing.assert_close(read[0][1], updated[0], atol=0, rtol=0)
    for block in model.av_cross:
        block.v2a.gate.zero_()
    _, out_a = run(model, video, audio, context)
    torch.testing.assert_close(out_a, solo_a)  # audio no longer reads video


# time convention


def test_paper_time_convention(inputs):
    """A paper-convention model at sigma equals minus the plain model (same weights) at sigma' = 1 - sigma."""
    video, audio, context = inputs
    plain = build()
    paper = AVMMDiT(dataclasses.replace(TINY, paper_time_convention=True)).eval()
    paper.load_state_dict(plain.state_dict())
    sigma = torch.tensor([0.25, 0.875])  # exact in float32
    p_v, p_a = run(paper, video, audio, context, timestep=tuple((1000 * sigma).tolist()))
    n_v, n_a = run(plain, video, audio, context, timestep=tuple((1000 * (1 - sigma)).tolist()))
    torch.testing.assert_close(p_v, -n_v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p_a, -n_a, atol=1e-5, rtol=1e-5)
    assert (p_v + run(plain, video, audio, context, timestep=tuple((1000 * sigma).tolist()))[0]).abs().max() > 1e-3
    # clean references are embedded at the paper's t = 1 (1000), i.e. sigma 0 in both conventions
    calls: list = []
    handle = capture(paper.video.blocks[0], calls)
    try:
        run(paper, VideoStream(video, torch.randn(B, 16, 1, H, W)), audio, context)
    finally:
        handle.remove()
    _, e0_clean = paper.embed_time(torch.full((B, 1), 1000.0))
    torch.testing.assert_close(calls[0][2].e0[:, :, :1], e0_clean)


# audio normalisation


def test_audio_normalisation_round_trip(model):
    z = torch.randn(B, 40, T_A)
    n = model.normalize_audio(z)
    torch.testing.assert_close(n[:, 3], (z[:, 3] - model.audio_latent_mean[3]) / model.audio_latent_std[3])
    torch.testing.assert_close(model.denormalize_audio(n), z, atol=1e-5, rtol=1e-5)
    video_only = AVMMDiT(dataclasses.replace(TINY, model_type=ModelType.VIDEO_ONLY), device="meta")
    with pytest.raises(SkyReelsInputError, match="video-only"):
        video_only.normalize_audio(z)


# checkpoints


def save(tmp_path, name, tensors, metadata=None):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def test_load_round_trip_through_safetensors(tmp_path, model, inputs):
    tensors, metadata = tiny_state_dict(0)
    assert json.loads(metadata[CONFIG_METADATA_KEY])["num_heads"] == 2
    loaded = load_av_dit(save(tmp_path, "av.safetensors", tensors, metadata))
    assert loaded.config == TINY and not loaded.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)
    video, audio, context = inputs
    for a, b in zip(run(loaded, video, audio, context), run(model, video, audio, context), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # ComfyUI prefix, bf16 weights: buffers stay float32
    prefixed = {f"model.diffusion_model.{k}": v for k, v in tensors.items()}
    bf16 = load_av_dit(save(tmp_path, "av_comfy.safetensors", prefixed, metadata), dtype=torch.bfloat16)
    assert bf16.video.blocks[0].self_attn.q.weight.dtype == torch.bfloat16
    assert bf16.audio_latent_std.dtype == torch.float32 and bf16.compute_dtype == torch.bfloat16
    out_v, out_a = run(bf16, video, audio, context)
    assert out_v.dtype == torch.float32 and torch.isfinite(out_a).all()


def test_load_infers_config_without_metadata(tmp_path):
    config = dataclasses.replace(TINY, model_type=ModelType.AUDIO_ONLY, num_heads=1)  # head_dim 128 = the default
    tensors, _ = tiny_state_dict(0, config)
    loaded = load_av_dit(save(tmp_path, "audio_only.safetensors", tensors))
    assert loaded.config == config and loaded.video is None


def test_load_errors(tmp_path):
    tensors, metadata = tiny_state_dict(0)
    # metadata disagreeing with the tensors names the field
    for field, value in (("dim", 256), ("num_dual_blocks", 2), ("text_dim", 64), ("model_type", "video_only")):
        bad = json.loads(metadata[CONFIG_METADATA_KEY]) | {field: value}
        with pytest.raises(CheckpointError, match=f"{field} = .*tensors say"):
            load_av_dit(save(tmp_path, f"bad_{field}.safetensors", tensors, {CONFIG_METADATA_KEY: json.dumps(bad)}))
    bad = json.loads(metadata[CONFIG_METADATA_KEY]) | {"num_heads": 3}
    with pytest.raises(CheckpointError, match="3 heads"):
        load_av_dit(save(tmp_path, "heads.safetensors", tensors, {CONFIG_METADATA_KEY: json.dumps(bad)}))
    bad = json.loads(metadata[CONFIG_METADATA_KEY]) | {"vsa_block": 4}
    with pytest.raises(CheckpointError, match="vsa_block"):
        load_av_dit(save(tmp_path, "newer.safetensors", tensors, {CONFIG_METADATA_KEY: json.dumps(bad)}))
    missing = {k: v for k, v in tensors.items() if k != "av_cross.1.a2v.gate"}
    with pytest.raises(CheckpointError, match="av_cross.1.a2v.gate"):
        load_av_dit(save(tmp_path, "missing.safetensors", missing, metadata))
    shallow = {k: v for k, v in tensors.items() if not k.startswith("audio.blocks.1.")}
    with pytest.raises(CheckpointError, match="same depth"):
        load_av_dit(save(tmp_path, "shallow.safetensors", shallow, metadata))


def test_load_wan_dit_file_gives_clear_error(tmp_path):
    from skyreels_core.models.wan_dit import TINY as WAN_TINY
    from skyreels_core.models.wan_dit import WanModel

    wan = WanModel(WAN_TINY, device="meta")
    tensors = {k: torch.zeros(v.shape) for k, v in wan.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"wan\.safetensors.*Wan2\.1 DiT\), not a.*SkyReels-V4"):
        load_av_dit(save(tmp_path, "wan.safetensors", tensors))


# config


def test_config_checks_and_presets():
    assert AVDiTConfig.from_state_dict(tiny_state_dict(0, dataclasses.replace(TINY, num_heads=1))[0]).num_heads == 1
    assert (
        AVDiTConfig(
            model_type="video_only",
            dim=128,
            num_heads=2,
            num_dual_blocks=1,
            num_single_blocks=0,
            ffn_dim=64,
            text_dim=8,
        ).model_type
        is ModelType.VIDEO_ONLY
    )
    with pytest.raises(CheckpointError, match="temporal patch"):
        dataclasses.replace(TINY, patch_size=(2, 2, 2))
    with pytest.raises(CheckpointError, match="model_type"):
        dataclasses.replace(TINY, model_type="stereo")
    assert AVDiTConfig.V4_GUESS.head_dim == 128 and AVDiTConfig.SMALL.num_blocks == 4
    assert param_count(AVDiTConfig.V4_GUESS) > 14e9  # two Wan-14B-wide towers + the cross-attention


def test_input_validation(model, inputs):
    video, audio, context = inputs
    with pytest.raises(SkyReelsInputError, match="33"):
        run(model, video[:, :16], audio, context)
    with pytest.raises(SkyReelsInputError, match="refs"):
        run(model, VideoStream(video, torch.randn(B, 16, 1, H + 2, W)), audio, context)
    with pytest.raises(SkyReelsInputError, match="audio.x"):
        run(model, video, audio[:, :20], context)
    with pytest.raises(SkyReelsInputError, match="context"):
        run(model, video, audio, context[..., :8])
    with pytest.raises(SkyReelsInputError, match="fps"):
        model(VideoStream(video), AudioStream(audio), torch.tensor([1.0, 2.0]), context, fps=0)
    assert math.isclose(av_mmdit.audio_time_scale(16), 1024 / 44100 * 4)


def test_tiny_checkpoint_registry_entry(tmp_path, model, inputs):
    from scripts.make_tiny_checkpoints import make_all

    paths = make_all(tmp_path, only=["diffusion_models/skyreels_v4_av_tiny.safetensors"])
    assert [p.name for p in paths] == ["skyreels_v4_av_tiny.safetensors"]
    loaded = load_av_dit(paths[0])
    assert loaded.config == TINY
    video, audio, context = inputs
    for a, b in zip(run(loaded, video, audio, context), run(model, video, audio, context), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


# hi-res keyframes (base model of the two-stage path)

HK, WK = 2 * H, 2 * W  # keyframe latent size: token grid 4 x 6 against the low-res 2 x 3


def keyframe_input(count=2, seed=7, batch=B):
    return torch.randn(batch, 33, count, HK, WK, generator=torch.Generator().manual_seed(seed))


def test_keyframes_output_shapes_and_rope_positions(model, inputs):
    video, audio, context = inputs
    calls, cross = [], []
    handles = [capture(model.video.blocks[0], calls), capture(model.av_cross[0].a2v, cross)]
    try:
        out_v, out_a, out_k = run(model, VideoStream(video, keyframes=keyframe_input(), keyframe_index=(0, 2)),
                                  audio, context)
    finally:
        for h in handles:
            h.remove()
    assert out_v.shape == (B, 16, F, H, W) and out_a.shape == (B, 40, T_A) and out_k.shape == (B, 16, 2, HK, WK)
    assert out_k.dtype == torch.float32 and torch.isfinite(out_k).all()
    low_tokens = F * (H // 2) * (W // 2)
    assert calls[0][0].shape[1] == low_tokens + 2 * (HK // 2) * (WK // 2)
    # independent positions: keyframe k at time index k, token (r, c) at (r, c) * (low grid / keyframe grid) = 0.5
    expected = torch.tensor([[t, r * 0.5, c * 0.5] for t in (0, 2) for r in range(HK // 2) for c in range(WK // 2)],
                            dtype=torch.float64)
    angles = calls[0][2].angles
    torch.testing.assert_close(angles[low_tokens:], rope_angles(expected, TINY.head_dim), atol=0, rtol=0)
    torch.testing.assert_close(angles[:low_tokens], rope_angles(
        torch.stack(torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in (F, H // 2, W // 2)),
                                   indexing="ij"), -1).reshape(-1, 3), TINY.head_dim))
    # the audio<->video exchange sees the keyframe tokens at their time (time-only angles)
    video_angles = cross[0][2]
    assert video_angles.shape[0] == low_tokens + 48
    torch.testing.assert_close(video_angles[low_tokens:, 0], expected[:, 0].float())


def test_no_or_zero_keyframes_is_the_model_without_them(model, inputs):
    video, audio, context = inputs
    plain_v, plain_a = run(model, video, audio, context)
    empty_v, empty_a, empty_k = run(model, VideoStream(video, keyframes=keyframe_input(count=0)), audio, context)
    assert torch.equal(empty_v, plain_v) and torch.equal(empty_a, plain_a) and empty_k.shape == (B, 16, 0, HK, WK)


def test_keyframes_and_low_res_tokens_read_each_other(model, inputs):
    video, audio, context = inputs
    kf = keyframe_input()

    def go(v, k):
        return run(model, VideoStream(v, keyframes=k, keyframe_index=(0, 2)), audio, context, cross_modal=False)

    base_v, _, base_k = go(video, kf)
    other_v, _, _ = go(video, kf + 1.0)
    assert (other_v - base_v).abs().max() > 1e-3  # the low-res video reads the keyframes
    _, _, other_k = go(video + 1.0, kf)
    assert (other_k - base_k).abs().max() > 1e-3  # and the keyframes read the low-res video
    plain_v, _ = run(model, video, audio, context, cross_modal=False)
    assert (plain_v - base_v).abs().max() > 1e-3


def test_keyframes_with_references_are_modulated_at_the_sample_timestep(model, inputs):
    video, audio, context = inputs
    calls: list = []
    handle = capture(model.video.blocks[0], calls)
    try:
        out = run(model, VideoStream(video, torch.randn(B, 16, 2, H, W), keyframe_input(1), (1,)), audio, context)
    finally:
        handle.remove()
    assert out[2].shape == (B, 16, 1, HK, WK)
    # modulation groups of gcd(6, 24) = 6 tokens: 2 reference groups, then (18 + 24) / 6 = 7 at the sample's time
    _, e0_clean = model.embed_time(torch.zeros(B, 1))
    _, e0_noisy = model.embed_time(torch.tensor([[400.0], [800.0]]))
    e0 = calls[0][2].e0
    assert e0.shape == (B, 6, 2 + 7, TINY.dim)
    torch.testing.assert_close(e0[:, :, :2], e0_clean.expand(-1, -1, 2, -1))
    torch.testing.assert_close(e0[:, :, 2:], e0_noisy.expand(-1, -1, 7, -1))


@pytest.mark.parametrize(
    "stream, message",
    [
        (dict(keyframes=torch.zeros(B, 33, 2, HK, WK), keyframe_index=(0,)), "keyframe_index"),
        (dict(keyframes=torch.zeros(B, 33, 1, HK, WK), keyframe_index=(F,)), "keyframe_index"),
        (dict(keyframes=torch.zeros(B, 33, 1, HK, WK), keyframe_index=(True,)), "keyframe_index"),
        (dict(keyframes=torch.zeros(B, 16, 1, HK, WK), keyframe_index=(0,)), "keyframes must be"),
        (dict(keyframes=torch.zeros(1, 33, 1, HK, WK), keyframe_index=(0,)), "keyframes must be"),
        (dict(keyframes=torch.zeros(B, 33, 1, HK + 1, WK), keyframe_index=(0,)), "keyframes must be"),
        (dict(keyframe_index=(0,)), "without video.keyframes"),
    ],
)
def test_keyframe_input_validation(model, inputs, stream, message):
    video, audio, context = inputs
    with pytest.raises(SkyReelsInputError, match=message):
        run(model, VideoStream(video, **stream), audio, context)
