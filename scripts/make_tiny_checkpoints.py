"""Write tiny random-weight model files in the REAL key layouts, into ComfyUI-style model folders.

    python scripts/make_tiny_checkpoints.py OUT_DIR [--only diffusion_models/skyreels_v2_t2v_tiny ...]

Every file is deterministic (fixed seeds, values rounded to bf16 so the fp32 and bf16 files hold the same
numbers) and small (a few MB). Files are skipped when they already exist with the content this version
would write (sha256 recorded in OUT_DIR/tiny_manifest.json together with TINY_VERSION).

The registry `TINY_FILES` lists `TinyFile(relative_path, builder)`; a builder returns a state dict (or
(tensors, metadata)). Another model's tiny file is one line: `TinyFile("vae/x.safetensors", tiny_builders.fn)`,
with the builder in `scripts/tiny_builders.py`.
Used by the unit tests (`make_all(tmp_dir)`) and the ComfyUI end-to-end tests. The command line also writes
`REAL_NAMED_FILES`: the same tiny models under the real released file names the shipped templates name.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import logging
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

if __package__ in (None, "") and str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import tiny_builders  # noqa: E402
from skyreels_core.checkpoints.convert import to_diffusers_wan_keys  # noqa: E402
from skyreels_core.checkpoints.fp8 import quantize_weight  # noqa: E402

log = logging.getLogger("make_tiny_checkpoints")

TINY_VERSION = "3"  # 3: DiT configs stored as one JSON (checkpoints/metadata.py)
MANIFEST = "tiny_manifest.json"
StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TinyFile:
    """One registry entry. `shards` > 1 writes a folder of diffusers-style shards plus an index json."""

    path: str
    build: Callable[[], StateDict]
    metadata: dict[str, str] = field(default_factory=dict)
    shards: int = 1
    wrap: str | None = None  # .pth/.pt: save {wrap: state dict}, as bigvgan_generator.pt ({"generator": ...})


# ---------------------------------------------------------------- DiT state dicts


def _wan_config(variant: str):
    """The TINY DiT preset, with text_dim / image_dim set to the output widths of the tiny umT5 and CLIP
    vision files below, so a tiny graph (text encoder -> DiT, CLIP vision -> I2V DiT) connects."""
    from skyreels_core.encoders.clip_vision import CLIPVisionConfig
    from skyreels_core.encoders.umt5 import UMT5Config
    from skyreels_core.models.wan_dit import TINY

    base = dataclasses.replace(TINY, text_dim=UMT5Config.TINY.dim, image_dim=CLIPVisionConfig.TINY.dim)
    i2v = dataclasses.replace(base, model_type="i2v", in_dim=36)
    return {
        "t2v": base,
        "i2v": i2v,
        "df": dataclasses.replace(base, inject_sample_info=True),
        # The speech-feature sizes are fixed by wav2vec2-base (768 x 12 layers, window 5, 32 tokens), so proj1 /
        # proj1_vf take 46080 / 73728 inputs whatever the model; the adapter's hidden width (proj2) and the model
        # width are free, and small here (head_dim stays 128, as released, so the shapes alone give num_heads).
        "a2v": dataclasses.replace(i2v, dim=128, ffn_dim=256, num_heads=1, audio_adapter=True, audio_hidden_dim=4),
    }[variant]


def _random_tensor(key: str, shape: torch.Size, seed: int) -> torch.Tensor:
    """Seeded per key (independent of key order): N(0, 1/fan_in) weights, small biases, norms near 1."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    noise = torch.randn(shape, generator=generator)
    name = key.rsplit(".", 1)[-1]
    if "norm" in key and len(shape) == 1:
        value = (1.0 if name == "weight" else 0.0) + 0.1 * noise
    elif name == "bias":
        value = 0.02 * noise
    elif name == "modulation":
        value = noise / shape[-1] ** 0.5
    else:
        value = noise / max(shape[1:].numel(), 1) ** 0.5
    return value.to(torch.bfloat16).float().contiguous()


@functools.cache
def _dit_cached(variant: str, seed: int) -> tuple[tuple[str, torch.Tensor], ...]:
    from skyreels_core.models.wan_dit import WanModel

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in WanModel(_wan_config(variant), device="meta").state_dict().items()}
    return tuple((k, _random_tensor(k, shapes[k], seed)) for k in sorted(shapes))


