"""`quest-lab fit`: CSV and store input, JSON output, stored fits, and bad input → exit 2, nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from synthetic import SMOKE_TRUTH, smoke_frame

runner = CliRunner()
CHINCHILLA = Path(__file__).resolve().parent / "data" / "chinchilla_epoch_svg_extracted.csv"


def test_fit_csv_prints_table_and_writes_json(smoke_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", "--law", "quest", "--csv", str(smoke_csv), "--bootstrap", "40", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "eff[quest:w4a4]" in res.stdout and "80% CI" in res.stdout
    payload = json.loads(out.read_text())
    assert payload["law"] == "quest" and payload["n_runs"] == 24
    assert {"A", "B", "E", "alpha", "beta"} <= set(payload["params"])
    assert set(payload["eff"]) == {"quest:w2a2", "quest:w3a3", "quest:w4a4"}
    assert payload["eff"]["quest:w2a2"] < payload["eff"]["quest:w3a3"] < payload["eff"]["quest:w4a4"] <= 1.05
    for label, eff in payload["eff"].items():
        assert abs(eff - SMOKE_TRUTH[f"eff[{label}]"]) < 0.1
        lo, hi = payload["ci"][f"eff[{label}]"]
        assert lo <= eff <= hi
    assert payload["objective"] > 0


def test_fit_json_has_answers_per_cost_model_and_evidence(smoke_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", "--csv", str(smoke_csv), "--bootstrap", "20", "--json", str(out),
                              "--compute-budget", "2e12", "--budget", "train_flops=1e12", "--memory-budget", "8e6"])
    assert res.exit_code == 0, res.output
    p = json.loads(out.read_text())
    assert p["mode"] == "joint"
    assert set(p["answers"]) == {"memory", "bops", "train_flops"}
    assert p["cost_models"]["train_flops"]["params"]["rates"] == [[4.0, 0.25], [8.0, 0.5], [16.0, 1.0]]
    budgets = {name: [(a["budget"], a["budget_source"]) for a in block["answers"]] for name, block in p["answers"].items()}
    assert budgets["train_flops"] == [(2e12, "given"), (1e12, "given")]
    assert budgets["memory"] == [(8e6, "given")]
    assert len(budgets["bops"]) == 1 and budgets["bops"][0][1].startswith("default: geometric middle")
    for block in p["answers"].values():
        assert block["cost_model"]["formula"] and block["cost_model"]["citation"]
        for ans in block["answers"]:
            assert ans["best"] in {"bf16", "quest:w2a2", "quest:w3a3", "quest:w4a4"}
            assert ans["bootstrap"]["draws"] == 20 and ans["best"] in ans["bootstrap"]["share"]
            assert isinstance(ans["extrapolated"], bool) and isinstance(ans["reasons"], list)
            assert ans["extrapolated"] == bool(ans["reasons"])
    assert p["evidence"]["verdict"] == "not identifiable"
    assert "verdict: answers not identifiable" in res.stdout and "train_flops budget 1e+12" in res.stdout


def test_fit_store_saves_fit_that_latest_fit_returns(smoke_store, tmp_path):
    from quest_lab.store import Store

    res = runner.invoke(app, ["fit", "--store", smoke_store, "--bootstrap", "0", "--where", "w_bits >= 3"])
    assert res.exit_code == 0, res.output
    assert "stored fit #" in res.stdout
    stored = Store(smoke_store).latest_fit("quest")
    assert set(stored["payload"]["eff"]) == {"quest:w3a3", "quest:w4a4"}
    assert stored["payload"]["where"] == "w_bits >= 3"


def test_fit_chinchilla_csv_autodetects_epoch_columns(tmp_path):
    out = tmp_path / "c.json"
    res = runner.invoke(app, ["fit", "--law", "chinchilla", "--csv", str(CHINCHILLA), "--drop-highest", "5",
                              "--method", "varpro", "--bootstrap", "0", "--json", str(out)])
    assert res.exit_code == 0, res.output
    p = json.loads(out.read_text())
    assert p["n_runs"] == 240 and p["params"]["E"] == pytest.approx(1.8172, rel=0.01)


def test_parameter_at_bound_warns_but_fits(tmp_path):
    df = smoke_frame()
    w8 = df[df["w_bits"] == 16].assign(w_bits=8, a_bits=8, loss=lambda x: x["loss"] * 0.97,
                                       run_id=lambda x: x["run_id"] + "w8")
    path = tmp_path / "odd.csv"
    pd.concat([df, w8]).to_csv(path, index=False)
    res = runner.invoke(app, ["fit", "--csv", str(path), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "eff[quest:w8a8] = 1.05 is at its upper bound" in res.stderr


@pytest.mark.parametrize("args, edit, message", [
    (["--where", "w_bits >="], None, "is not a valid filter"),
    (["--where", "nosuchcol > 1"], None, "is not a valid filter"),
    (["--where", "loss.to_csv('leak.csv') == 0"], None, "attribute access is not allowed"),  # pandas would write the file
    (["--where", "@pd"], None, "is not a valid filter"),
    (["--where", "N"], None, "must be a true/false condition per run"),
    (["--where", "nosuchcol > 1"], None, "unknown column 'nosuchcol'"),
    ([], lambda df: df.assign(w_bits=df["w_bits"].where(df.index != 2, 0)), "non-positive w_bits/a_bits (rows [2])"),
    ([], lambda df: df.assign(a_bits=df["a_bits"].astype(object).where(df.index != 1, "x")), "non-numeric"),
    (["--where", "N == 200000"], None, "needs 16-bit runs at >= 2 model sizes and >= 2 token budgets; found sizes"),
    (["--where", "D == 65536"], None, "found sizes"),
    (["--where", "w_bits < 16"], None, "needs 16-bit runs"),
    (["--where", "N < 0"], None, "no completed runs to fit"),
    ([], lambda df: df.assign(loss=df["loss"].where(df.index != 3, np.nan)), "NaN, infinite or non-positive loss"),
    ([], lambda df: df.assign(loss=df["loss"].where(df.index != 5, -1.0)), "NaN, infinite or non-positive loss"),
    ([], lambda df: df.drop(columns=["D"]), "lacks column(s) ['D']"),
    ([], lambda df: df[(df["w_bits"] == 16) & (df["N"] < 3e6)], "has 5 parameters and needs more than 5 runs; found 4"),
    (["--ci", "1.5"], None, "ci=1.5 must be in (0, 1)"),
    (["--budget", "flops=1e18"], None, "budget for cost model 'flops': unknown; allowed: memory, bops, train_flops"),
    (["--budget", "train_flops"], None, "--budget 'train_flops' must be COST=VALUE"),
    (["--budget", "train_flops=lots"], None, "must be COST=VALUE"),
    (["--compute-budget", "-1"], None, "budget train_flops=-1.0 must be a positive finite number"),
    (["--memory-budget", "nan"], None, "budget memory=nan must be a positive finite number"),
    (["--hw-rates", "4=2,16=1"], None, "relative costs in (0, 1]"),
    (["--hw-rates", "4:0.25"], None, "must be BITS=RELATIVE_COST pairs"),
    (["--hw-rates", "4=0.25,8=0.5"], None, "must include a width >= 16 bits"),
    (["--law", "quartet", "--method", "varpro"], None, "varpro"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, edit, message):
    df = smoke_frame()
    if edit is not None:
        df = edit(df)
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", "--csv", str(path), "--bootstrap", "0", "--json", str(out), *args])
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "leak.csv").exists() and not Path("leak.csv").exists()


def test_missing_inputs_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["fit"])
    assert res.exit_code == 2 and "no results database at results.db" in res.stderr
    res = runner.invoke(app, ["fit", "--csv", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and "does not exist" in res.stderr
    res = runner.invoke(app, ["fit", "--law", "nolaw", "--csv", "x.csv"])
    assert res.exit_code == 2
    assert not (tmp_path / "results.db").exists()
