"""Group-wise quantization (issue 15): one scale per group of G consecutive inputs along K.

Hand-computed small cases (a 1×8 row with G = 4: two scales), grouped = per row on the slices, G = K
= per row, QuEST's Hadamard block and the group (vs the numpy oracle), validation, labels, RunConfig."""
from __future__ import annotations

import math

import pytest
import torch

from quest_lab.quant import (QuantConfig, QuantLinear, build_quantizer, get_spec, hadamard_transform,
                             parse_precision_label, precision_label, quest_quantize)
from quest_lab.quant.specs import group_quantizers
from quest_lab.run import RunConfig

F64 = torch.float64
A2 = 1.4935346200  # α_2
# group 1 has RMS 1 (squares 2.56 + .64 + .64 + .16 = 4), group 2 is group 1 / 10 (RMS 0.1)
X = [1.6, -0.8, 0.8, -0.4, 0.16, -0.08, 0.08, -0.04]
GROUPED = ("ste", "absmax", "clip", "hadamard_clip", "quest", "lsq", "fp4", "gaussian")


def _row(values) -> torch.Tensor:
    return torch.tensor([values], dtype=F64)


def _run(name, bits, x, options=None, group=None, role="activation", upstream=None):
    q = build_quantizer(name, bits, role, x.shape[-1], options or {}, "torch", rows=x.shape[0],
                        group_size=group).double()
    x = x.clone().requires_grad_(True)
    y = q(x)
    y.backward(torch.ones_like(y) if upstream is None else upstream)
    return y.detach(), x.grad, q


def _close(actual, expected, atol=1e-7):  # hand values leave out the 1e-8 guards on s
    torch.testing.assert_close(actual, expected if torch.is_tensor(expected) else _row(expected), rtol=0, atol=atol)


def test_spec_declares_groups():
    assert set(group_quantizers()) == set(GROUPED)
    assert not get_spec("ternary").groups and not get_spec("slb").groups and not get_spec("bf16").groups


# -- hand examples: 1×8, G = 4 -> two scales ------------------------------------------------------
def test_ste_2bit_two_groups_hand_example():
    # group 1: σ = 1, s = α_2 = 1.49353462, Δ = 2s/3 = 0.99568975, grid {±s/3, ±s}, thresholds 0, ±Δ:
    #   1.6 → s; −0.8 → −s/3; 0.8 → s/3; −0.4 → −s/3.  Group 2: σ = 0.1, the same pattern × 0.1.
    s1, s2 = A2, A2 / 10
    y, grad, _ = _run("ste", 2, _row(X), group=4)
    _close(y, [s1, -s1 / 3, s1 / 3, -s1 / 3, s2, -s2 / 3, s2 / 3, -s2 / 3])
    _close(grad, [1.0] * 8)
    # one scale per row instead: σ = √(4.04/8) = 0.7106, s = 1.0613, Δ = 0.7076: all of group 2 is
    # within ±Δ/2 of 0 → ±s/3 = ±0.354, more than twice its own magnitude
    y_row, _, _ = _run("ste", 2, _row(X))
    s = A2 * math.sqrt(4.04 / 8)
    _close(y_row[:, 4:], [s / 3, -s / 3, s / 3, -s / 3])
    x = _row(X)  # the small group's squared error: 0.0020 with its own scale, 0.29 with the row's
    assert (y - x)[:, 4:].pow(2).sum() < 0.01 * (y_row - x)[:, 4:].pow(2).sum()


def test_quest_trust_mask_per_group_hand_example():
    # no Hadamard, the same grid as ste; trust 0.1σ_g: errors in group 1 are .1065, .3022, .3022, .0978
    # → M = 0 0 0 1; group 2 has errors .01065, .03022, .03022, .00978 vs 0.1·0.1 = .01 → 0 0 0 1 too
    # (with one σ per row, T·σ = 0.071 would let every element of group 2 through)
    up = _row([1, 2, 3, 4, 5, 6, 7, 8])
    y, grad, _ = _run("quest", 2, _row(X), {"hadamard": False, "trust": 0.1}, group=4, upstream=up)
    s1, s2 = A2, A2 / 10
    _close(y, [s1, -s1 / 3, s1 / 3, -s1 / 3, s2, -s2 / 3, s2 / 3, -s2 / 3])
    _close(grad, [0, 0, 0, 4, 0, 0, 0, 8])