def tiny_dit_state_dict(variant: str = "t2v", seed: int = 0, marker: bool = True) -> StateDict:
    """Original Wan keys, float32 (bf16-representable). `marker` adds SkyReels' `model_type.*` dummy tensor."""
    state = {k: v.clone() for k, v in _dit_cached(variant, seed)}
    if marker:
        state[f"model_type.SkyReels-V2-{variant.upper()}-tiny"] = torch.zeros(1)
    return state


def _is_block_linear(key: str, tensor: torch.Tensor) -> bool:
    return key.startswith("blocks.") and key.endswith(".weight") and tensor.dim() == 2


def comfy_prefixed(state: StateDict) -> StateDict:
    return {f"model.diffusion_model.{k}": v for k, v in state.items()}


def to_bf16(state: StateDict) -> StateDict:
    return {k: v.to(torch.bfloat16) for k, v in state.items()}


def to_fp8(state: StateDict, fp8_dtype: torch.dtype = torch.float8_e4m3fn) -> StateDict:
    """Kijai / ComfyUI `*_fp8_e4m3fn` style: block Linear weights cast to fp8, everything else bf16."""
    return {k: v.to(fp8_dtype) if _is_block_linear(k, v) else v.to(torch.bfloat16) for k, v in state.items()}


def to_scaled_fp8(state: StateDict, fp8_dtype: torch.dtype = torch.float8_e4m3fn) -> StateDict:
    """ComfyUI `*_fp8_scaled` style: `scaled_fp8` marker + per-layer float32 `scale_weight`/`scale_input`."""
    out: StateDict = {"scaled_fp8": torch.empty(0, dtype=fp8_dtype)}
    for key, tensor in state.items():
        if _is_block_linear(key, tensor):
            layer = key[: -len(".weight")]
            out[key], out[f"{layer}.scale_weight"] = quantize_weight(tensor, fp8_dtype)
            out[f"{layer}.scale_input"] = torch.ones(())
        else:
            out[key] = tensor.to(torch.bfloat16)
    return out


def _dit(variant: str = "t2v", transform: Callable[[StateDict], StateDict] | None = None, **kw) -> Callable:
    """Builder of (tensors, metadata): the config JSON the loader cross-checks against the shapes."""

    def build() -> tuple[StateDict, dict[str, str]]:
        from skyreels_core.checkpoints.metadata import config_metadata
        from skyreels_core.models.wan_dit_loader import WAN_CONFIG_KEY

        state = tiny_dit_state_dict(variant, **kw)
        metadata = config_metadata(_wan_config(variant), WAN_CONFIG_KEY)
        return (transform(state) if transform else state), metadata

    return build


def _diffusers(state: StateDict) -> StateDict:
    return to_diffusers_wan_keys({k: v for k, v in state.items() if not k.startswith("model_type.")})


def _umt5(layout: str = "comfy", scaled_fp8: bool = False) -> Callable[[], StateDict]:
    """Tiny umT5; the ComfyUI layout carries the tokenizer as the uint8 `spiece_model` tensor, as ComfyUI's do."""

    def build() -> StateDict:
        from skyreels_core.encoders.tokenizer import make_tiny_spiece_model

        spiece = make_tiny_spiece_model() if layout == "comfy" else None
        return tiny_builders.tiny_umt5_state_dict(with_spiece=spiece, layout=layout, scaled_fp8=scaled_fp8)

    return build


class FolderFiles(dict):
    """What a folder builder returns: {file name inside the entry's folder: bytes} (e.g. a Hugging Face model)."""


_QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>")
# Qwen2.5-VL's chat template reduced to one user turn with images and text (no default system prompt).
_QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.cache  # written twice (tiny and real name); the bytes are the same
def tiny_qwen25_vl_files(hidden_size: int = 32) -> FolderFiles:
    """A tiny random Qwen2.5-VL folder (config, safetensors, byte-level BPE tokenizer, processor) for the V4 text
    encoder, saved with transformers' own save_pretrained. hidden_size 32 = the TINY AV DiT's text_dim (layers -1).
    Needs `transformers` + `tokenizers` (ImportError -> the entry is skipped)."""
    import tempfile

    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(["a cat walks in the rain and says hello to the dog"] * 4, trainers.BpeTrainer(
        vocab_size=320, special_tokens=list(_QWEN_SPECIAL), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in _QWEN_SPECIAL}
    text = dict(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=3,
                num_attention_heads=2, num_key_value_heads=1, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"],
                rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e4})
    vision = dict(depth=2, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=hidden_size,
                  fullatt_block_indexes=[1], window_size=56, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = transformers.Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    model = transformers.Qwen2_5_VLForConditionalGeneration(config)
    with torch.no_grad():  # bf16-representable values, like the other tiny files
        for param in model.parameters():
            param.copy_(param.to(torch.bfloat16).float())
    processor = transformers.Qwen2_5_VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112), tokenizer=tok,
        video_processor=transformers.Qwen2VLVideoProcessor(), chat_template=_QWEN_TEMPLATE)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        return FolderFiles({p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()})


