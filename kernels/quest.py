"""Fused QuEST quantizer kernels (DESIGN.md §3, §6): forward (rotate + Gaussian clip + round + trust
mask, one pass over HBM) and backward (masked Hadamard gradient, one pass).

Each program owns ROWS full rows laid out as a [ROWS·NBP, BLOCK] tile (NBP = blocks per row rounded
up to a power of two, padding masked off): the block-Hadamard is one `tl.dot` with a ±1 matrix built
in registers, the row RMS is a reduction over the tile, and the mask is packed to bits in-kernel.
Torch references: `quest_lab.kernels.reference`.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from quest_lab.kernels._common import (LaunchConfig, _hadamard_pm1, _hdot, check_2d, check_bits,
                                       config_for, num_sms, resolve_modes, tile_rows)
from quest_lab.kernels.reference import default_trust, pick_block

@triton.jit
def _quest_fwd_kernel(x_ptr, out_ptr, mask_ptr, scale_ptr, M, K, NB, alpha, trust, inv_sqrt_b,
                      LEVELS: tl.constexpr, BLOCK: tl.constexpr, LOG2B: tl.constexpr,
                      NBP: tl.constexpr, ROWS: tl.constexpr, HAD: tl.constexpr, DEROT: tl.constexpr,
                      SPLIT: tl.constexpr, EXACT_CODES: tl.constexpr):
    T: tl.constexpr = ROWS * NBP
    r = tl.arange(0, T)
    col = tl.arange(0, BLOCK)
    if HAD:
        h = _hadamard_pm1(BLOCK, LOG2B)  # built once per program, reused by every tile
    else:
        h = tl.zeros([BLOCK, BLOCK], dtype=tl.float32)  # unused
    if SPLIT == 1:
        h_in = h.to(x_ptr.dtype.element_ty)
    else:
        h_in = h.to(tl.bfloat16)
    h16 = h.to(tl.float16)
    n_tiles = tl.cdiv(M, ROWS)
    for tile in range(tl.program_id(0), n_tiles, tl.num_programs(0)):  # persistent grid
        row = tile * ROWS + r // NBP
        blk = r % NBP
        valid = (row < M) & (blk < NB)
        offs = row.to(tl.int64)[:, None] * K + (blk * BLOCK)[:, None] + col[None, :]
        x = tl.load(x_ptr + offs, mask=valid[:, None], other=0.0)
        if HAD:
            y = _hdot(x, h, h_in, SPLIT) * inv_sqrt_b
        else:
            y = x.to(tl.float32)
        # σ = RMS over the whole (rotated) row: per-block partial sums, then across the row's blocks
        ss_blk = tl.sum(y * y, axis=1)
        ss_row = tl.sum(tl.reshape(ss_blk, (ROWS, NBP)), axis=1)
        ss = tl.reshape(tl.broadcast_to(ss_row[:, None], (ROWS, NBP)), (T,))
        sigma = tl.sqrt_rn(ss / K)[:, None]
        s = alpha * sigma + 1e-8
        delta = (2.0 * s) / (LEVELS - 1)
        v = tl.div_rn(tl.minimum(tl.maximum(y, -s), s), delta) + 0.5
        j = (v + 12582912.0) - 12582912.0  # round half-to-even, as torch.round
        j = tl.minimum(tl.maximum(j, 1.0 - LEVELS // 2), 1.0 * (LEVELS // 2))
        q = (j - 0.5) * delta
        keep = tl.abs(q - y) <= trust * sigma
        # x̂: rotated domain, or de-rotated exactly through the odd-integer codes 2j − 1 (|·| ≤ 255)
        if DEROT:
            codes = 2.0 * j - 1.0
            if EXACT_CODES:
                back = tl.dot(codes, h, input_precision="ieee")
            else:
                back = tl.dot(codes.to(tl.float16), h16)
            out = back * (delta * (0.5 * inv_sqrt_b))
        else:
            out = q
        tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=valid[:, None])
        # trust mask → bits: element 8i + b is bit b of byte i
        bits = tl.reshape(keep.to(tl.int32), (T, BLOCK // 8, 8))
        weights = (1 << tl.arange(0, 8))[None, None, :]
        packed = tl.sum(bits * weights, axis=2).to(tl.uint8)
        bcol = tl.arange(0, BLOCK // 8)
        moffs = row.to(tl.int64)[:, None] * (K // 8) + (blk * (BLOCK // 8))[:, None] + bcol[None, :]
        tl.store(mask_ptr + moffs, packed, mask=valid[:, None])
        tl.store(scale_ptr + row, tl.sum(delta, axis=1), mask=(row < M) & (blk == 0))


@triton.jit
def _quest_bwd_kernel(g_ptr, mask_ptr, dx_ptr, M, K, NB, inv_sqrt_b,
                      BLOCK: tl.constexpr, LOG2B: tl.constexpr, NBP: tl.constexpr,
                      ROWS: tl.constexpr, HAD: tl.constexpr, PRE_ROT: tl.constexpr,
                      SPLIT: tl.constexpr, SPLIT_MID: tl.constexpr):
    T: tl.constexpr = ROWS * NBP
    r = tl.arange(0, T)
    col = tl.arange(0, BLOCK)
    if HAD:
        h = _hadamard_pm1(BLOCK, LOG2B)
    else:
        h = tl.zeros([BLOCK, BLOCK], dtype=tl.float32)  # unused
    if SPLIT == 1:
        h_in = h.to(g_ptr.dtype.element_ty)
    else:
        h_in = h.to(tl.bfloat16)
    h_bf = h.to(tl.bfloat16)
    n_tiles = tl.cdiv(M, ROWS)
    for tile in range(tl.program_id(0), n_tiles, tl.num_programs(0)):  # persistent grid
        row = tile * ROWS + r // NBP
        blk = r % NBP
        valid = (row < M) & (blk < NB)
        offs = row.to(tl.int64)[:, None] * K + (blk * BLOCK)[:, None] + col[None, :]
        g = tl.load(g_ptr + offs, mask=valid[:, None], other=0.0)
        # mask bit of element c: byte c // 8 (re-read from L1 by 8 lanes), bit c % 8
        moffs = row.to(tl.int64)[:, None] * (K // 8) + (blk * (BLOCK // 8))[:, None] + (col // 8)[None, :]
        mbyte = tl.load(mask_ptr + moffs, mask=valid[:, None], other=0).to(tl.int32)
        keep = ((mbyte >> (col % 8)[None, :]) & 1) != 0
        if HAD:
            if PRE_ROT:
                gr = g.to(tl.float32)
            else:
                gr = _hdot(g, h, h_in, SPLIT) * inv_sqrt_b
            gm = tl.where(keep, gr, 0.0)
            dx = _hdot(gm, h, h_bf, SPLIT_MID) * inv_sqrt_b
        else:
            dx = tl.where(keep, g.to(tl.float32), 0.0)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=valid[:, None])


def _tile_block(t: torch.Tensor, block: int, hadamard: bool) -> int:
    if hadamard or not isinstance(t, torch.Tensor) or t.dim() != 2:
        return block
    return pick_block(t.shape[1])


def _grid(m: int, rows: int, cfg: LaunchConfig, device: torch.device) -> tuple[int]:
    n_tiles = triton.cdiv(m, rows)
    if cfg.programs_per_sm:  # the interpreter counts as one SM, so tests exercise the tile loop
        n_tiles = min(n_tiles, cfg.programs_per_sm * (num_sms(device) if device.type == "cuda" else 1))
    return (n_tiles,)


def quest_quantize_fwd(x2d: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                       block: int = 128, hadamard: bool = True, derotate: bool = False,
                       config: LaunchConfig | None = None):
    """QuEST forward on rows of x2d (M, K): returns (x̂, packed mask (M, K//8) uint8, Δ (M,) fp32).

    x̂ has x2d's dtype and lies in the rotated domain (Q(x·H)); `derotate=True` returns Q(x·H)·Hᵀ
    instead (same mask and Δ).  trust=None: half a step (α/(2^b − 1) in σ units).
    hadamard=False: no rotation; `block` is then only the tile width (any K multiple of 16 works).
    """
    block = _tile_block(x2d, block, hadamard)
    check_2d("x2d", x2d, block)
    check_bits(bits, alpha)
    if trust is None:
        trust = default_trust(bits, alpha)
    m, k = x2d.shape
    nb = k // block
    cfg = config_for(nb, x2d.dtype, config)
    rows, nbp = tile_rows(nb, cfg)
    split_in, _, exact = resolve_modes(x2d.dtype, cfg)
    out = torch.empty_like(x2d)
    mask = torch.empty((m, k // 8), dtype=torch.uint8, device=x2d.device)
    scale = torch.empty((m,), dtype=torch.float32, device=x2d.device)
    if m == 0:
        return out, mask, scale
    _quest_fwd_kernel[_grid(m, rows, cfg, x2d.device)](
        x2d, out, mask, scale, m, k, nb, float(alpha), float(trust), 1.0 / math.sqrt(block),
        LEVELS=2**bits, BLOCK=block, LOG2B=int(math.log2(block)), NBP=nbp, ROWS=rows,
        HAD=bool(hadamard), DEROT=bool(derotate and hadamard), SPLIT=split_in, EXACT_CODES=exact,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return out, mask, scale


def quest_quantize_bwd(grad: torch.Tensor, mask: torch.Tensor, block: int = 128, hadamard: bool = True,
                       grad_rotated: bool = False, config: LaunchConfig | None = None) -> torch.Tensor:
    """Fused masked-Hadamard backward: ∂x = ((g·H) ⊙ M)·Hᵀ, reading the packed mask.

    grad_rotated=True: `grad` is the gradient w.r.t. the rotated-domain x̂ (so ∂x = (g ⊙ M)·Hᵀ).
    """
    block = _tile_block(grad, block, hadamard)
    check_2d("grad", grad, block)
    m, k = grad.shape
    if mask.dtype != torch.uint8 or tuple(mask.shape) != (m, k // 8) or not mask.is_contiguous():
        raise ValueError(f"mask must be the packed uint8 (M, K//8) = ({m}, {k // 8}) contiguous tensor "
                         f"from quest_quantize_fwd; got {mask.dtype} {tuple(mask.shape)}")
    if mask.device != grad.device:
        raise ValueError(f"mask is on {mask.device} but grad on {grad.device}")
    nb = k // block
    cfg = config_for(nb, grad.dtype, config, forward=False)
    rows, nbp = tile_rows(nb, cfg)
    split_in, split_mid, _ = resolve_modes(grad.dtype, cfg)
    dx = torch.empty_like(grad)
    if m == 0:
        return dx
    _quest_bwd_kernel[_grid(m, rows, cfg, grad.device)](
        grad, mask, dx, m, k, nb, 1.0 / math.sqrt(block),
        BLOCK=block, LOG2B=int(math.log2(block)), NBP=nbp, ROWS=rows, HAD=bool(hadamard),
        PRE_ROT=bool(grad_rotated), SPLIT=split_in, SPLIT_MID=split_mid,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return dx
