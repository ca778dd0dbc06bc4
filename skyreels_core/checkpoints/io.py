"""Reading model files into plain state dicts, and strict loading with errors a user can act on.

Accepted files: one `.safetensors`; a sharded set (pass any shard, the `*.index.json`, or the folder);
`.pth`/`.pt`/`.bin` through `torch.load(weights_only=True)` only (no pickle code execution).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = ["read_state_dict", "read_metadata", "shard_files", "strip_prefix", "load_strict", "describe_keys"]

_SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<idx>\d{5})-of-(?P<n>\d{5})\.safetensors$")
_PICKLE_EXTS = (".pth", ".pt", ".bin", ".ckpt")


def shard_files(path: str | os.PathLike) -> list[Path]:
    """All files that make up the checkpoint at `path` (a file, a shard, an index json or a folder)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Model file not found: {path}")
    if path.is_dir():
        index = sorted(path.glob("*.safetensors.index.json"))
        if index:
            return shard_files(index[0])
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"No .safetensors files in folder {path}.")
        return files
    if path.name.endswith(".index.json"):
        weight_map = json.loads(path.read_text())["weight_map"]
        return [path.parent / name for name in sorted(set(weight_map.values()))]
    match = _SHARD_RE.match(path.name)
    if match:
        n = int(match["n"])
        files = [path.parent / f"{match['stem']}-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise CheckpointError(f"Sharded checkpoint {path.name} is incomplete: missing {', '.join(missing)}.")
        return files
    return [path]


def _torch_load(file: Path, device: str):
    """torch.load(weights_only=True): memory-mapped for zip files; legacy (pre-1.6, non-zip) files cannot be
    mapped and are read whole. Never unpickles code."""
    try:
        return torch.load(str(file), map_location=device, weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):  # e.g. "mmap can only be used with files saved with torch.save(..., zip)"
            raise _unreadable(file, exc) from exc
    except Exception as exc:
        raise _unreadable(file, exc) from exc
    try:
        return torch.load(str(file), map_location=device, weights_only=True)
    except Exception as exc:
        raise _unreadable(file, exc) from exc


def _unreadable(file: Path, exc: Exception) -> CheckpointError:
    text = re.sub(r"\x1b\[[0-9;]*m|\s+", " ", str(exc)).strip()
    if "weights_only" in text or "Weights only" in text or "Unsupported global" in text:
        why = "it holds pickled Python objects besides tensors, which are refused for safety (no code was run)"
    else:
        why = f"it is truncated or not a PyTorch checkpoint ({type(exc).__name__}: {text[:200]})"
    return CheckpointError(
        f"Cannot read {file.name} with torch.load(weights_only=True): {why}. Download it again, or use a "
        f".safetensors version of this model."
    )


def _read_one(file: Path, device: str) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file), device=device)
        except Exception as exc:  # safetensors raises its own error type for truncated headers/data
            raise CheckpointError(
                f"Cannot read {file.name}: {exc}. The file is probably truncated or not a safetensors file; "
                f"download it again (size on disk: {file.stat().st_size:,} bytes)."
            ) from exc
    if file.suffix in _PICKLE_EXTS:
        sd = _torch_load(file, device)
        for wrapper in ("state_dict", "model", "generator", "module"):
            if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
                sd = sd[wrapper]
        if not isinstance(sd, dict):
            raise CheckpointError(f"{file.name} does not contain a state dict (found {type(sd).__name__}).")
        return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    raise CheckpointError(f"Unsupported model file type {file.suffix!r} ({file.name}); use .safetensors or .pth.")


def read_state_dict(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read every tensor of a (possibly sharded) checkpoint into one dict, keys unchanged."""
    state: dict[str, torch.Tensor] = {}
    for file in shard_files(path):
        state.update(_read_one(file, device))
    if not state:
        raise CheckpointError(f"{Path(path).name} contains no tensors.")
    return state


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors `__metadata__` of the first file (empty for .pth)."""
    file = shard_files(path)[0]
    if file.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"Cannot read the header of {file.name}: {exc}. The file is probably truncated.") from exc


def strip_prefix(state: dict[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """Remove the first prefix that every matching key carries (e.g. ComfyUI's `model.diffusion_model.`).

    Keys without the prefix are kept as they are (they are reported later if unexpected).
    """
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in state):
            return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}
    return state


def describe_keys(keys: Iterable[str], limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_strict(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    file: str,
    kind: str,
    allowed_extra: Iterable[str] = (),
    assign: bool = False,
) -> None:
    """load_state_dict(strict) with an error that names the file, the model kind and the first bad keys.

    `allowed_extra` are regexes for keys that released files carry and we ignore on purpose
    (e.g. SkyReels' `model_type.*` marker).
    """
    patterns = [re.compile(p) for p in allowed_extra]
    state = {k: v for k, v in state.items() if not any(p.match(k) for p in patterns)}
    expected = set(module.state_dict().keys())
    missing = expected - state.keys()
    unexpected = state.keys() - expected
    if missing or unexpected:
        parts = [f"{Path(file).name} does not match the {kind} it was read as."]
        if missing:
            parts.append(f"Missing {len(missing)} keys: {describe_keys(missing)}.")
        if unexpected:
            parts.append(f"Unexpected {len(unexpected)} keys: {describe_keys(unexpected)}.")
        parts.append("Check that you picked the right file for this loader, and that the download is complete.")
        raise CheckpointError(" ".join(parts))
    own = module.state_dict()
    for key, tensor in state.items():
        if own[key].shape != tensor.shape:
            raise CheckpointError(
                f"{Path(file).name}: tensor {key} has shape {tuple(tensor.shape)}, the {kind} expects "
                f"{tuple(own[key].shape)}. The file is for a different model size or variant."
            )
    if assign:
        state = {key: _aligned(tensor) for key, tensor in state.items()}
    module.load_state_dict(state, strict=True, assign=assign)


# SIMD kernels pick different code paths for misaligned data, and a memory-mapped safetensors tensor sits wherever
# the file put it (8-byte steps after a header of any length), so the same weights gave different last bits from
# two layouts of one file. A fresh allocation is 64-byte aligned: same weights, same bits, whatever the file.
_ALIGNMENT = 64


def _aligned(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.device.type != "cpu" or tensor.data_ptr() % _ALIGNMENT == 0:
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)