def _config_json(config: dict) -> bytes:
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def _r2v_transformer_config() -> dict:
    """diffusers `transformer/config.json` of the tiny R2V model (the real one is Wan2.1-T2V-14B sized)."""
    c = _wan_config("t2v")
    return {"_class_name": "SkyReelsA2WanI2v3DModel", "added_kv_proj_dim": None, "attention_head_dim": c.head_dim,
            "cross_attn_norm": True, "eps": c.eps, "ffn_dim": c.ffn_dim, "freq_dim": c.freq_dim, "image_dim": None,
            "in_channels": c.in_dim, "num_attention_heads": c.num_heads, "num_layers": c.num_layers,
            "out_channels": c.out_dim, "patch_size": list(c.patch_size), "qk_norm": "rms_norm_across_heads",
            "rope_max_seq_len": 1024, "text_dim": c.text_dim}


def tiny_r2v_transformer_files() -> FolderFiles:
    """SkyReels-V3 R2V `transformer/`: diffusers keys in 2 index-listed shards + config.json (seed 3)."""
    from skyreels_core.checkpoints.metadata import config_metadata
    from skyreels_core.models.wan_dit_loader import WAN_CONFIG_KEY

    state = _diffusers(tiny_dit_state_dict("t2v", seed=3, marker=False))
    metadata = config_metadata(_wan_config("t2v"), WAN_CONFIG_KEY)
    files = _render(TinyFile("x", lambda: (state, metadata), shards=2))
    return FolderFiles({"config.json": _config_json(_r2v_transformer_config()),
                        **{rel.split("/", 1)[1]: data for rel, data in files.items()}})


def tiny_r2v_vae_files() -> FolderFiles:
    """SkyReels-V3 R2V `vae/`: the tiny Wan2.1 VAE in diffusers `AutoencoderKLWan` naming + config.json."""
    from skyreels_core.checkpoints.convert import to_diffusers_vae_keys
    from skyreels_core.models.video_vae import LATENT_MEAN, LATENT_STD, VAE3DConfig

    c = VAE3DConfig.TINY
    config = {"_class_name": "AutoencoderKLWan", "base_dim": c.dim, "z_dim": c.z_dim, "dim_mult": list(c.dim_mult),
              "num_res_blocks": c.num_res_blocks, "attn_scales": list(c.attn_scales),
              "temperal_downsample": list(c.temperal_downsample), "dropout": c.dropout,
              "latents_mean": list(LATENT_MEAN), "latents_std": list(LATENT_STD)}
    state = to_diffusers_vae_keys(tiny_builders.tiny_video_vae_state_dict(), c.num_res_blocks)
    return FolderFiles({"config.json": _config_json(config),
                        "diffusion_pytorch_model.safetensors": _safetensors_bytes(state, {})})


def tiny_v2v_files(seed: int) -> Callable[[], FolderFiles]:
    """SkyReels-V3 V2V `transformer/` (seed 1) or `shot_transformer/` (seed 2): Wan keys, 2 shards, no index
    (the reference globs *.safetensors in the folder); same architecture, different values."""

    def build() -> FolderFiles:
        from skyreels_core.checkpoints.metadata import config_metadata
        from skyreels_core.models.wan_dit_loader import WAN_CONFIG_KEY

        state = tiny_dit_state_dict("t2v", seed=seed, marker=False)
        metadata = config_metadata(_wan_config("t2v"), WAN_CONFIG_KEY)
        files = _render(TinyFile("x", lambda: (state, metadata), shards=2))
        return FolderFiles({rel.split("/", 1)[1]: data for rel, data in files.items() if rel.endswith(".safetensors")})

    return build


