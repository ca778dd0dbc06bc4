"""SkyReels-V4 joint video + audio sampling (text/image/video -> video with synchronised audio).

A recipe over the one sampling loop: video and audio latents are packed into one tensor (`AVLayout`; the solvers
are elementwise, so this is exact) and the dual-stream AV DiT (`AVDenoiser`) runs once per guidance branch at the
SAME timestep for video and audio (the paper trains with one shared t per sample, SkyReels-V4 eq. 6).
Undisclosed choices, made here and documented:

- Guidance (paper: not disclosed; per-modality CFG as in LTX-2 / Ovi): with v_c the conditional and v_u the
  negative-prompt velocity, each modality m gets v_m = v_u + cfg_m (v_c - v_u); the unconditional pass is skipped
  when both cfg are 1 (or there is no negative context), and a modality with cfg 1 takes v_c exactly.
  Sync guidance (LTX-2's "modality guidance"): an extra pass with the audio<->video cross-attention switched off,
  v_m += (sync_scale - 1) (v_c - v_c_nocross); sync_scale 1 skips that pass, so it equals plain CFG exactly.
- Conditions (mask = 1 in `VideoCondition`) are clean: the model always sees the condition latent there, and
  after the last step the video latent is reset to it, so kept positions come back bit-identical.
- Audio: the DiT works on (z - audio_latent_mean) / audio_latent_std (the AV checkpoint's buffers,
  `AVMMDiT.normalize_audio`); `sample_av` takes raw codec latents of reference audio and returns raw codec
  latents (`denormalize_audio`).
- Noise: `seeded_noise` (CPU generator) for video with `seed`, for audio with `audio_seed(seed)`, so the video
  noise for a seed is the same as the V2 pipeline's and does not depend on the audio length.
- Duration: the audio covers exactly frames / fps seconds (`shapes.AudioLatentShape.from_video`): the latents that
  cover round(seconds * 44.1 kHz) samples, decoded and trimmed to that many samples.
- Editing (a video + mask): the audio is generated fresh (the paper does not inpaint audio); no source audio is
  an input here.
- Hi-res keyframes (paper §4.5, two-stage path; `keyframes=Keyframes(...)`): the base model generates them in the
  same pass as the low-res video (`models/av_mmdit.py` says how they enter the model), at the sample's timestep,
  from their own noise (`keyframe_seed(seed)`, so the video and audio noise of a seed do not change), guided with
  video_cfg; they are stepped with the video and audio as one packed tensor (`AVLayout`). Without keyframes the
  run is exactly the one without this option. The refiner (pipelines/refine.py) takes them as its keyframes.
"""

from __future__ import annotations

import math

import torch

from ..conditioning.refine import Keyframes
from ..conditioning.v4 import VideoCondition
from ..errors import SkyReelsInputError
from ..sampling.guidance import AVGuidance
from ..sampling.loop import StepCallback, sample, solver_class
from ..sampling.noise import seeded_noise
from ..sampling.schedules import FlowSchedule
from ..shapes import AUDIO_LATENT_CHANNELS, AudioLatentShape, VideoLatentShape
from .denoisers import AVDenoiser, AVLayout
from .video import check_guidance

__all__ = ["audio_seed", "av_latent_shape", "keyframe_seed", "preview_callback", "sample_av"]
_AUDIO_SEED_SALT = 0x5EED_A0D1_0000_0000
_KEYFRAME_SEED_SALT = 0x5EED_CEF0_0000_0000


