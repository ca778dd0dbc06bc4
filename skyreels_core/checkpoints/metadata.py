"""A model's config stored as one JSON in the safetensors metadata, checked against the tensor shapes.

Convention (every diffusion model kind): metadata key `skyreels.<kind>.config` holds the config dataclass
as JSON (`config_metadata`). At load, `read_config_metadata` parses it and `check_claims` compares every
field the tensors determine with the claim, and checks the remaining claims are plausible (positive
numbers), all BEFORE anything is built. Errors name the field and the metadata key.
"""

from __future__ import annotations

import dataclasses
import json

from ..errors import CheckpointError

__all__ = ["config_metadata", "read_config_metadata", "check_claims"]

# Dataclass annotations (strings under `from __future__ import annotations`) whose claims `check_claims` checks.
_SCALAR_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _plain(value):
    """JSON-ready / comparable form of a config value (enum -> its value, list -> tuple)."""
    value = getattr(value, "value", value)
    return tuple(value) if isinstance(value, list | tuple) else value


def config_metadata(config, key: str) -> dict[str, str]:
    """{key: JSON of every field of the config dataclass} (enums as their values).

    Fields marked `metadata={"from_layout": True}` are left out: the loader sets them from the file's key layout
    (e.g. the DiT's timestep-embedding precision), so they are never a claim of the file.
    """
    fields = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)
              if not f.metadata.get("from_layout")}
    return {key: json.dumps(fields, sort_keys=True)}


def read_config_metadata(metadata: dict[str, str], key: str, config_class: type) -> dict[str, object]:
    """The fields stored under `key` ({} if absent); lists become tuples. Unknown fields raise."""
    raw = metadata.get(key)
    if raw is None:
        return {}
    try:
        stored = json.loads(raw)
    except ValueError as exc:
        raise CheckpointError(f"Metadata {key} is not valid JSON: {exc}.") from exc
    if not isinstance(stored, dict):
        raise CheckpointError(f"Metadata {key} must be a JSON object of config fields; got {raw[:80]!r}.")
    unknown = sorted(set(stored) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise CheckpointError(
            f"Metadata {key} has fields this version does not know: {unknown}. The file needs a newer ComfyUI-SkyReels."
        )
    return {name: _plain(value) for name, value in stored.items()}


def _implausible(value, annotation: str) -> str | None:
    """Why a claimed value cannot be right for a field of this annotation (None if it may be)."""
    expected = _SCALAR_TYPES.get(annotation)
    if expected is None:
        return None
    if expected is bool or isinstance(value, bool):
        return None if type(value) is expected else f"expected a {annotation}"
    if expected is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, expected):
        return f"expected a {annotation}"
    return "expected a positive number" if expected in (int, float) and value <= 0 else None


def check_claims(
    stored: dict[str, object], inferred: dict[str, tuple[object, str]], key: str, config_class: type
) -> None:
    """Raise CheckpointError naming the field if a stored claim contradicts the shapes or cannot be right.

    inferred: {field: (value, the tensor it was read from)} for every field the shapes determine.
    """
    for name, (value, source) in inferred.items():
        if name in stored and stored[name] != _plain(value):
            raise CheckpointError(
                f"Config field {name} = {stored[name]!r} in the metadata ({key}) but the tensors say {value!r} "
                f"({source}). The file's metadata does not describe its weights; re-export it."
            )
    annotations = {f.name: f.type for f in dataclasses.fields(config_class)}
    for name, value in stored.items():
        reason = None if name in inferred else _implausible(value, str(annotations[name]))
        if reason:
            raise CheckpointError(
                f"Config field {name} = {value!r} in the metadata ({key}): {reason}. The file's metadata is "
                f"damaged; re-export it."
            )
