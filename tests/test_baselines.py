"""Every baseline against a hand-computed example (issue 9): forward values and which elements pass
gradient.  The arithmetic is in the comments; the only computed inputs are the explicit Sylvester
Hadamard matrices (built here from H[i, j] = (−1)^popcount(i & j) / √n, not with quest_lab)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from quest_lab.quant import (FP4_REFERENCE_TRUST, FP4_RMS_SCALE, LLOYD_MAX_LEVELS, QuantConfig, build_quantizer,
                             gaussian_grid_mse, lloyd_iterate, lloyd_max_levels)
from quest_lab.quant.lloyd_max import signed_levels

F64 = torch.float64
# the running example: RMS = 1 exactly (squares 4.41 + 1.69 + 1 + .36 + .25 + .16 + .09 + .04 = 8)
X = [2.1, -1.3, 1.0, -0.6, 0.5, -0.4, 0.3, -0.2]
ALL = [1.0] * 8


def _row(values) -> torch.Tensor:
    return torch.tensor([values], dtype=F64)


def _hadamard(n: int) -> torch.Tensor:
    h = [[(-1) ** bin(i & j).count("1") for j in range(n)] for i in range(n)]
    return torch.tensor(h, dtype=F64) / math.sqrt(n)


def _run(name, bits, x, options=None, role="activation", upstream=None):
    """(x̂, ∂x) for one call of the quantizer on x with upstream gradient `upstream` (default ones)."""
    q = build_quantizer(name, bits, role, x.shape[-1], options or {}, "torch", rows=x.shape[0]).double()
    x = x.clone().requires_grad_(True)
    y = q(x)
    y.backward(torch.ones_like(y) if upstream is None else upstream)
    return y.detach(), x.grad, q


def _close(actual, expected, atol=1e-7):  # the hand values leave out the 1e-8 guards on σ and s
    torch.testing.assert_close(actual, expected if torch.is_tensor(expected) else _row(expected), rtol=0, atol=atol)


# -- ste: QuEST's grid at s = α_b·RMS, plain STE -------------------------------------------------
def test_ste_2bit_hand_example():
    # σ = 1, s = α_2·σ = 1.49353462, Δ = 2s/3 = 0.99568975; grid {−s, −s/3, s/3, s}, thresholds 0, ±Δ.
    # 2.1 → s; −1.3 → −s; 1.0 > 0.99569 → s; −0.6, −0.4, −0.2 → −s/3; 0.5, 0.3 → s/3
    s = 1.4935346200
    y, grad, _ = _run("ste", 2, _row(X))
    _close(y, [s, -s, s, -s / 3, s / 3, -s / 3, s / 3, -s / 3])
    _close(grad, ALL)  # straight through everywhere, even at the clipped 2.1 and −1.3


def test_absmax_keeps_the_old_ste_2bit_hand_example():
    # s = max|x| = 2.1, Δ = 1.4, grid {−2.1, −0.7, 0.7, 2.1}, thresholds 0, ±1.4: only 2.1 reaches ±2.1
    y, grad, _ = _run("absmax", 2, _row(X))
    _close(y, [2.1, -0.7, 0.7, -0.7, 0.7, -0.7, 0.7, -0.7])
    _close(grad, ALL)


# -- clip: same forward, gradient where |x| ≤ clip_scale·s ---------------------------------------
def test_clip_2bit_hand_example():
    # forward as ste; mask |x| ≤ 1.0·s = 1.4935: only 2.1 is cut
    s = 1.4935346200
    y, grad, _ = _run("clip", 2, _row(X))
    _close(y, [s, -s, s, -s / 3, s / 3, -s / 3, s / 3, -s / 3])
    _close(grad, [0, 1, 1, 1, 1, 1, 1, 1])


def test_clip_1bit_clip_scale_hand_example():
    # 1 bit: s = α_1 = 0.79788456, grid {−s, s} = s·sign(x); mask |x| ≤ 1.25·s = 0.99736:
    # 2.1, 1.3 and 1.0 are cut (1.0 > 0.99736)
    s = 0.7978845587
    y, grad, _ = _run("clip", 1, _row(X), {"clip_scale": 1.25})
    _close(y, [s, -s, s, -s, s, -s, s, -s])
    _close(grad, [0, 0, 0, 1, 1, 1, 1, 1])


# -- hadamard_clip: the QuEST paper's 1-bit recipe -----------------------------------------------
def test_hadamard_clip_1bit_hand_example():
    # Pick the rotated row y = X, so x = y·H (H = Hᵀ = H⁻¹).  σ(y) = 1, s = α_1 = 0.79788456.
    # ŷ = s·sign(y) = s·[1, −1, 1, −1, 1, −1, 1, −1] = s·(row 1 of √8·H), so x̂ = ŷ·H = s·√8·e_1:
    #   x̂ = [0, 2.25675836, 0, 0, 0, 0, 0, 0].
    # Mask (default clip_scale 1.3): |y| ≤ 1.3·s = 1.03725 → M = [0, 0, 1, 1, 1, 1, 1, 1].
    # Upstream g = √8·e_0, so g·H = [1]*8 and ∂x = (1 ⊙ M)·H = (ones − e_0 − e_1)·H
    #   = √8·e_0 − [1]*8/√8 − [1, −1, 1, −1, …]/√8 = [6/√8, 0, −2/√8, 0, −2/√8, 0, −2/√8, 0].
    h = _hadamard(8)
    s, r8 = 0.7978845587, math.sqrt(8)
    upstream = _row([r8, 0, 0, 0, 0, 0, 0, 0])
    y, grad, q = _run("hadamard_clip", 1, _row(X) @ h, upstream=upstream)
    assert q.options["clip_scale"] == 1.3
    _close(y, [0, s * r8, 0, 0, 0, 0, 0, 0])
    _close(grad, [6 / r8, 0, -2 / r8, 0, -2 / r8, 0, -2 / r8, 0])


# -- lsq: half-integer grid, one step per tensor -------------------------------------------------
def test_lsq_2bit_hand_example_per_tensor_step():
    # W (2×4): Σ|w| = 4, mean|w| = 0.5 over the whole tensor; Qn = 2, Qp = 1, so s₀ = 2·0.5/√1 = 1.
    # Levels (k + ½)·s, k ∈ {−2, −1, 0, 1} = {−1.5, −0.5, 0.5, 1.5}; u = w/s − ½ clamped to [−2, 1].
    #   1.7: u = 1.2 > 1 → clipped, 1.5 (∂w 0, ∂s term = 1.5)
    #  −1.2: u = −1.7 → −2 → −1.5 (∂s term −1.5 + 1.2 = −0.3)
    #   0.3 → 0.5 (+0.2);  −0.2 → −0.5 (−0.3);  0.4 → 0.5 (+0.1);  −0.1 → −0.5 (−0.4)
    #   0.05: u = −0.45 → 0 → 0.5 (+0.45);  −0.05: u = −0.55 → −1 → −0.5 (−0.45)
    # ∂s = (1.5 − 0.3 + 0.2 − 0.3 + 0.1 − 0.4 + 0.45 − 0.45) · g, g = 1/√(numel·Qp) = 1/√8 → 0.8/√8
    w = torch.tensor([[1.7, -1.2, 0.3, -0.2], [0.4, -0.1, 0.05, -0.05]], dtype=F64)
    y, grad, q = _run("lsq", 2, w, role="weight")
    assert q.step.shape == (1,)
    assert q.step.item() == pytest.approx(1.0, abs=1e-12)
    _close(y, torch.tensor([[1.5, -1.5, 0.5, -0.5], [0.5, -0.5, 0.5, -0.5]], dtype=F64))
    _close(grad, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]], dtype=F64))
    assert q.step.grad.item() == pytest.approx(0.8 / math.sqrt(8), abs=1e-12)


def test_lsq_3bit_grid_has_no_zero_level():
    # 3 bits: k ∈ [−4, 3] → levels ±0.5, ±1.5, ±2.5, ±3.5 (·s); s₀ = 2·mean|x|/√Qp = 2·1.5/√3 on the
    # first tensor (a ramp over [−3, 3], mean|x| = 1.5); a wider ramp then reaches every level
    x = torch.linspace(-3, 3, 4001, dtype=F64).reshape(1, -1)
    _, _, q = _run("lsq", 3, x)
    s = q.step.item()
    assert s == pytest.approx(2 * 1.5 / math.sqrt(3), rel=1e-3)
    with torch.no_grad():
        y = q(torch.linspace(-5 * s, 5 * s, 4001, dtype=F64).reshape(1, -1))
    assert sorted(set((y / s).round(decimals=9).flatten().tolist())) == [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]


# -- ternary: BitNet b1.58, γ per matrix ---------------------------------------------------------
def test_ternary_hand_example_gamma_per_matrix():
    # γ = mean|W| over all 8 entries = 5.0/8 = 0.625.  W/γ = [1.44, −0.16, 0.64, −3.2 | 0.32, 0.96,
    # −1.12, 0.16] → round, clamp to [−1, 1] → [1, 0, 1, −1 | 0, 1, −1, 0] · 0.625.
    # (A per-row γ = 0.85 would send 0.4 → 0.47 → 0: the old behaviour.)
    w = torch.tensor([[0.9, -0.1, 0.4, -2.0], [0.2, 0.6, -0.7, 0.1]], dtype=F64)
    y, grad, _ = _run("ternary", 1.58, w, role="weight")
    _close(y, 0.625 * torch.tensor([[1, 0, 1, -1], [0, 1, -1, 0]], dtype=F64))
    _close(grad, torch.ones_like(w))  # STE


def test_ternary_int8_activation_hand_example():
    # max|x| = 1.27 → scale 0.01: x/0.01 = [127, −63.4, 50.04, −100, 1.26] → [127, −63, 50, −100, 1]
    y, grad, _ = _run("ternary", 8, _row([1.27, -0.634, 0.5004, -1.0, 0.0126]))
    _close(y, [1.27, -0.63, 0.50, -1.0, 0.01])
    _close(grad, [1.0] * 5)


# -- fp4: E2M1 × 0.4871·RMS; default Hadamard + trust --------------------------------------------
def test_fp4_plain_hand_example():
    # σ = 1, c = 0.48707916: levels c·{0, ½, 1, 1½, 2, 3, 4, 6} = {0, .24354, .48708, .73062, .97416,
    # 1.46124, 1.94832, 2.92248}, midpoints .12177 .36531 .60885 .85239 1.21770 1.70478 2.43540.
    #   2.1 → 4c (err .15168)   −1.3 → −3c (.16124)   1.0 → 2c (.02584)   −0.6 → −c (.11292; .6 < .60885)
    #   0.5 → c (.01292)        −0.4 → −c (.08708)     0.3 → c/2 (.05646)  −0.2 → −c/2 (.04354)
    c = FP4_RMS_SCALE
    expected = [4 * c, -3 * c, 2 * c, -c, c, -c, c / 2, -c / 2]
    y, grad, _ = _run("fp4", 4, _row(X), {"hadamard": False, "backward": "ste"})
    _close(y, expected)
    _close(grad, ALL)
    # trust T = 0.1: gradient where the error ≤ 0.1 → cut at 2.1, −1.3, −0.6
    y, grad, _ = _run("fp4", 4, _row(X), {"hadamard": False, "backward": "trust", "trust": 0.1})
    _close(y, expected)
    _close(grad, [0, 0, 1, 0, 1, 1, 1, 1])


@pytest.mark.parametrize("backward", ["trust", "clip", "ste"])
def test_fp4_default_hadamard_trust_hand_example(backward):
    # x = 0.75 everywhere, 2.75 at index 5 (RMS² = (15·0.5625 + 7.5625)/16 = 1).  With r5 = row 5 of
    # √16·H: x = 0.75·√16·(row 0 of H) + 2·e_5 → y = x·H = 3·e_0 + 0.5·r5, i.e. y_0 = 3.5, y_j = ±0.5.
    # ŷ: 3.5 → 6c = 2.92248 (outermost level; err .57752), ±0.5 → ±c (err .01292), so
    # ŷ = c·(5·e_0 + r5) and x̂ = ŷ·H = c·(1.25·[1]*16 + 4·e_5): 0.60885 everywhere, 2.55717 at 5.
    # Trust (default T = 0.31858σ) and clip (|y| ≤ 6c) both cut only y_0: M = ones − e_0.
    # Upstream g = 4·e_0, so g·H = [1]*16 and ∂x = (ones − e_0)·H = 4·e_0 − [0.25]*16 = [3.75, −.25, …].
    # STE: ∂x = g = 4·e_0.
    c = FP4_RMS_SCALE
    x = torch.full((1, 16), 0.75, dtype=F64)
    x[0, 5] = 2.75
    upstream = torch.zeros(1, 16, dtype=F64)
    upstream[0, 0] = 4.0
    y, grad, q = _run("fp4", 4, x, {"backward": backward}, role="weight", upstream=upstream)
    assert q.options["hadamard"] is True
    expected = torch.full((1, 16), 1.25 * c, dtype=F64)
    expected[0, 5] = 5.25 * c
    _close(y, expected)
    if backward == "ste":
        _close(grad, upstream)
    else:
        want = torch.full((1, 16), -0.25, dtype=F64)
        want[0, 0] = 3.75
        _close(grad, want)


def test_fp4_reference_trust_is_what_the_reference_computes():
    # GaussianTrustQuantizer's T = (levels[-1] − levels[-2])/2 on 20 Lloyd steps from linspace(−3, 3, 16)
    levels = lloyd_iterate(np.linspace(-3, 3, 16), 20)
    assert (levels[-1] - levels[-2]) / 2 == pytest.approx(FP4_REFERENCE_TRUST, abs=1e-9)
    q = build_quantizer("fp4", 4, "weight", 16, {}, "torch", rows=1)
    assert q.trust == FP4_REFERENCE_TRUST and "T=0.3186" in repr(q)
    assert build_quantizer("fp4", 4, "weight", 16, {"trust": 0.5}, "torch", rows=1).trust == 0.5


# -- gaussian: Lloyd–Max -------------------------------------------------------------------------
def test_gaussian_2bit_hand_example():
    # Lloyd–Max 2 bits: ±l, ±L with l = 0.45278003, L = 1.51041761; thresholds 0, ±(l + L)/2 = ±0.98160.
    #   2.1, −1.3 → ±L;  1.0 > 0.98160 → L;  the rest → ±l.
    # STE: all pass.  trust (T = (L − l)/2 = 0.52882): |ŷ − y| = .58958 at 2.1 (cut), .21042 at −1.3,
    # .51042 at 1.0 (pass); clip (|y| ≤ L): cut at 2.1 only.
    lo, hi = 0.4527800346, 1.5104176085
    expected = [hi, -hi, hi, -lo, lo, -lo, lo, -lo]
    y, grad, _ = _run("gaussian", 2, _row(X))
    _close(y, expected)
    _close(grad, ALL)
    for backward in ("trust", "clip"):
        y, grad, q = _run("gaussian", 2, _row(X), {"backward": backward})
        _close(y, expected)
        _close(grad, [0, 1, 1, 1, 1, 1, 1, 1])
    assert q.default_trust() == pytest.approx((hi - lo) / 2, abs=1e-9)


def test_lloyd_max_table_is_recomputed():
    for bits, half in LLOYD_MAX_LEVELS.items():
        assert len(half) == 2 ** (bits - 1)
        np.testing.assert_allclose(lloyd_max_levels(bits), signed_levels(bits), rtol=0, atol=1e-9)


@pytest.mark.parametrize("bits,mse", [(1, 0.3634), (2, 0.1175), (3, 0.03454), (4, 0.009497)])
def test_lloyd_max_mse_matches_max_1960(bits, mse):
    # Max (1960), Table I: mean-squared error of the optimum N(0, 1) quantizer
    assert gaussian_grid_mse(signed_levels(bits)) == pytest.approx(mse, rel=2e-3)
    # and it beats the best uniform grid of the same size (QuEST's α_b grid), strictly from 2 bits
    from quest_lab.quant import gaussian_alpha
    uniform = gaussian_grid_mse(np.linspace(-gaussian_alpha(bits), gaussian_alpha(bits), 2 ** bits))
    assert gaussian_grid_mse(signed_levels(bits)) <= uniform + 1e-12


# -- specs: options, checks and the default of every baseline ------------------------------------
@pytest.mark.parametrize("kwargs,needle", [
    ({"name": "lsq", "w_bits": 1}, "allowed: 2, 3, 4, 5, 6, 7, 8, 16"),
    ({"name": "clip", "options": {"clip_scale": 0}}, "clip_scale=0"),
    ({"name": "hadamard_clip", "options": {"hadamard": True}}, "allowed: clip_scale, hadamard_block"),
    ({"name": "fp4", "options": {"backward": "pact"}}, "'ste', 'clip', 'trust'"),
    ({"name": "fp4", "options": {"backward": "ste", "trust": 0.3}}, "only used with backward='trust'"),
    ({"name": "gaussian", "options": {"trust": 0.3}}, "only used with backward='trust'"),
    ({"name": "gaussian", "w_bits": 1.58}, "allowed: 1, 2, 3"),
    ({"name": "absmax", "options": {"clip_scale": 1.0}}, "allowed: \\(none\\)"),
])
def test_baseline_option_validation(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        QuantConfig(**kwargs)


def test_baseline_defaults_are_the_papers():
    from quest_lab.quant import get_spec

    assert get_spec("hadamard_clip").resolve_options({}) == {"clip_scale": 1.3, "hadamard_block": 128}
    assert get_spec("clip").resolve_options({}) == {"clip_scale": 1.0}
    assert get_spec("fp4").resolve_options({}) == {"hadamard": True, "backward": "trust", "trust": None,
                                                   "hadamard_block": 128}
    assert get_spec("gaussian").resolve_options({})["backward"] == "ste"
    for name in ("ste", "absmax", "lsq", "ternary"):
        assert get_spec(name).resolve_options({}) == {}
    # every spec says where it comes from
    from quest_lab.quant import QUANTIZER_SPECS

    assert all(spec.citation and spec.summary for spec in QUANTIZER_SPECS.values())
