"""Self-contained HTML report (Jinja2 template `templates/report.html.j2`, autoescaped): every figure
inlined (PNG as base64, the training curves as SVG), tables from pandas, an inline script that sorts and
filters the run table (no CDN: the page opens offline), plus the PNGs next to `index.html`.

Layout: laws compared (objective, R², leave-largest-out error, parameter count, verdict), then one section
per law (verdict box, fit table, its sections from the registry in `report_sections.py`, derived
answers), training curves, Pareto frontiers per cost model, runs, provenance.
"""
from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup

from quest_lab.analysis import plots
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL
from quest_lab.analysis.report_sections import Block, LawView, build_blocks, fit_table
from quest_lab.analysis.report_tables import FitOrigin, answer_frames, comparison, holdout_text, provenance, run_table

log = logging.getLogger(__name__)
__all__ = ["FitOrigin", "LawFit", "ReportInputs", "default_out_dir", "predictions", "write_report"]


@dataclass(frozen=True)
class LawFit:
    fit: FitResult
    origin: FitOrigin = field(default_factory=lambda: FitOrigin(stored=False))


@dataclass(frozen=True)
class ReportInputs:
    runs: pd.DataFrame  # completed runs, normalised (with `label`)
    fits: tuple[LawFit, ...]
    out_dir: Path
    source: str = ""  # store URL (no password) or CSV path
    where: str | None = None
    sweep: str | None = None
    curves: pd.DataFrame | None = None  # stored curves (run_id, step, tokens, loss, kind); None: no store
    curve_runs: pd.DataFrame | None = None  # completed + diverged runs, D = the planned budget
    suggestion: dict | None = None  # `quest-lab suggest --json` payload: the "What to run next" panel

    def __post_init__(self) -> None:
        if self.runs.empty:
            raise ValueError("the report needs at least one completed run")
        if not self.fits:
            raise ValueError("the report needs at least one fitted law")
        laws = [f.fit.law for f in self.fits]
        if len(set(laws)) != len(laws):
            raise ValueError(f"each law may appear once in a report; got {', '.join(laws)}")


def default_out_dir() -> Path:
    return Path("reports") / datetime.now().strftime("report-%Y%m%d-%H%M%S")


def predictions(runs: pd.DataFrame, fit: FitResult) -> np.ndarray:
    """Fitted loss for each run (NaN for precisions the fit has not seen)."""
    out = np.full(len(runs), np.nan)
    known = set(fit.labels) | {BASE_LABEL}
    for i, (n, d, lab, w, a) in enumerate(zip(runs["N"], runs["D"], runs["label"], runs["w_bits"], runs["a_bits"])):
        if lab in known:
            out[i] = float(fit.predict(n, d, lab, w, a))
    return out


def evidence_of(fit: FitResult, seen: pd.DataFrame) -> tuple[dict, dict, str]:
    """The fit's answers and evidence: stored with it, or (fits stored before they existed) computed here
    from the runs, without bootstrap shares; and a note saying which."""
    if fit.answers is not None and fit.evidence is not None:
        return fit.answers, fit.evidence, ""
    from quest_lab.analysis.answers import build_answers
    from quest_lab.analysis.evidence import assess

    answers = build_answers(fit, seen, fit.cost_models())
    return answers, assess(fit, seen, answers), ("computed by the report from the runs shown (the stored fit "
                                                  "predates answers and evidence; no bootstrap shares)")


def _verdict(evidence: dict, note: str) -> dict[str, Any]:
    verdict = str(evidence.get("verdict", "not identifiable"))
    return {"verdict": verdict, "because": [str(r) for r in evidence.get("because", [])],
            "scale": evidence.get("scale_note"), "note": note,
            "extra": [str(r) for r in evidence.get("extrapolations", [])] if verdict == "not identifiable" else [],
            "caveats": [str(c["message"]) for c in evidence.get("checks", []) if c.get("severity") == "caveat"]}


