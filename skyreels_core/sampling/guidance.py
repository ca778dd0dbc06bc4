"""Guidance as small objects, and the one place where flow velocity becomes x0.

A guidance object names the model calls ("branches") a denoiser must run for one step and combines their
velocities: `CFG` (one prompt pair), `AVGuidance` (SkyReels-V4 per-modality CFG + sync guidance). A new scheme
(e.g. SkyReels-V3's separate text and image guidance) is another small class with new branch names.
"""

from __future__ import annotations

import torch

__all__ = ["AVGuidance", "CFG", "DualCFG", "TextAudioCFG", "cfg_combine", "expand_sigma", "to_denoised"]


def expand_sigma(sigma, x: torch.Tensor):
    """Broadcast sigma against x [B, C, F, ...]: float / 0-d as is, [B] -> [B, 1, 1, ...], [B, F] -> [B, 1, F, 1, ...];
    a sigma with x's number of dims is taken as already broadcastable."""
    if not isinstance(sigma, torch.Tensor) or sigma.ndim == 0:
        return sigma
    sigma = sigma.to(device=x.device, dtype=x.dtype)
    if sigma.ndim == x.ndim:
        return sigma
    if sigma.ndim == 1:
        return sigma.view(-1, *([1] * (x.ndim - 1)))
    if sigma.ndim == 2:
        return sigma.view(sigma.shape[0], 1, sigma.shape[1], *([1] * (x.ndim - 3)))
    raise ValueError(f"sigma must be a scalar, [B] or [B, F]; got shape {tuple(sigma.shape)}")


