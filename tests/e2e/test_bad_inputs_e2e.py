"""Bad inputs through the real server (issue #9): an API prompt with a value the models cannot take ends in an
execution error carrying the pack's message (or is rejected at validation), and the server serves the next valid
prompt. The unit tests (tests/unit/test_bad_inputs*.py) cover every case; these check the path through ComfyUI."""

from __future__ import annotations

import pytest
from comfy_client import PromptRejected

GOOD = {"1": {"class_type": "SkyReelsEmptyVideoLatent", "inputs": {"width": 32, "height": 32, "frames": 5, "batch": 1}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def _preview(class_type: str, **inputs) -> dict:
    return {"1": {"class_type": class_type, "inputs": inputs}, "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


CASES = [
    pytest.param(_preview("SkyReelsEmptyVideoLatent", width=4096, height=4096, frames=1025, batch=64),
                 "needs about 12300.0 GiB", id="latent-too-large"),
    pytest.param(_preview("SkyReelsV4EmptyAVLatent", width=32, height=32, frames=9, fps=float("nan"), batch=1),
                 "fps must be a positive number", id="fps-nan"),
    pytest.param(_preview("SkyReelsV4EmptyAVLatent", width=32, height=32, frames=1025, fps=1.0, batch=1),
                 "longer than the 120 s", id="audio-too-long"),
    pytest.param(_preview("SkyReelsV4TextEncoderLoader", mllm_name="../../../../etc", layers="-1"),
                 "mllm_name = '../../../../etc' is not one of its options", id="mllm-path-traversal"),
    pytest.param(_preview("SkyReelsV4TextEncoderLoader", mllm_name="/etc", layers="-1"),
                 "mllm_name = '/etc' is not one of its options", id="mllm-absolute-path"),
    pytest.param(_preview("SkyReelsTextEncoderLoader", text_encoder_name="umt5_xxl_tiny.safetensors",
                          tokenizer="/etc"), "tokenizer = '/etc' is not one of its options", id="tokenizer-path"),
    pytest.param(_preview("SkyReelsModelLoader", model_name="skyreels_v2_t2v_tiny.safetensors", weight_dtype="fp64",
                          attention="auto"), "weight_dtype = 'fp64' is not one of its options", id="weight-dtype"),
    pytest.param(_preview("SkyReelsVAELoader", vae_name=None), "vae_name = None is not one of its options",
                 id="combo-null"),
]


@pytest.mark.parametrize(("prompt", "message"), CASES)
def test_bad_input_names_the_fix_and_the_next_prompt_runs(comfy_client, tiny_models, prompt, message):
    try:
        result = comfy_client.run(prompt, timeout=120)
    except PromptRejected as exc:  # ComfyUI's own validation refused it first: also fine, never a crash
        assert "1" in exc.node_errors, str(exc)
    else:
        assert result.status == "error", result.status
        assert result.error["node_id"] == "1"
        assert message in result.error["exception_message"], result.error["exception_message"]
        assert result.error["exception_type"].endswith(("SkyReelsInputError", "ValueError")), result.error
    comfy_client.run(GOOD, timeout=120).raise_for_status()
