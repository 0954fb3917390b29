"""A tiny SentencePiece tokenizer for tiny Moshi models, trained on fdenv's sentence bank.

Moshi reserves text ids 0 (EPAD, end of padding) and 3 (PAD); the tokenizer keeps both free of
words so that the env's ``TextVoice`` and Moshi agree on what silence is, and its other pieces
decode to the bank's words.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import sentencepiece as spm

from fdenv.atomic import atomic_path
from fdenv.constants import EPAD_ID, PAD_ID
from fdenv.scenarios.sentences import load_sentence_bank

TINY_VOCAB = 512


def cache_dir() -> Path:
    """Where built artefacts (tokenizers, warm-started models) are cached: ``$FDENV_CACHE``."""
    return Path(os.environ.get("FDENV_CACHE", Path.home() / ".cache" / "fdenv"))


def train_tokenizer(path: str | Path, vocab_size: int = TINY_VOCAB) -> Path:
    """Trains a BPE model on the sentence bank and writes it to ``path`` (atomically)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(load_sentence_bank().all_text()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        # ids 0 and 3 are Moshi's EPAD and PAD: make them control symbols that never decode
        control_symbols=["<epad>"],
        unk_id=1,
        bos_id=2,
        eos_id=-1,
        pad_id=PAD_ID,
        num_threads=1,
        minloglevel=2,
    )
    with atomic_path(path) as tmp:
        tmp.write_bytes(model.getvalue())
    return Path(path)


@lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = TINY_VOCAB) -> spm.SentencePieceProcessor:
    """The cached tiny tokenizer (trained on first use, in well under a second)."""
    path = cache_dir() / f"tokenizer_bank_{vocab_size}.model"
    if not path.is_file():
        train_tokenizer(path, vocab_size)
    processor = spm.SentencePieceProcessor(model_file=str(path))
    assert processor.id_to_piece(EPAD_ID) == "<epad>" and processor.pad_id() == PAD_ID
    return processor
