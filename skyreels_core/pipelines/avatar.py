"""SkyReels-V3 talking avatar (A2V): one portrait + speech features -> a lip-synced video of up to 200 s at 25 fps.
Facts: research/skyreels_v3.md §8 and §9.

The minute-level recipe, over the one sampling loop (sampling/loop.py) with an I2V (36-channel) DiT that carries
the speech adapter:
1. A key-frame pass: one 81-frame clip from the portrait (mask on frame 0) with the user prompt and speech 0..80.
   For speech shorter than 81 frames this clip, cut to length, is the output; otherwise it only supplies key frames.
2. Sliding windows of 81 frames, stride 64 (81 - 5 motion - 12 dropped): window k hears speech [64k, 64k + 81) and
   sees [motion frames | grey | key frame k repeated 5x] under the I2V mask ("first-and-last-frame insertion"),
   with the connection prompt "a person is talking". The key frames are the key-frame clip's frames at the window
   boundaries mapped onto 0..80 (`key_frame_indices`).
3. For k > 0 the 2 latent frames of the 5 motion frames are held clean and shown to the model re-noised to the
   current sigma with fresh noise at every call (`v3.PrefixSchedule` with renoise, the loop's `Step.renoise`), which is what the
   reference's "overwrite latent[:, :2] with (1 - sigma) x_motion + sigma noise after every update" amounts to.
4. Each decoded window drops its last 12 frames (unless last) and, for k > 0, its first 5 (the motion frames it was
   given); every window is colour-matched to the portrait in Lab; the result is cut to the speech length.

Interfaces this recipe is written against (the other two parts of A2V):
- speech features [T, 12, 768] at 25 per second (the wav2vec2 encoder's `encode_speech`); the recipe takes the
  features, never the waveform;
- each window's speech: `conditioning.speech.audio_windows` (each frame's 5-frame context, indices clamped) over
  the features padded with `pad_reversed`;
- the DiT: `model(x, t, context, clip_fea=, y=, audio=)` with `model.config.is_i2v` and
  `model.config.audio_adapter` (WanModel with the speech adapter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..conditioning.color import match_color
from ..conditioning.images import check_image, fit_crop, pixels_to_video
from ..conditioning.speech import audio_windows, pad_reversed
from ..errors import SkyReelsInputError
from ..sampling.guidance import TextAudioCFG
from ..sampling.loop import StepCallback, sample
from ..sampling.schedules import FlowSchedule, check_schedule, shifted_timestep_grid
from ..shapes import check_size, check_video_memory, latent_frames
from .denoisers import WanDenoiser
from .v3 import PrefixSchedule, _chunk_callback, _device, _to_image
from .video import check_guidance, i2v_mask

__all__ = [
    "AVATAR_BUCKETS", "CONNECTION_PROMPT", "FPS", "AvatarDenoiser", "AvatarInputs", "AvatarPlan",
    "WindowCondition",
    "avatar_size", "check_avatar_settings", "check_talking_avatar", "key_frame_indices", "kept_frames", "known_frames",
    "padded_frames", "plan_talking_avatar", "sample_window", "talking_avatar", "window_condition", "window_count",
]

FPS = 25  # speech features and output frames (the README's "24 fps" is not what the code does)
WINDOW = 81  # frames per generated window (21 latent frames)
MOTION = 5  # frames carried over from the previous window
DROP = 12  # frames dropped from the end of every window but the last (they hold the key frame)
KEY_REPEAT = 5  # the key frame fills the last 5 frames of a window's condition
STRIDE = WINDOW - MOTION - DROP  # 64 new frames per window
MAX_FRAMES = 5000  # 200 s at 25 fps
MIN_FRAMES = 10  # 0.4 s: the reference refuses shorter audio
STEPS, SHIFT = 4, 11.0  # step-distilled weights: custom Euler, 4 steps, shift 11
CONNECTION_PROMPT = "a person is talking"  # the text of every window after the key-frame pass
FEATURE_SHAPE = (12, 768)  # wav2vec2-base: 12 hidden states of width 768 per video frame
# Output buckets (height/width -> (height, width)). Only the entries research/skyreels_v3.md §8.1 quotes; the
# reference tables (ASPECT_RATIO_627 / ASPECT_RATIO_960) hold more ratios, so other aspects snap to the nearest of
# these and are centre-cropped more than the reference would. Give width and height to choose any size.
AVATAR_BUCKETS = {
    "480P": {0.577: (480, 832), 1.00: (640, 640)},
    "720P": {0.56: (720, 1280), 1.00: (960, 960), 1.78: (1280, 720)},
}


# sizes


def avatar_size(height: int, width: int, resolution: str = "720P") -> tuple[int, int]:
    """(height, width) of the bucket whose h/w ratio is nearest the portrait's; 480P or 720P only."""
    if resolution == "540P":
        raise SkyReelsInputError(
            "The talking avatar has no 540P buckets (the reference raises for 540P although its CLI offers it); "
            "choose 480P or 720P, or give width and height."
        )
    if resolution not in AVATAR_BUCKETS:
        raise SkyReelsInputError(f"resolution must be 480P or 720P for the talking avatar; got {resolution!r}.")
    table = AVATAR_BUCKETS[resolution]
    return table[min(table, key=lambda ratio: abs(ratio - height / width))]


