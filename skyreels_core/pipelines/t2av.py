"""SkyReels-V4 joint video + audio sampling (text/image/video -> video with synchronised audio).

One loop for both modalities (the paper trains with one shared t per sample, SkyReels-V4 eq. 6): every step runs
the dual-stream AV DiT once per guidance branch at the SAME timestep for video and audio, and one scheduler per
modality (same schedule) steps each latent. Undisclosed choices, made here and documented:

- Guidance (paper: not disclosed; per-modality CFG as in LTX-2 / Ovi): with v_c the conditional and v_u the
  negative-prompt velocity, each modality m gets v_m = v_u + cfg_m (v_c - v_u); the unconditional pass is skipped
  when both cfg are 1 (or there is no negative context), and a modality with cfg 1 takes v_c exactly.
  Sync guidance (LTX-2's "modality guidance"): an extra pass with the audio<->video cross-attention switched off,
  v_m += (sync_scale - 1) (v_c - v_c_nocross); sync_scale 1 skips that pass, so it equals plain CFG exactly.
- Conditions (mask = 1 in `VideoCondition`) are clean: before every model call and after the last step the noisy
  video latent is reset to the condition latent there, so kept positions come back bit-identical.
- Audio: the DiT works on (z - audio_latent_mean) / audio_latent_std (the AV checkpoint's buffers,
  `AVMMDiT.normalize_audio`); `sample_av` returns raw codec latents (`denormalize_audio`). Audio references are passed already normalised (`encode_audio_reference`).
- Noise: `seeded_noise` (CPU generator) for video with `seed`, for audio with `audio_seed(seed)`, so the video
  noise for a seed is the same as the V2 pipeline's and does not depend on the audio length.
- Duration: the audio covers exactly frames / fps seconds: ceil(round(seconds * 44100) / 1024) latents, decoded
  and trimmed to round(seconds * 44100) samples (audio_codec.num_samples_for / latent_frames_for).
- Editing (a video + mask): the audio is generated fresh (the paper does not inpaint audio); no source audio is
  an input here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..conditioning.v4 import VideoCondition, build_condition, encode_audio_reference, encode_references
from ..errors import SkyReelsInputError
from ..models.audio_codec import LATENT_CHANNELS, latent_frames_for, num_samples_for
from ..sampling.guidance import TIMESTEP_SCALE, cfg_combine, to_denoised
from ..shapes import VideoLatentShape
from .video import SAMPLERS, seeded_noise

__all__ = ["av_latent_shape", "audio_seed", "guided_av_velocity", "sample_av", "generate_av", "AVVelocity"]

StepCallback = Callable[[int, int, torch.Tensor], None]
_AUDIO_SEED_SALT = 0x5EED_A0D1_0000_0000


def av_latent_shape(frames: int, fps: float, height: int, width: int, batch: int = 1):
    """(VideoLatentShape, num_audio_latents) for `frames` pixel frames at `fps`: audio spans frames / fps seconds."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise SkyReelsInputError(f"fps must be a positive number; got {fps}.")
    shape = VideoLatentShape.from_pixels(frames, height, width, batch=batch)
    return shape, latent_frames_for(frames / fps)


def audio_seed(seed: int) -> int:
    """The seed of the audio noise: `seed` xor a fixed salt (independent of the video noise for small seeds)."""
    return (int(seed) ^ _AUDIO_SEED_SALT) & 0xFFFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class AVVelocity:
    """Velocities of one step: video [B, 16, F, h, w] | None, audio [B, 40, T_a] | None (float32)."""

    video: torch.Tensor | None
    audio: torch.Tensor | None


def _combine(cond, uncond, scale: float):
    """CFG for one modality; exactly `cond` when scale is 1 or there is no uncond pass."""
    if cond is None or uncond is None or scale == 1.0:
        return cond
    return cfg_combine(cond, uncond, scale)


def _add_sync(v, cond, nocross, sync_scale: float):
    if v is None or nocross is None:
        return v
    return v + (sync_scale - 1.0) * (cond - nocross)


def guided_av_velocity(call, context, negative_context, video_cfg, audio_cfg, sync_scale) -> AVVelocity:
    """Per-modality CFG + sync guidance. `call(context, cross_modal) -> (video v | None, audio v | None)`.

    v_m = v_u + cfg_m (v_c - v_u) + (sync_scale - 1) (v_c - v_c_nocross). Model passes: 1 (cond), +1 when a
    cfg != 1 and a negative context exists, +1 when sync_scale != 1.
    """
    vc, ac = call(context, True)
    vu = au = None
    if negative_context is not None and (video_cfg != 1.0 or audio_cfg != 1.0):
        vu, au = call(negative_context, True)
    video, audio = _combine(vc, vu, video_cfg), _combine(ac, au, audio_cfg)
    if sync_scale != 1.0:
        vn, an = call(context, False)
        video, audio = _add_sync(video, vc, vn, sync_scale), _add_sync(audio, ac, an, sync_scale)
    return AVVelocity(video, audio)


