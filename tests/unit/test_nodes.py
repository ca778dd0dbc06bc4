"""Node-layer tests: call each node's `execute` with ComfyUI's runtime modules replaced by small fakes.

Like ComfyUI's tests-unit/comfy_extras_test/image_stitch_test.py, the runtime modules (model management,
ModelPatcher, ProgressBar, latent_preview, folder_paths, server) are swapped in sys.modules so nothing
touches a GPU. The V3 schema classes come from the real ComfyUI test host when it is installed
(scripts/setup_test_host.py); otherwise from a minimal stand-in with the same interface.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import inspect
import sys
import types
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PACK = "comfyui_skyreels_under_test"
sys.path.insert(0, str(REPO / "scripts"))
import setup_test_host  # noqa: E402  (the host of the selected ComfyUI version: SKYREELS_COMFY / SKYREELS_TESTHOST)

HOST_COMFY = setup_test_host.comfy_dir()

# Widgets are stored by position in saved workflows: this order is a contract. Add new inputs at the end only.
# One entry per registered node, in registration order (test_mappings_are_literal_and_match_schemas checks both);
# test_nodes_df.py, test_nodes_v3.py and test_nodes_v4.py read their nodes' entries from here.
WIDGETS = {
    "SkyReelsModelLoader": ["model_name", "weight_dtype", "attention"],
    "SkyReelsVAELoader": ["vae_name"],
    "SkyReelsTextEncoderLoader": ["text_encoder_name", "tokenizer"],
    "SkyReelsCLIPVisionLoader": ["clip_name"],
    "SkyReelsTextEncode": ["positive", "negative"],
    "SkyReelsCLIPVisionEncode": [],
    "SkyReelsEmptyVideoLatent": ["width", "height", "frames", "batch"],
    "SkyReelsImageToVideo": ["width", "height", "frames"],
    "SkyReelsSampler": ["seed", "steps", "cfg", "shift", "scheduler", "denoise"],
    "SkyReelsVAEDecode": ["tile_size", "tile_overlap"],
    "SkyReelsDFSampler": ["width", "height", "num_frames", "seed", "steps", "cfg", "shift", "scheduler",
                          "base_num_frames", "overlap_history", "ar_step", "causal_block_size", "addnoise_condition",
                          "fps", "color_match"],
    "SkyReelsV3ReferenceToVideo": ["resolution", "width", "height", "duration", "seed", "steps", "shift", "guidance",
                                   "image_guidance", "scheduler"],
    "SkyReelsV3ExtendVideo": ["resolution", "width", "height", "duration", "seed", "steps", "shift", "cfg",
                              "scheduler", "keep_input"],
    "SkyReelsV3ShotPrompt": ["prompt", "shot_type"],
    "SkyReelsV3ShotSwitch": ["resolution", "width", "height", "duration", "seed", "steps", "shift", "cfg",
                             "scheduler", "keep_input"],
    "SkyReelsV3AudioEncoderLoader": ["audio_encoder_name"],
    "SkyReelsV3TalkingAvatar": ["resolution", "width", "height", "seed", "steps", "shift", "guidance",
                                "audio_guidance"],
    "SkyReelsV4ModelLoader": ["model_name", "weight_dtype", "attention"],
    "SkyReelsV4AudioCodecLoader": ["vae_name", "vocoder_name"],
    "SkyReelsV4TextEncoderLoader": ["mllm_name", "layers"],
    "SkyReelsV4TextEncode": ["prompt", "negative"],
    "SkyReelsV4EmptyAVLatent": ["width", "height", "frames", "fps", "batch"],
    "SkyReelsV4TaskCondition": ["task", "extend_frames"],
    "SkyReelsV4References": [],
    "SkyReelsV4Sampler": ["seed", "steps", "video_cfg", "audio_cfg", "sync_scale", "shift", "scheduler"],
    "SkyReelsV4Decode": ["tile_size", "tile_overlap"],
    "SkyReelsV4AudioEncode": [],
    "SkyReelsV4AudioDecode": [],
    "SkyReelsV4Keyframes": ["width", "height", "count"],
    "SkyReelsV4RefinerLoader": ["model_name", "weight_dtype", "attention", "sparse_attention"],
    "SkyReelsV4Refine": ["width", "height", "double_fps", "seed", "steps", "cfg", "shift", "scheduler", "denoise"],
    "SkyReelsRIFELoader": ["model_name", "precision"],
    "SkyReelsInterpolateFrames": ["fps", "multiplier", "target_fps", "scene_cut", "ensemble", "scale", "batch"],
    "SkyReelsUpscaleVideo": ["tile", "overlap", "batch"],
}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "COMBO", "BOOLEAN")
CORE_TYPES = WIDGET_TYPES + ("IMAGE", "MASK", "LATENT", "AUDIO", "VIDEO", "CONDITIONING", "MODEL", "VAE",
                              "UPSCALE_MODEL", "UPSCALEMODEL")  # the second: io.UpscaleModel in the stand-in schema


# --------------------------------------------------------------------------------------- fake runtime


class FakeProgressBar:
    instances: list[FakeProgressBar] = []

    def __init__(self, total, node_id=None):
        self.total, self.updates = total, []
        FakeProgressBar.instances.append(self)

    def update_absolute(self, value, total=None, preview=None):
        self.updates.append((value, total, preview))


class InterruptProcessingException(Exception):
    """Stand-in for comfy.model_management.InterruptProcessingException."""


class FakeCancel:
    """comfy.model_management's Cancel flag: `pressed` makes the next check raise (and resets, like ComfyUI)."""

    pressed = False
    checks = 0

    @classmethod
    def throw_if_pressed(cls):
        cls.checks += 1
        if cls.pressed:
            cls.pressed = False
            raise InterruptProcessingException("Cancel")


