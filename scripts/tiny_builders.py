"""Deterministic random-weight state dicts of every model kind, in the released key layouts (tests and demos).

Used by `make_tiny_checkpoints.py` and by the unit tests. Fixed seeds and a fixed key order; values rounded
to bf16 and stored float32 where the docstring says so, so fp32 and bf16 files hold the same numbers.
The Wan DiT builder lives in `make_tiny_checkpoints.py` (`tiny_dit_state_dict`).
"""

from __future__ import annotations

import math
import re

import torch

from skyreels_core.checkpoints.convert import RenameTable
from skyreels_core.checkpoints.fp8 import quantize_weight
from skyreels_core.checkpoints.metadata import config_metadata
from skyreels_core.encoders.clip_vision import COMFY_KEY_RENAMES, CLIPVisionConfig, CLIPVisionEncoder
from skyreels_core.encoders.umt5 import HF_KEY_RENAMES, SPIECE_KEY, UMT5Config, UMT5Encoder
from skyreels_core.encoders.wav2vec2 import Wav2Vec2Config, Wav2Vec2Encoder
from skyreels_core.models.audio_vae import DATA_MEAN_128D, DATA_STD_128D, AudioVAE, AudioVAEConfig
from skyreels_core.models.av_mmdit import CONFIG_METADATA_KEY, AVDiTConfig, AVMMDiT
from skyreels_core.models.video_vae import VAE3DConfig, WanVAE
from skyreels_core.models.vocoder import BigVGAN, BigVGANConfig

__all__ = [
    "tiny_audio_vae_state_dict",
    "tiny_av_dit_state_dict",
    "tiny_clip_vision_state_dict",
    "tiny_refiner_state_dict",
    "tiny_rrdb_state_dict",
    "tiny_srvgg_state_dict",
    "tiny_umt5_state_dict",
    "tiny_video_vae_state_dict",
    "tiny_vocoder_state_dict",
    "tiny_wav2vec2_config_json",
    "tiny_wav2vec2_files",
    "tiny_wav2vec2_state_dict",
    "speech_sized_wav2vec2_config",
]

StateDict = dict[str, torch.Tensor]


