"""fp8 weights: kept in fp8 in memory, upcast one layer at a time when used.

Formats read (any model, not only the DiT):
- plain fp8 files (`*_fp8_e4m3fn.safetensors`, `*_fp8_e5m2`): Linear weights stored as float8.
- ComfyUI "scaled fp8" files (`*_fp8_scaled.safetensors`, `umt5_xxl_fp8_e4m3fn_scaled.safetensors`):
  a marker tensor `scaled_fp8` (possibly behind a prefix; its dtype is the fp8 dtype, float32 meaning
  e4m3fn; 2 elements = "no fp8 matmul"), and per Linear `<layer>.scale_weight` (float32, a scalar) and
  optionally `<layer>.scale_input`. The real weight is `weight.float() * scale_weight`
  (ComfyUI `comfy/ops.py` `scaled_fp8_ops`). `scale_input` only matters for fp8 matmul, which we do not
  use; it is read and kept but does not change the result.
- newer ComfyUI "comfy_quant" files: `<layer>.weight_scale` (+ `<layer>.input_scale`, and a uint8 JSON
  `<layer>.comfy_quant` such as {"format": "float8_e4m3fn"}); same math as `scale_weight`.

`apply_fp8(model, state)` swaps each `nn.Linear` whose weight is fp8 in `state` for an `FP8Linear`, sets its
scales, and returns the state dict without the scale/marker keys, ready for a strict load. fp8 tensors of
other modules (convs, norms, embeddings, modulation tables) are upcast there, since they are small.
`quantize=` converts a bf16/fp32 file to fp8 at load (the loaders' "weight dtype fp8_e4m3fn" option), with
a per-tensor scale (absmax / fp8 max) so small weights do not flush to zero.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError

__all__ = [
    "FP8_DTYPES",
    "WEIGHT_DTYPE_OPTIONS",
    "FP8Linear",
    "apply_fp8",
    "fp8_dtype_of",
    "has_fp8",
    "parse_weight_dtype",
    "quantize_weight",
]

log = logging.getLogger(__name__)

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
# Loader option string -> storage dtype of Linear weights (None: as stored in the file).
WEIGHT_DTYPE_OPTIONS: dict[str, torch.dtype | None] = {
    "default": None,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}

_WEIGHT_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_INPUT_SCALE_SUFFIXES = (".scale_input", ".input_scale")
_DROP_SUFFIXES = (".comfy_quant",)
_MARKER = re.compile(r"(^|\.)scaled_fp8$")


class FP8Linear(nn.Module):
    """Linear layer whose weight stays fp8; forward = F.linear(x, weight.to(x.dtype) * scale, bias).

    weight: [out, in] float8_e4m3fn or float8_e5m2. bias: [out] in any float dtype (cast to x's).
    scale_weight: float32 scalar or [out] / [out, 1] per-channel scale, or None (= 1).
    x: [..., in] -> [..., out] in x's dtype. The upcast copy lives only during the call.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        fp8_dtype: torch.dtype = torch.float8_e4m3fn,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if fp8_dtype not in FP8_DTYPES:
            raise CheckpointError(f"FP8Linear needs one of {FP8_DTYPES}, got {fp8_dtype}.")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=fp8_dtype),
                                   requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype), requires_grad=False) \
            if bias else None
        self.register_buffer("scale_weight", None, persistent=False)
        self.register_buffer("scale_input", None, persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fp8_dtype: torch.dtype) -> FP8Linear:
        """An empty FP8Linear with `linear`'s shape, device and bias dtype (weights come from a load)."""
        return cls(linear.in_features, linear.out_features, linear.bias is not None, fp8_dtype=fp8_dtype,
                   device=linear.weight.device, dtype=linear.weight.dtype)

    def set_scales(self, scale_weight: torch.Tensor | None, scale_input: torch.Tensor | None = None) -> None:
        """Set the dequantisation scales (float32; kept off the meta device while the model is empty)."""
        device = None if self.weight.is_meta else self.weight.device
        if scale_weight is not None:
            scale_weight = scale_weight.to(device=device, dtype=torch.float32)
            if scale_weight.numel() == self.out_features and scale_weight.numel() > 1:
                scale_weight = scale_weight.reshape(self.out_features, 1)
            elif scale_weight.numel() != 1:
                raise CheckpointError(
                    f"fp8 scale of shape {tuple(scale_weight.shape)} does not fit a Linear "
                    f"[{self.out_features}, {self.in_features}] (expected a scalar or {self.out_features} values)."
                )
            else:
                scale_weight = scale_weight.reshape(())
        self.scale_weight = scale_weight
        self.scale_input = None if scale_input is None else scale_input.to(device=device, dtype=torch.float32)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[out, in] weight in `dtype`, with the scale applied (the scale multiply happens in fp32)."""
        if self.scale_weight is None:
            return self.weight.to(dtype)
        return (self.weight.to(torch.float32) * self.scale_weight).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale_weight is None:
            weight = self.weight.to(x.dtype)
        else:
            weight = self.weight.to(x.dtype) * self.scale_weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, weight, bias)

    def _apply(self, fn, recurse=True):
        # model.to(dtype) must not upcast the fp8 storage: move it, then put it back in fp8 (exact, since
        # every fp8 value is representable in fp16/bf16/fp32).
        fp8_dtype = self.weight.dtype
        super()._apply(fn, recurse)
        if self.weight.dtype != fp8_dtype:
            self.weight = nn.Parameter(self.weight.data.to(fp8_dtype), requires_grad=False)
        for name in ("scale_weight", "scale_input"):
            scale = getattr(self, name)
            if scale is not None and scale.dtype != torch.float32:
                setattr(self, name, scale.to(torch.float32))
        return self

    def extra_repr(self) -> str:
        scaled = "none" if self.scale_weight is None else tuple(self.scale_weight.shape)
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, fp8={self.weight.dtype}, scale={scaled}")


def parse_weight_dtype(option: str | torch.dtype | None) -> torch.dtype | None:
    """Loader option ("default", "fp8_e4m3fn", "fp8_e5m2", a dtype or None) -> fp8 dtype or None."""
    if option is None or isinstance(option, torch.dtype):
        if option is not None and option not in FP8_DTYPES:
            raise CheckpointError(f"weight dtype {option} is not an fp8 dtype; use one of {list(WEIGHT_DTYPE_OPTIONS)}.")
        return option
    if option not in WEIGHT_DTYPE_OPTIONS:
        raise CheckpointError(f"Unknown weight dtype {option!r}; choose one of {list(WEIGHT_DTYPE_OPTIONS)}.")
    return WEIGHT_DTYPE_OPTIONS[option]


def has_fp8(state: dict[str, torch.Tensor]) -> bool:
    return any(t.dtype in FP8_DTYPES for t in state.values()) or any(_MARKER.search(k) for k in state)


def fp8_dtype_of(state: dict[str, torch.Tensor]) -> torch.dtype | None:
    """The fp8 dtype a file stores its weights in (None if none); honours the `scaled_fp8` marker."""
    for key, tensor in state.items():
        if _MARKER.search(key):
            return torch.float8_e4m3fn if tensor.dtype == torch.float32 else tensor.dtype
    for tensor in state.values():
        if tensor.dtype in FP8_DTYPES:
            return tensor.dtype
    return None


def quantize_weight(weight: torch.Tensor, fp8_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """[out, in] float weight -> (fp8 weight, float32 scalar scale) with weight ~= q.float() * scale."""
    amax = weight.detach().abs().max().to(torch.float32)
    fmax = torch.finfo(fp8_dtype).max
    scale = torch.where(amax > 0, amax / fmax, torch.ones_like(amax))
    q = (weight.to(torch.float32) / scale).clamp(-fmax, fmax).to(fp8_dtype)
    return q, scale


def _split_scales(state: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(state without scale/marker keys, {layer: weight scale}, {layer: input scale})."""
    rest, weight_scales, input_scales = {}, {}, {}
    for key, tensor in state.items():
        if _MARKER.search(key) or key.endswith(_DROP_SUFFIXES):
            continue
        suffix = next((s for s in _WEIGHT_SCALE_SUFFIXES if key.endswith(s)), None)
        if suffix is not None:
            weight_scales[key[: -len(suffix)]] = tensor
            continue
        suffix = next((s for s in _INPUT_SCALE_SUFFIXES if key.endswith(s)), None)
        if suffix is not None:
            input_scales[key[: -len(suffix)]] = tensor
            continue
        rest[key] = tensor
    return rest, weight_scales, input_scales


