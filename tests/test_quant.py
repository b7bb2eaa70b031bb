"""Quantizers: QuEST math vs docs/design.md §3, gradient estimators, Hadamard, registry, QuantLinear."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from layer_checks import assert_same_layer
from quest_lab.quant import (FP4_E2M1_GRID, FP4_RMS_SCALE, GAUSSIAN_ALPHA, QUANTIZERS, LSQFunction,
                             QuantConfig, QuantLinear, build_quantizer, default_trust, gaussian_alpha,
                             gaussian_grid_mse, hadamard_block_for, hadamard_matrix, hadamard_transform,
                             optimal_fp4_scale, optimal_gaussian_clip, quest_quantize)

# a representative low-bit (w, a) setting per quantizer, plus the always-valid 16/16
LOW_BITS = {"quest": (4, 4), "ste": (4, 4), "absmax": (4, 4), "clip": (3, 3), "hadamard_clip": (1, 1),
            "lsq": (4, 4), "fp4": (4, 4), "gaussian": (3, 3), "ternary": (1.58, 8), "bf16": (16, 16),
            "none": (16, 16), "slb": (2, 16)}


def _gauss(n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(1, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- QuEST forward -------------------------------------------------------------------------------
@pytest.mark.parametrize("bits,expected", [(4, 0.011543), (8, 8.782e-5)])
def test_quest_mse_matches_design_table(bits, expected):
    x = _gauss(10**6)
    x_hat, _ = quest_quantize(x, bits, hadamard=False)
    mse = (x_hat - x).pow(2).mean().item()
    assert mse == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("bits", range(1, 9))
def test_quest_grid_has_exactly_2b_symmetric_levels(bits):
    # a dense ramp over [-1, 1] padded with 90% zeros: RMS = 0.18, so s = α_b·RMS < 1 for all b
    ramp = torch.linspace(-1, 1, 20_000, dtype=torch.float64)
    x = torch.cat([ramp, torch.zeros(180_000, dtype=torch.float64)]).unsqueeze(0)
    x_hat, _ = quest_quantize(x, bits, hadamard=False)
    levels = torch.unique(x_hat)
    assert levels.numel() == 2**bits
    torch.testing.assert_close(levels, -levels.flip(0))
    s = gaussian_alpha(bits) * x.pow(2).mean().sqrt() + 1e-8
    assert levels.max().item() == pytest.approx(s.item(), rel=1e-9)


def test_alpha_table_matches_numeric_optimum():
    for bits in (2, 3, 4):
        assert optimal_gaussian_clip(2**bits) == pytest.approx(GAUSSIAN_ALPHA[bits], abs=1e-4)
    assert optimal_gaussian_clip(2) == pytest.approx(math.sqrt(2 / math.pi), abs=1e-6)
    assert optimal_gaussian_clip(3) == pytest.approx(GAUSSIAN_ALPHA[1.585], abs=1e-4)
    assert gaussian_alpha(1.58) == GAUSSIAN_ALPHA[1.585]


def test_fp4_scale_constant_is_gaussian_optimal():
    assert optimal_fp4_scale() == pytest.approx(FP4_RMS_SCALE, abs=1e-5)


# -- trust gradient estimator --------------------------------------------------------------------
@pytest.mark.parametrize("bits,trust", [(2, None), (4, None), (3, 0.05)])
def test_trust_mask_gradient_without_hadamard(bits, trust):
    x = (_gauss(4096, seed=1) * 1.3).reshape(8, 512).requires_grad_(True)
    g = torch.randn(8, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x_hat, mask = quest_quantize(x, bits, trust=trust, hadamard=False)
    x_hat.backward(g)
    sigma = x.detach().pow(2).mean(-1, keepdim=True).sqrt()
    t = default_trust(bits) if trust is None else trust
    outside = (x_hat.detach() - x.detach()).abs() > t * sigma
    assert torch.equal(mask, ~outside)
    assert outside.any() and (~outside).any()
    assert torch.all(x.grad[outside] == 0)
    assert torch.equal(x.grad[~outside], g[~outside])


@pytest.mark.parametrize("k", [256, 96])
def test_trust_gradient_with_hadamard_matches_dense_formula(k):
    x = _gauss(6 * k, seed=3).reshape(6, k).requires_grad_(True)
    g = torch.randn(6, k, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    x_hat, mask = quest_quantize(x, 2, hadamard=True, block=128)
    x_hat.backward(g)
    blk = hadamard_block_for(k)
    dense = torch.kron(torch.eye(k // blk, dtype=torch.float64), hadamard_matrix(blk, torch.float64))
    expected = ((g @ dense) * mask.double()) @ dense.T
    torch.testing.assert_close(x.grad, expected, atol=1e-10, rtol=0)
    # forward: x̂ = Q(x·H)·Hᵀ, and the rotated x̂ sits on the grid
    x_hat_r = x_hat.detach() @ dense
    assert torch.unique(x_hat_r[0].round(decimals=8)).numel() <= 4


# -- Hadamard ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 64, 128])
def test_hadamard_orthonormal(n):
    h = hadamard_matrix(n, torch.float64)
    torch.testing.assert_close(h @ h.T, torch.eye(n, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(h, h.T)


@pytest.mark.parametrize("k", [256, 384])
def test_hadamard_block_diagonal_equals_kron(k):
    x = torch.randn(5, k, dtype=torch.float64)
    dense = torch.kron(torch.eye(k // 128, dtype=torch.float64), hadamard_matrix(128, torch.float64))
    torch.testing.assert_close(hadamard_transform(x, 128), x @ dense, atol=1e-12, rtol=0)


def test_hadamard_block_fallback():
    assert hadamard_block_for(96) == 32
    assert hadamard_block_for(384) == 128
    assert hadamard_block_for(64) == 64
    assert hadamard_block_for(256, max_block=32) == 32
    assert hadamard_block_for(33) == 1  # odd K: no rotation
    with pytest.raises(ValueError, match="power of two"):
        hadamard_matrix(12)


# -- every registered quantizer through QuantLinear ----------------------------------------------
@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quantlinear_shapes_dtypes_and_grads(name, dtype):
    torch.manual_seed(0)
    w_bits, a_bits = LOW_BITS[name]
    layer = QuantLinear(64, 48, qconfig=QuantConfig(name, w_bits, a_bits)).to(dtype)
    x = torch.randn(2, 7, 64, dtype=dtype, requires_grad=True)
    for q, t in ((layer.wq, layer.weight), (layer.aq, x)):
        out = q(t)
        assert out.shape == t.shape and out.dtype == t.dtype
    y = layer(x)
    assert y.shape == (2, 7, 48) and y.dtype == dtype
    y.float().square().sum().backward()
    # SLB searches its weights: the gradient reaches its logits, the layer's weight only initialises them
    w_grad = layer.wq.logits.grad if name == "slb" else layer.weight.grad
    for grad in (x.grad, w_grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    if w_bits < 16:
        assert not torch.equal(layer.wq(layer.weight), layer.weight)


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_16_16_equals_nn_linear(name):
    torch.manual_seed(1)
    layer = QuantLinear(32, 16, bias=True, qconfig=QuantConfig(name, 16, 16))
    ref = nn.Linear(32, 16, bias=True)
    ref.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    x = torch.randn(3, 32)
    assert torch.equal(layer(x), ref(x))
    assert "quant=" in repr(layer)


def test_quest_both_quantizers_are_on_grid_and_repr():
    layer = QuantLinear(128, 8, qconfig=QuantConfig("quest", 2, 3))
    assert "quest w2a3" in layer.extra_repr()
    wr = hadamard_transform(layer.wq(layer.weight).detach(), 128)
    assert all(torch.unique(row.round(decimals=4)).numel() <= 4 for row in wr)


def test_lsq_step_is_parameter_and_learns():
    layer = QuantLinear(32, 8, qconfig=QuantConfig("lsq", 3, 4))
    steps = {n for n, p in layer.named_parameters() if "step" in n}
    assert steps == {"wq.step", "aq.step"}
    assert layer.wq.step.shape == (1,) and layer.aq.step.shape == (1,)  # one step per tensor
    layer(torch.randn(4, 32)).square().sum().backward()
    assert bool(layer.wq.initialized) and bool(layer.aq.initialized)
    for p in (layer.wq.step, layer.aq.step):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # weights land on the symmetric half-integer grid (k + ½)·step, k ∈ [-4, 3]
    w_hat = layer.wq(layer.weight).detach()
    ratio = w_hat / layer.wq.step.detach() - 0.5
    torch.testing.assert_close(ratio, ratio.round(), atol=1e-5, rtol=0)
    assert ratio.min() >= -4 and ratio.max() <= 3


def test_lsq_step_gradient_formula():
    x = torch.tensor([[0.26, -0.9, 5.0, -7.0]], dtype=torch.float64)
    step = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    y = LSQFunction.apply(x, step, -2, 1, 0.0, 1.0)
    torch.testing.assert_close(y.detach(), torch.tensor([[0.0, -1.0, 1.0, -2.0]], dtype=torch.float64))
    y.sum().backward()
    # inside: round(v) - v ; clipped: the clip level
    assert step.grad.item() == pytest.approx((0 - 0.26) + (-1 + 0.9) + 1 + (-2))


def test_ternary_weights_three_values_per_matrix_and_int8_activations():
    layer = QuantLinear(64, 16, qconfig=QuantConfig("ternary", 1.58, 8))
    w_hat = layer.wq(layer.weight).detach()
    gamma = layer.weight.detach().abs().mean()  # one γ for the whole matrix (BitNet b1.58)
    assert set(torch.unique(w_hat / gamma).round().tolist()) == {-1.0, 0.0, 1.0}
    assert torch.unique(w_hat).numel() == 3
    x = torch.randn(5, 64)
    x_hat = layer.aq(x)
    scale = x.abs().amax(-1, keepdim=True) / 127
    torch.testing.assert_close(x_hat / scale, (x_hat / scale).round(), atol=1e-4, rtol=0)


def test_fp4_values_on_e2m1_grid():
    w = torch.randn(6, 256, dtype=torch.float64)
    q = build_quantizer("fp4", 4, "weight", 256, {"hadamard": False, "backward": "ste"}, "torch", rows=6)
    w_hat = q(w)
    scale = FP4_RMS_SCALE * w.pow(2).mean(-1, keepdim=True).sqrt()
    grid = set(FP4_E2M1_GRID) | {-v for v in FP4_E2M1_GRID}
    values = set((w_hat / scale).round(decimals=6).flatten().tolist())
    assert values <= grid and len(values) >= 10
    mse = (w_hat - w).pow(2).mean() / w.pow(2).mean()
    assert mse.item() == pytest.approx(gaussian_grid_mse([FP4_RMS_SCALE * v for v in grid]), rel=0.15)
    # the default (Hadamard) variant sits on the same grid in the rotated basis
    rotated = hadamard_transform(build_quantizer("fp4", 4, "weight", 256, {}, "torch", rows=6)(w), 128)
    values = set((rotated / scale).round(decimals=6).flatten().tolist())
    assert values <= grid


# -- QuantConfig validation ----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,needle", [
    ({"name": "nope"}, "allowed: .*quest"),
    ({"name": "quest", "w_bits": 1.58}, "allowed: 1, 2, 3, 4, 5, 6, 7, 8, 16"),
    ({"name": "quest", "a_bits": 12}, "a_bits=12"),
    ({"name": "fp4", "w_bits": 3}, "allowed: 4, 16"),
    ({"name": "ternary", "w_bits": 2}, "allowed: 1.58, 16"),
    ({"name": "ternary", "w_bits": 1.58, "a_bits": 4}, "allowed: 8, 16"),
    ({"name": "bf16", "w_bits": 4}, "allowed: 16"),
    ({"name": "quest", "options": {"hadamrd": False}}, "allowed: hadamard, hadamard_block, trust"),
    ({"name": "ste", "options": {"trust": 1.0}}, "allowed: (none)"),
    ({"name": "quest", "options": {"trust": -1}}, "trust=-1"),
    ({"name": "quest", "options": {"hadamard_block": 48}}, "power of two"),
    ({"name": "quest", "backend": "cuda"}, "allowed: auto, torch, triton"),
])
def test_quantconfig_validation_names_allowed_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        QuantConfig(**kwargs)


def test_quantconfig_accepts_valid_and_is_frozen():
    q = QuantConfig("quest", 4, 4, {"hadamard": False, "trust": 0.1}, "torch")
    assert q.label == "quest:w4a4"
    assert QuantConfig().label == "bf16" and not QuantConfig().enabled
    with pytest.raises(Exception):
        q.w_bits = 8  # type: ignore[misc]


# -- backend dispatch ----------------------------------------------------------------------------
@pytest.mark.parametrize("hadamard,a_bits", [(True, 4), (False, 4), (True, 16)])
def test_triton_backend_matches_torch(hadamard, a_bits):
    torch.manual_seed(0)
    opts = {"hadamard": hadamard}
    ref = QuantLinear(64, 16, qconfig=QuantConfig("quest", 4, a_bits, opts, "torch"))
    tri = QuantLinear(64, 16, qconfig=QuantConfig("quest", 4, a_bits, opts, "triton"))
    tri.load_state_dict(ref.state_dict())
    assert_same_layer(ref, tri, torch.randn(8, 64))


# -- rotated-basis GEMM (both sides QuEST + Hadamard) --------------------------------------------
def test_rotated_gemm_equals_derotated_path():
    torch.manual_seed(0)
    layer = QuantLinear(96, 40, bias=True, qconfig=QuantConfig("quest", 3, 4, backend="torch")).double()
    assert layer.rotated_gemm
    x = torch.randn(2, 5, 96, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    g = torch.randn_like(y)
    y.backward(g)
    x2 = x.detach().clone().requires_grad_(True)
    w2 = layer.weight.detach().clone().requires_grad_(True)
    y2 = torch.nn.functional.linear(layer.aq(x2), layer.wq(w2), layer.bias)
    y2.backward(g)
    torch.testing.assert_close(y, y2, atol=1e-10, rtol=0)
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(layer.weight.grad, w2.grad, atol=1e-10, rtol=0)
    assert not QuantLinear(96, 8, qconfig=QuantConfig("quest", 4, 16)).rotated_gemm
    assert not QuantLinear(96, 8, qconfig=QuantConfig("quest", 4, 4, {"hadamard": False})).rotated_gemm


def test_explicit_triton_backend_without_kernel_fails_clearly(monkeypatch):
    from quest_lab.quant import quest as quest_mod

    monkeypatch.setattr(quest_mod, "_triton_kernel", lambda: None)
    q = build_quantizer("quest", 4, "activation", 64, {}, "triton")
    with pytest.raises(RuntimeError, match="backend='triton'"):
        q(torch.randn(2, 64))
    assert build_quantizer("quest", 4, "activation", 64, {}, "auto")(torch.randn(2, 64)).shape == (2, 64)


def test_build_quantizer_rejects_unknown_name_and_role():
    with pytest.raises(ValueError, match="allowed: .*quest"):
        build_quantizer("nope", 4, "weight", 8)
    with pytest.raises(ValueError, match="allowed: weight, activation"):
        build_quantizer("quest", 4, "bias", 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("k,block", [(256, 128), (96, 32)])
def test_torch_reference_matches_independent_oracle(bits, k, block):
    """quest_lab.quant.quest (the one QuEST math module) vs tests/oracle.py (numpy + scipy, from the
    paper's formulas): the same x̂ and trust mask, and ∂x = ((g·H) ⊙ M)·Hᵀ."""
    from oracle import quest_oracle, quest_oracle_grad

    g = torch.Generator().manual_seed(bits * 7 + k)
    x = (torch.randn(12, k, generator=g, dtype=torch.float64) * torch.rand(12, 1, generator=g, dtype=torch.float64) * 3)
    xr = x.clone().requires_grad_(True)
    x_hat, mask = quest_quantize(xr, bits, block=block)
    want, want_mask, h = quest_oracle(x.numpy(), bits, block)
    # ties (a rotated value exactly between two grid points) may round differently: none expected here
    assert torch.equal(mask, torch.from_numpy(want_mask))
    torch.testing.assert_close(x_hat.detach(), torch.from_numpy(want), rtol=0, atol=1e-12)
    up = torch.randn(12, k, generator=g, dtype=torch.float64)
    x_hat.backward(up)
    torch.testing.assert_close(xr.grad, torch.from_numpy(quest_oracle_grad(up.numpy(), want_mask, h)),
                               rtol=0, atol=1e-12)