def _a2v_config_json() -> dict:
    """The reference WanModel's root `config.json` (its __init__ argument names) for the tiny A2V model."""
    c = _wan_config("a2v")
    return {"_class_name": "WanModel", "model_type": c.model_type, "patch_size": list(c.patch_size), "text_len": 512,
            "in_dim": c.in_dim, "dim": c.dim, "ffn_dim": c.ffn_dim, "freq_dim": c.freq_dim, "text_dim": c.text_dim,
            "out_dim": c.out_dim, "num_heads": c.num_heads, "num_layers": c.num_layers, "window_size": [-1, -1],
            "qk_norm": c.qk_norm, "cross_attn_norm": c.cross_attn_norm, "eps": c.eps,
            "audio_window": c.audio_window, "intermediate_dim": c.audio_hidden_dim, "output_dim": c.audio_token_dim,
            "context_tokens": c.audio_tokens, "vae_scale": c.vae_temporal_stride, "norm_input_visual": True,
            "norm_output_audio": True}


def tiny_a2v_files() -> FolderFiles:
    """SkyReels-V3 A2V root: Wan I2V keys + speech adapter in bf16 (as released), 2 shards without an index (the
    reference globs *.safetensors) and config.json; no config metadata, the loader reads config.json (seed 4)."""
    state = to_bf16(tiny_dit_state_dict("a2v", seed=4, marker=False))
    files = _render(TinyFile("x", lambda: state, shards=2))
    return FolderFiles({"config.json": _config_json(_a2v_config_json()),
                        **{rel.split("/", 1)[1]: data for rel, data in files.items() if rel.endswith(".safetensors")}})


DM = "diffusion_models/"
TINY_FILES: tuple[TinyFile, ...] = (
    TinyFile(DM + "skyreels_v2_t2v_tiny.safetensors", _dit("t2v")),
    TinyFile(DM + "skyreels_v2_t2v_tiny_comfy.safetensors", _dit("t2v", comfy_prefixed)),
    TinyFile(DM + "skyreels_v2_t2v_tiny_diffusers.safetensors", _dit("t2v", _diffusers)),
    TinyFile(DM + "skyreels_v2_t2v_tiny_bf16.safetensors", _dit("t2v", to_bf16)),
    TinyFile(DM + "skyreels_v2_t2v_tiny_fp8_e4m3fn.safetensors", _dit("t2v", to_fp8)),
    TinyFile(DM + "skyreels_v2_t2v_tiny_fp8_scaled.safetensors", _dit("t2v", to_scaled_fp8)),
    TinyFile(DM + "skyreels_v2_t2v_tiny_sharded", _dit("t2v"), shards=2),
    TinyFile(DM + "skyreels_v2_i2v_tiny.safetensors", _dit("i2v")),
    TinyFile(DM + "skyreels_v2_df_tiny.safetensors", _dit("df")),
    # SkyReels-V3 in the released repo layouts (one folder per repo subfolder).
    TinyFile(DM + "skyreels_v3_r2v_tiny/transformer", tiny_r2v_transformer_files),
    TinyFile(DM + "skyreels_v3_r2v_tiny/vae", tiny_r2v_vae_files),
    TinyFile(DM + "skyreels_v3_v2v_tiny/transformer", tiny_v2v_files(1)),
    TinyFile(DM + "skyreels_v3_v2v_tiny/shot_transformer", tiny_v2v_files(2)),
    TinyFile(DM + "skyreels_v3_a2v_tiny", tiny_a2v_files),
    # Other model kinds: builders in tiny_builders.py.
    TinyFile("vae/wan_2.1_vae_tiny.safetensors", tiny_builders.tiny_video_vae_state_dict),
    TinyFile("vae/Wan2.1_VAE_tiny.pth", tiny_builders.tiny_video_vae_state_dict),
    TinyFile("text_encoders/umt5_xxl_tiny.safetensors", _umt5("comfy")),
    TinyFile("text_encoders/umt5_xxl_tiny_fp8_e4m3fn_scaled.safetensors", _umt5("comfy", scaled_fp8=True)),
    TinyFile("text_encoders/models_t5_umt5-xxl-enc-tiny.pth", _umt5("wan")),
    TinyFile("clip_vision/clip_vision_h_tiny.safetensors",
             functools.partial(tiny_builders.tiny_clip_vision_state_dict, layout="comfy")),
    TinyFile("clip_vision/models_clip_open-clip-xlm-roberta-large-vit-huge-14_tiny.pth",
             functools.partial(tiny_builders.tiny_clip_vision_state_dict, layout="wan")),
    TinyFile("vae/mmaudio_vae_44k_tiny.safetensors", tiny_builders.tiny_audio_vae_state_dict),
    TinyFile("vae/bigvgan_v2_44k_tiny.safetensors", tiny_builders.tiny_vocoder_state_dict),
    # Real-ESRGAN image SR (spandrel layouts), wrapped as released: x2plus in "params_ema", x4v3 in "params".
    TinyFile("upscale_models/RealESRGAN_x2plus_tiny.pth", tiny_builders.tiny_rrdb_state_dict, wrap="params_ema"),
    TinyFile("upscale_models/realesr-general-x4v3_tiny.pth", tiny_builders.tiny_srvgg_state_dict, wrap="params"),
    TinyFile(DM + "skyreels_v4_av_tiny.safetensors", tiny_builders.tiny_av_dit_state_dict),
    TinyFile(DM + "skyreels_v4_refiner_tiny.safetensors", tiny_builders.tiny_refiner_state_dict),
    TinyFile("text_encoders/qwen2.5_vl_tiny", tiny_qwen25_vl_files),  # a folder: the V4 MLLM text encoder
    TinyFile("audio_encoders/chinese-wav2vec2-base_tiny", lambda: FolderFiles(tiny_builders.tiny_wav2vec2_files())),
)

