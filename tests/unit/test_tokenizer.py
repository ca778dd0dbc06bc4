"""umT5 tokenizer: local sentencepiece files / embedded bytes, Wan cleaning, EOS, padding, truncation."""

from __future__ import annotations

import pytest
import sentencepiece
import torch

from skyreels_core.encoders.tokenizer import UMT5Tokenizer, clean_whitespace, make_tiny_spiece_model
from skyreels_core.errors import CheckpointError


@pytest.fixture(scope="module")
def spiece() -> bytes:
    return make_tiny_spiece_model()


def test_tiny_model_is_deterministic_and_umt5_shaped(spiece):
    assert make_tiny_spiece_model() == spiece
    sp = sentencepiece.SentencePieceProcessor(model_proto=spiece)
    assert (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) == (0, 1, 2, -1)
    assert 50 < sp.get_piece_size() <= 128


def test_ids_are_sentencepiece_plus_eos_then_pad(spiece):
    tok = UMT5Tokenizer(spiece)
    sp = sentencepiece.SentencePieceProcessor(model_proto=spiece)
    texts = ["A cat walks on the beach.", "a dog"]
    ids, mask = tok(texts)
    assert ids.shape == mask.shape == (2, 512) and ids.dtype == mask.dtype == torch.int64
    for row, text in enumerate(texts):
        expected = sp.encode(text) + [1]
        n = len(expected)
        assert ids[row, :n].tolist() == expected
        assert torch.all(ids[row, n:] == 0)
        assert mask[row].tolist() == [1] * n + [0] * (512 - n)


def test_long_text_is_truncated_and_keeps_eos(spiece):
    tok = UMT5Tokenizer(spiece, seq_len=16)
    ids, mask = tok("a cat walks on the beach " * 20)
    assert ids.shape == (1, 16)
    assert ids[0, -1].item() == 1 and torch.all(mask == 1)
    assert 1 not in ids[0, :-1].tolist()


def test_empty_prompt_is_just_eos(spiece):
    ids, mask = UMT5Tokenizer(spiece, seq_len=8)("")
    assert ids.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0]]
    assert mask.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0]]


def test_whitespace_cleaning_matches_wan():
    assert clean_whitespace("  a\n\tcat   &amp;amp; dog  ") == "a cat & dog"
    assert clean_whitespace("x&lt;y") == "x<y"


def test_cleaning_is_applied_before_tokenizing(spiece):
    tok = UMT5Tokenizer(spiece)
    assert torch.equal(tok("  a\n cat  &amp; dog ")[0], tok("a cat & dog")[0])


def test_sources_file_folder_and_tensor_agree(spiece, tmp_path):
    (tmp_path / "google" / "umt5-xxl").mkdir(parents=True)
    (tmp_path / "google" / "umt5-xxl" / "spiece.model").write_bytes(spiece)
    (tmp_path / "tokenizer.model").write_bytes(spiece)
    text = "A red car at night"
    reference = UMT5Tokenizer(spiece)(text)[0]
    from_file = UMT5Tokenizer.from_file(tmp_path / "tokenizer.model")
    from_folder = UMT5Tokenizer.from_file(tmp_path)
    from_sub = UMT5Tokenizer.from_file(tmp_path / "google" / "umt5-xxl")
    from_tensor = UMT5Tokenizer.from_tensor(from_file.to_tensor())
    assert from_file.to_tensor().dtype == torch.uint8
    for tok in (from_file, from_folder, from_sub, from_tensor):
        assert torch.equal(tok(text)[0], reference)


def test_missing_and_invalid_files_raise_actionable_errors(tmp_path):
    with pytest.raises(CheckpointError, match="spiece.model"):
        UMT5Tokenizer.from_file(tmp_path)
    with pytest.raises(CheckpointError, match="not a valid sentencepiece model"):
        UMT5Tokenizer(b"definitely not a model")