def _model_call(model, video_in, audio_in, timestep, fps, dtype):
    """Adapter: (context, cross_modal) -> float32 (video v, audio v) for the current inputs."""
    from ..models.av_mmdit import AudioStream, VideoStream

    def call(context, cross_modal):
        video = None if video_in is None else VideoStream(x=video_in[0].to(dtype), refs=_cast(video_in[1], dtype))
        audio = None if audio_in is None else AudioStream(x=audio_in[0].to(dtype), refs=_cast(audio_in[1], dtype))
        ctx = context.to(timestep.device, dtype)
        batch = timestep.shape[0]
        if ctx.shape[0] != batch:
            ctx = ctx.expand(batch, -1, -1)
        v, a = model(video, audio, timestep, ctx, fps=fps, cross_modal=cross_modal)
        return (None if v is None else v.float()), (None if a is None else a.float())

    return call


def _cast(x, dtype):
    return None if x is None else x.to(dtype)


def _check_sample_args(steps, sampler, video_shape, num_audio_latents, condition, fps, context):
    if steps < 1:
        raise SkyReelsInputError(f"steps must be at least 1, got {steps}.")
    if sampler not in SAMPLERS:
        raise SkyReelsInputError(f"Unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}.")
    if video_shape is None and not num_audio_latents:
        raise SkyReelsInputError("Nothing to sample: give a video shape, audio latents, or both.")
    if not (math.isfinite(fps) and fps > 0):
        raise SkyReelsInputError(f"fps must be a positive number; got {fps}.")
    if context is None or context.ndim != 3:
        shape = None if context is None else tuple(context.shape)
        raise SkyReelsInputError(f"context must be the MLLM embedding [B, L, text_dim]; got {shape}.")
    if condition is not None:
        if video_shape is None:
            raise SkyReelsInputError("A video condition was given but no video is sampled (audio-only model?).")
        want = (video_shape.batch, 1, *video_shape.as_tuple()[2:])
        if tuple(condition.mask.shape) != want or tuple(condition.latent.shape) != video_shape.as_tuple():
            raise SkyReelsInputError(
                f"The condition is latent {tuple(condition.latent.shape)} / mask {tuple(condition.mask.shape)} but "
                f"the video latent is {video_shape.as_tuple()}; build the condition for the same frames and size."
            )


def _initial_state(video_shape, num_audio_latents, seed, condition, device):
    """Noise for both modalities and the (cond latent, mask) pair on device; video / audio None when absent."""
    x_v = x_a = cond = None
    if video_shape is not None:
        x_v = seeded_noise(video_shape.as_tuple(), seed).to(device)
        if condition is None:
            zeros = torch.zeros(video_shape.as_tuple(), device=device)
            cond = (zeros, zeros[:, :1])
        else:
            cond = (condition.latent.float().to(device), condition.mask.float().to(device))
    if num_audio_latents:
        batch = video_shape.batch if video_shape is not None else 1
        x_a = seeded_noise((batch, LATENT_CHANNELS, int(num_audio_latents)), audio_seed(seed)).to(device)
    return x_v, x_a, cond


def _keep(x, cond):
    """Reset the condition positions (mask = 1) to the condition latent."""
    return torch.where(cond[1] > 0.5, cond[0], x)


def _check_outputs(vel: AVVelocity, x_v, x_a) -> None:
    for name, v, x in (("video", vel.video, x_v), ("audio", vel.audio, x_a)):
        if x is not None and (v is None or v.shape != x.shape):
            found = None if v is None else tuple(v.shape)
            raise SkyReelsInputError(
                f"The model returned {name} velocity {found} for a {name} latent {tuple(x.shape)}; an audio-only or "
                f"video-only checkpoint cannot generate {name}: ask only for what the model type generates."
            )


