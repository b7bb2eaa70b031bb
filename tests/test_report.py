"""`quest-lab report`: self-contained HTML (images inlined, no network) + PNGs; renders in Chromium."""
from __future__ import annotations

import re
import shutil
from html import escape
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from synthetic import smoke_frame

runner = CliRunner()
PNGS = ["loss_vs_n.png", "pareto_memory.png", "pareto_bops.png", "pareto_train_flops.png", "efficiency_per_bit.png",
        "residuals.png"]
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


def _check_report(out: Path) -> str:
    html = (out / "index.html").read_text()
    for png in PNGS:
        assert (out / png).stat().st_size > 5000, png
    assert html.count("src='data:image/png;base64,") == len(PNGS)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html), "report must not load anything from the network"
    for section in ("id='fit'", "id='loss_vs_n'", "id='pareto_memory'", "id='pareto_bops'", "id='pareto_train_flops'",
                    "id='efficiency_per_bit'", "id='residuals'", "id='runs'", "id='provenance'", 'id="verdict"'):
        assert section.replace("'", '"') in html or section in html, section
    assert "<td>eff[quest:w4a4]</td>" in html and "code version" in html
    # the verdict box comes first, and every cost axis and answer names its cost model
    assert html.index("class='verdict") < html.index("id=\"fit\"")
    for name in ("memory", "bops", "train_flops"):
        assert escape(f"cost model '{name}'") in html and f"Cost model <code>{name}</code>" in html
    # the smoke runs: two token budgets, tiny models
    assert "Answers not identifiable</b>" in html and "only 2 distinct token budgets" in html
    assert "too small for the paper&#x27;s conclusions" in html
    return html


def test_report_fits_on_the_fly_from_csv(tmp_path):
    csv = tmp_path / "runs.csv"
    smoke_frame().to_csv(csv, index=False)
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--csv", str(csv), "--out", str(out), "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    assert "fitting the quest law on the fly" in res.stdout
    assert f"report: {out / 'index.html'}" in res.stdout.replace("\n", "")
    html = _check_report(out)
    assert "fitted on the fly" in html


def test_report_uses_the_stored_fit(smoke_store, tmp_path):
    assert runner.invoke(app, ["fit", "--store", smoke_store, "--bootstrap", "20"]).exit_code == 0
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--store", smoke_store, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "on the fly" not in res.stdout
    html = _check_report(out)
    assert "stored fit" in html and "smoke" in html


def test_report_bad_input_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and "no results database" in res.stderr
    assert not (tmp_path / "rep").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    csv = tmp_path / "runs.csv"
    smoke_frame().to_csv(csv, index=False)
    out = tmp_path / "rep"
    assert runner.invoke(app, ["report", "--csv", str(csv), "--out", str(out), "--bootstrap", "0"]).exit_code == 0
    url = (out / "index.html").resolve().as_uri()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<img") == len(PNGS)
    assert "<table>" in dom.stdout and "eff[quest:w4a4]" in dom.stdout
    assert "CONSOLE" not in dom.stderr, "the page logged JavaScript console errors"
    shot = tmp_path / "shot.png"
    res = subprocess.run([*flags, "--window-size=1200,2400", f"--screenshot={shot}", url], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    non_white = (pixels[..., :3].mean(axis=-1) < 0.95).mean()
    assert non_white > 0.01, "screenshot is (almost) blank: the page did not render"
    # The plots themselves: every inlined data URI decodes to a non-blank PNG of plot size.
    import base64
    import io
    import re

    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', dom.stdout)
    assert len(uris) == len(PNGS)
    for uri in uris:
        img = mpimg.imread(io.BytesIO(base64.b64decode(uri)), format="png")
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert (img[..., :3].mean(axis=-1) < 0.95).mean() > 0.01, "an inlined plot is blank"
    if shutil.which("file"):
        assert "PNG image" in subprocess.run(["file", str(shot)], capture_output=True, text=True).stdout


def test_report_on_store_with_diverged_and_failed_runs_and_no_cis(tmp_path):
    import sqlite3

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
    assert f"{len(frame) - 2} runs fitted, {len(frame) - 2} runs shown" in html  # only completed runs
    assert "no confidence intervals (fitted with --bootstrap 0)" in html
    assert "cannot refit without the largest N" in html
    for png in PNGS:
        assert (out / png).stat().st_size > 5000, png


def test_log_axes_are_labelled_on_short_ranges():
    """The smoke sweep spans less than a decade in N and D: matplotlib's default labelled at most
    one tick there (the residuals' D axis had none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from quest_lab.analysis import normalise, plots

    runs = normalise(smoke_frame())
    fig = plots.residuals(runs, runs["loss"].to_numpy() * 1.01)
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        shown = [t.get_text() for t, v in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= v <= hi and t.get_text()]
        assert len(shown) >= 2, shown
    assert plots._short(131072.0) == "1.31e5" and plots._short(0.05) == "0.05"


def test_report_renders_a_fit_stored_before_answers_and_evidence(smoke_store, tmp_path):
    """Old stored fits (no answers, evidence, cost_models; staged mode implied) still render: the report
    computes the verdict and answers itself and says so."""
    from quest_lab.store import Store

    assert runner.invoke(app, ["fit", "--store", smoke_store, "--bootstrap", "0"]).exit_code == 0
    store = Store(smoke_store)
    payload = store.latest_fit("quest")["payload"]
    for key in ("answers", "evidence", "cost_models", "mode", "huber_delta"):
        payload.pop(key)
    store.save_fit("quest", payload, sweep="smoke")
    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--store", smoke_store, "--out", str(out)])
    assert res.exit_code == 0, res.output
    html = _check_report(out)
    assert "computed by the report from the runs shown" in html
    assert "grid / staged" in html and "staged fit: base on full-precision runs first" in html
