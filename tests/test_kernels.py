"""QuEST Triton kernels vs their torch references (CPU: TRITON_INTERPRET=1 from conftest; fp32/fp16)."""
from __future__ import annotations

import math

import pytest
import torch

from quest_lab.quant.hadamard import hadamard_transform
from quest_lab.kernels import (LaunchConfig, pack_mask, pick_block, quest_fake_quant,
                               quest_fake_quant_ref, quest_fake_quant_rotated, quest_quantize_bwd,
                               quest_quantize_bwd_ref, quest_quantize_fwd, quest_quantize_fwd_ref,
                               unpack_mask)

ALPHA = {1: 0.7978845587, 2: 1.4935346200, 3: 2.0510683541, 4: 2.5139305786, 8: 3.8849386788}
ROWS = 37  # not a multiple of any tile's row count


def _x(m, k, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.rand(m, 1, generator=g).mul(3).add(0.1)
    x[:, :3] += 4.0  # a few outliers per row: the case the rotation is for
    return x.to(dtype)


def _codes(q, delta):
    """Integer grid index j of x̂ = (j − ½)·Δ."""
    return torch.round(q.double() / delta.double()[:, None] + 0.5).long()


def _compare_fwd(x, bits, block, hadamard=True):
    """Kernel vs reference: exact codes and mask except at counted rounding ties."""
    alpha = ALPHA[bits]
    q, m, d = quest_quantize_fwd(x, bits, alpha, None, block=block, hadamard=hadamard)
    qr, mr, dr = quest_quantize_fwd_ref(x, bits, alpha, None, block=block, hadamard=hadamard)
    assert q.dtype == x.dtype and m.dtype == torch.uint8 and m.shape == (x.shape[0], x.shape[1] // 8)
    torch.testing.assert_close(d, dr, rtol=2e-6, atol=0)
    j, jr = _codes(q, d), _codes(qr, dr)
    off = j != jr
    n_ties = int(off.sum())
    assert int((j - jr).abs().max()) <= 1, "kernel and reference differ by more than one grid step"
    assert n_ties <= max(2, x.numel() // 1000), f"{n_ties} code mismatches (ties) of {x.numel()}"
    if n_ties:  # each mismatch must be a genuine tie: y within rounding of a cell boundary
        y = x.double()
        if hadamard:
            y = hadamard_transform(y, block)
        v = y.clamp(-(2 ** bits - 1) / 2 * dr.double()[:, None], None) / dr.double()[:, None] + 0.5
        frac = (v - v.floor() - 0.5).abs()[off]
        assert float(frac.max()) < 1e-4
    same = ~off
    s = (2 ** bits - 1) / 2 * dr[:, None].expand_as(q)
    assert torch.all((q.float() - qr.float()).abs()[same] <= 2e-6 * s[same])
    mk, mkr = unpack_mask(m), unpack_mask(mr)
    mask_off = (mk != mkr) & same
    assert int(mask_off.sum()) <= max(2, x.numel() // 1000)
    return n_ties


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("k", [128, 256, 384])
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_forward_matches_reference(bits, k, dtype):
    _compare_fwd(_x(ROWS, k, dtype, seed=bits * 1000 + k), bits, 128)


@pytest.mark.parametrize("k,block", [(64, 64), (96, 32), (48, 16), (192, 64)])
@pytest.mark.parametrize("bits", [2, 4])
def test_forward_small_blocks(k, block, bits):
    assert pick_block(k) == block or k == 192
    _compare_fwd(_x(11, k, torch.float32, seed=k), bits, block)


@pytest.mark.parametrize("k", [48, 128])
def test_forward_no_hadamard(k):
    _compare_fwd(_x(9, k, torch.float32, seed=k), 4, 128, hadamard=False)


def test_forward_zero_row_and_tile_config():
    x = _x(20, 256, torch.float32)
    x[3] = 0.0  # σ = 0: s = 1e-8, every element on the tie 0/Δ + ½ → half-to-even → x̂ = −Δ/2
    cfg = LaunchConfig(tile_blocks=32, num_warps=2, programs_per_sm=3)  # 10 tiles over 3 programs
    q, m, d = quest_quantize_fwd(x, 4, ALPHA[4], config=cfg)
    qr, mr, dr = quest_quantize_fwd_ref(x, 4, ALPHA[4])
    assert torch.equal(q[3], qr[3]) and torch.equal(m[3], mr[3])
    assert torch.isfinite(q).all()
    q1, m1, d1 = quest_quantize_fwd(x, 4, ALPHA[4], config=LaunchConfig(tile_blocks=32, programs_per_sm=0))
    assert torch.equal(q, q1) and torch.equal(m, m1) and torch.equal(d, d1)
    g = _x(20, 256, torch.float32, seed=5)
    assert torch.equal(quest_quantize_bwd(g, m, config=cfg), quest_quantize_bwd(g, m, config=LaunchConfig()))


def test_grid_has_exactly_2b_levels():
    x = _x(4, 128, torch.float32) * 10
    for bits in (1, 2, 3):
        q, _, d = quest_quantize_fwd(x, bits, ALPHA[bits])
        for r in range(4):
            assert len(torch.unique(q[r])) <= 2 ** bits
            assert float(q[r].abs().max()) <= (2 ** bits - 1) / 2 * float(d[r]) * (1 + 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("k", [128, 384])
@pytest.mark.parametrize("rotated", [False, True])
def test_backward_matches_reference(k, dtype, rotated):
    x = _x(ROWS, k, dtype)
    _, m, _ = quest_quantize_fwd(x, 2, ALPHA[2])
    g = _x(ROWS, k, dtype, seed=7)
    dx = quest_quantize_bwd(g, m, grad_rotated=rotated)
    ref = quest_quantize_bwd_ref(g.double(), m, grad_rotated=rotated)
    rel = float((dx.double() - ref).norm() / ref.norm())
    assert rel < (1e-5 if dtype == torch.float32 else 1e-3), rel
    assert 0.05 < float(unpack_mask(m).float().mean()) < 1.0  # the mask actually masks something


def test_fake_quant_autograd_matches_reference():
    x = _x(2 * 13, 256, torch.float32).reshape(2, 13, 256).requires_grad_(True)
    out = quest_fake_quant(x, 4, ALPHA[4])
    ref = quest_fake_quant_ref(x.detach().double(), 4, ALPHA[4])
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float((out.detach().double() - ref).norm() / ref.norm()) < 1e-5
    g = torch.randn_like(x)
    (out * g).sum().backward()
    _, m, _ = quest_quantize_fwd_ref(x.detach().reshape(-1, 256), 4, ALPHA[4])
    dref = quest_quantize_bwd_ref(g.reshape(-1, 256).double(), m).reshape(x.shape)
    assert float((x.grad.double() - dref).norm() / dref.norm()) < 1e-5


def test_fake_quant_rotated_same_gemm():
    """Q(xH)·Q(WH)ᵀ (rotated domain) equals Q(xH)Hᵀ·(Q(WH)Hᵀ)ᵀ: H·Hᵀ = I."""
    x, w = _x(8, 128, torch.float32), _x(16, 128, torch.float32, seed=3)
    a = quest_fake_quant_rotated(x, 4, ALPHA[4]) @ quest_fake_quant_rotated(w, 4, ALPHA[4]).T
    b = quest_fake_quant(x, 4, ALPHA[4]) @ quest_fake_quant(w, 4, ALPHA[4]).T
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_mask_pack_roundtrip():
    m = torch.rand(5, 64) > 0.5
    assert torch.equal(unpack_mask(pack_mask(m)), m)
    assert int(pack_mask(torch.eye(8, dtype=torch.bool))[3, 0]) == 8


def test_wrapper_errors():
    x = _x(4, 128, torch.float32)
    with pytest.raises(ValueError, match="contiguous"):
        quest_quantize_fwd(_x(128, 4, torch.float32).T, 4, 2.5)
    with pytest.raises(ValueError, match="multiple of block"):
        quest_quantize_fwd(_x(4, 96, torch.float32), 4, 2.5, block=128)
    with pytest.raises(ValueError, match="bits"):
        quest_quantize_fwd(x, 9, 2.5)
    with pytest.raises(TypeError, match="dtype"):
        quest_quantize_fwd(x.to(torch.int32), 4, 2.5)
    with pytest.raises(ValueError, match="2-D"):
        quest_quantize_fwd(x[None], 4, 2.5)
    with pytest.raises(ValueError, match="packed uint8"):
        quest_quantize_bwd(x, torch.zeros(4, 128, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisor"):
        pick_block(24)


def test_agrees_with_quant_torch_quantizer():
    from quest_lab import quant

    x = _x(ROWS, 256, torch.float32)
    n_off = 0
    for bits in (2, 4, 8):
        ref, _ = quant.quest_quantize(x, bits)
        ours = quest_fake_quant(x, bits, ALPHA[bits])
        step = 2 * ALPHA[bits] * x.pow(2).mean(-1, keepdim=True).sqrt() / (2 ** bits - 1)
        err = (ours - ref).abs() / step  # in grid steps (de-rotated, so ties spread over a block)
        n_off += int((err > 1e-3).any(-1).sum())
        assert float(err.max()) < 1.0
    assert n_off <= 3  # rows touched by a rounding tie


def test_quantlinear_triton_matches_torch():
    from quest_lab.quant import QuantConfig, QuantLinear

    def make(backend):
        torch.manual_seed(0)
        qc = QuantConfig(name="quest", w_bits=4, a_bits=4, backend=backend)
        return torch.nn.Sequential(QuantLinear(64, 128, qconfig=qc), torch.nn.SiLU(),
                                   QuantLinear(128, 64, qconfig=qc))

    nets = {b: make(b) for b in ("torch", "triton")}
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(1))
    results = {}
    for b, net in nets.items():
        xb = x.clone().requires_grad_(True)
        loss = net(xb).pow(2).mean()
        loss.backward()
        results[b] = (loss.detach(), xb.grad, [p.grad for p in net.parameters()])
    (lt, xt, gt), (lk, xk, gk) = results["torch"], results["triton"]
    assert math.isclose(float(lt), float(lk), rel_tol=1e-4)
    for a, b in [(xt, xk), *zip(gt, gk)]:
        assert float((a - b).norm() / b.norm()) < 1e-3


@pytest.mark.parametrize("cfg", [LaunchConfig(rows=16, num_warps=1, pack=1, programs_per_sm=2),
                                 LaunchConfig(rows=16, num_warps=1, fast_div=True),
                                 LaunchConfig(tile_blocks=16, num_warps=1, two_pass=False)],
                         ids=["two_pass_dot_pack", "two_pass_fast_div", "one_pass"])
def test_forward_backward_other_configs(cfg):
    """The dot-packed mask and the one-pass/row-tiled kernels give the same results."""
    x = _x(ROWS, 384, torch.float32, seed=11)
    q0, m0, d0 = quest_quantize_fwd(x, 4, ALPHA[4])
    q1, m1, d1 = quest_quantize_fwd(x, 4, ALPHA[4], config=cfg)
    qr, mr, dr = quest_quantize_fwd_ref(x, 4, ALPHA[4])
    torch.testing.assert_close(d1, dr, rtol=2e-6, atol=0)
    assert int((unpack_mask(m1) != unpack_mask(mr)).sum()) <= 2
    assert float((q1 - q0).abs().max()) <= 2e-6 * float(dr.max()) * 8 or int((q1 != q0).sum()) <= 2
    g = _x(ROWS, 384, torch.float32, seed=12)
    assert torch.allclose(quest_quantize_bwd(g, m1, config=cfg), quest_quantize_bwd_ref(g, m1), atol=1e-5)


def test_mask_bytes_format_and_out_dtype():
    x = _x(ROWS, 256, torch.float32, seed=13)
    q, m, d = quest_quantize_fwd(x, 3, ALPHA[3], derotate=True)
    qb, mb, db = quest_quantize_fwd(x, 3, ALPHA[3], derotate=True, mask_format="bytes",
                                    out_dtype=torch.float16)
    assert mb.shape == x.shape and mb.dtype == torch.uint8 and int(mb.max()) <= 1
    assert torch.equal(mb.bool(), unpack_mask(m)) and torch.equal(d, db)
    assert qb.dtype == torch.float16 and torch.equal(qb, q.to(torch.float16))
    g = _x(ROWS, 256, torch.float32, seed=14)
    dx = quest_quantize_bwd(g, m)
    torch.testing.assert_close(quest_quantize_bwd(g, mb), dx, rtol=0, atol=0)
    dx16 = quest_quantize_bwd(g, mb, out_dtype=torch.float16)
    assert dx16.dtype == torch.float16 and torch.equal(dx16, dx.to(torch.float16))
    with pytest.raises(ValueError, match="mask_format"):
        quest_quantize_fwd(x, 3, ALPHA[3], mask_format="bits")


def test_fake_quant_out_dtype_grad_in_input_dtype():
    x = _x(26, 128, torch.float32, seed=15).requires_grad_(True)
    for fmt in ("packed", "bytes"):
        out = quest_fake_quant_rotated(x, 4, ALPHA[4], out_dtype=torch.float16, mask_format=fmt)
        assert out.dtype == torch.float16
        ref = quest_fake_quant_ref(x.detach(), 4, ALPHA[4], rotated=True)
        assert torch.equal(out, quest_fake_quant_rotated(x.detach(), 4, ALPHA[4]).to(torch.float16))
        assert float((out.detach().float() - ref).abs().max()) < 1e-2
        g = torch.randn(26, 128, dtype=torch.float16)
        (gx,) = torch.autograd.grad(out, x, g)
        assert gx.dtype == torch.float32
        _, m, _ = quest_quantize_fwd_ref(x.detach(), 4, ALPHA[4])
        torch.testing.assert_close(gx, quest_quantize_bwd_ref(g.float(), m, grad_rotated=True),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_kernels_compile_for_sm90(tmp_path):
    """Triton's real compiler (not the interpreter) builds every kernel variant for Hopper."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    script = Path(__file__).with_name("compile_kernels.py")
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "kernel variants for sm_90" in res.stdout