def test_absmax_two_groups_hand_example():
    # group 1: s = 1.6, Δ = 3.2/3 = 1.0667; j = round(x/Δ + ½): 1.6 → 2 (s); −0.8 → round(−.25) = 0
    # (−Δ/2 = −.5333); 0.8 → round(1.25) = 1 (.5333); −0.4 → round(.125) = 0 (−.5333).  Group 2: × 0.1
    y, _, _ = _run("absmax", 2, _row(X), group=4)
    h = 1.6 / 3
    _close(y, [1.6, -h, h, -h, 0.16, -h / 10, h / 10, -h / 10])


def test_lsq_one_step_per_group_hand_example():
    # 2 bits: Qn = 2, Qp = 1, levels (k + ½)·s, k = −2 … 1.  s₀ = 2·mean|v_g|/√Qp: group 1 mean|·| = 0.9
    # → s = 1.8, group 2 → 0.18.  v/s − ½: 1.6 → .389 → 0 → .5s = .9; −0.8 → −.944 → −1 → −.9;
    # 0.8 → .9; −0.4 → −.722 → −1 → −.9.  Group 2: × 0.1
    y, _, q = _run("lsq", 2, _row(X), group=4, role="weight")
    assert q.step.shape == (1, 2, 1)
    torch.testing.assert_close(q.step.detach().flatten(), torch.tensor([1.8, 0.18], dtype=F64))
    _close(y, [0.9, -0.9, 0.9, -0.9, 0.09, -0.09, 0.09, -0.09])
    # activations: one step per group of channels, shared by all tokens
    qa = build_quantizer("lsq", 4, "activation", 64, {}, "torch", group_size=16)
    x = torch.randn(3, 5, 64)
    qa(x).square().sum().backward()
    assert qa.step.shape == (4, 1) and qa.step.grad.abs().min() > 0
    torch.testing.assert_close(qa.step.detach().flatten(),
                               2 * x.unflatten(-1, (4, 16)).abs().mean(dim=(0, 1, 3)) / math.sqrt(7))


# -- structure: grouped = per row on the slices; G = K = per row -------------------------------------
@pytest.mark.parametrize("name", GROUPED)
def test_grouped_equals_per_row_on_each_slice(name):
    """With G a multiple of the Hadamard block (here block 4, G = 8), quantizing a (3, 32) weight in groups
    of 8 is quantizing each 8-wide slice as its own row (lsq: one step per (row, group) of a weight)."""
    bits = 4 if name in ("fp4", "lsq") else 3
    opts = {"hadamard_block": 4} if "hadamard_block" in get_spec(name).options else {}
    x = torch.randn(3, 32, dtype=F64, generator=torch.Generator().manual_seed(1)) * torch.tensor([3.0, 0.1, 1, 10]
                                                                                                ).repeat_interleave(8)
    y, grad, _ = _run(name, bits, x, opts, group=8, role="weight",
                      upstream=torch.linspace(-1, 1, 96, dtype=F64).reshape(3, 32))
    slices = x.reshape(12, 8)  # one slice at a time: lsq's per-tensor step is then the slice's own
    for i in range(12):
        yi, gi, _ = _run(name, bits, slices[i:i + 1], opts, role="weight",
                         upstream=torch.linspace(-1, 1, 96, dtype=F64).reshape(12, 8)[i:i + 1])
        torch.testing.assert_close(y.reshape(12, 8)[i:i + 1], yi, rtol=0, atol=1e-12)
        torch.testing.assert_close(grad.reshape(12, 8)[i:i + 1], gi, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", GROUPED)
def test_group_size_k_equals_per_row(name):
    bits = 4
    x = torch.randn(6, 64, dtype=F64, generator=torch.Generator().manual_seed(2)) * 2
    up = torch.randn(6, 64, dtype=F64, generator=torch.Generator().manual_seed(3))
    y0, g0, _ = _run(name, bits, x, upstream=up)  # lsq as an activation: per tensor = the one group
    y1, g1, q1 = _run(name, bits, x, group=64, upstream=up)
    assert q1.per_row
    torch.testing.assert_close(y1, y0, rtol=0, atol=1e-12)
    torch.testing.assert_close(g1, g0, rtol=0, atol=1e-12)


# -- QuEST: the Hadamard block and the group ------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("k,block,group", [(256, 128, 32), (256, 128, 4), (256, 128, 128), (256, 32, 64),
                                           (256, 128, 256), (96, 32, 16)])
