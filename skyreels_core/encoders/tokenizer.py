"""umT5 tokenizer: sentencepiece from local files only, with the Wan pipeline's cleaning, EOS and padding.

Matches Wan's `HuggingfaceTokenizer(name='google/umt5-xxl', seq_len=512, clean='whitespace')`:
  1. clean: `ftfy.fix_text` (when ftfy is installed), `html.unescape` twice, strip, collapse `\\s+` to one space;
  2. sentencepiece encode, truncate to seq_len - 1 tokens, append EOS (id 1);
  3. pad with the pad id (0) to seq_len; mask = 1 on the real tokens including EOS.

The sentencepiece model comes from a `spiece.model` / `tokenizer.model` file, a tokenizer folder (e.g. the
`google/umt5-xxl` folder that ships next to `models_t5_umt5-xxl-enc-bf16.pth`), or the bytes ComfyUI stores in
its text-encoder safetensors under the key `spiece_model` (a uint8 tensor).
"""

from __future__ import annotations

import html
import io
import logging
import os
import re
from pathlib import Path

import torch

from ..errors import CheckpointError

__all__ = [
    "UMT5Tokenizer",
    "clean_whitespace",
    "find_tokenizer_file",
    "make_tiny_spiece_model",
    "TOKENIZER_FILE_NAMES",
    "DEFAULT_SEQ_LEN",
]

log = logging.getLogger(__name__)

DEFAULT_SEQ_LEN = 512
TOKENIZER_FILE_NAMES = ("spiece.model", "tokenizer.model")
# Folders searched (relative to a model file's folder) when no tokenizer is given or embedded.
TOKENIZER_SUBFOLDERS = (".", "google/umt5-xxl", "umt5-xxl", "tokenizer")


def clean_whitespace(text: str) -> str:
    """Wan's `whitespace_clean(basic_clean(text))`. ftfy is optional: without it only mojibake repair is skipped."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def find_tokenizer_file(path: str | os.PathLike) -> Path | None:
    """The sentencepiece model at `path` (a file) or inside it (a folder, also its known subfolders)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    for sub in TOKENIZER_SUBFOLDERS:
        for name in TOKENIZER_FILE_NAMES:
            candidate = path / sub / name
            if candidate.is_file():
                return candidate
    return None


class UMT5Tokenizer:
    """Text -> (ids [B, seq_len] int64, mask [B, seq_len] int64)."""

    def __init__(self, model_proto: bytes, *, seq_len: int = DEFAULT_SEQ_LEN, source: str = "<bytes>"):
        import sentencepiece

        try:
            self.sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        except Exception as exc:  # sentencepiece raises RuntimeError / OSError for a bad proto
            raise CheckpointError(f"{source} is not a valid sentencepiece model: {exc}") from exc
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}.")
        self.model_proto = bytes(model_proto)
        self.seq_len = seq_len
        self.source = source
        self.eos_id = self.sp.eos_id()
        self.pad_id = self.sp.pad_id() if self.sp.pad_id() >= 0 else 0
        if self.eos_id < 0:
            raise CheckpointError(f"{source} defines no EOS token; it is not a T5 / umT5 sentencepiece model.")

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, seq_len: int = DEFAULT_SEQ_LEN) -> UMT5Tokenizer:
        """From a sentencepiece model file, or a folder containing spiece.model / tokenizer.model."""
        file = find_tokenizer_file(path)
        if file is None:
            raise CheckpointError(
                f"No sentencepiece tokenizer at {path}. Give the path of umT5's spiece.model (from the "
                f"google/umt5-xxl tokenizer folder) or of a folder containing {' or '.join(TOKENIZER_FILE_NAMES)}."
            )
        return cls(file.read_bytes(), seq_len=seq_len, source=str(file))

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor, *, seq_len: int = DEFAULT_SEQ_LEN, source: str = "spiece_model"):
        """From the uint8 `spiece_model` tensor ComfyUI embeds in its text-encoder files."""
        return cls(tensor.detach().cpu().contiguous().numpy().tobytes(), seq_len=seq_len, source=source)

    def to_tensor(self) -> torch.Tensor:
        """The model bytes as a uint8 tensor (the `spiece_model` entry of a ComfyUI text-encoder file)."""
        return torch.frombuffer(bytearray(self.model_proto), dtype=torch.uint8).clone()

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode_ids(self, text: str) -> list[int]:
        """Cleaned, tokenized, truncated to seq_len - 1, EOS appended (no padding)."""
        ids = self.sp.encode(clean_whitespace(text))
        return ids[: self.seq_len - 1] + [self.eos_id]

    def __call__(self, texts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> ids [B, seq_len] int64 (pad id after EOS), mask [B, seq_len] int64 (1 = real token)."""
        if isinstance(texts, str):
            texts = [texts]
        ids = torch.full((len(texts), self.seq_len), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(texts), self.seq_len), dtype=torch.int64)
        for row, text in enumerate(texts):
            tokens = self.encode_ids(text)
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
            mask[row, : len(tokens)] = 1
        return ids, mask


# A fixed corpus, so the tiny sentencepiece model is the same bytes on every machine.
_TINY_CORPUS = (
    "A cat walks along the beach at sunset while waves roll in.",
    "A red car drives through a rainy city street at night, neon lights reflecting.",
    "Close-up of a woman smiling, soft window light, shallow depth of field.",
    "An astronaut floats inside a space station; the Earth is visible through the window.",
    "A dog runs across a green field chasing a yellow ball.",
    "Timelapse of clouds moving over snowy mountains, cinematic, 4k.",
    "A man plays the guitar on a small stage and sings into a microphone.",
    "Bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality.",
    "\u4e00\u53ea\u732b\u5728\u6c99\u6ee9\u4e0a\u6563\u6b65\uff0c\u65e5\u843d\u65f6\u5206\u3002",  # "A cat strolls on the beach at sunset." in Chinese (escaped: ASCII-only source)
)


def make_tiny_spiece_model(vocab_size: int = 128) -> bytes:
    """A small umT5-style unigram sentencepiece model (pad 0, eos 1, unk 2, no bos), built deterministically.

    Trained in memory on `_TINY_CORPUS` with one thread and no input shuffling, so the returned bytes are
    identical on every run and machine with the same sentencepiece version. The piece count is at most
    `vocab_size` (hard_vocab_limit off: the corpus may support fewer pieces).
    """
    import sentencepiece

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_TINY_CORPUS * 4),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return buffer.getvalue()