class FakePatcher:
    def __init__(self, model, load_device, offload_device):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device


class FakeServer:
    def __init__(self):
        self.texts, self.events, self.client_id = [], [], "client-1"

    def send_progress_text(self, text, node_id, sid=None):
        self.texts.append((node_id, text))

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data, sid))


class FakeWan21:
    """Stand-in for comfy.latent_formats.Wan21 (per-channel affine) when the host is not installed."""

    mean = torch.linspace(-1, 1, 16).view(1, 16, 1, 1, 1)
    std = torch.linspace(1, 3, 16).view(1, 16, 1, 1, 1)
    latent_rgb_factors = [[0.1, 0.2, 0.3]] * 16

    def process_in(self, x):
        return (x - self.mean) / self.std

    def process_out(self, x):
        return x * self.std + self.mean


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _runtime_fakes(loaded: list, server: FakeServer, model_dir: Path) -> dict[str, types.ModuleType]:
    cpu = torch.device("cpu")
    mm = _module(
        "comfy.model_management", get_torch_device=lambda: cpu, unet_offload_device=lambda: cpu,
        vae_device=lambda: cpu, vae_offload_device=lambda: cpu, text_encoder_device=lambda: cpu,
        text_encoder_offload_device=lambda: cpu, load_models_gpu=lambda models, **kw: loaded.extend(models),
        free_memory=lambda size, device, **kw: None,
        should_use_bf16=lambda device=None: False, should_use_fp16=lambda device=None: False,
        vae_dtype=lambda device=None, allowed=(): torch.float32,
        throw_exception_if_processing_interrupted=FakeCancel.throw_if_pressed,
        InterruptProcessingException=InterruptProcessingException,
    )

    def full_path(folder, name):
        path = model_dir / folder / name
        if not path.exists():
            raise FileNotFoundError(f"Model in folder '{folder}' with filename '{name}' not found.")
        return str(path)

    fp = _module(
        "folder_paths", get_filename_list=lambda folder: sorted(p.name for p in (model_dir / folder).glob("*")),
        get_full_path_or_raise=full_path, get_folder_paths=lambda folder: [str(model_dir / folder)],
    )

    class Previewer:
        def decode_latent_to_preview_image(self, fmt, x0):
            return (fmt, tuple(x0.shape), 512)

    fakes = {
        "comfy.model_management": mm,
        "comfy.model_patcher": _module("comfy.model_patcher", ModelPatcher=FakePatcher),
        "comfy.utils": _module("comfy.utils", ProgressBar=FakeProgressBar),
        "latent_preview": _module("latent_preview", get_previewer=lambda device, fmt: Previewer()),
        "folder_paths": fp,
        "server": _module("server", PromptServer=types.SimpleNamespace(instance=server)),
    }
    if not HOST_COMFY.is_dir():
        fakes["comfy.latent_formats"] = _module("comfy.latent_formats", Wan21=FakeWan21)
    return fakes


