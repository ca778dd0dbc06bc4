"""The one place that talks to ComfyUI's runtime: model files, devices, model management, progress.

Every ComfyUI module (folder_paths, comfy.model_management, comfy.model_patcher, comfy.utils,
comfy.latent_formats, latent_preview, server) is imported inside the function that needs it, so importing
the pack touches no GPU and the other node modules stay testable with these few functions mocked.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from ..skyreels_core.errors import SkyReelsInputError
from .types import ManagedModel

log = logging.getLogger("SkyReels")

PROGRESS_EVENT = "skyreels.progress"
"""Custom websocket event the web extension listens to: {node, step, total, s_per_step, eta_s, text}."""

# Which devices ComfyUI's model management assigns to each kind of network.
_DEVICE_ROLES = {
    "dit": ("get_torch_device", "unet_offload_device"),
    "vae": ("vae_device", "vae_offload_device"),
    "text_encoder": ("text_encoder_device", "text_encoder_offload_device"),
    "clip_vision": ("text_encoder_device", "text_encoder_offload_device"),
}


# ---------------------------------------------------------------------------------------------------------
# model files


SHARDED_SUFFIX = "/"  # a sharded model's folder is listed as "<dir>/" after its files


def sharded_folders(files: list[str]) -> list[str]:
    """The folders among ComfyUI's file listing that hold a sharded model (2+ .safetensors files), as "<dir>/".

    A user may pick the folder instead of one shard (the loaders read every shard next to a picked one anyway); the
    shipped templates name folders, so they keep working whatever a release's shard count is.
    """
    counts: dict[str, int] = {}
    for name in files:
        if name.lower().endswith(".safetensors") and os.path.dirname(name):
            counts[os.path.dirname(name)] = counts.get(os.path.dirname(name), 0) + 1
    return sorted(d.replace(os.sep, "/") + SHARDED_SUFFIX for d, n in counts.items() if n >= 2)


def list_models(folder: str) -> list[str]:
    """File names ComfyUI lists for a standard model folder ("diffusion_models", "vae", ...), then the folders of
    sharded models ("SkyReels-V3-V2V-14B/transformer/")."""
    import folder_paths

    files = folder_paths.get_filename_list(folder)
    return [*files, *sharded_folders(files)]


def ensure_model_folder(folder: str) -> None:
    """Register models/<folder> with ComfyUI when this version does not know it yet (e.g. "frame_interpolation",
    which ComfyUI registers itself from 0.30 on), with ComfyUI's model-file extensions; idempotent."""
    import folder_paths

    known = getattr(folder_paths, "folder_names_and_paths", None)
    if known is None or folder in known:
        return
    known[folder] = ([os.path.join(folder_paths.models_dir, folder)], set(folder_paths.supported_pt_extensions))


