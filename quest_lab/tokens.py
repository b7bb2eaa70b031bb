"""Token streams as tensors, and batches: the last ``val_frac`` of the stream is validation
(deterministic).  Training batches are drawn by a seeded generator; evaluation windows are fixed
(evenly spaced over the validation split), so every run of a sweep is evaluated on the same tokens.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from quest_lab.corpus import DataConfig, _load_pretokenized, cache_dir, data_identity, read_corpus_text, train_bpe

log = logging.getLogger(__name__)


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
