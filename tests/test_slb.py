"""SLB (issue 15): searched low-bit weights (Yang et al. 2020, arXiv 2009.08695).

Temperature schedule by hand, soft vs hard weights, the grid, initialisation, options, the progress
hook in `train()`, and the paper's point: on a tiny regression layer the searched 2-bit weights beat
round-to-nearest of the trained full-precision weights in task loss."""
from __future__ import annotations

import math

import pytest
import torch

from quest_lab.quant import QUANTIZER_SPECS, QuantConfig, QuantLinear, build_quantizer, get_spec
from quest_lab.quant.slb import slb_temperature

F64 = torch.float64


def _slb(rows=3, k=16, bits=2, **options):
    return build_quantizer("slb", bits, "weight", k, options, "torch", rows=rows).double()


def test_slb_is_registered_with_its_citation():
    spec = get_spec("slb")
    assert "2009.08695" in spec.citation and "Yang" in spec.citation
    assert "2^b" in spec.summary and "memory" in spec.summary
    assert spec.allowed_bits("weight") == (1, 2, 3, 4, 16) and spec.allowed_bits("activation") == (16,)
    assert "slb" in QUANTIZER_SPECS


def test_quantizers_command_lists_slb():
    from typer.testing import CliRunner

    import cli

    res = CliRunner().invoke(cli.app, ["quantizers"], terminal_width=400, env={"COLUMNS": "400"})
    assert res.exit_code == 0 and "slb" in res.output and "2009.08695" in res.output


def test_temperature_schedule_hand_values():
    o = dict(tau_start=1.0, tau_end=0.01, anneal_start=0.2, anneal_end=0.6)
    assert slb_temperature(0.0, schedule="exponential", **o) == 1.0
    assert slb_temperature(0.2, schedule="exponential", **o) == 1.0
    # halfway (0.4): exponential √(1·0.01) = 0.1; linear (1 + 0.01)/2 = 0.505; cosine the same at u = ½
    assert slb_temperature(0.4, schedule="exponential", **o) == pytest.approx(0.1)
    assert slb_temperature(0.4, schedule="linear", **o) == pytest.approx(0.505)
    assert slb_temperature(0.4, schedule="cosine", **o) == pytest.approx(0.505)
    # a quarter in (0.3): cosine 0.01 + 0.99·(1 + cos(π/4))/2
    assert slb_temperature(0.3, schedule="cosine", **o) == pytest.approx(0.01 + 0.99 * (1 + math.sqrt(0.5)) / 2)
    assert slb_temperature(0.5999, schedule="exponential", **o) == pytest.approx(0.01, rel=1e-2)
    assert slb_temperature(0.6, schedule="exponential", **o) is None  # hard from anneal_end on
    assert slb_temperature(1.0, schedule="linear", **o) is None


def test_grid_init_soft_and_hard_weights():
    torch.manual_seed(0)
    w = torch.randn(3, 16, dtype=F64) * torch.tensor([[0.5], [1.0], [2.0]], dtype=F64)
    q = _slb()
    assert q.logits.shape == (3, 16, 4)  # 2^b logits per weight: the memory cost
    q.train()
    soft = q(w)
    # the grid: QuEST's 2^b points on [−s, s], s = α_2·RMS(row) of the initial weight, per row
    s = 1.4935346200 * w.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8
    torch.testing.assert_close(q.values().squeeze(1), s * torch.tensor([-1, -1 / 3, 1 / 3, 1], dtype=F64),
                               rtol=1e-12, atol=0)
    # training at progress 0: τ = tau_start = 1, ŵ = Σ softmax(z)·v
    p = torch.softmax(q.logits.detach(), -1)
    torch.testing.assert_close(soft, (p * q.values()).sum(-1))
    # eval: hard values; from init="weight" the argmax is the nearest grid point = round-to-nearest
    q.eval()
    hard = q(w)
    rtn = build_quantizer("ste", 2, "weight", 16, {}, "torch", rows=3).double()(w)
    torch.testing.assert_close(hard, rtn, rtol=0, atol=1e-7)
    assert all(torch.unique(row).numel() <= 4 for row in hard)
    # training but past anneal_end: hard too, and no gradient reaches the logits
    q.train()
    q.set_progress(0.6)
    assert q.temperature is None and torch.equal(q(w), hard) and not q(w).requires_grad
    q.set_progress(0.4)
    assert q.temperature == pytest.approx(math.sqrt(1e-3))  # defaults: 1 → 1e-3 exponential over 0.2–0.6