def shown(value: object, limit: int = 80) -> str:
    """repr of a user value, cut to `limit` characters (an API prompt can send megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_choice(input_name: str, value: object, options: list[str], where: str = "") -> str:
    """`value` if it is one of `options` (a combo's list), else SkyReelsInputError naming the input and the options.

    ComfyUI 0.3.75 does not check a V3 combo's value against its list, so an API prompt can send null, 123 or any
    string; every combo a node reads goes through this before it is used (never joined to a folder unchecked).
    """
    if isinstance(value, str) and value in options:
        return value
    if not options:
        raise SkyReelsInputError(f"{input_name} = {shown(value)}: nothing to choose from. {where}".strip())
    listing = ", ".join(options[:20]) + (f" (+{len(options) - 20} more)" if len(options) > 20 else "")
    raise SkyReelsInputError(
        f"{input_name} = {shown(value)} is not one of its options; choose one of: {listing}. {where}".strip()
    )


def _folder_hint(folder: str) -> str:
    return f"(entries of ComfyUI/models/{folder} and extra_model_paths.yaml; refresh the page after adding one)"


def model_path(folder: str, name: str, input_name: str = "model_name") -> str:
    """Full path of the listed file (or sharded-model folder) `name` in a model folder; raises naming the input
    when it is not listed."""
    import folder_paths

    files = folder_paths.get_filename_list(folder)
    check_choice(input_name, name, [*files, *sharded_folders(files)], _folder_hint(folder))
    if name.endswith(SHARDED_SUFFIX):  # a listed folder: found through one of its listed shards, never joined
        shard = next(f for f in files if f.lower().endswith(".safetensors")
                     and os.path.dirname(f).replace(os.sep, "/") + SHARDED_SUFFIX == name)
        return os.path.dirname(folder_paths.get_full_path_or_raise(folder, shard))
    return folder_paths.get_full_path_or_raise(folder, name)


def _child_dir(folder: str, name: str) -> str | None:
    """The sub-folder `name` (one listed path component) of a model folder, normalised and inside that folder.

    `name` must be a plain entry name: no separator, not '.'/'..', not absolute, and the normalised path must stay
    inside the folder root. A symlink the machine's owner put in the folder is followed (like ComfyUI's own file
    pickers); a name from a prompt can never point elsewhere.
    """
    import folder_paths

    if not name or name in (".", "..") or os.path.isabs(name) or any(sep in name for sep in ("/", "\\", os.sep)):
        return None
    for root in folder_paths.get_folder_paths(folder):
        root = os.path.abspath(root)
        path = os.path.normpath(os.path.join(root, name))
        if os.path.dirname(path) == root and os.path.isdir(path):
            return path
    return None


def list_tokenizer_dirs() -> list[str]:
    """Sub-folders of models/text_encoders that look like a Hugging Face tokenizer (for the umT5 loader)."""
    import folder_paths

    found = []
    for root in folder_paths.get_folder_paths("text_encoders"):
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if os.path.isdir(path) and any(f.startswith(("tokenizer", "spiece")) for f in os.listdir(path)):
                found.append(name)
    return found


def tokenizer_path(name: str, input_name: str = "tokenizer") -> str:
    """Full path of a listed tokenizer folder under models/text_encoders; nothing else is ever opened."""
    check_choice(input_name, name, list_tokenizer_dirs(), _folder_hint("text_encoders"))
    path = _child_dir("text_encoders", name)
    if path is None:
        raise SkyReelsInputError(f"{input_name} = {shown(name)} is not a folder under models/text_encoders.")
    return path


def list_model_dirs(folder: str, marker: str = "config.json") -> list[str]:
    """Sub-folders of a model folder that hold `marker` (Hugging Face model folders, e.g. an MLLM)."""
    import folder_paths

    found = []
    for root in folder_paths.get_folder_paths(folder):
        if os.path.isdir(root):
            found += [n for n in sorted(os.listdir(root)) if os.path.isfile(os.path.join(root, n, marker))]
    return found


def model_dir_path(folder: str, name: str, input_name: str = "mllm_name") -> str:
    """Full path of the listed sub-folder `name` of a model folder (never a path outside it)."""
    check_choice(input_name, name, list_model_dirs(folder), _folder_hint(folder))
    path = _child_dir(folder, name)
    if path is None:
        raise SkyReelsInputError(f"{input_name} = {shown(name)} is not a folder under models/{folder}.")
    return path


# ---------------------------------------------------------------------------------------------------------
# devices and model management


def devices(role: str) -> tuple[torch.device, torch.device]:
    """(load device, offload device) ComfyUI assigns to a network of this role (see _DEVICE_ROLES)."""
    import comfy.model_management as mm

    load_fn, offload_fn = _DEVICE_ROLES[role]
    return getattr(mm, load_fn)(), getattr(mm, offload_fn)()


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype to run a network in on `device`: bf16 where supported, else fp16, float32 on CPU."""
    import comfy.model_management as mm

    if torch.device(device).type == "cpu":
        return torch.float32
    if mm.should_use_bf16(device):
        return torch.bfloat16
    if mm.should_use_fp16(device):
        return torch.float16
    return torch.float32


def half_dtype(device: torch.device) -> torch.dtype:
    """float16 where ComfyUI says the device runs it well (small convolutional nets: RIFE), else float32."""
    import comfy.model_management as mm

    if torch.device(device).type == "cpu":
        return torch.float32
    return torch.float16 if mm.should_use_fp16(device) else torch.float32


def vae_dtype(device: torch.device) -> torch.dtype:
    """The VAE's dtype on `device`: ComfyUI's choice among bf16 and float32 (float32 on CPU)."""
    import comfy.model_management as mm

    if torch.device(device).type == "cpu":
        return torch.float32
    return mm.vae_dtype(device, [torch.bfloat16, torch.float32])


def module_of(runner) -> torch.nn.Module:
    """The nn.Module inside a core runner (the runner itself, or its `model` attribute for wrappers that also
    own a tokenizer or preprocessing)."""
    if isinstance(runner, torch.nn.Module):
        return runner
    module = getattr(runner, "model", None)
    if isinstance(module, torch.nn.Module):
        return module
    raise TypeError(f"{type(runner).__name__} is neither an nn.Module nor has an nn.Module `model` attribute.")


def manage(module: torch.nn.Module, role: str, file: str, runner=None) -> ManagedModel:
    """Wrap a core network in a ModelPatcher so ComfyUI loads, offloads and frees it like its own models."""
    import comfy.model_patcher

    load_device, offload_device = devices(role)
    patcher = comfy.model_patcher.ModelPatcher(module, load_device=load_device, offload_device=offload_device)
    return ManagedModel(patcher=patcher, runner=module if runner is None else runner, file=file)


def free_memory_for(module: torch.nn.Module, device: torch.device, working_bytes: int = 0) -> None:
    """Make room on `device` for a network ComfyUI does not manage (a spandrel upscaler: ComfyUI's own upscale node
    moves it by hand too) plus `working_bytes` of activations, evicting managed models if needed."""
    import comfy.model_management as mm

    size = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    mm.free_memory(size + working_bytes, torch.device(device))


def load_for_use(managed: ManagedModel, *more: ManagedModel) -> torch.device:
    """Ask ComfyUI to put these networks on their load devices, together (evicting others if memory is short);
    returns the first one's device. Pass every network a node uses in turn (e.g. DiT + VAE, chunk by chunk)."""
    import comfy.model_management as mm

    mm.load_models_gpu([m.patcher for m in (managed, *more)])
    return managed.patcher.load_device


