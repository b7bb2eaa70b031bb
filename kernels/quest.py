"""Fused QuEST quantizer kernels (docs/design.md §3, §6): forward (rotate + Gaussian clip + round + trust
mask) and backward (masked Hadamard gradient, one pass).

Forward (`_quest_fwd_kernel`, two passes over each program's rows): σ = RMS of the rotated row equals
the RMS of the unrotated row (H is orthonormal), so pass 1 sums squares over plain [ROWS, BLOCK]
tiles (σ is a [ROWS] vector, no reshape, no padding of the row to a power of two) and pass 2
re-reads the rows (L2-resident: a program owns only ROWS rows at a time) block by block, rotates
with one `tl.dot` against a ±1 matrix built in registers, quantizes, writes x̂ and the mask.
Backward (`_quest_bwd_kernel`): the gradient needs no per-row quantity, so it walks the tensor as
flat [T, BLOCK] tiles of consecutive Hadamard blocks.
The one-pass forward (whole rows as a [ROWS·NBP, BLOCK] register tile, `_quest_fwd_kernel_1pass`) is
what `config_for` picks for unrounded fp32 rows of ≤ 8 blocks (measured faster there); it and the
row-tiled backward (`_quest_bwd_kernel_rows`) run with LaunchConfig(two_pass=False) and need K ≤ 128
blocks.

Groups (`group_size` G, docs/design.md §3): the grid (σ, s, Δ, T·σ) is per group of G consecutive
rotated values.  G a multiple of the block: every group is a union of whole blocks, so the (M, K)
tensor is quantized as the (M·K/G, G) tensor with one grid per row: the same kernels, a view.  G
smaller than the block: the two-pass kernel with SUBGROUP = G skips pass 1 and takes σ per group from
the rotated tile itself ([ROWS, BLOCK] → [ROWS, BLOCK/G, G] sums); its de-rotation multiplies the
(no longer uniformly scaled) x̂ by H in fp32.  Δ then comes back per group, (M, K/G).

Mask formats: "packed" (M, K/8) uint8, element 8i + j is bit j of byte i (the reference's
`pack_mask`; what autograd saves by default), or "bytes" (M, K) uint8 0/1 (8× the saved memory,
no in-kernel bit packing).  Torch references: `quest_lab.kernels.reference`.
"""
from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl

from quest_lab.kernels._common import (LaunchConfig, _hadamard_pm1, _hdot, check_2d, check_bits, check_group,
                                       check_row_kernel, config_for, default_config, interpreting, num_sms,
                                       resolve_modes,
                                       tile_rows)
from quest_lab.kernels.reference import default_trust, pick_block

MASK_FORMATS = ("packed", "bytes")


@triton.jit
def _hadamard_operands(ptr, BLOCK: tl.constexpr, LOG2B: tl.constexpr, HAD: tl.constexpr, SPLIT: tl.constexpr):
    """The ±1 Hadamard (fp32) and its 16-bit copy for `_hdot` (ptr's dtype if SPLIT == 1, else bf16);
    built once per program and reused by every tile.  Zeros (unused) when HAD is off."""
    if HAD:
        h = _hadamard_pm1(BLOCK, LOG2B)
    else:
        h = tl.zeros([BLOCK, BLOCK], dtype=tl.float32)
    if SPLIT == 1:
        h_in = h.to(ptr.dtype.element_ty)
    else:
        h_in = h.to(tl.bfloat16)
    return h, h_in


