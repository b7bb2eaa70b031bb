"""Derived answers: compute-optimal N/D, efficiency per bit, optimal precision, Pareto frontier."""
from __future__ import annotations

import numpy as np
import pytest

from quest_lab.analysis import FitConfig, FitResult, get_law
from quest_lab.analysis import derived
from quest_lab.analysis.cost import get_cost_model

PARAMS = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
EFF = {"quest:w4a4": 0.8, "quest:w2a2": 0.3, "quest:w8a8": 1.0}


def _result(law_name="quest", eff=EFF) -> FitResult:
    labels = tuple(eff) if law_name == "quest" else ()
    law = get_law(law_name, labels)
    params = {**PARAMS, **{f"eff[{k}]": v for k, v in eff.items()}} if labels else PARAMS
    theta = law.from_public(params)
    return FitResult(law=law_name, formula=law.formula, params=law.to_public(theta), theta=theta, labels=labels,
                     objective=0.0, residuals=np.zeros(0), r2=1.0, n_runs=0, config=FitConfig(law=law_name, bootstrap=0))


def test_compute_optimal_matches_closed_form():
    res = _result("chinchilla", {})
    C = 5.76e23
    got = derived.compute_optimal(res, C)
    a, b = PARAMS["alpha"], PARAMS["beta"]
    G = (a * PARAMS["A"] / (b * PARAMS["B"])) ** (1 / (a + b))
    n_opt = G * (C / 6) ** (b / (a + b))
    assert got["N"] == pytest.approx(n_opt, rel=1e-4)
    assert got["D"] == pytest.approx(C / (6 * n_opt), rel=1e-4)


def test_efficiency_per_bit_and_memory_optimum_agree():
    res = _result()
    table = derived.efficiency_per_bit(res)
    assert table["label"][0] == "quest:w4a4"  # 0.8·16/4 = 3.2 beats 1.0·16/8 = 2 and 0.3·16/2 = 2.4
    assert table.set_index("label").loc["quest:w4a4", "eff_per_bit"] == pytest.approx(3.2)
    best_mem = derived.optimal_precision_memory(res, memory=16 * 1e8)  # data-rich limit
    assert best_mem["label"][0] == "quest:w4a4"
    assert best_mem.set_index("label").loc["bf16", "N"] == pytest.approx(1e8)


def test_compute_budget_uses_the_train_flops_cost_model():
    tf = get_cost_model("train_flops")
    assert tf.cost(1e6, 1e9, 16, 16) == pytest.approx(6e15)  # BF16: 6ND
    assert tf.cost(1e6, 1e9, 8, 8) == pytest.approx(5e15)  # forward at ½: 2ND/2 + 4ND
    assert tf.cost(1e6, 1e9, 4, 4) == pytest.approx(4.5e15)  # forward at ¼
    assert tf.cost(1e6, 1e9, 2, 2) == pytest.approx(4.5e15)  # nothing below 4 bits is faster
    assert tf.cost(1e6, 1e9, 4, 16) == pytest.approx(6e15)  # W4A16 runs at the 16-bit rate
    table = derived.optimal_precision_compute(_result(), 1e21)
    assert set(table["label"]) == {"bf16", *EFF}
    assert table["loss"].is_monotonic_increasing
    assert "quest:w2a2" != table["label"][0]  # eff 0.3 at the same cost as W4A4 (eff 0.8) never wins


def test_pareto_mask():
    cost = np.array([1, 2, 3, 4, 2.5])
    loss = np.array([5, 4, 4.5, 3, 3.9])
    assert derived.pareto_mask(cost, loss).tolist() == [True, True, False, True, True]


def test_pareto_mask_ties_and_non_finite():
    # equal cost: only the lower loss; equal loss: only the cheaper; exact duplicates: both
    cost = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    loss = np.array([5.0, 4.0, 4.0, 3.0, 3.0, 2.0])
    assert derived.pareto_mask(cost, loss).tolist() == [False, True, False, True, True, True]
    # a run with unknown cost (NaN N) or loss must neither join nor cut the frontier
    cost = np.array([1.0, np.nan, 2.0, 3.0, np.inf])
    loss = np.array([5.0, 1.0, 4.0, np.nan, 0.5])
    assert derived.pareto_mask(cost, loss).tolist() == [True, False, True, False, False]


def test_label_bits():
    assert derived.label_bits("rtn:w1.58a8") == (1.58, 8.0)
    with pytest.raises(ValueError, match="is not .bf16. or"):
        derived.label_bits("weird")


def test_compute_optimal_of_a_quantized_precision_matches_closed_form():
    """W4A4 with eff 0.8: A → A·eff^−α and N·D = C/4.5 (train_flops), else the Chinchilla closed form."""
    res = _result()
    C = 1e21
    got = derived.compute_optimal(res, C, "quest:w4a4")
    assert got["cost_model"] == "train_flops" and not got["search_bound_hit"]
    a, b = PARAMS["alpha"], PARAMS["beta"]
    nd = C / 4.5
    G = (a * PARAMS["A"] * 0.8 ** -a / (b * PARAMS["B"])) ** (1 / (a + b))
    n_opt = G * nd ** (b / (a + b))
    assert got["N"] == pytest.approx(n_opt, rel=1e-4)
    assert got["D"] == pytest.approx(nd / n_opt, rel=1e-4)
    assert derived.memory_bits(got["N"], 4) == pytest.approx(4 * n_opt, rel=1e-4)
    # the same under the bops cost model: N·D = C/(w·a)
    got = derived.compute_optimal(res, C, "quest:w4a4", get_cost_model("bops"))
    assert got["N"] == pytest.approx(G * (C / 16) ** (b / (a + b)), rel=1e-4)


def test_search_bound_is_reported():
    """β = 0: the data term does not fall with D, so the loss-minimising N runs into the search bound."""
    res = _result("chinchilla", {})
    params = {**PARAMS, "beta": 0.0}
    law = res.model
    res.theta = law.from_public(params)
    got = derived.compute_optimal(res, 1e21)
    assert got["search_bound_hit"]