# planning: frames, windows, key frames (pure functions of the speech length)


def padded_frames(frames: int) -> int:
    """Frames the windows cover for `frames` frames of speech: the next 81 + 64 n (>= 81 only; shorter speech is
    the key-frame pass alone)."""
    rest = (frames - WINDOW) % STRIDE
    return frames + (STRIDE - rest if rest else 0)


def window_count(padded: int) -> int:
    """Sliding windows over `padded` (= 81 + 64 n) frames: 1 + n."""
    return 1 + (padded - WINDOW) // STRIDE


def key_frame_indices(length: int) -> list[int]:
    """Frames of the 81-frame key-frame clip that end each window of a `length`-frame timeline.

    The window boundaries 0, 80, 144, 208, ... (step 64, below length - 1) and length - 1 are mapped linearly onto
    0..80 and rounded half to even (numpy's round, as the reference); boundary 0 is dropped.
    L = 500 -> [13, 23, 33, 44, 54, 64, 74, 80]; L = 127 -> [51, 80].
    """
    bounds = [0, *range(WINDOW - 1, length - 1, STRIDE), length - 1]
    scaled = torch.tensor(bounds, dtype=torch.float64) * (WINDOW - 1) / (length - 1)
    return torch.round(scaled).clamp(0, WINDOW - 1).long().tolist()[1:]


def kept_frames(k: int, windows: int) -> tuple[int, int]:
    """(start, end) of the decoded frames of window k that go to the output: the last 12 hold the key frame and are
    regenerated by the next window (kept only in the last one); window k > 0 starts with the 5 motion frames it was
    given."""
    return (0 if k == 0 else MOTION), (WINDOW if k == windows - 1 else WINDOW - DROP)


@dataclass(frozen=True)
class AvatarPlan:
    """What a talking-avatar run generates.

    frames: output frames (= speech frames, L_real). padded: frames the windows cover (L; = 81 for speech
    shorter than 81 frames). windows: sliding windows (0: the key-frame clip is the output). key_frames: the
    key-frame clip frame of each window.
    """

    frames: int
    padded: int
    windows: int
    key_frames: tuple[int, ...]


def plan_talking_avatar(frames: int) -> AvatarPlan:
    """The plan for `frames` frames of speech (10..5000)."""
    if frames < WINDOW:
        return AvatarPlan(frames, WINDOW, 0, ())
    padded = padded_frames(frames)
    # the reference maps the padded timeline, capped at its 5000-frame limit, onto the key-frame clip
    keys = key_frame_indices(min(MAX_FRAMES, padded))
    return AvatarPlan(frames, padded, window_count(padded), tuple(keys))


# the condition of one window


def known_frames(motion: int, key_frames: int = 0) -> torch.Tensor:
    """bool [81]: the first `motion` and the last `key_frames` frames of the window are given."""
    known = torch.zeros(WINDOW, dtype=torch.bool)
    known[:motion] = True
    if key_frames:
        known[-key_frames:] = True
    return known


@dataclass(frozen=True)
class WindowCondition:
    """What one window's DiT calls see besides the noise and the speech.

    y: [1, 20, 21, h, w] = 4 mask channels | VAE(condition video). clip_fea: CLIP tokens of the condition video's
    first frame. motion: [1, 16, 2, h, w], the latents of the motion frames (None for the first windows).
    """

    y: torch.Tensor
    clip_fea: torch.Tensor
    motion: torch.Tensor | None