def _fake_comfy_api() -> dict[str, types.ModuleType]:
    """Just enough of comfy_api.latest (V3 schema) to define and call nodes without ComfyUI."""

    class Input:
        def __init__(self, id, display_name=None, optional=False, tooltip=None, **kw):
            self.id, self.display_name, self.optional, self.tooltip, self.kw = id, display_name, optional, tooltip, kw

    class Output:
        def __init__(self, id=None, display_name=None, tooltip=None, **kw):
            self.id, self.display_name, self.tooltip = id, display_name, tooltip

    def comfy_type(io_type):
        return type(io_type, (), {"io_type": io_type, "Input": type("Input", (Input,), {"io_type": io_type}),
                                  "Output": type("Output", (Output,), {"io_type": io_type})})

    class Schema:
        def __init__(self, node_id, display_name=None, category="sd", inputs=None, outputs=None, hidden=None,
                     description="", **kw):
            self.node_id, self.display_name, self.category = node_id, display_name, category
            self.inputs, self.outputs, self.hidden, self.description = inputs or [], outputs or [], hidden, description

    class ComfyNode:
        hidden = None

    class NodeOutput:
        def __init__(self, *args, ui=None, **kw):
            self.args, self.ui = args, ui

        def __getitem__(self, index):
            return self.args[index]

    io = _module("comfy_api.latest.io", Input=Input, Output=Output, Schema=Schema, ComfyNode=ComfyNode,
                 NodeOutput=NodeOutput, Custom=comfy_type, Hidden=types.SimpleNamespace(unique_id="UNIQUE_ID"))
    builtin: dict[str, type] = {}

    def builtin_type(name: str):  # io.Int, io.Image, io.Audio ...: one type per name, io_type in capitals
        if not name[:1].isupper():
            raise AttributeError(name)
        return builtin.setdefault(name, comfy_type(name.upper()))

    io.__getattr__ = builtin_type
    latest = _module("comfy_api.latest", io=io, ComfyExtension=type("ComfyExtension", (), {}))
    return {"comfy_api": _module("comfy_api"), "comfy_api.latest": latest}


@contextlib.contextmanager
def _swap_modules(fakes: dict[str, types.ModuleType]):
    """sys.modules entries, plus the attribute on an already imported parent package (import a.b as c reads
    the attribute first)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(patch.dict(sys.modules))
        for name, module in fakes.items():
            parent, _, child = name.rpartition(".")
            if parent and parent not in sys.modules:
                sys.modules[parent] = _module(parent)
            sys.modules[name] = module
            if parent:
                stack.enter_context(patch.object(sys.modules[parent], child, module, create=True))
        yield


def _import_pack():
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The pack imported once against the fake runtime: the pack, fakes, call logs and a models folder."""
    models = tmp_path_factory.mktemp("models")
    for folder in ("diffusion_models", "vae", "text_encoders", "clip_vision"):
        (models / folder).mkdir()
    loaded, server = [], FakeServer()
    fakes = _runtime_fakes(loaded, server, models)
    with contextlib.ExitStack() as stack:
        # torch submodules first imported by ComfyUI here (torch.distributed, torch._inductor...) register C++
        # operator libraries that cannot be registered twice: they outlive the sys.modules restore below, so the
        # next test module's import of ComfyUI finds them instead of importing (and registering) them again
        torch_modules: dict[str, types.ModuleType] = {}
        stack.callback(sys.modules.update, torch_modules)
        stack.enter_context(patch.dict(sys.modules))
        if HOST_COMFY.is_dir():
            stack.enter_context(patch.object(sys, "path", [str(HOST_COMFY)] + sys.path))
            importlib.import_module("comfy_api.latest")  # the real V3 schema (imports the real `comfy` package)
        else:
            fakes.update(_fake_comfy_api())
        stack.enter_context(_swap_modules(fakes))
        stack.callback(lambda: torch_modules.update(  # runs first on exit, before either sys.modules restore
            {k: m for k, m in sys.modules.items() if k == "torch" or k.startswith("torch.")}))
        pack = _import_pack()
        core = importlib.import_module(PACK + ".skyreels_core")
        yield types.SimpleNamespace(pack=pack, core=core, loaded=loaded, server=server, models=models,
                                    nodes=pack.NODE_CLASS_MAPPINGS)


