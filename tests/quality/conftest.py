"""Quality tests: the trained toy models (toy_models/, made by scripts/train_toy.py) run through the pack's own
loaders, pipelines and VAE decode; the decoded videos are measured with scripts/toy/data.py.

Random-weight checkpoints cannot pass these: they check what a user sees (the prompt is followed, the start image
is the first frame, long videos have no seams), so a sampler that denoises the wrong way fails them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.toy import data  # noqa: E402
from skyreels_core.encoders.umt5 import load_text_encoder  # noqa: E402
from skyreels_core.models.video_vae import load_video_vae  # noqa: E402
from skyreels_core.models.wan_dit_loader import load_dit  # noqa: E402
from skyreels_core.pipelines.video import sample_video  # noqa: E402

TOY = REPO / "toy_models"
FILES = {
    "text": TOY / "text_encoders" / "umt5_xxl_toy.safetensors",
    "vae": TOY / "vae" / "wan_2.1_vae_toy.safetensors",
    "dit": TOY / "diffusion_models" / "skyreels_v2_toy_t2v_df.safetensors",
}
STEPS, SHIFT, CFG_SCALE, NEGATIVE = data.STEPS, data.SHIFT, data.CFG_SCALE, data.NEGATIVE


@dataclass(frozen=True)
class Toy:
    """The loaded toy family and the sampling helpers the tests share."""

    text: object
    vae: object
    dit: object

    def context(self, prompt: str) -> torch.Tensor:
        return self.text.encode([prompt]).float()

    @torch.no_grad()
    def t2v(self, prompt: str, seed: int, cfg: float = CFG_SCALE, frames: int = data.FRAMES) -> torch.Tensor:
        """Text-to-video through `sample_video` + VAE decode: [3, F, 64, 64] in [-1, 1]."""
        latent = torch.zeros(1, 16, (frames - 1) // 4 + 1, data.SIZE // 8, data.SIZE // 8)
        out = sample_video(self.dit, latent, positive=self.context(prompt), negative=self.context(NEGATIVE),
                           steps=STEPS, cfg=cfg, shift=SHIFT, seed=seed)
        return self.vae.decode(out)[0]


@pytest.fixture(scope="session")
def toy() -> Toy:
    missing = [str(p) for p in FILES.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"toy model files missing: {missing}; run `python scripts/train_toy.py --seed 0`.")
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    return Toy(load_text_encoder(FILES["text"]), load_video_vae(FILES["vae"]), load_dit(FILES["dit"]))