def av_latent_shape(frames: int, fps: float, height: int, width: int, batch: int = 1):
    """(VideoLatentShape, num_audio_latents) for `frames` pixel frames at `fps`: audio spans frames / fps seconds."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise SkyReelsInputError(f"fps must be a positive number; got {fps}.")
    shape = VideoLatentShape.from_pixels(frames, height, width, batch=batch)
    return shape, AudioLatentShape.from_video(frames, fps).frames


def audio_seed(seed: int) -> int:
    """The seed of the audio noise: `seed` xor a fixed salt (independent of the video noise for small seeds)."""
    return (int(seed) ^ _AUDIO_SEED_SALT) & 0xFFFF_FFFF_FFFF_FFFF


def keyframe_seed(seed: int) -> int:
    """The seed of the hi-res keyframe noise: `seed` xor another fixed salt."""
    return (int(seed) ^ _KEYFRAME_SEED_SALT) & 0xFFFF_FFFF_FFFF_FFFF


def _check_sample_args(steps, solver, video_shape, num_audio_latents, condition, fps, context, keyframes=None):
    if steps < 1:
        raise SkyReelsInputError(f"steps must be at least 1, got {steps}.")
    solver_class(solver)
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
    if keyframes is not None:
        if video_shape is None:
            raise SkyReelsInputError("Keyframes were asked for but no video is sampled (audio-only model?).")
        keyframes.check(video_shape.frames, video_shape.height, video_shape.width, video_shape.batch)


def _initial_state(video_shape, num_audio_latents, seed, condition, device):
    """Noise for both modalities (None when absent) and the (condition latent, keep mask) pair on device."""
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
        x_a = seeded_noise((batch, AUDIO_LATENT_CHANNELS, int(num_audio_latents)), audio_seed(seed)).to(device)
    return x_v, x_a, cond


def preview_callback(denoiser: AVDenoiser, callback: StepCallback | None) -> StepCallback | None:
    """The loop's callback on the packed x0 -> callback(step, total, video x0 with the kept frames, else audio x0)."""
    if callback is None:
        return None

    def call(step: int, total: int, x0: torch.Tensor) -> None:
        video, audio = denoiser.layout.unpack(x0)
        callback(step, total, denoiser.keep(video) if video is not None else audio)

    return call


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
    solver: str = "euler",
    seed: int = 0,
    fps: float = 16.0,
    condition: VideoCondition | None = None,
    video_refs: torch.Tensor | None = None,
    audio_refs: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    keyframes: Keyframes | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """Sample a video latent [B, 16, F, h, w] and an audio latent [B, 40, T_a] together (either may be None/0).

    context / negative_context: MLLM embeddings [1 or B, L, text_dim]. video_refs: clean reference latents
    [B, 16, F_r, h, w]; audio_refs: raw codec latents of reference audio [B, 40, T_r] (`conditioning.v4.encode_audio`),
    normalised here with the model's audio statistics. callback(step, total, x0)
    runs after every step with the video x0 estimate (the audio x0 for audio-only); raising cancels.
    keyframes: hi-res keyframes to generate with the video (`conditioning.refine.Keyframes`), or None.
    Returns (video latent | None, raw codec audio latent | None), float32 on the CPU; with `keyframes`, a third
    element: the keyframe latents [B, 16, K, H, W] (what `pipelines.refine.refine_video` takes).
    """
    _check_sample_args(steps, solver, video_shape, num_audio_latents, condition, fps, context, keyframes)
    check_guidance(video_cfg=video_cfg, audio_cfg=audio_cfg, sync_scale=sync_scale)
    device = next(model.parameters()).device
    x_v, x_a, cond = _initial_state(video_shape, num_audio_latents, seed, condition, device)
    x_k, cond_k = _keyframe_state(keyframes, video_shape, seed, device)
    layout = AVLayout(None if x_v is None else tuple(x_v.shape), None if x_a is None else tuple(x_a.shape),
                      None if x_k is None else tuple(x_k.shape))
    if audio_refs is not None:
        audio_refs = model.normalize_audio(audio_refs.float().to(device))
    denoiser = AVDenoiser(
        model, layout, context, negative_context, AVGuidance(video_cfg, audio_cfg, sync_scale), fps=float(fps),
        condition=cond, video_refs=None if video_refs is None else video_refs.float().to(device), audio_refs=audio_refs,
        keyframe_condition=cond_k, keyframe_index=() if x_k is None else tuple(keyframes.indices),
    )
    schedule = FlowSchedule.for_steps(steps, shift)
    x = sample(denoiser, layout.pack(x_v, x_a, x_k), schedule, solver, preview_callback(denoiser, callback))
    x_v, x_a = layout.unpack(x)
    if x_v is not None:
        x_v = denoiser.keep(x_v).cpu()
    if x_a is not None:
        x_a = model.denormalize_audio(x_a).cpu()
    if keyframes is None:
        return x_v, x_a
    if x_k is None:  # K = 0: exactly the run without keyframes
        return x_v, x_a, torch.zeros(keyframes.shape(video_shape.batch, video_shape.channels))
    return x_v, x_a, denoiser.keep_keyframes(layout.unpack_keyframes(x)).cpu()


def _keyframe_state(keyframes: Keyframes | None, video_shape, seed: int, device):
    """Noise [B, 16, K, H, W] for the keyframes and their (condition latent, keep mask) pair; (None, None) for none
    (also K = 0)."""
    if keyframes is None or not keyframes.indices:
        return None, None
    shape = keyframes.shape(video_shape.batch, video_shape.channels)
    noise = seeded_noise(shape, keyframe_seed(seed)).to(device)
    if keyframes.condition is None:
        zeros = torch.zeros(shape, device=device)
        return noise, (zeros, zeros[:, :1])
    return noise, (keyframes.condition.latent.float().to(device), keyframes.condition.mask.float().to(device))