def window_condition(vae, encode_image: Callable, motion: torch.Tensor, key: torch.Tensor | None = None,
                     reinject: bool = False, vae_callback: Callable[[int, int], None] | None = None) -> WindowCondition:
    """The condition of a window from pixels in [-1, 1]: motion [M, 3, H, W] (the portrait, or the last 5 kept
    frames), key [3, H, W] (repeated 5x at the end; None for the key-frame pass). reinject: keep the motion latents
    (windows after the first). vae_callback: the VAE's per-time-chunk callback (a Cancel point)."""
    height, width = motion.shape[-2:]
    video = torch.zeros(WINDOW, 3, height, width)
    video[: motion.shape[0]] = motion.float().cpu()
    if key is not None:
        video[-KEY_REPEAT:] = key.float().cpu()
    latent = vae.encode(pixels_to_video(video), callback=vae_callback)
    known = known_frames(motion.shape[0], KEY_REPEAT if key is not None else 0)
    mask = i2v_mask(known, latent.shape[3], latent.shape[4])[None].to(latent)
    clip_fea = encode_image(((video[:1].permute(0, 2, 3, 1) + 1.0) * 0.5).clamp(0.0, 1.0))
    motion_latent = latent[:, :, : latent_frames(motion.shape[0])].clone() if reinject else None
    return WindowCondition(y=torch.cat([mask, latent], dim=1), clip_fea=clip_fea, motion=motion_latent)


# schedule and denoiser


class AvatarDenoiser(WanDenoiser):
    """The A2V DiT as a flow denoiser: I2V condition (y, clip_fea), windowed speech features, text + speech CFG.

    Time input: t = 1000 sigma as a float [B], not truncated to an integer (the reference passes its shifted float
    timesteps; truncating would move the last step from 10.89 to 10). Per-frame sigmas (PrefixSchedule with renoise) are all
    equal, so one t is given. Branches (`TextAudioCFG`): text from the positive prompt for "cond" and
    "uncond_audio", from the negative for the others; "uncond_audio" and "uncond" hear all-zero speech.
    """

    def time_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        level = sigma if sigma.ndim == 0 else sigma[-1]
        return (level.double() * 1000.0).float().to(x.device).expand(x.shape[0])

    def predict(self, x: torch.Tensor, t: torch.Tensor, branch: str, **extra) -> torch.Tensor:
        kwargs, texts = self._inputs(x.device)
        text = texts["uncond"] if branch in ("uncond_text", "uncond") else texts["cond"]
        if branch in ("uncond_audio", "uncond"):
            kwargs = {**kwargs, "audio": torch.zeros_like(kwargs["audio"])}
        return self.model(x.to(self.dtype), t, text, **kwargs, **extra).float()


def _window_generator(seed: int, window: int) -> torch.Generator:
    """The CPU generator of one pass (0 = key-frame pass, k + 1 = window k): its first draw is the pass's starting
    noise, the next draws are the re-noised motion latents, in call order."""
    return torch.Generator("cpu").manual_seed((int(seed) + int(window)) & 0xFFFF_FFFF_FFFF_FFFF)


