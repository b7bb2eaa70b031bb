"""`quest-lab report`: one section per law, training curves, Pareto plots per cost model, a sortable run
table and provenance in one self-contained page (figures inlined, no network); bad input exits 2."""
from __future__ import annotations

import re
import sqlite3
from html import unescape

from typer.testing import CliRunner

from cli import app
from report_store import SECRET
from synthetic import qat_frame, smoke_frame

runner = CliRunner()
COST_MODELS = ("memory", "bops", "train_flops")


def test_report_has_a_section_per_law_and_says_which_fit(two_law_report):
    out, stdout = two_law_report
    html = (out / "index.html").read_text()
    assert re.search(r"quest law: stored fit #\d+ \(.* UTC\), 36 runs fitted", stdout)
    assert re.search(r"chinchilla law: stored fit #\d+ \(.* UTC\), 9 runs fitted", stdout)
    assert "<title>quest-lab report: quest and chinchilla laws</title>" in html
    for law in ("quest", "chinchilla"):
        assert f'<section id="law-{law}" class="law">' in html and f"<h2>{law} law: " in html
        for block in ("fit", "loss_vs_n", "residuals", "answers"):
            assert f'id="{law}-{block}"' in html, (law, block)
    assert 'id="quest-efficiency_per_bit"' in html and 'id="chinchilla-efficiency_per_bit"' not in html
    # comparison table: one row per law with objective, R², leave-largest-out error and parameter count
    compare = html[html.index('id="compare"'):html.index('id="law-quest"')]
    for head in ("objective", "R²", "leave-largest-out error", "parameters", "runs fitted"):
        assert f"<th>{head}</th>" in compare
    assert "<td>8</td>" in compare and "<td>5</td>" in compare  # quest: A B E α β + 3 eff; chinchilla: 5
    assert "% mean" in compare  # the stored hold-out error
    # CIs exist: nothing claims otherwise; the title says how many resamples
    assert "no CIs" not in html and "no confidence intervals" not in html
    assert "bootstrap 20 resamples, 80% intervals" in html


def test_report_figures_are_inlined_and_true(two_law_report):
    out, _ = two_law_report
    html = (out / "index.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(["curves.png", *(f"pareto_{c}.png" for c in COST_MODELS), "quest-loss_vs_n.png",
                           "quest-efficiency_per_bit.png", "quest-residuals.png", "chinchilla-loss_vs_n.png",
                           "chinchilla-residuals.png"])
    assert html.count("src=\"data:image/png;base64,") == len(pngs) - 1  # the curves are inline SVG
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html), "the report must not load anything from the network"
    for name in COST_MODELS:
        assert f"cost model '{name}'" in unescape(html) and f"Cost model <code>{name}</code>" in html
    # the curve panel: one line per run with a curve (the diverged one included, and marked)
    svg = html[html.index('<section id="curves">'):html.index('<section id="pareto">')]
    assert svg.count('id="curve-') == 37
    assert "37 runs (1 diverged, marked × where they stopped)" in unescape(svg)
    assert "chinchilla law does not model are not drawn" in html  # its loss-vs-N panel says what it leaves out


