"""SkyReels-V3 nodes (issue #10): schema contract, the tiny V3 checkpoints loaded through the loader nodes as a user
picks them, each node at smoke size against its core recipe, progress / preview / status / Cancel, and every bad
input refused before any VAE or model call.

The ComfyUI runtime is faked as in test_nodes.py (its fixtures are reused). Its folder listing is replaced here by
one that works like ComfyUI's folder_paths: files only (with a model extension), searched recursively, named by
their path under the folder, so a sharded V3 folder shows up as its shard files.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

# Modules that register torch libraries cannot be imported twice, and the fixtures restore sys.modules (so would
# drop them if first imported inside): import them now. torch._dynamo is imported lazily by meta-device init when
# the tiny files are generated; torch.distributed.tensor by torch.testing (see test_nodes_df.py).
with contextlib.suppress(ImportError):
    import torch._dynamo  # noqa: F401
    import torch.distributed.tensor  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_nodes as shared  # noqa: E402  (the fixtures and fakes of the node tests)

PACK, REPO, FakeProgressBar = shared.PACK, shared.REPO, shared.FakeProgressBar
_cached, _load, _widgets = shared._cached, shared._load, shared._widgets
env, tiny, tiny_dir, _fresh_logs = shared.env, shared.tiny, shared.tiny_dir, shared._fresh_logs  # fixtures

V3_NODES = ["SkyReelsV3ReferenceToVideo", "SkyReelsV3ExtendVideo", "SkyReelsV3ShotPrompt", "SkyReelsV3ShotSwitch",
            "SkyReelsV3AudioEncoderLoader", "SkyReelsV3TalkingAvatar"]
R2V = "SkyReels-V3-R2V-14B"  # the Hugging Face repo folders, placed as the README says
V2V = "SkyReels-V3-V2V-14B"
SHARD = "diffusion_pytorch_model-00001-of-00002.safetensors"
MODEL_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
SMALL = dict(resolution="720P", width=16, height=16, seed=3, steps=2, shift=8.0, scheduler="unipc")


def _node(env, node_id, unique_id="21"):
    cls = env.nodes[node_id]
    return type(cls.__name__, (cls,), {"hidden": types.SimpleNamespace(unique_id=unique_id)})


def _v3():
    return importlib.import_module(PACK + ".skyreels_core.pipelines.v3")


def _clip(frames, h=16, w=16, seed=3):
    return torch.rand(frames, h, w, 3, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ schema


def test_schema_contract(env):
    assert [k for k in env.nodes if k.startswith("SkyReelsV3")] == V3_NODES
    for node_id in V3_NODES:
        schema = env.nodes[node_id].define_schema()
        assert schema.category == "SkyReels/V3" and schema.description
        assert schema.display_name.startswith("SkyReels V3 ")
        assert _widgets(schema) == shared.WIDGETS[node_id], f"{node_id}: never reorder widgets"
        for item in schema.inputs:
            assert item.tooltip and len(item.tooltip) > 20, f"{node_id}.{item.id}"
    defaults = {n: {i.id: getattr(i, "default", None) for i in env.nodes[n].define_schema().inputs} for n in V3_NODES}
    r2v, ext, shot = (defaults[n] for n in ("SkyReelsV3ReferenceToVideo", "SkyReelsV3ExtendVideo",
                                              "SkyReelsV3ShotSwitch"))
    assert {k: r2v[k] for k in ("resolution", "width", "height", "duration", "steps", "shift", "guidance",
                                "image_guidance", "scheduler")} == dict(resolution="720P", width=0, height=0,
                                                                        duration=5, steps=8, shift=5.0, guidance=1.0,
                                                                        image_guidance=1.0, scheduler="unipc")
    assert (ext["duration"], ext["steps"], ext["shift"], ext["cfg"], ext["keep_input"]) == (5, 8, 8.0, 1.0, False)
    assert (shot["duration"], shot["steps"], shot["shift"], shot["cfg"]) == (5, 8, 8.0, 1.0)
    inputs = env.nodes["SkyReelsV3ReferenceToVideo"].define_schema().inputs
    assert [(i.id, bool(i.optional)) for i in inputs[3:7]] == [("reference_1", False), ("reference_2", True),
                                                               ("reference_3", True), ("reference_4", True)]
    outputs = {n: [(o.io_type, o.display_name) for o in env.nodes[n].define_schema().outputs] for n in V3_NODES}
    assert outputs["SkyReelsV3ReferenceToVideo"] == [("LATENT", "latent"), ("FLOAT", "fps")]
    assert outputs["SkyReelsV3ExtendVideo"] == outputs["SkyReelsV3ShotSwitch"] == [("IMAGE", "frames"),
                                                                                   ("FLOAT", "fps")]
    assert outputs["SkyReelsV3ShotPrompt"] == [("STRING", "prompt")]
    extend = env.nodes["SkyReelsV3ExtendVideo"].define_schema().description
    assert "audio" in extend and "Get Video Components" in extend
    shot_type = next(i for i in env.nodes["SkyReelsV3ShotPrompt"].define_schema().inputs if i.id == "shot_type")
    assert "[ZOOM_IN_CUT]" in shot_type.tooltip and "guesses" in shot_type.tooltip


def test_shot_prompt_node_writes_the_tag(env):
    node = env.nodes["SkyReelsV3ShotPrompt"]
    assert node.execute(prompt="a close-up of her eyes", shot_type="cut_in")[0] == "[ZOOM_IN_CUT] a close-up of her eyes"
    assert node.execute(prompt="wide view", shot_type="cut_out")[0] == "[ZOOM_OUT_CUT] wide view"
    assert node.execute(prompt="[MY_TAG] x", shot_type="none")[0] == "[MY_TAG] x"


# -------------------------------------------------------------------------------------------- validation


class ForbiddenModel(torch.nn.Module):
    """A DiT / VAE stand-in that fails the test when used: validation must come first."""

    def __init__(self, in_dim=16):
        super().__init__()
        self.config = types.SimpleNamespace(in_dim=in_dim, is_i2v=in_dim != 16, model_type="i2v" if in_dim != 16
                                            else "t2v")
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *a, **k):
        pytest.fail("the model was called although the inputs are invalid")

    def __getattr__(self, name):
        if name in ("encode", "encode_moments", "decode"):
            pytest.fail("the VAE was called although the inputs are invalid")
        return super().__getattr__(name)


def _embeds():
    types_mod = sys.modules[PACK + ".nodes.types"]
    return types_mod.TextEmbeds(positive=torch.zeros(1, 4, 8), negative=torch.zeros(1, 4, 8))


R2V_ARGS = dict(SMALL, shift=5.0, duration=1, guidance=1.0, image_guidance=1.0, reference_1=_clip(1))
V2V_ARGS = dict(SMALL, cfg=1.0, video=_clip(40))


@pytest.mark.parametrize(("node_id", "change", "match"), [
    ("SkyReelsV3ReferenceToVideo", dict(reference_1=_clip(2), reference_2=_clip(3, 8, 24)),
     r"1 to 4 reference images; got 5 \(a batch of N images counts as N\)"),
    ("SkyReelsV3ReferenceToVideo", dict(duration=31), r"duration must be a whole number of seconds in 1 to 30"),
    ("SkyReelsV3ReferenceToVideo", dict(width=20), "multiple of 16"),
    ("SkyReelsV3ReferenceToVideo", dict(height=0), "Give both width and height, or neither"),
    ("SkyReelsV3ReferenceToVideo", dict(reference_1=torch.zeros(16, 16)), r"reference image 1 must be an IMAGE"),
    ("SkyReelsV3ExtendVideo", dict(video=_clip(24), duration=5, keep_input=False),
     "has 24 frames; this mode uses its last 25 frames.*at least 25 frames"),
    ("SkyReelsV3ExtendVideo", dict(duration=4, keep_input=False), "5 to 30"),
    ("SkyReelsV3ExtendVideo", dict(duration=31, keep_input=False), "5 to 30"),
    ("SkyReelsV3ShotSwitch", dict(video=_clip(32), duration=5), "at least 33 frames"),
    ("SkyReelsV3ShotSwitch", dict(duration=6), r"in 2, 3, 4, 5; got 6"),
    ("SkyReelsV3ShotSwitch", dict(duration=1), r"in 2, 3, 4, 5; got 1"),
])  # fmt: skip
def test_bad_inputs_fail_before_any_vae_or_model_call(env, node_id, change, match):
    bridge = env.pack.nodes.comfy_bridge
    model, vae = bridge.manage(ForbiddenModel(), "dit", "v3.safetensors"), bridge.manage(ForbiddenModel(), "vae", "v")
    args = dict(R2V_ARGS if node_id.endswith("ReferenceToVideo") else V2V_ARGS, **change)
    with pytest.raises(ValueError, match=match):
        _node(env, node_id).execute(model=model, text_embeds=_embeds(), vae=vae, **args)
    assert env.loaded == [] and FakeProgressBar.instances == []  # nothing loaded, no progress bar


@pytest.mark.parametrize("node_id", ["SkyReelsV3ReferenceToVideo", "SkyReelsV3ExtendVideo", "SkyReelsV3ShotSwitch"])
def test_v2_image_to_video_model_is_refused(env, node_id):
    bridge = env.pack.nodes.comfy_bridge
    model, vae = bridge.manage(ForbiddenModel(36), "dit", "i2v.safetensors"), bridge.manage(ForbiddenModel(), "vae", "v")
    args = R2V_ARGS if node_id.endswith("ReferenceToVideo") else dict(V2V_ARGS, duration=5)
    if node_id == "SkyReelsV3ExtendVideo":
        args = dict(args, keep_input=False)
    with pytest.raises(ValueError, match=r"needs a SkyReels-V3 (R2V|V2V) model.*in_dim 36.*Load the matching"):
        _node(env, node_id).execute(model=model, text_embeds=_embeds(), vae=vae, **args)
    assert env.loaded == [] and FakeProgressBar.instances == []


# ------------------------------------------------------------------------------- real tiny checkpoints


def _comfy_listing(root: Path):
    """folder_paths.get_filename_list / get_full_path_or_raise as ComfyUI has them: files only, recursive."""

    def names(folder):
        base = root / folder
        found = []
        for dirpath, _, files in os.walk(base, followlinks=True):
            found += [os.path.relpath(os.path.join(dirpath, f), base) for f in files
                      if os.path.splitext(f)[1].lower() in MODEL_EXTENSIONS]
        return sorted(found)

    def full_path(folder, name):
        path = root / folder / name
        if not path.is_file():
            raise FileNotFoundError(f"Model in folder '{folder}' with filename '{name}' not found.")
        return str(path)

    return names, full_path


@pytest.fixture(scope="module")
def v3(tiny, tiny_dir, tmp_path_factory):
    """`tiny` plus the V3 repo folders where a user puts them (generated now when the host has none) and a
    ComfyUI-like folder listing."""
    src = tiny_dir / "diffusion_models"
    if not (src / "skyreels_v3_v2v_tiny" / "shot_transformer").is_dir():
        spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" / "make_tiny_checkpoints.py")
        maker = importlib.util.module_from_spec(spec)
        with patch.dict(sys.modules, {"make_tiny_checkpoints": maker}):
            spec.loader.exec_module(maker)
            src = tmp_path_factory.mktemp("v3_tiny")
            maker.make_all(src, only=["diffusion_models/skyreels_v3"])
            src = src / "diffusion_models"
    dm = tiny.models / "diffusion_models"
    (dm / R2V).mkdir()
    (dm / R2V / "transformer").symlink_to(src / "skyreels_v3_r2v_tiny" / "transformer")
    (dm / V2V).symlink_to(src / "skyreels_v3_v2v_tiny")
    (tiny.models / "vae" / R2V).mkdir()
    (tiny.models / "vae" / R2V / "vae").symlink_to(src / "skyreels_v3_r2v_tiny" / "vae")
    names, full_path = _comfy_listing(tiny.models)
    with patch.object(sys.modules["folder_paths"], "get_filename_list", names), \
            patch.object(sys.modules["folder_paths"], "get_full_path_or_raise", full_path):
        torch.set_num_threads(1)  # the tiny models run ~10x faster single-threaded on the shared CI cores
        yield tiny


def _options(schema):
    first = schema.inputs[0]
    return first.options if hasattr(first, "options") else first.kw["options"]


def _model(env, key):
    name = {"r2v": f"{R2V}/transformer/{SHARD}", "ext": f"{V2V}/transformer/{SHARD}",
            "shot": f"{V2V}/shot_transformer/{SHARD}"}[key]
    return _cached(env, key, "SkyReelsModelLoader", model_name=name, weight_dtype="default", attention="auto")


def _common(env):
    encoder = _cached(env, "umt5", "SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                      tokenizer="auto")
    embeds = _cached(env, "embeds", "SkyReelsTextEncode", text_encoder=encoder, positive="a red fox", negative="blurry")
    vae = _cached(env, "vae", "SkyReelsVAELoader", vae_name=f"{R2V}/vae/diffusion_pytorch_model.safetensors")
    return encoder, embeds, vae


def test_loaders_list_the_v3_shards_and_load_them(v3):
    options = _options(v3.nodes["SkyReelsModelLoader"].define_schema())
    for name in (f"{R2V}/transformer/{SHARD}", f"{V2V}/transformer/{SHARD}", f"{V2V}/shot_transformer/{SHARD}"):
        assert name in options  # what a user picks: any shard; the rest of the folder is found next to it
    # the folders of sharded models follow the files (what the templates name); a repo root with no shards is not one
    assert options[-3:] == [f"{R2V}/transformer/", f"{V2V}/shot_transformer/", f"{V2V}/transformer/"]
    assert f"{R2V}/" not in options and f"{R2V}/vae/" not in options
    by_folder = _load(v3, "SkyReelsModelLoader", model_name=f"{V2V}/shot_transformer/", weight_dtype="default",
                      attention="auto")
    shot_weights = by_folder.module.state_dict()
    assert f"{R2V}/vae/diffusion_pytorch_model.safetensors" in _options(v3.nodes["SkyReelsVAELoader"].define_schema())
    r2v, ext, shot = _model(v3, "r2v"), _model(v3, "ext"), _model(v3, "shot")
    assert r2v.module.config.time_embed_precision == "float32"  # diffusers-saved: config.json found next to it
    assert ext.module.config.time_embed_precision == "float64" and ext.module.config.in_dim == 16
    assert not torch.equal(ext.module.head.head.weight, shot.module.head.head.weight)
    assert all(torch.equal(w, shot_weights[k]) for k, w in shot.module.state_dict().items())  # folder = any shard
    with pytest.raises(Exception, match=r"model_name = '\.\./' is not one of its options"):
        _load(v3, "SkyReelsModelLoader", model_name="../", weight_dtype="default", attention="auto")
    encoder, _, vae = _common(v3)
    assert v3.loaded in ([], [encoder.patcher])  # loading does not move a DiT or VAE to the GPU (text encode does)
    wan = _load(v3, "SkyReelsVAELoader", vae_name="wan_2.1_vae_tiny.safetensors")
    video = _clip(5).permute(3, 0, 1, 2)[None] * 2 - 1
    with torch.no_grad():
        assert torch.equal(vae.runner.encode(video), wan.runner.encode(video))  # either VAE file does


def _events(env, node_id="21"):
    return [t for n, t in env.server.texts if n == node_id]


def test_reference_to_video_matches_core_and_reports_every_step(v3):
    _, embeds, vae = _common(v3)
    model = _model(v3, "r2v")
    wide = _clip(1, 8, 24, seed=5)  # references of different sizes are fine: each is fitted and padded alone
    out, fps = _node(v3, "SkyReelsV3ReferenceToVideo").execute(
        model=model, text_embeds=embeds, vae=vae, **dict(R2V_ARGS, reference_2=wide, duration=1, steps=2))
    assert fps == 24.0 and out["num_frames"] == 25  # duration 1 s -> 1 * 24 + 1 frames
    assert out["samples"].shape == (1, 16, 7, 2, 2)
    assert v3.loaded[-2:] == [model.patcher, vae.patcher]  # DiT and VAE loaded together (the recipe uses both)
    bar = FakeProgressBar.instances[-1]
    assert [u[:2] for u in bar.updates] == [(1, 2), (2, 2)]
    assert all(u[2][0] == "JPEG" and u[2][1] == (1, 16, 7, 2, 2) for u in bar.updates)  # a preview every step
    assert _events(v3)[-1].startswith("step 2/2 · ")
    ref = _v3().reference_to_video(model.module, vae.runner, [_clip(1), wide], positive=embeds.positive,
                                   negative=embeds.negative, duration=1, width=16, height=16, seed=3, steps=2,
                                   shift=5.0, decode=False)
    bridge = v3.pack.nodes.comfy_bridge
    torch.testing.assert_close(out["samples"], bridge.latent_from_model(ref), atol=1e-5, rtol=1e-5)
    frames = _load(v3, "SkyReelsVAEDecode", vae=vae, latent=out, tile_size=0, tile_overlap=64)
    assert frames.shape == (25, 16, 16, 3)


def test_extend_video_5s_gives_132_new_frames_as_the_core(v3):
    _, embeds, vae = _common(v3)
    model = _model(v3, "ext")
    args = dict(V2V_ARGS, video=_clip(30), duration=5, steps=1, keep_input=False)
    frames, fps = _node(v3, "SkyReelsV3ExtendVideo").execute(model=model, text_embeds=embeds, vae=vae, **args)
    assert frames.shape == (132, 16, 16, 3) and fps == 24.0
    assert _events(v3)[-1].startswith("chunk 1/1 · step 1/1 · ")
    assert FakeProgressBar.instances[-1].updates[0][2][1] == (1, 16, 40, 2, 2)  # preview: 7 prefix + 33 new latents
    ref = _v3().extend_video(model.module, vae.runner, _clip(30), positive=embeds.positive, negative=embeds.negative,
                             duration=5, width=16, height=16, seed=3, steps=1)
    torch.testing.assert_close(frames, ref)


def test_extend_video_chunks_are_labelled_and_keep_input_prepends_the_clip(v3):
    _, embeds, vae = _common(v3)
    args = dict(V2V_ARGS, video=_clip(30), duration=10, steps=1, keep_input=True)
    frames, _ = _node(v3, "SkyReelsV3ExtendVideo").execute(model=_model(v3, "ext"), text_embeds=embeds, vae=vae,
                                                           **args)
    assert frames.shape == (30 + 264, 16, 16, 3)
    torch.testing.assert_close(frames[:30], _clip(30), atol=1e-6, rtol=0)  # the clip (already the output size)
    assert [u[:2] for u in FakeProgressBar.instances[-1].updates] == [(1, 2), (2, 2)]
    assert [t.split(" · ")[0] for t in _events(v3)] == ["chunk 1/2", "chunk 2/2"]


def test_shot_prompt_encode_and_shot_switch_give_the_5s_shot(v3):
    encoder, _, vae = _common(v3)
    prompt = _load(v3, "SkyReelsV3ShotPrompt", prompt="her face, close", shot_type="cut_in")
    embeds = _load(v3, "SkyReelsTextEncode", text_encoder=encoder, positive=prompt, negative="blurry")
    model = _model(v3, "shot")
    frames, fps = _node(v3, "SkyReelsV3ShotSwitch").execute(model=model, text_embeds=embeds, vae=vae,
                                                            **dict(V2V_ARGS, duration=5, steps=2))
    assert frames.shape == (121, 16, 16, 3) and fps == 24.0 and 0 <= frames.min() and frames.max() <= 1
    assert [u[:2] for u in FakeProgressBar.instances[-1].updates] == [(1, 2), (2, 2)]
    ref = _v3().switch_shot(model.module, vae.runner, _clip(40), positive=embeds.positive, negative=embeds.negative,
                            duration=5, width=16, height=16, seed=3, steps=2)
    torch.testing.assert_close(frames, ref)
    joined, _ = _node(v3, "SkyReelsV3ShotSwitch").execute(model=model, text_embeds=embeds, vae=vae,
                                                          **dict(V2V_ARGS, duration=5, steps=2, keep_input=True))
    assert joined.shape == (40 + 121, 16, 16, 3)  # the clip, then the cut to the new shot
    torch.testing.assert_close(joined[:40], _clip(40), atol=1e-6, rtol=0)
    torch.testing.assert_close(joined[40:], ref)


class Interrupt(Exception):
    pass


def _count_calls(module):
    calls = []
    return calls, module.register_forward_hook(lambda *a: calls.append(1))


@pytest.mark.parametrize(("node_id", "key", "stop_at", "args"), [
    ("SkyReelsV3ReferenceToVideo", "r2v", 1, dict(R2V_ARGS, steps=3)),
    ("SkyReelsV3ShotSwitch", "shot", 1, dict(V2V_ARGS, duration=2, steps=3)),
    ("SkyReelsV3ExtendVideo", "ext", 2, dict(V2V_ARGS, video=_clip(25), duration=10, steps=1, keep_input=False)),
])  # fmt: skip
def test_cancel_stops_within_one_step(v3, node_id, key, stop_at, args):
    def cancel(self, value, total=None, preview=None):
        if value == stop_at:
            raise Interrupt

    _, embeds, vae = _common(v3)
    model = _model(v3, key)
    calls, hook = _count_calls(model.module)
    with patch.object(FakeProgressBar, "update_absolute", cancel), pytest.raises(Interrupt):
        _node(v3, node_id).execute(model=model, text_embeds=embeds, vae=vae, **args)
    hook.remove()
    assert len(calls) == stop_at  # guidance 1: one model call per step; the extension stops in its 2nd chunk


@pytest.mark.parametrize(("node_id", "key", "args"), [
    ("SkyReelsV3ExtendVideo", "ext", dict(V2V_ARGS, video=_clip(25), duration=10, steps=1, keep_input=False)),
    ("SkyReelsV3ShotSwitch", "shot", dict(V2V_ARGS, duration=2, steps=1)),
])  # fmt: skip
def test_cancel_during_vae_work_between_steps_stops_it(v3, node_id, key, args):
    """Cancel pressed after the last step of a chunk is seen in that chunk's VAE decode (after its first time
    chunk), not after the next chunk's encode and sampling: the DiT runs once and the decode does not finish."""
    _, embeds, vae = _common(v3)
    model = _model(v3, key)
    calls, hook = _count_calls(model.module)
    decoded = []
    decode = vae.runner.decode

    def press(self, value, total=None, preview=None):
        shared.FakeCancel.pressed = True

    def counted_decode(latent, **kw):
        decoded.append(latent.shape)
        return decode(latent, **kw)

    with patch.object(FakeProgressBar, "update_absolute", press), \
            patch.object(vae.runner, "decode", counted_decode), pytest.raises(shared.InterruptProcessingException):
        _node(v3, node_id).execute(model=model, text_embeds=embeds, vae=vae, **args)
    hook.remove()
    assert len(calls) == 1 and len(decoded) == 1  # one step, then the first decode raised
    assert shared.FakeCancel.pressed is False  # the press was consumed by a check (ComfyUI resets it the same way)
