import math

import pytest
import torch
from torch import nn

from quest_lab.run import RunConfig, RunResult
from quest_lab.train import lr_at, param_groups, train

FAST = dict(size="nano", corpus="shakespeare", tokenizer="byte", seq_len=32, batch_size=8,
            eval_tokens=2048, device="cpu")


def test_lr_schedule_one_cycle_hand_values():
    peak, total = 1e-3, 100
    # warm-up ends at step e = 0.1·100 − 1 = 9; cosine from peak/100 = 1e-5 to peak
    assert lr_at(0, total, peak, 0.1, 0.1) == pytest.approx(peak / 100)
    # step 3: pct = 3/9, (1 − cos(π/3))/2 = 0.25 → 1e-5 + 0.25·(1e-3 − 1e-5) = 2.575e-4 (linear: 3.07e-4)
    assert lr_at(3, total, peak, 0.1, 0.1) == pytest.approx(2.575e-4)
    assert lr_at(9, total, peak, 0.1, 0.1) == pytest.approx(peak)
    # decay from e = 9 to 99: step 54 is halfway, (peak + 0.1·peak)/2 = 5.5e-4
    assert lr_at(54, total, peak, 0.1, 0.1) == pytest.approx(5.5e-4)
    assert lr_at(99, total, peak, 0.1, 0.1) == pytest.approx(0.1 * peak)
    assert lr_at(100, total, peak, 0.1, 0.1) == pytest.approx(0.1 * peak)  # past the end: final LR
    values = [lr_at(s, total, peak, 0.1, 0.1) for s in range(9, 101)]
    assert values == sorted(values, reverse=True)
    with pytest.raises(ValueError, match="total >= 1"):
        lr_at(0, 0, peak, 0.1, 0.1)


@pytest.mark.parametrize("total,warmup,final", [(100, 0.1, 0.1), (37, 0.25, 0.05), (10, 0.0, 0.1),
                                                (7, 0.3, 1.0), (5, 0.1, 0.02), (1, 0.1, 0.1), (250, 0.04, 0.1)])
def test_lr_schedule_matches_torch_one_cycle(total, warmup, final):
    """The reference's scheduler (IST-DASLab/QuEST src/main.py): OneCycleLR, cos, div_factor 1e2,
    final_div_factor 0.1 (= final_frac 0.1), stepped once per optimizer step."""
    peak = 1e-3
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peak, total_steps=total, pct_start=warmup, anneal_strategy="cos", cycle_momentum=False,
        div_factor=100.0, final_div_factor=1 / (100 * final))
    for step in range(total):
        assert lr_at(step, total, peak, warmup, final) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()


def test_no_weight_decay_on_lm_head_embeddings_norms_or_quantizer_state():
    from quest_lab.model import build_model
    from quest_lab.quant import QuantConfig, QuantLinear

    model = build_model("nano", QuantConfig("lsq", 4, 4), vocab_size=64, seq_len=16)
    groups = param_groups(model, 0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.0]
    block_linears = {id(m.weight) for m in model.modules() if isinstance(m, QuantLinear)}
    assert decayed == block_linears  # exactly the linear weights inside the blocks
    assert id(model.lm_head.weight) not in decayed and id(model.wte.weight) not in decayed
    lsq_steps = [p for n, p in model.named_parameters() if n.endswith(".step")]
    assert lsq_steps and all(id(p) in {id(q) for q in groups[2]["params"]} for p in lsq_steps)
    # every trainable parameter is in exactly one group
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(ids) == len(set(ids))


def test_loss_falls_and_result_is_complete():
    result = train(RunConfig(tokens=40 * 8 * 32, eval_every=20, **FAST))
    assert isinstance(result, RunResult) and result.status == "completed"
    assert result.final_eval_loss < math.log(256) - 1.0  # well below the uniform-prediction loss
    assert result.train_curve[-1][2] < result.train_curve[0][2]
    assert result.tokens == 40 * 8 * 32 and result.steps == 40
    assert result.n_params == RunConfig(tokens=1, **FAST).n_params
    assert [e[0] for e in result.eval_curve] == [20, 40]
    assert result.tokens_per_s > 0 and "torch" in result.versions and result.data_identity
    RunResult.from_dict(result.to_dict())  # JSON-able round trip


def test_same_seed_same_loss_different_seed_differs():
    a = train(RunConfig(tokens=10 * 8 * 32, **FAST))
    b = train(RunConfig(tokens=10 * 8 * 32, **FAST))
    c = train(RunConfig(tokens=10 * 8 * 32, seed=1, **FAST))
    assert a.final_eval_loss == b.final_eval_loss
    assert a.final_eval_loss != c.final_eval_loss


@pytest.mark.slow  # 17 s on 2 cores; the default suite trains QuEST through the sweep and CLI tests
def test_quantized_runs_train():
    for q, w, a in (("quest", 4, 4), ("ste", 4, 4), ("quest", 1, 1)):
        r = train(RunConfig(quantizer=q, w_bits=w, a_bits=a, tokens=10 * 8 * 32, **FAST))
        assert r.status == "completed" and math.isfinite(r.final_eval_loss)
        assert r.quantizer == q and r.w_bits == w


def test_divergence_is_recorded_not_raised():
    r = train(RunConfig(tokens=30 * 8 * 32, lr=50.0, warmup_frac=0.0, **FAST))
    assert r.status == "diverged"
    assert r.final_eval_loss is None and "train loss" in r.error


def test_tokens_per_param_budget():
    cfg = RunConfig(tokens_per_param=0.5, **FAST)
    assert cfg.token_budget == round(0.5 * cfg.n_params)


@pytest.mark.parametrize("bad, match", [
    (dict(size="huge"), "allowed: pico, nano"),
    (dict(quantizer="magic"), "allowed:"),
    (dict(w_bits=9), "allowed: 1, 1.58, 2"),
    (dict(a_bits=0), "not a supported bit-width"),
    (dict(tokens=0), "positive integer"),
    (dict(tokens=None), "exactly one of"),
    (dict(corpus="/no/such/corpus.txt"), "neither a built-in corpus"),
])
def test_bad_config(bad, match):
    kwargs = dict(FAST, tokens=1000)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        RunConfig(**kwargs)


def test_full_precision_is_one_run_whatever_the_quantizer():
    a = RunConfig(quantizer="quest", w_bits=16, a_bits=16, tokens=1000, **FAST)
    b = RunConfig(quantizer="ste", w_bits=16, a_bits=16, tokens=1000, **FAST)
    assert a.quantizer == b.quantizer == "bf16"
    assert a.run_id("x") == b.run_id("x")
    assert RunConfig(quantizer="quest", w_bits=4, a_bits=16, tokens=1000, **FAST).quantizer == "quest"


def test_run_id_hashes_the_resolved_config():
    from quest_lab.model import get_size

    per_param = RunConfig(tokens_per_param=2.0, **FAST)
    assert per_param.run_id("d") == RunConfig(tokens=per_param.token_budget, **FAST).run_id("d")
    assert RunConfig(tokens=1000, **FAST).run_id("d") == RunConfig(tokens=1000, lr=get_size("nano").peak_lr, **FAST).run_id("d")
    assert RunConfig(tokens=1000, **FAST).run_id("d") != RunConfig(tokens=1000, lr=1e-4, **FAST).run_id("d")
    assert RunConfig(tokens=1000, **FAST).run_id("d") != RunConfig(tokens=1000, **FAST).run_id("other corpus")