def _html_table(frame: pd.DataFrame, *, table_id: str | None = None, classes: str = "") -> Markup:
    """pandas renders (and escapes) the table; cells are already formatted text."""
    return Markup(frame.to_html(index=False, escape=True, border=0, na_rep="—", table_id=table_id,
                                classes=classes or None))


class _Figures:
    """Figures rendered once: PNG files in the output folder and the data the template inlines."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[str] = []

    def png(self, name: str, fig) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        (self.out / f"{name}.png").write_bytes(buf.getvalue())
        self.files.append(f"{name}.png")
        return base64.b64encode(buf.getvalue()).decode()

    def svg(self, name: str, fig) -> Markup:
        """Inline SVG (also written as PNG); matplotlib escapes text, comments are dropped, ids salted."""
        self.png(name, fig)
        buf = io.StringIO()
        with matplotlib.rc_context({"svg.hashsalt": name}):
            fig.savefig(buf, format="svg")
        text = re.sub(r"<!--.*?-->", "", buf.getvalue(), flags=re.S)
        return Markup(text[text.index("<svg"):])

    def block(self, prefix: str, b: Block) -> dict[str, Any]:
        return {"id": b.id, "title": b.title, "caption": b.caption, "notes": list(b.notes), "svg": False,
                "image": self.png(f"{prefix}{b.id}", b.figure) if b.figure is not None else None,
                "tables": [(cap, _html_table(t)) for cap, t in b.tables]}


def _law_context(lf: LawFit, runs: pd.DataFrame, figs: _Figures) -> tuple[dict[str, Any], dict, np.ndarray]:
    fit = lf.fit
    known = set(fit.labels) | {BASE_LABEL}
    seen = runs[runs["label"].isin(known)].reset_index(drop=True)
    pred = predictions(seen, fit)
    answers, evidence, note = evidence_of(fit, seen)
    view = LawView(fit=fit, runs=runs, seen=seen, pred=pred, answers=answers, evidence=evidence)
    ci_text = (f"bootstrap {fit.config.bootstrap} resamples, {fit.config.ci:.0%} intervals" if fit.ci
               else "no confidence intervals (fitted with --bootstrap 0)" if fit.config.bootstrap == 0
               else "no confidence intervals stored")
    ctx = {
        "name": fit.law, "formula": fit.formula, "origin": lf.origin.title, "n_runs": fit.n_runs,
        "verdict": _verdict(evidence, note), "objective": f"{fit.objective:.6g}", "r2": f"{fit.r2:.4f}",
        "ci_text": ci_text, "holdout": holdout_text(fit), "warnings": list(fit.warnings),
        "fit_table": _html_table(fit_table(fit)),
        "blocks": [figs.block(f"{fit.law}-", b) for b in build_blocks(view)],
        "answers": [(name, cm, _html_table(t)) for name, cm, t in answer_frames(answers)],
    }
    return ctx, evidence, predictions(runs, fit)


def _curves_context(inputs: ReportInputs, figs: _Figures) -> dict[str, Any]:
    if inputs.curves is None or inputs.curve_runs is None:
        return {"image": None, "caption": "No training curves: the runs come from a CSV file, not a store."}
    if inputs.curves.empty or inputs.curve_runs.empty:
        return {"image": None, "caption": "No training curves are stored for these runs (imported runs have none)."}
    from quest_lab.analysis.plots_curves import MIN_EVAL_POINTS, training_curves

    fig, s = training_curves(inputs.curve_runs, inputs.curves)
    kinds = (f"{s.eval_lines} line(s) are eval-loss curves (runs that evaluated at ≥ {MIN_EVAL_POINTS} points); "
             if s.eval_lines else "")
    train = (f"{s.train_lines} line(s) are the logged training loss (per-step batch loss, smoothed by an exponential "
             "moving average; set eval_every to store eval curves); " if s.train_lines else "")
    dropped = (f" Only {s.panels} of {s.budgets} training budgets are drawn." if s.panels < s.budgets else "")
    diverged = f"{s.diverged} diverged, marked × where they stopped" if s.diverged else "none diverged"
    caption = (f"One line per run: {s.runs} runs ({diverged}). {kinds}{train}"
               f"the dot at a line's end is the run's final eval loss. Colour: precision; line style: model size; "
               f"one panel per training budget.{dropped}")
    return {"image": figs.svg("curves", fig), "caption": caption}


def write_report(inputs: ReportInputs) -> Path:
    """Render every figure and table; returns the path of index.html."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    out = Path(inputs.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = inputs.runs.reset_index(drop=True)
    figs = _Figures(out)
    now = datetime.now(timezone.utc)
    with matplotlib.rc_context(plots.STYLE):
        laws, preds, rows = [], {}, []
        for lf in inputs.fits:
            ctx, evidence, preds[lf.fit.law] = _law_context(lf, runs, figs)
            laws.append(ctx)
            rows.append((lf.fit, lf.origin, evidence))
        curves = _curves_context(inputs, figs)
        cost_models = inputs.fits[0].fit.cost_models()
        pareto = [figs.block("", Block(
            f"pareto_{name}", f"Pareto frontier: {cm.title} (cost model '{name}')",
            f"Cost model '{name}': {cm.formula} [{cm.unit}]; {cm.citation}." + (
                " This cost ignores D, so each training budget has its own frontier." if cm.scales_with == "N" else ""),
            figure=plots.pareto(runs, cm))) for name, cm in cost_models.items()]
    listed = runs if inputs.curve_runs is None else inputs.curve_runs.reset_index(drop=True)
    if listed is not runs:  # completed and diverged runs: predictions for the table's own rows
        preds = {lf.fit.law: predictions(listed, lf.fit) for lf in inputs.fits}
    table, total = run_table(listed, preds)
    diverged = int((listed["status"] == "diverged").sum()) if "status" in listed.columns else 0
    sweeps = sorted(map(str, runs["sweep"].dropna().unique())) if "sweep" in runs.columns else []
    names = [lf.fit.law for lf in inputs.fits]
    next_runs = None
    if inputs.suggestion is not None:
        from quest_lab.analysis.suggest_panel import what_to_run_next

        panel, pngs = what_to_run_next(inputs.suggestion)  # every string in it escaped by the panel
        for name, png in pngs.items():
            (out / name).write_bytes(png)
        next_runs = Markup(panel)
    env = Environment(loader=PackageLoader("quest_lab.analysis", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    assets = resources.files("quest_lab.analysis") / "templates"
    doc = env.get_template("report.html.j2").render(
        title=f"quest-lab report: {' and '.join(names)} law{'s' if len(names) > 1 else ''}",
        subtitle=f"{len(runs)} completed runs from {inputs.source or 'the store'}; generated "
                 f"{now.strftime('%Y-%m-%d %H:%M UTC')}",
        css=Markup((assets / "report.css").read_text(encoding="utf-8")),
        script=Markup((assets / "report.js").read_text(encoding="utf-8")),
        laws=laws, comparison=_html_table(comparison(rows)), curves=curves, pareto=pareto, next_runs=next_runs,
        runs={"table": _html_table(table, table_id="runs-table", classes="sortable-table"),
              "caption": (f"{len(table)} of {total} runs" if len(table) < total else f"{total} runs")
              + (f" ({diverged} diverged)" if diverged else "") + ", newest first. Click a column header to sort; "
                "“pred LAW”: the law's prediction (— where the law does not model that precision)."},
        provenance=_html_table(provenance([(f, o) for f, o, _ in rows], inputs.source, inputs.where, inputs.sweep,
                                          sweeps, now), classes="text"),
    )
    index = out / "index.html"
    index.write_text(doc, encoding="utf-8")
    log.info("wrote %s (%d figures)", index, len(figs.files))
    return index