@torch.no_grad()
def sample_av(
    model,
    *,
    video_shape: VideoLatentShape | None,
    num_audio_latents: int,
    context: torch.Tensor,
    negative_context: torch.Tensor | None = None,
    steps: int = 30,
    shift: float = 5.0,
    video_cfg: float = 5.0,
    audio_cfg: float = 5.0,
    sync_scale: float = 1.0,
    sampler: str = "euler",
    seed: int = 0,
    fps: float = 16.0,
    condition: VideoCondition | None = None,
    video_refs: torch.Tensor | None = None,
    audio_refs: torch.Tensor | None = None,
    callback: StepCallback | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Sample a video latent [B, 16, F, h, w] and an audio latent [B, 40, T_a] together (either may be None/0).

    context / negative_context: MLLM embeddings [1 or B, L, text_dim]. video_refs: clean reference latents
    [B, 16, F_r, h, w]; audio_refs: normalised audio reference latents [B, 40, T_r]. callback(step, total, x0)
    runs after every step with the video x0 estimate (the audio x0 for audio-only); raising cancels.
    Returns (video latent | None, raw codec audio latent | None), float32 on the CPU.
    """
    _check_sample_args(steps, sampler, video_shape, num_audio_latents, condition, fps, context)
    param = next(model.parameters())
    device, dtype = param.device, getattr(model, "compute_dtype", param.dtype)
    x_v, x_a, cond = _initial_state(video_shape, num_audio_latents, seed, condition, device)
    schedulers = SAMPLERS[sampler](steps, shift), SAMPLERS[sampler](steps, shift)
    sigmas, timesteps = schedulers[0].sigmas, schedulers[0].timesteps
    v_refs = None if video_refs is None else video_refs.float().to(device)
    a_refs = None if audio_refs is None else audio_refs.float().to(device)
    batch = (x_v if x_v is not None else x_a).shape[0]
    for i in range(steps):
        sigma = float(sigmas[i])
        t = torch.full((batch,), sigma * TIMESTEP_SCALE, device=device, dtype=torch.float32)
        if x_v is not None:
            x_v = _keep(x_v, cond)
        video_in = None if x_v is None else (torch.cat([x_v, cond[0], cond[1]], dim=1), v_refs)
        audio_in = None if x_a is None else (x_a, a_refs)
        call = _model_call(model, video_in, audio_in, t, float(fps), dtype)
        vel = guided_av_velocity(call, context, negative_context, video_cfg, audio_cfg, sync_scale)
        _check_outputs(vel, x_v, x_a)
        preview = _keep(to_denoised(x_v, vel.video, sigma), cond) if x_v is not None else None
        if x_v is not None:
            x_v = schedulers[0].step(vel.video, timesteps[i], x_v)
        if x_a is not None:
            preview = to_denoised(x_a, vel.audio, sigma) if preview is None else preview
            x_a = schedulers[1].step(vel.audio, timesteps[i], x_a)
        if callback is not None:
            callback(i + 1, steps, preview)
    if x_v is not None:
        x_v = _keep(x_v, cond).cpu()
    if x_a is not None:
        x_a = model.denormalize_audio(x_a).cpu()
    return x_v, x_a


@torch.no_grad()
def generate_av(
    model,
    vae,
    codec,
    context: torch.Tensor,
    negative_context: torch.Tensor | None = None,
    *,
    frames: int = 81,
    fps: float = 16.0,
    height: int = 480,
    width: int = 832,
    steps: int = 30,
    shift: float = 5.0,
    video_cfg: float = 5.0,
    audio_cfg: float = 5.0,
    sync_scale: float = 1.0,
    sampler: str = "euler",
    seed: int = 0,
    image: torch.Tensor | None = None,
    end_image: torch.Tensor | None = None,
    video: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    reference_images: list[torch.Tensor] | None = None,
    reference_clip: torch.Tensor | None = None,
    reference_audio: dict | None = None,
    callback: StepCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Text (+ images / video / mask / references) -> (video [1, 3, frames, H, W] in [-1, 1], waveform [1, 1, S]).

    The task follows the inputs (`build_condition`): nothing -> T2AV, image -> I2AV, image + end_image ->
    start/end, video -> extension (its frames are the start), video + mask -> edit/inpaint (audio fresh).
    Inputs are ComfyUI IMAGE [N, H, W, 3] / MASK [N, H, W] / AUDIO dicts. S = round(frames / fps * 44100) at 44.1 kHz.
    """
    shape, num_audio = av_latent_shape(frames, fps, height, width)
    condition = build_condition(vae, shape, image=image, end_image=end_image, video=video, mask=mask)
    video_refs = encode_references(vae, reference_images, reference_clip, shape)
    audio_refs = None
    if reference_audio is not None:
        audio_refs = encode_audio_reference(codec, reference_audio, model)
    latent, audio = sample_av(
        model, video_shape=shape, num_audio_latents=num_audio, context=context, negative_context=negative_context,
        steps=steps, shift=shift, video_cfg=video_cfg, audio_cfg=audio_cfg, sync_scale=sync_scale, sampler=sampler,
        seed=seed, fps=fps, condition=condition, video_refs=video_refs, audio_refs=audio_refs, callback=callback,
    )
    return vae.decode(latent), codec.decode(audio, num_samples=num_samples_for(frames / fps))
