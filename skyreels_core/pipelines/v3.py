"""SkyReels-V3 recipes over the one sampling loop: reference-to-video (R2V), single-shot video extension and shot
switching (the two V2V models). Facts: research/skyreels_v3.md §5-7 and §9.

Each recipe only builds inputs, a schedule and a denoiser for `sampling.loop.sample`:
- R2V: the references are clean latents placed AFTER the noisy frames in time ([noisy | refs], RoPE positions
  continue the grid, one scalar t for all frames). `ContextFramesDenoiser` appends them for every model call
  and returns the noisy frames' velocity only, so the loop never steps (or returns) the references.
- Single-shot extension: [prefix | noisy] is one latent; `PrefixSchedule` gives the prefix sigma 0 (t = 0) and
  never updates it, so the prefix comes back unchanged.
- Shot switching: the condition latents go after the noisy frames at temporal RoPE positions 1024.. with t = 0
  (`ContextFramesDenoiser(clean_time=True, position_start=1024)`), and are dropped from the output.
Every input is validated before the first model call (SkyReelsInputError naming the fix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..conditioning.images import check_image, fit_crop, fit_pad, pixels_to_video
from ..errors import SkyReelsInputError
from ..sampling.guidance import CFG, DualCFG
from ..sampling.loop import Step, StepCallback, sample
from ..sampling.noise import seeded_noise
from ..sampling.schedules import FlowSchedule, diffusers_flow_grid, flow_grid
from ..shapes import SPACE_STRIDE, check_size, latent_frames, pixel_frames
from .denoisers import WanDenoiser
from .video import check_guidance

__all__ = [
    "ASPECT_RATIO_CONFIG", "FPS", "SHOT_CONDITION_FRAMES", "SHOT_TAGS", "ContextFramesDenoiser", "PrefixSchedule",
    "bucket_size", "check_extension", "check_reference_to_video", "check_shot_switch", "check_v3_model",
    "encode_references", "extend_video", "extension_chunks", "extension_frames", "reference_to_video",
    "sample_extension_chunk", "sample_reference_to_video", "sample_shot_switch", "shot_prompt", "switch_shot",
]

FPS = 24  # every V3 recipe writes 24 fps; frames = duration * 24 + 1
MAX_REFERENCES = 4  # R2V always shows the model 4 reference frames (missing ones are zero latents)
R2V_STEPS, R2V_SHIFT = 8, 5.0  # diffusers UniPC flow schedule; the released weights are step/CFG distilled
V2V_STEPS, V2V_SHIFT = 8, 8.0  # Wan FlowUniPC schedule, both V2V models
PREFIX_FRAMES = 25  # single-shot extension: the last 25 pixel frames (7 latents) are the clean prefix
CHUNK_SECONDS, LATENTS_PER_SECOND = 5, 6
# The reference keeps prefix + noisy latents a multiple of 8 (it splits per-frame modulation across 8 GPUs), with
# a running balance so that the total length stays near 6 latents per second.
FRAME_MULTIPLE = 8
EXTENSION_SECONDS = (5, 30)  # README: 5-30 s
SHOT_CONDITION_FRAMES = {2: 9, 3: 17, 4: 25, 5: 33}  # shot duration (s) -> condition pixel frames (3/5/7/9 latents)
SHOT_POSITION_START = 1024  # temporal RoPE position of the first shot-switch condition frame
# Shot-type tags prefixed to the prompt. Only the first two appear in the reference (README example, CLI help);
# README names three more transitions whose tags are undocumented: those entries are our guess, marked as such.
SHOT_TAGS = {"cut_in": "[ZOOM_IN_CUT]", "cut_out": "[ZOOM_OUT_CUT]"}
UNDOCUMENTED_SHOT_TAGS = {"shot_reverse_shot": "[SHOT_REVERSE_SHOT]", "multi_angle": "[MULTI_ANGLE]",
                          "cut_away": "[CUT_AWAY]"}
# Output buckets (height/width ratio -> (height, width)), floored to multiples of 16 when used (reference config.py).
ASPECT_RATIO_CONFIG = {
    "480P": {"0.38": (392, 1046), "0.43": (420, 980), "0.48": (444, 925), "0.50": (452, 904), "0.53": (466, 880),
             "0.54": (470, 870), "0.56": (480, 854), "0.62": (506, 810), "0.67": (522, 784), "0.75": (554, 738),
             "1.00": (640, 640), "1.33": (740, 555), "1.50": (784, 522), "1.78": (854, 480), "1.89": (880, 466),
             "2.00": (906, 454), "2.08": (924, 444)},
    "540P": {"0.34": (416, 1216), "0.38": (464, 1216), "0.40": (464, 1152), "0.43": (496, 1152),
             "0.48": (496, 1024), "0.50": (512, 1024), "0.53": (512, 960), "0.57": (544, 960), "0.60": (544, 912),
             "0.63": (576, 912), "0.67": (576, 864), "0.72": (624, 864), "0.75": (624, 832), "0.79": (656, 832),
             "0.84": (656, 784), "0.92": (720, 784), "1.00": (720, 720), "1.09": (784, 720), "1.26": (784, 624),
             "1.33": (832, 624), "1.40": (832, 592), "1.49": (880, 592), "1.62": (880, 544), "1.78": (960, 544),
             "1.88": (960, 512), "2.00": (1024, 512), "2.13": (1024, 480)},
    "720P": {"0.38": (588, 1568), "0.43": (628, 1466), "0.48": (666, 1388), "0.50": (678, 1356),
             "0.53": (698, 1318), "0.54": (706, 1306), "0.56": (720, 1280), "0.62": (758, 1212),
             "0.67": (784, 1176), "0.75": (832, 1110), "1.00": (960, 960), "1.33": (1108, 832), "1.50": (1176, 784),
             "1.78": (1280, 720), "1.89": (1320, 698), "2.00": (1358, 680), "2.08": (1386, 666)},
}


# sizes, models, prompts


def bucket_size(height: int, width: int, resolution: str = "720P") -> tuple[int, int]:
    """(height, width) of the bucket whose h/w ratio is closest to height/width, floored to multiples of 16."""
    if resolution not in ASPECT_RATIO_CONFIG:
        raise SkyReelsInputError(f"resolution must be one of {', '.join(ASPECT_RATIO_CONFIG)}; got {resolution!r}.")
    table = ASPECT_RATIO_CONFIG[resolution]
    ratio = min(table, key=lambda r: abs(float(r) - height / width))
    h, w = table[ratio]
    step = 2 * SPACE_STRIDE
    return h // step * step, w // step * step


def _output_size(image: torch.Tensor, resolution: str, height: int | None, width: int | None) -> tuple[int, int]:
    """Explicit (height, width), both or neither; else the bucket of the image [N, H, W, C]."""
    if (height is None) != (width is None):
        raise SkyReelsInputError("Give both width and height, or neither (size from the resolution bucket).")
    if height is None:
        return bucket_size(image.shape[1], image.shape[2], resolution)
    check_size(width, height)
    return height, width


def check_v3_model(model, recipe: str) -> None:
    """The V3 recipes need a text-only Wan2.1-14B-style DiT (in_dim 16, no image branch)."""
    config = getattr(model, "config", None)
    if config is not None and (config.in_dim != 16 or config.is_i2v):
        raise SkyReelsInputError(
            f"{recipe} needs a SkyReels-V3 {'R2V' if recipe == 'Reference-to-video' else 'V2V'} model (16 input "
            f"channels, text conditioning only); this model has in_dim {config.in_dim} ({config.model_type}), a "
            f"SkyReels-V2 I2V / V3 A2V model. Load the matching SkyReels-V3 file instead."
        )


def shot_prompt(prompt: str, shot_type: str | None) -> str:
    """The prompt with the shot-type tag in front ("cut_in" -> "[ZOOM_IN_CUT] ..."); None, "none" or "custom":
    unchanged (the user types a tag). Undocumented types (see UNDOCUMENTED_SHOT_TAGS) are guesses of the tag string."""
    if shot_type in (None, "", "none", "custom"):
        return prompt
    tags = {**SHOT_TAGS, **UNDOCUMENTED_SHOT_TAGS}
    if shot_type not in tags:
        raise SkyReelsInputError(f"shot_type must be one of {', '.join(tags)}, 'none' or 'custom'; got {shot_type!r}.")
    return f"{tags[shot_type]} {prompt}"


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _to_image(video: torch.Tensor) -> torch.Tensor:
    """VAE video [1, 3, F, H, W] in [-1, 1] -> IMAGE [F, H, W, 3] in 0..1 (CPU)."""
    return ((video[0].permute(1, 2, 3, 0).float() + 1.0) * 0.5).clamp(0.0, 1.0).cpu()


def _check_duration(duration, allowed: Sequence[int] | tuple[int, int], what: str, is_range: bool) -> int:
    ok = isinstance(duration, int) and not isinstance(duration, bool)
    ok = ok and (allowed[0] <= duration <= allowed[1] if is_range else duration in allowed)
    if not ok:
        choices = f"{allowed[0]} to {allowed[1]}" if is_range else ", ".join(str(a) for a in allowed)
        raise SkyReelsInputError(f"{what} duration must be a whole number of seconds in {choices}; got {duration!r}.")
    return duration


# a denoiser that shows clean condition frames after the noisy ones


class ContextFramesDenoiser(WanDenoiser):
    """A Wan DiT that sees [x | context] in time; returns the velocity of x's frames only.

    context: {guidance branch: latent [1 or B, 16, K, h, w]}; a branch without an entry uses "cond"'s (R2V's
    "uncond" is all-zero references). Text: "cond" -> positive, every other branch -> negative.
    clean_time: False (R2V) -> one t for all frames, as the reference's scalar timestep; True (shot switching)
        -> per-frame t [B, F + K] with 0 for the context frames.
    position_start: temporal RoPE position of the first context frame (None: the grid continues, F..F+K-1).
    """

    def __init__(self, model, positive, negative, guidance, context: dict[str, torch.Tensor], *,
                 clean_time: bool = False, position_start: int | None = None):
        super().__init__(model, positive, negative, guidance)
        self.context, self.clean_time, self.position_start = context, clean_time, position_start

    def time_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        t = super().time_input(x, sigma)
        if not self.clean_time:
            return t
        t = t[:, None].expand(-1, x.shape[2]) if t.ndim == 1 else t
        return torch.cat([t, t.new_zeros(x.shape[0], self.context["cond"].shape[2])], dim=1)

    def model_input(self, x: torch.Tensor, branch: str) -> torch.Tensor:
        context = self.context.get(branch, self.context["cond"])
        return torch.cat([x, context.to(x).expand(x.shape[0], -1, -1, -1, -1)], dim=2)

    def predict(self, x: torch.Tensor, t: torch.Tensor, branch: str, **extra) -> torch.Tensor:
        frames, count = x.shape[2], self.context["cond"].shape[2]
        if self.position_start is not None:
            extra["time_positions"] = torch.cat([torch.arange(frames), self.position_start + torch.arange(count)]).double()
        return super().predict(x, t, branch, **extra)[:, :, :frames]


# reference-to-video


def encode_references(vae, images: Sequence[torch.Tensor], height: int, width: int,
                      posterior_seed: int | None = None) -> torch.Tensor:
    """1-4 IMAGEs -> reference latents [1, 16, 4, height/8, width/8].

    Each image (its first frame) is fitted inside (height, width) with its aspect kept, padded WHITE, and encoded
    alone as a 1-frame video; missing slots are zero latents. The reference samples the VAE posterior: pass
    `posterior_seed` to sample too (None: the posterior mean, deterministic).
    """
    images = _check_references(images)
    generator = None if posterior_seed is None else torch.Generator().manual_seed(int(posterior_seed))
    latents = []
    for image in images:
        pixels = fit_pad(image[:1], height, width, fill=1.0)
        moments = vae.encode_moments(pixels_to_video(pixels))
        mu, logvar = moments.chunk(2, dim=1)
        if generator is not None:  # diffusers DiagonalGaussianDistribution.sample
            std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
            mu = mu + std * torch.randn(mu.shape, generator=generator).to(mu)
        latents.append(vae.normalize_latent(mu))
    latents += [torch.zeros_like(latents[0])] * (MAX_REFERENCES - len(latents))
    return torch.cat(latents, dim=2)


def _check_references(images) -> list[torch.Tensor]:
    """1-4 IMAGEs -> one [1, H, W, 3] per reference. A batch [N, H, W, 3] counts as N references; references of
    different sizes are fine (each is fitted and padded on its own); None entries (unconnected inputs) are skipped."""
    if isinstance(images, torch.Tensor):
        images = [images]
    images = [check_image(im, f"reference image {i + 1}") for i, im in enumerate(images) if im is not None]
    images = [frame[None] for im in images for frame in im]
    if not 1 <= len(images) <= MAX_REFERENCES:
        raise SkyReelsInputError(
            f"Reference-to-video takes 1 to {MAX_REFERENCES} reference images; got {len(images)} (a batch of N "
            f"images counts as N). Combine subjects into fewer images or drop some."
        )
    return images


def check_reference_to_video(model, images, *, duration: int = 5, resolution: str = "720P",
                             width: int | None = None, height: int | None = None
                             ) -> tuple[list[torch.Tensor], int, int]:
    """Every R2V input, checked before any VAE or model call: (references [1, H, W, 3] each, height, width)."""
    check_v3_model(model, "Reference-to-video")
    images = _check_references(images)
    _check_duration(duration, (1, 30), "Reference-to-video", True)
    return (images, *_output_size(images[0], resolution, height, width))


@torch.no_grad()
def sample_reference_to_video(model, references: torch.Tensor, *, positive: torch.Tensor,
                              negative: torch.Tensor | None = None, frames: int, steps: int = R2V_STEPS,
                              shift: float = R2V_SHIFT, text_cfg: float = 1.0, image_cfg: float = 1.0, seed: int = 0,
                              solver: str = "unipc", callback: StepCallback | None = None) -> torch.Tensor:
    """references [1, 16, 4, h, w] -> the video latent [1, 16, (frames-1)/4+1, h, w] (references not returned).

    Default: 8 steps, shift 5 on diffusers' flow grid, one model call per step (text_cfg 1). text_cfg > 1 with
    a negative prompt runs `DualCFG` (3 calls; image_cfg weighs the references against zero references).
    """
    check_v3_model(model, "Reference-to-video")
    check_guidance(guidance=text_cfg, image_guidance=image_cfg)
    if references.ndim != 5 or references.shape[2] != MAX_REFERENCES:
        raise SkyReelsInputError(f"references must be [1, 16, 4, h, w] (encode_references); got {tuple(references.shape)}.")
    shape = (1, references.shape[1], latent_frames(frames), *references.shape[3:])
    context = {"cond": references, "uncond": torch.zeros_like(references)}
    denoiser = ContextFramesDenoiser(model, positive, negative, DualCFG(text_cfg, image_cfg), context)
    x = seeded_noise(shape, seed).to(_device(model))
    return sample(denoiser, x, FlowSchedule(diffusers_flow_grid(steps, shift)), solver, callback).cpu()


@torch.no_grad()
def reference_to_video(model, vae, images: Sequence[torch.Tensor], *, positive: torch.Tensor,
                       negative: torch.Tensor | None = None, duration: int = 5, resolution: str = "720P",
                       width: int | None = None, height: int | None = None, seed: int = 0, decode: bool = True,
                       **kwargs) -> torch.Tensor:
    """SkyReels-V3 R2V: 1-4 reference IMAGEs + text -> IMAGE frames [duration*24+1, H, W, 3] at 24 fps.

    Size: the bucket of the first reference's aspect ratio at `resolution`, or an explicit width and height.
    decode False: return the normalised video latent [1, 16, duration*6+1, H/8, W/8] instead (vae.decode gives
    the frames). kwargs: steps, shift, text_cfg, image_cfg, solver, callback (see `sample_reference_to_video`).
    """
    images, height, width = check_reference_to_video(model, images, duration=duration, resolution=resolution,
                                                     width=width, height=height)
    references = encode_references(vae, images, height, width)
    latent = sample_reference_to_video(model, references, positive=positive, negative=negative,
                                       frames=duration * FPS + 1, seed=seed, **kwargs)
    return _to_image(vae.decode(latent)) if decode else latent


# single-shot extension


def extension_chunks(duration: int, prefix_latents: int = latent_frames(PREFIX_FRAMES)) -> list[int]:
    """Noisy latent frames of each chunk: 5-s chunks (+ the remainder), 6 latents per second, adjusted so that
    prefix + noisy is a multiple of 8 with the reference's running padding balance. 5 s -> [33], 15 s -> [33, 33, 25]."""
    seconds = [CHUNK_SECONDS] * (duration // CHUNK_SECONDS) + ([duration % CHUNK_SECONDS] if duration % CHUNK_SECONDS else [])
    chunks, balance = [], 0
    for s in seconds:
        n = LATENTS_PER_SECOND * s
        rest = (n + prefix_latents) % FRAME_MULTIPLE
        if rest > balance:  # round up, and remember the extra frames
            balance += FRAME_MULTIPLE - rest
            n += FRAME_MULTIPLE - rest
        else:  # round down, paying back earlier extra frames
            balance -= rest
            n -= rest
        chunks.append(n)
    return chunks


class PrefixSchedule:
    """A flow grid for latents [prefix | noisy] whose prefix frames are held clean (never updated); the noisy
    frames step down `grid` together.

    renoise False: the prefix sits at sigma 0, the model sees t = 0 there (V3 extension: the reference's per-frame
    timestep [0]*P + [t]*N). renoise True: every frame has the step's sigma and the model sees the prefix re-noised
    to it with fresh noise at every call (`Step.renoise`; the talking avatar's motion latents)."""

    def __init__(self, grid: torch.Tensor, prefix: int, frames: int, renoise: bool = False):
        self.grid, self.prefix, self.frames = grid.to(torch.float64), int(prefix), int(frames)
        self.sigmas = self.grid.float()
        self.update = torch.arange(self.frames) >= self.prefix
        self.renoise = ~self.update if renoise else None

    def __len__(self) -> int:
        return len(self.grid) - 1

    def __getitem__(self, i: int) -> Step:
        if not 0 <= i < len(self):
            raise IndexError(i)
        sigma = torch.full((self.frames,), float(self.grid[i]), dtype=torch.float64)
        if self.renoise is None:
            sigma[: self.prefix] = 0.0
        return Step(sigma=sigma, index=torch.full((self.frames,), i, dtype=torch.int64), update=self.update,
                    renoise=self.renoise)


@torch.no_grad()
def sample_extension_chunk(model, prefix: torch.Tensor, noisy_frames: int, *, positive: torch.Tensor,
                           negative: torch.Tensor | None = None, steps: int = V2V_STEPS, shift: float = V2V_SHIFT,
                           cfg: float = 1.0, seed: int = 0, solver: str = "unipc",
                           callback: StepCallback | None = None) -> torch.Tensor:
    """prefix [1, 16, P, h, w] clean latents -> [1, 16, P + noisy_frames, h, w] with the prefix unchanged."""
    check_v3_model(model, "Video extension")
    check_guidance(cfg=cfg)
    noise = seeded_noise((1, prefix.shape[1], noisy_frames, *prefix.shape[3:]), seed)
    x = torch.cat([prefix.float().cpu(), noise], dim=2).to(_device(model))
    schedule = PrefixSchedule(flow_grid(steps, shift), prefix.shape[2], x.shape[2])
    return sample(WanDenoiser(model, positive, negative, CFG(cfg)), x, schedule, solver, callback).cpu()


def _clip_size(clip, frames: int, what: str, resolution: str, height, width) -> tuple[int, int]:
    """(height, width) of the output for an IMAGE clip of at least `frames` frames (bucket or explicit size)."""
    clip = check_image(clip, what)
    if clip.shape[0] < frames:
        raise SkyReelsInputError(
            f"{what} has {clip.shape[0]} frames; this mode uses its last {frames} frames as the condition. "
            f"Give a clip of at least {frames} frames."
        )
    return _output_size(clip, resolution, height, width)


def _clip_pixels(clip, frames: int, what: str, resolution: str, height, width) -> torch.Tensor:
    """The last `frames` frames of an IMAGE clip as VAE video [1, 3, frames, H, W] at the bucket / explicit size.
    Fitted by centre crop + resize (the pack's one fit; the reference stretches with nearest-neighbour)."""
    height, width = _clip_size(clip, frames, what, resolution, height, width)
    return pixels_to_video(fit_crop(check_image(clip, what)[-frames:], height, width))


def check_extension(model, clip, *, duration: int = 5, resolution: str = "720P", width: int | None = None,
                    height: int | None = None) -> list[int]:
    """Every extension input, checked before any VAE or model call: the noisy latent frames of each chunk."""
    check_v3_model(model, "Video extension")
    _check_duration(duration, EXTENSION_SECONDS, "Video extension", True)
    _clip_size(clip, PREFIX_FRAMES, "The clip to extend", resolution, height, width)
    return extension_chunks(duration)


def _chunk_callback(callback: StepCallback | None, chunk: int, chunks: int) -> StepCallback | None:
    """A chunk's callback(step, total, x0) -> callback(done, total over all chunks, x0)."""
    if callback is None:
        return None
    return lambda step, total, x0: callback(chunk * total + step, chunks * total, x0)


@torch.no_grad()
def extend_video(model, vae, clip: torch.Tensor, *, positive: torch.Tensor, negative: torch.Tensor | None = None,
                 duration: int = 5, resolution: str = "720P", width: int | None = None, height: int | None = None,
                 seed: int = 0, keep_input: bool = False, callback: StepCallback | None = None,
                 vae_callback: Callable[[int, int], None] | None = None, **kwargs) -> torch.Tensor:
    """SkyReels-V3 single-shot extension: IMAGE clip [N >= 25, H, W, 3] -> the NEW frames only (IMAGE, 24 fps).

    Chunks of ~5 s (`extension_chunks`; 5 s -> 132 frames): each starts from the last 25 frames so far, encoded
    to 7 clean latents (re-encoded from the decoded pixels, as the reference), with the same seed every chunk.
    keep_input: return the whole clip (fitted to the output size) followed by the new frames.
    callback(done, total, x0) counts the steps of all chunks (chunk k of n covers (k-1)*steps+1 .. k*steps);
    vae_callback(done, total) is called after every time chunk of each VAE encode/decode (raise in it to cancel
    between steps: at 720p a chunk's decode takes as long as several steps). kwargs: steps, shift, cfg, solver
    (see `sample_extension_chunk`).
    """
    chunks = check_extension(model, clip, duration=duration, resolution=resolution, width=width, height=height)
    pixels = _clip_pixels(clip, PREFIX_FRAMES, "The clip to extend", resolution, height, width)
    new = []
    for k, noisy in enumerate(chunks):
        prefix = vae.encode(pixels, callback=vae_callback)
        latent = sample_extension_chunk(model, prefix, noisy, positive=positive, negative=negative, seed=seed,
                                        callback=_chunk_callback(callback, k, len(chunks)), **kwargs)
        video = vae.decode(latent, callback=vae_callback)
        new.append(video[:, :, PREFIX_FRAMES:])
        pixels = video[:, :, -PREFIX_FRAMES:]
    frames = _to_image(torch.cat(new, dim=2))
    return _after_clip(clip, frames) if keep_input else frames


def _after_clip(clip: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """The whole clip (centre-cropped and resized to the new frames' size) followed by the new frames."""
    height, width = frames.shape[1:3]
    return torch.cat([_to_image(pixels_to_video(fit_crop(check_image(clip, "clip"), height, width))), frames])


# shot switching


@torch.no_grad()
def sample_shot_switch(model, condition: torch.Tensor, frames: int, *, positive: torch.Tensor,
                       negative: torch.Tensor | None = None, steps: int = V2V_STEPS, shift: float = V2V_SHIFT,
                       cfg: float = 1.0, seed: int = 0, solver: str = "unipc",
                       callback: StepCallback | None = None) -> torch.Tensor:
    """condition [1, 16, K, h, w] (the end of the previous shot) -> the new shot's latent [1, 16, (frames-1)/4+1, h, w].

    The condition frames follow the noisy ones at RoPE positions 1024.. with t = 0 and are not returned.
    """
    check_v3_model(model, "Shot switching")
    check_guidance(cfg=cfg)
    shape = (1, condition.shape[1], latent_frames(frames), *condition.shape[3:])
    denoiser = ContextFramesDenoiser(model, positive, negative, CFG(cfg), {"cond": condition}, clean_time=True,
                                     position_start=SHOT_POSITION_START)
    x = seeded_noise(shape, seed).to(_device(model))
    return sample(denoiser, x, FlowSchedule(flow_grid(steps, shift)), solver, callback).cpu()


@torch.no_grad()
def switch_shot(model, vae, clip: torch.Tensor, *, positive: torch.Tensor, negative: torch.Tensor | None = None,
                duration: int = 5, resolution: str = "720P", width: int | None = None, height: int | None = None,
                seed: int = 0, keep_input: bool = False, vae_callback: Callable[[int, int], None] | None = None,
                **kwargs) -> torch.Tensor:
    """SkyReels-V3 shot switching: IMAGE clip -> the next shot, IMAGE [duration*24+1, H, W, 3] at 24 fps.

    duration 2-5 s; condition = the clip's last 9/17/25/33 frames. Put the shot type in the prompt
    (`shot_prompt`). keep_input: return the whole clip (fitted to the output size) and then the new shot, one
    video with the cut in it. vae_callback: as in `extend_video`. kwargs: steps, shift, cfg, solver, callback (see
    `sample_shot_switch`).
    """
    check_shot_switch(model, clip, duration=duration, resolution=resolution, width=width, height=height)
    pixels = _clip_pixels(clip, SHOT_CONDITION_FRAMES[duration], "The clip before the cut", resolution, height, width)
    condition = vae.encode(pixels, callback=vae_callback)
    latent = sample_shot_switch(model, condition, duration * FPS + 1, positive=positive, negative=negative,
                                seed=seed, **kwargs)
    frames = _to_image(vae.decode(latent, callback=vae_callback))
    return _after_clip(clip, frames) if keep_input else frames


def check_shot_switch(model, clip, *, duration: int = 5, resolution: str = "720P", width: int | None = None,
                      height: int | None = None) -> tuple[int, int]:
    """Every shot-switch input, checked before any VAE or model call: the output (height, width)."""
    check_v3_model(model, "Shot switching")
    duration = _check_duration(duration, tuple(SHOT_CONDITION_FRAMES), "Shot switching", False)
    return _clip_size(clip, SHOT_CONDITION_FRAMES[duration], "The clip before the cut", resolution, height, width)


def extension_frames(duration: int) -> int:
    """New frames `extend_video` returns for `duration` seconds (5 s -> 132)."""
    prefix = latent_frames(PREFIX_FRAMES)
    return sum(pixel_frames(prefix + n) - PREFIX_FRAMES for n in extension_chunks(duration))
