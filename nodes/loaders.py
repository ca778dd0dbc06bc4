"""Loader nodes: read model files from ComfyUI's standard folders and hand them to model management.

Each loader reads the file on the CPU (offload device), wraps the network in a ModelPatcher and returns a
typed payload; the heavy move to the GPU happens in the node that uses the model. The skyreels_core
loaders are imported inside `execute`, so a missing optional dependency only disables that loader.
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from . import comfy_bridge as bridge
from .types import SkyReelsCLIPVision, SkyReelsModel, SkyReelsTextEncoder, SkyReelsVAE

log = logging.getLogger("SkyReels")

# weight_dtype choice -> (compute/storage dtype, or None = ComfyUI's choice for the device; fp8 block weights)
WEIGHT_DTYPES = {
    "default": (None, None),
    "bf16": (torch.bfloat16, None),
    "fp16": (torch.float16, None),
    "fp32": (torch.float32, None),
    "fp8_e4m3fn": (None, "fp8_e4m3fn"),
}
ATTENTION_CHOICES = ["auto", "sdpa", "flash_attn"]
TOKENIZER_AUTO = "auto"


def _folder_tip(folder: str) -> str:
    return f"Files in ComfyUI/models/{folder} (and extra_model_paths.yaml)."


def resolve_attention(choice: str) -> str:
    """The attention backend to use; flash_attn falls back to sdpa (with a log line) when it cannot run."""
    from ..skyreels_core.nn.attention import available_backends, flash_attn_status

    bridge.check_choice("attention", choice, ATTENTION_CHOICES)
    if choice == "flash_attn" and choice not in available_backends():
        log.warning("SkyReels: attention 'flash_attn' requested but %s; using sdpa.", flash_attn_status())
        return "sdpa"
    return choice


def dit_dtypes(weight_dtype: str, device: torch.device) -> tuple[torch.dtype, str | None]:
    """(dtype of the weights and compute, fp8 storage option or None = as stored) for the DiT on `device`.

    default: bf16 where the device supports it (fp16, else float32 on CPU); fp8 files stay fp8."""
    dtype, fp8 = WEIGHT_DTYPES[bridge.check_choice("weight_dtype", weight_dtype, list(WEIGHT_DTYPES))]
    return dtype or bridge.compute_dtype(device), fp8


class SkyReelsModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsModelLoader",
            display_name="SkyReels Model Loader",
            category="SkyReels/loaders",
            description="Loads a SkyReels-V2 (Wan2.1-architecture) diffusion transformer: official SkyReels/Wan "
            "releases (single or sharded safetensors, diffusers naming) and ComfyUI repackaged files "
            "(model.diffusion_model. prefix, fp8). T2V or I2V is detected from the weights.",
            inputs=[
                io.Combo.Input("model_name", options=bridge.list_models("diffusion_models"),
                               tooltip="The DiT file. " + _folder_tip("diffusion_models")),
                io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPES), default="default",
                               tooltip="Storage dtype of the weights. default: bf16 on GPUs that support it (fp16, "
                               "else fp32), and fp8 files stay fp8. fp8_e4m3fn halves memory and computes in "
                               "bf16/fp16."),
                io.Combo.Input("attention", options=ATTENTION_CHOICES, default="auto",
                               tooltip="Attention kernel. auto uses flash-attn when importable on CUDA, else "
                               "PyTorch SDPA; flash_attn falls back to sdpa with a log line if missing."),
            ],
            outputs=[SkyReelsModel.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str, attention: str) -> io.NodeOutput:
        from ..skyreels_core.models.wan_dit_loader import load_dit

        load_device, _ = bridge.devices("dit")
        dtype, storage = dit_dtypes(weight_dtype, load_device)
        path = bridge.model_path("diffusion_models", model_name)
        module = load_dit(path, dtype=dtype, device="cpu", attn_backend=resolve_attention(attention),
                          weight_dtype=storage)
        return io.NodeOutput(bridge.manage(module, "dit", model_name))


class SkyReelsVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsVAELoader",
            display_name="SkyReels VAE Loader",
            category="SkyReels/loaders",
            description="Loads the Wan2.1 video VAE (16 latent channels, 4x time / 8x space) used by SkyReels-V2: "
            "Wan2.1_VAE.pth or the ComfyUI wan_2.1_vae.safetensors.",
            inputs=[
                io.Combo.Input("vae_name", options=bridge.list_models("vae"),
                               tooltip="The video VAE file. " + _folder_tip("vae")),
            ],
            outputs=[SkyReelsVAE.Output(display_name="vae")],
        )

    @classmethod
    def execute(cls, vae_name: str) -> io.NodeOutput:
        from ..skyreels_core.models.video_vae import load_video_vae

        load_device, _ = bridge.devices("vae")
        vae = load_video_vae(bridge.model_path("vae", vae_name, "vae_name"), dtype=bridge.vae_dtype(load_device), device="cpu")
        return io.NodeOutput(bridge.manage(vae, "vae", vae_name))


class SkyReelsTextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsTextEncoderLoader",
            display_name="SkyReels Text Encoder Loader (umT5)",
            category="SkyReels/loaders",
            description="Loads the umT5-XXL text encoder (Wan models_t5_umt5-xxl-enc-bf16.pth, or the ComfyUI "
            "umt5_xxl_*.safetensors) and its SentencePiece tokenizer.",
            inputs=[
                io.Combo.Input("text_encoder_name", options=bridge.list_models("text_encoders"),
                               tooltip="The umT5 encoder file. " + _folder_tip("text_encoders")),
                io.Combo.Input("tokenizer", options=[TOKENIZER_AUTO] + bridge.list_tokenizer_dirs(),
                               default=TOKENIZER_AUTO,
                               tooltip="auto: the tokenizer found next to the encoder file (or the one the "
                               "encoder loader knows). Or a folder under models/text_encoders holding a "
                               "umT5 tokenizer (spiece.model / tokenizer.json)."),
            ],
            outputs=[SkyReelsTextEncoder.Output(display_name="text_encoder")],
        )

    @classmethod
    def execute(cls, text_encoder_name: str, tokenizer: str) -> io.NodeOutput:
        from ..skyreels_core.encoders.umt5 import load_text_encoder

        load_device, _ = bridge.devices("text_encoder")
        path = bridge.model_path("text_encoders", text_encoder_name, "text_encoder_name")
        bridge.check_choice("tokenizer", tokenizer, [TOKENIZER_AUTO] + bridge.list_tokenizer_dirs())
        tok = None if tokenizer == TOKENIZER_AUTO else bridge.tokenizer_path(tokenizer)
        encoder = load_text_encoder(path, tokenizer_path=tok,
                                    dtype=bridge.compute_dtype(load_device), device="cpu")
        return io.NodeOutput(bridge.manage(bridge.module_of(encoder), "text_encoder", text_encoder_name, encoder))


class SkyReelsCLIPVisionLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SkyReelsCLIPVisionLoader",
            display_name="SkyReels CLIP Vision Loader",
            category="SkyReels/loaders",
            description="Loads the open-clip XLM-RoBERTa ViT-H/14 image encoder that SkyReels-V2 I2V models use "
            "(models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth or clip_vision_h.safetensors).",
            inputs=[
                io.Combo.Input("clip_name", options=bridge.list_models("clip_vision"),
                               tooltip="The CLIP vision file. " + _folder_tip("clip_vision")),
            ],
            outputs=[SkyReelsCLIPVision.Output(display_name="clip_vision")],
        )

    @classmethod
    def execute(cls, clip_name: str) -> io.NodeOutput:
        from ..skyreels_core.encoders.clip_vision import load_clip_vision

        load_device, _ = bridge.devices("clip_vision")
        encoder = load_clip_vision(bridge.model_path("clip_vision", clip_name, "clip_name"),
                                   dtype=bridge.compute_dtype(load_device), device="cpu")
        return io.NodeOutput(bridge.manage(encoder, "clip_vision", clip_name))
