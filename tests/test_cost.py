"""Cost models (analysis/cost.py) and the answers they give on the QuEST paper's own fitted law
(tests/data/quest_paper_law.json, from IST-DASLab/QuEST notebooks/plots.ipynb; see tests/data/README.md)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from quest_lab.analysis import FitConfig, FitResult, derived, get_law
from quest_lab.analysis.cost import COST_MODELS, CostModel, cost_models, get_cost_model, register_cost, validate_rates
from quest_lab.analysis.data import label_bits

PAPER = json.loads((Path(__file__).resolve().parent / "data" / "quest_paper_law.json").read_text())
W_EQ_A = [lab for lab in PAPER["eff"] if label_bits(lab)[0] == label_bits(lab)[1]]
BUDGETS = {"memory": (16 * 3e7, 16 * 8e8, 16 * 1e10), "train_flops": (1e18, 1e20, 1e22, 1e24),
           "bops": (256 * 1e16, 256 * 1e20)}


def paper_result(labels=tuple(PAPER["eff"])) -> FitResult:
    law = get_law("quest", labels)
    theta = law.from_public({**PAPER["params"], **{f"eff[{k}]": PAPER["eff"][k] for k in labels}})
    return FitResult(law="quest", formula=law.formula, params=law.to_public(theta), theta=theta, labels=labels,
                     objective=0.0, residuals=np.zeros(0), r2=1.0, n_runs=0, config=FitConfig(bootstrap=0))


def test_registry_has_the_three_cost_models_with_citations():
    models = cost_models()
    assert {"memory", "bops", "train_flops"} <= set(models)
    for m in models.values():
        assert m.formula and m.unit and m.citation and m.name in m.axis_label
        assert m.describe()["name"] == m.name
    with pytest.raises(ValueError, match="unknown; allowed: memory"):
        get_cost_model("flops")


def test_memory_counts_weight_bits_only():
    m = get_cost_model("memory")
    assert m.cost(1e6, 1e9, 4, 16) == pytest.approx(4e6) == m.cost(1e6, 1e3, 4, 4)
    assert "activations not counted" in m.formula


def test_bops_is_forward_bit_operations():
    assert get_cost_model("bops").cost(1e6, 1e9, 4, 8) == pytest.approx(1e15 * 32)


def test_train_flops_rates_are_a_parameter():
    tf = get_cost_model("train_flops")
    assert tf.rate(np.array([1, 2, 3, 4, 5, 8, 16])).tolist() == [0.25] * 4 + [0.5, 0.5, 1.0]
    fast = get_cost_model("train_flops", rates=((2, 0.125), (4, 0.25), (8, 0.5), (16, 1)))
    assert fast.cost(1, 1, 2, 2) == pytest.approx(2 * 0.125 + 4)
    assert fast.describe()["params"]["rates"][0] == [2.0, 0.125]
    for bad, msg in [(((4, 0.25),), "width >= 16"), (((4, 2.0), (16, 1)), r"\(0, 1\]"),
                     (((4, 0.5), (8, 0.25), (16, 1)), "cannot cost more"), ("x", "pairs")]:
        with pytest.raises(ValueError, match=msg):
            validate_rates(bad)
    with pytest.raises(ValueError, match="width >= 16"):
        FitConfig(hw_rates=((4, 0.25),))


def test_a_cost_model_is_one_decorated_class():
    """The charge issue 9 removed, 6ND·w·a/256 (all three training matmuls at w×a bits), as a plug-in:
    on the QuEST paper's law it makes W3A3 compute-optimal."""

    @register_cost("test_all_matmuls_wa")
    @dataclass(frozen=True)
    class AllMatmuls(CostModel):
        title, unit, formula, citation = "old compute", "FLOPs", "6·N·D·w·a/256", "issue 9 (removed)"

        def factor(self, w_bits, a_bits):
            return 6.0 * np.asarray(w_bits, float) * np.asarray(a_bits, float) / 256.0

    try:
        assert "test_all_matmuls_wa" in cost_models()
        table = derived.optimal_precision(paper_result(tuple(W_EQ_A)), get_cost_model("test_all_matmuls_wa"), 1e21)
        assert table["label"][0] == "quest:w3a3"
        with pytest.raises(ValueError, match="registered twice"):
            register_cost("test_all_matmuls_wa")(type("Other", (CostModel,), {}))
    finally:
        COST_MODELS.pop("test_all_matmuls_wa")


@pytest.mark.parametrize("budget", BUDGETS["train_flops"])
def test_paper_law_under_train_flops_no_precision_below_4_bits_wins(budget):
    table = derived.optimal_precision(paper_result(), get_cost_model("train_flops"), budget)
    w, a = label_bits(table["label"][0])
    assert min(w, a) >= 4, table
    assert not table["search_bound_hit"].any()


@pytest.mark.parametrize("budget", BUDGETS["memory"])
def test_paper_law_under_memory_4_bits_is_best_among_w_eq_a(budget):
    """eff·16/P: W4A4 2.77 beats W3A3 2.31, W8A8 2.03, BF16 1, W2A2 1.21 (the paper's claim)."""
    res = paper_result(tuple(W_EQ_A))
    assert derived.optimal_precision_memory(res, budget)["label"][0] == "quest:w4a4"
    assert derived.efficiency_per_bit(res)["label"][0] == "quest:w4a4"


def test_paper_law_weight_only_3_bits_is_most_efficient_per_bit():
    """A fact of the published fit worth knowing: with 16-bit activations, 3-bit weights (0.653·16/3 = 3.48)
    edge out 4-bit weights (0.840·4 = 3.36) per bit."""
    table = derived.efficiency_per_bit(paper_result()).set_index("label")
    assert table.loc["quest:w3a16", "eff_per_bit"] > table.loc["quest:w4a16", "eff_per_bit"]


def test_paper_law_under_bops_low_bits_win_by_construction():
    """bops charges W3A3 9/256 of BF16: a theoretical lower bound on cost, not a hardware cost."""
    for budget in BUDGETS["bops"]:
        w, _ = label_bits(derived.optimal_precision(paper_result(tuple(W_EQ_A)), get_cost_model("bops"), budget)
                          ["label"][0])
        assert w < 4
