"""umT5-XXL text encoder (encoder only), with the module names of Wan's `models_t5_umt5-xxl-enc-bf16.pth`.

# original version: https://github.com/Wan-Video/Wan2.1/blob/main/wan/modules/t5.py (T5Encoder)

Pre-norm T5 encoder: x = x + attn(norm1(x)); x = x + ffn(norm2(x)); final norm.
  - norms are T5 RMSNorms (no mean subtraction, no bias), computed in float32, eps 1e-6;
  - attention has no 1/sqrt(d) scaling; logits get a relative-position bias, one table per layer in umT5
    (`blocks.{i}.pos_embedding`, shared_pos False), padded keys get the dtype minimum;
  - FFN = fc2(fc1(x) * gelu_tanh(gate(x))).
The pipeline output (`UMT5Encoder.encode`, `TextEncoder.encode`) is padded to 512 tokens and multiplied by the
mask, so padded rows are exactly 0; the DiT receives all 512 rows.

Files accepted by `load_text_encoder`: Wan's .pth (this naming), HF / ComfyUI safetensors (`shared.weight`,
`encoder.block.{i}.layer.*`, see `HF_KEY_RENAMES`), ComfyUI's fp8 and scaled-fp8 files (through
`skyreels_core.checkpoints.fp8.apply_fp8`), with the sentencepiece tokenizer embedded (`spiece_model`) or not.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.convert import RenameTable
from ..checkpoints.detect import check_kind
from ..checkpoints.fp8 import FP8_DTYPES, apply_fp8, parse_weight_dtype
from ..checkpoints.io import load_strict, read_state_dict, strip_prefix
from ..errors import CheckpointError
from ..nn.attention import attention
from .tokenizer import DEFAULT_SEQ_LEN, TOKENIZER_FILE_NAMES, UMT5Tokenizer, find_tokenizer_file

__all__ = [
    "UMT5Config",
    "UMT5Encoder",
    "TextEncoder",
    "HF_KEY_RENAMES",
    "convert_state_dict",
    "relative_position_bucket",
    "umt5_from_state_dict",
    "load_text_encoder",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class UMT5Config:
    vocab: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    shared_pos: bool = False
    max_distance: int = 128
    eps: float = 1e-6

    XXL = None  # set below (a dataclass cannot hold instances of itself as defaults)
    TINY = None

    @property
    def head_dim(self) -> int:
        return self.dim_attn // self.num_heads

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, file: str = "") -> UMT5Config:
        """Sizes from tensor shapes (Wan naming; run `convert_state_dict` first for other layouts)."""
        if "token_embedding.weight" not in state:
            raise CheckpointError(
                f"{file}: no token_embedding.weight, so this is not a umT5 / T5 encoder (first keys: "
                f"{', '.join(sorted(state)[:4])}). Pick the umt5-xxl text encoder file."
            )
        shared_pos = "pos_embedding.embedding.weight" in state
        pos_key = "pos_embedding.embedding.weight" if shared_pos else "blocks.0.pos_embedding.embedding.weight"
        layers = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
        if pos_key not in state or not layers:
            raise CheckpointError(f"{file}: umT5 encoder without blocks or relative position bias ({pos_key}).")
        vocab, dim = state["token_embedding.weight"].shape
        num_buckets, num_heads = state[pos_key].shape
        dim_attn = state["blocks.0.attn.q.weight"].shape[0]
        if dim_attn % num_heads:
            raise CheckpointError(f"{file}: attention width {dim_attn} is not divisible by {num_heads} heads.")
        return cls(
            vocab=vocab,
            dim=dim,
            dim_attn=dim_attn,
            dim_ffn=state["blocks.0.ffn.fc1.weight"].shape[0],
            num_heads=num_heads,
            num_layers=max(layers) + 1,
            num_buckets=num_buckets,
            shared_pos=shared_pos,
        )


UMT5Config.XXL = UMT5Config()
UMT5Config.TINY = UMT5Config(vocab=256, dim=32, dim_attn=32, dim_ffn=64, num_heads=4, num_layers=2)


# ---------------------------------------------------------------------------------------------------------
# key conversion: HF transformers / ComfyUI naming -> Wan naming

_ENC = "encoder.block.{i}.layer."
HF_KEY_RENAMES: tuple[tuple[str, str], ...] = (
    ("token_embedding.{rest}", "shared.{rest}"),
    ("blocks.{i}.norm1.{rest}", _ENC + "0.layer_norm.{rest}"),
    ("blocks.{i}.attn.q.{rest}", _ENC + "0.SelfAttention.q.{rest}"),
    ("blocks.{i}.attn.k.{rest}", _ENC + "0.SelfAttention.k.{rest}"),
    ("blocks.{i}.attn.v.{rest}", _ENC + "0.SelfAttention.v.{rest}"),
    ("blocks.{i}.attn.o.{rest}", _ENC + "0.SelfAttention.o.{rest}"),
    ("blocks.{i}.pos_embedding.embedding.{rest}", _ENC + "0.SelfAttention.relative_attention_bias.{rest}"),
    ("blocks.{i}.norm2.{rest}", _ENC + "1.layer_norm.{rest}"),
    ("blocks.{i}.ffn.gate.0.{rest}", _ENC + "1.DenseReluDense.wi_0.{rest}"),
    ("blocks.{i}.ffn.fc1.{rest}", _ENC + "1.DenseReluDense.wi_1.{rest}"),
    ("blocks.{i}.ffn.fc2.{rest}", _ENC + "1.DenseReluDense.wo.{rest}"),
    ("norm.{rest}", "encoder.final_layer_norm.{rest}"),
)
_TO_WAN = RenameTable((theirs, ours) for ours, theirs in HF_KEY_RENAMES)
# Prefixes ComfyUI / HF exports put in front of the encoder keys.
HF_PREFIXES = ("text_encoders.umt5xxl.transformer.", "umt5xxl.transformer.", "text_encoder.")
# Keys a file may carry that the encoder does not use: HF decoder / LM head, the tokenizer, the fp8 marker.
IGNORED_KEYS = (r"^decoder\.", r"^lm_head\.", r"^spiece_model$", r"^scaled_fp8$")
SPIECE_KEY = "spiece_model"


def convert_state_dict(state: dict[str, torch.Tensor], *, file: str = "") -> dict[str, torch.Tensor]:
    """Any supported layout -> Wan naming. Unknown keys are kept (load_strict reports them)."""
    state = strip_prefix(state, HF_PREFIXES)
    if any(k.startswith("encoder.block.") for k in state) or "shared.weight" in state:
        # HF files may carry the tied copy `encoder.embed_tokens.weight` next to (or instead of) `shared.weight`.
        embed = state.get("encoder.embed_tokens.weight")
        state = {k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}
        if embed is not None:
            state.setdefault("shared.weight", embed)
        state = _TO_WAN.apply(state)
    return state


# ---------------------------------------------------------------------------------------------------------
# math


def relative_position_bucket(
    lq: int, lk: int, num_buckets: int = 32, max_distance: int = 128, device=None
) -> torch.Tensor:
    """T5 bidirectional relative-position buckets [lq, lk] int64 (row = query, col = key).

    rel = key - query; half the buckets for rel <= 0, half (offset num_buckets/2) for rel > 0; |rel| below
    num_buckets/4 is exact, larger distances are log-spaced up to max_distance.
    """
    rel = torch.arange(lk, device=device).unsqueeze(0) - torch.arange(lq, device=device).unsqueeze(1)
    half = num_buckets // 2
    buckets = (rel > 0).long() * half
    rel = torch.abs(rel)
    max_exact = half // 2
    large = (
        max_exact
        + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)).long()
    )
    large = torch.min(large, torch.full_like(large, half - 1))
    return buckets + torch.where(rel < max_exact, rel, large)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def fp16_clamp(x: torch.Tensor) -> torch.Tensor:
    """umT5 overflows in float16; like the reference, clamp infinities (no-op in bf16 / fp32)."""
    if x.dtype == torch.float16 and torch.isinf(x).any():
        limit = torch.finfo(x.dtype).max - 1000
        x = torch.clamp(x, min=-limit, max=limit)
    return x


# ---------------------------------------------------------------------------------------------------------
# modules


class T5LayerNorm(nn.Module):
    """RMSNorm without mean subtraction or bias: x * rsqrt(mean(x^2) + eps) (float32) * weight."""

    def __init__(self, dim: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.type_as(self.weight)
        return self.weight * x


class GELUTanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh(x)


class RelativePositionBias(nn.Module):
    """buckets [Lq, Lk] -> additive bias [1, heads, Lq, Lk]."""

    def __init__(self, num_buckets: int, num_heads: int, ops=nn, device=None, dtype=None):
        super().__init__()
        self.embedding = ops.Embedding(num_buckets, num_heads, device=device, dtype=dtype)

    def forward(self, buckets: torch.Tensor) -> torch.Tensor:
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0).contiguous()


class T5Attention(nn.Module):
    def __init__(self, dim: int, dim_attn: int, num_heads: int, ops=nn, device=None, dtype=None):
        super().__init__()
        self.num_heads = num_heads
        self.q = ops.Linear(dim, dim_attn, bias=False, device=device, dtype=dtype)
        self.k = ops.Linear(dim, dim_attn, bias=False, device=device, dtype=dtype)
        self.v = ops.Linear(dim, dim_attn, bias=False, device=device, dtype=dtype)
        self.o = ops.Linear(dim_attn, dim, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x: [B, L, dim]; bias: [B or 1, heads, L, L] additive (position bias + key mask) -> [B, L, dim]."""
        b, seq, _ = x.shape
        q, k, v = (proj(x).view(b, seq, self.num_heads, -1) for proj in (self.q, self.k, self.v))
        out = attention(q, k, v, mask=bias.to(q.dtype), scale=1.0)  # T5: no 1/sqrt(d)
        return self.o(out.reshape(b, seq, -1))


