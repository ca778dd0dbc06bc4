"""Cancel with fast sampling steps, on every tested ComfyUI version.

From ComfyUI 0.30 `ProgressBar.update_absolute` drops updates less than 100 ms (and 0.5 %) apart, and ComfyUI checks
Cancel only inside an update it sends; the pack checks Cancel itself at every step (nodes/comfy_bridge.py). Steps
here take a few tens of ms (well under 100 ms), so the progress bar drops most updates on 0.30; the pack's own
"skyreels.progress" event still reports every step, which is what the test counts. After Cancel the sampler's
status line is blanked (text "", ended "cancelled").
"""

from __future__ import annotations

import statistics
import time

STEPS = 200  # a few seconds in all: Cancel must come long before the end
CANCEL_AT = 10  # the first steps include warm-up
FAST = {"width": 32, "height": 32, "frames": 5}
SIZE_NODES = ("SkyReelsEmptyVideoLatent", "SkyReelsImageToVideo")


def fast_sampling(api: dict, steps: int) -> str:
    """Set a tiny size and many steps (what a user edits in the widgets); returns the sampler's node id."""
    (sampler,) = [nid for nid, n in api.items() if n["class_type"] == "SkyReelsSampler"]
    for node in api.values():
        if node["class_type"] in SIZE_NODES:
            node["inputs"].update(FAST)
    api[sampler]["inputs"].update(steps=steps, cfg=1.0)  # cfg 1: one model pass per step
    return sampler


def test_cancel_with_fast_steps_stops_within_one_step_and_clears_the_status(api_workflow, comfy_client, tiny_models):
    api = api_workflow("skyreels_v2_t2v")
    sampler = fast_sampling(api, STEPS)
    steps: list[tuple[int, str]] = []  # (step, text) of the sampler's skyreels.progress events, in order
    arrivals: list[float] = []
    timing: dict[str, float] = {}

    def on_event(kind, data):
        if kind != "skyreels.progress" or str(data.get("node")) != sampler:
            return
        steps.append((data["step"], data["text"]))
        arrivals.append(time.monotonic())
        if data["step"] == CANCEL_AT and "interrupt_s" not in timing:
            t0 = time.monotonic()
            comfy_client.interrupt()  # returns once the server has set its Cancel flag
            timing["interrupt_s"] = time.monotonic() - t0
            timing["s_per_step"] = statistics.median(b - a for a, b in zip(arrivals[-6:-1], arrivals[-5:], strict=True))

    result = comfy_client.run(api, on_event=on_event, timeout=600)
    assert result.status == "interrupted", (result.status, steps[-5:])
    assert timing, f"no step {CANCEL_AT} event from the sampler; events {steps[:5]}"
    # (steps well under 100 ms are what 0.30 throttles; on a loaded machine they may be slower, which keeps the
    # test valid: the stop must still come within a step)
    reported = [s for s, text in steps if text]
    # the step that was running when Cancel arrived may finish (and one more when the request was slow); without
    # a check at every step ComfyUI 0.30 would run on until the next sent progress update (>= 100 ms later)
    slack = 1 + int(timing["interrupt_s"] / timing["s_per_step"])
    assert max(reported) <= CANCEL_AT + 1 + slack, (reported[-5:], timing)
    assert max(reported) < STEPS
    # the status line is blanked after Cancel: the last event has no text and says why
    last_step, last_text = steps[-1]
    assert last_text == "" and last_step == 0, (steps[-3:], [t for t, _ in result.events][-4:])
    (ended,) = [d for k, d in result.custom_events if k == "skyreels.progress" and d.get("ended")]
    assert ended["ended"] == "cancelled" and str(ended["node"]) == sampler
    # the server runs the next prompt normally
    api = api_workflow("skyreels_v2_t2v")
    fast_sampling(api, 2)
    comfy_client.run(api, timeout=300).raise_for_status()
