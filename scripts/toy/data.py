"""Procedural toy clips: one coloured shape moving on a plain background, with a caption and its bounce events.

    clip = render_clip(Combo("circle", "red", "black", "left"), seed=3)
    clip.video     # float32 [3, 17, 64, 64] in [-1, 1] (the Wan VAE's pixel range), 24 fps
    clip.caption   # "a red circle moves left on a black background"
    clip.centres   # float32 [17, 2] object centre (x, y) in pixels, per frame
    clip.events    # bounce frames (the first frame after the object reflected off a wall), for sounds

Everything is generated from a seed (no files, no downloads) and is the same on every machine: positions come
from `random.Random(seed)` and the pixels from a closed-form anti-aliased signed distance (1 px soft edge).
`HELD_OUT` is a fixed set of (shape, colour, background, motion) combinations never used for training; the quality
tests prompt with them, so they measure whether the model composes the caption's words, not a memorised clip.
`measure_object` is the inverse used on decoded videos: per-frame object mask, centroid and mean colour.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

import torch

__all__ = [
    "BACKGROUNDS", "CFG_SCALE", "COLOURS", "FPS", "FRAMES", "HELD_OUT", "MOTIONS", "NEGATIVE", "SHAPES", "SHIFT",
    "SIZE", "STEPS",
    "Combo", "ObjectTrack", "ToyClip", "all_combos", "caption", "centroid_velocity", "measure_object",
    "render_clip", "sample_clips", "split_combos",
]

FRAMES = 17  # 4n + 1: 5 latent frames
SIZE = 64  # pixels; 8 x 8 latent, 4 x 4 DiT tokens per latent frame
FPS = 24
SHAPES = ("circle", "square", "triangle")
# RGB in 0..1. Saturated and far apart, so a decoded colour is named by its nearest entry without doubt.
COLOURS = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.25, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
BACKGROUNDS = {"black": (0.05, 0.05, 0.05), "gray": (0.5, 0.5, 0.5), "white": (0.95, 0.95, 0.95)}
# "bounces": moves sideways fast and reflects off the left / right walls (the sound events of the V4 toy data).
MOTIONS = ("left", "right", "up", "down", "bounces")
# Recommended sampling settings of the toy models (the quality tests and the README use them).
STEPS, SHIFT, CFG_SCALE, NEGATIVE = 12, 3.0, 5.0, ""
_DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class Combo:
    """What a clip shows (one value of each attribute); `caption` is its sentence."""

    shape: str
    colour: str
    background: str
    motion: str

    def __post_init__(self):
        for name, value, valid in (("shape", self.shape, SHAPES), ("colour", self.colour, tuple(COLOURS)),
                                   ("background", self.background, tuple(BACKGROUNDS)),
                                   ("motion", self.motion, MOTIONS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}.")

    @property
    def caption(self) -> str:
        return caption(self)


def caption(combo: Combo) -> str:
    """The grammar: "a <colour> <shape> moves <direction> on a <background> background", or "... bounces on ..."."""
    verb = "bounces" if combo.motion == "bounces" else f"moves {combo.motion}"
    return f"a {combo.colour} {combo.shape} {verb} on a {combo.background} background"


def all_combos() -> tuple[Combo, ...]:
    """Every combination: 3 shapes x 4 colours x 3 backgrounds x 5 motions = 180."""
    return tuple(Combo(*c) for c in itertools.product(SHAPES, COLOURS, BACKGROUNDS, MOTIONS))


# Never trained on. Each value of every attribute stays in many training combinations, and each held-out combo
# differs from a trained one in a single attribute. The quality tests use the first four (red vs blue, left vs
# right on the same shape and background).
HELD_OUT: tuple[Combo, ...] = (
    Combo("circle", "red", "gray", "left"),
    Combo("circle", "blue", "gray", "left"),
    Combo("square", "red", "black", "right"),
    Combo("square", "blue", "black", "right"),
    Combo("triangle", "green", "white", "up"),
    Combo("triangle", "yellow", "black", "down"),
    Combo("square", "green", "gray", "bounces"),
    Combo("circle", "yellow", "white", "right"),
)


def split_combos() -> tuple[tuple[Combo, ...], tuple[Combo, ...]]:
    """(train, held_out) combinations."""
    held = set(HELD_OUT)
    return tuple(c for c in all_combos() if c not in held), HELD_OUT


@dataclass(frozen=True)
class ToyClip:
    """video: float32 [3, F, H, W] in [-1, 1]; centres: float32 [F, 2] (x, y) pixels; events: bounce frames."""

    video: torch.Tensor
    combo: Combo
    centres: torch.Tensor
    events: tuple[int, ...]
    radius: float
    fps: int = FPS

    @property
    def caption(self) -> str:
        return self.combo.caption


def _trajectory(motion: str, rng: random.Random, frames: int, size: int, radius: float):
    """Object centres [(x, y)] per frame and the bounce frames. Straight motions start in the half of the frame
    they move away from, at 1-2.5 px/frame (64 px scale), so the object stays mostly visible; bounces move
    sideways at 2.5-4 px/frame between the walls."""
    scale = size / SIZE
    lo, hi = radius, size - radius
    if motion == "bounces":
        x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
        vx = rng.uniform(2.5, 4.0) * scale * rng.choice((-1.0, 1.0))
        centres, events = [(x, y)], []
        for frame in range(1, frames):
            x += vx
            if x < lo or x > hi:  # reflect off the wall: the position folds back, the velocity flips
                wall = lo if x < lo else hi
                x, vx = 2 * wall - x, -vx
                events.append(frame)
            centres.append((x, y))
        return centres, tuple(events)
    dx, dy = _DIRECTIONS[motion]
    speed = rng.uniform(1.0, 2.5) * scale
    along = rng.uniform(size / 2, hi)  # distance from the wall it moves towards
    across = rng.uniform(lo, hi)
    if dx:
        x0, y0 = (along if dx < 0 else size - along), across
    else:
        x0, y0 = across, (along if dy < 0 else size - along)
    return [(x0 + dx * speed * f, y0 + dy * speed * f) for f in range(frames)], ()


def _coverage(shape: str, centres: torch.Tensor, radius: float, size: int) -> torch.Tensor:
    """Anti-aliased coverage [F, H, W] in 0..1 of the shape at each centre (1 px linear edge on the SDF)."""
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    px = grid.view(1, 1, size) - centres[:, 0].view(-1, 1, 1)
    py = grid.view(1, size, 1) - centres[:, 1].view(-1, 1, 1)
    if shape == "circle":
        dist = torch.sqrt(px**2 + py**2) - radius
    elif shape == "square":  # same area as the circle
        dist = torch.maximum(px.abs(), py.abs()) - radius * math.sqrt(math.pi) / 2
    else:  # equilateral triangle pointing up, same area as the circle; inradius = circumradius / 2
        inradius = radius * math.sqrt(math.pi / (3 * math.sqrt(3)))
        normals = ((0.0, 1.0), (math.sqrt(3) / 2, -0.5), (-math.sqrt(3) / 2, -0.5))
        dist = torch.stack([nx * px + ny * py for nx, ny in normals]).amax(0) - inradius
    return (0.5 - dist).clamp(0.0, 1.0)


def render_clip(combo: Combo, seed: int, frames: int = FRAMES, size: int = SIZE) -> ToyClip:
    """One clip of `combo`; position, size and speed drawn from `seed` (the same clip on every machine)."""
    rng = random.Random(seed)
    radius = rng.uniform(0.13, 0.19) * size
    points, events = _trajectory(combo.motion, rng, frames, size, radius)
    centres = torch.tensor(points, dtype=torch.float32)
    cover = _coverage(combo.shape, centres, radius, size)[None]  # [1, F, H, W]
    fg = torch.tensor(COLOURS[combo.colour]).view(3, 1, 1, 1)
    bg = torch.tensor(BACKGROUNDS[combo.background]).view(3, 1, 1, 1)
    video = (bg + (fg - bg) * cover) * 2.0 - 1.0
    return ToyClip(video.contiguous(), combo, centres, events, radius)


def sample_clips(count: int, seed: int, combos: tuple[Combo, ...] | None = None, frames: int = FRAMES,
                 size: int = SIZE) -> list[ToyClip]:
    """`count` clips of combinations drawn uniformly from `combos` (default: the training split), seeded."""
    combos = combos or split_combos()[0]
    rng = random.Random(seed)
    return [render_clip(rng.choice(combos), rng.getrandbits(32), frames, size) for _ in range(count)]


# -- measuring decoded videos ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectTrack:
    """Per frame: centres [F, 2] (x, y) px (NaN where no object), colour [F, 3] object mean RGB 0..1,
    area [F] object pixels, background [F, 3] RGB 0..1."""

    centres: torch.Tensor
    colour: torch.Tensor
    area: torch.Tensor
    background: torch.Tensor

    def mean_colour(self) -> torch.Tensor:
        """Area-weighted object colour over the clip, RGB 0..1 [3]."""
        weights = self.area / self.area.sum().clamp_min(1e-6)
        return (self.colour.nan_to_num(0.0) * weights[:, None]).sum(0)


def measure_object(video: torch.Tensor, threshold: float = 0.25) -> ObjectTrack:
    """Find the object in a decoded clip [3, F, H, W] in [-1, 1].

    The background of each frame is its per-channel median (the object covers well under half of a frame); an
    object pixel differs from it by more than `threshold` (RGB 0..1, Euclidean).
    """
    rgb = (video.float().clamp(-1, 1) + 1) / 2  # [3, F, H, W]
    channels, frames, height, width = rgb.shape
    background = rgb.flatten(2).median(dim=2).values  # [3, F]
    diff = (rgb - background[:, :, None, None]).norm(dim=0)  # [F, H, W]
    mask = (diff > threshold).float()
    area = mask.sum((1, 2))
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1) + 0.5
    safe = area.clamp_min(1.0)
    centres = torch.stack([(mask * xs).sum((1, 2)) / safe, (mask * ys).sum((1, 2)) / safe], dim=1)
    colour = (rgb * mask[None]).sum((2, 3)).T / safe[:, None]
    empty = area < 4
    centres[empty] = float("nan")
    colour[empty] = float("nan")
    return ObjectTrack(centres, colour, area, background.T.contiguous())


def centroid_velocity(track: ObjectTrack) -> torch.Tensor:
    """Least-squares (vx, vy) in px/frame of the visible frames' centroids ([2]; NaN with < 2 visible frames)."""
    visible = ~track.centres[:, 0].isnan()
    if int(visible.sum()) < 2:
        return torch.full((2,), float("nan"))
    t = torch.arange(track.centres.shape[0], dtype=torch.float32)[visible]
    c = track.centres[visible]
    t = t - t.mean()
    return (t[:, None] * (c - c.mean(0))).sum(0) / (t**2).sum()
