"""Model adapters for the one sampling loop: each turns a network into `denoiser(x, sigma) -> velocity`.

An adapter owns what differs between models: the model's time input (from the float64 sigma), dtype casts
(inputs to the compute dtype, velocity back to float32), which calls a guidance object asks for, and the model's
call signature. The loop (sampling/loop.py) owns steps, solvers, x0 and callbacks.

CFG batching, decided once for every model: each guidance branch is its own forward pass, never a doubled
[cond; uncond] batch. A doubled batch doubles the activation memory of every block (the peak that decides whether a
14B model at 720p fits), the two prompts of SkyReels-V4 have different token counts (a batch would need padding and
masks), and the reference pipelines run the two passes separately too. On a GPU a video DiT is compute bound at
real sizes, so two passes cost the same time as one doubled pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import SkyReelsInputError
from ..sampling.guidance import CFG, AVGuidance
from ..sampling.schedules import NUM_TRAIN_TIMESTEPS

__all__ = ["AVDenoiser", "AVLayout", "WanDenoiser", "compute_dtype"]


def compute_dtype(model) -> torch.dtype:
    """The dtype a model computes in (`compute_dtype` of our DiTs; else its first parameter's dtype)."""
    dtype = getattr(model, "compute_dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    params = getattr(model, "parameters", None)
    return next(params()).dtype if params is not None else torch.float32


def _batched(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Time [] -> [B], [F] -> [B, F] on x's device."""
    t = t.to(x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t[None].expand(x.shape[0], -1)


class WanDenoiser:
    """A Wan2.1-family DiT (SkyReels-V2 T2V, I2V, DF) as a flow denoiser.

    model(x [B, C, F, h, w], t, context [B, L, D], **kwargs) -> v. The time input is the reference's
    t = int64(1000 sigma), truncated ([B], or [B, F] for per-frame sigmas). `model_kwargs` (I2V `y` / `clip_fea`,
    the DF `fps` index) go to every call, tensors cast to the model's device and compute dtype.
    """

    def __init__(self, model: Callable, positive: torch.Tensor, negative: torch.Tensor | None = None,
                 guidance: CFG | None = None, **model_kwargs):
        self.model, self.positive, self.negative = model, positive, negative
        self.guidance = guidance or CFG(1.0)
        self.model_kwargs = model_kwargs
        self.dtype = compute_dtype(model)
        self._cast_for: torch.device | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        t = self.time_input(x, sigma)
        names = self.guidance.branches(self.negative is not None)
        return self.guidance.combine({b: self.predict(x, t, b) for b in names})

    def time_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return _batched((sigma * NUM_TRAIN_TIMESTEPS).to(torch.int64), x)

    def model_input(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        return x

    def predict(self, x: torch.Tensor, t: torch.Tensor, branch: str, **extra) -> torch.Tensor:
        """The float32 velocity of one guidance branch: "cond" sees the positive prompt, every other the negative."""
        kwargs, texts = self._inputs(x.device)
        text = texts["cond"] if branch == "cond" else texts["uncond"]
        return self.model(self.model_input(x, branch).to(self.dtype), t, text, **kwargs, **extra).float()

    def _inputs(self, device: torch.device) -> tuple[dict, dict]:
        """Prompts and model kwargs on the model's device and dtype, cast once per run instead of at every call."""
        if self._cast_for != device:
            def cast(v):
                return v.to(device, self.dtype) if isinstance(v, torch.Tensor) else v

            self._kwargs = {k: cast(v) for k, v in self.model_kwargs.items()}
            self._texts = {"cond": cast(self.positive), "uncond": cast(self.negative)}
            self._cast_for = device
        return self._kwargs, self._texts


def _per_sample(shape: tuple[int, ...] | None) -> int:
    return 0 if shape is None else int(torch.Size(shape[1:]).numel())


def _cast(x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if x is None else x.to(dtype)


@dataclass(frozen=True)
class AVLayout:
    """How a video latent [B, 16, F, h, w], an audio latent [B, 40, T] (either may be absent) and the base model's
    hi-res keyframe latents [B, 16, K, H, W] (optional) share one flat sampling tensor [B, N] = [video | audio |
    keyframes]: the solvers are elementwise, so stepping them as one tensor is exact."""

    video_shape: tuple[int, ...] | None
    audio_shape: tuple[int, ...] | None
    keyframe_shape: tuple[int, ...] | None = None

    def _sizes(self) -> tuple[int, int]:
        return _per_sample(self.video_shape), _per_sample(self.audio_shape)

    def pack(self, video: torch.Tensor | None, audio: torch.Tensor | None,
             keyframes: torch.Tensor | None = None) -> torch.Tensor:
        parts = [p.flatten(1) for p in (video, audio, keyframes) if p is not None]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def unpack(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        nv, na = self._sizes()
        video = None if self.video_shape is None else x[:, :nv].view(x.shape[0], *self.video_shape[1:])
        audio = None if self.audio_shape is None else x[:, nv:nv + na].view(x.shape[0], *self.audio_shape[1:])
        return video, audio

    def unpack_keyframes(self, x: torch.Tensor) -> torch.Tensor | None:
        """The keyframe part [B, 16, K, H, W] of a packed tensor (None without keyframes)."""
        if self.keyframe_shape is None:
            return None
        start = sum(self._sizes())
        return x[:, start:start + _per_sample(self.keyframe_shape)].view(x.shape[0], *self.keyframe_shape[1:])


class AVDenoiser:
    """The SkyReels-V4 dual-stream DiT as a flow denoiser on the packed (video, audio) tensor of `AVLayout`.

    Time input: t = 1000 sigma as float32 for both towers (one shared t per sample, SkyReels-V4 eq. 6). The video
    tower sees [noisy latent | condition latent | mask] on channels, with the condition positions (mask 1) reset
    to the condition latent before every call, so kept frames are always shown clean. Branches: "cond", "uncond"
    (negative prompt), "nocross" (no audio<->video cross-attention), as `AVGuidance` asks.

    Keyframes (base model with hi-res keyframes, `layout.keyframe_shape` set): `keyframe_condition` is their
    (latent [B, 16, K, H, W], mask [B, 1, K, H, W]) pair, kept the same way, and `keyframe_index` their low-res
    latent frames. Their velocity is guided with the video's scale (it is video).
    """

    def __init__(self, model, layout: AVLayout, positive, negative, guidance: AVGuidance, *, fps: float,
                 condition: tuple[torch.Tensor, torch.Tensor] | None, video_refs=None, audio_refs=None,
                 keyframe_condition: tuple[torch.Tensor, torch.Tensor] | None = None,
                 keyframe_index: tuple[int, ...] = ()):
        self.model, self.layout, self.guidance = model, layout, guidance
        self.contexts = {"cond": positive, "uncond": negative, "nocross": positive}
        self.fps, self.condition = fps, condition
        self.video_refs, self.audio_refs = video_refs, audio_refs
        self.keyframe_condition, self.keyframe_index = keyframe_condition, tuple(keyframe_index)
        self.dtype = compute_dtype(model)

    def keep(self, video: torch.Tensor) -> torch.Tensor:
        """Reset the condition positions (mask = 1) to the condition latent."""
        return _keep(video, self.condition)

    def keep_keyframes(self, keyframes: torch.Tensor) -> torch.Tensor:
        """Reset the keyframes' condition positions (mask = 1) to their condition latent."""
        return _keep(keyframes, self.keyframe_condition)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        video, audio = self.layout.unpack(x)
        keyframes = self.layout.unpack_keyframes(x)
        t = torch.full((x.shape[0],), float(sigma.float()) * NUM_TRAIN_TIMESTEPS, device=x.device,
                       dtype=torch.float32)
        if video is not None:
            video = _with_condition(video, self.condition)
        if keyframes is not None:
            keyframes = _with_condition(keyframes, self.keyframe_condition)
        names = self.guidance.branches(self.contexts["uncond"] is not None)
        preds = {b: self._forward(video, audio, t, self.contexts[b], b != "nocross", keyframes) for b in names}
        v_video, v_audio = self.guidance.combine(preds)
        v_keyframes = None
        if keyframes is not None:  # guided as one video tensor [B, N_video + N_keyframes], split back here
            v_video, v_keyframes = self._split_video(v_video)
        _check_outputs((v_video, v_audio), self.layout)
        return self.layout.pack(v_video, v_audio, v_keyframes)

    def _forward(self, video, audio, t, context, cross_modal: bool, keyframes=None):
        from ..models.av_mmdit import AudioStream, VideoStream

        dtype = self.dtype
        video_in = None if video is None else VideoStream(
            x=_cast(video, dtype), refs=_cast(self.video_refs, dtype), keyframes=_cast(keyframes, dtype),
            keyframe_index=self.keyframe_index if keyframes is not None else ())
        audio_in = None if audio is None else AudioStream(x=_cast(audio, dtype), refs=_cast(self.audio_refs, dtype))
        ctx = context.to(t.device, self.dtype)
        if ctx.shape[0] != t.shape[0]:
            ctx = ctx.expand(t.shape[0], -1, -1)
        v, a, *k = self.model(video_in, audio_in, t, ctx, fps=self.fps, cross_modal=cross_modal)
        v, a = (None if v is None else v.float()), (None if a is None else a.float())
        if keyframes is not None:
            v = torch.cat([v.flatten(1), k[0].float().flatten(1)], dim=1)
        return v, a

    def _split_video(self, joined: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        video_size = _per_sample(self.layout.video_shape)
        batch = joined.shape[0]
        return (joined[:, :video_size].reshape(batch, *self.layout.video_shape[1:]),
                joined[:, video_size:].reshape(batch, *self.layout.keyframe_shape[1:]))


def _keep(x: torch.Tensor, condition: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    latent, mask = condition
    return torch.where(mask > 0.5, latent, x)


def _with_condition(x: torch.Tensor, condition: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """[noisy (kept positions reset) | condition latent | mask] on channels: the video tower's 33-channel input."""
    latent, mask = condition
    return torch.cat([_keep(x, condition), latent, mask], dim=1)


def _check_outputs(velocities, layout: AVLayout) -> None:
    for name, v, shape in zip(("video", "audio"), velocities, (layout.video_shape, layout.audio_shape), strict=True):
        if shape is not None and (v is None or tuple(v.shape[1:]) != tuple(shape[1:])):
            found = None if v is None else tuple(v.shape)
            raise SkyReelsInputError(
                f"The model returned {name} velocity {found} for a {name} latent {tuple(shape)}; an audio-only or "
                f"video-only checkpoint cannot generate {name}: ask only for what the model type generates."
            )