@torch.no_grad()
def sample_window(model, condition: WindowCondition, audio: torch.Tensor, *, positive: torch.Tensor,
                  negative: torch.Tensor | None = None, steps: int = STEPS, shift: float = SHIFT,
                  text_cfg: float = 1.0, audio_cfg: float = 1.0, seed: int = 0, window: int = 0,
                  callback: StepCallback | None = None) -> torch.Tensor:
    """One 81-frame pass -> its latent [1, 16, 21, h, w] (CPU). audio: [1, 81, 5, 12, 768] windowed features.

    Seeding: `_window_generator(seed, window)`, so every pass is reproducible on its own. With condition.motion, the
    motion latents are held clean and re-noised at every call (`PrefixSchedule` with renoise); otherwise a plain grid.
    """
    y = condition.y
    shape = (1, y.shape[1] - 4, *y.shape[2:])
    generator = _window_generator(seed, window)
    x = torch.randn(shape, generator=generator, dtype=torch.float32)
    grid = shifted_timestep_grid(steps, shift)
    schedule = FlowSchedule(grid)
    if condition.motion is not None:
        count = condition.motion.shape[2]
        x[:, :, :count] = condition.motion.float().cpu()
        schedule = PrefixSchedule(grid, count, shape[2], renoise=True)
    denoiser = AvatarDenoiser(model, positive, negative, TextAudioCFG(text_cfg, audio_cfg), y=y,
                              clip_fea=condition.clip_fea, audio=audio)

    def noise(size: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(size, generator=generator, dtype=torch.float32)

    return sample(denoiser, x.to(_device(model)), schedule, "euler", callback, noise).cpu()


# checks and the recipe


@dataclass(frozen=True)
class AvatarInputs:
    """Everything `check_talking_avatar` validated: the plan, the output size and the portrait (IMAGE [1, H, W, 3])."""

    plan: AvatarPlan
    height: int
    width: int
    portrait: torch.Tensor


def _check_model(model) -> None:
    config = getattr(model, "config", None)
    if config is None or not getattr(config, "is_i2v", False):
        found = "no config" if config is None else f"in_dim {getattr(config, 'in_dim', '?')}"
        raise SkyReelsInputError(
            f"The talking avatar needs the SkyReels-V3 A2V model (an I2V DiT, 36 input channels, with the speech "
            f"adapter); this model has {found}. Load SkyReels-V3-A2V-19B."
        )
    if not getattr(config, "audio_adapter", False):
        raise SkyReelsInputError(
            "This I2V model has no speech adapter (audio_proj / audio_cross_attn): it is a SkyReels-V2 / Wan I2V "
            "model, not SkyReels-V3 A2V. Load SkyReels-V3-A2V-19B."
        )


def _check_features(features, model) -> int:
    config = model.config  # the adapter's speech-feature sizes (wav2vec2-base: 12 hidden states of width 768)
    layers = getattr(config, "audio_layers", FEATURE_SHAPE[0])
    width = getattr(config, "audio_feature_dim", FEATURE_SHAPE[1])
    if not isinstance(features, torch.Tensor) or features.ndim != 3 or tuple(features.shape[1:]) != (layers, width):
        found = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise SkyReelsInputError(
            f"Speech features must be [T, {layers}, {width}] (the speech encoder's hidden states at {FPS} per second, "
            f"as this model's adapter takes them); got {found}. Load the speech encoder that comes with the model."
        )
    frames = features.shape[0]
    if frames < MIN_FRAMES:
        raise SkyReelsInputError(
            f"The speech lasts {frames / FPS:.2f} s ({frames} frames); the talking avatar needs at least "
            f"{MIN_FRAMES / FPS:.1f} s. Use a longer clip."
        )
    if frames > MAX_FRAMES:
        raise SkyReelsInputError(
            f"The speech lasts {frames / FPS:.1f} s ({frames} frames), longer than the {MAX_FRAMES / FPS:.0f} s "
            f"({MAX_FRAMES} frames) the talking avatar generates. Trim the audio or split it."
        )
    if not torch.isfinite(features).all():
        raise SkyReelsInputError("The speech features contain NaN or infinity; re-encode the audio.")
    return frames


def check_talking_avatar(model, portrait, features, *, negative: torch.Tensor | None = None,
                         resolution: str = "720P", width: int | None = None, height: int | None = None,
                         steps: int = STEPS, shift: float = SHIFT, text_cfg: float = 1.0,
                         audio_cfg: float = 1.0) -> AvatarInputs:
    """Every talking-avatar input, checked before any encoder, VAE or DiT call (see `talking_avatar`)."""
    return check_avatar_settings(model, portrait, _check_features(features, model), negative=negative,
                                 resolution=resolution, width=width, height=height, steps=steps, shift=shift,
                                 text_cfg=text_cfg, audio_cfg=audio_cfg)


def check_avatar_settings(model, portrait, frames: int, *, negative: torch.Tensor | None = None,
                          resolution: str = "720P", width: int | None = None, height: int | None = None,
                          steps: int = STEPS, shift: float = SHIFT, text_cfg: float = 1.0,
                          audio_cfg: float = 1.0) -> AvatarInputs:
    """Everything but the speech features, for `frames` frames of speech: lets a caller refuse a bad input before it
    spends time encoding the speech (the features are checked by `check_talking_avatar`)."""
    _check_model(model)
    portrait = check_image(portrait, "The portrait")[:1]
    if (height is None) != (width is None):
        raise SkyReelsInputError("Give both width and height, or neither (size from the resolution bucket).")
    if height is None:
        height, width = avatar_size(portrait.shape[1], portrait.shape[2], resolution)
    check_size(width, height)
    check_schedule(steps, shift)
    check_guidance(text_cfg=text_cfg, audio_cfg=audio_cfg)
    if text_cfg != 1.0 and negative is None:
        raise SkyReelsInputError("text_cfg other than 1 needs a negative prompt; connect one or set text_cfg to 1.")
    plan = plan_talking_avatar(frames)
    check_video_memory(1, plan.padded, height, width, "The talking-avatar video")
    return AvatarInputs(plan, height, width, portrait)


@torch.no_grad()
def talking_avatar(model, vae, encode_image: Callable, portrait: torch.Tensor, features: torch.Tensor,
                   positive: torch.Tensor, connection_positive: torch.Tensor, negative: torch.Tensor | None = None,
                   resolution: str = "720P", seed: int = 0, steps: int = STEPS, shift: float = SHIFT,
                   text_cfg: float = 1.0, audio_cfg: float = 1.0, callback: StepCallback | None = None, *,
                   width: int | None = None, height: int | None = None,
                   vae_callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """SkyReels-V3 talking avatar: portrait IMAGE + speech features [T, 12, 768] -> IMAGE [T, H, W, 3] at 25 fps.

    encode_image: IMAGE [1, H, W, 3] 0..1 -> CLIP tokens [1, 257, 1280] (e.g. CLIPVisionEncoder.encode_image).
    positive: the user prompt (key-frame pass); connection_positive: "a person is talking" (`CONNECTION_PROMPT`,
    every window); negative: used only when a cfg is not 1. Size: the bucket nearest the portrait's aspect at
    `resolution` (480P / 720P), or width and height; the portrait is centre-cropped and resized with the pack's
    one fit (`fit_crop`; the reference resizes bilinear, then crops).
    DiT calls: (1 + windows) x steps x guidance branches; callback(done, total, x0) counts the steps of all passes;
    vae_callback(done, total) runs after every time chunk of each window's VAE encode and decode (raise to cancel).
    """
    inputs = check_talking_avatar(model, portrait, features, negative=negative, resolution=resolution, width=width,
                                  height=height, steps=steps, shift=shift, text_cfg=text_cfg, audio_cfg=audio_cfg)
    plan = inputs.plan
    pixels = fit_crop(inputs.portrait, inputs.height, inputs.width)  # [1, 3, H, W] in [-1, 1]
    # speech shorter than a window is not padded: the windows clamp to its last frame, as the reference
    speech = pad_reversed(features, plan.padded) if plan.windows else features
    passes = 1 + plan.windows
    common = dict(negative=negative, steps=steps, shift=shift, text_cfg=text_cfg, audio_cfg=audio_cfg, seed=seed)

    def run(condition: WindowCondition, start: int, text: torch.Tensor, window: int) -> torch.Tensor:
        """One pass -> its 81 decoded, colour-matched frames [81, 3, H, W] in [-1, 1] (CPU)."""
        latent = sample_window(model, condition, audio_windows(speech, start), positive=text, window=window,
                               callback=_chunk_callback(callback, window, passes), **common)
        video = vae.decode(latent, callback=vae_callback)  # matched where it was decoded (the GPU, for a real VAE)
        frames = (video[0].permute(1, 0, 2, 3).float() + 1.0) * 0.5
        return (match_color(frames, (pixels[0].to(frames) + 1.0) * 0.5) * 2.0 - 1.0).cpu()

    key_clip = run(window_condition(vae, encode_image, pixels, vae_callback=vae_callback), 0, positive, 0)
    if plan.windows == 0:
        return _frames_to_image(key_clip[: plan.frames])
    out = torch.empty(plan.frames, inputs.height, inputs.width, 3)  # filled window by window: one copy in memory
    motion = pixels
    for k in range(plan.windows):
        key = key_clip[plan.key_frames[min(k, len(plan.key_frames) - 1)]]
        condition = window_condition(vae, encode_image, motion, key, reinject=k > 0, vae_callback=vae_callback)
        start, end = kept_frames(k, plan.windows)
        frames = run(condition, k * STRIDE, connection_positive, k + 1)[start:end]
        first = k * STRIDE + start
        count = max(0, min(frames.shape[0], plan.frames - first))  # the last window runs into the padding
        out[first : first + count] = _frames_to_image(frames[:count])
        motion = frames[-MOTION:]
    return out


def _frames_to_image(frames: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> IMAGE [N, H, W, 3] in 0..1."""
    return _to_image(frames.permute(1, 0, 2, 3)[None])

