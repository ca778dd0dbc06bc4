"""SkyReels-V3 (issue #10 core): loaders for the released layouts, schedules, and the R2V / extension / shot-switch
recipes, against the facts of research/skyreels_v3.md §2-7 and §15b."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from skyreels_core.checkpoints.convert import to_diffusers_vae_keys, to_original_vae_keys
from skyreels_core.errors import SkyReelsInputError
from skyreels_core.models.video_vae import WanVAE, load_video_vae
from skyreels_core.models.wan_dit import TINY, WanModel
from skyreels_core.models.wan_dit_loader import load_dit
from skyreels_core.nn.embeddings import diffusers_timestep_embedding
from skyreels_core.nn.rope import rope_angles, rope_inv_freqs
from skyreels_core.pipelines import v3
from skyreels_core.sampling.guidance import DualCFG
from skyreels_core.sampling.schedules import diffusers_flow_grid, flow_grid

REPO = Path(__file__).resolve().parents[2]
DM = "diffusion_models"


def _maker():
    spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" / "make_tiny_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def maker():
    return _maker()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, maker):
    out = tmp_path_factory.mktemp("v3models")
    maker.make_all(out, only=[f"{DM}/skyreels_v3", "vae/wan_2.1_vae_tiny.safetensors"])
    return out


@pytest.fixture(scope="module")
def r2v(tiny):
    return load_dit(tiny / DM / "skyreels_v3_r2v_tiny" / "transformer", dtype=torch.float32)


@pytest.fixture(scope="module")
def v2v(tiny):
    return load_dit(tiny / DM / "skyreels_v3_v2v_tiny" / "transformer", dtype=torch.float32)


@pytest.fixture(scope="module")
def vae(tiny):
    return load_video_vae(tiny / DM / "skyreels_v3_r2v_tiny" / "vae")


@pytest.fixture(scope="module")
def text(r2v):
    return torch.randn(1, 5, r2v.config.text_dim, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- schedules and guidance


def test_r2v_schedule_is_diffusers_unipc_grid():
    grid = diffusers_flow_grid(8, 5.0)
    assert (grid[:-1] * 1000).long().tolist() == [999, 972, 937, 892, 833, 749, 624, 416]
    assert grid[-1] == 0 and len(grid) == 9


def test_v2v_schedule_is_wan_flow_unipc_grid():
    assert (flow_grid(8, 8.0)[:-1] * 1000).long().tolist() == [999, 982, 959, 930, 888, 827, 727, 533]


def test_dual_cfg_formula_and_branches():
    g = DualCFG(text_scale=3.0, image_scale=2.0)
    assert g.branches(True) == ("cond", "uncond_text", "uncond")
    assert g.branches(False) == ("cond",)
    assert DualCFG(1.0, 5.0).branches(True) == ("cond",)  # the reference gates on the text scale only
    c, ut, u = torch.tensor(5.0), torch.tensor(2.0), torch.tensor(1.0)
    assert g.combine({"cond": c, "uncond_text": ut, "uncond": u}) == u + 2.0 * (ut - u) + 3.0 * (c - ut)


# ---------------------------------------------------------------- loaders


def test_diffusers_vae_loads_with_identical_outputs(tiny, vae):
    wan = load_video_vae(tiny / "vae" / "wan_2.1_vae_tiny.safetensors")
    video = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(wan.encode(video), vae.encode(video))
        latent = wan.encode(video)
        assert torch.equal(wan.decode(latent), vae.decode(latent))


def test_vae_key_conversion_round_trip_and_names(maker):
    from scripts import tiny_builders

    state = tiny_builders.tiny_video_vae_state_dict()
    diffusers = to_diffusers_vae_keys(state)
    for key in ("quant_conv.weight", "post_quant_conv.weight", "encoder.conv_in.weight", "decoder.norm_out.gamma",
                "encoder.mid_block.attentions.0.to_qkv.weight", "decoder.mid_block.resnets.1.conv2.weight",
                "encoder.down_blocks.0.norm1.gamma", "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
                "decoder.up_blocks.0.upsamplers.0.time_conv.weight", "decoder.up_blocks.3.resnets.2.conv1.bias"):
        assert key in diffusers, key
    back = to_original_vae_keys(diffusers)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


def test_r2v_diffusers_layout_uses_float32_time_embedding(r2v, v2v, tiny, tmp_path):
    assert r2v.config.time_embed_precision == "float32"
    assert v2v.config.time_embed_precision == "float64"
    # Only weights saved by diffusers (config.json with _class_name) switch; a bare key-renamed file does not.
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (tiny / DM / "skyreels_v3_r2v_tiny" / "transformer").glob("*.safetensors*"):
        (bare / f.name).write_bytes(f.read_bytes())
    assert load_dit(bare, dtype=torch.float32).config.time_embed_precision == "float64"


def test_diffusers_sinusoid_is_float32_formula():
    t = torch.tensor([999, 416, 0])
    emb = diffusers_timestep_embedding(t, 256)
    half = 128
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs
    assert emb.dtype == torch.float32
    assert torch.equal(emb, torch.cat([torch.cos(args), torch.sin(args)], 1))


def _wan_named(tiny, tmp_path, maker):
    """The R2V tiny weights renamed to Wan keys, as one file."""
    from safetensors.torch import save_file

    from skyreels_core.checkpoints.convert import to_original_wan_keys
    from skyreels_core.checkpoints.io import read_state_dict

    state = to_original_wan_keys(read_state_dict(tiny / DM / "skyreels_v3_r2v_tiny" / "transformer"))
    path = tmp_path / "r2v_wan_keys.safetensors"
    save_file(state, str(path))
    return path, state


def _inputs(model, frames=3):
    g = torch.Generator().manual_seed(2)
    return torch.randn(1, 16, frames, 4, 4, generator=g), torch.tensor([741]), torch.randn(1, 5, model.config.text_dim,
                                                                                        generator=g)


def test_r2v_diffusers_and_wan_named_weights_give_identical_outputs(tiny, tmp_path, maker, r2v):
    path, _ = _wan_named(tiny, tmp_path, maker)
    wan = load_dit(path, dtype=torch.float32)
    assert wan.config.time_embed_precision == "float64"  # Wan keys: the Wan sinusoid
    wan.config = dataclasses.replace(wan.config, time_embed_precision="float32")
    with torch.no_grad():
        assert torch.equal(r2v(*_inputs(r2v)), wan(*_inputs(r2v)))


@pytest.mark.parametrize("form", ["fp8", "scaled_fp8", "comfy"])
def test_r2v_diffusers_layout_fp8_and_repacked_load(tiny, tmp_path, maker, r2v, form):
    from safetensors.torch import save_file

    from skyreels_core.checkpoints.convert import to_diffusers_wan_keys

    _, state = _wan_named(tiny, tmp_path, maker)
    diffusers = to_diffusers_wan_keys(state)
    transformed = {"fp8": maker.to_fp8, "scaled_fp8": maker.to_scaled_fp8, "comfy": maker.comfy_prefixed}[form]
    folder = tmp_path / f"r2v_{form}"  # a repacked transformer/ folder: weights + the diffusers config.json
    folder.mkdir()
    config = tiny / DM / "skyreels_v3_r2v_tiny" / "transformer" / "config.json"
    (folder / "config.json").write_bytes(config.read_bytes())
    path = folder / "diffusion_pytorch_model.safetensors"
    save_file(transformed(diffusers), str(path))
    model = load_dit(path, dtype=torch.float32 if form == "comfy" else torch.bfloat16)
    assert model.config.time_embed_precision == "float32"
    with torch.no_grad():
        out, ref = model(*_inputs(r2v)), r2v(*_inputs(r2v))
    if form == "comfy":
        assert torch.equal(out, ref)
    else:
        assert torch.allclose(out, ref, atol=0.3, rtol=0.1)


def test_v2v_folders_load_and_differ(tiny, v2v):
    shot = load_dit(tiny / DM / "skyreels_v3_v2v_tiny" / "shot_transformer", dtype=torch.float32)
    assert shot.config == v2v.config
    assert not torch.equal(shot.head.head.weight, v2v.head.head.weight)


def test_tiny_v3_files_are_reproducible(maker, tmp_path):
    a = maker.make_all(tmp_path / "a", only=[f"{DM}/skyreels_v3"])
    b = maker.make_all(tmp_path / "b", only=[f"{DM}/skyreels_v3"])
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


# ---------------------------------------------------------------- RoPE positions


def test_rope_offsets_1024_match_the_2048_row_table():
    """Extension model: rope table = outer(arange(2048), float32 inv_freq); positions from 1024 index it."""
    head_dim = 128
    positions = torch.zeros(9, 3, dtype=torch.float64)
    positions[:, 0] = torch.arange(1024, 1033)
    ours = rope_angles(positions, head_dim)[:, :22]
    table = torch.outer(torch.arange(2048), rope_inv_freqs(head_dim)[0])
    assert torch.equal(ours, table[1024:1033])


def test_time_positions_default_equals_grid_and_offsets_change_output():
    torch.manual_seed(0)
    model = WanModel(TINY).eval()
    x, t, ctx = torch.randn(1, 16, 3, 4, 4), torch.tensor([500]), torch.randn(1, 4, TINY.text_dim)
    with torch.no_grad():
        base = model(x, t, ctx)
        assert torch.equal(base, model(x, t, ctx, time_positions=torch.arange(3.0)))
        assert not torch.equal(base, model(x, t, ctx, time_positions=torch.tensor([0.0, 1.0, 1024.0])))
    with pytest.raises(SkyReelsInputError, match="one temporal position per latent frame"):
        model(x, t, ctx, time_positions=torch.arange(2.0))


# ---------------------------------------------------------------- recipes: model calls recorded


class Recorder(torch.nn.Module):
    """A stand-in DiT that records its inputs and returns a fixed velocity."""

    def __init__(self, config=TINY):
        super().__init__()
        self.config, self.calls = config, []
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, context, time_positions=None):
        self.calls.append({"x": x.clone(), "t": t.clone(), "positions": time_positions, "context": context})
        return torch.full_like(x, 0.1)


def test_r2v_references_after_noisy_frames_and_not_returned():
    model = Recorder()
    refs = torch.randn(1, 16, 4, 4, 4)
    out = v3.sample_reference_to_video(model, refs, positive=torch.zeros(1, 3, 64), frames=9, steps=3)
    assert out.shape == (1, 16, 3, 4, 4)
    for call in model.calls:
        assert call["x"].shape[2] == 7 and torch.equal(call["x"][:, :, 3:], refs)
        assert call["t"].shape == (1,) and call["positions"] is None
    assert len(model.calls) == 3  # guidance 1: one call per step


def test_r2v_dual_cfg_uses_zero_references_for_image_unconditional():
    model = Recorder()
    refs = torch.randn(1, 16, 4, 4, 4)
    v3.sample_reference_to_video(model, refs, positive=torch.ones(1, 3, 64), negative=torch.zeros(1, 3, 64),
                                 frames=5, steps=1, text_cfg=2.0, image_cfg=1.5)
    cond, uncond_text, uncond = model.calls
    assert torch.equal(cond["x"][:, :, 2:], refs) and cond["context"].sum() > 0
    assert torch.equal(uncond_text["x"][:, :, 2:], refs) and uncond_text["context"].sum() == 0
    assert not uncond["x"][:, :, 2:].any() and uncond["context"].sum() == 0


def test_encode_references_white_padding_and_zero_slots(vae):
    white = []

    class Spy:
        def encode_moments(self, video):
            white.append(video)
            return vae.encode_moments(video)

        def normalize_latent(self, mu):
            return vae.normalize_latent(mu)

    tall = torch.full((1, 32, 16, 3), 0.25)
    latents = v3.encode_references(Spy(), [tall, torch.rand(1, 16, 16, 3)], 16, 32)
    assert latents.shape == (1, 16, 4, 2, 4)
    assert not latents[:, :, 2:].any() and latents[:, :, :2].abs().sum() > 0
    video = white[0]
    assert video.shape == (1, 3, 1, 16, 32)
    assert torch.equal(video[..., :12], torch.ones_like(video[..., :12]))  # white bars left and right
    assert torch.allclose(video[..., 12:20], torch.full_like(video[..., 12:20], -0.5))


def test_fit_pad_default_fill_unchanged():
    from skyreels_core.conditioning.images import fit_pad

    out = fit_pad(torch.ones(1, 8, 4, 3), 8, 8)
    assert out[..., 0].eq(0).all() and out[..., 3].eq(1).all()


def test_bucket_from_first_reference():
    assert v3.bucket_size(720, 1280) == (720, 1280)
    assert v3.bucket_size(1000, 1000) == (960, 960)
    assert v3.bucket_size(720, 1364, "720P") == (688, 1312)  # §15b: 1364x720 input -> 688x1312
    assert v3.bucket_size(500, 500, "480P") == (640, 640)


def test_extension_prefix_unchanged_and_t_zero():
    model = Recorder()
    prefix = torch.randn(1, 16, 7, 4, 4)
    out = v3.sample_extension_chunk(model, prefix, 9, positive=torch.zeros(1, 3, 64), steps=3)
    assert out.shape == (1, 16, 16, 4, 4)
    assert torch.equal(out[:, :, :7], prefix)
    for call in model.calls:
        assert call["t"].shape == (1, 16)
        assert not call["t"][:, :7].any() and call["t"][:, 7:].eq(call["t"][0, 7]).all() and call["t"][0, 7] > 0
        assert torch.equal(call["x"][:, :, :7], prefix)


def test_extension_chunks_follow_the_padding_rule():
    assert v3.extension_chunks(5) == [33]
    assert v3.extension_chunks(15) == [33, 33, 25]
    assert v3.extension_chunks(7) == [33, 9]
    assert v3.extension_frames(5) == 132
    assert v3.extension_frames(10) == 264
    assert v3.extension_frames(7) == 132 + 36
    assert v3.extension_frames(30) == 728


def test_shot_switch_condition_at_1024_with_t_zero_and_dropped():
    model = Recorder()
    condition = torch.randn(1, 16, 9, 4, 4)
    out = v3.sample_shot_switch(model, condition, 121, positive=torch.zeros(1, 3, 64), steps=2)
    assert out.shape == (1, 16, 31, 4, 4)
    for call in model.calls:
        assert call["x"].shape[2] == 40 and torch.equal(call["x"][:, :, 31:], condition)
        assert call["positions"].tolist() == list(range(31)) + list(range(1024, 1033))
        assert not call["t"][:, 31:].any() and call["t"][:, :31].gt(0).all()


def test_shot_prompt_tags():
    assert v3.shot_prompt("a man", "cut_in") == "[ZOOM_IN_CUT] a man"
    assert v3.shot_prompt("a man", "cut_out") == "[ZOOM_OUT_CUT] a man"
    assert v3.shot_prompt("[MY_TAG] a man", "custom") == "[MY_TAG] a man"
    with pytest.raises(SkyReelsInputError):
        v3.shot_prompt("a", "dolly")


# ---------------------------------------------------------------- end to end on the tiny files


def _clip(frames, h=16, w=16):
    return torch.rand(frames, h, w, 3, generator=torch.Generator().manual_seed(3))


def test_reference_to_video_end_to_end(r2v, vae, text):
    frames = v3.reference_to_video(r2v, vae, [_clip(1, 20, 12)], positive=text, duration=1, width=16, height=16,
                                   steps=2)
    assert frames.shape == (25, 16, 16, 3) and 0 <= frames.min() and frames.max() <= 1


def test_extension_5s_gives_132_new_frames(v2v, vae, text):
    frames = v3.extend_video(v2v, vae, _clip(30), positive=text, duration=5, width=16, height=16, steps=1)
    assert frames.shape == (132, 16, 16, 3)


def test_shot_switch_5s_gives_121_frames(tiny, vae, text):
    shot = load_dit(tiny / DM / "skyreels_v3_v2v_tiny" / "shot_transformer", dtype=torch.float32)
    frames = v3.switch_shot(shot, vae, _clip(40), positive=text, duration=5, width=16, height=16, steps=1)
    assert frames.shape == (121, 16, 16, 3)


# ---------------------------------------------------------------- bad inputs: before any model call


def _never_called():
    model = Recorder()
    model.forward = None  # any call fails loudly
    return model


@pytest.mark.parametrize("call, match", [
    (lambda m, vae: v3.reference_to_video(m, vae, [_clip(1)] * 5, positive=None), "1 to 4 reference images"),
    (lambda m, vae: v3.reference_to_video(m, vae, [], positive=None), "1 to 4 reference images"),
    (lambda m, vae: v3.extend_video(m, vae, _clip(24), positive=None), "at least 25 frames"),
    (lambda m, vae: v3.extend_video(m, vae, _clip(30), positive=None, duration=2), "5 to 30"),
    (lambda m, vae: v3.switch_shot(m, vae, _clip(40), positive=None, duration=6), "2, 3, 4, 5"),
    (lambda m, vae: v3.switch_shot(m, vae, _clip(20), positive=None, duration=5), "at least 33 frames"),
    (lambda m, vae: v3.reference_to_video(m, vae, [_clip(1)], positive=None, width=20, height=16), "multiple of 16"),
])
def test_bad_inputs_raise_before_model_calls(call, match):
    class NoVAE:
        def __getattr__(self, name):
            raise AssertionError("the VAE must not run on bad input")

    with pytest.raises(SkyReelsInputError, match=match):
        call(_never_called(), NoVAE())


@pytest.mark.parametrize("recipe", [v3.reference_to_video, v3.extend_video, v3.switch_shot])
def test_v2_i2v_model_rejected(recipe):
    model = Recorder(dataclasses.replace(TINY, model_type="i2v", in_dim=36))
    with pytest.raises(SkyReelsInputError, match="in_dim 36"):
        recipe(model, None, [_clip(1)] if recipe is v3.reference_to_video else _clip(40), positive=None)


def test_vae_class_unchanged_for_wan_files(tiny):
    assert isinstance(load_video_vae(tiny / "vae" / "wan_2.1_vae_tiny.safetensors"), WanVAE)


# ---------------------------------------------------------------- what the ComfyUI nodes need from the recipes


def test_reference_batches_count_as_references_and_mixed_sizes_are_fine():
    refs = v3.check_reference_to_video(Recorder(), [_clip(2, 20, 12), None, _clip(1, 16, 32)], duration=1)
    images, height, width = refs
    assert [tuple(im.shape) for im in images] == [(1, 20, 12, 3), (1, 20, 12, 3), (1, 16, 32, 3)]
    assert (height, width) == v3.bucket_size(20, 12)  # the first reference's bucket
    with pytest.raises(SkyReelsInputError, match="got 5 .a batch of N images counts as N"):
        v3.check_reference_to_video(Recorder(), [_clip(3), _clip(2)])


def test_checks_return_what_the_nodes_size_progress_with():
    assert v3.check_extension(Recorder(), _clip(25), duration=15, width=16, height=16) == [33, 33, 25]
    assert v3.check_shot_switch(Recorder(), _clip(17), duration=3) == v3.bucket_size(16, 16)
    with pytest.raises(SkyReelsInputError, match="Give both width and height"):
        v3.check_shot_switch(Recorder(), _clip(17), duration=3, width=16)


def test_r2v_latent_output_decodes_to_the_frames(r2v, vae, text):
    kwargs = dict(positive=text, duration=1, width=16, height=16, steps=1, seed=4)
    latent = v3.reference_to_video(r2v, vae, [_clip(1)], decode=False, **kwargs)
    assert latent.shape == (1, 16, 7, 2, 2)
    assert torch.equal(v3._to_image(vae.decode(latent)), v3.reference_to_video(r2v, vae, [_clip(1)], **kwargs))


def test_extension_callback_counts_steps_over_all_chunks_and_keeps_input(v2v, vae, text):
    seen = []
    frames = v3.extend_video(v2v, vae, _clip(30), positive=text, duration=7, width=16, height=16, steps=2,
                             solver="euler", keep_input=True, callback=lambda s, n, x0: seen.append((s, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # 7 s = 2 chunks x 2 steps
    assert frames.shape == (30 + 132 + 36, 16, 16, 3)
    assert torch.allclose(frames[:30], _clip(30), atol=1e-6)  # the clip first (already at the output size)


def test_solver_reaches_the_loop():
    model = Recorder()
    refs = torch.randn(1, 16, 4, 4, 4)
    a = v3.sample_reference_to_video(model, refs, positive=torch.zeros(1, 3, 64), frames=5, steps=3)
    b = v3.sample_reference_to_video(model, refs, positive=torch.zeros(1, 3, 64), frames=5, steps=3, solver="euler")
    assert not torch.equal(a, b)
    with pytest.raises(SkyReelsInputError, match="Unknown solver"):
        v3.sample_shot_switch(model, refs, 5, positive=torch.zeros(1, 3, 64), steps=1, solver="dpm")


def test_shot_prompt_none_is_unchanged():
    assert v3.shot_prompt("a man", "none") == "a man"
