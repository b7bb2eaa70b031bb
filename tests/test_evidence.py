"""Evidence with every answer: identifiability checks, extrapolation flags, contradictions, verdicts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quest_lab.analysis import FitConfig, fit_frame, get_law, normalise
from quest_lab.analysis.answers import build_answers
from quest_lab.analysis.data import design
from quest_lab.analysis.evidence import assess, collinearity, distinct
from synthetic import smoke_frame

TRUTH = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28, "eff[quest:w4a4]": 0.7,
         "eff[quest:w8a8]": 0.95}


def grid_frame(seed: int = 0, noise: float = 0.003) -> pd.DataFrame:
    """5 sizes × 4 token budgets (a full grid: N and D separable) × BF16, W4A4, W8A8."""
    rows = [dict(N=N, D=D, quantizer=q, w_bits=w, a_bits=w) for N in np.geomspace(1e7, 1e9, 5)
            for D in np.geomspace(1e9, 1e11, 4) for q, w in (("bf16", 16), ("quest", 4), ("quest", 8))]
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    law = get_law("quest", design(df).labels)
    clean = law.predict(law.from_public(TRUTH), design(df))
    return df.assign(loss=clean * np.exp(np.random.default_rng(seed).normal(0, noise, len(df))))


@pytest.fixture(scope="module")
def grid_fit():
    return fit_frame(grid_frame(), FitConfig(law="quest", bootstrap=40, workers=1))


def test_distinct_and_collinearity():
    assert distinct([1e6, 1.001e6, 2e6, 2e6, 4e6]).tolist() == [1e6, 2e6, 4e6]
    N = np.array([1e7, 3e7, 1e8, 3e8])
    line = pd.DataFrame({"N": N, "D": 100 * N * np.array([1, 1.01, 0.99, 1.0])})
    assert collinearity(line) == (True, pytest.approx(100, rel=0.01), 0)
    M = np.geomspace(1e7, 1e9, 8)
    one_off = pd.DataFrame({"N": np.r_[M, M[:2]], "D": np.r_[100 * M, 20 * M[:2]]})
    assert collinearity(one_off)[0] and collinearity(one_off)[2] == 2  # two lever runs are not enough
    two = pd.DataFrame({"N": np.r_[N, N], "D": np.r_[25 * N, 100 * N]})
    assert not collinearity(two)[0]


def test_well_designed_fit_is_supported_with_bootstrap_shares(grid_fit):
    ev = grid_fit.evidence
    assert ev["verdict"] == "supported", ev
    assert ev["scale_note"] is None  # N up to 1e9: the paper's scale
    assert set(grid_fit.answers) == {"memory", "bops", "train_flops"}
    for name, block in grid_fit.answers.items():
        assert block["cost_model"]["name"] == name and block["cost_model"]["formula"]
        (ans,) = block["answers"]
        assert ans["budget_source"].startswith("default: geometric middle")
        assert not ans["extrapolated"] and ans["contradicted_by"] is None
        boot = ans["bootstrap"]
        assert boot["draws"] == 40 and sum(boot["share"].values()) == pytest.approx(1.0)
        assert boot["loss_ci"][0] <= ans["loss"] <= boot["loss_ci"][1]
    # memory: eff·16/P is 0.7·4 = 2.8 for W4A4, 0.95·2 = 1.9 for W8A8
    assert grid_fit.answers["memory"]["answers"][0]["best"] == "quest:w4a4"


def test_budget_outside_the_runs_is_an_extrapolation(grid_fit):
    answers = build_answers(grid_fit, grid_fit.frame, grid_fit.cost_models(), (("train_flops", 1e24),))
    given = [a for a in answers["train_flops"]["answers"] if a["budget_source"] == "given"][0]
    assert given["extrapolated"]
    assert any("above the costliest run" in r for r in given["reasons"])
    assert any("N* = " in r and "above the largest model trained" in r for r in given["reasons"])
    ev = assess(grid_fit, grid_fit.frame, answers)
    assert ev["verdict"] == "extrapolated" and any("train_flops at 1e+24" in r for r in ev["because"])


def test_answer_contradicted_by_a_run_is_not_identifiable(grid_fit):
    """A law that predicts every run 5 % too high: a run within the budget beats its optimum."""
    from dataclasses import replace

    wrong = replace(grid_fit, theta=grid_fit.theta.copy())
    wrong.theta[2] = np.log(grid_fit.params["E"] + 0.3)  # E + 0.3 nats
    answers = build_answers(wrong, grid_fit.frame, grid_fit.cost_models())
    assert answers["train_flops"]["answers"][0]["contradicted_by"]
    ev = assess(wrong, grid_fit.frame, answers)
    assert ev["verdict"] == "not identifiable"
    assert any("the law does not describe the runs there" in r for r in ev["because"])


def test_smoke_runs_are_not_identifiable_and_too_small():
    res = fit_frame(smoke_frame(), FitConfig(law="quest", bootstrap=0))
    ev = res.evidence
    assert ev["verdict"] == "not identifiable"
    assert any("only 2 distinct token budgets" in r for r in ev["because"])
    assert "too small for the paper's conclusions" in ev["scale_note"]
    assert ev["observed"]["distinct_D"] == 2


def test_single_line_ladder_is_not_identifiable():
    N = np.geomspace(1e7, 1e9, 5)
    rows = [dict(N=n, D=100 * n, quantizer=q, w_bits=w, a_bits=w) for n in N for q, w in (("bf16", 16), ("quest", 4))]
    rows += [dict(N=n, D=20 * n, quantizer="bf16", w_bits=16, a_bits=16) for n in N[:1]]  # passes validation
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    law = get_law("quest", design(df).labels)
    df = df.assign(loss=law.predict(law.from_public({k: v for k, v in TRUTH.items() if "w8" not in k}), design(df)))
    ev = fit_frame(df, FitConfig(law="quest", bootstrap=0)).evidence
    assert ev["verdict"] == "not identifiable"
    assert any(r.startswith("all but 1 of the 11 runs lie on one tokens-per-parameter line") for r in ev["because"])


def test_quest_cis_touching_a_bound_warn():
    """W8A8 better than BF16: eff hits its upper bound 1.05 in most refits; the CI warns (issue 9:
    only kumar used to)."""
    df = smoke_frame()
    w8 = df[df["w_bits"] == 16].assign(w_bits=8, a_bits=8, loss=lambda x: x["loss"] * 0.97,
                                       run_id=lambda x: x["run_id"] + "w8")
    res = fit_frame(pd.concat([df, w8], ignore_index=True), FitConfig(law="quest", bootstrap=40, workers=1))
    assert any(w.startswith("eff[quest:w8a8]: 80% CI") and "touches its upper bound 1.05" in w for w in res.warnings)
    assert any(c["name"] == "ci_at_bound" for c in res.evidence["checks"])