# The same tiny models under the REAL released file names the shipped templates name (scripts/templates.py),
# each in that release's key layout and dtype, so the templates run unchanged on the test host. Written by the
# command line (the test host); make_all() alone writes only TINY_FILES (the unit tests).
REAL_NAMED_FILES: tuple[TinyFile, ...] = (
    TinyFile(DM + "Wan2_1-SkyReels-V2-T2V-14B-720P_fp8_e4m3fn.safetensors", _dit("t2v", to_fp8)),
    TinyFile(DM + "Wan2_1-SkyReels-V2-I2V-14B-540P_fp8_e4m3fn.safetensors", _dit("i2v", to_fp8)),
    TinyFile(DM + "Wan2_1-SkyReels-V2-DF-1_3B-540P_fp32.safetensors", _dit("df")),
    TinyFile("vae/wan_2.1_vae.safetensors", tiny_builders.tiny_video_vae_state_dict),
    TinyFile("text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", _umt5("comfy", scaled_fp8=True)),
    TinyFile("clip_vision/clip_vision_h.safetensors",
             functools.partial(tiny_builders.tiny_clip_vision_state_dict, layout="comfy")),
    TinyFile("vae/v1-44.pth", tiny_builders.tiny_audio_vae_state_dict),
    TinyFile("vae/bigvgan_generator.pt", tiny_builders.tiny_vocoder_state_dict, wrap="generator"),
    TinyFile("upscale_models/RealESRGAN_x2plus.pth", tiny_builders.tiny_rrdb_state_dict, wrap="params_ema"),
    TinyFile("upscale_models/realesr-general-x4v3.pth", tiny_builders.tiny_srvgg_state_dict, wrap="params"),
    TinyFile("text_encoders/Qwen2.5-VL-7B-Instruct", tiny_qwen25_vl_files),
    TinyFile(DM + "skyreels_v4_av.safetensors", tiny_builders.tiny_av_dit_state_dict),
    TinyFile(DM + "skyreels_v4_refiner.safetensors", tiny_builders.tiny_refiner_state_dict),
    TinyFile(DM + "SkyReels-V3-R2V-14B/transformer", tiny_r2v_transformer_files),
    TinyFile(DM + "SkyReels-V3-V2V-14B/transformer", tiny_v2v_files(1)),
    TinyFile(DM + "SkyReels-V3-V2V-14B/shot_transformer", tiny_v2v_files(2)),
    TinyFile(DM + "SkyReels-V3-A2V-19B", tiny_a2v_files),
    # the A2V adapter takes wav2vec2-base-sized features: a speech encoder of those sizes (tiny elsewhere)
    TinyFile("audio_encoders/chinese-wav2vec2-base", lambda: FolderFiles(tiny_builders.tiny_wav2vec2_files(
        seed=1, cfg=tiny_builders.speech_sized_wav2vec2_config()))),
    # RIFE frame interpolation (ComfyUI-Frame-Interpolation names): rife47.pth as distributed (no prefix),
    # rife426.pth with the `module.` prefix of Practical-RIFE's train_log/flownet.pkl (the loader strips it)
    TinyFile("frame_interpolation/rife47.pth", functools.partial(tiny_builders.tiny_rife_state_dict, "4.7", seed=5)),
    TinyFile("frame_interpolation/rife426.pth",
             functools.partial(tiny_builders.tiny_rife_state_dict, "4.26", seed=6, prefix="module.")),
)


