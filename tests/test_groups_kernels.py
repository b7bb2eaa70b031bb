"""Group-wise QuEST in the Triton kernels (issue 15; CPU: TRITON_INTERPRET=1 from conftest).

G ≥ block runs the per-row kernels on the (M·K/G, G) view, G < block the two-pass kernel's SUBGROUP
mode; both against the torch reference (`quest_lab.kernels.reference`, itself checked against the
numpy oracle in test_groups.py).  The low-precision GEMM takes no groups: refused / fallen back from."""
from __future__ import annotations

import logging

import pytest
import torch

from layer_checks import assert_same_layer
from quest_lab.kernels import (LaunchConfig, quest_fake_quant, quest_fake_quant_rotated, quest_quantize_fwd,
                               quest_quantize_fwd_ref, unpack_mask)
from quest_lab.quant import QuantConfig, QuantLinear, quest_quantize

ALPHA = {2: 1.4935346200, 4: 2.5139305786}


def _x(m, k, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.rand(m, k // 16, generator=g).mul(3).add(0.1).repeat_interleave(16, 1)
    x[:, :3] += 4.0
    return x.to(dtype)


def _compare(x, bits, block, group, hadamard=True, **kw):
    """Kernel vs reference: Δ per group to fp32 rounding, codes and mask equal except at counted ties."""
    q, m, d = quest_quantize_fwd(x, bits, ALPHA[bits], block=block, hadamard=hadamard, group_size=group, **kw)
    qr, mr, dr = quest_quantize_fwd_ref(x, bits, ALPHA[bits], block=block, hadamard=hadamard, group=group)
    k = x.shape[1]
    assert d.shape == dr.shape == ((x.shape[0], k // group) if group not in (None, k) else (x.shape[0],))
    # Δ of a small group: its σ inherits the rotation's fp32 error, relative to the whole block
    torch.testing.assert_close(d, dr, rtol=2e-6, atol=1e-6 * float(dr.max()))
    per_elem = dr.double()[:, :, None].expand(-1, -1, group).reshape(x.shape) if dr.dim() == 2 else dr.double()[:, None]
    j = torch.round(q.double() / per_elem + 0.5).long()
    jr = torch.round(qr.double() / per_elem + 0.5).long()
    ties = int((j != jr).sum())
    assert int((j - jr).abs().max()) <= 1 and ties <= max(2, x.numel() // 1000)
    mk = m.bool() if m.shape == x.shape else unpack_mask(m)
    assert int((mk != unpack_mask(mr)).sum()) <= max(2, x.numel() // 1000) + ties
    return ties


@pytest.mark.parametrize("k,group", [(256, 2), (256, 8), (256, 32), (256, 64), (256, 128), (256, 256),
                                     (384, 32), (384, 128), (384, 64)])
@pytest.mark.parametrize("bits", [2, 4])
def test_grouped_forward_matches_reference(k, group, bits):
    _compare(_x(21, k, seed=k + group + bits), bits, 128, group)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_grouped_forward_16bit_inputs(dtype):
    _compare(_x(17, 256, dtype, seed=5), 4, 128, 32)
    _compare(_x(17, 256, dtype, seed=6), 4, 64, 128)


@pytest.mark.parametrize("group", [16, 64])
def test_grouped_forward_without_hadamard(group):
    _compare(_x(9, 256, seed=group), 4, 128, group, hadamard=False)


def test_grouped_derotated_and_round_input():
    x = _x(13, 256, seed=3)
    for group in (32, 128):
        out, _, _ = quest_quantize_fwd(x, 4, ALPHA[4], block=128, derotate=True, group_size=group)
        ref, _ = quest_quantize(x.double(), 4, block=128, group=group)
        torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-5)
        # round_input: quantize bf16(x) (what autocast feeds a bf16 GEMM)
        q, _, d = quest_quantize_fwd(x, 4, ALPHA[4], block=128, round_input=True, out_dtype=torch.bfloat16,
                                     group_size=group)
        qr, _, dr = quest_quantize_fwd_ref(x.to(torch.bfloat16).float(), 4, ALPHA[4], block=128, group=group)
        torch.testing.assert_close(d, dr, rtol=2e-6, atol=0)
        torch.testing.assert_close(q.float(), qr.to(torch.bfloat16).float(), rtol=1e-2, atol=1e-3)


def test_grouped_launch_configs():
    x = _x(40, 256, seed=9)
    # one-pass kernel: fine for groups of whole blocks (a view), refused for groups inside a block
    _compare(x, 4, 64, 128, config=LaunchConfig(tile_blocks=16, two_pass=False))
    with pytest.raises(ValueError, match="one grid per row or per group of >= block"):
        quest_quantize_fwd(x, 4, ALPHA[4], block=128, group_size=32, config=LaunchConfig(two_pass=False))
    _compare(x, 4, 128, 32, config=LaunchConfig(rows=16, fast_div=False))
    _compare(x, 4, 128, 32, mask_format="bytes")
    with pytest.raises(ValueError, match="group_size=48 must be a power of two >= 2 dividing K=256"):
        quest_quantize_fwd(x, 4, ALPHA[4], group_size=48)
    with pytest.raises(ValueError, match="dividing K=256"):
        quest_fake_quant(x, 4, ALPHA[4], group_size=512)


@pytest.mark.parametrize("group", [16, 128])
@pytest.mark.parametrize("rotated", [False, True])
def test_grouped_fake_quant_autograd_matches_torch(group, rotated):
    x = _x(12, 256, seed=group)
    xk, xt = x.clone().requires_grad_(True), x.clone().double().requires_grad_(True)
    g = torch.randn(12, 256, generator=torch.Generator().manual_seed(1))
    if rotated:
        from quest_lab.quant.quest import quest_quantize_rotated

        yk = quest_fake_quant_rotated(xk, 4, ALPHA[4], group_size=group)
        yt, _ = quest_quantize_rotated(xt, 4, block=128, group=group)
    else:
        yk = quest_fake_quant(xk, 4, ALPHA[4], group_size=group)
        yt, _ = quest_quantize(xt, 4, block=128, group=group)
    torch.testing.assert_close(yk.double(), yt.detach(), rtol=0, atol=2e-5)
    yk.backward(g)
    yt.backward(g.double())
    # a rounding tie may flip one mask bit: compare all but a handful of elements
    off = (xk.grad.double() - xt.grad).abs() > 1e-5
    assert int(off.sum()) <= 256 * 2


@pytest.mark.parametrize("group,opts", [(16, {}), (64, {"hadamard_block": 32}), (128, {})])
def test_quantlinear_grouped_triton_matches_torch(group, opts):
    torch.manual_seed(0)
    ref = QuantLinear(128, 32, qconfig=QuantConfig("quest", 4, 4, opts, "torch", group_size=group))
    tri = QuantLinear(128, 32, qconfig=QuantConfig("quest", 4, 4, opts, "triton", group_size=group))
    tri.load_state_dict(ref.state_dict())
    assert tri.rotated_gemm and tri.aq.kernel_group == (None if group == 128 else group)
    assert_same_layer(ref, tri, torch.randn(2, 9, 128))


def test_lowp_gemm_refused_or_fallen_back_with_groups(caplog):
    with pytest.raises(ValueError, match="gemm='lowp' needs one scale per row"):
        QuantConfig("quest", 4, 4, gemm="lowp", group_size=32)
    layer = QuantLinear(128, 32, qconfig=QuantConfig("quest", 4, 4, backend="triton", group_size=32))
    x = torch.randn(3, 128)
    with caplog.at_level(logging.INFO, logger="quest_lab.quant.linear"):
        assert layer.lowp_format(x, torch.bfloat16) is None
    assert "fake-quant GEMM" in caplog.text and "group_size=32" in caplog.text
    # the same layer per row would be allowed to take the lowp GEMM (on CPU only when asked explicitly)
    per_row = QuantLinear(128, 32, qconfig=QuantConfig("quest", 4, 4, backend="triton", gemm="lowp"))
    assert per_row.lowp_format(x, torch.bfloat16) in ("fp8", "int8")
    # G = K is per row: lowp-capable too (gemm="auto" decides by device, here the CPU → fake)
    assert QuantLinear(128, 32, qconfig=QuantConfig("quest", 4, 4, group_size=128)).wq.per_row
