"""Llama, as trained in QuEST (arXiv 2502.05003, IST-DASLab/QuEST), with quantized block linears.

Pre-norm blocks, RMSNorm (eps 1e-5, computed in fp32), RoPE (θ = 1e4), multi-head attention,
SwiGLU MLP with hidden = int(8d/3) rounded up to a multiple of 256, no biases, untied embeddings,
init N(0, 0.02) and residual output projections N(0, 0.02/√(2·n_layer)).  Every linear layer inside
a block is a `QuantLinear` (weights and input activations quantized; q/k/v and gate/up are fused
into one layer each, which quantizes exactly as separate layers would); embeddings, lm_head and the
attention matmuls stay in full precision (docs/design.md §3).

Read top to bottom: modules → `build_model`.  The size registry and the parameter / FLOP counters
live in the torch-free `quest_lab.sizes`.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from quest_lab.quant import QuantConfig, QuantLinear, Quantizer
from quest_lab.sizes import (MODEL_SIZES, ModelConfig, get_size, non_embedding_params,  # noqa: F401  (re-exported)
                             register_size, training_flops)


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
