"""QuEST linear layer with a real low-precision forward GEMM (issue 12).

Both sides of a rotated QuEST GEMM lie on their grids: Q(x·H) = cx·sx and Q(W·H) = cw·sw with
integer codes c (odd integers 2j − 1, |c| ≤ 2^b − 1; see `quest_quantize_codes`) and one scale per
row (Δ/2).  So

    out = Q(x·H)·Q(W·H)ᵀ = (cx·cwᵀ) ⊙ (sx·swᵀ)

and the matmul runs on the codes:
  * "fp8"  (b ≤ 4 on both sides): codes in float8_e4m3fn (odd integers ≤ 15 are exact), one
           `torch._scaled_mm` with row-wise scales (sx per token, sw per output feature);
  * "int8" (b ≤ 8): codes in int8 (b = 8 as offset codes j − 1, corrected by row sums),
           `torch._int_mm` (int32 accumulate) and a Triton epilogue that applies the scales.
Every product is an integer and the sums stay below 2^24 (K·(2^b − 1)² for fp8, int32 for int8),
so the GEMM itself is exact; only the final scaling rounds.  The fake-quant path rounds x̂ to bf16
before a bf16 GEMM, so this path is the *more* exact of the two.

Saved for the backward: the 1-byte codes, the row scales and the packed trust masks (not bf16 x̂).
The backward dequantizes the codes to bf16 (bit-identical to the fake-quant x̂), runs the two
full-precision GEMMs ∂x̂ = g·Ŵ and ∂Ŵ = gᵀ·X̂, and maps them back through the masked Hadamard
(`quest_quantize_bwd` with a pre-rotated gradient).  Gradients therefore equal the fake-quant path's.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import triton
import triton.language as tl

from quest_lab.kernels._common import interpreting
from quest_lab.kernels.ops import encode_config, use_ops
from quest_lab.kernels.quest import OUT_MODES, _bwd_launch, _fwd_launch, code_mode

# code format -> (code dtype, max bits on either side, minimum CUDA capability)
CODE_FORMATS: dict[str, tuple[torch.dtype, int, tuple[int, int]]] = {
    "fp8": (torch.float8_e4m3fn, 4, (8, 9)),
    "int8": (torch.int8, 8, (8, 0)),
}
# stored integer v → code c = MULT·v + OFF, per code mode
_AFFINE = {"codes": (1, 0), "offset_codes": (2, 1)}


def code_format_for(w_bits: float, a_bits: float, device: torch.device | None = None) -> str | None:
    """The cheapest exact code format for these bit-widths on `device` (None: no low-precision GEMM).

    fp8 needs b ≤ 4 and sm_89+ (Ada/Hopper FP8 tensor cores); int8 needs b ≤ 8 and sm_80+.  On a
    CPU device the formats are judged by bits alone (the torch/interpreter paths run them)."""
    bits = max(float(w_bits), float(a_bits))
    for name, (_, max_bits, cap) in CODE_FORMATS.items():
        if bits > max_bits or bits != int(bits):
            continue
        if device is not None and device.type == "cuda" and torch.cuda.get_device_capability(device) < cap:
            continue
        return name
    return None


@triton.jit
def _dequant_kernel(c_ptr, s_ptr, out_ptr, n, K, MULT: tl.constexpr, OFF: tl.constexpr, BLOCK: tl.constexpr):
    """out = (MULT·c + OFF)·s[row] for a row-major (M, K) code tensor, flat tiles of BLOCK elements."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    c = tl.load(c_ptr + offs, mask=ok).to(tl.float32)
    s = tl.load(s_ptr + offs // K, mask=ok, other=0.0)
    tl.store(out_ptr + offs, ((MULT * c + OFF) * s).to(out_ptr.dtype.element_ty), mask=ok)


def dequantize_codes(codes: torch.Tensor, scale: torch.Tensor, mode: str = "codes",
                     dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """x̂ = c·scale ("codes") or (2c + 1)·scale ("offset_codes"), rounded once to `dtype`.

    (2j − 1)·(Δ/2) and (j − ½)·Δ are the same real number, so this equals the fake-quant x̂ bit for bit."""
    m, k = codes.shape
    out = torch.empty((m, k), dtype=dtype, device=codes.device)
    if codes.numel():
        mult, off = _AFFINE[mode]
        block = 1024
        _dequant_kernel[(triton.cdiv(codes.numel(), block),)](codes, scale, out, codes.numel(), k,
                                                              MULT=mult, OFF=off, BLOCK=block)
    return out


@triton.jit
def _int_epilogue_kernel(p_ptr, rx_ptr, rw_ptr, sx_ptr, sw_ptr, out_ptr, M, N, K,
                         MX: tl.constexpr, OX: tl.constexpr, MW: tl.constexpr, OW: tl.constexpr,
                         BM: tl.constexpr, BN: tl.constexpr):
    """out = (MX·MW·P + MX·OW·rx + OX·MW·rw + OX·OW·K)·sx·swᵀ, the integer part in int32 (exact)."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    ok = (rm < M)[:, None] & (rn < N)[None, :]
    offs = rm.to(tl.int64)[:, None] * N + rn[None, :]
    acc = tl.load(p_ptr + offs, mask=ok, other=0) * (MX * MW)
    if OW != 0:
        acc += (MX * OW) * tl.load(rx_ptr + rm, mask=rm < M, other=0)[:, None]
    if OX != 0:
        acc += (OX * MW) * tl.load(rw_ptr + rn, mask=rn < N, other=0)[None, :]
    acc += OX * OW * K
    sx = tl.load(sx_ptr + rm, mask=rm < M, other=0.0)
    sw = tl.load(sw_ptr + rn, mask=rn < N, other=0.0)
    out = acc.to(tl.float32) * sx[:, None] * sw[None, :]
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=ok)


def _int8_gemm(cx, sx, mode_x, cw, sw, mode_w, out_dtype):
    m, k = cx.shape
    n = cw.shape[0]
    a = cx
    if cx.is_cuda and m <= 16:  # torch._int_mm needs M > 16 on CUDA: pad with zero rows
        a = torch.cat([cx, cx.new_zeros(17 - m, k)])
    p = torch._int_mm(a, cw.t())[:m]
    mx, ox = _AFFINE[mode_x]
    mw, ow = _AFFINE[mode_w]
    rx = cx.sum(1, dtype=torch.int32) if ow else p.new_zeros(1)
    rw = cw.sum(1, dtype=torch.int32) if ox else p.new_zeros(1)
    out = torch.empty((m, n), dtype=out_dtype, device=cx.device)
    bm, bn = 32, 128
    _int_epilogue_kernel[(triton.cdiv(m, bm), triton.cdiv(n, bn))](p, rx, rw, sx, sw, out, m, n, k,
                                                                   MX=mx, OX=ox, MW=mw, OW=ow, BM=bm, BN=bn)
    return out


def _fp8_gemm(cx, sx, cw, sw, out_dtype):
    # row-wise scaled FP8 GEMM: A (M, K) row-major, B = cwᵀ (K, N) column-major, fp32 accumulation
    # (use_fast_accum=False keeps the integer sums exact)
    return torch._scaled_mm(cx, cw.t(), scale_a=sx[:, None], scale_b=sw[None, :], out_dtype=out_dtype,
                            use_fast_accum=False)


def lowp_gemm(cx: torch.Tensor, sx: torch.Tensor, cw: torch.Tensor, sw: torch.Tensor, mode_x: str = "codes",
              mode_w: str = "codes", out_dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """(codes_x·scale_x)·(codes_w·scale_w)ᵀ from the codes: (M, K) × (N, K) → (M, N) `out_dtype`."""
    if cx.dtype != cw.dtype:
        raise TypeError(f"code dtypes differ: {cx.dtype} vs {cw.dtype}")
    if cx.dtype == torch.float8_e4m3fn:
        return _fp8_gemm(cx, sx, cw, sw, out_dtype)
    if cx.dtype == torch.int8:
        return _int8_gemm(cx, sx, mode_x, cw, sw, mode_w, out_dtype)
    raise TypeError(f"codes must be float8_e4m3fn or int8, got {cx.dtype}")


def _lowp_fwd_impl(x, weight, bias, a, w, block, fmt, out_dtype, round_input):
    """(out, cx, mx, sx, cw, mw, sw): the layer's output and what the backward needs."""
    with torch.autocast(x.device.type, enabled=False):  # every dtype below is explicit
        k = x.shape[-1]
        x2d = x.reshape(-1, k)
        if not x2d.is_contiguous():
            x2d = x2d.contiguous()
        code_dtype = CODE_FORMATS[fmt][0]
        mode_x, mode_w = code_mode(a[0], code_dtype), code_mode(w[0], code_dtype)
        cx, mx, sx = _fwd_launch(x2d, a[0], a[1], a[2], block, True, OUT_MODES[mode_x], None, code_dtype,
                                 "packed", round_input)
        cw, mw, sw = _fwd_launch(weight.contiguous(), w[0], w[1], w[2], block, True, OUT_MODES[mode_w], None,
                                 code_dtype, "packed", round_input)
        out = lowp_gemm(cx, sx, cw, sw, mode_x, mode_w, out_dtype)
        if bias is not None:
            out = out + bias.to(out_dtype)
        return out.view(*x.shape[:-1], out.shape[-1]), cx, mx, sx, cw, mw, sw


def _lowp_bwd(grad, saved, block, mode_x, mode_w, x_dtype, w_dtype, has_bias, needs, dequant, bwd):
    """(∂x, ∂W, ∂b) from the saved codes; `dequant` / `bwd`: the eager functions or the custom ops."""
    cx, mx, sx, cw, mw, sw = saved
    n = grad.shape[-1]
    g2d = grad.reshape(-1, n)
    if not g2d.is_contiguous():
        g2d = g2d.contiguous()
    dx = dw = db = None
    if needs[0]:
        w_hat = dequant(cw, sw, mode_w, g2d.dtype)  # (N, K)
        dx = bwd(g2d @ w_hat, mx, block, True, True, None, x_dtype)
        dx = dx.view(*grad.shape[:-1], dx.shape[-1])
    if needs[1]:
        x_hat = dequant(cx, sx, mode_x, g2d.dtype)  # (M, K)
        dw = bwd(g2d.t() @ x_hat, mw, block, True, True, None, w_dtype)
    if has_bias and needs[2]:
        db = g2d.sum(0)
    return dx, dw, db


def _bwd_eager(g, mask, block, hadamard, grad_rotated, config, out_dtype):
    return _bwd_launch(g, mask, block, hadamard, grad_rotated, config, out_dtype)


def _bwd_op(g, mask, block, hadamard, grad_rotated, config, out_dtype):
    return torch.ops.quest_lab.fake_quant_bwd(g, mask, block, hadamard, grad_rotated, encode_config(config), out_dtype)


def _dequant_op(codes, scale, mode, dtype):
    return torch.ops.quest_lab.dequantize_codes(codes, scale, mode, dtype)


class _QuestLowpLinear(torch.autograd.Function):
    """The eager path; under `torch.compile` the custom op `quest_lab::lowp_linear` (same bodies)."""

    @staticmethod
    def forward(ctx, x, weight, bias, a, w, block, fmt, out_dtype, round_input):
        # a / w: (bits, alpha, trust) of the activation / weight side
        out, *saved = _lowp_fwd_impl(x, weight, bias, a, w, block, fmt, out_dtype, round_input)
        ctx.save_for_backward(*saved)
        code_dtype = CODE_FORMATS[fmt][0]
        ctx.meta = (block, code_mode(a[0], code_dtype), code_mode(w[0], code_dtype), x.dtype, weight.dtype,
                    bias is not None)
        return out

    @staticmethod
    def backward(ctx, grad):
        dx, dw, db = _lowp_bwd(grad, ctx.saved_tensors, *ctx.meta, ctx.needs_input_grad, dequantize_codes, _bwd_eager)
        return dx, dw, db, None, None, None, None, None, None


# --- custom ops (kernels/ops.py) ---------------------------------------------------------------------

@torch.library.custom_op("quest_lab::dequantize_codes", mutates_args=())
def _dequantize_codes_op(codes: torch.Tensor, scale: torch.Tensor, mode: str, dtype: torch.dtype) -> torch.Tensor:
    return dequantize_codes(codes, scale, mode, dtype)


@_dequantize_codes_op.register_fake
def _(codes, scale, mode, dtype):
    return codes.new_empty(codes.shape, dtype=dtype)


@torch.library.custom_op("quest_lab::lowp_linear", mutates_args=())
def _lowp_linear_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], a_bits: int, a_alpha: float,
                    a_trust: Optional[float], w_bits: int, w_alpha: float, w_trust: Optional[float], block: int,
                    fmt: str, out_dtype: torch.dtype, round_input: bool
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                               torch.Tensor]:
    out, *saved = _lowp_fwd_impl(x, weight, bias, (a_bits, a_alpha, a_trust), (w_bits, w_alpha, w_trust), block,
                                 fmt, out_dtype, round_input)
    return (out, *saved)


