"""Torch references for the QuEST kernels (the spec the Triton kernels are tested against): the one
QuEST math module, `quest_lab.quant.quest` (`quest_grid`, `default_trust`) and `quest_lab.quant.hadamard`,
wrapped in the kernels' formats (packed masks, Δ per row, codes).

Quantization math (docs/design.md §3), per row of the (block-Hadamard-rotated) input y = x·H:

    σ = RMS(y),  s = α·σ + 1e-8,  Δ = 2s / (2^b − 1)
    x̂ = (round(clamp(y, −s, s)/Δ + ½) − ½)·Δ          (round = half-to-even, as torch.round)
    M = 1[|x̂ − y| ≤ trust·σ]                          (trust=None: half a step, α/(2^b − 1))

x̂ takes exactly the 2^b values linspace(−s, s, 2^b).  The mask is packed 8 elements per byte,
little-endian within the byte (element 8i + j is bit j of byte i), shape (M, K // 8), uint8.

With `group` G the grid is per group of G consecutive values of y (Δ comes back as (M, K/G)).

The references compute in float32 for float16/bfloat16/float32 inputs and in float64 for float64
inputs (use float64 to measure the kernels' own error).
"""
from __future__ import annotations

import torch

from quest_lab.quant.hadamard import hadamard_block_for, hadamard_transform
from quest_lab.quant.quest import default_trust, quest_grid


def pick_block(k: int, max_block: int = 128) -> int:
    """Largest power of two ≤ `max_block` dividing K (K=96 → 32, K=384 → 128), which the kernels need
    to be ≥ 16 (the torch quantizer's `hadamard_block_for` without that floor)."""
    if not isinstance(max_block, int) or max_block < 16 or max_block & (max_block - 1):
        raise ValueError(f"max_block={max_block!r} must be a power of two >= 16")
    block = hadamard_block_for(k, max_block)
    if block < 16:
        raise ValueError(f"K={k} has no power-of-two divisor in [16, {max_block}]; the QuEST kernels need "
                         "K to be a multiple of 16 (use the torch reference quantizer for such shapes)")
    return block


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """bool (..., K) → uint8 (..., K // 8), element 8i + j → bit j of byte i."""
    k = mask.shape[-1]
    if k % 8:
        raise ValueError(f"mask last dim {k} must be a multiple of 8 to pack")
    weights = (2 ** torch.arange(8, device=mask.device, dtype=torch.int32))
    bits = mask.unflatten(-1, (k // 8, 8)).to(torch.int32)
    return (bits * weights).sum(-1).to(torch.uint8)


def unpack_mask(packed: torch.Tensor) -> torch.Tensor:
    """uint8 (..., K // 8) → bool (..., K)."""
    shifts = torch.arange(8, device=packed.device, dtype=torch.int32)
    bits = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & 1
    return bits.flatten(-2).bool()


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def quest_quantize_fwd_ref(x2d: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                           block: int = 128, hadamard: bool = True, group: int | None = None):
    """Reference of `quest_quantize_fwd`: (x̂ in the rotated domain (x's dtype), packed mask, Δ per row).

    Δ (float32 / float64, shape (M,); (M, K/G) per group) is the grid step: x̂ = (j − ½)·Δ with integer j.
    """
    q, mask, delta = _fwd_ref_work(x2d, bits, alpha, trust, block, hadamard, group)
    return q.to(x2d.dtype), pack_mask(mask), delta


def _fwd_ref_work(x2d, bits, alpha, trust, block, hadamard, group=None):
    """(x̂ in the working precision, bool mask, Δ)."""
    y = x2d.to(_work_dtype(x2d.dtype))
    if hadamard:
        y = hadamard_transform(y, block)
    if group is None or group == y.shape[-1]:
        g = quest_grid(y, bits, alpha, trust)
        return g.q, g.mask, g.delta.squeeze(-1)
    g = quest_grid(y.unflatten(-1, (y.shape[-1] // group, group)), bits, alpha, trust)
    return g.q.flatten(-2), g.mask.flatten(-2), g.delta.squeeze(-1)


def quest_codes_ref(x2d: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                    block: int = 128, hadamard: bool = True, mode: str = "codes"):
    """Reference of `quest_quantize_codes`: (integer codes (int64), packed mask, scale = Δ/2).

    "codes": 2j − 1 (x̂ = codes·scale); "offset_codes": j − 1 (x̂ = (2·codes + 1)·scale)."""
    y = x2d.to(_work_dtype(x2d.dtype))
    if hadamard:
        y = hadamard_transform(y, block)
    g = quest_grid(y, bits, alpha, trust)
    j = g.j.long()
    codes = 2 * j - 1 if mode == "codes" else j - 1
    return codes, pack_mask(g.mask), g.delta.squeeze(-1) / 2


def quest_lowp_linear_ref(x: torch.Tensor, weight: torch.Tensor, a: tuple, w: tuple, block: int = 128,
                          round_input: bool = True) -> torch.Tensor:
    """Forward of `quest_lowp_linear` in float64 from the integer codes (exact up to the final scale):
    Q(bf16(x)·H)·Q(bf16(W)·H)ᵀ.  a / w = (bits, alpha, trust)."""
    k = x.shape[-1]
    x2d, w2d = x.reshape(-1, k), weight
    if round_input:
        x2d, w2d = x2d.to(torch.bfloat16), w2d.to(torch.bfloat16)
    x2d, w2d = x2d.double(), w2d.double()
    cx, _, sx = quest_codes_ref(x2d, a[0], a[1], a[2], block)
    cw, _, sw = quest_codes_ref(w2d, w[0], w[1], w[2], block)
    out = (cx.double() @ cw.double().T) * sx.double()[:, None] * sw.double()[None, :]
    return out.reshape(*x.shape[:-1], weight.shape[0])


def quest_quantize_bwd_ref(grad: torch.Tensor, mask: torch.Tensor, block: int = 128,
                           hadamard: bool = True, grad_rotated: bool = False) -> torch.Tensor:
    """Reference of `quest_quantize_bwd`: ∂x = ((g·H) ⊙ M)·Hᵀ  (grad_rotated: g is already g·H).

    `mask` may be packed (uint8, (M, K//8)) or bool (M, K).
    """
    m = unpack_mask(mask) if mask.dtype == torch.uint8 else mask.bool()
    wd = _work_dtype(grad.dtype)
    g = grad.to(wd)
    if hadamard and not grad_rotated:
        g = hadamard_transform(g, block)
    g = torch.where(m, g, torch.zeros((), dtype=wd, device=g.device))
    if hadamard:
        g = hadamard_transform(g, block)
    return g.to(grad.dtype)


def quest_fake_quant_ref(x: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                         hadamard: bool = True, block: int = 128, rotated: bool = False,
                         group: int | None = None) -> torch.Tensor:
    """Forward value of `quest_fake_quant` (no autograd): Q(x·H)·Hᵀ, or Q(x·H) if `rotated`."""
    k = x.shape[-1]
    q, _, _ = _fwd_ref_work(x.reshape(-1, k), bits, alpha, trust, block, hadamard, group)
    if hadamard and not rotated:
        q = hadamard_transform(q, block)
    return q.to(x.dtype).reshape(x.shape)
