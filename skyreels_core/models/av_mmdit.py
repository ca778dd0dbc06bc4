"""SkyReels-V4 dual-stream audio-video MMDiT (arXiv 2602.21818 §3; weights unreleased: implemented from the paper).

Two towers of equal width `dim` (video, audio). Each has M dual-stream blocks (modality and text tokens with
separate adaLN/QKV/output/FFN, one joint self-attention) then N single-stream blocks (shared weights over
[modality; text] plus a text cross-attention). After block i of both towers, the bidirectional audio<->video
cross-attention runs (audio reads video, then video reads the updated audio). Blocks live in `av_blocks.py`.

Documented choices (not in the paper):
  - Time: `timestep` = 1000 * sigma (sigma 1 = noise) and the output is the velocity eps - x0, like Wan.
    `paper_time_convention=True` embeds 1000 * (1 - sigma) and negates the output (paper eq. 6: t = 1 clean,
    target x0 - eps), so such a checkpoint plugs into the same samplers.
  - RoPE time axis in video-latent-frame units (`av_time_positions`); audio tokens at (t, 0, 0); text tokens
    not rotated. References (clean, per-frame timestep 0) are prepended at negative times and stripped.
  - One `text_embedding` MLP (Wan's) shared by both towers; each dual block then has its own text weights.
  - The audio<->video cross-attention runs on TARGET tokens only: references of the two modalities are not
    time-aligned (a face image, a voice sample). It is pre-normed, gated by a learned [dim] vector, unmodulated.
  - Audio patch embedding: one Linear per latent frame. Single-stream text cross-attention: modality tokens only.
  - Hi-res keyframes in the base model (paper §4.5: the base predicts low-res latents for all frames together with
    hi-res keyframe latents; how they enter is not disclosed): `VideoStream.keyframes` [B, 33, K, H, W] ([noisy |
    condition | mask] at the keyframe resolution) go through the SAME patch embedding and are appended after the
    low-res target tokens, at the sample's timestep. RoPE: time = the keyframe's low-res latent index, rows and
    columns scaled by (h / H, w / W) (token grids) so a keyframe spans the same extent as a low-res frame
    (`keyframe_positions`; corner-aligned like the integer grid). They take part in the audio<->video
    cross-attention at their time (they are video tokens of a known instant; lip detail lives at high resolution).
    The head runs over them and their velocity is returned separately. K = 0 is exactly the model without them.
  - Refiner (paper §4.5): a VIDEO_ONLY model of this class ("initialised from the pretrained video model": the same
    `video.*`, `text_embedding`, `time_*` keys, the 33-channel patch embedding [noisy | guide | mask]) with
    `attention_window` set. The paper uses VSA (arXiv 2505.13389), a TRAINABLE coarse-to-fine block-sparse
    attention (pooled cube attention selects the top-K key cubes per query cube, then fine attention inside them).
    We implement its fixed-block form: 3-D windows of `attention_window` TOKENS (frames, rows, cols; 0 = the whole
    axis) over the target token grid, regular on even blocks and shifted by half a window on odd blocks (SeedVR2's
    alternating windows, non-cyclic: ragged edge windows). A windowed query sees its window plus every text token
    (and references / keyframes, if any); text queries stay dense. RoPE stays global (SeedVR2 uses window-local
    RoPE; ours makes a whole-grid window exactly dense attention). A checkpoint trained with VSA would need its
    selection stage: the per-block `WindowPlan` (`nn/attention.py`) is the place to put the selected blocks.

Checkpoint key layout (`{i}` = block index 0..M+N-1; blocks 0..M-1 are dual-stream, M.. single-stream):
| key | shape | what |
|---|---|---|
| `text_embedding.{0,2}` | Linear text_dim->D, D->D | MLLM context -> width (shared by both towers) |
| `time_embedding.{0,2}`, `time_projection.1` | Linear 256->D, D->D, D->6D | shared timestep MLP (Wan) |
| `video.patch_embedding` | Conv3d 33->D, kernel (1,2,2) | [noisy 16 \\| condition 16 \\| mask 1] |
| `audio.patch_embedding` | Linear 40->D | one token per audio latent frame |
| `{video,audio}.blocks.{i}.modulation` | [1, 6, D] | adaLN table (+ time projection) |
| `{video,audio}.blocks.{i}.self_attn.{q,k,v,o,norm_q,norm_k}` | D->D, RMSNorm [D] | modality (dual) / shared (single) |
| `{video,audio}.blocks.{i}.ffn.{0,2}` | D->ffn, ffn->D | GELU-tanh FFN |
| `{video,audio}.blocks.{i}.text.{modulation,self_attn.*,ffn.*}` | as above | dual blocks: text-stream weights |
| `{video,audio}.blocks.{i}.norm3`, `.cross_attn.{q,k,v,o,norm_q,norm_k}` | LayerNorm [D], D->D | single blocks: text cross-attn |
| `av_cross.{i}.{v2a,a2v}.{q,k,v,o,norm_q,norm_k,norm,norm_kv,gate}` | D->D, [D] | v2a: q=audio kv=video; a2v: q=video kv=audio |
| `{video,audio}.head.{modulation,head}` | [1, 2, D], D->64 / D->40 | output head |
| `audio_latent_mean`, `audio_latent_std` | [40] float32 | audio latent normalisation (buffers) |
Config: JSON in safetensors metadata "skyreels.av_dit.config" (`checkpoints/metadata.py`). VIDEO_ONLY / AUDIO_ONLY
files have no `audio.*` / `video.*` (and no `av_cross.*`, and no audio buffers for VIDEO_ONLY).
The refiner is a VIDEO_ONLY file (`text_embedding`, `time_*`, `video.*` as above) whose metadata sets
`attention_window` (e.g. [8, 15, 27]); the tensors cannot show a window size, so a file without it is dense.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from ..checkpoints.io import strip_prefix
from ..checkpoints.loader import ModelSpec, load_model
from ..checkpoints.metadata import check_claims, read_config_metadata
from ..errors import CheckpointError, SkyReelsInputError
from ..nn.attention import ATTENTION_BACKENDS, WindowPlan, window_plan
from ..nn.rope import grid_positions, rope_angles
from ..shapes import AUDIO_SAMPLE_RATE, AUDIO_SAMPLES_PER_LATENT, TIME_STRIDE
from .av_blocks import AudioTower, AVCrossBlock, StreamInputs, VideoTower
from .wan_dit import TokenGrid, embed_text, embed_time, feed_forward, time_mlps

__all__ = [
    "ModelType",
    "AVDiTConfig",
    "VideoStream",
    "AudioStream",
    "AVMMDiT",
    "av_time_positions",
    "keyframe_positions",
    "audio_time_scale",
    "load_av_dit",
    "AV_DIT_SPEC",
    "param_count",
    "CONFIG_METADATA_KEY",
    "AV_DIT_KIND",
]

CONFIG_METADATA_KEY = "skyreels.av_dit.config"
AV_DIT_KIND = "av_dit"
DEFAULT_HEAD_DIM = 128  # used to infer num_heads when a file has no config metadata
_WRAPPERS = ("model.diffusion_model.", "diffusion_model.")


class ModelType(enum.Enum):
    AUDIO_VIDEO = "audio_video"
    VIDEO_ONLY = "video_only"
    AUDIO_ONLY = "audio_only"

    @property
    def has_video(self) -> bool:
        return self is not ModelType.AUDIO_ONLY

    @property
    def has_audio(self) -> bool:
        return self is not ModelType.VIDEO_ONLY


# config


@dataclass(frozen=True)
class AVDiTConfig:
    """Architecture of the AV MMDiT. Both towers share dim / heads / depth / ffn_dim (the paper's symmetry)."""

    model_type: ModelType
    dim: int
    num_heads: int
    num_dual_blocks: int
    num_single_blocks: int
    ffn_dim: int
    text_dim: int
    video_channels: int = 16
    audio_channels: int = 40
    patch_size: tuple[int, int, int] = (1, 2, 2)
    freq_dim: int = 256
    eps: float = 1e-6
    rope_theta: float = 10000.0
    paper_time_convention: bool = False
    attention_window: tuple[int, int, int] = (0, 0, 0)  # video self-attention window in tokens (f, h, w); 0 = dense

    TINY: ClassVar[AVDiTConfig]
    SMALL: ClassVar[AVDiTConfig]
    V4_GUESS: ClassVar[AVDiTConfig]
    TINY_REFINER: ClassVar[AVDiTConfig]
    REFINER_GUESS: ClassVar[AVDiTConfig]

    def __post_init__(self):
        try:
            object.__setattr__(self, "model_type", ModelType(getattr(self.model_type, "value", self.model_type)))
        except ValueError:
            raise CheckpointError(
                f"Unknown AV model_type {self.model_type!r}: expected one of {[m.value for m in ModelType]}."
            ) from None
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))
        window = tuple(self.attention_window)
        if len(window) != 3 or any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in window):
            raise CheckpointError(
                f"attention_window {self.attention_window!r} must be three whole numbers >= 0 (window size in tokens "
                f"along frames, rows, columns; 0 = the whole axis; [0, 0, 0] = dense attention), e.g. [8, 15, 27]."
            )
        object.__setattr__(self, "attention_window", window)
        if self.num_heads < 1 or self.dim % self.num_heads or (self.dim // self.num_heads) % 2:
            raise CheckpointError(
                f"dim {self.dim} does not split into {self.num_heads} heads of even width; pick num_heads with "
                f"dim % num_heads == 0 and an even head_dim (e.g. {max(1, self.dim // DEFAULT_HEAD_DIM)})."
            )
        if len(self.patch_size) != 3 or self.patch_size[0] != 1:
            raise CheckpointError(
                f"patch_size {self.patch_size} is not supported: references are prepended frame by frame, so the "
                f"temporal patch must be 1, e.g. (1, 2, 2)."
            )
        if self.num_dual_blocks < 0 or self.num_single_blocks < 0 or self.num_blocks == 0:
            raise CheckpointError(
                f"Need at least one block (dual {self.num_dual_blocks}, single {self.num_single_blocks})."
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def num_blocks(self) -> int:
        return self.num_dual_blocks + self.num_single_blocks

    @property
    def windowed(self) -> bool:
        """Whether the video tower's joint self-attention is windowed (`attention_window` not all 0)."""
        return any(self.attention_window)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> AVDiTConfig:
        return cls.from_metadata_and_state_dict({}, sd)

    @classmethod
    def from_metadata_and_state_dict(cls, metadata: dict[str, str], sd: dict[str, torch.Tensor]) -> AVDiTConfig:
        """Config from the metadata JSON, every field the tensors determine cross-checked against them.

        Without metadata the sizes are inferred; num_heads defaults to dim // 128, eps / rope_theta /
        paper_time_convention to the defaults. Raises CheckpointError naming the field on a mismatch.
        """
        stored = read_config_metadata(metadata, CONFIG_METADATA_KEY, cls)
        inferred = _infer_fields(sd)
        check_claims(stored, inferred, CONFIG_METADATA_KEY, cls)
        fields = {**stored, **{name: value for name, (value, _) in inferred.items()}}
        if "num_heads" not in fields:
            if fields["dim"] % DEFAULT_HEAD_DIM:
                raise CheckpointError(
                    f"Cannot infer num_heads: no '{CONFIG_METADATA_KEY}' metadata and dim {fields['dim']} is not a "
                    f"multiple of {DEFAULT_HEAD_DIM}. Save the file with its config metadata."
                )
            fields["num_heads"] = fields["dim"] // DEFAULT_HEAD_DIM
        return cls(**fields)


def _shape(sd: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(f"Missing tensor {key}: the file is incomplete or not a SkyReels-V4 AV model.")
    return tuple(sd[key].shape)


def _count_blocks(sd: dict[str, torch.Tensor], tower: str) -> tuple[int, int]:
    """(dual, single) block counts of a tower; dual blocks (with `text.*` weights) must come first."""
    pattern = re.compile(rf"^{tower}\.blocks\.(\d+)\.")
    indices = sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})
    if indices != list(range(len(indices))):
        raise CheckpointError(f"{tower}.blocks has gaps (found indices {indices[:8]}...). Is a shard missing?")
    dual = [i for i in indices if f"{tower}.blocks.{i}.text.modulation" in sd]
    if dual != list(range(len(dual))):
        raise CheckpointError(f"{tower}: dual-stream blocks must come first; found them at {dual}.")
    return len(dual), len(indices) - len(dual)


def _infer_fields(sd: dict[str, torch.Tensor]) -> dict[str, tuple[object, str]]:
    """{field: (value, tensor it came from)} for every field the shapes determine."""
    has_video = any(k.startswith("video.") for k in sd)
    has_audio = any(k.startswith("audio.") for k in sd)
    if not (has_video or has_audio):
        raise CheckpointError("No video.* or audio.* tensors: this is not a SkyReels-V4 AV model.")
    model_type = (
        ModelType.AUDIO_VIDEO
        if has_video and has_audio
        else (ModelType.VIDEO_ONLY if has_video else ModelType.AUDIO_ONLY)
    )
    tower = "video" if has_video else "audio"
    dim, freq_dim = _shape(sd, "time_embedding.0.weight")
    dual, single = _count_blocks(sd, tower)
    fields = {
        "model_type": (model_type, "which of video.* / audio.* exist"),
        "dim": (dim, "time_embedding.0.weight"),
        "freq_dim": (freq_dim, "time_embedding.0.weight"),
        "text_dim": (_shape(sd, "text_embedding.0.weight")[1], "text_embedding.0.weight"),
        "ffn_dim": (_shape(sd, f"{tower}.blocks.0.ffn.0.weight")[0], f"{tower}.blocks.0.ffn.0.weight"),
        "num_dual_blocks": (dual, f"{tower}.blocks.*.text.modulation"),
        "num_single_blocks": (single, f"{tower}.blocks.*"),
    }
    if has_video:
        out_ch, in_ch, *patch = _shape(sd, "video.patch_embedding.weight")
        fields["patch_size"] = (tuple(patch), "video.patch_embedding.weight")
        fields["video_channels"] = ((in_ch - 1) // 2, "video.patch_embedding.weight (2C+1 inputs)")
    if has_audio:
        fields["audio_channels"] = (_shape(sd, "audio.patch_embedding.weight")[1], "audio.patch_embedding.weight")
    if has_video and has_audio and _count_blocks(sd, "audio") != (dual, single):
        raise CheckpointError(
            f"The audio tower's blocks {_count_blocks(sd, 'audio')} differ from the video "
            f"tower's {(dual, single)}; both towers must have the same depth."
        )
    return fields


AVDiTConfig.TINY = AVDiTConfig(
    ModelType.AUDIO_VIDEO, dim=128, num_heads=2, num_dual_blocks=1, num_single_blocks=1, ffn_dim=256, text_dim=32
)
AVDiTConfig.SMALL = AVDiTConfig(  # for the CPU benchmark: head_dim 128 like the guess below
    ModelType.AUDIO_VIDEO, dim=256, num_heads=2, num_dual_blocks=2, num_single_blocks=2, ffn_dim=768, text_dim=128
)
# A GUESS (sizes undisclosed): Wan-14B-wide towers (5120 = 40 x 128, ffn 13824), 40 block indices per tower,
# text_dim = Qwen2.5-VL-7B hidden size (one layer); 39.6B parameters (79 GB in bf16). Illustrative only.
AVDiTConfig.V4_GUESS = AVDiTConfig(
    ModelType.AUDIO_VIDEO,
    dim=5120,
    num_heads=40,
    num_dual_blocks=10,
    num_single_blocks=30,
    ffn_dim=13824,
    text_dim=3584,
)
# The refiner: a video-only model with windowed attention. TINY_REFINER: 2x2x2-token windows (a tiny grid still has
# several). REFINER_GUESS (sizes undisclosed): V4_GUESS's video tower with SeedVR2's window in token units (its 720p
# reference grid of 45 x 80 tokens split 3 x 3 -> 15 x 27 tokens; 8 latent frames, i.e. ceil(30 / 4)).
AVDiTConfig.TINY_REFINER = dataclasses.replace(
    AVDiTConfig.TINY, model_type=ModelType.VIDEO_ONLY, attention_window=(2, 2, 2)
)
AVDiTConfig.REFINER_GUESS = dataclasses.replace(
    AVDiTConfig.V4_GUESS, model_type=ModelType.VIDEO_ONLY, attention_window=(8, 15, 27)
)


# positions


def audio_time_scale(fps: float) -> float:
    """Audio latent index -> position in video-latent-frame units: (1024 / 44100) s * fps / 4 frames per second."""
    return AUDIO_SAMPLES_PER_LATENT / AUDIO_SAMPLE_RATE * fps / TIME_STRIDE


def av_time_positions(num_video_latents: int, num_audio_latents: int, fps: float):
    """Temporal RoPE positions on the shared axis (units: video latent frames).

    Video latent j sits at j (its first pixel frame 4j is at 4j/fps s); audio latent k (at k*1024/44100 s) sits at
    k * (1024/44100) * fps/4, so tokens at the same second share a phase. Returns float64 ([F_v], [T_a]).
    """
    if fps <= 0:
        raise SkyReelsInputError(f"fps must be positive; got {fps}.")
    video = torch.arange(num_video_latents, dtype=torch.float64)
    audio = torch.arange(num_audio_latents, dtype=torch.float64) * audio_time_scale(fps)
    return video, audio


def _time_only(times: torch.Tensor) -> torch.Tensor:
    """[L] times -> [L, 3] positions (t, 0, 0)."""
    return torch.stack([times, torch.zeros_like(times), torch.zeros_like(times)], dim=-1)


def keyframe_positions(indices, keyframe_grid: TokenGrid, grid: TokenGrid, device=None) -> torch.Tensor:
    """RoPE positions [K * H * W, 3] (float64) of hi-res keyframe tokens in (k, row, col) order.

    Time = the keyframe's low-res latent index; row r -> r * grid.height / H and col c -> c * grid.width / W, so the
    hi-res token grid (H x W) spans the same extent as the low-res one (`grid`, h x w tokens) at fractional positions.
    """
    times = torch.tensor([float(i) for i in indices], dtype=torch.float64, device=device)
    rows = torch.arange(keyframe_grid.height, dtype=torch.float64, device=device) * (grid.height / keyframe_grid.height)
    cols = torch.arange(keyframe_grid.width, dtype=torch.float64, device=device) * (grid.width / keyframe_grid.width)
    return torch.stack(torch.meshgrid(times, rows, cols, indexing="ij"), dim=-1).reshape(-1, 3)


# inputs


@dataclass(frozen=True)
class VideoStream:
    """Video tower input. x: [B, 2C+1 = 33, F, h, w] = [noisy latent | condition latent (zeros where not
    conditioned) | mask (1 = keep)]. refs: [B, C = 16, F_r, h, w] clean reference latents (prepended at times
    -F_r..-1, input channels [ref | ref | 1], timestep 0), or None.
    keyframes: [B, 33, K, H, W] hi-res keyframes [noisy | condition | mask] generated with the sample (base model,
    paper §4.5), at low-res latent frames `keyframe_index` (K ints in 0..F-1); None / () for none."""

    x: torch.Tensor
    refs: torch.Tensor | None = None
    keyframes: torch.Tensor | None = None
    keyframe_index: tuple[int, ...] = ()


@dataclass(frozen=True)
class AudioStream:
    """Audio tower input. x: [B, C_a = 40, T_a] normalised noisy audio latent (see `AVMMDiT.normalize_audio`).
    refs: [B, 40, T_r] clean normalised reference latents (prepended at negative times, timestep 0), or None."""

    x: torch.Tensor
    refs: torch.Tensor | None = None


@dataclass
class _TowerRun:
    """Mutable per-call state of one tower: residual streams and what the head needs."""

    x: torch.Tensor  # [B, L_ref + L (+ L_kf), D]
    xt: torch.Tensor  # [B, L_txt, D]
    inputs: StreamInputs
    ref_tokens: int
    cross_angles: torch.Tensor  # [L (+ L_kf), head_dim/2] time-only angles of the target (and keyframe) tokens
    grid: TokenGrid | None = None  # video only
    keyframe_grid: TokenGrid | None = None  # video with keyframes only (tokens after the target's)
    windows: tuple[WindowPlan, ...] = ()  # (regular, shifted) window plans of a windowed video tower

    def block_inputs(self, i: int) -> StreamInputs:
        """What block i sees: the shared inputs, with the regular (even i) or shifted (odd i) window plan."""
        return self.inputs if not self.windows else dataclasses.replace(self.inputs, window=self.windows[i % 2])

    def target(self) -> torch.Tensor:
        return self.x[:, self.ref_tokens :]

    def set_target(self, x: torch.Tensor) -> None:
        self.x = torch.cat([self.x[:, : self.ref_tokens], x], 1) if self.ref_tokens else x


# model


class AVMMDiT(nn.Module):
    """SkyReels-V4 audio-video diffusion transformer predicting flow velocities (eps - x0) for both modalities.

    Runtime attributes: attn_backend ("auto" | "sdpa" | "flash_attn"); compute_dtype (default: weight dtype).
    """

    def __init__(self, config: AVDiTConfig, *, operations=None, device=None, dtype=None):
        super().__init__()
        ops = operations if operations is not None else nn
        c, kw = config, dict(device=device, dtype=dtype)
        self.config = c
        self.attn_backend = "auto"
        self._compute_dtype: torch.dtype | None = None
        self.text_embedding = feed_forward(c.text_dim, c.dim, c.dim, ops=ops, **kw)
        self.time_embedding, self.time_projection = time_mlps(c.freq_dim, c.dim, ops=ops, **kw)
        self.video = VideoTower(c, ops=ops, **kw) if c.model_type.has_video else None
        self.audio = AudioTower(c, ops=ops, **kw) if c.model_type.has_audio else None
        if c.model_type is ModelType.AUDIO_VIDEO:
            self.av_cross = nn.ModuleList(
                [AVCrossBlock(c.dim, c.num_heads, c.eps, ops=ops, **kw) for _ in range(c.num_blocks)]
            )
        if c.model_type.has_audio:  # float32 always: the pipeline normalises in float32
            self.register_buffer("audio_latent_mean", torch.zeros(c.audio_channels, device=device))
            self.register_buffer("audio_latent_std", torch.ones(c.audio_channels, device=device))

    @property
    def compute_dtype(self) -> torch.dtype:
        if self._compute_dtype is not None:
            return self._compute_dtype
        dtype = self.time_embedding[0].weight.dtype
        return dtype if dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64) else torch.bfloat16

    @compute_dtype.setter
    def compute_dtype(self, dtype: torch.dtype | None) -> None:
        self._compute_dtype = dtype

    # audio latent normalisation

    def normalize_audio(self, z: torch.Tensor) -> torch.Tensor:
        """Audio VAE latent [B, 40, T] -> (z - mean) / std, float32 (what the audio tower expects)."""
        self._require_audio()
        return (z.float() - self.audio_latent_mean[:, None].float()) / self.audio_latent_std[:, None].float()

    def denormalize_audio(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize_audio`: [B, 40, T] -> z * std + mean, float32 (for the audio VAE decoder)."""
        self._require_audio()
        return z.float() * self.audio_latent_std[:, None].float() + self.audio_latent_mean[:, None].float()

    def _require_audio(self) -> None:
        if self.audio is None:
            raise SkyReelsInputError("This is a video-only AV model: it has no audio tower or audio normalisation.")

    # forward

    def forward(
        self,
        video: VideoStream | None,
        audio: AudioStream | None,
        timestep: torch.Tensor | float,
        context: torch.Tensor,
        *,
        fps: float,
        cross_modal: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Predict both velocities.

        Args:
            video / audio: the streams (see VideoStream / AudioStream), or None to skip that tower (then there is
                no cross-modal attention; the missing tower of a VIDEO_ONLY / AUDIO_ONLY build must be None).
            timestep: [B] (or scalar) 1000 * sigma, shared by both modalities.
            context: [B or 1, L_txt, text_dim] MLLM context (no mask: every row is attended).
            fps: video frame rate (places audio tokens on the video time axis).
            cross_modal: False skips the audio<->video cross-attention (for sync guidance).
        Returns:
            (float32 video velocity [B, 16, F, h, w] | None, float32 audio velocity [B, 40, T_a] | None);
            references are not returned. When `video.keyframes` is given, a third element: the float32 keyframe
            velocity [B, 16, K, H, W].
        """
        batch = self._check_inputs(video, audio, timestep, context, fps)
        device = context.device
        t = torch.as_tensor(timestep, device=device, dtype=torch.float32).reshape(-1).expand(batch)
        clean = torch.zeros_like(t)
        if self.config.paper_time_convention:  # the paper's t = 1 - sigma (t = 1 clean)
            t, clean = 1000.0 - t, 1000.0 - clean
        e, e0 = self.embed_time(torch.stack([clean, t], dim=1))  # group 0: clean references, 1: the sample
        text = self.embed_text(context, batch)
        v = self._start_video(video, e0, text) if video is not None else None
        a = self._start_audio(audio, e0, text, fps) if audio is not None else None
        run_cross = cross_modal and v is not None and a is not None
        for i in range(self.config.num_blocks):
            if v is not None:
                v.x, v.xt = self.video.blocks[i](v.x, v.xt, v.block_inputs(i))
            if a is not None:
                a.x, a.xt = self.audio.blocks[i](a.x, a.xt, a.inputs)
            if run_cross:
                vx, ax = self.av_cross[i](
                    v.target(), a.target(), v.cross_angles, a.cross_angles, self.compute_dtype, self.attn_backend
                )
                v.set_target(vx)
                a.set_target(ax)
        sign = -1.0 if self.config.paper_time_convention else 1.0
        e_target = e[:, 1:2]
        out_v, out_k = (None, None) if v is None else self._video_output(v, e_target, sign)
        out_a = None if a is None else sign * self.audio.unpatchify(self.audio.head(a.target(), e_target))
        if video is None or video.keyframes is None:
            return out_v, out_a
        if out_k is None:  # K = 0
            b, _, _, height, width = video.keyframes.shape
            out_k = out_v.new_zeros(b, self.config.video_channels, 0, height, width)
        return out_v, out_a, out_k

    def _video_output(self, v: _TowerRun, e_target: torch.Tensor, sign: float):
        """(velocity [B, 16, F, h, w], keyframe velocity [B, 16, K, H, W] or None) from the head."""
        y = self.video.head(v.target(), e_target)
        if v.keyframe_grid is None:
            return sign * self.video.unpatchify(y, v.grid), None
        split = v.grid.frames * v.grid.tokens_per_frame
        return (sign * self.video.unpatchify(y[:, :split], v.grid),
                sign * self.video.unpatchify(y[:, split:], v.keyframe_grid))

    def _stream_inputs(self, e0, refs: int, targets: int, angles: torch.Tensor, text: torch.Tensor) -> StreamInputs:
        """Per-group modulation: `refs` clean groups then `targets` groups at the sample's timestep."""
        if refs:
            index = torch.tensor([0] * refs + [1] * targets, device=e0.device)
            e0_mod = e0.index_select(2, index)
        else:
            e0_mod = e0[:, :, 1:2]
        zeros = torch.zeros(text.shape[1], angles.shape[1], device=angles.device, dtype=angles.dtype)
        return StreamInputs(
            e0=e0_mod,
            e0_text=e0[:, :, 1:2],
            angles=angles,
            angles_joint=torch.cat([angles, zeros]),
            context=text,
            attn_backend=self.attn_backend,
        )

    def _start_video(self, video: VideoStream, e0, text) -> _TowerRun:
        c, dtype, x = self.config, self.compute_dtype, video.x
        num_refs = 0 if video.refs is None else video.refs.shape[2]
        if num_refs:
            refs = video.refs.to(x.dtype)
            ones = torch.ones_like(refs[:, :1])
            x = torch.cat([torch.cat([refs, refs, ones], 1), x], dim=2)
        tokens, grid = self.video.embed(x.to(dtype))
        target_grid = TokenGrid(grid.frames - num_refs, grid.height, grid.width)
        positions = grid_positions(grid.frames, grid.height, grid.width, frame_offset=-num_refs, device=x.device)
        times = torch.arange(target_grid.frames, dtype=torch.float64, device=x.device)
        times = times.repeat_interleave(grid.tokens_per_frame)
        group, keyframe_grid = grid.tokens_per_frame, None  # modulation group: one (low-res) frame of tokens
        if video.keyframes is not None and video.keyframes.shape[2]:  # K = 0: exactly the model without keyframes
            keyframe_tokens, keyframe_grid = self.video.embed(video.keyframes.to(dtype))
            tokens = torch.cat([tokens, keyframe_tokens], dim=1)
            extra = keyframe_positions(video.keyframe_index, keyframe_grid, target_grid, device=x.device)
            positions, times = torch.cat([positions, extra]), torch.cat([times, extra[:, 0]])
            group = math.gcd(group, keyframe_grid.tokens_per_frame)
        angles = rope_angles(positions, c.head_dim, c.rope_theta)
        cross = rope_angles(_time_only(times), c.head_dim, c.rope_theta)
        ref_tokens = num_refs * grid.tokens_per_frame
        groups = (ref_tokens // group, (tokens.shape[1] - ref_tokens) // group) if num_refs else (0, 1)
        inputs = self._stream_inputs(e0, *groups, angles, text)
        windows = self._window_plans(target_grid, ref_tokens, tokens.shape[1] + text.shape[1], x.device)
        return _TowerRun(tokens, text, inputs, ref_tokens, cross, target_grid, keyframe_grid, windows)

    def _window_plans(self, grid: TokenGrid, offset: int, length: int, device) -> tuple[WindowPlan, ...]:
        """(regular, shifted) window plans of the target token grid inside [refs; target; keyframes; text], or ()
        for dense attention. Tokens outside the target grid (text, references, keyframes) are global."""
        if not self.config.windowed:
            return ()
        size = (grid.frames, grid.height, grid.width)
        return tuple(
            window_plan(size, self.config.attention_window, shifted=shifted, offset=offset, length=length,
                        device=device)
            for shifted in (False, True)
        )

    def _start_audio(self, audio: AudioStream, e0, text, fps: float) -> _TowerRun:
        dtype, x = self.compute_dtype, audio.x
        num_refs = 0 if audio.refs is None else audio.refs.shape[2]
        if num_refs:
            x = torch.cat([audio.refs.to(x.dtype), x], dim=2)
        tokens = self.audio.embed(x.to(dtype))
        scale = audio_time_scale(fps)
        times = torch.arange(-num_refs, x.shape[2] - num_refs, dtype=torch.float64, device=x.device) * scale
        angles = rope_angles(_time_only(times), self.config.head_dim, self.config.rope_theta)
        inputs = self._stream_inputs(e0, num_refs, 1 if not num_refs else x.shape[2] - num_refs, angles, text)
        return _TowerRun(tokens, text, inputs, num_refs, angles[num_refs:])

    # embeddings

    def embed_time(self, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """steps: [B, G] model-convention timesteps. Returns float32 (e [B, G, D], e0 [B, 6, G, D])."""
        return embed_time(self.time_embedding, self.time_projection, steps, self.compute_dtype)

    def embed_text(self, context: torch.Tensor, batch: int) -> torch.Tensor:
        """[B or 1, L, text_dim] -> [B, L, D] (compute dtype)."""
        return embed_text(self.text_embedding, context, batch, self.compute_dtype)

    # validation (before any heavy compute)

    def _check_inputs(self, video, audio, timestep, context, fps) -> int:
        """Validate the call; returns the batch size."""
        c = self.config
        if video is None and audio is None:
            raise SkyReelsInputError("Pass a video stream, an audio stream, or both.")
        if video is not None and self.video is None:
            raise SkyReelsInputError("This is an audio-only AV model: pass video=None.")
        if audio is not None and self.audio is None:
            raise SkyReelsInputError("This is a video-only AV model: pass audio=None.")
        batch = self._check_video(video) if video is not None else None
        if audio is not None:
            batch = self._check_audio(audio, batch)
        t = torch.as_tensor(timestep)
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] not in (1, batch)):
            raise SkyReelsInputError(f"timestep must be a scalar or [B] = [{batch}]; got shape {tuple(t.shape)}.")
        if context.dim() != 3 or context.shape[0] not in (1, batch) or context.shape[-1] != c.text_dim:
            raise SkyReelsInputError(
                f"context must be [B or 1, L, text_dim] = [{batch}, L, {c.text_dim}]; got {tuple(context.shape)}. "
                f"Is it from the MLLM (and layer selection) this model was trained with?"
            )
        if not fps or fps <= 0:
            raise SkyReelsInputError(f"fps must be positive (the video frame rate, e.g. 16); got {fps}.")
        if self.attn_backend not in ATTENTION_BACKENDS:
            raise SkyReelsInputError(f"attn_backend {self.attn_backend!r} is not one of {ATTENTION_BACKENDS}.")
        return batch

    def _check_video(self, video: VideoStream) -> int:
        c, x = self.config, video.x
        expected = 2 * c.video_channels + 1
        if x.dim() != 5 or x.shape[1] != expected:
            raise SkyReelsInputError(
                f"video.x must be [B, {expected}, F, h, w] = [noisy {c.video_channels} | condition "
                f"{c.video_channels} | mask 1]; got {tuple(x.shape)}."
            )
        _, ph, pw = c.patch_size
        if x.shape[3] % ph or x.shape[4] % pw:
            raise SkyReelsInputError(
                f"Latent size {x.shape[3]}x{x.shape[4]} must be divisible by the patch {ph}x{pw} "
                f"(pixel sizes multiples of {8 * ph}); resize the video."
            )
        refs = video.refs
        if refs is not None and (
            refs.dim() != 5
            or refs.shape[0] != x.shape[0]
            or refs.shape[1] != c.video_channels
            or refs.shape[3:] != x.shape[3:]
        ):
            raise SkyReelsInputError(
                f"video.refs must be [B, {c.video_channels}, F_r, h, w] with the target's B, h, w "
                f"({x.shape[0]}, {tuple(x.shape[3:])}); got {tuple(refs.shape)}. Resize/pad references first."
            )
        self._check_keyframes(video)
        return x.shape[0]

    def _check_keyframes(self, video: VideoStream) -> None:
        c, x, kf, index = self.config, video.x, video.keyframes, tuple(video.keyframe_index)
        if kf is None:
            if index:
                raise SkyReelsInputError(f"video.keyframe_index {index} was given without video.keyframes.")
            return
        _, ph, pw = c.patch_size
        if kf.dim() != 5 or kf.shape[0] != x.shape[0] or kf.shape[1] != x.shape[1] or kf.shape[3] % ph or \
                kf.shape[4] % pw:
            raise SkyReelsInputError(
                f"video.keyframes must be [B, {x.shape[1]}, K, H, W] = [noisy | condition | mask] with the sample's "
                f"batch {x.shape[0]} and H, W divisible by the patch {ph}x{pw}; got {tuple(kf.shape)}."
            )
        frames = x.shape[2]
        if len(index) != kf.shape[2] or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < frames
                                            for i in index):
            raise SkyReelsInputError(
                f"video.keyframe_index must name the low-res latent frame (0..{frames - 1}) of each of the "
                f"{kf.shape[2]} keyframes; got {index}."
            )

    def _check_audio(self, audio: AudioStream, batch: int | None) -> int:
        c, x = self.config, audio.x
        if x.dim() != 3 or x.shape[1] != c.audio_channels or x.shape[2] < 1:
            raise SkyReelsInputError(f"audio.x must be [B, {c.audio_channels}, T_a]; got {tuple(x.shape)}.")
        if batch is not None and x.shape[0] != batch:
            raise SkyReelsInputError(f"audio batch {x.shape[0]} does not match the video batch {batch}.")
        refs = audio.refs
        if refs is not None and (refs.dim() != 3 or refs.shape[:2] != x.shape[:2]):
            raise SkyReelsInputError(
                f"audio.refs must be [B, {c.audio_channels}, T_r] = [{x.shape[0]}, {c.audio_channels}, T_r]; "
                f"got {tuple(refs.shape)}."
            )
        return x.shape[0]


def param_count(config: AVDiTConfig) -> int:
    """Number of parameters (built on the meta device: no memory)."""
    return sum(p.numel() for p in AVMMDiT(config, device="meta").parameters())


# loading

AV_DIT_SPEC = ModelSpec(
    kind=AV_DIT_KIND,
    description="SkyReels-V4 audio-video diffusion model",
    model_class=AVMMDiT,
    config=lambda state, metadata: AVDiTConfig.from_metadata_and_state_dict(metadata, state),
    convert=lambda state: strip_prefix(state, _WRAPPERS),
    fp8_keep=(r"^(time_embedding|time_projection|text_embedding|(video|audio)\.(patch_embedding|head))\b",),
    float32_keep=(r"^audio_latent_(mean|std)$",),  # the pipeline normalises audio latents in float32
)


def load_av_dit(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    attn_backend: str = "auto",
) -> AVMMDiT:
    """Read a SkyReels-V4 AV DiT file (our key layout, optional ComfyUI prefix) into an eval-mode AVMMDiT.

    dtype: weight + compute dtype (None: the file's). The audio normalisation buffers stay float32.
    """
    return load_model(AV_DIT_SPEC, path, dtype=dtype, device=device, attn_backend=attn_backend)