@_lowp_linear_op.register_fake
def _(x, weight, bias, a_bits, a_alpha, a_trust, w_bits, w_alpha, w_trust, block, fmt, out_dtype, round_input):
    k = x.shape[-1]
    n = weight.shape[0]
    m = x.numel() // k
    code_dtype = CODE_FORMATS[fmt][0]
    f32, u8 = torch.float32, torch.uint8
    return (x.new_empty((*x.shape[:-1], n), dtype=out_dtype),
            x.new_empty((m, k), dtype=code_dtype), x.new_empty((m, k // 8), dtype=u8), x.new_empty((m,), dtype=f32),
            x.new_empty((n, k), dtype=code_dtype), x.new_empty((n, k // 8), dtype=u8), x.new_empty((n,), dtype=f32))


def _lowp_setup(ctx, inputs, output):
    x, weight, bias, a_bits, _aa, _at, w_bits, _wa, _wt, block, fmt, _odt, _ri = inputs
    ctx.save_for_backward(*output[1:])
    code_dtype = CODE_FORMATS[fmt][0]
    ctx.meta = (block, code_mode(a_bits, code_dtype), code_mode(w_bits, code_dtype), x.dtype, weight.dtype,
                bias is not None)


def _lowp_backward(ctx, grad, *_unused):
    dx, dw, db = _lowp_bwd(grad, ctx.saved_tensors, *ctx.meta, ctx.needs_input_grad, _dequant_op, _bwd_op)
    return (dx, dw, db) + (None,) * 10


_lowp_linear_op.register_autograd(_lowp_backward, setup_context=_lowp_setup)


def _opt_float(v):
    return None if v is None else float(v)


def quest_lowp_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      a: tuple[int, float, float], w: tuple[int, float, float], block: int = 128,
                      fmt: str | None = None, out_dtype: torch.dtype = torch.bfloat16,
                      round_input: bool = True) -> torch.Tensor:
    """QuEST linear layer (both sides Hadamard-rotated, trust-masked) with the forward GEMM on codes.

    `a` / `w` = (bits, alpha, trust) of the activation / weight quantizer; `fmt` "fp8" | "int8"
    (None: `code_format_for`).  Returns x's leading shape × out_features in `out_dtype`; ∂x, ∂W in
    x's and W's dtypes.  round_input: quantize bf16(x) and bf16(W), as autocast would feed a bf16 GEMM.
    """
    k = x.shape[-1]
    if weight.dim() != 2 or weight.shape[1] != k:
        raise ValueError(f"weight {tuple(weight.shape)} does not match x's last dim {k}")
    fmt = fmt or code_format_for(w[0], a[0], x.device)
    if fmt not in CODE_FORMATS:
        raise ValueError(f"no low-precision GEMM for w{w[0]}a{a[0]} on {x.device}; formats: {', '.join(CODE_FORMATS)}")
    if max(a[0], w[0]) > CODE_FORMATS[fmt][1]:
        raise ValueError(f"format {fmt!r} holds codes of at most {CODE_FORMATS[fmt][1]} bits, got w{w[0]}a{a[0]}")
    if k % block or k % 16 or weight.shape[0] % 16:
        raise ValueError(f"K={k} must be a multiple of the block {block} and of 16, and N={weight.shape[0]} "
                         "of 16, for the low-precision GEMM")
    if x.device.type != "cuda" and not interpreting():
        raise RuntimeError("quest_lowp_linear needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU)")
    if use_ops():  # torch.compile traces the custom op (kernels/ops.py)
        return torch.ops.quest_lab.lowp_linear(x, weight, bias, int(a[0]), float(a[1]), _opt_float(a[2]), int(w[0]),
                                               float(w[1]), _opt_float(w[2]), block, fmt, out_dtype, round_input)[0]
    return _QuestLowpLinear.apply(x, weight, bias, tuple(a), tuple(w), block, fmt, out_dtype, round_input)


@functools.lru_cache(maxsize=64)
def lowp_supported(w_bits: float, a_bits: float, k: int, n: int, block: int, device: torch.device) -> str | None:
    """The format `QuantLinear` may use automatically for this layer on `device`, or None."""
    if device.type != "cuda" or block < 16 or k % block or k % 16 or n % 16:
        return None
    return code_format_for(w_bits, a_bits, device)