@pytest.fixture(autouse=True)
def _fresh_logs(request):
    if "env" in request.fixturenames:
        env = request.getfixturevalue("env")
        env.loaded.clear(), env.server.texts.clear(), env.server.events.clear()
    FakeProgressBar.instances.clear()
    FakeCancel.pressed, FakeCancel.checks = False, 0


def _widgets(schema) -> list[str]:
    names = []
    for item in schema.inputs:
        io_type = getattr(item, "io_type", None) or type(item).__qualname__
        if io_type in WIDGET_TYPES and not getattr(item, "force_input", False):
            names.append(item.id)
    return names


# -------------------------------------------------------------------------------------------- schema


def test_mappings_are_literal_and_match_schemas(env):
    source = (REPO / "__init__.py").read_text()
    tree = ast.parse(source)
    literal = {t.targets[0].id: [k.value for k in t.value.keys] for t in ast.walk(tree)
               if isinstance(t, ast.Assign) and isinstance(t.value, ast.Dict) and t.value.keys}
    assert literal["NODE_CLASS_MAPPINGS"] == list(env.nodes)
    assert not hasattr(env.pack, "NODE_DISPLAY_NAME_MAPPINGS")  # display names come from the V3 schemas
    display_names = [cls.define_schema().display_name for cls in env.nodes.values()]
    assert len(set(display_names)) == len(display_names)
    assert env.pack.WEB_DIRECTORY == "./web" and (REPO / "web" / "skyreels.js").is_file()
    assert list(WIDGETS) == list(env.nodes), "every registered node needs a widget snapshot in WIDGETS"
    for node_id, cls in env.nodes.items():
        schema = cls.define_schema()
        assert schema.node_id == node_id and node_id.startswith("SkyReels")
        assert schema.category.startswith("SkyReels/")
        assert schema.description
        assert schema.display_name.startswith("SkyReels ")
        for item in schema.inputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"
        if hasattr(cls, "GET_SCHEMA"):  # the real V3 schema: what ComfyUI validates when it registers the node
            cls.GET_SCHEMA()
    node_list = asyncio.run(asyncio.run(env.pack.comfy_entrypoint()).get_node_list())
    assert node_list == list(env.nodes.values())


def test_widget_order_is_frozen(env):
    for node_id, widgets in WIDGETS.items():
        assert _widgets(env.nodes[node_id].define_schema()) == widgets, f"{node_id}: never reorder widgets"


def test_custom_wire_types_are_prefixed(env):
    io_types = set()
    for cls in env.nodes.values():
        schema = cls.define_schema()
        io_types |= {getattr(x, "io_type", None) for x in list(schema.inputs) + list(schema.outputs)}
    custom = {t for t in io_types if t not in CORE_TYPES}
    assert custom and all(t.startswith("SKYREELS_") for t in custom), custom


def test_no_comfy_runtime_import_at_module_level():
    for path in [REPO / "__init__.py", *sorted((REPO / "nodes").glob("*.py"))]:
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"comfy", "folder_paths", "server", "nodes", "latent_preview"}, \
                    f"{path.name} imports {name} at module level"


