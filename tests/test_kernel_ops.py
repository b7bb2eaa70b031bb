"""The kernels as torch.library custom ops (kernels/ops.py, issue 12 item 2), on the CPU (Triton interpreter):
opcheck, op vs the eager autograd.Function path (bit-identical) and vs the torch reference, and
torch.compile(fullgraph=True) through the ops (no graph breaks) matching eager forward and gradients."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from quest_lab.kernels import (LaunchConfig, quest_fake_quant, quest_fake_quant_ref, quest_fake_quant_rotated,
                               quest_quantize_bwd_ref, quest_quantize_codes, quest_quantize_fwd, quest_quantize_fwd_ref)
from quest_lab.kernels import ops as kops
from quest_lab.kernels.lowp import quest_lowp_linear
from quest_lab.kernels.reference import quest_lowp_linear_ref
from quest_lab.quant import QuantConfig, QuantLinear
from quest_lab.quant.gaussian import gaussian_alpha

OPS = torch.ops.quest_lab
A4 = gaussian_alpha(4)
SIDE4 = (4, A4, A4 / 15)


def _x(m, k, dtype=torch.float32, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * torch.rand(m, 1, generator=g).mul(3).add(0.1)
    x[:, :2] += 4.0
    return x.to(dtype).requires_grad_(grad)


@pytest.fixture
def eager_ops():
    """Run the public functions through the custom ops in eager mode."""
    old = kops.EAGER_OPS
    kops.EAGER_OPS = True
    yield
    kops.EAGER_OPS = old


def test_config_codec_roundtrip():
    assert set(kops.CONFIG_FIELDS) == {f.name for f in dataclasses.fields(LaunchConfig)}
    for cfg in (None, LaunchConfig(), LaunchConfig(tile_blocks=32, rows=64, split_in=2, split_mid=0, exact_codes=True,
                                                   two_pass=False, pack=1, fast_div=False, programs_per_sm=0)):
        enc = kops.encode_config(cfg)
        assert all(type(v) is int for v in enc)
        assert kops.decode_config(enc) == cfg


# --- opcheck ------------------------------------------------------------------------------------------

FAKE_QUANT_CASES = [  # (shape, dtype, hadamard, block, rotated, out_dtype, round_input, mask_format, group_size)
    ((8, 64), torch.float32, True, 64, True, None, False, "packed", None),
    ((2, 4, 128), torch.float32, True, 128, False, torch.float16, True, "packed", None),
    ((16, 128), torch.float16, True, 32, True, torch.float32, False, "bytes", None),
    ((8, 128), torch.float32, True, 64, True, None, False, "packed", 32),
    ((8, 64), torch.float32, False, 64, False, None, False, "packed", None),
]


@pytest.mark.parametrize("case", FAKE_QUANT_CASES, ids=lambda c: "-".join(map(str, c[:1] + c[2:])))
def test_opcheck_fake_quant(case):
    shape, dtype, had, block, rot, odt, ri, mf, gs = case
    x = _x(int(torch.tensor(shape[:-1]).prod()), shape[-1], dtype, grad=True).detach().view(shape).requires_grad_()
    args = (x, 4, A4, None, had, block, rot, odt, ri, kops.encode_config(None), mf, gs)
    torch.library.opcheck(OPS.fake_quant.default, args)


def test_opcheck_fake_quant_bwd_and_dequantize():
    x = _x(16, 128)
    _, mask, _ = quest_quantize_fwd(x, 4, A4)
    g = _x(16, 128, seed=1)
    for rotated in (True, False):
        torch.library.opcheck(OPS.fake_quant_bwd.default, (g, mask, 128, True, rotated, [], torch.float32))
    cfg = kops.encode_config(LaunchConfig(tile_blocks=16, num_warps=1, rows=16))
    torch.library.opcheck(OPS.fake_quant_bwd.default, (g.half(), mask, 64, True, True, cfg, torch.float32))
    c, _, s = quest_quantize_codes(x, *SIDE4, code_dtype=torch.int8)
    torch.library.opcheck(OPS.dequantize_codes.default, (c, s, "codes", torch.float32))


@pytest.mark.parametrize("fmt,bias", [("int8", False), ("fp8", True)])
def test_opcheck_lowp_linear(fmt, bias):
    x = _x(16, 128, grad=True)
    w = (_x(32, 128, seed=3) * 0.02).requires_grad_()
    b = torch.randn(32, requires_grad=True) if bias else None
    args = (x, w, b, *SIDE4, *SIDE4, 128, fmt, torch.float32, True)
    # fp8: opcheck's test_schema and test_aot_dispatch_dynamic reduce the float8_e4m3fn tensors (allclose,
    # sum), which the CPU does not implement; the int8 case runs all four (same op, same schema), and
    # test_compile_quantlinear_triton[lowp] compiles the fp8 layer through aot_eager
    utils = ("test_autograd_registration", "test_faketensor")
    if fmt != "fp8":
        utils += ("test_schema", "test_aot_dispatch_dynamic")
    torch.library.opcheck(OPS.lowp_linear.default, args, test_utils=utils)


# --- eager: op == autograd.Function (same launches), both ≈ reference -------------------------------------

@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("mask_format", ["packed", "bytes"])
def test_op_equals_function_path(rotated, mask_format, eager_ops):
    fn = quest_fake_quant_rotated if rotated else quest_fake_quant
    x0 = _x(16, 128, seed=5).view(2, 8, 128)
    g = _x(16, 128, seed=6).view(2, 8, 128)
    outs = []
    for use in (False, True):
        kops.EAGER_OPS = use
        x = x0.clone().requires_grad_()
        out = fn(x, 4, A4, block=64, mask_format=mask_format)
        out.backward(g)
        outs.append((out.detach(), x.grad))
    assert outs[1][0].shape == x0.shape and outs[1][1].shape == x0.shape
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_op_matches_reference(eager_ops):
    """Forward vs the float64 reference and ∂x vs the reference backward with the reference mask
    (relative errors, as tests/test_kernels.py)."""
    x = _x(16, 128, seed=7, grad=True)
    out = quest_fake_quant(x, 4, A4, block=64)
    ref = quest_fake_quant_ref(x.detach().double(), 4, A4, block=64)
    assert float((out.detach().double() - ref).norm() / ref.norm()) < 1e-5
    g = _x(16, 128, seed=8)
    out.backward(g)
    _, m, _ = quest_quantize_fwd_ref(x.detach(), 4, A4, block=64)
    dref = quest_quantize_bwd_ref(g.double(), m, block=64)
    assert float((x.grad.double() - dref).norm() / dref.norm()) < 1e-5


@pytest.mark.parametrize("fmt", ["int8", "fp8"])
def test_lowp_op_equals_function_path(fmt, eager_ops):
    x0, w0 = _x(16, 128, seed=9), _x(32, 128, seed=10) * 0.02
    b0 = torch.randn(32)
    g = torch.randn(16, 32)
    res = []
    for use in (False, True):
        kops.EAGER_OPS = use
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        out = quest_lowp_linear(x, w, b, SIDE4, SIDE4, fmt=fmt, out_dtype=torch.float32, round_input=True)
        out.backward(g)
        res.append((out.detach(), x.grad, w.grad, b.grad))
    for a, b_ in zip(*res):
        assert torch.equal(a, b_)
    exact = quest_lowp_linear_ref(x0, w0, SIDE4, SIDE4, round_input=True) + b0.double()
    torch.testing.assert_close(res[1][0].double(), exact, rtol=1e-5, atol=1e-5)


# --- torch.compile(fullgraph=True) through the ops -------------------------------------------------------

def _compiled(fn, backend="aot_eager"):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, backend=backend)


def test_compile_fake_quant_fullgraph_matches_eager():
    def f(x, w):
        return (quest_fake_quant_rotated(x, 4, A4, block=64) @ quest_fake_quant_rotated(w, 4, A4, block=64).T).sum()

    x0, w0 = _x(8, 64, seed=11), _x(16, 64, seed=12)
    xe, we = x0.clone().requires_grad_(), w0.clone().requires_grad_()
    f(xe, we).backward()
    xc, wc = x0.clone().requires_grad_(), w0.clone().requires_grad_()
    cf = _compiled(f)
    loss = cf(xc, wc)  # fullgraph=True: a graph break raises
    loss.backward()
    torch.testing.assert_close(loss, f(xe.detach(), we.detach()), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(xc.grad, xe.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(wc.grad, we.grad, rtol=1e-6, atol=1e-6)
    # another token count: dynamo recompiles with a symbolic M (the fake impls' shapes are symbolic)
    x1, w1 = _x(24, 64, seed=13, grad=True), w0.clone().requires_grad_()
    torch.testing.assert_close(cf(x1, w1), f(x1, w1), rtol=1e-6, atol=1e-6)


def test_compile_graph_calls_the_ops():
    from torch._dynamo.testing import CompileCounterWithBackend

    cnt = CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()
    f = torch.compile(lambda x: quest_fake_quant(x, 4, A4, block=64) * 2, fullgraph=True, backend=cnt)
    f(_x(8, 64, grad=True)).sum().backward()
    assert cnt.frame_count == 1
    targets = {str(n.target) for g in cnt.graphs for n in g.graph.nodes if n.op == "call_function"}
    assert any("quest_lab.fake_quant" in t for t in targets), targets


@pytest.mark.parametrize("gemm", ["fake", "lowp"])
def test_compile_quantlinear_triton(gemm):
    torch.manual_seed(0)
    cfg = QuantConfig(name="quest", w_bits=4, a_bits=4, backend="triton", gemm=gemm)
    layer = QuantLinear(128, 32, bias=True, qconfig=cfg)
    x0 = _x(2 * 8, 128, seed=13).view(2, 8, 128)

    def step(mod, x):
        return mod(x).pow(2).mean()

    x = x0.clone().requires_grad_()
    loss_e = step(layer, x)
    loss_e.backward()
    ge = (x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone())
    layer.zero_grad()
    xc = x0.clone().requires_grad_()
    loss_c = _compiled(step)(layer, xc)
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-6, atol=1e-6)
    for a, b in zip((xc.grad, layer.weight.grad, layer.bias.grad), ge):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 4-10 s each on 2 cores; CI runs -m slow too
@pytest.mark.parametrize("gemm", ["fake", "lowp"])
def test_compile_whole_model_fullgraph(gemm):
    """The nano Llama with W4A4 QuEST (Triton) layers: one graph (fullgraph=True), same loss and grads."""
    from quest_lab.model import build_model

    torch.manual_seed(0)
    qc = QuantConfig(name="quest", w_bits=4, a_bits=4, backend="triton", gemm=gemm)
    model = build_model("nano", qc, vocab_size=256, seq_len=32, device=torch.device("cpu"))
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    loss_e = model(idx).float().pow(2).mean()
    loss_e.backward()
    ge = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss_c = _compiled(model)(idx).float().pow(2).mean()
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-6, atol=1e-7)
    for p, g in zip(model.parameters(), ge):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