class T5FeedForward(nn.Module):
    """fc2(fc1(x) * gelu_tanh(gate(x))); `gate` is a Sequential so its key is `gate.0.weight` as in Wan."""

    def __init__(self, dim: int, dim_ffn: int, ops=nn, device=None, dtype=None):
        super().__init__()
        self.gate = nn.Sequential(ops.Linear(dim, dim_ffn, bias=False, device=device, dtype=dtype), GELUTanh())
        self.fc1 = ops.Linear(dim, dim_ffn, bias=False, device=device, dtype=dtype)
        self.fc2 = ops.Linear(dim_ffn, dim, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.gate(x))


class T5Block(nn.Module):
    def __init__(self, cfg: UMT5Config, ops=nn, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm1 = T5LayerNorm(cfg.dim, cfg.eps, **kw)
        self.attn = T5Attention(cfg.dim, cfg.dim_attn, cfg.num_heads, ops, **kw)
        self.norm2 = T5LayerNorm(cfg.dim, cfg.eps, **kw)
        self.ffn = T5FeedForward(cfg.dim, cfg.dim_ffn, ops, **kw)
        self.pos_embedding = None if cfg.shared_pos else RelativePositionBias(cfg.num_buckets, cfg.num_heads, ops, **kw)

    def forward(self, x: torch.Tensor, buckets: torch.Tensor, key_pad: torch.Tensor | None, shared_bias=None):
        """x: [B, L, dim]; buckets: [L, L]; key_pad: bool [B, 1, 1, L] (True = padded key) or None."""
        bias = shared_bias if self.pos_embedding is None else self.pos_embedding(buckets)
        bias = bias.to(x.dtype)
        if key_pad is not None:
            bias = bias.masked_fill(key_pad, torch.finfo(x.dtype).min)
        x = fp16_clamp(x + self.attn(self.norm1(x), bias))
        return fp16_clamp(x + self.ffn(self.norm2(x)))


class UMT5Encoder(nn.Module):
    """Token ids -> hidden states. Keys match `models_t5_umt5-xxl-enc-bf16.pth`."""

    def __init__(self, cfg: UMT5Config, *, operations=None, device=None, dtype=None):
        super().__init__()
        ops = operations or nn
        self.cfg = cfg
        self.token_embedding = ops.Embedding(cfg.vocab, cfg.dim, device=device, dtype=dtype)
        if cfg.shared_pos:
            self.pos_embedding = RelativePositionBias(cfg.num_buckets, cfg.num_heads, ops, device=device, dtype=dtype)
        self.blocks = nn.ModuleList([T5Block(cfg, ops, device=device, dtype=dtype) for _ in range(cfg.num_layers)])
        self.norm = T5LayerNorm(cfg.dim, cfg.eps, device=device, dtype=dtype)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids: [B, L] int64; mask: [B, L] (1 = real token) or None -> hidden [B, L, dim].

        Padded query rows are computed too (they are garbage); `encode` zeroes them.
        """
        x = self.token_embedding(ids.to(self.token_embedding.weight.device))
        seq = ids.shape[1]
        buckets = relative_position_bucket(seq, seq, self.cfg.num_buckets, self.cfg.max_distance, x.device)
        key_pad = None if mask is None else (mask.to(x.device) == 0).view(ids.shape[0], 1, 1, seq)
        shared = self.pos_embedding(buckets) if self.cfg.shared_pos else None
        for block in self.blocks:
            x = block(x, buckets, key_pad, shared)
        return self.norm(x)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pipeline output: forward(ids, mask) with padded rows set to exactly 0. [B, L, dim]."""
        hidden = self.forward(ids, mask)
        return hidden * mask.to(hidden.device, hidden.dtype).unsqueeze(-1)


# ---------------------------------------------------------------------------------------------------------
# loading


def _file_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating dtype most of the file is in; fp8 files compute in bfloat16."""
    weight = state["blocks.0.attn.q.weight"]
    return torch.bfloat16 if weight.dtype in FP8_DTYPES else weight.dtype


def umt5_from_state_dict(
    state: dict[str, torch.Tensor],
    *,
    file: str = "",
    dtype: torch.dtype | None = None,
    device="cpu",
    weight_dtype: str | torch.dtype | None = None,
    operations=None,
) -> UMT5Encoder:
    """Build on meta, load strictly with assign=True. `state` in any supported layout.

    dtype: compute dtype and dtype of the non-fp8 weights (None: the file's, bfloat16 for fp8 files).
    weight_dtype: "default" / None keeps the file's storage (fp8 files stay fp8, upcast per layer when used);
        "fp8_e4m3fn" / "fp8_e5m2" store the Linear weights of a bf16 / fp32 file in fp8 (half the memory).
    """
    ignored = [re.compile(p) for p in IGNORED_KEYS]
    state = {k: v for k, v in convert_state_dict(state, file=file).items() if not any(p.match(k) for p in ignored)}
    cfg = UMT5Config.from_state_dict(state, file=file)
    dtype = dtype or _file_dtype(state)
    with torch.device("meta"):
        model = UMT5Encoder(cfg, operations=operations, dtype=dtype)
    state = apply_fp8(model, state, quantize=parse_weight_dtype(weight_dtype), dtype=dtype)
    state = {k: v.to(device) for k, v in state.items()}
    load_strict(model, state, file=file or "<state dict>", kind="umT5 text encoder", assign=True)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{file}: tensors {left[:5]} were not loaded.")
    return model.to(device).eval().requires_grad_(False)  # .to: fp8 scales still on CPU


class TextEncoder:
    """Prompts -> umT5 context [B, 512, dim] with padded rows exactly 0 (what the Wan DiT receives)."""

    def __init__(self, model: UMT5Encoder, tokenizer: UMT5Tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        return self.model.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.norm.weight.dtype

    @torch.no_grad()
    def encode(self, prompts: list[str] | str) -> torch.Tensor:
        """prompts -> context [B, seq_len (512), dim] in the model dtype, zero rows after each prompt's EOS."""
        ids, mask = self.tokenizer(prompts)
        return self.model.encode(ids.to(self.device), mask.to(self.device))


def _find_tokenizer(model_path: Path, tokenizer_path) -> UMT5Tokenizer | None:
    if tokenizer_path is not None:
        return UMT5Tokenizer.from_file(tokenizer_path, seq_len=DEFAULT_SEQ_LEN)
    folder = model_path if model_path.is_dir() else model_path.parent
    found = find_tokenizer_file(folder)
    return None if found is None else UMT5Tokenizer.from_file(found, seq_len=DEFAULT_SEQ_LEN)


def load_text_encoder(
    path: str | os.PathLike,
    tokenizer_path: str | os.PathLike | None = None,
    *,
    dtype=None,
    device="cpu",
    weight_dtype: str | torch.dtype | None = None,
) -> TextEncoder:
    """Load a umT5 text encoder file plus its tokenizer.

    Tokenizer, first found wins: `tokenizer_path` (a spiece.model file or a folder holding one); the
    `spiece_model` tensor inside the file (ComfyUI files); spiece.model / tokenizer.model next to the model
    file or in its `google/umt5-xxl/` subfolder (the official Wan / SkyReels layout).
    dtype / weight_dtype: see `umt5_from_state_dict`.
    """
    path = Path(path)
    state = read_state_dict(path)
    check_kind(state, path, "umt5")  # a DiT or VAE picked here: say so, not "no tokenizer"
    spiece = strip_prefix(state, HF_PREFIXES).get(SPIECE_KEY)
    tokenizer = _find_tokenizer(path, tokenizer_path) if tokenizer_path is not None else None
    if tokenizer is None and spiece is not None:
        tokenizer = UMT5Tokenizer.from_tensor(spiece, source=f"{path.name}:{SPIECE_KEY}")
    if tokenizer is None:
        tokenizer = _find_tokenizer(path, None)
    if tokenizer is None:
        raise CheckpointError(
            f"{path.name} has no embedded tokenizer and no {' / '.join(TOKENIZER_FILE_NAMES)} was found next to it. "
            f"Put umT5's spiece.model (from the google/umt5-xxl tokenizer) in {path.parent}, or use ComfyUI's "
            f"umt5_xxl_*.safetensors, which carries the tokenizer inside."
        )
    model = umt5_from_state_dict(state, file=str(path), dtype=dtype, device=device, weight_dtype=weight_dtype)
    if tokenizer.vocab_size > model.cfg.vocab:
        raise CheckpointError(
            f"The tokenizer {tokenizer.source} has {tokenizer.vocab_size} pieces but the encoder {path.name} only "
            f"{model.cfg.vocab} embeddings; they do not belong together."
        )
    return TextEncoder(model, tokenizer)
