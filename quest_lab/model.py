"""Llama, as trained in QuEST (arXiv 2502.05003, IST-DASLab/QuEST), with quantized block linears.

Pre-norm blocks, RMSNorm (eps 1e-5, computed in fp32), RoPE (θ = 1e4), multi-head attention,
SwiGLU MLP with hidden = int(8d/3) rounded up to a multiple of 256, no biases, untied embeddings,
init N(0, 0.02) and residual output projections N(0, 0.02/√(2·n_layer)).  Every linear layer inside
a block is a `QuantLinear` (weights and input activations quantized; q/k/v and gate/up are fused
into one layer each, which quantizes exactly as separate layers would); embeddings, lm_head and the
attention matmuls stay in full precision (docs/design.md §3).

Read top to bottom: size registry → pure parameter / FLOP counters → modules → `build_model`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from quest_lab.quant import QuantConfig, QuantLinear, Quantizer


# ---------------------------------------------------------------------------------------------
# Size registry
# ---------------------------------------------------------------------------------------------
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
register_size(ModelConfig("nano", n_layer=2, n_embd=32, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
register_size(ModelConfig("micro", n_layer=2, n_embd=48, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
register_size(ModelConfig("tiny", n_layer=2, n_embd=64, n_head=2, peak_lr=4e-3, mlp_multiple_of=32))
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


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # normalise in fp32 whatever the autocast dtype
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).type_as(x)


def rope_cache(seq_len: int, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (seq_len, head_dim) for the rotate-half RoPE formulation."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, hd)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, H, T, hd); cos/sin: (T, hd)
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x.float() * cos + rotated.float() * sin).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, qcfg: QuantConfig) -> None:
        super().__init__()
        d = cfg.n_embd
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        # q, k and v as one (d -> 3d) QuantLinear: identical to three separate layers (weights are
        # quantized per output row, activations per token row, and the three share their input), but
        # the input is quantized once instead of three times and the GEMM is larger.
        self.qkv_proj = QuantLinear(d, 3 * d, qconfig=qcfg)
        self.o_proj = QuantLinear(d, d, qconfig=qcfg)
        self.o_proj.residual_out = True

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        # (B, T, d) -> 3 × (B, T, d) -> (B, H, T, hd)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
                   for t in self.qkv_proj(x).split(d, dim=-1))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd), full precision
        y = y.transpose(1, 2).contiguous().view(B, T, d)  # (B, T, d)
        return self.o_proj(y)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig, qcfg: QuantConfig) -> None:
        super().__init__()
        d, h = cfg.n_embd, cfg.mlp_hidden
        self.hidden = h
        self.gate_up_proj = QuantLinear(d, 2 * h, qconfig=qcfg)  # gate and up fused, as qkv above
        self.down_proj = QuantLinear(h, d, qconfig=qcfg)
        self.down_proj.residual_out = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, d) -> 2 × (B, T, h) -> (B, T, d)
        gate, up = self.gate_up_proj(x).split(self.hidden, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, qcfg: QuantConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn = Attention(cfg, qcfg)
        self.mlp_norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = SwiGLU(cfg, qcfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg: ModelConfig, qcfg: QuantConfig | None = None) -> None:
        super().__init__()
        qcfg = qcfg or QuantConfig()
        self.cfg, self.qcfg = cfg, qcfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg, qcfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)  # untied, full precision
        cos, sin = rope_cache(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            std = self.cfg.init_std
            if getattr(module, "residual_out", False):
                std = std / math.sqrt(2 * self.cfg.n_layer)
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        # idx: (B, T) token ids -> logits (B, T, V)
        T = idx.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len={self.cfg.seq_len}")
        x = self.wte(idx)  # (B, T, d)
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        for block in self.blocks:
            x = block(x, cos, sin)  # (B, T, d)
        return self.lm_head(self.norm(x))  # (B, T, V)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; quantizer state (e.g. LSQ step sizes) is not part of the model's N."""
        quant = {id(p) for m in self.modules() if isinstance(m, Quantizer) for p in m.parameters()}
        n = sum(p.numel() for p in self.parameters() if id(p) not in quant)
        if non_embedding:
            n -= self.wte.weight.numel() + self.lm_head.weight.numel()
        return n


def build_model(size: str | ModelConfig, qcfg: QuantConfig | None = None, *, vocab_size: int,
                seq_len: int, device: str | torch.device = "cpu") -> Llama:
    """A Llama of a registered size with the given vocabulary and context length."""
    cfg = get_size(size) if isinstance(size, str) else size
    cfg = replace(cfg, vocab_size=vocab_size, seq_len=seq_len)
    return Llama(cfg, qcfg).to(device)
