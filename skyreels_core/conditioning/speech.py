"""Speech features -> what the talking-avatar DiT is given: each video frame's context window, and the padding of the
features to whole windows (research/skyreels_v3.md §3.4, §8.3). Features are the speech encoder's [T, layers, C]
at 25 per second (encoders/wav2vec2.py `encode_speech`)."""

from __future__ import annotations

import torch

from ..errors import SkyReelsInputError

__all__ = ["audio_windows", "pad_reversed"]


def audio_windows(features: torch.Tensor, start: int, frames: int = 81, context: int = 5) -> torch.Tensor:
    """features [T, L, C] -> [1, frames, context, L, C]: video frame start+f gets features start+f-2 .. start+f+2
    (context 5), indices clamped to [0, T-1], so the first and last frames repeat the edge feature."""
    if features.ndim != 3 or features.shape[0] == 0:
        raise SkyReelsInputError(f"audio_windows expects features [T, layers, dim], got {tuple(features.shape)}.")
    if context < 1 or context % 2 == 0 or frames < 1:
        raise SkyReelsInputError(f"audio_windows needs frames >= 1 and an odd context, got {frames}, {context}.")
    half = context // 2
    centre = torch.arange(start, start + frames, device=features.device)[:, None]
    offsets = torch.arange(-half, half + 1, device=features.device)[None]
    index = (centre + offsets).clamp(0, features.shape[0] - 1)
    return features[index].unsqueeze(0)


def pad_reversed(features: torch.Tensor, length: int) -> torch.Tensor:
    """[T, ...] -> [length, ...]: appends the time-reversed tail (features[T-1], features[T-2], ...), repeating
    the reflection if length > 2T, as the avatar pipeline pads the audio to whole windows (research 8.3 step 3)."""
    if length <= features.shape[0]:
        return features[:length]
    while features.shape[0] < length:
        tail = features.flip(0)[: length - features.shape[0]]
        features = torch.cat([features, tail])
    return features
