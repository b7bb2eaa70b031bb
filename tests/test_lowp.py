"""Low-precision forward GEMM (kernels/lowp.py) and the training-path kernel options, on the CPU
(Triton interpreter; torch's CPU `_scaled_mm` / `_int_mm` run the FP8 / int8 GEMMs)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from quest_lab.kernels import (quest_fake_quant, quest_fake_quant_ref, quest_fake_quant_rotated, quest_quantize_bwd_ref,
                               quest_quantize_fwd, quest_quantize_fwd_ref, unpack_mask)
from quest_lab.kernels.lowp import (code_format_for, dequantize_codes, lowp_gemm, quest_lowp_linear)
from quest_lab.kernels.quest import code_mode, quest_quantize_codes
from quest_lab.kernels.reference import quest_codes_ref, quest_lowp_linear_ref
from quest_lab.quant import QuantConfig, QuantLinear
from quest_lab.quant.gaussian import gaussian_alpha

FP8 = torch.float8_e4m3fn


def _x(m, k, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.rand(m, 1, generator=g).mul(3).add(0.1)
    x[:, :2] += 4.0
    return x.to(dtype)


def _side(bits):
    alpha = gaussian_alpha(bits)
    return bits, alpha, alpha / (2**bits - 1)


@pytest.mark.parametrize("bits,code_dtype", [(1, FP8), (2, FP8), (4, FP8), (2, torch.int8), (5, torch.int8),
                                             (7, torch.int8), (8, torch.int8)])
def test_codes_match_reference_and_fake_quant(bits, code_dtype):
    x = _x(37, 256, seed=bits)
    mode = code_mode(bits, code_dtype)
    c, m, s = quest_quantize_codes(x, *_side(bits), code_dtype=code_dtype)
    cr, mr, sr = quest_codes_ref(x, *_side(bits), mode=mode)
    assert c.dtype == code_dtype and s.shape == (37,)
    torch.testing.assert_close(s, sr, rtol=2e-6, atol=0)
    off = c.float().long() != cr
    assert int(off.sum()) <= 2, "codes differ beyond rounding ties"
    assert torch.equal(m, mr) or int((unpack_mask(m) != unpack_mask(mr)).sum()) <= 2
    lim = 2**bits - 1 if mode == "codes" else 2 ** (bits - 1)
    assert int(c.float().abs().max()) <= lim
    if mode == "codes":  # odd integers
        assert torch.all(c.float().long() % 2 == 1)
    # dequantized codes are the fake-quant x̂ bit for bit (same j; (2j−1)·Δ/2 == (j−½)·Δ)
    q, mq, _ = quest_quantize_fwd(x, *_side(bits))
    assert torch.equal(dequantize_codes(c, s, mode, torch.float32), q) and torch.equal(m, mq)
    # rounded once to a 16-bit type (fp16 here: the interpreter truncates bf16; the GPU compile rounds)
    assert torch.equal(dequantize_codes(c, s, mode, torch.float16), q.to(torch.float16))


def test_fp8_codes_rejected_above_4_bits():
    with pytest.raises(ValueError, match="float8"):
        quest_quantize_codes(_x(4, 128), *_side(5), code_dtype=FP8)
    with pytest.raises(TypeError, match="code_dtype"):
        quest_quantize_codes(_x(4, 128), *_side(4), code_dtype=torch.int16)


@pytest.mark.parametrize("wa", [(4, 4), (2, 2), (3, 4), (8, 8), (4, 8), (8, 5)])
def test_lowp_gemm_exact_against_float64_codes(wa):
    """The GEMM on codes equals the float64 product of the codes up to the final fp32 scaling."""
    wb, ab = wa
    fmt = code_format_for(wb, ab)
    x, w = _x(40, 384, seed=1), _x(48, 384, seed=2)
    dt = {"fp8": FP8, "int8": torch.int8}[fmt]
    cx, _, sx = quest_quantize_codes(x, *_side(ab), code_dtype=dt)
    cw, _, sw = quest_quantize_codes(w, *_side(wb), code_dtype=dt)
    mx, mw = code_mode(ab, dt), code_mode(wb, dt)
    out = lowp_gemm(cx, sx, cw, sw, mx, mw, out_dtype=torch.float32)

    def true_codes(c, mode):  # the odd integers 2j − 1 whatever the storage
        return c.double() if mode == "codes" else 2 * c.double() + 1

    ref = (true_codes(cx, mx) @ true_codes(cw, mw).T) * sx.double()[:, None] * sw.double()[None, :]
    assert out.shape == (40, 48) and out.dtype == torch.float32
    # exact integer sums (int8; FP8 on the GPU) times two scales: fp32 rounding only.  (torch's CPU
    # FP8 GEMM scales before it accumulates, so the bound is on the output's scale, not per element.)
    bound = 2e-6 * (sx.double()[:, None] * sw.double()[None, :] * (cx.float().abs() @ cw.float().abs().T).double())
    assert torch.all((out.double() - ref).abs() <= bound)


def test_code_format_choice():
    assert code_format_for(4, 4) == "fp8" and code_format_for(2, 1) == "fp8"
    assert code_format_for(8, 4) == "int8" and code_format_for(5, 5) == "int8"
    assert code_format_for(16, 4) is None and code_format_for(1.58, 1.58) is None


@pytest.mark.parametrize("fmt,bits", [("fp8", 4), ("int8", 4), ("int8", 8)])
def test_lowp_linear_forward_and_grads_equal_fake_quant(fmt, bits):
    """quest_lowp_linear vs F.linear on the fake-quantized (rotated) operands: same forward within fp32
    accumulation error, and the same gradients (the backward dequantizes the same x̂, Ŵ)."""
    x = _x(2 * 19, 256, seed=3).reshape(2, 19, 256).requires_grad_(True)
    w = (_x(64, 256, seed=4) * 0.05).requires_grad_(True)
    x2, w2 = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    side = _side(bits)
    out = quest_lowp_linear(x, w, None, side, side, fmt=fmt, out_dtype=torch.float32, round_input=True)
    ref = F.linear(quest_fake_quant_rotated(x2, *side, round_input=True),
                   quest_fake_quant_rotated(w2, *side, round_input=True))
    assert out.shape == ref.shape == (2, 19, 64)
    scale = float(ref.detach().abs().max())
    assert float((out - ref).detach().abs().max()) <= 1e-5 * scale
    exact = quest_lowp_linear_ref(x.detach(), w.detach(), side, side, round_input=True)
    assert float((out.detach().double() - exact).abs().max()) <= 1e-6 * scale  # at least as exact as fake quant
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-5, atol=1e-6)


def test_lowp_linear_bias_and_errors():
    x, w, b = _x(20, 128, seed=5), _x(32, 128, seed=6), torch.randn(32, requires_grad=True)
    side = _side(4)
    out = quest_lowp_linear(x, w, b, side, side, fmt="int8", out_dtype=torch.float32)
    base = quest_lowp_linear(x, w, None, side, side, fmt="int8", out_dtype=torch.float32)
    torch.testing.assert_close(out, base + b.detach())
    out.sum().backward()
    torch.testing.assert_close(b.grad, torch.full((32,), 20.0))
    with pytest.raises(ValueError, match="at most 4 bits"):
        quest_lowp_linear(x, w, None, _side(8), side, fmt="fp8")
    with pytest.raises(ValueError, match="does not match"):
        quest_lowp_linear(x, w[:, :64], None, side, side, fmt="int8")


def test_quantlinear_lowp_matches_fake():
    """QuantLinear(gemm='lowp') on the CPU (interpreter) equals gemm='fake': outputs and gradients."""
    torch.manual_seed(0)
    nets = {}
    for gemm in ("fake", "lowp"):
        torch.manual_seed(0)
        nets[gemm] = QuantLinear(128, 64, qconfig=QuantConfig(name="quest", w_bits=4, a_bits=4, backend="triton",
                                                              gemm=gemm))
    x = _x(24, 128, seed=7)
    res = {}
    for gemm, net in nets.items():
        xi = x.clone().requires_grad_(True)
        y = net(xi)
        y.pow(2).sum().backward()
        res[gemm] = (y.detach(), xi.grad, net.weight.grad)
    assert nets["lowp"].lowp_format(x, None) == "fp8" and nets["fake"].lowp_format(x, None) is None
    (yf, xf, wf), (yl, xl, wl) = res["fake"], res["lowp"]
    torch.testing.assert_close(yl, yf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xl, xf, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(wl, wf, rtol=1e-4, atol=1e-5)


def test_quantlinear_auto_gemm_is_fake_on_cpu():
    net = QuantLinear(128, 64, qconfig=QuantConfig(name="quest", w_bits=4, a_bits=4))
    assert net.lowp_format(_x(4, 128), torch.bfloat16) is None  # not CUDA: never picked automatically
    with pytest.raises(ValueError, match="gemm"):
        QuantConfig(name="quest", w_bits=4, a_bits=4, gemm="int4")


def test_round_input_quantizes_bf16_of_x():
    """round_input: the kernel quantizes bf16(x) (what autocast feeds the GEMM); torch agrees."""
    x = _x(21, 256, seed=8)
    q, m, d = quest_quantize_fwd(x, 4, gaussian_alpha(4), round_input=True)
    qr, mr, dr = quest_quantize_fwd_ref(x.to(torch.bfloat16).float(), 4, gaussian_alpha(4))
    torch.testing.assert_close(d, dr, rtol=2e-6, atol=0)
    j, jr = (torch.round(t.double() / dd.double()[:, None] + 0.5) for t, dd in ((q, d), (qr, dr)))
    assert int((j != jr).sum()) <= 2 and int((unpack_mask(m) != unpack_mask(mr)).sum()) <= 2
    out = quest_fake_quant_rotated(x, 4, gaussian_alpha(4), out_dtype=torch.float16, round_input=True)
    assert out.dtype == torch.float16 and torch.equal(out, q.to(torch.float16))  # (interpreter: no bf16 out)


def test_long_rows_beyond_the_one_pass_limit():
    """K = 16,512 = 129 blocks of 128: beyond the one-pass kernels' register limit.  The default
    two-pass forward and flat backward take it (the `auto` backend used to raise here)."""
    k = 16_512
    x = _x(3, k, seed=9).requires_grad_(True)
    out = quest_fake_quant(x, 4, gaussian_alpha(4))
    ref = quest_fake_quant_ref(x.detach().double(), 4, gaussian_alpha(4))
    assert float((out.detach().double() - ref).norm() / ref.norm()) < 1e-5
    g = _x(3, k, seed=10)
    out.backward(g)
    _, mr, _ = quest_quantize_fwd_ref(x.detach(), 4, gaussian_alpha(4))
    dref = quest_quantize_bwd_ref(g.double(), mr)
    assert float((x.grad.double() - dref).norm() / dref.norm()) < 1e-5
    from quest_lab.kernels import LaunchConfig

    with pytest.raises(ValueError, match="one-pass"):
        quest_quantize_fwd(x.detach(), 4, gaussian_alpha(4), config=LaunchConfig(two_pass=False))
    # the QuEST quantizer's auto decision only needs a block >= 16, whatever K is
    from quest_lab.quant.quest import QuestQuantizer

    qz = QuestQuantizer(4, "activation", k, backend="triton")
    torch.testing.assert_close(qz(x.detach()), QuestQuantizer(4, "activation", k, backend="torch")(x.detach()),
                               rtol=0, atol=1e-4)