def _comfy_quant_formats(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """{layer: format} from `<layer>.comfy_quant` uint8 JSON tensors (newer ComfyUI quant files)."""
    formats = {}
    for key, tensor in state.items():
        if key.endswith(".comfy_quant"):
            try:
                formats[key[: -len(".comfy_quant")]] = json.loads(tensor.numpy().tobytes()).get("format", "")
            except (ValueError, AttributeError):
                formats[key[: -len(".comfy_quant")]] = "unreadable"
    return formats


def _check_comfy_quant(state: dict[str, torch.Tensor]) -> None:
    bad = {layer: fmt for layer, fmt in _comfy_quant_formats(state).items()
           if fmt not in ("float8_e4m3fn", "float8_e5m2")}
    if bad:
        layer, fmt = next(iter(bad.items()))
        raise CheckpointError(
            f"Layer {layer} is quantised as {fmt!r}; only float8_e4m3fn / float8_e5m2 files are supported "
            f"(use a bf16, fp8_e4m3fn or fp8_scaled version of this model)."
        )


def _swap_linear(model: nn.Module, name: str, fp8_dtype: torch.dtype) -> FP8Linear:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    new = FP8Linear.from_linear(getattr(parent, child), fp8_dtype)
    setattr(parent, child, new)
    return new


def _keep(name: str, keep: Iterable[str]) -> bool:
    return any(re.search(pattern, name) for pattern in keep)


def apply_fp8(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    quantize: torch.dtype | None = None,
    keep: Iterable[str] = (),
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Make `model` hold fp8 Linear weights where `state` has them; returns `state` minus scale keys.

    quantize: also convert float Linear weights to this fp8 dtype (scaled per tensor), except layers
        whose name matches a regex in `keep` (e.g. embeddings and the output head).
    dtype: cast every other float tensor to this dtype (fp8 weights of FP8Linear layers stay fp8).
    Non-Linear fp8 tensors are upcast to `dtype`, or to the model's own dtype for that tensor.
    """
    _check_comfy_quant(state)
    state, weight_scales, input_scales = _split_scales(state)
    keep = tuple(keep)
    own = model.state_dict()
    swapped = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or f"{name}.weight" not in state:
            continue
        weight = state[f"{name}.weight"]
        scale = weight_scales.pop(name, None)
        if weight.dtype not in FP8_DTYPES and quantize is not None and not _keep(name, keep) \
                and weight.is_floating_point():
            if scale is not None:
                weight = weight.to(torch.float32) * scale.to(torch.float32)
            weight, scale = quantize_weight(weight, quantize)
            state[f"{name}.weight"] = weight
        if weight.dtype in FP8_DTYPES:
            _swap_linear(model, name, weight.dtype).set_scales(scale, input_scales.pop(name, None))
            swapped += 1
        elif scale is not None:  # a scale on a float weight: fold it in
            state[f"{name}.weight"] = (weight.to(torch.float32) * scale.to(torch.float32)).to(weight.dtype)
    for key, tensor in state.items():
        if tensor.dtype in FP8_DTYPES and not _is_fp8_linear_weight(model, key):
            scale = weight_scales.pop(key.rsplit(".", 1)[0], None)
            upcast = tensor.to(torch.float32) * (1.0 if scale is None else scale.to(torch.float32))
            target = dtype or (own[key].dtype if key in own and own[key].is_floating_point() else torch.float32)
            state[key] = upcast.to(target)
        elif dtype is not None and tensor.is_floating_point() and tensor.dtype not in FP8_DTYPES:
            state[key] = tensor.to(dtype)
    if weight_scales:
        layers = ", ".join(sorted(weight_scales)[:5])
        raise CheckpointError(f"The file has fp8 scales for layers this model does not have: {layers}.")
    if swapped:
        log.info("fp8: %d Linear layers keep %s weights", swapped, fp8_dtype_of(state))
    return state


def _is_fp8_linear_weight(model: nn.Module, key: str) -> bool:
    module_name, _, param = key.rpartition(".")
    if param != "weight":
        return False
    try:
        return isinstance(model.get_submodule(module_name), FP8Linear)
    except AttributeError:
        return False
