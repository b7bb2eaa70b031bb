"""`quest_lab.analysis.questions` / `suggest` / `candidates` on synthetic data from a known QuEST law."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from quest_lab.analysis import FitConfig, derived, fit_frame, get_law, normalise
from quest_lab.analysis.candidates import check_document, parse_budget, sweep_document, write_text
from quest_lab.analysis.data import design
from quest_lab.analysis.questions import QUESTIONS, parse_question
from quest_lab.analysis.suggest import EnsembleScreen, SuggestConfig, Suggestion, suggest, width
from quest_lab.analysis.suggest_refit import refit_replicates
from quest_lab.run import RunConfig

TRUTH = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28,
         "eff[quest:w2a2]": 0.45, "eff[quest:w4a4]": 0.85}
PRECISIONS = [("bf16", 16, 16), ("quest", 2, 2), ("quest", 4, 4)]
FIT = FitConfig(law="quest", method="varpro", bootstrap=0)  # mode: the law's default (joint), as `fit`


def grid(sizes=(3e7, 5e7, 1e8, 2e8, 4e8), tpps=(20, 50, 100, 200), seed=0, noise=0.005) -> pd.DataFrame:
    rows = [dict(key=f"{N:.0e}/{q}{w}/{t}", N=N, D=t * N, quantizer=q, w_bits=w, a_bits=a, cost=6 * N * t * N)
            for N in sizes for t in tpps for q, w, a in PRECISIONS]
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    d = design(df)
    law = get_law("quest", d.labels)
    clean = law.predict(law.from_public(TRUTH), d)
    return df.assign(loss=clean * np.exp(np.random.default_rng(seed).normal(0, noise, len(df))))


@pytest.fixture(scope="module")
def split():
    g = grid()
    init = g["N"].isin([3e7, 5e7, 1e8]) & (g["D"] / g["N"]).isin([20, 50, 100])
    return g[init].reset_index(drop=True), g[~init].drop(columns=["loss"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(split):
    result = fit_frame(split[0], FIT)
    return result, result.model


# -- questions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("nope", "question 'nope' is unknown; allowed: best-precision, eff, extrapolate"),
    ("eff", "eff needs label="),
    ("eff:lable=quest:w4a4", "'lable=quest:w4a4' is not key=value with a key in label"),
    ("best-precision", "exactly one of memory=<bits> or compute=<FLOPs>"),
    ("best-precision:memory=1e9,compute=1e18", "exactly one of memory"),
    ("best-precision:memory=lots", "memory='lots' is not a number"),
    ("best-precision:memory=-5", "must be a positive number"),
    ("best-precision:memory=1e9,cost=bops", "cost= applies to a compute budget only"),
    ("best-precision:compute=1e18,cost=memory", "cost='memory' is not a compute cost model; allowed: bops, train_flops"),
    ("extrapolate:N=1e9", "exactly one of D=<tokens> or tokens=<tokens>"),
    ("extrapolate:size=huge,D=1e9", "size='huge' is unknown"),
])
def test_bad_questions_are_one_line_value_errors(text, message):
    with pytest.raises(ValueError) as err:
        parse_question(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_question_spec_round_trips():
    for text in ("best-precision:memory=8e+06", "eff:label=quest:w4a4", "extrapolate:N=1e+09,D=2e+10,label=bf16",
                 "best-precision:compute=1e+18", "best-precision:compute=1e+18,cost=bops"):
        q = parse_question(text)
        assert parse_question(q.spec()) == q
    assert set(QUESTIONS) == {"best-precision", "eff", "extrapolate"}


def test_targets_agree_with_the_fit_and_derived(fitted):
    result, law = fitted
    theta = result.theta[None, :]
    eff = parse_question("eff:label=quest:w4a4").bind(law, result.theta)
    assert eff.values(theta)[0] == pytest.approx(result.params["eff[quest:w4a4]"])
    ext = parse_question("extrapolate:N=1.6e9,D=1.6e11,label=quest:w4a4").bind(law, result.theta)
    assert ext.values(theta)[0] == pytest.approx(float(result.predict(1.6e9, 1.6e11, "quest:w4a4", 4, 4)), rel=1e-12)
    mem = parse_question("best-precision:memory=1.3e10").bind(law, result.theta)
    table = derived.optimal_precision_memory(result, 1.3e10)
    assert mem.answers(theta)[0] == table["label"][0]
    assert mem.values(theta)[0] == pytest.approx(table["loss"][1] - table["loss"][0], rel=1e-9)
    comp = parse_question("best-precision:compute=1e20").bind(law, result.theta)
    table = derived.optimal_precision_compute(result, 1e20)
    assert comp.answers(theta)[0] == table["label"][0]
    assert comp.values(theta)[0] == pytest.approx(table["loss"][1] - table["loss"][0], rel=1e-9)
    from quest_lab.analysis.cost import get_cost_model

    bops = parse_question("best-precision:compute=1e22,cost=bops").bind(law, result.theta)
    table = derived.optimal_precision(result, get_cost_model("bops"), 1e22)
    assert bops.answers(theta)[0] == table["label"][0] and "bops" in bops.description


def test_binding_checks_the_fitted_precisions(fitted):
    result, law = fitted
    with pytest.raises(ValueError, match="precision 'quest:w3a3' has no fitted runs; fitted precisions: bf16"):
        parse_question("eff:label=quest:w3a3").bind(law, result.theta)
    with pytest.raises(ValueError, match="1 by definition"):
        parse_question("eff:label=bf16").bind(law, result.theta)


# -- the pieces of the design ---------------------------------------------------------------------
def test_ensemble_screen_is_the_gaussian_conditional_variance():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 2))
    t = z[:, 0] + 0.5 * z[:, 1]
    preds = np.column_stack([z[:, 0], z[:, 1], rng.normal(size=20000)])
    s = EnsembleScreen(t, preds, noise=0.5)
    # Var(t) = 1.25; observing z0 + noise(0.25): 1.25 − 1/(1 + 0.25) = 0.45
    assert s.var == pytest.approx(1.25, rel=0.03)
    assert s.var_after(np.array([0, 2])) == pytest.approx([0.45, 1.25], rel=0.05, abs=0.02)
    s.condition(0)
    assert s.var == pytest.approx(0.45, rel=0.05)
    assert s.var_after(np.array([1]))[0] < s.var


def test_width_of_grouped_values_is_the_pooled_within_group_spread():
    v = np.concatenate([np.linspace(0, 1, 101), 10 + np.linspace(0, 1, 101)])
    assert width(v, 0.8, np.repeat([0, 1], 101)) == pytest.approx(0.8, abs=0.02)
    assert width(v, 0.8) > 9


def test_refit_from_the_optimum_stays_there(fitted):
    result, law = fitted
    d = design(result.frame, labels=result.labels)
    theta = refit_replicates(law, d, np.ones((2, d.n)), np.tile(d.y, (2, 1)), np.tile(result.theta, (2, 1)),
                             FIT.mode, FIT.huber_delta, seed=0)
    assert np.allclose(theta, result.theta, atol=1e-4)


@pytest.mark.parametrize("text, amount, cost", [("1e18", 1e18, "train_flops"), ("2.5e17 FLOPs", 2.5e17, "train_flops"),
                                                ("1e18 train_flops", 1e18, "train_flops"), ("1e20bops", 1e20, "bops"),
                                                ("3gpu-h", 3.0, "gpu-h"), (" 0.5 gpu-hours ", 0.5, "gpu-h")])
def test_parse_budget(text, amount, cost):
    b = parse_budget(text)
    assert (b.amount, b.cost) == (amount, cost)


def test_run_costs_come_from_the_cost_registry():
    """FLOP budgets are the registry's train_flops (2ND at the hardware rate of max(w, a) + 4ND), bops N·D·w·a."""
    from quest_lab.analysis.cost import get_cost_model

    common = dict(corpus="shakespeare", tokenizer="bpe", vocab_size=512, seq_len=64, batch_size=8, device="cpu")
    configs = [RunConfig(size="small", w_bits=4.0, a_bits=4.0, quantizer="quest", tokens=786432, **common),
               RunConfig(size="tiny", w_bits=16.0, a_bits=16.0, tokens=131072, **common)]
    flops = get_cost_model("train_flops")
    for text, model in (("1e18", flops), ("1e20bops", get_cost_model("bops"))):
        got = parse_budget(text).costs(configs, pd.DataFrame())
        want = [float(model.cost(c.n_params, c.token_budget, c.w_bits, c.a_bits)) for c in configs]
        assert got == pytest.approx(want, rel=1e-12)
    quarter = parse_budget("1e18").costs(configs[:1], pd.DataFrame())[0]
    n, d = configs[0].n_params, configs[0].token_budget
    assert quarter == pytest.approx((2 * 0.25 + 4) * n * d)


