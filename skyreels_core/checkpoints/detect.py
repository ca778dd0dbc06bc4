"""What kind of model a file holds, from its characteristic keys.

Every loader calls `detect_kind` first, so picking the wrong file in a loader node fails with a message
that says what the file is and where to load it instead (`wrong_kind_message`).

The rules are data (`KIND_RULES`): a kind matches when, for one of its alternatives, every regex matches
at least one key (after removing wrapper prefixes such as ComfyUI's `model.diffusion_model.`). Rules are
tried in order; the first match wins, so the more specific kinds come first.

Key patterns, by release:
- Wan/SkyReels DiT: original `head.modulation`, `blocks.N.self_attn.q.weight`; diffusers
  `condition_embedder.time_embedder.linear_1.*`, `blocks.N.attn1.to_q.*` (SkyReels-V3 R2V ships this).
- Wan2.1 VAE: `Wan2.1_VAE.pth` and ComfyUI `wan_2.1_vae.safetensors` share `encoder.conv1`,
  `decoder.middle.0.residual.0.gamma`, `conv1`/`conv2`; diffusers `AutoencoderKLWan` has `quant_conv`,
  `decoder.mid_block.resnets.0.norm1.gamma`.
- umT5: Wan `models_t5_umt5-xxl-enc-bf16.pth` (`token_embedding.weight`, `blocks.N.attn.q.weight`);
  HF / ComfyUI `umt5_xxl_*.safetensors` (`shared.weight`, `encoder.block.N.layer.0.SelfAttention.q.weight`).
- CLIP vision: Wan open-clip `.pth` (`visual.patch_embedding.weight`, `visual.transformer.N.attn.to_qkv`,
  `log_scale`, `textual.*`); open_clip (`visual.transformer.resblocks.N`); HF / ComfyUI `clip_vision_h`
  (`vision_model.embeddings.patch_embedding.weight`).
- MMAudio VAE: `encoder.conv_in.weight` with `encoder.learnable_gain` / `data_mean`.
- BigVGAN vocoder: `conv_pre`, `ups.N`, `resblocks.N`, `conv_post`.
- wav2vec2 (HF): `feature_extractor.conv_layers.0.conv.weight`, `encoder.layers.N.attention.k_proj.weight`.
- SkyReels-V4 AV DiT (our documented layout): a video DiT plus an audio stream (`audio_blocks.N.*`,
  `audio_patch_embedding.*`, or per-block `audio_self_attn`). Checked before `wan_dit`. Our model's layout
  (skyreels_core.models.av_mmdit): `video.blocks.N.*` / `audio.blocks.N.*` + `time_projection.*`, `av_cross.N.*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KINDS",
    "KIND_DESCRIPTIONS",
    "KIND_RULES",
    "WRAPPER_PREFIXES",
    "KindDescription",
    "check_kind",
    "detect_kind",
    "describe_kind",
    "strip_wrapper_prefixes",
    "wrong_kind_message",
]

# Wrapper prefixes that full checkpoints and training frameworks put in front of a model's own keys.
WRAPPER_PREFIXES = (
    "model.diffusion_model.",
    "diffusion_model.",
    "model.model.",
    "model.",
    "first_stage_model.",
    "vae.",
    "module.",
    "generator.",
    "wav2vec2.",
    "text_encoders.umt5xxl.transformer.",
)


@dataclass(frozen=True)
class KindDescription:
    """How to name a kind to a user, and which loader takes it."""

    name: str
    loader: str


# `loader` names the node exactly as ComfyUI shows it (display_name), and the input where it matters.
KIND_DESCRIPTIONS: dict[str, KindDescription] = {
    "wan_dit": KindDescription("video diffusion model (SkyReels/Wan2.1 DiT)", "SkyReels Model Loader"),
    "av_dit": KindDescription("audio-video diffusion model (SkyReels-V4 AV DiT)", "SkyReels V4 Model Loader"),
    "wan_vae": KindDescription("video VAE (Wan2.1 VAE)", "SkyReels VAE Loader"),
    "umt5": KindDescription("text encoder (umT5-XXL)", "SkyReels Text Encoder Loader (umT5)"),
    "clip_vision": KindDescription("image encoder (CLIP vision ViT-H/14)", "SkyReels CLIP Vision Loader"),
    "mmaudio_vae": KindDescription("audio VAE (MMAudio 44.1 kHz VAE)", "SkyReels V4 Audio Codec Loader (as vae_name)"),
    "bigvgan": KindDescription("audio vocoder (BigVGAN-v2)", "SkyReels V4 Audio Codec Loader (as vocoder_name)"),
    "wav2vec2": KindDescription("speech encoder (wav2vec2)",
                                "SkyReels V3 Audio Encoder Loader (models/audio_encoders; the talking avatar)"),
    "unknown": KindDescription("model this pack does not recognise", "a loader of the pack it belongs to"),
}

KINDS = tuple(KIND_DESCRIPTIONS)

_N = r"\d+"
# kind -> alternatives; an alternative matches when each of its regexes matches some key.
KIND_RULES: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("av_dit", (
        (r"^audio_blocks\.\d+\.", r"^blocks\.\d+\."),
        (r"^audio_patch_embedding\.",),
        (rf"^blocks\.{_N}\.audio_self_attn\.",),
        # skyreels_core.models.av_mmdit layout: `video.blocks.N.*`, `audio.blocks.N.*`, `av_cross.N.*`
        (rf"^(video|audio)\.blocks\.{_N}\.self_attn\.q\.weight$", r"^time_projection\."),
        (rf"^av_cross\.{_N}\.(v2a|a2v)\.",),
    )),
    ("wan_dit", (
        (r"^head\.modulation$",),
        (rf"^blocks\.{_N}\.self_attn\.q\.weight$", rf"^blocks\.{_N}\.cross_attn\.q\.weight$"),
        (r"^condition_embedder\.time_embedder\.linear_1\.weight$",),
        (rf"^blocks\.{_N}\.attn1\.to_q\.weight$", rf"^blocks\.{_N}\.attn2\.to_q\.weight$"),
    )),
    ("mmaudio_vae", (
        (r"^encoder\.conv_in\.weight$", r"^(encoder|decoder)\.learnable_gain$"),
        (r"^encoder\.conv_in\.weight$", r"^data_mean$"),
    )),
    ("wan_vae", (
        (r"^encoder\.conv1\.weight$", rf"^decoder\.middle\.{_N}\.residual\.0\.gamma$"),
        (r"^quant_conv\.weight$", rf"^decoder\.mid_block\.resnets\.{_N}\.norm1\.gamma$"),
    )),
    ("umt5", (
        (r"^token_embedding\.weight$", rf"^blocks\.{_N}\.attn\.q\.weight$"),
        (rf"^(encoder\.)?block\.{_N}\.layer\.0\.SelfAttention\.q\.weight$",),
    )),
    ("clip_vision", (
        (r"^visual\.(patch_embedding|conv1)\.weight$",),
        (rf"^visual\.transformer\.(resblocks\.)?{_N}\.",),
        (r"^vision_model\.embeddings\.patch_embedding\.weight$",),
    )),
    ("bigvgan", (
        (r"^conv_pre\.(weight|weight_v|parametrizations\.weight\.original1)$", rf"^ups\.{_N}\.",
         rf"^resblocks\.{_N}\.", r"^conv_post\."),
    )),
    ("wav2vec2", (
        (rf"^feature_extractor\.conv_layers\.{_N}\.conv\.weight$", rf"^encoder\.layers\.{_N}\.attention\.k_proj\."),
    )),
)

_COMPILED = tuple(
    (kind, tuple(tuple(re.compile(p) for p in alternative) for alternative in alternatives))
    for kind, alternatives in KIND_RULES
)


def strip_wrapper_prefixes(keys: Iterable[str]) -> list[str]:
    """Keys with the first wrapper prefix that most keys carry removed (repeated while one applies)."""
    keys = list(keys)
    for _ in range(3):
        for prefix in WRAPPER_PREFIXES:
            carrying = sum(k.startswith(prefix) for k in keys)
            if carrying and carrying * 2 >= len(keys):
                keys = [k[len(prefix):] if k.startswith(prefix) else k for k in keys]
                break
        else:
            return keys
    return keys


def _matches(patterns: tuple[re.Pattern, ...], keys: list[str]) -> bool:
    return all(any(p.search(k) for k in keys) for p in patterns)


def detect_kind(keys: Iterable[str]) -> str:
    """One of `KINDS` for a state dict's keys (a dict works too). "unknown" when no rule matches."""
    keys = strip_wrapper_prefixes(keys)
    for kind, alternatives in _COMPILED:
        if any(_matches(alternative, keys) for alternative in alternatives):
            return kind
    return "unknown"