def test_scale_per_tensor_and_random_init():
    w = torch.randn(4, 8, dtype=F64) * torch.arange(1, 5, dtype=F64)[:, None]
    q = _slb(rows=4, k=8, scale="tensor", init="random")
    q.eval()
    out = q(w)
    s = 1.4935346200 * w.pow(2).mean().sqrt() + 1e-8  # one s for the whole matrix
    torch.testing.assert_close(q.scale.flatten(), s.expand(4), rtol=1e-12, atol=0)
    grid = s * torch.tensor([-1, -1 / 3, 1 / 3, 1], dtype=F64)
    assert ((out.reshape(-1, 1) - grid).abs().min(-1).values < 1e-12).all()
    assert q.logits.std() > 0.5  # N(0, 1) logits


@pytest.mark.parametrize("kwargs,needle", [
    ({"a_bits": 4}, "a_bits=4 is not supported by quantizer 'slb'.*allowed: 16"),
    ({"w_bits": 8}, "allowed: 1, 2, 3, 4, 16"),
    ({"options": {"tau_start": 0.1, "tau_end": 1.0}}, "tau_end=1.0 must be <= tau_start=0.1"),
    ({"options": {"anneal_start": 0.7}}, "anneal_start=0.7 must be < anneal_end=0.6"),
    ({"options": {"schedule": "step"}}, "'exponential', 'linear', 'cosine'"),
    ({"options": {"anneal_end": 1.5}}, "in \\[0, 1\\]"),
    ({"group_size": 32}, "not supported by quantizer 'slb'"),
])
def test_slb_option_validation(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        QuantConfig(**{"name": "slb", "w_bits": 2, **kwargs})


def test_searched_weights_beat_round_to_nearest():
    """A linear regression layer with correlated inputs (as a network's activations are): the trained
    full-precision weights rounded to the nearest of the 2-bit grid lose a lot; SLB, started from the
    same weights and grid (its argmax at init is exactly that rounding), searches the 4 values per
    weight against the task loss and ends, hard, well below it.  (With isotropic inputs the loss is
    separable per weight and rounding to nearest would already be optimal.)"""
    g = torch.Generator().manual_seed(0)
    k, n_out, n = 32, 8, 256
    x = torch.randn(n, k, generator=g) @ (torch.eye(k) + 0.5 * torch.randn(k, k, generator=g)) / 2
    y = x @ (torch.randn(n_out, k, generator=g) / k ** 0.5).T + 0.01 * torch.randn(n, n_out, generator=g)
    w_fp = torch.linalg.lstsq(x, y).solution.T  # the trained full-precision weights

    def task_loss(w: torch.Tensor) -> float:
        return float(((x @ w.T - y) ** 2).mean())

    rtn = build_quantizer("ste", 2, "weight", k, {}, "torch", rows=n_out)(w_fp)
    layer = QuantLinear(k, n_out, qconfig=QuantConfig("slb", 2, 16, {"anneal_start": 0.0, "anneal_end": 1.0}))
    with torch.no_grad():
        layer.weight.copy_(w_fp)
    layer.eval()
    assert task_loss(layer.wq(layer.weight).detach()) == pytest.approx(task_loss(rtn), rel=1e-5)  # starts at RTN
    layer.train()
    opt = torch.optim.Adam(layer.wq.parameters(), lr=0.05)
    steps = 200
    for step in range(steps):
        layer.wq.set_progress(step / steps)
        loss = ((layer(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    layer.wq.set_progress(1.0)  # training over: hard weights even in train mode
    searched = layer.wq(layer.weight).detach()
    assert torch.equal(searched, layer.wq.hard_weight())
    assert task_loss(searched) < 0.7 * task_loss(rtn), (task_loss(searched), task_loss(rtn), task_loss(w_fp))


def test_train_drives_the_temperature_and_ends_hard():
    from quest_lab.run import RunConfig
    from quest_lab.train import train

    seen = []
    from quest_lab.quant.slb import SLBQuantizer

    orig = SLBQuantizer.set_progress

    def spy(self, fraction):
        if self.enabled:
            seen.append(fraction)
        orig(self, fraction)

    SLBQuantizer.set_progress = spy
    try:
        cfg = RunConfig(size="nano", quantizer="slb", w_bits=2, a_bits=16, tokens=32 * 8 * 5, corpus="shakespeare",
                        tokenizer="byte", seq_len=32, batch_size=8, eval_tokens=1024, device="cpu")
        res = train(cfg)
    finally:
        SLBQuantizer.set_progress = orig
    assert res.status == "completed" and res.steps == 5 and math.isfinite(res.final_eval_loss)
    n_quantizers = 4 * 2  # nano: 2 blocks × (qkv, o, gate_up, down)
    assert len(seen) == n_quantizers * 6
    assert sorted(set(seen)) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]  # (step − 1)/steps, then 1.0 at the end
    assert res.n_params == RunConfig(size="nano", tokens=10).n_params  # logits are not counted in N