# ---------------------------------------------------------------------------------------------------------
# latents: ComfyUI's LATENT holds raw Wan-VAE latents; the DiT and our VAE work on normalised ones


def latent_to_model(samples: torch.Tensor) -> torch.Tensor:
    """LATENT["samples"] (raw Wan2.1 VAE space, what core Wan nodes use) -> normalised DiT space."""
    import comfy.latent_formats

    return comfy.latent_formats.Wan21().process_in(samples.float())


def latent_from_model(samples: torch.Tensor) -> torch.Tensor:
    """Normalised DiT latent -> LATENT["samples"] (raw Wan2.1 VAE space)."""
    import comfy.latent_formats

    return comfy.latent_formats.Wan21().process_out(samples.float())


# ---------------------------------------------------------------------------------------------------------
# progress, previews, status text, cancel


def _send_status(node_id: str | None, payload: dict) -> None:
    try:
        from server import PromptServer
    except ImportError:  # running outside a ComfyUI server (scripts, tests)
        return
    server = PromptServer.instance
    if server is None:
        return
    if node_id is not None:
        server.send_progress_text(payload["text"], node_id)
    server.send_sync(PROGRESS_EVENT, dict(payload, node=node_id), server.client_id)


def format_status(step: int, total: int, seconds_per_step: float) -> str:
    """'step 3/30 · 1.25 s/step · ETA 0:34' (the line shown on the sampler node)."""
    eta = int(round(seconds_per_step * (total - step)))
    return f"step {step}/{total} · {seconds_per_step:.2f} s/step · ETA {eta // 60}:{eta % 60:02d}"


def check_cancel() -> None:
    """Raise ComfyUI's InterruptProcessingException when Cancel was pressed. Called at every step: ComfyUI checks
    Cancel only inside a ProgressBar update that reaches the frontend, and from 0.30 updates less than 100 ms and
    0.5 % apart are dropped, so fast steps would otherwise run on after Cancel."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()


def clear_status(node_id: str | None, reason: str) -> None:
    """Blank the node's status line (progress text and the skyreels.progress event), e.g. after Cancel or an error,
    so it no longer shows 'step 4/40 · ETA 3:29'."""
    _send_status(node_id, {"step": 0, "total": 0, "s_per_step": 0.0, "eta_s": 0.0, "text": "", "ended": reason})


class StepProgress:
    """Per-step callback for a sampling loop: Cancel check, ComfyUI progress bar, a latent2rgb preview of x0, and a
    status line with seconds per step and ETA.

    Call as callback(step, total, x0) with step counting from 1 and x0 a normalised Wan latent [B,16,F,h,w]
    (or None: no preview); an optional `label` is prefixed to the status line. Use it as a context manager around
    the sampling (``with bridge.StepProgress(...) as progress:``): when the run is cancelled or fails, the node's
    status line is cleared.
    """

    def __init__(self, total: int, node_id: str | None, device: torch.device, preview: bool = True):
        import comfy.latent_formats
        import comfy.utils
        import latent_preview

        self.node_id = node_id
        self.bar = comfy.utils.ProgressBar(total)
        self.previewer = latent_preview.get_previewer(device, comfy.latent_formats.Wan21()) if preview else None
        self.start = time.perf_counter()

    def __call__(self, step: int, total: int, x0: torch.Tensor, label: str | None = None) -> None:
        check_cancel()
        per_step = (time.perf_counter() - self.start) / max(step, 1)
        text = format_status(step, total, per_step)
        if label:  # e.g. "window 2/3" (diffusion forcing)
            text = f"{label} · {text}"
        _send_status(self.node_id, {"step": step, "total": total, "s_per_step": per_step,
                                    "eta_s": per_step * (total - step), "text": text})
        preview = None
        if self.previewer is not None and x0 is not None:
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0)
        self.bar.update_absolute(step, total, preview)
        log.debug("SkyReels sampler %s", text)

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            cancelled = type(exc).__name__ == "InterruptProcessingException"
            clear_status(self.node_id, "cancelled" if cancelled else "failed")
        return False


class PassProgress:
    """A recipe's callback(done, total, x0) counted over passes of `steps` steps each (extension chunks, avatar
    windows) -> one StepProgress whose status line starts with label(pass index, passes)."""

    def __init__(self, steps: int, passes: int, node_id, device, label):
        self.steps, self.passes, self.label = steps, passes, label
        self.inner = StepProgress(steps * passes, node_id, device)

    def __call__(self, done: int, total: int, x0) -> None:
        self.inner(done, total, x0[:1], label=self.label((done - 1) // self.steps, self.passes))


class SimpleProgress:
    """Progress bar and Cancel check for non-sampling loops such as VAE decoding: callback(done, total)."""

    def __init__(self, total: int):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(total)

    def __call__(self, done: int, total: int, *_: object) -> None:
        check_cancel()
        self.bar.update_absolute(done, total)