@pytest.mark.parametrize("text", ["", "lots", "1e18 joules", "-1", "0", "1e18flopsx"])
def test_bad_budgets(text):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


def test_sweep_document_expands_to_the_chosen_runs(tmp_path):
    from quest_lab.sweep.grid import default_data_identity

    common = dict(corpus="shakespeare", tokenizer="bpe", vocab_size=512, seq_len=64, batch_size=8, device="cpu")
    # floats as the sweep loader gives them (RunConfig.run_id hashes 4 and 4.0 differently)
    configs = [RunConfig(size="small", w_bits=4.0, a_bits=4.0, quantizer="quest", tokens=786432, **common),
               RunConfig(size="tiny", w_bits=16.0, a_bits=16.0, tokens=131072, **common),
               RunConfig(size="base", w_bits=2.0, a_bits=2.0, quantizer="quest", tokens=393216, eval_tokens=4096, **common)]
    ident = default_data_identity()("shakespeare", "bpe", 512)
    ids = [c.run_id(ident) for c in configs]
    doc = sweep_document("next", configs, "sqlite:///results.db")
    assert {k: doc["base"][k] for k in common} == common and "grid" not in doc
    assert doc["base"]["eval_tokens"] == 65536 and doc["base"]["size"] == "small"  # the first run, complete
    assert doc["include"][1] == {"size": "tiny", "bits": [16, 16], "tokens": 131072}
    assert doc["include"][2]["eval_tokens"] == 4096
    check_document(doc, ids, "next.yaml")
    reread = yaml.safe_load(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    check_document(reread, ids, "next.yaml")
    with pytest.raises(RuntimeError, match="quest-lab bug"):
        check_document(doc, ids[::-1], "next.yaml")


def test_write_text_is_atomic_and_refuses_to_overwrite(tmp_path):
    from quest_lab.outputs import OutputError

    path = tmp_path / "next.yaml"
    write_text(path, "a: 1\n")
    with pytest.raises(OutputError, match="pass --force"):
        write_text(path, "a: 2\n")
    assert path.read_text() == "a: 1\n"
    write_text(path, "a: 2\n", force=True)
    assert path.read_text() == "a: 2\n" and sorted(p.name for p in path.parent.iterdir()) == ["next.yaml"]
    store = tmp_path / "results.db"
    store.write_text("")
    with pytest.raises(OutputError, match="results store's own file"):
        write_text(store, "a: 1\n", force=True, protected=[store])
    with pytest.raises(OutputError, match="does not exist"):
        write_text(tmp_path / "sub" / "next.yaml", "a: 1\n")


# -- the design --------------------------------------------------------------------------------------------
def small_config(**kw) -> SuggestConfig:
    return SuggestConfig(fit=FIT, **{**dict(n=3, bootstrap=60, truths=3, samples=2, refine=2, workers=1,
                                            max_seconds=600), **kw})


@pytest.fixture(scope="module")
def suggested(split):
    runs, cands = split
    return suggest(runs, cands, parse_question("eff:label=quest:w4a4"), small_config(budget=float(cands["cost"].median()) * 4))


def test_suggestion_respects_budget_and_count(split, suggested):
    runs, cands = split
    s = suggested
    assert 1 <= len(s.chosen) <= 3 and len(set(s.chosen)) == len(s.chosen)
    assert s.total_cost == pytest.approx(cands["cost"].iloc[s.chosen].sum()) and s.total_cost <= s.budget
    assert list(s.table.columns) == ["step", "candidate", "size", "N", "D", "label", "cost", "ci_width_before",
                                     "ci_width_after", "why"]
    assert list(s.table["candidate"]) == list(cands["key"].iloc[s.chosen])
    assert s.width_after < s.width_before and s.width_after == s.table["ci_width_after"].iloc[-1]
    assert s.n_runs == len(runs) and s.refits >= 1 + len(s.chosen)
    assert all("of the CI width" in why and "narrowest simulated batch" in why for why in s.table["why"])


def test_suggestion_is_reproducible_and_serialisable(split, suggested):
    runs, cands = split
    again = suggest(runs, cands, parse_question("eff:label=quest:w4a4"),
                    small_config(budget=float(cands["cost"].median()) * 4))
    assert again.chosen == suggested.chosen
    back = Suggestion.from_payload(suggested.to_payload())
    assert back.chosen == suggested.chosen and back.table.equals(suggested.table)
    assert back.check_ratio == pytest.approx(suggested.check_ratio)
    nulls = Suggestion.from_payload({**suggested.to_payload(), "check_before": None, "check_after": None})
    assert math.isnan(nulls.check_ratio)  # strict JSON's null for "not re-checked"


def test_the_chosen_batch_is_rechecked_on_an_independent_ensemble(suggested):
    """The re-check draws its own bootstrap ensemble: finite, narrowing, and not the selection's own
    (optimistic) estimate."""
    s = suggested
    assert np.isfinite(s.check_before) and np.isfinite(s.check_after) and 0 < s.check_ratio < 1
    assert (s.check_before, s.check_after) != (s.width_before, s.width_after)


def test_unfitted_precisions_are_skipped_with_a_note(split):
    runs, cands = split
    extra = cands.iloc[:2].assign(label="quest:w3a3", w_bits=3.0, a_bits=3.0, quantizer="quest")
    s = suggest(runs, pd.concat([cands, extra], ignore_index=True), parse_question("eff:label=quest:w4a4"),
                small_config(n=1, refine=2))
    assert s.n_candidates == len(cands) and any("quest:w3a3" in n for n in s.notes)
    assert all(i < len(cands) for i in s.chosen)


def test_time_cap_keeps_the_best_portfolio_batch(split):
    runs, cands = split
    config = small_config(n=2, max_seconds=1e-3, samples=2)
    s = suggest(runs, cands, parse_question("extrapolate:N=1.6e9,D=1.6e11,label=quest:w4a4"), config)
    assert len(s.chosen) == 2 and s.refits <= 1 + 3 + config.samples  # now + the portfolio (greedy, largest, c-optimal, draws), no swaps
    assert math.isnan(s.check_ratio) and any("not re-simulated on a fresh ensemble" in n for n in s.notes)
    assert any("time cap" in n and "swaps stopped after 0" in n for n in s.notes)
    assert all("narrowest simulated batch" in w for w in s.table["why"])
    assert np.isfinite(s.width_after) and s.width_after == s.table["ci_width_after"].iloc[-1]


def test_config_and_candidate_checks(split):
    runs, cands = split
    for kw, msg in [({"n": 0}, "n=0"), ({"budget": -1.0}, "budget=-1.0"), ({"bootstrap": 5}, "bootstrap=5"),
                    ({"ci": 1.5}, "ci=1.5"), ({"truths": 50}, "truths=50"), ({"noise": 0.0}, "noise=0.0"),
                    ({"samples": -1}, "samples=-1")]:
        with pytest.raises(ValueError, match=msg.replace(".", r"\.")):
            SuggestConfig(**kw)
    with pytest.raises(ValueError, match="lack column"):
        suggest(runs, cands.drop(columns=["cost"]), parse_question("eff:label=quest:w4a4"), small_config())
    with pytest.raises(ValueError, match="no candidate runs"):
        suggest(runs, cands.iloc[:0], parse_question("eff:label=quest:w4a4"), small_config())
    assert math.isinf(SuggestConfig().budget)


def test_report_panel_from_a_suggestion_or_its_payload(suggested):
    from quest_lab.analysis.suggest_panel import FIGURE, what_to_run_next

    for source in (suggested, suggested.to_payload()):
        text, pngs = what_to_run_next(source)
        assert text.startswith("<h2 id='next'>What to run next</h2>") and "data:image/png;base64," in text
        assert list(pngs) == [FIGURE] and pngs[FIGURE][:4] == b"\x89PNG"
        assert all(key in text for key in suggested.table["candidate"])