def _bf16_randn(generator: torch.Generator, shape, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
    values = torch.randn(*shape, generator=generator) * std + mean
    return values.to(torch.bfloat16).to(torch.float32)  # bf16-representable, stored as float32


def _meta_shapes(model_class: type[torch.nn.Module], config) -> dict[str, torch.Size]:
    """{key: shape} of the model's state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in model_class(config).state_dict().items()}


def _check_layout(layout: str) -> None:
    if layout not in ("wan", "comfy"):
        raise ValueError(f"layout must be 'wan' or 'comfy', got {layout!r}.")


# ---------------------------------------------------------------- video VAE, audio VAE, vocoder


def tiny_video_vae_state_dict(seed: int = 0, config: VAE3DConfig = VAE3DConfig.TINY) -> StateDict:
    """Wan2.1 VAE weights in the real key layout (bf16-representable values, stored float32).

    Conv weights ~ N(0, 1/fan_in), biases ~ N(0, 0.02), norm gammas ~ 1 + N(0, 0.05); the decoder head is
    scaled down so decoded pixels mostly stay in [-1, 1].
    """
    shapes = _meta_shapes(WanVAE, config)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(shapes):
        shape = shapes[key]
        noise = torch.randn(shape, generator=generator)
        if key.endswith("gamma"):
            value = 1.0 + 0.05 * noise
        elif key.endswith("bias"):
            value = 0.02 * noise
        else:
            value = noise / (shape[1:].numel() ** 0.5)
        if key.startswith("decoder.head.2."):
            value = value * 0.25
        state[key] = value.to(torch.bfloat16).float().contiguous()
    return state


def tiny_audio_vae_state_dict(config: AudioVAEConfig | None = None, seed: int = 0) -> StateDict:
    """Raw (pre-weight-norm) MMAudio VAE weights in the released v1-44.pth layout (tiny hidden width 8).

    MPConv1D weights ~ N/sqrt(fan_in), learnable gains 0.05*N, data_mean/std = the 128-bin constants.
    """
    config = config or AudioVAEConfig(hidden_dim=8)
    shapes = _meta_shapes(AudioVAE, config)
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in sorted(shapes.items()):
        if key == "data_mean":
            sd[key] = torch.tensor(DATA_MEAN_128D).view(1, -1, 1)
        elif key == "data_std":
            sd[key] = torch.tensor(DATA_STD_128D).view(1, -1, 1)
        elif key.endswith("learnable_gain"):
            sd[key] = 0.05 * torch.randn(shape, generator=gen)
        else:
            sd[key] = torch.randn(shape, generator=gen) / math.sqrt(shape[1] * shape[2])
    return sd


def tiny_vocoder_state_dict(config: BigVGANConfig | None = None, seed: int = 0) -> StateDict:
    """BigVGAN generator weights in the bigvgan_generator.pt layout (tiny: initial channel 64, x512).

    weight_g 1 + 0.1N (conv_post 0.01x that, so the output is not all clipped), weight_v N/sqrt(fan_in),
    SnakeBeta log-alpha/beta 0.1N, biases 0.05N, FIR filters exactly as the constructor computes them.
    """
    config = config or BigVGANConfig(
        upsample_initial_channel=64, resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5))
    )
    model = BigVGAN(config)
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in sorted(model.state_dict().items()):
        shape = value.shape
        if key.endswith("filter"):
            sd[key] = value.clone()
        elif key.endswith("weight_g"):
            sd[key] = (1 + 0.1 * torch.randn(shape, generator=gen)) * (0.01 if key.startswith("conv_post") else 1)
        elif key.endswith("weight_v"):
            fan_in = shape[0] * shape[2] if key.startswith("ups.") else shape[1] * shape[2]
            sd[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        elif key.endswith((".alpha", ".beta")):
            sd[key] = 0.1 * torch.randn(shape, generator=gen)
        else:
            sd[key] = 0.05 * torch.randn(shape, generator=gen)
    return sd


# ---------------------------------------------------------------- image SR (spandrel layouts)

# Real-ESRGAN's RRDBNet (BasicSR key names): the input is pixel-unshuffled by 4 / scale for scale 1 / 2, so
# conv_first takes 3 * (4 / scale)^2 channels; then always two nearest-x2 + conv stages (conv_up1, conv_up2).
_RRDB_UNSHUFFLE = {1: 4, 2: 2, 4: 1}
_RRDB_GROW = 32  # num_grow_ch: 32 in every release, and spandrel builds RRDBs with gc=32 whatever the file says


def _sr_conv(generator: torch.Generator, out_ch: int, in_ch: int, gain: float = 1.0) -> tuple[torch.Tensor, ...]:
    """A 3x3 conv's (weight, bias): weight N(0, gain^2 / fan_in), bias 0.02 N; bf16-representable float32."""
    weight = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * gain / math.sqrt(in_ch * 9)
    bias = 0.02 * torch.randn(out_ch, generator=generator)
    return weight.to(torch.bfloat16).float(), bias.to(torch.bfloat16).float()


def tiny_rrdb_state_dict(seed: int = 0, scale: int = 2, num_feat: int = 4, num_block: int = 1) -> StateDict:
    """Real-ESRGAN RRDBNet weights in the released key layout (RealESRGAN_x2plus.pth for scale 2, without its
    `params_ema` wrapper): conv_first, body.{i}.rdb{1..3}.conv{1..5}, conv_body, conv_up1/2, conv_hr, conv_last.

    Released: num_feat 64, num_block 23 (6 for the anime model), num_grow_ch 32. Tiny: num_feat 4, 1 block
    (~200 k parameters, nearly all in the 32-channel dense growth). conv_last's bias is 0.5, so random
    weights give mid-grey output with texture instead of a clamped image.
    """
    if scale not in _RRDB_UNSHUFFLE:
        raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}.")
    generator = torch.Generator().manual_seed(seed)
    convs = [("conv_first", num_feat, 3 * _RRDB_UNSHUFFLE[scale] ** 2, 1.0)]
    for i in range(num_block):
        for rdb in (1, 2, 3):
            for c in range(1, 6):
                out_ch = num_feat if c == 5 else _RRDB_GROW
                convs.append((f"body.{i}.rdb{rdb}.conv{c}", out_ch, num_feat + (c - 1) * _RRDB_GROW, 1.0))
    convs += [(name, num_feat, num_feat, 1.0) for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr")]
    convs.append(("conv_last", 3, num_feat, 0.3))
    state = {}
    for name, out_ch, in_ch, gain in convs:  # module order, as the released files
        state[f"{name}.weight"], state[f"{name}.bias"] = _sr_conv(generator, out_ch, in_ch, gain)
    state["conv_last.bias"] += 0.5
    return state


def tiny_srvgg_state_dict(
    seed: int = 0, scale: int = 4, num_feat: int = 8, num_conv: int = 4, in_ch: int = 3
) -> StateDict:
    """Real-ESRGAN SRVGGNetCompact weights in the released layout (realesr-general-x4v3.pth without its
    `params` wrapper): body.0 conv, body.1 PReLU, num_conv x (conv, PReLU), then body.{2 num_conv + 2}, a conv
    to in_ch * scale^2 channels before PixelShuffle(scale); the network adds the nearest-upsampled input.

    Released: num_feat 64, num_conv 32 (realesr-animevideov3: 16). Tiny: num_feat 8, num_conv 4. The last conv
    is scaled down (gain 0.3) so the output stays near the upsampled input. in_ch 1 makes a grayscale model.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    widths = [(num_feat, in_ch)] + [(num_feat, num_feat)] * num_conv
    for i, (out_ch, inp) in enumerate(widths):
        state[f"body.{2 * i}.weight"], state[f"body.{2 * i}.bias"] = _sr_conv(generator, out_ch, inp)
        prelu = 0.25 + 0.05 * torch.randn(num_feat, generator=generator)  # nn.PReLU's init is 0.25
        state[f"body.{2 * i + 1}.weight"] = prelu.to(torch.bfloat16).float()
    last = 2 * len(widths)
    state[f"body.{last}.weight"], state[f"body.{last}.bias"] = _sr_conv(generator, in_ch * scale**2, num_feat, gain=0.3)
    return state


# ---------------------------------------------------------------- SkyReels-V4 AV DiT


def tiny_av_dit_state_dict(seed: int = 0, config: AVDiTConfig = AVDiTConfig.TINY) -> tuple[StateDict, dict]:
    """AV MMDiT weights (bf16-representable float32) and the config metadata. Returns (tensors, metadata).

    Gates are non-zero so the cross-modal attention matters.
    """
    gen = torch.Generator().manual_seed(seed)
    model = AVMMDiT(config)  # on CPU: tiny, and faster than a first meta-device build in a process
    tensors = {}
    for name, ref in sorted(model.state_dict().items()):
        noise = torch.randn(ref.shape, generator=gen)
        if name == "audio_latent_std":
            value = 0.5 + torch.rand(ref.shape, generator=gen)
        elif name.endswith(".gate") or name == "audio_latent_mean":
            value = 0.5 * noise
        elif name.endswith("modulation"):
            value = noise / config.dim**0.5
        elif ref.dim() >= 2:  # Linear / Conv weights
            value = noise / math.sqrt(ref[0].numel())
        elif name.endswith(".bias"):
            value = 0.02 * noise
        else:  # norm weights
            value = 1.0 + 0.1 * noise
        tensors[name] = value.to(torch.bfloat16).float()
    return tensors, config_metadata(config, CONFIG_METADATA_KEY)


def tiny_refiner_state_dict(seed: int = 6, config: AVDiTConfig = AVDiTConfig.TINY_REFINER) -> tuple[StateDict, dict]:
    """The tiny SkyReels-V4 refiner: a video-only AV DiT (`text_embedding`, `time_*`, `video.*`) whose config
    metadata sets `attention_window` (windowed attention). Returns (tensors, metadata)."""
    return tiny_av_dit_state_dict(seed, config)


# ---------------------------------------------------------------- text and image encoders


def _quantize_umt5_linears(state: StateDict) -> StateDict:
    out = {}
    for key, tensor in state.items():
        if re.search(r"\.(attn\.[qkvo]|ffn\.(gate\.0|fc1|fc2))\.weight$", key):
            out[key], out[key[: -len("weight")] + "scale_weight"] = quantize_weight(tensor, torch.float8_e4m3fn)
        else:
            out[key] = tensor
    out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


def tiny_umt5_state_dict(
    seed: int = 0,
    with_spiece: bytes | None = None,
    *,
    layout: str = "wan",
    scaled_fp8: bool = False,
    cfg: UMT5Config | None = None,
) -> StateDict:
    """Random umT5 weights (bf16-representable float32) in a released key layout.

    layout "wan": `models_t5_umt5-xxl-enc-bf16.pth` naming; "comfy": HF / ComfyUI naming (`shared.weight`,
    `encoder.block.{i}...`). `with_spiece` (sentencepiece model bytes, e.g. `make_tiny_spiece_model()`) is stored
    as the uint8 `spiece_model` tensor, as in ComfyUI's umt5 files. scaled_fp8: Linear weights as
    float8_e4m3fn plus `<layer>.scale_weight` and the `scaled_fp8` marker (ComfyUI's
    `umt5_xxl_fp8_e4m3fn_scaled.safetensors` format).
    """
    _check_layout(layout)
    cfg = cfg or UMT5Config.TINY
    gen = torch.Generator().manual_seed(seed)
    shapes = _meta_shapes(UMT5Encoder, cfg)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key == "norm.weight":
            state[key] = _bf16_randn(gen, shape, std=0.1, mean=1.0)
        elif "embedding" in key:
            state[key] = _bf16_randn(gen, shape, std=0.5 if "pos_" in key else 1.0)
        else:
            state[key] = _bf16_randn(gen, shape, std=shape[1] ** -0.5)
    if scaled_fp8:
        state = _quantize_umt5_linears(state)
    if layout == "comfy":
        state = RenameTable(HF_KEY_RENAMES).apply(state)
    if with_spiece is not None:
        state[SPIECE_KEY] = torch.frombuffer(bytearray(with_spiece), dtype=torch.uint8).clone()
    return state


def tiny_clip_vision_state_dict(
    seed: int = 0, layout: str = "wan", cfg: CLIPVisionConfig | None = None, out_dim: int = 16
) -> StateDict:
    """Random CLIP vision weights (bf16-representable float32) in a released key layout.

    layout "wan": `visual.*` keys as in Wan's .pth, plus the unused post_norm / head / textual / log_scale
    entries the real file has; "comfy": HF / ComfyUI clip_vision naming with post_layernorm and
    visual_projection. Both layouts hold the same numbers for the same seed.
    """
    _check_layout(layout)
    cfg = cfg or CLIPVisionConfig.TINY
    gen = torch.Generator().manual_seed(seed)
    shapes = _meta_shapes(CLIPVisionEncoder, cfg)
    shapes.update({"post_norm.weight": (cfg.dim,), "post_norm.bias": (cfg.dim,), "head": (cfg.dim, out_dim)})
    state = {}
    for key, shape in shapes.items():
        if "norm" in key:
            state[key] = _bf16_randn(gen, shape, 0.1, 1.0) if key.endswith("weight") else _bf16_randn(gen, shape, 0.05)
        elif key.endswith("bias"):
            state[key] = _bf16_randn(gen, shape, 0.05)
        elif key in ("cls_embedding", "pos_embedding"):
            state[key] = _bf16_randn(gen, shape, 0.5)
        else:
            fan_in = shape[0] if key == "head" else int(torch.tensor(shape[1:]).prod())
            state[key] = _bf16_randn(gen, shape, fan_in**-0.5)
    if layout == "wan":
        state = {f"visual.{k}": v for k, v in state.items()}
        state["log_scale"] = torch.tensor(2.6592)
        state["textual.head.0.weight"] = _bf16_randn(gen, (out_dim, 8), 0.1)
        return state
    return _clip_to_comfy(state)


def _clip_to_comfy(state: StateDict) -> StateDict:
    split = {}
    for key, value in state.items():
        match = re.match(r"^(transformer\.\d+\.attn\.)to_qkv\.(\w+)$", key)
        if match:
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                split[f"{match[1]}to_{name}.{match[2]}"] = part.contiguous()
        else:
            split[key] = value
    split["cls_embedding"] = split["cls_embedding"].reshape(-1)
    split["pos_embedding"] = split["pos_embedding"][0]
    split["head"] = split["head"].t().contiguous()
    return RenameTable(COMFY_KEY_RENAMES).apply(split)


# ---------------------------------------------------------------- wav2vec2 speech encoder (SkyReels-V3 A2V)


def tiny_wav2vec2_state_dict(seed: int = 0, cfg: Wav2Vec2Config | None = None, prefix: str = "") -> StateDict:
    """Random wav2vec2 weights (bf16-representable float32) in Hugging Face `Wav2Vec2Model` naming, as the
    released chinese-wav2vec2-base: the position conv as weight norm `weight_g` [1, 1, K] / `weight_v`, plus the
    unused `masked_spec_embed`. prefix "wav2vec2." gives the pre-training / CTC checkpoint layout."""
    cfg = cfg or Wav2Vec2Config.TINY
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in _meta_shapes(Wav2Vec2Encoder, cfg).items():
        if "norm" in key:
            state[key] = _bf16_randn(gen, shape, 0.1, 1.0) if key.endswith("weight") else _bf16_randn(gen, shape, 0.05)
        elif key.endswith("bias"):
            state[key] = _bf16_randn(gen, shape, 0.05)
        else:
            state[key] = _bf16_randn(gen, shape, math.prod(shape[1:]) ** -0.5)
    pos = "encoder.pos_conv_embed.conv."
    weight = state.pop(pos + "weight")
    state[pos + "weight_v"] = weight
    state[pos + "weight_g"] = _bf16_randn(gen, (1, 1, weight.shape[-1]), 0.1, 1.0)
    state["masked_spec_embed"] = _bf16_randn(gen, (cfg.hidden_size,), 0.5)
    return {prefix + k: v for k, v in state.items()}


def tiny_wav2vec2_config_json(cfg: Wav2Vec2Config | None = None) -> dict:
    """The config.json a Hugging Face wav2vec2 base folder carries (the keys our loader reads, and a few others)."""
    cfg = cfg or Wav2Vec2Config.TINY
    return {
        "architectures": ["Wav2Vec2Model"], "model_type": "wav2vec2", "conv_dim": list(cfg.conv_dim),
        "conv_kernel": list(cfg.conv_kernel), "conv_stride": list(cfg.conv_stride), "conv_bias": cfg.conv_bias,
        "feat_extract_norm": cfg.feat_extract_norm, "feat_extract_activation": "gelu", "hidden_act": "gelu",
        "do_stable_layer_norm": False, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "intermediate_size": cfg.intermediate_size,
        "num_conv_pos_embeddings": cfg.num_conv_pos_embeddings,
        "num_conv_pos_embedding_groups": cfg.num_conv_pos_embedding_groups, "layer_norm_eps": cfg.layer_norm_eps,
        "mask_time_prob": 0.05, "vocab_size": 32,
    }


def speech_sized_wav2vec2_config() -> Wav2Vec2Config:
    """wav2vec2 with the feature sizes the SkyReels-V3 A2V adapter takes (12 hidden states of width 768) and
    everything else tiny: the speech encoder the tiny A2V DiT runs with (28 M parameters, mostly attention)."""
    return Wav2Vec2Config(conv_dim=(16,) * 7, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                          intermediate_size=32, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def tiny_wav2vec2_files(seed: int = 0, cfg: Wav2Vec2Config | None = None) -> dict[str, bytes]:
    """A tiny Hugging Face-layout wav2vec2 folder, {file name: bytes}: config.json + model.safetensors
    (the tiny stand-in for models/audio_encoders/chinese-wav2vec2-base; cfg: e.g. speech_sized_wav2vec2_config)."""
    import json

    from safetensors.torch import save

    config = (json.dumps(tiny_wav2vec2_config_json(cfg), indent=2, sort_keys=True) + "\n").encode()
    return {"config.json": config, "model.safetensors": save(tiny_wav2vec2_state_dict(seed, cfg=cfg))}


# ---------------------------------------------------------------- RIFE (frame interpolation)


def tiny_rife_config(version: str = "4.26"):
    """A released RIFE layout (skyreels_core.models.rife.RIFE_PRESETS) with tiny widths: same keys, other shapes."""
    import dataclasses

    from skyreels_core.models.rife import RIFE_PRESETS

    preset = RIFE_PRESETS[version]
    widths = (16, 12, 8, 8, 8)[: len(preset.widths)]
    return dataclasses.replace(preset, encoder_width=8, widths=widths)


def tiny_rife_state_dict(version: str = "4.26", seed: int = 0, prefix: str = "") -> StateDict:
    """Random IFNet weights (bf16-representable float32) in the released key layout of `version` ("4.7", "4.17",
    "4.26", ...). prefix "module." gives Practical-RIFE's train_log/flownet.pkl layout.

    Scaled so the untrained net stays in a realistic range at 48x72 (flows of a few pixels, mask logits about
    +-1): conv weights N(0, 1/fan_in), ResConv gains beta 0.3 (+-0.05), the last (flow) layer x2."""
    from skyreels_core.models.rife import IFNet

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in _meta_shapes(IFNet, tiny_rife_config(version)).items():
        if key.endswith("beta"):
            state[key] = _bf16_randn(gen, shape, 0.05, 0.3)
        elif key.endswith("bias"):
            state[key] = _bf16_randn(gen, shape, 0.02)
        else:
            fan_in = shape[0] * shape[2] * shape[3] // 4 if "lastconv" in key or "cnn3" in key or key in (
                "encode.1.weight",) else math.prod(shape[1:])  # convT: in x k x k / stride^2
            std = fan_in ** -0.5 * (2.0 if "lastconv" in key else 1.0)
            state[key] = _bf16_randn(gen, shape, std)
    return {prefix + k: v for k, v in state.items()}
