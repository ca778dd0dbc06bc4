"""Multimodal LLM text encoder for SkyReels-V4 (Qwen2.5-VL / Qwen3-VL through `transformers`, local files only).

The paper uses one frozen MLLM for both towers but does not name it or the hidden layers it reads
(SkyReels-V4 §3.1, §3.3). Our choices, all explicit:
- The model class comes from config.json's `model_type` (`_MODEL_CLASSES`); the bare `*Model` (no LM head) is
  loaded, so a `*ForConditionalGeneration` checkpoint loads with its `lm_head` ignored.
- The prompt goes through the processor's chat template as one user turn: reference images first (each one
  `<|vision_start|><|image_pad|><|vision_end|>`, expanded to its vision tokens by the processor), then the text.
  Without a chat template in the folder the same Qwen turn format is written here. Every token is returned
  (template tokens included). A prompt longer than MAX_PROMPT_TOKENS text tokens is cut there with a warning in
  the log (the DiT's cost grows with the square of the context length: 100,000 characters took minutes).
- The MLLM's control tokens (`<|image_pad|>`, `<|vision_start|>`, `<|im_start|>`, ...) typed into a prompt are
  refused with a message: reference images go through the images input. Reference images must be at least
  MIN_IMAGE_SIDE pixels on each side with an aspect ratio below MAX_IMAGE_ASPECT (the Qwen processor's limits).
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
import re
from pathlib import Path

import torch

from ..errors import CheckpointError, SkyReelsError, SkyReelsInputError

__all__ = ["CAPTION_TAGS", "MAX_PROMPT_TOKENS", "MLLMEncoder", "load_mllm", "model_class_for", "MIN_TRANSFORMERS"]

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
MAX_PROMPT_TOKENS = 2048  # text tokens of one prompt (a long SkyReels-V4 caption is ~300-600)
MIN_IMAGE_SIDE, MAX_IMAGE_ASPECT = 28, 200  # Qwen-VL smart_resize: factor 28, aspect ratio < 200


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
        listed = str(list(layers)) if len(layers) <= 8 else f"{list(layers[:8])[:-1]}, ... ({len(layers)} indices)]"
        raise SkyReelsInputError(
            f"MLLM layers {listed} are out of range: this model has {num_layers} decoder layers, so indices "
            f"run from {-count} to {num_layers} (0 = embeddings, -1 = last layer)."
        )
    return layers


def _brief(exc: Exception) -> str:
    """One line about a library error: its type and the start of its message (pickle refusals in our words)."""
    text = re.sub(r"\x1b\[[0-9;]*m|\s+", " ", str(exc)).strip()
    if "Weights only load failed" in text or type(exc).__name__ == "UnpicklingError":
        return "UnpicklingError: a weights file holds pickled Python objects besides tensors; refused for safety, no code ran"
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _check_tokenizer(processor, folder: Path) -> None:
    """The processor must carry a working text tokenizer (a folder without one loads, then encodes nothing)."""
    tokenizer = getattr(processor, "tokenizer", None)
    ids = None if tokenizer is None else tokenizer("a", add_special_tokens=False).get("input_ids")
    if not ids:
        raise CheckpointError(
            f"The MLLM folder {folder.name} has no usable tokenizer: add the model's tokenizer files "
            f"(tokenizer.json, tokenizer_config.json, or vocab.json + merges.txt) next to config.json."
        )


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
        _check_tokenizer(processor, folder)
        model = cls.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False, **_dtype_kwargs(transformers, dtype)
        )
    except SkyReelsError:
        raise
    except Exception as exc:  # transformers / safetensors / torch raise many types for a damaged folder
        raise CheckpointError(
            f"Could not load the MLLM folder {folder.name} ({_brief(exc)}). The folder needs "
            f"config.json, complete *.safetensors weights (pickled .bin files with code are refused), the tokenizer "
            f"files and the processor / preprocessor config of the model; download it again if a file is damaged."
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
    height, width = int(image.shape[0]), int(image.shape[1])
    if min(height, width) < MIN_IMAGE_SIDE or max(height, width) >= MAX_IMAGE_ASPECT * min(height, width):
        raise SkyReelsInputError(
            f"Reference image {index + 1} is {width}x{height}: the MLLM needs both sides >= {MIN_IMAGE_SIDE} pixels "
            f"and an aspect ratio below {MAX_IMAGE_ASPECT}:1. Crop or resize it (e.g. Upscale Image) first."
        )
    return (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


class MLLMEncoder:
    """Frozen MLLM: prompt (+ reference images) -> context [1, L, text_dim], text_dim = hidden * len(layers)."""

    def __init__(self, model, processor, layers: tuple[int, ...], hidden_size: int):
        self.model = model
        self.processor = processor
        self.layers = tuple(layers)
        self.text_dim = hidden_size * len(self.layers)

    def _control_tokens(self) -> list[str]:
        tokenizer = getattr(self.processor, "tokenizer", None)
        added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
        return sorted(t for t in added if t.startswith("<|") and t.endswith("|>"))

    def check_prompt(self, prompt: str) -> str:
        """The prompt, cut to MAX_PROMPT_TOKENS text tokens (with a log warning); control tokens are refused."""
        if not isinstance(prompt, str):
            raise SkyReelsInputError(f"The prompt must be a string; got {type(prompt).__name__}.")
        typed = [t for t in self._control_tokens() if t in prompt]
        if typed:
            raise SkyReelsInputError(
                f"The prompt contains the MLLM control token(s) {', '.join(typed[:3])}: remove them. Reference images "
                f"go through the images input of SkyReels V4 Text Encode."
            )
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is None:
            return prompt
        head = prompt[: MAX_PROMPT_TOKENS * 32]  # no token is longer than 32 characters: never tokenize megabytes
        ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        if len(ids) <= MAX_PROMPT_TOKENS and len(head) == len(prompt):
            return prompt
        cut = tokenizer.decode(ids[:MAX_PROMPT_TOKENS])
        log.warning("SkyReels V4: the prompt (%d characters) is longer than %d tokens; using its first %d characters.",
                    len(prompt), MAX_PROMPT_TOKENS, len(cut))
        return cut

    def format_prompt(self, prompt: str, num_images: int = 0) -> str:
        """One user turn (images first, then the text) through the processor's chat template."""
        prompt = self.check_prompt(prompt)
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
