"""Derived answers: compute-optimal N/D, efficiency per bit, optimal precision, Pareto frontier."""
from __future__ import annotations

import numpy as np
import pytest

from quest_lab.analysis import FitConfig, FitResult, get_law
from quest_lab.analysis import derived

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


def test_compute_budget_uses_bops():
    assert derived.training_compute(1e6, 1e9, 16, 16) == pytest.approx(6e15)
    assert derived.training_compute(1e6, 1e9, 4, 4) == pytest.approx(6e15 / 16)
    table = derived.optimal_precision_compute(_result(), 1e21)
    assert set(table["label"]) == {"bf16", *EFF}
    assert table["loss"].is_monotonic_increasing


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
    with pytest.raises(ValueError, match="not of the form"):
        derived.label_bits("weird")


def test_compute_optimal_of_a_quantized_precision_matches_closed_form():
    """W4A4 with eff 0.8: A → A·eff^−α and N·D = C·256/(6·4·4) (BOPs), else the Chinchilla closed form."""
    res = _result()
    C = 1e21
    got = derived.compute_optimal(res, C, "quest:w4a4")
    a, b = PARAMS["alpha"], PARAMS["beta"]
    nd = C * 256 / (6 * 4 * 4)
    G = (a * PARAMS["A"] * 0.8 ** -a / (b * PARAMS["B"])) ** (1 / (a + b))
    n_opt = G * nd ** (b / (a + b))
    assert got["N"] == pytest.approx(n_opt, rel=1e-4)
    assert got["D"] == pytest.approx(nd / n_opt, rel=1e-4)
    assert derived.memory_bits(got["N"], 4) == pytest.approx(4 * n_opt, rel=1e-4)