def to_denoised(x: torch.Tensor, v: torch.Tensor, sigma) -> torch.Tensor:
    """Flow matching: x0 = x - sigma * v (ComfyUI `CONST.calculate_denoised`)."""
    return x - expand_sigma(sigma, x) * v


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): uncond + scale * (cond - uncond)."""
    return uncond + scale * (cond - uncond)


class CFG:
    """Classifier-free guidance (Ho & Salimans 2022): v = v_u + scale (v_c - v_u).

    Branches are named model calls that a denoiser runs: "cond" (positive prompt) and "uncond" (negative prompt).
    With scale 1, or no negative prompt, only "cond" runs (half the model calls) and is returned exactly.
    """

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def branches(self, has_negative: bool) -> tuple[str, ...]:
        return ("cond", "uncond") if has_negative and self.scale != 1.0 else ("cond",)

    def combine(self, preds: dict[str, torch.Tensor]) -> torch.Tensor:
        if "uncond" not in preds:
            return preds["cond"]
        return cfg_combine(preds["cond"], preds["uncond"], self.scale)


class DualCFG:
    """Separate text and image guidance (SkyReels-V3 reference-to-video; InstructPix2Pix-style nesting):

        v = v(-txt, -img) + image_scale (v(-txt, +img) - v(-txt, -img)) + text_scale (v(+txt, +img) - v(-txt, +img))

    Branches: "cond" (prompt, references), "uncond_text" (negative prompt, references), "uncond" (negative
    prompt, no references: the denoiser shows all-zero reference latents). As the reference, the two extra
    calls run only when text_scale > 1 (image_scale alone never triggers them); otherwise "cond" is returned.
    """

    def __init__(self, text_scale: float = 1.0, image_scale: float = 1.0):
        self.text_scale, self.image_scale = float(text_scale), float(image_scale)

    def branches(self, has_negative: bool) -> tuple[str, ...]:
        return ("cond", "uncond_text", "uncond") if has_negative and self.text_scale > 1.0 else ("cond",)

    def combine(self, preds: dict[str, torch.Tensor]) -> torch.Tensor:
        if "uncond" not in preds:
            return preds["cond"]
        uncond, uncond_text = preds["uncond"], preds["uncond_text"]
        return uncond + self.image_scale * (uncond_text - uncond) + self.text_scale * (preds["cond"] - uncond_text)


class TextAudioCFG:
    """Separate text and speech guidance (SkyReels-V3 talking avatar, MultiTalk style):

        v = v(-txt, -aud) + text_scale (v(+txt, +aud) - v(-txt, +aud)) + audio_scale (v(-txt, +aud) - v(-txt, -aud))

    with one scale at 1 reducing to plain CFG on the other. Branches: "cond" (prompt, speech), "uncond_text"
    (negative prompt, speech), "uncond_audio" (prompt, no speech), "uncond" (negative prompt, no speech); "no
    speech" is all-zero speech features. A branch runs only when its scale is not 1 (text also needs a negative
    prompt), so the shipped 1.0 / 1.0 is one call per step. (The reference gates on scale > 1, so it ignores a
    scale below 1; here any scale other than 1 is applied.)
    """

    def __init__(self, text_scale: float = 1.0, audio_scale: float = 1.0):
        self.text_scale, self.audio_scale = float(text_scale), float(audio_scale)

    def branches(self, has_negative: bool) -> tuple[str, ...]:
        text, audio = has_negative and self.text_scale != 1.0, self.audio_scale != 1.0
        if text and audio:
            return ("cond", "uncond_text", "uncond")
        if text:
            return ("cond", "uncond_text")
        return ("cond", "uncond_audio") if audio else ("cond",)

    def combine(self, preds: dict[str, torch.Tensor]) -> torch.Tensor:
        cond = preds["cond"]
        if "uncond" in preds:
            uncond, uncond_text = preds["uncond"], preds["uncond_text"]
            return uncond + self.text_scale * (cond - uncond_text) + self.audio_scale * (uncond_text - uncond)
        if "uncond_text" in preds:
            return cfg_combine(cond, preds["uncond_text"], self.text_scale)
        if "uncond_audio" in preds:
            return cfg_combine(cond, preds["uncond_audio"], self.audio_scale)
        return cond


class AVGuidance:
    """Per-modality CFG plus audio-video sync guidance (SkyReels-V4; LTX-2 / Ovi style), on (video, audio) pairs.

    v_m = v_u + cfg_m (v_c - v_u) + (sync_scale - 1) (v_c - v_c_nocross), where "nocross" is the conditional call
    with the audio<->video cross-attention switched off. "uncond" runs only when a cfg != 1 and a negative prompt
    exists; "nocross" only when sync_scale != 1, so sync_scale 1 is exactly plain per-modality CFG, and a modality
    with cfg 1 takes v_c exactly. A modality the model does not generate is None throughout.
    """

    def __init__(self, video_cfg: float, audio_cfg: float, sync_scale: float = 1.0):
        self.video_cfg, self.audio_cfg, self.sync_scale = float(video_cfg), float(audio_cfg), float(sync_scale)

    def branches(self, has_negative: bool) -> tuple[str, ...]:
        names = ("cond",)
        if has_negative and (self.video_cfg != 1.0 or self.audio_cfg != 1.0):
            names += ("uncond",)
        return names + (("nocross",) if self.sync_scale != 1.0 else ())

    def combine(self, preds: dict[str, tuple]) -> tuple:
        cond = preds["cond"]
        uncond = preds.get("uncond", (None, None))
        out = [_cfg_or_cond(c, u, s) for c, u, s in zip(cond, uncond, (self.video_cfg, self.audio_cfg), strict=True)]
        if "nocross" in preds:
            out = [_add_sync(v, c, n, self.sync_scale) for v, c, n in zip(out, cond, preds["nocross"], strict=True)]
        return tuple(out)


def _cfg_or_cond(cond, uncond, scale: float):
    if cond is None or uncond is None or scale == 1.0:
        return cond
    return cfg_combine(cond, uncond, scale)


def _add_sync(v, cond, nocross, sync_scale: float):
    if v is None or nocross is None:
        return v
    return v + (sync_scale - 1.0) * (cond - nocross)
