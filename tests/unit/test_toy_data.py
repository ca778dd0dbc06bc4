"""The procedural toy clips (scripts/toy/data.py): seeded, captioned as drawn, and measurable back."""

from __future__ import annotations

import math

import pytest
import torch

from scripts.toy import data


def test_same_seed_same_clip_other_seed_other_clip():
    combo = data.Combo("square", "green", "white", "down")
    a, b, c = data.render_clip(combo, 5), data.render_clip(combo, 5), data.render_clip(combo, 6)
    assert torch.equal(a.video, b.video)
    assert not torch.equal(a.video, c.video)
    assert a.video.shape == (3, data.FRAMES, data.SIZE, data.SIZE) and a.video.dtype == torch.float32
    assert float(a.video.min()) >= -1.0 and float(a.video.max()) <= 1.0


def test_caption_grammar():
    assert data.Combo("circle", "red", "black", "left").caption == "a red circle moves left on a black background"
    assert data.Combo("triangle", "blue", "gray", "bounces").caption == "a blue triangle bounces on a gray background"
    with pytest.raises(ValueError, match="colour must be one of"):
        data.Combo("circle", "purple", "black", "left")


def test_split_holds_out_combos_but_keeps_every_value():
    train, held = data.split_combos()
    assert len(train) + len(held) == len(data.all_combos()) == 180
    assert not set(train) & set(held)
    for attribute, values in (("shape", data.SHAPES), ("colour", data.COLOURS), ("background", data.BACKGROUNDS),
                              ("motion", data.MOTIONS)):
        assert {getattr(c, attribute) for c in train} == set(values)
    clips = data.sample_clips(40, seed=1)
    assert all(c.combo in set(train) for c in clips)


@pytest.mark.parametrize("motion, sign", [("left", (-1, 0)), ("right", (1, 0)), ("up", (0, -1)), ("down", (0, 1))])
def test_straight_motion_measured_back(motion, sign):
    """measure_object on the rendered pixels recovers the drawn centres (< 0.5 px while fully visible), the
    colour, and the direction."""
    clip = data.render_clip(data.Combo("circle", "yellow", "gray", motion), seed=11)
    track = data.measure_object(clip.video)
    inside = ((clip.centres > clip.radius + 1) & (clip.centres < data.SIZE - clip.radius - 1)).all(1)
    assert int(inside.sum()) >= 5
    assert float((track.centres[inside] - clip.centres[inside]).abs().max()) < 0.5
    velocity = data.centroid_velocity(track)
    for axis in range(2):
        if sign[axis]:
            assert sign[axis] * float(velocity[axis]) > 0.9  # speeds are 1 - 2.5 px/frame
        else:
            assert abs(float(velocity[axis])) < 0.2
    expected = torch.tensor(data.COLOURS["yellow"])
    assert float((track.mean_colour() - expected).abs().max()) < 0.08  # anti-aliased edge pixels blend in
    assert clip.events == ()


def test_bounce_events_are_velocity_flips():
    for seed in range(20):
        clip = data.render_clip(data.Combo("triangle", "red", "black", "bounces"), seed)
        vx = clip.centres[1:, 0] - clip.centres[:-1, 0]
        flips = tuple(f for f in range(1, len(vx)) if vx[f] * vx[f - 1] < 0)  # frame f is a turning point
        # the turning point is the reflection frame or the one before it (the fold may land short of it); a
        # bounce at the first / last step may not show as a sign change of the frame-to-frame displacement
        assert all(any(abs(f - e) <= 1 for e in clip.events) for f in flips), (flips, clip.events)
        interior = [e for e in clip.events if 1 < e < data.FRAMES - 2]
        assert all(any(abs(f - e) <= 1 for f in flips) for e in interior), (flips, clip.events)
        assert float(clip.centres[:, 0].min()) >= clip.radius - 1e-4
        assert float(clip.centres[:, 0].max()) <= data.SIZE - clip.radius + 1e-4
        assert float(clip.centres[:, 1].std()) < 1e-4  # no vertical motion
    assert any(data.render_clip(data.Combo("circle", "red", "black", "bounces"), s).events for s in range(5))


def test_shapes_have_equal_area():
    areas = {}
    for shape in data.SHAPES:
        clip = data.render_clip(data.Combo(shape, "blue", "white", "up"), seed=2)
        track = data.measure_object(clip.video)
        areas[shape] = float(track.area[0])
        assert math.isclose(areas[shape], math.pi * clip.radius**2, rel_tol=0.12)


def test_empty_frame_is_nan():
    video = torch.full((3, 5, 16, 16), -0.5)
    track = data.measure_object(video)
    assert bool(track.centres.isnan().all()) and float(track.area.sum()) == 0
    assert bool(data.centroid_velocity(track).isnan().all())