def test_quest_groups_match_independent_oracle(bits, k, block, group):
    from oracle import quest_oracle, quest_oracle_grad

    g = torch.Generator().manual_seed(bits + k + group)
    x = torch.randn(10, k, generator=g, dtype=F64) * torch.rand(10, k // 16, generator=g, dtype=F64
                                                                ).mul(4).repeat_interleave(16, 1)
    xr = x.clone().requires_grad_(True)
    x_hat, mask = quest_quantize(xr, bits, block=block, group=group)
    want, want_mask, h = quest_oracle(x.numpy(), bits, block, group=group)
    assert torch.equal(mask, torch.from_numpy(want_mask))
    torch.testing.assert_close(x_hat.detach(), torch.from_numpy(want), rtol=0, atol=1e-12)
    up = torch.randn(10, k, generator=g, dtype=F64)
    x_hat.backward(up)
    torch.testing.assert_close(xr.grad, torch.from_numpy(quest_oracle_grad(up.numpy(), want_mask, h)),
                               rtol=0, atol=1e-12)


def test_what_sigma_per_group_means_with_the_rotation():
    """G ≥ block: σ of a group of rotated values = RMS of the group's own (unrotated) inputs.  G < block:
    σ² of the block's groups average to the block's mean square (Parseval), but each group's σ is that
    of G rotated coordinates, not of G inputs."""
    from quest_lab.kernels.reference import quest_quantize_fwd_ref

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 512, generator=g, dtype=F64) * torch.rand(4, 16, generator=g, dtype=F64
                                                                 ).mul(5).repeat_interleave(32, 1)
    a = 2.5139305786

    def sigma(delta):  # Δ = 2(α·σ + 1e-8)/(2^b − 1)
        return (delta * 15 / 2 - 1e-8) / a

    _, _, d256 = quest_quantize_fwd_ref(x, 4, a, block=128, group=256)
    torch.testing.assert_close(sigma(d256), x.unflatten(-1, (2, 256)).pow(2).mean(-1).sqrt(), rtol=1e-12, atol=0)
    _, _, d32 = quest_quantize_fwd_ref(x, 4, a, block=128, group=32)
    per_block = sigma(d32).pow(2).unflatten(-1, (4, 4)).mean(-1)  # 4 groups of 32 per block of 128
    torch.testing.assert_close(per_block, x.unflatten(-1, (4, 128)).pow(2).mean(-1), rtol=1e-10, atol=0)
    unrotated = x.unflatten(-1, (16, 32)).pow(2).mean(-1).sqrt()
    assert (sigma(d32) - unrotated).abs().max() > 0.1  # not the inputs' own RMS
    rotated = hadamard_transform(x, 128).unflatten(-1, (16, 32)).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(sigma(d32), rotated, rtol=1e-12, atol=0)


