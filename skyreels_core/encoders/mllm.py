"""Multimodal LLM text encoder for SkyReels-V4 (Qwen2.5-VL / Qwen3-VL through `transformers`, local files only).

The paper uses one frozen MLLM for both towers but does not name it or the hidden layers it reads
(SkyReels-V4 §3.1, §3.3). Our choices, all explicit:
- The model class comes from config.json's `model_type` (`_MODEL_CLASSES`); the bare `*Model` (no LM head) is
  loaded, so a `*ForConditionalGeneration` checkpoint loads with its `lm_head` ignored.
- The prompt goes through the processor's chat template as one user turn: reference images first (each one
  `<|vision_start|><|image_pad|><|vision_end|>`, expanded to its vision tokens by the processor), then the text.
  Without a chat template in the folder the same Qwen turn format is written here. Every token is returned
  (template tokens included); nothing is truncated.
- The context is the concatenation (on features) of the hidden states at `layers`, indices into transformers'
  `hidden_states` tuple (0 = token embeddings, -1 = last), so text_dim = hidden_size * len(layers).
- The structured caption tags `<dialogue> <sfx> <bgm> <singing> <text>` (and their closing tags) are plain text
  for the tokenizer: they are passed through unchanged (never stripped, escaped or turned into special tokens).

`transformers` is optional and imported only inside `load_mllm` (importing skyreels_core never imports it).
Loading never downloads: `local_files_only=True` (what HF_HUB_OFFLINE=1 enforces), no remote code.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ..errors import CheckpointError, SkyReelsError, SkyReelsInputError

__all__ = ["CAPTION_TAGS", "MLLMEncoder", "load_mllm", "model_class_for", "MIN_TRANSFORMERS"]

log = logging.getLogger(__name__)

CAPTION_TAGS = ("dialogue", "sfx", "bgm", "singing", "text")
MIN_TRANSFORMERS = "4.49.0"  # Qwen2.5-VL
# config.json model_type -> (transformers class, first transformers version that has it)
_MODEL_CLASSES = {
    "qwen2_vl": ("Qwen2VLModel", "4.45.0"),
    "qwen2_5_vl": ("Qwen2_5_VLModel", "4.49.0"),
    "qwen3_vl": ("Qwen3VLModel", "4.57.0"),
    "qwen3_vl_moe": ("Qwen3VLMoeModel", "4.57.0"),
}
_VISION_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def _import_transformers():
    try:
        import transformers
    except ImportError as exc:
        raise SkyReelsError(
            f"The SkyReels-V4 text encoder (a Qwen2.5-VL / Qwen3-VL MLLM) needs the `transformers` package: "
            f'pip install "transformers>={MIN_TRANSFORMERS}" (Qwen3-VL needs >=4.57.0).'
        ) from exc
    return transformers


def model_class_for(transformers, model_type: str):
    """The transformers class for a config.json model_type; clear errors for unknown types / old versions."""
    if model_type not in _MODEL_CLASSES:
        raise CheckpointError(
            f"MLLM model_type {model_type!r} is not supported; supported: {', '.join(sorted(_MODEL_CLASSES))} "
            f"(Qwen2-VL, Qwen2.5-VL, Qwen3-VL folders in Hugging Face layout)."
        )
    name, version = _MODEL_CLASSES[model_type]
    cls = getattr(transformers, name, None)
    if cls is None:
        installed = getattr(transformers, "__version__", "unknown")
        raise SkyReelsError(
            f"{model_type} models need transformers>={version} (class {name}); installed: {installed}. "
            f'Run: pip install -U "transformers>={version}".'
        )
    return cls


def _read_config(folder: Path) -> dict:
    file = folder / "config.json"
    if not file.is_file():
        raise CheckpointError(
            f"{folder} is not a Hugging Face model folder (no config.json). Point the loader at the folder holding "
            f"config.json, the *.safetensors weights, tokenizer and preprocessor files of a Qwen2.5-VL / Qwen3-VL."
        )
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file} could not be read as JSON: {exc}") from exc


def _check_layers(layers, num_layers: int) -> tuple[int, ...]:
    """Layer indices into hidden_states (num_layers + 1 entries: embeddings, then every decoder layer)."""
    layers = tuple(int(i) for i in layers)
    count = num_layers + 1
    bad = [i for i in layers if not -count <= i < count]
    if not layers or bad:
        raise SkyReelsInputError(
            f"MLLM layers {list(layers)} are out of range: this model has {num_layers} decoder layers, so indices "
            f"run from {-count} to {num_layers} (0 = embeddings, -1 = last layer)."
        )
    return layers


def _dtype_kwargs(transformers, dtype) -> dict:
    if dtype is None:
        return {}
    major_minor = tuple(int(p) for p in transformers.__version__.split(".")[:2] if p.isdigit())
    return {"dtype": dtype} if major_minor >= (4, 56) else {"torch_dtype": dtype}


def load_mllm(
    path_or_dir: str | os.PathLike,
    *,
    layers=(-1,),
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> MLLMEncoder:
    """Load a local Qwen2.5-VL / Qwen3-VL folder (or a file inside it) as a frozen MLLM text encoder."""
    folder = Path(path_or_dir)
    folder = folder.parent if folder.is_file() else folder
    config = _read_config(folder)
    transformers = _import_transformers()
    cls = model_class_for(transformers, str(config.get("model_type")))
    text_config = config.get("text_config", config)
    num_layers = int(text_config.get("num_hidden_layers", config.get("num_hidden_layers", 0)))
    layers = _check_layers(layers, num_layers)
    try:
        processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model = cls.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False, **_dtype_kwargs(transformers, dtype)
        )
    except OSError as exc:
        raise CheckpointError(
            f"Could not load the MLLM from {folder} without downloading: {exc}. The folder needs the weights, "
            f"config.json, tokenizer files and the processor / preprocessor config of the model."
        ) from exc
    model = model.to(device).eval().requires_grad_(False)
    hidden = int(text_config.get("hidden_size", config.get("hidden_size", 0)))
    log.info("Loaded MLLM %s (%s, %d layers, taps %s)", folder.name, config.get("model_type"), num_layers, layers)
    return MLLMEncoder(model, processor, layers, hidden)


def _image_array(image: torch.Tensor, index: int):
    """[H, W, 3] (or IMAGE [1, H, W, 3]) in 0..1 -> uint8 numpy [H, W, 3] for the processor."""
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[-1] not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise SkyReelsInputError(f"Reference image {index + 1} must be [H, W, 3] with values 0..1; got {shape}.")
    return (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


class MLLMEncoder:
    """Frozen MLLM: prompt (+ reference images) -> context [1, L, text_dim], text_dim = hidden * len(layers)."""

    def __init__(self, model, processor, layers: tuple[int, ...], hidden_size: int):
        self.model = model
        self.processor = processor
        self.layers = tuple(layers)
        self.text_dim = hidden_size * len(self.layers)

    def format_prompt(self, prompt: str, num_images: int = 0) -> str:
        """One user turn (images first, then the text) through the processor's chat template."""
        if not isinstance(prompt, str):
            raise SkyReelsInputError(f"The prompt must be a string; got {type(prompt).__name__}.")
        if getattr(self.processor, "chat_template", None):
            content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": prompt}]
            messages = [{"role": "user", "content": content}]
            return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return f"<|im_start|>user\n{_VISION_PLACEHOLDER * num_images}{prompt}<|im_end|>\n"

    def prepare(self, prompt: str, images: list[torch.Tensor] | None = None):
        """Processor outputs (input_ids, attention_mask, pixel_values, image_grid_thw, ...) as tensors."""
        arrays = [_image_array(image, i) for i, image in enumerate(images or [])]
        text = self.format_prompt(prompt, len(arrays))
        kwargs = {"images": arrays} if arrays else {}
        return self.processor(text=[text], return_tensors="pt", **kwargs)

    @torch.no_grad()
    def encode(self, prompt: str, images: list[torch.Tensor] | None = None) -> torch.Tensor:
        """prompt (+ images [H, W, 3] 0..1) -> float32 [1, L, text_dim] on the CPU (L includes vision tokens)."""
        inputs = self.prepare(prompt, images)
        param = next(self.model.parameters())
        inputs = {
            k: (v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device))
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }
        out = self.model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
        states = out.hidden_states
        return torch.cat([states[i] for i in self.layers], dim=-1).float().cpu()
