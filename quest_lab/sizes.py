"""Model-size registry and pure parameter / FLOP counters (torch-free: configs, the CLI and sweep
planning import this without loading torch).

Read top to bottom: `ModelConfig` → registry (tiny CPU sizes, small GPU sizes, the QuEST paper's
sizes, docs/design.md §2) → counters citing their papers.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one Llama.  `vocab_size` / `seq_len` are set from the data at build time."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    peak_lr: float
    mlp_multiple_of: int = 256  # SwiGLU hidden rounded up to this (QuEST: 256; tiny CPU sizes: 32)
    vocab_size: int = 50304
    seq_len: int = 512
    norm_eps: float = 1e-5
    rope_theta: float = 1e4
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for f in ("n_layer", "n_embd", "n_head", "mlp_multiple_of", "vocab_size", "seq_len"):
            if getattr(self, f) <= 0:
                raise ValueError(f"{self.name}: {f}={getattr(self, f)!r} must be > 0")
        if self.n_embd % self.n_head:
            raise ValueError(f"{self.name}: n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(f"{self.name}: head dim {self.n_embd // self.n_head} must be even for RoPE")
        if not self.peak_lr > 0:
            raise ValueError(f"{self.name}: peak_lr={self.peak_lr!r} must be > 0")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        h, m = int(8 * self.n_embd / 3), self.mlp_multiple_of
        return m * ((h + m - 1) // m)


MODEL_SIZES: dict[str, ModelConfig] = {}


def register_size(cfg: ModelConfig) -> ModelConfig:
    """Add a size to the registry (names are unique)."""
    if cfg.name in MODEL_SIZES:
        raise ValueError(f"model size {cfg.name!r} is already registered")
    MODEL_SIZES[cfg.name] = cfg
    return cfg


# Tiny sizes for CPU runs, tests and the smoke sweep (head dim 16–64; hidden rounded to 32 so the
# SwiGLU matrices stay small).  Roughly ×2 in N from one to the next.  Peak LRs from a coarse
# CPU sweep on Shakespeare (BPE-512, 64-token context, batch 8, ~0.4M tokens).
register_size(ModelConfig("pico", n_layer=2, n_embd=24, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
register_size(ModelConfig("nano", n_layer=2, n_embd=32, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
# tiny-1l and small-2l: for the CPU granularity study (sweeps/granularity.yaml) beside `tiny`; every
# quantized K is divisible by the group sizes 16, 32 and 64 (tiny-1l: 64, 192; small-2l: 128, 384).
# The registry lists sizes in order of N.
register_size(ModelConfig("tiny-1l", n_layer=1, n_embd=64, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
register_size(ModelConfig("micro", n_layer=2, n_embd=48, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
register_size(ModelConfig("tiny", n_layer=2, n_embd=64, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
register_size(ModelConfig("small-2l", n_layer=2, n_embd=128, n_head=4, peak_lr=3e-3, mlp_multiple_of=64))
register_size(ModelConfig("small", n_layer=4, n_embd=128, n_head=4, peak_lr=3e-3, mlp_multiple_of=32))
register_size(ModelConfig("base", n_layer=6, n_embd=256, n_head=4, peak_lr=2e-3, mlp_multiple_of=32))
# Small GPU sizes in the paper's family (head dim 128, hidden rounded to 256) for quick GPU ladders
# (sweeps/gpu_smoke.yaml); not in the paper, peak LRs extrapolated from its 30M/50M value upwards.
register_size(ModelConfig("7M", n_layer=4, n_embd=384, n_head=3, peak_lr=2e-3))
register_size(ModelConfig("17M", n_layer=5, n_embd=512, n_head=4, peak_lr=1.5e-3))
# The QuEST paper's sizes (docs/design.md §2): head dim 128, hidden rounded to 256.
register_size(ModelConfig("30M", n_layer=6, n_embd=640, n_head=5, peak_lr=1.2e-3))
register_size(ModelConfig("50M", n_layer=7, n_embd=768, n_head=6, peak_lr=1.2e-3))
register_size(ModelConfig("100M", n_layer=8, n_embd=1024, n_head=8, peak_lr=6e-4))
register_size(ModelConfig("200M", n_layer=10, n_embd=1280, n_head=10, peak_lr=3e-4))
register_size(ModelConfig("430M", n_layer=13, n_embd=1664, n_head=13, peak_lr=1.5e-4))
register_size(ModelConfig("800M", n_layer=16, n_embd=2048, n_head=16, peak_lr=7.5e-5))
# 1.6B: the paper gives no peak LR; 7.5e-5/2 continues its halving schedule.
register_size(ModelConfig("1.6B", n_layer=20, n_embd=2560, n_head=20, peak_lr=3.75e-5))


def get_size(name: str) -> ModelConfig:
    try:
        return MODEL_SIZES[name]
    except KeyError:
        raise ValueError(f"size={name!r} is unknown; allowed: {', '.join(MODEL_SIZES)}") from None


# ---------------------------------------------------------------------------------------------
# Pure counters (no weights allocated)
# ---------------------------------------------------------------------------------------------
def non_embedding_params(size: str | ModelConfig) -> int:
    """N: parameters excluding token embedding and lm_head (Kaplan et al. 2020, §2.1; docs/design.md §2).

    Per block: attention q, k, v, o = 4·d², SwiGLU gate/up/down = 3·d·h, two RMSNorm gains = 2·d;
    plus the final RMSNorm (d).
    """
    cfg = get_size(size) if isinstance(size, str) else size
    d, h = cfg.n_embd, cfg.mlp_hidden
    return cfg.n_layer * (4 * d * d + 3 * d * h + 2 * d) + d


def training_flops(size: str | ModelConfig, tokens: int, seq_len: int | None = None) -> float:
    """Training FLOPs C ≈ 6·N·D + 6·n_layer·seq_len·d·D.

    6·N·D is the dense forward+backward count (Kaplan et al. 2020, eq. 2.1; Hoffmann et al. 2022);
    the second term is the attention-score and attention-value matmuls, 2·n_layer·n_ctx·d per token
    forward (Kaplan et al. 2020, Table 1), ×3 for training.  Embedding and lm_head are excluded, as
    N excludes them.
    """
    cfg = get_size(size) if isinstance(size, str) else size
    ctx = cfg.seq_len if seq_len is None else seq_len
    return 6.0 * non_embedding_params(cfg) * tokens + 6.0 * cfg.n_layer * ctx * cfg.n_embd * tokens