def test_report_run_table_and_provenance(two_law_report):
    out, _ = two_law_report
    html = (out / "index.html").read_text()
    table = html[html.index('id="runs-table"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 1 + 37  # header + completed and diverged runs
    for head in ("run_id", "precision", "N", "D", "loss", "pred quest", "pred chinchilla", "status"):
        assert f"<th>{head}</th>" in table, head
    assert "<td>26,784</td>" in table and "<td>16,384</td>" in table  # N and D as integers, not 2.678e+04
    assert "<td>diverged</td>" in table and 'class="table-filter"' in html and "<script>" in html
    prov = html[html.index('<section id="provenance">'):]
    for item in ("quest law: fit id", "chinchilla law: fitted at", "report git commit", "report code version",
                 "quest law: code at fit time"):
        assert f"<td>{item}</td>" in prov, item
    assert SECRET not in html and "postgresql://lab:***@db.lab:5432/q" in prov


def test_report_law_option_is_repeatable_and_fits_what_is_not_stored(smoke_store, tmp_path):
    assert runner.invoke(app, ["fit", "--law", "quest", "--store", smoke_store, "--bootstrap", "0"]).exit_code == 0
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--store", smoke_store, "--out", str(out), "--law", "kumar", "--law", "quest",
                              "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "kumar law: no stored fit; fitting the kumar law on the fly (bootstrap 0)" in res.stdout
    assert re.search(r"quest law: stored fit #1 \(", res.stdout)
    html = (out / "index.html").read_text()
    assert html.index('id="law-kumar"') < html.index('id="law-quest"')  # in the order asked for
    assert 'id="kumar-saturation"' in html  # a law-specific section from the registry (sections_kumar.py)
    assert "no confidence intervals (fitted with --bootstrap 0)" in html
    assert "No training curves are stored for these runs" in html  # imported runs have none


def test_report_fits_on_the_fly_from_csv(tmp_path):
    csv = tmp_path / "runs.csv"
    smoke_frame().to_csv(csv, index=False)
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--csv", str(csv), "--out", str(out), "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    assert "fitting the quest law on the fly (bootstrap 20)" in res.stdout
    assert f"report: {out / 'index.html'}" in res.stdout.replace("\n", "")
    html = (out / "index.html").read_text()
    assert "fitted on the fly by `quest-lab report`" in unescape(html)
    assert "No training curves: the runs come from a CSV file" in html
    assert "<td>eff[quest:w4a4]</td>" in html and "Answers not identifiable</b>" in html
    assert "too small for the paper's conclusions" in unescape(html)


def test_report_bad_input_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and "no results database" in res.stderr
    assert not (tmp_path / "rep").exists()
    res = runner.invoke(app, ["report", "--law", "magic", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and "magic" in res.output


def test_report_on_store_with_diverged_and_failed_runs_and_no_cis(tmp_path):
    from quest_lab.store import Store

    db = tmp_path / "results.db"
    url = f"sqlite:///{db}"
    frame = smoke_frame()
    frame = frame[frame["N"] < 3e6]  # two sizes: the hold-out refit cannot be done
    Store(url).import_runs("smoke", "test", frame.to_dict("records"))
    with sqlite3.connect(db) as con:  # a diverged run (inf loss) and a failed one (no loss)
        con.execute("UPDATE runs SET status='diverged', final_eval_loss=1e308*10 WHERE run_id='run00'")
        con.execute("UPDATE runs SET status='failed', final_eval_loss=NULL WHERE run_id='run01'")
    res = runner.invoke(app, ["fit", "--store", url, "--bootstrap", "0", "--holdout-largest"])
    assert res.exit_code == 0, res.output
    assert "cannot refit without the largest N" in res.stdout
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--store", url, "--out", str(out)])
    assert res.exit_code == 0, res.output
    html = (out / "index.html").read_text()
    assert f"{len(frame) - 2} runs fitted" in html and f"{len(frame) - 2} completed runs from" in html
    assert "no confidence intervals (fitted with --bootstrap 0)" in html
    assert "no CIs: fitted with --bootstrap 0" not in html  # said in the figure (PNG), not as text
    assert "cannot refit without the largest N" in html


def test_log_axes_are_labelled_on_short_ranges():
    """The smoke sweep spans less than a decade in N and D: each axis still gets at least two labels
    (matplotlib's LogLocator and EngFormatter)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from quest_lab.analysis import normalise, plots

    runs = normalise(smoke_frame())
    fig = plots.residuals(runs, runs["loss"].to_numpy() * 1.01, "quest")
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        shown = [t.get_text() for t, v in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= v <= hi and t.get_text()]
        assert len(shown) >= 2, shown
        assert all("e+" not in s and "10^" not in s for s in shown), shown


def test_report_renders_a_fit_stored_before_answers_and_evidence(smoke_store, tmp_path):
    """Old stored fits (no answers, evidence, cost_models, code; staged mode implied) still render: the
    report computes the verdict and answers itself and says so."""
    from quest_lab.store import Store

    assert runner.invoke(app, ["fit", "--store", smoke_store, "--bootstrap", "0"]).exit_code == 0
    store = Store(smoke_store)
    payload = store.latest_fit("quest")["payload"]
    for key in ("answers", "evidence", "cost_models", "mode", "huber_delta", "code"):
        payload.pop(key)
    store.save_fit("quest", payload, sweep="smoke")
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--store", smoke_store, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert re.search(r"quest law: stored fit #2 ", res.stdout)
    html = (out / "index.html").read_text()
    assert "computed by the report from the runs shown" in html
    assert "grid / staged" in html and "staged fit: base on full-precision runs first" in html
    assert "not recorded (fit stored by an older quest-lab)" in html


def test_law_sections_registry():
    from quest_lab.analysis.report_sections import law_section, sections_for

    assert [s.name for s in sections_for("chinchilla")] == ["loss_vs_n", "efficiency", "residuals"]
    assert "saturation" in [s.name for s in sections_for("kumar")]
    assert [s.name for s in sections_for("qat")] == ["loss_vs_n", "efficiency", "qat_delta_N", "qat_delta_D",
                                                     "qat_delta_G", "qat_observed_vs_fitted", "qat_decomposition",
                                                     "residuals"]

    from quest_lab.analysis import report_sections

    before = list(report_sections.SECTIONS)
    try:
        @law_section("nolaw", order=1)
        def extra(view):  # a law's own section: shown first for that law only
            return None

        assert [s.name for s in sections_for("nolaw")][0] == "extra"
        assert "extra" not in [s.name for s in sections_for("quest")]
    finally:
        report_sections.SECTIONS[:] = before


def test_report_law_qat_shows_its_panels(tmp_path):
    """`report --law qat` on a stored qat fit: δ against N, D and G and observed vs fitted loss
    (analysis/plots_qat.py, drawn from the store's runs since a stored fit has no frame); no efficiency-per-bit
    panel (the qat law has no eff: its precision term is an additive error)."""
    from quest_lab.store import Store

    url = f"sqlite:///{tmp_path / 'results.db'}"
    Store(url).import_runs("qat", "test", qat_frame().to_dict("records"))
    res = runner.invoke(app, ["fit", "--law", "qat", "--store", url, "--bootstrap", "10"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--law", "qat", "--store", url, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert re.search(r"qat law: stored fit #1 \(.* UTC\), 40 runs fitted", res.stdout)
    html = unescape((out / "index.html").read_text())
    assert "<title>quest-lab report: qat law</title>" in html and '<section id="law-qat" class="law">' in html
    blocks = re.findall(r'id="qat-(\w+)"', html)
    assert blocks == ["fit", "loss_vs_n", "delta_N", "delta_D", "delta_G", "observed_vs_fitted", "residuals", "answers"]
    for x in ("N (non-embedding parameters)", "D (training tokens)", "G (group size; per row: the width)"):
        assert f"Quantization error δ against {x} per precision family" in html
    assert "Observed against fitted loss (qat law, 40 runs; mean |relative error|" in html
    assert {"qat-delta_N.png", "qat-delta_D.png", "qat-delta_G.png", "qat-observed_vs_fitted.png"} <= \
        {p.name for p in out.glob("*.png")}
    assert "efficiency_per_bit" not in html and "bootstrap 10 resamples, 80% intervals" in html


def test_qat_decomposition_section_lists_each_family():
    """The decomposition the qat fit stores in `extras` becomes one table row per W+A family."""
    import numpy as np
    import pandas as pd

    from quest_lab.analysis import FitConfig, fit_frame, normalise
    from quest_lab.analysis.report_sections import LawView
    from quest_lab.analysis.sections_qat import qat_decomposition

    runs = normalise(qat_frame())
    fit = fit_frame(runs, FitConfig(law="qat", bootstrap=0))
    view = LawView(fit=fit, runs=runs, seen=runs, pred=np.full(len(runs), np.nan))
    assert qat_decomposition(view) is None  # no weight-only / activation-only runs: nothing to decompose
    fit.extras = {"decomposition": {"absmax:w4a4": {
        "weight": "absmax:w4a16", "activation": "absmax:w16a4", "runs": 6, "sum_over_fitted": 0.98,
        "sum_over_observed": 1.021, "sum_over_fitted_ci": [0.9, 1.05], "sum_over_observed_ci": None}}}
    block = qat_decomposition(view)
    caption, table = block.tables[0]
    assert isinstance(table, pd.DataFrame) and table.to_dict("records") == [{
        "W+A family": "absmax:w4a4", "weight-only": "absmax:w4a16", "activation-only": "absmax:w16a4",
        "W+A runs compared": "6", "Σ(δ_W + δ_A) / Σ δ_WA fitted": "0.980 [0.900, 1.050]",
        "Σ(δ_W + δ_A) / Σ δ observed": "1.021"}]