# ---------------------------------------------------------------- writing


def _safetensors_bytes(state: StateDict, metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in state.items()}, metadata={"skyreels.tiny_version": TINY_VERSION,
                                                                        **metadata})
    return _sorted_metadata(data)


def _sorted_metadata(data: bytes) -> bytes:
    """The same file with its `__metadata__` entries in sorted order: safetensors writes them in hash-map order,
    which changes from call to call once there are two, and the manifest needs the same bytes every time."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    return data[:8] + text.ljust(size) + data[8 + size:]


def _pth_bytes(state: StateDict, wrap: str | None = None) -> bytes:
    """A torch.save zip, as the official Wan / SkyReels `.pth` files (plain tensors: weights_only loads it)."""
    buffer = io.BytesIO()
    state = {k: v.contiguous() for k, v in state.items()}
    torch.save({wrap: state} if wrap else state, buffer)
    return buffer.getvalue()


def _render(entry: TinyFile) -> dict[str, bytes]:
    """{relative path: file bytes} for one entry (several files for a sharded entry)."""
    state = entry.build()
    if isinstance(state, FolderFiles):
        return {f"{entry.path}/{name}": data for name, data in state.items()}
    metadata = entry.metadata
    if isinstance(state, tuple):  # a builder may return (tensors, metadata), e.g. a config stored as JSON
        state, metadata = state[0], {**metadata, **state[1]}
    if entry.path.endswith((".pth", ".pt")):
        return {entry.path: _pth_bytes(state, entry.wrap)}
    if entry.shards == 1:
        return {entry.path: _safetensors_bytes(state, metadata)}
    keys = sorted(state)
    per_shard = -(-len(keys) // entry.shards)
    files, weight_map, total = {}, {}, 0
    for i in range(entry.shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{entry.shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i * per_shard:(i + 1) * per_shard]}
        files[f"{entry.path}/{name}"] = _safetensors_bytes(part, metadata)
        weight_map.update(dict.fromkeys(part, name))
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files[f"{entry.path}/diffusion_pytorch_model.safetensors.index.json"] = \
        (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    return files


def _load_manifest(out_dir: Path) -> dict:
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {"version": TINY_VERSION, "files": {}}
    return manifest if manifest.get("version") == TINY_VERSION else {"version": TINY_VERSION, "files": {}}


def _up_to_date(out_dir: Path, entry: TinyFile, manifest: dict) -> bool:
    recorded = manifest["files"].get(entry.path)
    if not recorded:
        return False
    for rel, digest in recorded.items():
        file = out_dir / rel
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            return False
    return True


def make_all(out_dir: str | Path, only: list[str] | None = None,
             registry: tuple[TinyFile, ...] = TINY_FILES) -> list[Path]:
    """Write (or keep, if up to date) every registry file under `out_dir`; returns all paths written or kept.

    only: registry paths (or their prefixes, e.g. "diffusion_models/") to restrict to.
    An entry whose builder module is not available is skipped with a warning.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(out_dir)
    result: list[Path] = []
    for entry in registry:
        if only and not any(entry.path.startswith(o) for o in only):
            continue
        if _up_to_date(out_dir, entry, manifest):
            result.extend(out_dir / rel for rel in manifest["files"][entry.path])
            continue
        try:
            files = _render(entry)
        except (ImportError, AttributeError) as exc:
            log.warning("skipping %s: builder not available (%s)", entry.path, exc)
            continue
        for rel, data in files.items():
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / rel).write_bytes(data)
            result.append(out_dir / rel)
        manifest["files"][entry.path] = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
        log.info("wrote %s", entry.path)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="ComfyUI models folder (or any folder) to write into")
    parser.add_argument("--only", nargs="*", default=None, help="registry paths or folder prefixes to write")
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument("--tiny-names-only", action="store_true",
                        help="skip the copies under the real released file names (REAL_NAMED_FILES)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    registry = TINY_FILES if args.tiny_names_only else TINY_FILES + REAL_NAMED_FILES
    if args.list:
        for entry in registry:
            log.info("%s", entry.path)
        return 0
    paths = make_all(args.out_dir, args.only, registry)
    log.info("%d files in %s", len(paths), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
