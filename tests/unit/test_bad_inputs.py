"""Bad inputs (issue #9, shared/research/bad_input_findings.md): every value the widgets (or an API prompt) can send
that the models cannot take gets a SkyReelsInputError naming the input and the fix, before any model or VAE call
and before any large allocation; folder pickers never open a path outside ComfyUI's model folders.

V2 / DF / bridge cases run on the fake ComfyUI runtime of test_nodes.py (its fixtures are reused, not copied).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.testing._comparison  # noqa: F401

# as in test_nodes_df.py: modules that cannot be imported twice are imported before the fixtures snapshot sys.modules
with contextlib.suppress(ImportError):
    import torch.distributed.tensor  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_nodes as shared  # noqa: E402

PACK, FakeProgressBar = shared.PACK, shared.FakeProgressBar
env, tiny, tiny_dir, _fresh_logs = shared.env, shared.tiny, shared.tiny_dir, shared._fresh_logs  # fixtures

NAN, INF = float("nan"), float("inf")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny models run ~10x faster single-threaded on the shared CI cores (as in test_nodes_v4.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
BAD_NAMES = [None, 123, "../../../etc", "/etc", "missing.safetensors", ["a"]]


def core(name):
    return importlib.import_module(f"{PACK}.skyreels_core.{name}")


def input_error(env):
    return core("errors").SkyReelsInputError


class Forbidden(torch.nn.Module):
    """A model / VAE stand-in that fails the test when it is called: validation must come first."""

    def __init__(self, in_dim=16):
        super().__init__()
        self.config = types.SimpleNamespace(in_dim=in_dim, inject_sample_info=False)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *a, **k):
        pytest.fail("the model was called although the inputs are invalid")

    def encode(self, *a, **k):
        pytest.fail("the VAE was called although the inputs are invalid")


def forbidden(env, role="dit"):
    return env.pack.nodes.comfy_bridge.manage(Forbidden(), role, "forbidden.safetensors")


def embeds(env):
    return sys.modules[PACK + ".nodes.types"].TextEmbeds(positive=torch.zeros(1, 4, 8), negative=torch.zeros(1, 4, 8))


def with_hidden(env, node_id, uid="5"):
    cls = env.nodes[node_id]
    return type(cls.__name__, (cls,), {"hidden": types.SimpleNamespace(unique_id=uid)})


# ----------------------------------------------------------------------------------- combos and folder pickers


@pytest.mark.parametrize("value", BAD_NAMES)
@pytest.mark.parametrize(("node", "kwargs", "name"), [
    ("SkyReelsModelLoader", dict(weight_dtype="default", attention="auto"), "model_name"),
    ("SkyReelsVAELoader", {}, "vae_name"),
    ("SkyReelsTextEncoderLoader", dict(tokenizer="auto"), "text_encoder_name"),
    ("SkyReelsCLIPVisionLoader", {}, "clip_name"),
    ("SkyReelsV4ModelLoader", dict(weight_dtype="default", attention="auto"), "model_name"),
    ("SkyReelsV4TextEncoderLoader", dict(layers="-1"), "mllm_name"),
])  # fmt: skip
def test_file_and_folder_pickers_accept_only_listed_names(env, node, kwargs, name, value):
    with pytest.raises(input_error(env), match=rf"^{name} = .* (is not one of its options|nothing to choose from)"):
        env.nodes[node].execute(**{name: value}, **kwargs)


def test_codec_loader_names_each_picker(env):
    (env.models / "vae" / "a.safetensors").write_bytes(b"")
    try:
        with pytest.raises(input_error(env), match=r"^vae_name = None is not one of its options; choose one of: "
                                                   r"a\.safetensors"):
            env.nodes["SkyReelsV4AudioCodecLoader"].execute(vae_name=None, vocoder_name="a.safetensors")
        with pytest.raises(input_error(env), match=r"^vocoder_name = '\.\./x'"):
            env.nodes["SkyReelsV4AudioCodecLoader"].execute(vae_name="a.safetensors", vocoder_name="../x")
    finally:
        (env.models / "vae" / "a.safetensors").unlink()


@pytest.mark.parametrize(("node", "value", "name"), [
    ("SkyReelsModelLoader", "fp64", "weight_dtype"), ("SkyReelsModelLoader", None, "weight_dtype"),
    ("SkyReelsV4ModelLoader", "fp8_e4m3fn", "weight_dtype"),  # the AV loader has no fp8 path
])  # fmt: skip
def test_unknown_weight_dtype_lists_the_choices(env, node, value, name):
    (env.models / "diffusion_models" / "m.safetensors").write_bytes(b"")
    try:
        with pytest.raises(input_error(env), match=rf"^{name} = .* choose one of: default, bf16, fp16, fp32"):
            env.nodes[node].execute(model_name="m.safetensors", weight_dtype=value, attention="auto")
        with pytest.raises(input_error(env), match=r"^attention = 'xformers' .* choose one of: auto, sdpa, flash_attn"):
            env.nodes[node].execute(model_name="m.safetensors", weight_dtype="default", attention="xformers")
    finally:
        (env.models / "diffusion_models" / "m.safetensors").unlink()


@pytest.fixture
def outside(env, tmp_path):
    """A Hugging Face-looking folder outside models/, a symlink to it inside models/text_encoders, and a real one."""
    secret = tmp_path / "secret"
    secret.mkdir()
    for marker in ("config.json", "tokenizer.json", "spiece.model"):
        (secret / marker).write_text("{}")
    folder = env.models / "text_encoders"
    (folder / "escape").symlink_to(tmp_path)  # a link to a folder whose SUB-folder looks like a model
    yield secret
    (folder / "escape").unlink()


@pytest.mark.parametrize("name", ["../../secret", "escape/secret", "escape/../escape/secret", "/etc", "..", ".",
                                  "escape\\secret", ""])
def test_folder_paths_never_leave_the_model_folder(env, outside, name):
    bridge = env.pack.nodes.comfy_bridge
    for call in (lambda: bridge.model_dir_path("text_encoders", name),
                 lambda: bridge.tokenizer_path(name),
                 lambda: bridge.model_dir_path("text_encoders", str(outside))):
        with pytest.raises(input_error(env)):
            call()
    assert "escape" not in bridge.list_model_dirs("text_encoders")  # the link itself holds no config.json


def test_listed_folders_resolve_inside_the_model_folder(env, tmp_path):
    bridge = env.pack.nodes.comfy_bridge
    good = env.models / "text_encoders" / "tok"
    good.mkdir()
    (good / "spiece.model").write_text("x")
    (good / "config.json").write_text("{}")
    try:
        assert bridge.tokenizer_path("tok") == str(good)
        assert bridge.model_dir_path("text_encoders", "tok") == str(good)
    finally:
        for f in good.iterdir():
            f.unlink()
        good.rmdir()


def test_echoed_values_are_cut(env):
    huge = "x" * 2_000_000
    with pytest.raises(input_error(env)) as info:
        env.pack.nodes.comfy_bridge.check_choice("vae_name", huge, ["a"])
    assert len(str(info.value)) < 300 and "2000002 characters" in str(info.value)


# ---------------------------------------------------------------------------------------- non-finite floats


V2 = dict(seed=1, steps=2, cfg=5.0, shift=8.0, scheduler="unipc", denoise=1.0)


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("name", ["cfg", "shift", "denoise"])
def test_v2_sampler_refuses_non_finite_floats_before_loading(env, name, value):
    latent = {"samples": torch.zeros(1, 16, 2, 4, 4)}
    with pytest.raises(input_error(env), match=rf"^{name} must be"):
        with_hidden(env, "SkyReelsSampler").execute(model=forbidden(env), text_embeds=embeds(env), latent=latent,
                                                    **dict(V2, **{name: value}))
    assert env.loaded == []


@pytest.mark.parametrize(("name", "value", "match"), [
    ("shift", 0.0, "shift must be a finite number > 0"), ("scheduler", None, "scheduler = None is not one of"),
    ("scheduler", "ddim", "choose one of: unipc, euler"), ("steps", 0, "steps must be a whole number >= 1"),
])  # fmt: skip
def test_v2_sampler_refuses_other_bad_values(env, name, value, match):
    latent = {"samples": torch.zeros(1, 16, 2, 4, 4)}
    with pytest.raises(input_error(env), match=match):
        with_hidden(env, "SkyReelsSampler").execute(model=forbidden(env), text_embeds=embeds(env), latent=latent,
                                                    **dict(V2, **{name: value}))
    assert env.loaded == []


DF = dict(width=32, height=32, num_frames=17, seed=3, steps=2, cfg=5.0, shift=5.0, scheduler="unipc",
          base_num_frames=9, overlap_history=5, ar_step=0, causal_block_size=1, addnoise_condition=20, fps=24,
          color_match=0.0)


@pytest.mark.parametrize(("name", "value", "match"), [
    ("cfg", NAN, "^cfg must be a finite number"), ("cfg", INF, "^cfg must be a finite number"),
    ("shift", NAN, "^shift must be a finite number > 0"), ("shift", 0.0, "^shift must be a finite number > 0"),
    ("shift", INF, "^shift must be"), ("color_match", NAN, "^color_match must be in"),
    ("scheduler", 7, "^scheduler = 7 is not one of its options"),
])  # fmt: skip
def test_df_sampler_refuses_bad_floats_before_any_vae_or_model_call(env, name, value, match):
    with pytest.raises(input_error(env), match=match):
        with_hidden(env, "SkyReelsDFSampler").execute(model=forbidden(env), text_embeds=embeds(env),
                                                      vae=forbidden(env, "vae"), **dict(DF, **{name: value}))
    assert env.loaded == [] and FakeProgressBar.instances == []


# ------------------------------------------------------------------------------------------- memory estimate


@pytest.fixture
def limit_64gib(monkeypatch):
    monkeypatch.setenv("SKYREELS_MAX_MEMORY_GB", "64")


def test_memory_estimate_is_the_decoded_float32_frames(env):
    shapes = core("shapes")
    assert shapes.video_memory_bytes(1, 81, 480, 832) == 81 * 480 * 832 * 12  # 388 MB of IMAGE frames
    assert shapes.video_memory_bytes(1, 1025, 4096, 4096) == 1025 * 4096 * 4096 * 12  # 206 GB (the finding)


def test_empty_video_latent_too_large_is_refused_with_the_estimate(env, limit_64gib):
    with pytest.raises(input_error(env), match=r"4096x4096, 1025 frames, batch 1\) needs about 192\.2 GiB .* more "
                                               r"than the 64\.0 GiB limit .*SKYREELS_MAX_MEMORY_GB.*at most 341 fit"):
        env.nodes["SkyReelsEmptyVideoLatent"].execute(width=4096, height=4096, frames=1025, batch=1)
    with pytest.raises(input_error(env), match="batch 64"):
        env.nodes["SkyReelsEmptyVideoLatent"].execute(width=1280, height=720, frames=121, batch=64)
    out = env.nodes["SkyReelsEmptyVideoLatent"].execute(width=1280, height=720, frames=121, batch=1)[0]
    assert out["samples"].shape == (1, 16, 31, 90, 160)  # 720P 5 s is fine


def test_image_to_video_too_large_is_refused_before_the_vae(env, limit_64gib):
    with pytest.raises(input_error(env), match="needs about 192.2 GiB"):
        env.nodes["SkyReelsImageToVideo"].execute(vae=forbidden(env, "vae"), start_image=torch.zeros(1, 8, 8, 3),
                                                  width=4096, height=4096, frames=1025)
    assert env.loaded == []


def test_df_num_frames_too_large_is_refused_before_the_vae(env, limit_64gib):
    with pytest.raises(input_error(env), match=r"The DF video \(960x544, 100001 frames, batch 1\) needs about 583\.7"):
        with_hidden(env, "SkyReelsDFSampler").execute(
            model=forbidden(env), text_embeds=embeds(env), vae=forbidden(env, "vae"),
            **dict(DF, width=960, height=544, num_frames=100_001, base_num_frames=97, overlap_history=17))
    assert env.loaded == [] and FakeProgressBar.instances == []


def test_memory_limit_env_must_be_a_number(env, monkeypatch):
    monkeypatch.setenv("SKYREELS_MAX_MEMORY_GB", "lots")
    with pytest.raises(input_error(env), match="SKYREELS_MAX_MEMORY_GB='lots' must be a positive number"):
        core("shapes").memory_limit_bytes()
    monkeypatch.delenv("SKYREELS_MAX_MEMORY_GB")
    assert core("shapes").memory_limit_bytes() > 2**30  # the machine's RAM


# ------------------------------------------------------------------------------------------------ many steps


class Velocity(torch.nn.Module):
    """A cheap flow 'model': v = x (any step count, any shift)."""

    def forward(self, x, sigma):
        return x * 0.5


SHIFTS = (0.01, 1.0, 3.0, 5.0, 8.0, 100.0)


def test_every_step_count_up_to_1000_is_stepped_by_index_at_every_shift(env):
    """The finding: V2/DF at shift 8 failed from 144 steps, shift 5 from 251, shift 3 from 501 (the integer timesteps
    repeat and the step was looked up by value). Steps are indices now: every schedule of 1..1000 steps gives the
    solver indices 0..N-1 in order, whatever the shift (V2 and V4 use FlowSchedule, DF the DF matrix)."""
    schedules, dfs = core("sampling.schedules"), core("sampling.diffusion_forcing")
    for shift in SHIFTS:
        for steps in (1, 143, 144, 145, 250, 251, 500, 501, 999, 1000):
            schedule = schedules.FlowSchedule.for_steps(steps, shift)
            assert [schedule[i].index for i in range(len(schedule))] == list(range(steps))
            grid = schedules.flow_grid(steps, shift)
            template = (grid[:-1] * schedules.NUM_TRAIN_TIMESTEPS).to(torch.int64)
            df = dfs.DFSchedule(dfs.generate_timestep_matrix(2, template, 2, ar_step=0), grid)
            assert [int(df[r].index[0]) for r in range(len(df))] == list(range(steps))


@pytest.mark.parametrize(("solver", "shifts"), [("euler", SHIFTS), ("unipc", (0.01, 8.0))])
def test_1000_steps_sample_to_the_end(env, solver, shifts):
    """And the solvers run every one of them (cheap velocity; the real tiny models run 145 / 251 steps below)."""
    loop, schedules, dfs = core("sampling.loop"), core("sampling.schedules"), core("sampling.diffusion_forcing")
    for shift in shifts:
        calls = []
        out = loop.sample(Velocity(), torch.ones(1, 2, 1, 1, 1), schedules.FlowSchedule.for_steps(1000, shift), solver,
                          lambda i, n, x0, calls=calls: calls.append(i))
        assert calls[-1] == 1000 and torch.isfinite(out).all()
        grid = schedules.flow_grid(1000, shift)
        template = (grid[:-1] * schedules.NUM_TRAIN_TIMESTEPS).to(torch.int64)
        out = loop.sample(Velocity(), torch.ones(1, 2, 1, 1, 1),
                          dfs.DFSchedule(dfs.generate_timestep_matrix(1, template, 1, ar_step=0), grid), solver)
        assert torch.isfinite(out).all()


# ------------------------------------------------------------------------------ DF timestep matrix, vectorised


def _reference_block_rows(n_blocks, steps, ar_step, ready_blocks):
    """The row-by-row loop of the SkyReels-V2 reference (and of this pack before the closed form)."""
    done = steps + 1
    pre = torch.zeros(n_blocks, dtype=torch.long)
    pre[:ready_blocks] = done
    index_rows, mask_rows = [], []
    while not bool(torch.all(pre >= steps)):
        new = torch.zeros(n_blocks, dtype=torch.long)
        for i in range(n_blocks):
            new[i] = pre[i] + 1 if i == 0 or pre[i - 1] >= steps else new[i - 1] - ar_step
        new = new.clamp(0, done)
        mask_rows.append((new != pre) & (new != done))
        index_rows.append(new)
        pre = new
    return torch.stack(index_rows), torch.stack(mask_rows)


@pytest.mark.parametrize("ar_step", [0, 1, 2, 5, 7, 12, 30])
@pytest.mark.parametrize(("n_blocks", "steps", "ready"), [
    (n, steps, ready) for n, steps in [(1, 4), (4, 5), (7, 7), (9, 3)] for ready in (0, 1, 3) if ready < n
])  # fmt: skip
def test_closed_form_timestep_rows_equal_the_reference_loop(env, n_blocks, steps, ar_step, ready):
    dfs = core("sampling.diffusion_forcing")
    index, mask = dfs._block_rows(n_blocks, steps, ar_step, ready)
    ref_index, ref_mask = _reference_block_rows(n_blocks, steps, ar_step, ready)
    assert torch.equal(index, ref_index) and torch.equal(mask, ref_mask)
    assert len(index) == dfs.num_matrix_rows(n_blocks, steps, ar_step, ready)


def test_huge_df_timestep_matrix_builds_fast(env):
    """Finding: steps 1000, ar_step 1000, base 1025 took > 90 s in a Python loop (257,000 rows): now seconds."""
    import time

    dfs, schedules = core("sampling.diffusion_forcing"), core("sampling.schedules")
    template = (schedules.flow_grid(1000, 8.0)[:-1] * 1000).to(torch.int64)
    start = time.perf_counter()
    m = dfs.generate_timestep_matrix(65, template, 65, ar_step=1000)  # 65,000 rows (a quarter of the finding)
    assert len(m.step_matrix) == 65_000 and len(m.valid_interval) == 65_000
    assert time.perf_counter() - start < 10  # was ~30 s


# ----------------------------------------------------------------------- files of the wrong kind, legacy .pth


def _pick(env, folder, name, target):
    link = env.models / folder / name
    link.symlink_to(target)
    return link


@pytest.mark.parametrize(("node", "folder", "name", "source", "match"), [
    ("SkyReelsTextEncoderLoader", "text_encoders", "text_encoder_name", "diffusion_models/skyreels_v2_t2v_tiny",
     r"looks like a video diffusion model .*not a text encoder \(umT5-XXL\); load it with SkyReels Model Loader\."),
    ("SkyReelsTextEncoderLoader", "text_encoders", "text_encoder_name", "vae/wan_2.1_vae_tiny",
     r"looks like a video VAE .*load it with SkyReels VAE Loader\."),
    ("SkyReelsVAELoader", "vae", "vae_name", "diffusion_models/skyreels_v2_t2v_tiny",
     r"looks like a video diffusion model .*not a video VAE \(Wan2.1 VAE\); load it with SkyReels Model Loader\."),
    ("SkyReelsVAELoader", "vae", "vae_name", "text_encoders/umt5_xxl_tiny",
     r"looks like a text encoder \(umT5-XXL\).*SkyReels Text Encoder Loader \(umT5\)\."),
    ("SkyReelsCLIPVisionLoader", "clip_vision", "clip_name", "vae/wan_2.1_vae_tiny",
     r"looks like a video VAE .*not an image encoder .*load it with SkyReels VAE Loader"),
])  # fmt: skip
def test_wrong_file_kind_names_what_the_file_is_and_its_loader(tiny, node, folder, name, source, match):
    link = _pick(tiny, folder, "picked.safetensors", tiny.models / f"{source}.safetensors")
    try:
        kwargs = {"tokenizer": "auto"} if node == "SkyReelsTextEncoderLoader" else {}
        with pytest.raises(ValueError, match=rf"^picked\.safetensors: this file {match}"):
            tiny.nodes[node].execute(**{name: "picked.safetensors"}, **kwargs)
    finally:
        link.unlink()


GOLDEN = shared.REPO / "tests" / "golden" / "fixtures"


@pytest.mark.parametrize(("case", "match"), [
    ("P6_mmaudio_vae_44k", r"audio VAE \(MMAudio 44\.1 kHz VAE\).*SkyReels V4 Audio Codec Loader \(as vae_name\)\."),
    ("P7_bigvgan_v2_44k_tiny", r"audio vocoder \(BigVGAN-v2\).*SkyReels V4 Audio Codec Loader \(as vocoder_name\)\."),
])  # fmt: skip
def test_audio_codec_files_in_the_video_vae_loader_point_to_the_codec_loader(env, case, match):
    link = _pick(env, "vae", "audio.safetensors", GOLDEN / case / "weights.safetensors")
    try:
        with pytest.raises(ValueError, match=rf"^audio\.safetensors: this file looks like an {match}"):
            env.nodes["SkyReelsVAELoader"].execute(vae_name="audio.safetensors")
    finally:
        link.unlink()


def test_unrecognised_file_in_the_vae_loader_is_named(tiny, tmp_path):
    from safetensors.torch import save_file

    save_file({"encoder.conv_in.weight": torch.zeros(2), "quant_conv.weight": torch.zeros(2),
               "decoder.conv_in.weight": torch.zeros(2)}, str(tiny.models / "vae" / "odd.safetensors"))
    try:
        with pytest.raises(ValueError, match=r"^odd\.safetensors: Not a Wan2\.1 video VAE .*diffusers AutoencoderKLWan"):
            tiny.nodes["SkyReelsVAELoader"].execute(vae_name="odd.safetensors")
    finally:
        (tiny.models / "vae" / "odd.safetensors").unlink()


def test_legacy_non_zip_pth_is_read_without_mmap_and_still_safely(env, tmp_path):
    io = core("checkpoints.io")
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert torch.equal(io.read_state_dict(tmp_path / "old.pth")["w"], torch.arange(3.0))

    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    torch.save({"w": Payload()}, tmp_path / "evil.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(core("errors").CheckpointError, match=r"^Cannot read evil\.pth .*refused for safety"):
        io.read_state_dict(tmp_path / "evil.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "old.pth").read_bytes()[:40])
    with pytest.raises(core("errors").CheckpointError, match=r"^Cannot read cut\.pth .*truncated"):
        io.read_state_dict(tmp_path / "cut.pth")


def test_crafted_dit_metadata_is_refused_fast_naming_the_field(tiny, tmp_path):
    """Finding: num_heads "0" -> ZeroDivisionError; num_layers "20000" built for 64 s before failing."""
    import json
    import time

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    loader = core("models.wan_dit_loader")
    src = tiny.models / "diffusion_models" / "skyreels_v2_t2v_tiny.safetensors"
    stored = json.loads(safe_open(str(src), "pt").metadata()[loader.WAN_CONFIG_KEY])
    state = load_file(str(src))
    for field, value, match in (("num_heads", 0, "num_heads = 0"), ("num_layers", 20000, "num_layers = 20000"),
                                ("num_heads", "0", "num_heads = '0'")):
        path = tmp_path / f"{field}.safetensors"
        save_file(state, str(path), metadata={loader.WAN_CONFIG_KEY: json.dumps(stored | {field: value})})
        start = time.perf_counter()
        with pytest.raises(core("errors").CheckpointError, match=rf"^{field}\.safetensors: Config field {match}"):
            loader.load_dit(path)
        assert time.perf_counter() - start < 10


# ------------------------------------------------------------------------------ real tiny runs, many steps


def test_df_model_in_the_v2_sampler_points_to_the_df_sampler(env):
    df = Forbidden()
    df.config.inject_sample_info = True
    model = env.pack.nodes.comfy_bridge.manage(df, "dit", "df.safetensors")
    with pytest.raises(input_error(env), match=r"DF \(diffusion forcing\) model .*SkyReels DF Sampler \(long video\)"):
        with_hidden(env, "SkyReelsSampler").execute(model=model, text_embeds=embeds(env),
                                                    latent={"samples": torch.zeros(1, 16, 2, 4, 4)}, **V2)
    assert env.loaded == []


def test_v2_sampler_runs_past_the_old_step_limit(tiny):
    """Finding: V2 at shift 8 crashed from 144 steps (IndexError); here 145 steps of the real tiny DiT."""
    inputs = shared._t2v_inputs(tiny, steps=145, cfg=1.0)
    out = with_hidden(tiny, "SkyReelsSampler").execute(**inputs)[0]
    assert torch.isfinite(out["samples"]).all()
    assert FakeProgressBar.instances[-1].updates[-1][:2] == (145, 145)


def test_tokenizer_choice_lists_auto(env):
    (env.models / "text_encoders" / "enc.safetensors").write_bytes(b"")
    try:
        for value in (None, "/etc", "../../secret"):
            with pytest.raises(input_error(env), match=r"^tokenizer = .* is not one of its options; choose one of: auto"):
                env.nodes["SkyReelsTextEncoderLoader"].execute(text_encoder_name="enc.safetensors", tokenizer=value)
    finally:
        (env.models / "text_encoders" / "enc.safetensors").unlink()


def test_decode_of_a_huge_latent_is_refused_before_the_vae(env, limit_64gib):
    latent = {"samples": torch.zeros(1, 16, 257, 1, 1).expand(64, 16, 257, 512, 512)}  # no memory: a view
    with pytest.raises(input_error(env), match=r"^The decoded video \(4096x4096, 1025 frames, batch 64\) needs about"):
        env.nodes["SkyReelsVAEDecode"].execute(vae=forbidden(env, "vae"), latent=latent, tile_size=0, tile_overlap=64)
    assert env.loaded == []