@triton.jit
def _grid_round(y, s, delta, inv_delta, LEVELS: tl.constexpr, FAST_DIV: tl.constexpr):
    """Grid index j of clamp(y, −s, s) on the 2^b levels (j − ½)Δ (docs/design.md §3), half-to-even."""
    if FAST_DIV:
        v = tl.minimum(tl.maximum(y, -s), s) * inv_delta + 0.5
    else:
        v = tl.div_rn(tl.minimum(tl.maximum(y, -s), s), delta) + 0.5
    j = (v + 12582912.0) - 12582912.0  # round half-to-even, as torch.round
    return tl.minimum(tl.maximum(j, 1.0 - LEVELS // 2), 1.0 * (LEVELS // 2))


@triton.jit
def _derotate_codes(j, h, h16, dscale, EXACT_CODES: tl.constexpr):
    """Q(y)·Hᵀ exactly, through the odd-integer codes 2j − 1 (|·| ≤ 255), times Δ/(2√block)."""
    codes = 2.0 * j - 1.0
    if EXACT_CODES:
        back = tl.dot(codes, h, input_precision="ieee")
    else:
        back = tl.dot(codes.to(tl.float16), h16)
    return back * dscale


@triton.jit
def _pack_bits(keep, T: tl.constexpr, BLOCK: tl.constexpr):
    """[T, BLOCK] bool → [T, BLOCK/8] uint8: element 8i + j is bit j of byte i."""
    bits = tl.reshape(keep.to(tl.int32), (T, BLOCK // 8, 8))
    weights = (1 << tl.arange(0, 8))[None, None, :]
    return tl.sum(bits * weights, axis=2).to(tl.uint8)


@triton.jit
def _unpack_bits(mask_ptr, moffs, col, ok):
    """Bit c % 8 of byte c // 8 for each column c (each byte re-read from L1 by 8 lanes)."""
    mbyte = tl.load(mask_ptr + moffs, mask=ok, other=0).to(tl.int32)
    return ((mbyte >> (col % 8)[None, :]) & 1) != 0


@triton.jit
def _masked_grad(g, keep, h, h_in, h_bf, inv_sqrt_b, HAD: tl.constexpr, PRE_ROT: tl.constexpr,
                 SPLIT: tl.constexpr, SPLIT_MID: tl.constexpr):
    """∂x = ((g·H) ⊙ M)·Hᵀ (H symmetric); g already rotated when PRE_ROT; g ⊙ M without Hadamard.
    The products are ±g, so they are exact in g's own 16-bit dtype: a pre-rotated fp16/bf16 g takes
    one native dot (the fp32 split would add two dots on exact zeros)."""
    if HAD:
        if PRE_ROT and SPLIT == 1:  # 16-bit g: g ⊙ M is exact in g's dtype, so one native dot
            dx = tl.dot(tl.where(keep, g, tl.zeros_like(g)), h_in) * inv_sqrt_b
        else:
            if PRE_ROT:
                gr = g.to(tl.float32)
            else:
                gr = _hdot(g, h, h_in, SPLIT) * inv_sqrt_b
            dx = _hdot(tl.where(keep, gr, 0.0), h, h_bf, SPLIT_MID) * inv_sqrt_b
    else:
        dx = tl.where(keep, g.to(tl.float32), 0.0)
    return dx



@triton.jit
def _expand_groups(v, ROWS: tl.constexpr, NG: tl.constexpr, G: tl.constexpr):
    """[ROWS, NG] → [ROWS, NG·G]: each group's value repeated over its G columns."""
    return tl.reshape(tl.broadcast_to(v[:, :, None], (ROWS, NG, G)), (ROWS, NG * G))


@triton.jit
def _subgroup_grid(y, alpha, trust, LEVELS: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
                   SUBGROUP: tl.constexpr, FAST_DIV: tl.constexpr):
    """QuEST's grid with σ per group of SUBGROUP columns of the rotated tile y [ROWS, BLOCK]:
    (j, q, keep, Δ per group [ROWS, BLOCK/SUBGROUP])."""
    NG: tl.constexpr = BLOCK // SUBGROUP
    ss = tl.sum(tl.reshape(y * y, (ROWS, NG, SUBGROUP)), axis=2)
    sig_g = tl.sqrt_rn(ss / SUBGROUP)
    d_g = (2.0 * (alpha * sig_g + 1e-8)) / (LEVELS - 1)
    sig = _expand_groups(sig_g, ROWS, NG, SUBGROUP)
    s = alpha * sig + 1e-8
    delta = (2.0 * s) / (LEVELS - 1)
    j = _grid_round(y, s, delta, tl.div_rn(tl.full([ROWS, BLOCK], 1.0, tl.float32), delta), LEVELS, FAST_DIV)
    q = (j - 0.5) * delta
    return j, q, tl.abs(q - y) <= trust * sig, d_g


@triton.jit
def _quest_fwd_kernel(x_ptr, out_ptr, mask_ptr, scale_ptr, M, K, NB, alpha, trust, inv_sqrt_b,
                      LEVELS: tl.constexpr, BLOCK: tl.constexpr, LOG2B: tl.constexpr,
                      ROWS: tl.constexpr, HAD: tl.constexpr, OUT: tl.constexpr,
                      SPLIT: tl.constexpr, EXACT_CODES: tl.constexpr, MASK_MODE: tl.constexpr,
                      FAST_DIV: tl.constexpr, SUBGROUP: tl.constexpr = 0):
    """OUT: what is written (see `OUT_MODES`): 0 = x̂ rotated, 1 = x̂ de-rotated, 2 = codes 2j − 1,
    3 = offset codes j − 1 (codes: `scale` holds Δ/2, else Δ).
    MASK_MODE: 0 = packed by reshape + sum, 1 = packed by a dot with byte weights, 2 = one byte.
    SUBGROUP: 0 = one grid per row (σ from pass 1); G < BLOCK = one grid per G rotated values (no
    pass 1; `scale` is (M, K/G))."""
    r = tl.arange(0, ROWS)
    col = tl.arange(0, BLOCK)
    h, h_in = _hadamard_operands(x_ptr, BLOCK, LOG2B, HAD, SPLIT)
    h16 = h.to(tl.float16)
    h_bf = h.to(tl.bfloat16)
    bcol = tl.arange(0, BLOCK // 8)
    if MASK_MODE == 1:  # byte weights: column i of pw has 2^j at row 8i + j
        pw = tl.where((col[:, None] // 8) == bcol[None, :], 1 << (col[:, None] % 8), 0).to(tl.float32)
        pw16 = pw.to(tl.float16)
    else:
        pw = tl.zeros([BLOCK, BLOCK // 8], dtype=tl.float32)  # unused
        pw16 = pw.to(tl.float16)
    n_tiles = tl.cdiv(M, ROWS)
    for tile in range(tl.program_id(0), n_tiles, tl.num_programs(0)):  # persistent grid
        row = tile * ROWS + r
        rok = row < M
        base = row.to(tl.int64)[:, None] * K + col[None, :]
        # pass 1: σ² = mean of squares of the unrotated row (= of the rotated row); keep x in L2
        ss = tl.zeros([ROWS], dtype=tl.float32)
        if SUBGROUP == 0:
            for b in range(NB):
                xv = tl.load(x_ptr + base + b * BLOCK, mask=rok[:, None], other=0.0, eviction_policy="evict_last")
                if SPLIT == 4:
                    xv = xv.to(tl.bfloat16)
                xv = xv.to(tl.float32)
                ss += tl.sum(xv * xv, axis=1)
        sigma = tl.sqrt_rn(ss / K)
        s1 = alpha * sigma + 1e-8
        d1 = (2.0 * s1) / (LEVELS - 1)
        if SUBGROUP == 0:
            if OUT >= 2:
                tl.store(scale_ptr + row, 0.5 * d1, mask=rok)
            else:
                tl.store(scale_ptr + row, d1, mask=rok)
        s = s1[:, None]
        delta = d1[:, None]
        tsig = (trust * sigma)[:, None]
        dscale = delta * (0.5 * inv_sqrt_b)
        inv_delta = tl.div_rn(tl.full([ROWS, 1], 1.0, tl.float32), delta)
        mbase = row.to(tl.int64)[:, None] * (K // 8) + bcol[None, :]
        # pass 2: rotate, quantize, write x̂ (or its codes) and the mask, block by block (x from L2)
        for b in range(NB):
            offs = base + b * BLOCK
            x = tl.load(x_ptr + offs, mask=rok[:, None], other=0.0, eviction_policy="evict_first")
            if HAD:
                y = _hdot(x, h, h_in, SPLIT) * inv_sqrt_b
            elif SPLIT == 4:
                y = x.to(tl.bfloat16).to(tl.float32)
            else:
                y = x.to(tl.float32)
            if SUBGROUP == 0:
                j = _grid_round(y, s, delta, inv_delta, LEVELS, FAST_DIV)
                q = (j - 0.5) * delta
                keep = tl.abs(q - y) <= tsig
            else:
                j, q, keep, d_g = _subgroup_grid(y, alpha, trust, LEVELS, ROWS, BLOCK, SUBGROUP, FAST_DIV)
                gcol = tl.arange(0, BLOCK // SUBGROUP)
                goffs = row.to(tl.int64)[:, None] * (K // SUBGROUP) + b * (BLOCK // SUBGROUP) + gcol[None, :]
                if OUT >= 2:
                    tl.store(scale_ptr + goffs, 0.5 * d_g, mask=rok[:, None])
                else:
                    tl.store(scale_ptr + goffs, d_g, mask=rok[:, None])
            if OUT == 0:
                out = q
            elif OUT == 1:
                if SUBGROUP == 0:
                    out = _derotate_codes(j, h, h16, dscale, EXACT_CODES)
                elif EXACT_CODES:  # Δ differs between the block's groups: x̂·H in fp32
                    out = tl.dot(q, h, input_precision="ieee") * inv_sqrt_b
                else:
                    out = _hdot(q, h, h_bf, 3) * inv_sqrt_b
            elif OUT == 2:
                out = 2.0 * j - 1.0
            else:
                out = j - 1.0
            tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=rok[:, None])
            if MASK_MODE == 2:
                tl.store(mask_ptr + offs, keep.to(tl.uint8), mask=rok[:, None])
            else:
                if MASK_MODE == 1:
                    if EXACT_CODES:
                        pk = tl.dot(keep.to(tl.float32), pw, input_precision="ieee")
                    else:
                        pk = tl.dot(keep.to(tl.float16), pw16)
                    packed = pk.to(tl.int32).to(tl.uint8)
                else:
                    packed = _pack_bits(keep, ROWS, BLOCK)
                tl.store(mask_ptr + mbase + b * (BLOCK // 8), packed, mask=rok[:, None])


@triton.jit
def _quest_bwd_kernel(g_ptr, mask_ptr, dx_ptr, NBLK, inv_sqrt_b,
                      BLOCK: tl.constexpr, LOG2B: tl.constexpr, T: tl.constexpr, HAD: tl.constexpr,
                      PRE_ROT: tl.constexpr, SPLIT: tl.constexpr, SPLIT_MID: tl.constexpr,
                      MASK_BYTES: tl.constexpr):
    """Flat tiles of T consecutive Hadamard blocks (row-major (M, K) = NBLK blocks of BLOCK)."""
    r = tl.arange(0, T)
    col = tl.arange(0, BLOCK)
    h, h_in = _hadamard_operands(g_ptr, BLOCK, LOG2B, HAD, SPLIT)
    h_bf = h.to(tl.bfloat16)
    n_tiles = tl.cdiv(NBLK, T)
    for tile in range(tl.program_id(0), n_tiles, tl.num_programs(0)):  # persistent grid
        t = (tile * T + r).to(tl.int64)
        ok = (t < NBLK)[:, None]
        offs = t[:, None] * BLOCK + col[None, :]
        g = tl.load(g_ptr + offs, mask=ok, other=0.0)
        if MASK_BYTES:
            keep = tl.load(mask_ptr + offs, mask=ok, other=0) != 0
        else:
            keep = _unpack_bits(mask_ptr, t[:, None] * (BLOCK // 8) + (col // 8)[None, :], col, ok)
        dx = _masked_grad(g, keep, h, h_in, h_bf, inv_sqrt_b, HAD, PRE_ROT, SPLIT, SPLIT_MID)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=ok)



@triton.jit
def _row_tile(tile, r, col, M, K, NB, ROWS: tl.constexpr, NBP: tl.constexpr, BLOCK: tl.constexpr):
    """Whole-row tile `tile` of the one-pass kernels: slot r holds block r % NBP of row
    tile·ROWS + r // NBP (NBP = blocks per row rounded up to a power of two; extra slots invalid)."""
    row = tile * ROWS + r // NBP
    blk = r % NBP
    valid = (row < M) & (blk < NB)
    offs = row.to(tl.int64)[:, None] * K + (blk * BLOCK)[:, None] + col[None, :]
    return row, blk, valid, offs


@triton.jit
def _quest_fwd_kernel_1pass(x_ptr, out_ptr, mask_ptr, scale_ptr, M, K, NB, alpha, trust, inv_sqrt_b,
                      LEVELS: tl.constexpr, BLOCK: tl.constexpr, LOG2B: tl.constexpr,
                      NBP: tl.constexpr, ROWS: tl.constexpr, HAD: tl.constexpr, DEROT: tl.constexpr,
                      SPLIT: tl.constexpr, EXACT_CODES: tl.constexpr):
    T: tl.constexpr = ROWS * NBP
    r = tl.arange(0, T)
    col = tl.arange(0, BLOCK)
    h, h_in = _hadamard_operands(x_ptr, BLOCK, LOG2B, HAD, SPLIT)
    h16 = h.to(tl.float16)
    n_tiles = tl.cdiv(M, ROWS)
    for tile in range(tl.program_id(0), n_tiles, tl.num_programs(0)):  # persistent grid
        row, blk, valid, offs = _row_tile(tile, r, col, M, K, NB, ROWS, NBP, BLOCK)
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
        j = _grid_round(y, s, delta, delta, LEVELS, False)
        q = (j - 0.5) * delta
        keep = tl.abs(q - y) <= trust * sigma
        if DEROT:  # x̂ in the rotated domain, or de-rotated exactly
            out = _derotate_codes(j, h, h16, delta * (0.5 * inv_sqrt_b), EXACT_CODES)
        else:
            out = q
        tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=valid[:, None])
        packed = _pack_bits(keep, T, BLOCK)  # trust mask → bits
        bcol = tl.arange(0, BLOCK // 8)
        moffs = row.to(tl.int64)[:, None] * (K // 8) + (blk * (BLOCK // 8))[:, None] + bcol[None, :]
        tl.store(mask_ptr + moffs, packed, mask=valid[:, None])
        tl.store(scale_ptr + row, tl.sum(delta, axis=1), mask=(row < M) & (blk == 0))


@triton.jit
def _quest_bwd_kernel_rows(g_ptr, mask_ptr, dx_ptr, M, K, NB, inv_sqrt_b,
                      BLOCK: tl.constexpr, LOG2B: tl.constexpr, NBP: tl.constexpr,
                      ROWS: tl.constexpr, HAD: tl.constexpr, PRE_ROT: tl.constexpr,
                      SPLIT: tl.constexpr, SPLIT_MID: tl.constexpr):
    T: tl.constexpr = ROWS * NBP
    r = tl.arange(0, T)
    col = tl.arange(0, BLOCK)
    h, h_in = _hadamard_operands(g_ptr, BLOCK, LOG2B, HAD, SPLIT)
    h_bf = h.to(tl.bfloat16)
    n_tiles = tl.cdiv(M, ROWS)
    for tile in range(tl.program_id(0), n_tiles, tl.num_programs(0)):  # persistent grid
        row, blk, valid, offs = _row_tile(tile, r, col, M, K, NB, ROWS, NBP, BLOCK)
        g = tl.load(g_ptr + offs, mask=valid[:, None], other=0.0)
        moffs = row.to(tl.int64)[:, None] * (K // 8) + (blk * (BLOCK // 8))[:, None] + (col // 8)[None, :]
        keep = _unpack_bits(mask_ptr, moffs, col, valid[:, None])
        dx = _masked_grad(g, keep, h, h_in, h_bf, inv_sqrt_b, HAD, PRE_ROT, SPLIT, SPLIT_MID)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=valid[:, None])


def _tile_block(t: torch.Tensor, block: int, hadamard: bool) -> int:
    if hadamard or not isinstance(t, torch.Tensor) or t.dim() != 2:
        return block
    return pick_block(t.shape[1])


def _max_programs(cfg: LaunchConfig, device: torch.device) -> int:
    """Persistent-grid cap (0 = none); the interpreter counts as one SM, so tests exercise the loop."""
    if not cfg.programs_per_sm:
        return 0
    return cfg.programs_per_sm * (num_sms(device) if device.type == "cuda" else 1)


def _grid(n_tiles: int, cap: int) -> tuple[int]:
    return (min(n_tiles, cap) if cap else n_tiles,)


# what the forward writes: x̂ in the rotated domain, x̂ de-rotated, or the integer grid codes of x̂
# (x̂ = codes·scale with scale = Δ/2: odd integers 2j − 1, |·| ≤ 2^b − 1; "offset_codes" j − 1 in
# [−2^(b−1), 2^(b−1) − 1] so that 8-bit codes fit int8: x̂ = (2·code + 1)·scale)
OUT_MODES = {"rotated": 0, "derotated": 1, "codes": 2, "offset_codes": 3}
CODE_DTYPES = (torch.int8, torch.float8_e4m3fn)


@functools.lru_cache(maxsize=256)
def _fwd_plan(k: int, dtype: torch.dtype, bits: int, block: int, hadamard: bool, out_mode: int,
              mask_format: str, config: LaunchConfig | None, device: torch.device, round_input: bool = False,
              subgroup: int = 0):
    """Everything about a forward launch except M (cached: keeps host time per call low).
    `subgroup`: a group size smaller than the block (0: per row); only the two-pass kernel has it."""
    nb = k // block
    one_pass_ok = out_mode < 2 and not round_input and not subgroup
    cfg = config_for(nb, dtype, config, one_pass_ok=one_pass_ok)
    split_in, _, exact = resolve_modes(dtype, cfg, round_input)
    common = dict(LEVELS=2**bits, BLOCK=block, LOG2B=int(math.log2(block)), HAD=bool(hadamard),
                  SPLIT=split_in, EXACT_CODES=exact, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    out_mode = out_mode if hadamard or out_mode != 1 else 0  # nothing to de-rotate
    if cfg.two_pass:
        mode = 2 if mask_format == "bytes" else (1 if cfg.pack == 1 and block >= 128 else 0)
        return (_quest_fwd_kernel, dict(common, OUT=out_mode, ROWS=cfg.rows, MASK_MODE=mode, FAST_DIV=cfg.fast_div,
                                        SUBGROUP=subgroup), cfg.rows, _max_programs(cfg, device))
    if mask_format != "packed" or not one_pass_ok:
        if config is None:  # automatic choice: the two-pass kernel writes every format
            return _fwd_plan(k, dtype, bits, block, hadamard, out_mode, mask_format, default_config(), device,
                             round_input, subgroup)
        raise ValueError("the one-pass forward (two_pass=False) only writes x̂ (no codes) with the packed "
                         "mask from an unrounded input, one grid per row or per group of >= block; use the "
                         "default two-pass LaunchConfig")
    check_row_kernel(k, block)
    rows, nbp = tile_rows(nb, cfg)
    return (_quest_fwd_kernel_1pass, dict(common, DEROT=out_mode == 1, ROWS=rows, NBP=nbp), rows,
            _max_programs(cfg, device))


def _check_fwd(x2d, bits, alpha, block, hadamard, mask_format, group_size=None) -> int:
    block = _tile_block(x2d, block, hadamard)
    check_2d("x2d", x2d, block)
    check_bits(bits, alpha)
    check_group(x2d.shape[1], group_size)
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format={mask_format!r} must be one of {MASK_FORMATS}")
    return block


def quest_quantize_fwd(x2d: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                       block: int = 128, hadamard: bool = True, derotate: bool = False,
                       config: LaunchConfig | None = None, out_dtype: torch.dtype | None = None,
                       mask_format: str = "packed", round_input: bool = False, group_size: int | None = None):
    """QuEST forward on rows of x2d (M, K): returns (x̂, mask, Δ (M,) fp32; (M, K/G) with `group_size` G).

    x̂ has `out_dtype` (default: x2d's dtype) and lies in the rotated domain (Q(x·H));
    `derotate=True` returns Q(x·H)·Hᵀ instead (same mask and Δ).  trust=None: half a step
    (α/(2^b − 1) in σ units).  mask_format "packed": (M, K//8) uint8 bits; "bytes": (M, K) uint8 0/1.
    hadamard=False: no rotation; `block` is then only the tile width (any K multiple of 16 works).
    round_input: quantize bf16(x) instead of an fp32 x (what autocast feeds a bf16 GEMM).
    group_size: one grid per G consecutive rotated values (a power of two dividing K; None or K: per row).
    """
    block = _check_fwd(x2d, bits, alpha, block, hadamard, mask_format, group_size)
    if out_dtype is not None and out_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"out_dtype={out_dtype} must be float32, float16 or bfloat16")
    return _fwd_launch(x2d, bits, alpha, trust, block, hadamard, OUT_MODES["derotated" if derotate else "rotated"],
                       config, out_dtype, mask_format, round_input, group_size)


def code_mode(bits: int, code_dtype: torch.dtype) -> str:
    """"codes" (2j − 1) where they fit `code_dtype` exactly, else "offset_codes" (j − 1, int8 only).

    float8_e4m3fn holds the odd integers up to 15 exactly (b ≤ 4); int8 up to 127 (b ≤ 7), and the
    offset codes of b = 8."""
    if code_dtype == torch.float8_e4m3fn:
        if bits > 4:
            raise ValueError(f"bits={bits} codes (|2j − 1| ≤ {2**bits - 1}) are not exact in float8_e4m3fn "
                             "(b ≤ 4); use int8")
        return "codes"
    if code_dtype == torch.int8:
        return "codes" if bits <= 7 else "offset_codes"
    raise TypeError(f"code_dtype={code_dtype} must be one of {CODE_DTYPES}")


def quest_quantize_codes(x2d: torch.Tensor, bits: int, alpha: float, trust: float | None = None,
                         block: int = 128, hadamard: bool = True, code_dtype: torch.dtype = torch.int8,
                         config: LaunchConfig | None = None, round_input: bool = False):
    """QuEST forward that writes the integer grid codes of Q(x·H) instead of x̂: (codes, mask, scale).

    codes (M, K) `code_dtype` and scale (M,) fp32 = Δ/2 give x̂ = codes·scale (mode "codes", b ≤ 4 in
    float8_e4m3fn, b ≤ 7 in int8) or x̂ = (2·codes + 1)·scale ("offset_codes", b = 8 in int8); see
    `code_mode`.  The mask is the packed trust mask, exactly as `quest_quantize_fwd` writes it.
    """
    block = _check_fwd(x2d, bits, alpha, block, hadamard, "packed")
    mode = code_mode(bits, code_dtype)
    return _fwd_launch(x2d, bits, alpha, trust, block, hadamard, OUT_MODES[mode], config, code_dtype, "packed",
                       round_input)


def _fwd_launch(x2d, bits, alpha, trust, block, hadamard, out_mode, config, out_dtype, mask_format,
                round_input=False, group=None):
    """Unchecked launch (autograd calls this directly after its own cheap checks)."""
    if trust is None:
        trust = default_trust(bits, alpha)
    m, k = x2d.shape
    subgroup = 0
    if group is not None and group != k:
        if group >= block:  # whole blocks per group: one grid per row of the (M·K/G, G) view
            out, mask, scale = _fwd_launch(x2d.view(-1, group), bits, alpha, trust, block, hadamard, out_mode, config,
                                           out_dtype, mask_format, round_input)
            return out.view(m, k), mask.view(m, -1), scale.view(m, k // group)
        subgroup = group
    if round_input and x2d.dtype == torch.float32 and interpreting():
        x2d = x2d.to(torch.bfloat16).float()  # the interpreter's bf16 is unreliable: round here instead
    kernel, meta, rows, cap = _fwd_plan(k, x2d.dtype, bits, block, hadamard, out_mode, mask_format,
                                        config, x2d.device, round_input and x2d.dtype == torch.float32, subgroup)
    out = torch.empty((m, k), dtype=out_dtype or x2d.dtype, device=x2d.device)
    mask = torch.empty((m, k if mask_format == "bytes" else k // 8), dtype=torch.uint8, device=x2d.device)
    scale = torch.empty((m, k // subgroup) if subgroup else (m,), dtype=torch.float32, device=x2d.device)
    if m == 0:
        return out, mask, scale
    kernel[_grid(triton.cdiv(m, rows), cap)](
        x2d, out, mask, scale, m, k, k // block, float(alpha), float(trust), 1.0 / math.sqrt(block), **meta)
    return out, mask, scale


@functools.lru_cache(maxsize=256)
def _bwd_plan(k: int, dtype: torch.dtype, block: int, hadamard: bool, grad_rotated: bool, mask_bytes: bool,
              cfg: LaunchConfig | None, device: torch.device):
    nb = k // block
    cfg = config_for(nb, dtype, cfg, forward=False)
    split_in, split_mid, _ = resolve_modes(dtype, cfg)
    common = dict(BLOCK=block, LOG2B=int(math.log2(block)), HAD=bool(hadamard), PRE_ROT=bool(grad_rotated),
                  SPLIT=split_in, SPLIT_MID=split_mid, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    if cfg.two_pass:
        return _quest_bwd_kernel, dict(common, T=cfg.tile_blocks, MASK_BYTES=mask_bytes), cfg.tile_blocks, \
            _max_programs(cfg, device), True
    if mask_bytes:
        raise ValueError("the row-tiled backward (two_pass=False) only reads the packed mask")
    check_row_kernel(k, block)
    rows, nbp = tile_rows(nb, cfg)
    return _quest_bwd_kernel_rows, dict(common, ROWS=rows, NBP=nbp), rows, _max_programs(cfg, device), False


def quest_quantize_bwd(grad: torch.Tensor, mask: torch.Tensor, block: int = 128, hadamard: bool = True,
                       grad_rotated: bool = False, config: LaunchConfig | None = None,
                       out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Fused masked-Hadamard backward: ∂x = ((g·H) ⊙ M)·Hᵀ, reading the mask from `quest_quantize_fwd`
    (either format).  ∂x has `out_dtype` (default: grad's dtype).

    grad_rotated=True: `grad` is the gradient w.r.t. the rotated-domain x̂ (so ∂x = (g ⊙ M)·Hᵀ).
    """
    block = _tile_block(grad, block, hadamard)
    check_2d("grad", grad, block)
    m, k = grad.shape
    if mask.dtype != torch.uint8 or tuple(mask.shape) not in ((m, k // 8), (m, k)) or not mask.is_contiguous():
        raise ValueError(f"mask must be the packed uint8 (M, K//8) = ({m}, {k // 8}) or bytes (M, K) contiguous "
                         f"tensor from quest_quantize_fwd; got {mask.dtype} {tuple(mask.shape)}")
    if mask.device != grad.device:
        raise ValueError(f"mask is on {mask.device} but grad on {grad.device}")
    return _bwd_launch(grad, mask, block, hadamard, grad_rotated, config, out_dtype)


def _bwd_launch(grad, mask, block, hadamard, grad_rotated, config, out_dtype):
    m, k = grad.shape
    mask_bytes = mask.shape[1] == k and k != k // 8
    kernel, meta, tile, cap, flat = _bwd_plan(k, grad.dtype, block, hadamard, grad_rotated, mask_bytes,
                                              config, grad.device)
    dx = torch.empty((m, k), dtype=out_dtype or grad.dtype, device=grad.device)
    if m == 0:
        return dx
    if flat:
        nblk = m * (k // block)
        kernel[_grid(triton.cdiv(nblk, tile), cap)](grad, mask, dx, nblk, 1.0 / math.sqrt(block), **meta)
    else:
        kernel[_grid(triton.cdiv(m, tile), cap)](grad, mask, dx, m, k, k // block, 1.0 / math.sqrt(block), **meta)
    return dx