def test_core_never_imports_comfy():
    for path in sorted((REPO / "skyreels_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "level", 0) == 0:
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for mod in mods:
                    assert mod.split(".")[0] not in {"comfy", "comfy_api", "folder_paths", "server", "nodes"}, path


# -------------------------------------------------------------------------------------------- latents


def test_empty_latent_shape(env):
    out = env.nodes["SkyReelsEmptyVideoLatent"].execute(width=832, height=480, frames=81, batch=2)
    assert out[0]["samples"].shape == (2, 16, 21, 60, 104)
    assert out[0]["samples"].abs().sum() == 0


@pytest.mark.parametrize(("kwargs", "hint"), [
    ({"width": 832, "height": 480, "frames": 50}, "Nearest valid value: 49"),
    ({"width": 830, "height": 480, "frames": 81}, "Nearest valid value: 832"),
    ({"width": 832, "height": 490, "frames": 81}, "Nearest valid value: 496"),
])
def test_empty_latent_errors_name_the_fix(env, kwargs, hint):
    with pytest.raises(ValueError, match=hint):
        env.nodes["SkyReelsEmptyVideoLatent"].execute(batch=1, **kwargs)


def test_image_to_pixels_crops_to_aspect_and_maps_range(env):
    latent_mod = sys.modules[PACK + ".nodes.latent"]
    image = torch.zeros(1, 64, 128, 3)
    image[:, :, 32:96] = 1.0  # white centre half, black side quarters
    pixels = latent_mod.image_to_pixels(image, width=32, height=32)  # square: keeps the centre 64x64
    assert pixels.shape == (1, 3, 32, 32)
    assert torch.allclose(pixels, torch.ones_like(pixels), atol=1e-5)
    pixels = latent_mod.image_to_pixels(image, width=64, height=32)  # same aspect: no crop
    assert pixels[..., 0].max() < -0.99 and pixels[..., 32].min() > 0.99


def test_latent_conversion_round_trips(env):
    bridge = sys.modules[PACK + ".nodes.comfy_bridge"]
    x = torch.randn(1, 16, 3, 4, 4)
    assert not torch.allclose(bridge.latent_to_model(x), x)
    assert torch.allclose(bridge.latent_from_model(bridge.latent_to_model(x)), x, atol=1e-5)


# -------------------------------------------------------------------------------------------- decode


class RecordingVAE(torch.nn.Module):
    """A VAE with the core interface that records what the node passes in."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.calls = []

    def decode(self, z, tile=None, overlap=None, callback=None):
        self.calls.append((z.clone(), tile, overlap))
        frames = (z.shape[2] - 1) * 4 + 1
        if callback is not None:
            callback(z.shape[2], z.shape[2])
        ramp = torch.linspace(-1.5, 1.5, frames).view(1, 1, frames, 1, 1)
        return ramp.expand(z.shape[0], 3, frames, z.shape[3] * 8, z.shape[4] * 8)


def test_decode_gives_frames_in_unit_range(env):
    vae = RecordingVAE()
    managed = env.pack.nodes.comfy_bridge.manage(vae, "vae", "vae.safetensors")
    samples = torch.randn(1, 16, 3, 2, 3)
    out = env.nodes["SkyReelsVAEDecode"].execute(vae=managed, latent={"samples": samples}, tile_size=256,
                                                 tile_overlap=32)[0]
    assert out.shape == (9, 16, 24, 3)
    assert out.min() == 0.0 and out.max() == 1.0 and out[4].mean() == pytest.approx(0.5, abs=1e-6)
    z, tile, overlap = vae.calls[0]
    assert torch.allclose(z, env.pack.nodes.comfy_bridge.latent_to_model(samples)) and (tile, overlap) == (32, 4)
    assert env.loaded == [managed.patcher]
    assert FakeProgressBar.instances[-1].updates[-1][:2] == (3, 3)


def test_decode_rejects_bad_tiles_and_latents(env):
    vae = env.pack.nodes.comfy_bridge.manage(RecordingVAE(), "vae", "vae.safetensors")
    with pytest.raises(ValueError, match="tile_overlap"):
        env.nodes["SkyReelsVAEDecode"].execute(vae=vae, latent={"samples": torch.zeros(1, 16, 1, 2, 2)},
                                               tile_size=128, tile_overlap=128)
    with pytest.raises(ValueError, match=r"\[B, 16, F, h, w\]"):
        env.nodes["SkyReelsVAEDecode"].execute(vae=vae, latent={"samples": torch.zeros(1, 4, 8, 8)},
                                               tile_size=0, tile_overlap=64)


# ------------------------------------------------------------------------------- real tiny checkpoints

TINY = ("diffusion_models/skyreels_v2_t2v_tiny.safetensors", "diffusion_models/skyreels_v2_i2v_tiny.safetensors",
        "vae/wan_2.1_vae_tiny.safetensors", "text_encoders/umt5_xxl_tiny.safetensors",
        "clip_vision/clip_vision_h_tiny.safetensors")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny random-weight checkpoints (real key layouts) written by scripts/make_tiny_checkpoints.py:
    the test host's copies when it has them, else written now."""
    host_models = HOST_COMFY / "models"
    if all((host_models / rel).is_file() for rel in TINY):
        return host_models
    spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO / "scripts" / "make_tiny_checkpoints.py")
    maker = importlib.util.module_from_spec(spec)
    with patch.dict(sys.modules, {"make_tiny_checkpoints": maker}):
        spec.loader.exec_module(maker)
        out = tmp_path_factory.mktemp("tiny_models")
        maker.make_all(out, only=list(TINY))
    return out


@pytest.fixture(scope="module")
def tiny(env, tiny_dir):
    for rel in TINY:
        (env.models / rel).symlink_to(tiny_dir / rel)
    env.cache = {}
    return env


def _cached(env, key, node_id, **kwargs):
    """Load each tiny model once per module (loading is what the loader tests check; the rest reuse it)."""
    if key not in env.cache:
        env.cache[key] = _load(env, node_id, **kwargs)
    return env.cache[key]


def _load(env, node_id, **kwargs):
    return env.nodes[node_id].execute(**kwargs)[0]


def with_hidden(cls, node_id: str):
    """The node class as ComfyUI calls it, with hidden.unique_id set: PREPARE_CLASS_CLONE takes the hidden inputs
    (ComfyUI 0.3.75) or V3Data {"hidden_inputs": ...} (0.30); a subclass with `hidden` on the stand-in schema."""
    if not hasattr(cls, "PREPARE_CLASS_CLONE"):
        return type(cls.__name__, (cls,), {"hidden": types.SimpleNamespace(unique_id=node_id)})
    hidden = {"UNIQUE_ID": node_id}
    first = next(iter(inspect.signature(cls.PREPARE_CLASS_CLONE).parameters))
    return cls.PREPARE_CLASS_CLONE({"hidden_inputs": hidden} if first == "v3_data" else hidden)


def _sampler(env, node_id="7"):
    return with_hidden(env.nodes["SkyReelsSampler"], node_id)


def test_loaders_list_folders_and_wrap_in_model_patcher(tiny):
    schema = tiny.nodes["SkyReelsModelLoader"].define_schema()
    options = schema.inputs[0].options if hasattr(schema.inputs[0], "options") else schema.inputs[0].kw["options"]
    assert options == ["skyreels_v2_i2v_tiny.safetensors", "skyreels_v2_t2v_tiny.safetensors"]
    model = _load(tiny, "SkyReelsModelLoader", model_name="skyreels_v2_t2v_tiny.safetensors",
                  weight_dtype="default", attention="flash_attn")
    assert isinstance(model.patcher, FakePatcher) and model.module.config.in_dim == 16
    assert model.module.attn_backend == "sdpa"  # flash-attn cannot run on CPU: falls back
    assert model.module.compute_dtype == torch.float32  # CPU: ComfyUI's choice is float32
    assert tiny.loaded == []  # loading a file does not move it to the GPU; the sampler does


def test_vae_file_picked_as_model_names_the_problem(tiny):
    wrong = tiny.models / "diffusion_models" / "vae_copy.safetensors"
    wrong.symlink_to(tiny.models / "vae" / "wan_2.1_vae_tiny.safetensors")
    try:
        with pytest.raises(ValueError) as info:
            _load(tiny, "SkyReelsModelLoader", model_name="vae_copy.safetensors", weight_dtype="default",
                  attention="auto")
    finally:
        wrong.unlink()
    assert "vae" in str(info.value).lower()


def _i2v_model(env):
    return _cached(env, "i2v", "SkyReelsModelLoader", model_name="skyreels_v2_i2v_tiny.safetensors",
                   weight_dtype="default", attention="auto")


def _t2v_inputs(env, steps=3, cfg=5.0):
    model = _cached(env, "t2v", "SkyReelsModelLoader", model_name="skyreels_v2_t2v_tiny.safetensors",
                    weight_dtype="default", attention="auto")
    encoder = _cached(env, "umt5", "SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                      tokenizer="auto")
    embeds = _cached(env, "embeds", "SkyReelsTextEncode", text_encoder=encoder, positive="a red fox",
                     negative="blurry")
    latent = _load(env, "SkyReelsEmptyVideoLatent", width=32, height=32, frames=5, batch=1)
    return dict(model=model, text_embeds=embeds, latent=latent, seed=1, steps=steps, cfg=cfg, shift=8.0,
                scheduler="unipc", denoise=1.0)


def test_text_encode_gives_both_contexts(tiny):
    encoder = _cached(tiny, "umt5", "SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                      tokenizer="auto")
    embeds = _load(tiny, "SkyReelsTextEncode", text_encoder=encoder, positive="a red fox", negative="blurry")
    assert embeds.positive.shape[:2] == (1, 512) and embeds.negative.shape == embeds.positive.shape
    assert not torch.equal(embeds.positive, embeds.negative)
    assert tiny.loaded == [encoder.patcher]


def test_sampler_reports_every_step_and_matches_core(tiny):
    inputs = _t2v_inputs(tiny, steps=2)
    out = _sampler(tiny).execute(**inputs)[0]
    assert out["samples"].shape == (1, 16, 2, 4, 4)
    bar = FakeProgressBar.instances[-1]
    assert [u[:2] for u in bar.updates] == [(1, 2), (2, 2)]
    assert all(u[2][0] == "JPEG" for u in bar.updates)  # a latent preview every step
    assert [t[0] for t in tiny.server.texts] == ["7"] * 2
    assert tiny.server.texts[-1][1].startswith("step 2/2 · ") and "s/step · ETA 0:00" in tiny.server.texts[-1][1]
    events = [e for e in tiny.server.events if e[0] == "skyreels.progress"]
    assert [e[1]["step"] for e in events] == [1, 2] and events[0][1]["node"] == "7" and events[0][2] == "client-1"
    # the node is a thin adapter: same result as the core pipeline on the normalised latent
    bridge = tiny.pack.nodes.comfy_bridge
    video = importlib.import_module(PACK + ".skyreels_core.pipelines.video")
    ref = video.sample_video(inputs["model"].module, bridge.latent_to_model(inputs["latent"]["samples"]),
                             positive=inputs["text_embeds"].positive, negative=inputs["text_embeds"].negative,
                             steps=2, cfg=5.0, shift=8.0, seed=1)
    assert torch.allclose(out["samples"], bridge.latent_from_model(ref), atol=1e-5)


def test_sampler_cancel_stops_within_one_step(tiny):
    class Interrupt(Exception):
        pass

    def cancel(self, value, total=None, preview=None):
        raise Interrupt

    inputs = _t2v_inputs(tiny, steps=4)
    calls = []
    module = inputs["model"].module
    handle = module.register_forward_hook(lambda *a: calls.append(1))
    with patch.object(FakeProgressBar, "update_absolute", cancel), pytest.raises(Interrupt):
        _sampler(tiny).execute(**inputs)
    handle.remove()
    assert len(calls) == 2  # one step = cond + uncond forward, then the progress bar cancelled


def test_sampler_checks_cancel_every_step_even_when_the_bar_drops_updates(tiny):
    """ComfyUI 0.30 drops progress updates < 100 ms apart and checks Cancel only on those it sends: the node checks
    Cancel itself at every step, then clears its status line (no stale 'step 1/4 · ETA')."""
    inputs = _t2v_inputs(tiny, steps=4)
    calls = []

    def forward_hook(*_):
        calls.append(1)
        if len(calls) == 2:  # Cancel pressed during step 1
            FakeCancel.pressed = True

    handle = inputs["model"].module.register_forward_hook(forward_hook)
    try:
        with patch.object(FakeProgressBar, "update_absolute", lambda *a, **k: None), \
                pytest.raises(InterruptProcessingException):
            _sampler(tiny).execute(**inputs)
    finally:
        handle.remove()
    assert len(calls) == 2 and FakeCancel.checks == 1  # stopped at the end of step 1
    assert tiny.server.texts == [("7", "")]  # cancelled before step 1 was reported; the status is blank
    (event,) = [e[1] for e in tiny.server.events if e[0] == "skyreels.progress"]
    assert event["node"] == "7" and event["text"] == "" and event["ended"] == "cancelled"


def test_sampler_status_is_cleared_when_sampling_fails(tiny):
    inputs = _t2v_inputs(tiny, steps=3)
    calls = []

    def forward_hook(*_):
        calls.append(1)
        if len(calls) == 3:  # the model fails in step 2
            raise RuntimeError("CUDA out of memory (simulated)")

    handle = inputs["model"].module.register_forward_hook(forward_hook)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            _sampler(tiny).execute(**inputs)
    finally:
        handle.remove()
    texts = [t for n, t in tiny.server.texts if n == "7"]
    assert texts[0].startswith("step 1/3") and texts[-1] == ""
    events = [e[1] for e in tiny.server.events if e[0] == "skyreels.progress"]
    assert events[-1]["text"] == "" and events[-1]["ended"] == "failed"
    # success keeps the last status line (the run's time per step stays readable)
    tiny.server.texts.clear()
    _sampler(tiny).execute(**dict(inputs, steps=1))
    assert tiny.server.texts[-1][1].startswith("step 1/1")


def test_simple_progress_checks_cancel_every_call(tiny):
    bridge = tiny.pack.nodes.comfy_bridge
    progress = bridge.SimpleProgress(3)
    progress(1, 3)
    FakeCancel.pressed = True
    with pytest.raises(InterruptProcessingException):
        progress(2, 3)
    assert FakeCancel.checks == 2 and [u[0] for u in FakeProgressBar.instances[-1].updates] == [1]


def test_sampler_errors_say_what_to_change(tiny):
    inputs = _t2v_inputs(tiny, steps=1)
    i2v = _i2v_model(tiny)
    with pytest.raises(ValueError, match="image-to-video model: connect image_cond"):
        _sampler(tiny).execute(**dict(inputs, model=i2v))
    with pytest.raises(ValueError, match=r"Wan2.1 video latent \[B, 16, F, h, w\]"):
        _sampler(tiny).execute(**dict(inputs, latent={"samples": torch.zeros(1, 4, 8, 8)}))


def test_image_to_video_then_sample_and_decode(tiny):
    vae = _load(tiny, "SkyReelsVAELoader", vae_name="wan_2.1_vae_tiny.safetensors")
    image = torch.rand(1, 40, 48, 3)
    clip = _load(tiny, "SkyReelsCLIPVisionLoader", clip_name="clip_vision_h_tiny.safetensors")
    embeds = _load(tiny, "SkyReelsCLIPVisionEncode", clip_vision=clip, image=image)
    assert embeds.clip_fea.shape == (1, clip.module.cfg.num_tokens, clip.module.cfg.dim)
    cond, latent = tiny.nodes["SkyReelsImageToVideo"].execute(vae=vae, start_image=image, width=32, height=32,
                                                              frames=5, image_embeds=embeds)
    assert cond.y.shape == (1, 20, 2, 4, 4) and latent["samples"].shape == (1, 16, 2, 4, 4)
    assert torch.equal(cond.y[0, :4, 0], torch.ones(4, 4, 4)) and cond.y[0, :4, 1].abs().sum() == 0
    inputs = _t2v_inputs(tiny, steps=2)
    i2v = _i2v_model(tiny)
    assert cond.clip_fea is embeds.clip_fea
    out = _sampler(tiny).execute(**dict(inputs, model=i2v, latent=latent, image_cond=cond))[0]
    frames = _load(tiny, "SkyReelsVAEDecode", vae=vae, latent=out, tile_size=0, tile_overlap=64)
    assert frames.shape == (5, 32, 32, 3) and 0.0 <= frames.min() and frames.max() <= 1.0
    with pytest.raises(ValueError, match="image_cond was built for latent size"):
        small = _load(tiny, "SkyReelsEmptyVideoLatent", width=32, height=32, frames=9, batch=1)
        _sampler(tiny).execute(**dict(inputs, model=i2v, latent=small, image_cond=cond))