def describe_kind(kind: str) -> str:
    return KIND_DESCRIPTIONS.get(kind, KIND_DESCRIPTIONS["unknown"]).name


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def wrong_kind_message(file: str | Path, found: str, expected: str) -> str:
    """E.g. "x.safetensors: this file looks like a video VAE (Wan2.1 VAE), not a video diffusion model
    (SkyReels/Wan2.1 DiT); pick it in the SkyReels VAE loader."."""
    found_desc = KIND_DESCRIPTIONS.get(found, KIND_DESCRIPTIONS["unknown"])
    expected_desc = describe_kind(expected)
    message = f"{Path(file).name}: this file looks like {_article(found_desc.name)} {found_desc.name}, "
    message += f"not {_article(expected_desc)} {expected_desc}"
    if found == "unknown":
        return message + ". Check that you picked the right file and that the download is complete."
    return message + f"; load it with {found_desc.loader}."


def check_kind(keys: Iterable[str], file: str | Path, expected: str) -> None:
    """CheckpointError (`wrong_kind_message`) when the keys are clearly another kind the pack knows.

    An unrecognised layout passes: the loader's own checks then say what is missing.
    """
    from ..errors import CheckpointError

    found = detect_kind(keys)
    if found not in (expected, "unknown"):
        raise CheckpointError(wrong_kind_message(file, found, expected))