# -- validation, labels, identity ---------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,needle", [
    ({"name": "quest", "group_size": 48}, "power of two >= 2"),
    ({"name": "quest", "group_size": 1}, "power of two >= 2"),
    ({"name": "quest", "group_size": True}, "power of two >= 2"),
    ({"name": "quest", "group_size": "32"}, "power of two >= 2"),
    ({"name": "ternary", "w_bits": 1.58, "a_bits": 8, "group_size": 32},
     "not supported by quantizer 'ternary'; allowed: null \\(groups: ste, absmax"),
    ({"name": "bf16", "group_size": 32}, "not supported by quantizer 'bf16'"),
    ({"name": "quest", "w_bits": 4, "a_bits": 4, "group_size": 32, "gemm": "lowp"}, "gemm='auto' or 'fake'"),
])
def test_group_size_validation(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        QuantConfig(**kwargs)


def test_group_must_divide_the_layer():
    with pytest.raises(ValueError, match="does not divide this layer's K=48"):
        QuantLinear(48, 8, qconfig=QuantConfig("quest", 4, 4, group_size=32))
    layer = QuantLinear(64, 8, qconfig=QuantConfig("quest", 4, 4, group_size=32))
    assert layer.wq.group_size == layer.aq.group_size == 32 and "g32" in layer.extra_repr()


def test_labels_round_trip():
    assert precision_label("quest", 4, 4) == "quest:w4a4"  # per row: unchanged
    assert precision_label("quest", 4, 4, 32) == "quest:w4a4g32"
    assert precision_label("ternary", 1.58, 8) == "ternary:w1.58a8"
    assert precision_label("quest", 16, 16, 32) == "bf16"
    for label in ("quest:w4a4g32", "quest:w4a4", "ternary:w1.58a8", "hadamard_clip:w1a16g128", "bf16"):
        p = parse_precision_label(label)
        assert precision_label(p.quantizer, p.w_bits, p.a_bits, p.group_size) == label
    assert parse_precision_label("quest:w4a4g32") == ("quest", 4.0, 4.0, 32, 16.0)  # g_bits 16: not in the label
    assert parse_precision_label("lsq:w2a2") == ("lsq", 2.0, 2.0, None, 16.0)
    for bad in ("quest", "quest:w4", "quest:w4a4g", "quest:w4a4g3x", "quest:x4a4"):
        with pytest.raises(ValueError, match="not 'bf16' or"):
            parse_precision_label(bad)
    assert QuantConfig("quest", 4, 4, group_size=64).label == "quest:w4a4g64"


def test_runconfig_group_size_identity_and_checks():
    base = dict(size="tiny", w_bits=4, a_bits=4, tokens=1000)
    cfg = RunConfig(**base, group_size=32)
    assert cfg.precision_label == "quest:w4a4g32" and cfg.quant.group_size == 32
    assert RunConfig(**base).precision_label == "quest:w4a4"
    # per-row runs keep the run_ids they had before the field existed (values from the main branch)
    assert RunConfig(**base).run_id("abc") == "8fa5b19a84851b19"
    assert RunConfig(size="nano", w_bits=2, a_bits=16, quantizer="ste", tokens_per_param=5,
                     seed=3).run_id("abc") == "277b1971f283d967"
    assert "group_size" not in RunConfig(**base).resolved()
    ids = {RunConfig(**base, group_size=g).run_id("abc") for g in (None, 16, 32)}
    assert len(ids) == 3
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    full = RunConfig(size="tiny", tokens=1000, group_size=32)  # 16/16: the one bf16 baseline
    assert full.quantizer == "bf16" and full.group_size is None and full.run_id() == RunConfig(
        size="tiny", tokens=1000).run_id()
    with pytest.raises(ValueError, match="does not divide d=48.*allowed here: 2, 4, 8, 16"):
        RunConfig(size="micro", w_bits=4, a_bits=4, tokens=1000, group_size=32)
    with pytest.raises(ValueError, match="not supported by quantizer 'ternary'"):
        RunConfig(size="tiny", quantizer="ternary", w_bits=1.58, a_bits=8, tokens=1000, group_size=32)


def test_grouped_model_trains_a_step():
    from quest_lab.model import build_model

    torch.manual_seed(0)
    model = build_model("nano", QuantConfig("quest", 4, 4, group_size=16, backend="torch"), vocab_size=64,
                        seq_len=16)
    idx = torch.randint(0, 64, (2, 16))
    loss = torch.nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten())
    loss.backward()
    assert torch.isfinite(loss) and all(m.qkv_proj.weight.grad.abs().sum() > 0 for m in
                                        (b.attn for b in model.blocks))
