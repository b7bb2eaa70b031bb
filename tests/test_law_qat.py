"""The QAT law of Chen et al. 2025 (arXiv 2505.14302): L = A/N^α + B/D^β + E + k·D^γD·(log₂ G)^γG/N^γN per
precision family, its weight/activation decomposition, CSV and store input, evidence, report panels,
and the CPU granularity sweep."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from quest_lab.analysis import FitConfig, fit_frame, get_law, normalise
from quest_lab.analysis.data import design
from quest_lab.analysis.fit import FitResult

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
BASE = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}  # Chinchilla paper values
W4A4 = {"k[absmax:w4a4]": 0.2, "gammaN[absmax:w4a4]": 0.2, "gammaD[absmax:w4a4]": 0.1, "gammaG[absmax:w4a4]": 1.0}
COMPONENTS = {"k[absmax:w4a16]": 0.1, "gammaN[absmax:w4a16]": 0.25, "gammaD[absmax:w4a16]": 0.15,
              "k[absmax:w16a4]": 0.3, "gammaN[absmax:w16a4]": 0.2, "gammaD[absmax:w16a4]": 0.05}
SIZES = np.geomspace(1e6, 1e10, 4)


def forty_runs() -> pd.DataFrame:
    """16 BF16 runs (4 N × 4 D) + 24 W4A4 runs (3 N × 2 D × G ∈ {16, 32, 64, 256})."""
    rows = [dict(N=N, D=D, quantizer="bf16", w_bits=16, a_bits=16) for N in SIZES for D in np.geomspace(1e8, 1e12, 4)]
    rows += [dict(N=N, D=D, quantizer="absmax", w_bits=4, a_bits=4, group_size=G)
             for N in np.geomspace(1e6, 1e10, 3) for D in (1e8, 1e12) for G in (16, 32, 64, 256)]
    return normalise(pd.DataFrame(rows).assign(loss=1.0))


def with_loss(df: pd.DataFrame, truth: dict, noise: float, seed: int = 0) -> pd.DataFrame:
    d = design(df)
    law = get_law("qat", d.labels)
    clean = law.predict(law.from_public(truth), d)
    return df.assign(loss=clean * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(df))))


def test_recovers_parameters_within_3_percent_from_40_noisy_points():
    """0.05 % multiplicative noise: k·D^γD ties k to γD (log k moves by Δγ·log D ≈ 20·Δγ), so k is the
    hardest; at 1 % noise 40 points cannot pin the δ exponents of a 2–10 % loss gap to 3 %."""
    truth = {**BASE, **W4A4}
    df = with_loss(forty_runs(), truth, noise=5e-4)
    assert len(df) == 40
    result = fit_frame(df, FitConfig(law="qat", mode="joint", bootstrap=0))
    for name, true in truth.items():
        assert abs(result.params[name] - true) <= 0.03 * abs(true), f"{name}: got {result.params[name]:.4g}, true {true}"
    assert result.r2 > 0.999 and not result.warnings
    assert result.model.families == ("absmax:w4a4",) and result.model.has_gG["absmax:w4a4"]


def decomposition_runs(noise: float = 5e-4) -> pd.DataFrame:
    """BF16, W4A16 and W16A4 per row (G = 256), and W4A4 per row whose error is exactly δ_W + δ_A."""
    rows = [dict(N=N, D=D, quantizer=q, w_bits=w, a_bits=a, group_size=256 if q != "bf16" else None)
            for N in SIZES for D in np.geomspace(1e8, 1e12, 4)
            for q, w, a in (("bf16", 16, 16), ("absmax", 4, 16), ("absmax", 16, 4), ("absmax", 4, 4))]
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    law = get_law("qat", ("absmax:w16a4g256", "absmax:w4a16g256"))
    theta = law.from_public({**BASE, **COMPONENTS})
    N, D = df["N"].to_numpy(), df["D"].to_numpy()
    dw, da = law.delta(theta, "absmax:w4a16", N, D), law.delta(theta, "absmax:w16a4", N, D)
    loss = law.base_loss(theta, N, D) + np.select(
        [df["label"] == "absmax:w4a16g256", df["label"] == "absmax:w16a4g256", df["label"] == "absmax:w4a4g256"],
        [dw, da, dw + da], 0.0)
    return df.assign(loss=loss * np.exp(np.random.default_rng(1).normal(0.0, noise, len(df))))


def test_weight_activation_decomposition():
    result = fit_frame(decomposition_runs(), FitConfig(law="qat", bootstrap=40, workers=1))
    assert set(result.model.families) == {"absmax:w4a4", "absmax:w4a16", "absmax:w16a4"}
    assert not any(result.model.has_gG.values())  # one group setting each: no γG
    for name, true in COMPONENTS.items():  # each component has its own k, γN, γD
        assert result.params[name] == pytest.approx(true, rel=0.1), name
    dec = result.extras["decomposition"]["absmax:w4a4"]
    assert (dec["weight"], dec["activation"], dec["runs"]) == ("absmax:w4a16", "absmax:w16a4", 16)
    assert dec["sum_over_observed"] == pytest.approx(1.0, abs=0.03)  # δ_W + δ_A is the W4A4 error here
    assert dec["sum_over_fitted"] == pytest.approx(1.0, abs=0.05)
    lo, hi = dec["sum_over_observed_ci"]
    assert lo <= dec["sum_over_observed"] <= hi
    assert {"delta_w", "delta_a", "delta_sum", "delta_wa", "delta_obs"} <= set(dec["table"][0])
    checks = {c["name"]: c for c in result.evidence["checks"]}
    assert checks["qat_no_gammaG:absmax:w4a4"]["severity"] == "caveat"
    payload = json.loads(json.dumps(result.to_payload(), default=float))
    assert payload["precision_params"]["gammaD[absmax:w4a16]"] == pytest.approx(result.params["gammaD[absmax:w4a16]"])
    back = FitResult.from_payload(payload)
    assert back.params == pytest.approx(result.params) and back.extras["decomposition"] == payload["extras"]["decomposition"]


def test_fit_cli_on_a_csv_with_group_size_and_on_a_store(tmp_path):
    df = with_loss(forty_runs(), {**BASE, **W4A4}, noise=5e-4)
    csv = tmp_path / "qat.csv"
    df.drop(columns=["label", "G"]).to_csv(csv, index=False)  # per-row BF16 rows: group_size empty
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", "--law", "qat", "--csv", str(csv), "--bootstrap", "20", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "gammaG[absmax:w4a4]" in res.stdout and "mode staged" in res.stdout
    payload = json.loads(out.read_text())
    assert payload["law"] == "qat" and payload["n_runs"] == 40
    assert payload["precision_params"]["gammaG[absmax:w4a4]"] == pytest.approx(1.0, rel=0.05)
    assert "gammaN[absmax:w4a4]" in payload["ci"]
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert runner.invoke(app, ["import", str(csv), "--store", url]).exit_code == 0
    res = runner.invoke(app, ["fit", "--law", "qat", "--store", url, "--bootstrap", "0"])
    assert res.exit_code == 0 and "stored fit #1" in res.output, res.output
    from quest_lab.store import Store

    stored = FitResult.from_payload(Store(url).latest_fit("qat")["payload"])
    assert stored.params["gammaG[absmax:w4a4]"] == pytest.approx(payload["precision_params"]["gammaG[absmax:w4a4]"],
                                                                 rel=1e-3)


def test_per_row_runs_without_a_row_length_are_refused(tmp_path):
    df = with_loss(forty_runs(), {**BASE, **W4A4}, noise=5e-4)
    df.loc[df["group_size"] == 256, "group_size"] = np.nan  # per row, and no size to give K
    csv = tmp_path / "qat.csv"
    df.drop(columns=["label", "G"]).to_csv(csv, index=False)
    res = runner.invoke(app, ["fit", "--law", "qat", "--csv", str(csv), "--bootstrap", "0"])
    assert res.exit_code == 2 and "have no group size G >= 2" in res.output, res.output
    df["size"] = "tiny"  # a registered size: per row is G = its width (64)
    assert normalise(df.drop(columns=["label", "G"]))["G"].dropna().isin([16, 32, 64]).all()


def test_too_few_sizes_for_a_family_block_the_verdict():
    df = with_loss(forty_runs(), {**BASE, **W4A4}, noise=5e-4)
    df = df[(df["label"] == "bf16") | (df["N"] == df["N"].min())]  # W4A4 at one model size
    result = fit_frame(df.reset_index(drop=True), FitConfig(law="qat", bootstrap=0))
    assert result.evidence["verdict"] == "not identifiable"
    assert any("gammaN[absmax:w4a4] cannot be identified" in b for b in result.evidence["because"])


def test_report_panels():
    from quest_lab.analysis.plots_qat import qat_figures

    df = with_loss(forty_runs(), {**BASE, **W4A4}, noise=5e-4)
    result = fit_frame(df, FitConfig(law="qat", bootstrap=0))
    figs = qat_figures(result)
    assert [name for name, _, _ in figs] == ["qat_delta_N", "qat_delta_D", "qat_delta_G", "qat_observed_vs_fitted"]
    for _, fig, caption in figs:
        assert fig.axes and caption
    stored = FitResult.from_payload(json.loads(json.dumps(result.to_payload(), default=float)))
    assert len(qat_figures(stored, df)) == 4  # a stored fit draws from the runs
    with pytest.raises(ValueError, match="pass the runs frame"):
        qat_figures(stored)


def test_granularity_sweep_dry_run_lists_distinct_group_sizes_and_run_ids():
    res = runner.invoke(app, ["sweep", str(ROOT / "sweeps" / "granularity.yaml"), "--dry-run",
                              "--store", "sqlite:///:memory:"])
    assert res.exit_code == 0, res.output
    assert "63 total" in res.output
    from quest_lab.sweep.spec import load_spec
    from quest_lab.sweep.grid import expand

    spec = load_spec(ROOT / "sweeps" / "granularity.yaml")
    configs = expand(spec)
    ids = {c.run_id() for c in configs}
    assert len(configs) == len(ids) == 63
    w4a4 = [c for c in configs if (c.w_bits, c.a_bits) == (4, 4)]
    assert {c.group_size for c in w4a4} == {16, 32, 64, None}
    assert len({re.sub(r"g\d+$", "", c.precision_label) for c in configs}) == 4  # W4A4, W4A16, W16A4, BF16
