"""Self-contained HTML report: PNGs inlined as base64 (no CDN, no JavaScript, opens offline),
plus the same PNGs next to `index.html`.

Sections: verdict box (answers supported / extrapolated / not identifiable, and why), fit table, loss
vs N with fitted curves, one Pareto frontier per cost model (axis named with the model), efficiency
per bit, derived answers per cost model, residuals, run table, provenance.
"""
from __future__ import annotations

import base64
import html
import io
import logging
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from quest_lab.analysis import derived, plots
from quest_lab.analysis.cost import COST_MODELS
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL

log = logging.getLogger(__name__)
MAX_RUN_ROWS = 500
RUN_COLUMNS = ["run_id", "sweep", "label", "size", "N", "D", "w_bits", "a_bits", "seed", "loss", "pred",
               "wall_time_s", "tokens_per_s", "device"]

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e6550d;padding-bottom:.2rem;margin-top:2.2rem}
.sub{color:#666;margin-top:0}figure{margin:1rem 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}table{border-collapse:collapse;font-size:.88rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.warn{color:#a04000}.scroll{max-height:420px;overflow:auto}
code{background:#f4f4f4;padding:0 .2rem}
.verdict{border:2px solid #888;border-radius:6px;padding:.4rem 1rem;margin:1rem 0}.verdict .big{font-size:1.15rem}
.v-supported{border-color:#2ca02c;background:#f3fbf3}.v-extrapolated{border-color:#e6a100;background:#fffaf0}
.v-not-identifiable{border-color:#d62728;background:#fdf3f3}
"""


@dataclass(frozen=True)
class ReportInputs:
    runs: pd.DataFrame  # normalised run table (with `label`)
    fit: FitResult
    out_dir: Path
    origin: str = ""  # where the fit came from
    source: str = ""  # store URL or CSV path
    where: str | None = None
    sweep: str | None = None
    suggestion: dict | None = None  # `quest-lab suggest --json` payload: the "What to run next" panel

    def __post_init__(self) -> None:
        if self.runs.empty:
            raise ValueError("the report needs at least one completed run")


def default_out_dir() -> Path:
    return Path("reports") / datetime.now().strftime("report-%Y%m%d-%H%M%S")


def code_version() -> str:
    """`git describe --always --dirty` of the checkout, else the installed package version."""
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    if rev:
        return f"git {rev}"
    try:
        from importlib.metadata import version

        return f"quest-lab {version('quest-lab')}"
    except Exception:  # not installed
        return "unknown"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _table(df: pd.DataFrame, fmt: str = "{:.4g}") -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "—" if not np.isfinite(v) else fmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fit_table(fit: FitResult) -> pd.DataFrame:
    rows = []
    for name, value in fit.params.items():
        lo, hi = fit.ci.get(name, (np.nan, np.nan))
        rows.append({"param": name, "value": value, "CI low": lo, "CI high": hi})
    return pd.DataFrame(rows)


def predictions(runs: pd.DataFrame, fit: FitResult) -> np.ndarray:
    """Fitted loss for each run (NaN for precisions the fit has not seen)."""
    out = np.full(len(runs), np.nan)
    known = set(fit.labels) | {BASE_LABEL}
    for i, (n, d, lab, w, a) in enumerate(zip(runs["N"], runs["D"], runs["label"], runs["w_bits"], runs["a_bits"])):
        if lab in known:
            out[i] = float(fit.predict(n, d, lab, w, a))
    return out


def fit_runs(runs: pd.DataFrame, fit: FitResult) -> pd.DataFrame:
    """The runs a fit can speak for: precisions it has seen (chinchilla: full precision only)."""
    return runs[runs["label"].isin(set(fit.labels) | {BASE_LABEL})].reset_index(drop=True)


def evidence_of(fit: FitResult, runs: pd.DataFrame) -> tuple[dict, dict, str]:
    """The fit's answers and evidence: stored with it, or (fits stored before they existed, or fitted
    without them) computed here from the runs, without bootstrap shares; and a note saying which."""
    if fit.answers is not None and fit.evidence is not None:
        return fit.answers, fit.evidence, ""
    from quest_lab.analysis.answers import build_answers
    from quest_lab.analysis.evidence import assess

    seen = fit_runs(runs, fit)
    answers = build_answers(fit, seen, fit.cost_models())
    return answers, assess(fit, seen, answers), ("computed by the report from the runs shown (the stored fit "
                                                  "predates answers and evidence; no bootstrap shares)")


def verdict_box(evidence: dict, note: str) -> str:
    verdict = str(evidence.get("verdict", "not identifiable"))
    reasons = "".join(f"<li>{html.escape(str(r))}</li>" for r in evidence.get("because", []))
    caveats = "".join(f"<li>{html.escape(c['message'])}</li>" for c in evidence.get("checks", [])
                      if c.get("severity") == "caveat")
    extra = "".join(f"<li>{html.escape(str(r))}</li>" for r in evidence.get("extrapolations", [])
                    if verdict == "not identifiable")
    scale = evidence.get("scale_note")
    parts = [f"<div class='verdict v-{verdict.replace(' ', '-')}'><p class='big'><b>Answers "
             f"{html.escape(verdict)}</b>, because:</p><ul>{reasons}</ul>"]
    if scale:
        parts.append(f"<p><b>Scale:</b> {html.escape(scale)}</p>")
    if extra:
        parts.append(f"<p>Also extrapolated:</p><ul>{extra}</ul>")
    if caveats:
        parts.append(f"<p>Caveats:</p><ul>{caveats}</ul>")
    if note:
        parts.append(f"<p class='sub'>{html.escape(note)}</p>")
    return "".join(parts) + "</div>"


def _answer_rows(block: dict) -> pd.DataFrame:
    rows = []
    for ans in block.get("answers", []):
        boot = ans.get("bootstrap") or {}
        share = boot.get("share", {})
        gap_ci = boot.get("gap_ci")
        rows.append({
            "budget": ans["budget"], "budget from": ans.get("budget_source", ""), "best": ans["best"],
            "bootstrap share": f"{share.get(ans['best'], 0):.0%} of {boot['draws']}" if share else "—",
            "loss": ans["loss"], "N*": ans["N"], "D*": ans["D"] if ans.get("D") is not None else "∞ (data-rich)",
            "runner-up": ans.get("runner_up") or "—",
            "gap (CI)": (f"{ans['gap']:.3g}" + (f" [{gap_ci[0]:.3g}, {gap_ci[1]:.3g}]" if gap_ci else ""))
            if ans.get("gap") is not None else "—",
            "extrapolated": "; ".join(ans.get("reasons", [])) or "no",
        })
    return pd.DataFrame(rows)


def answers_html(answers: dict) -> str:
    """One table per cost model, named with its formula and citation."""
    parts = []
    order = [n for n in COST_MODELS if n in answers] + sorted(set(answers) - set(COST_MODELS))  # stores sort keys
    for name in order:
        block = answers[name]
        cm = block.get("cost_model", {})
        parts.append(f"<h3>Cost model <code>{html.escape(name)}</code>: {html.escape(str(cm.get('formula', '')))} "
                     f"[{html.escape(str(cm.get('unit', '')))}]</h3><p class='sub'>{html.escape(str(cm.get('citation', '')))}"
                     f"</p>{_table(_answer_rows(block))}")
    parts.append("<p class='sub'>Memory budgets: each precision at N = budget/w_bits in the data-rich limit (D → ∞); "
                 "compute budgets: each precision at its loss-minimising N and D. Bootstrap share: the fraction of "
                 "bootstrap refits that pick the same precision; gap: loss of the runner-up minus the best.</p>")
    return "\n".join(parts)


def write_report(inputs: ReportInputs) -> Path:
    """Render every figure and table; returns the path of index.html."""
    out = Path(inputs.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, fit = inputs.runs.reset_index(drop=True), inputs.fit
    pred = predictions(runs, fit)
    figures: list[tuple[str, str, str]] = []  # (file, title, caption)
    with matplotlib.rc_context(plots.STYLE):
        makers = [
            ("loss_vs_n.png", "Loss vs model size", "Observed final eval loss (points) and the fitted law (lines).",
             lambda: plots.loss_vs_n(runs, fit)),
            *[(f"pareto_{name}.png", f"Pareto frontier: {cm.title} (cost model '{name}')",
               f"Runs no other run beats on both loss and cost form the frontier (orange). Cost model '{name}': "
               f"{cm.formula} [{cm.unit}]; {cm.citation}.", lambda cm=cm: plots.pareto(runs, cm))
              for name, cm in fit.cost_models().items()],
            ("efficiency_per_bit.png", "Efficiency per bit", "eff(P)·16/P: the precision with the highest "
             "value gives the lowest loss at a fixed memory budget (cost model 'memory', outlined).",
             lambda: plots.efficiency_bars(fit)),
            ("residuals.png", "Residuals", "Relative residuals of the fit per run.",
             lambda: plots.residuals(runs, pred)),
        ]
        images = {}
        for name, title, caption, make in makers:
            fig = make()
            images[name] = _png(fig)
            (out / name).write_bytes(images[name])
            figures.append((name, title, caption))
    run_cols = [c for c in RUN_COLUMNS if c in runs.columns or c == "pred"]
    run_table = runs.assign(pred=pred)[run_cols].sort_values(["label", "N", "D"]).head(MAX_RUN_ROWS)
    sweeps = sorted(map(str, runs["sweep"].dropna().unique())) if "sweep" in runs.columns else []
    warn = "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in fit.warnings)
    fig_html = "\n".join(
        f"<h2 id='{n[:-4]}'>{html.escape(t)}</h2><figure><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(images[n]).decode()}'><figcaption>{html.escape(c)}</figcaption></figure>"
        for n, t, c in figures)
    holdout = ""
    if fit.holdout and "mean_abs_rel_error" in fit.holdout:
        h = fit.holdout
        holdout = (f"<p>Hold-out of the largest N = {h['N']:.3g} ({h['n_runs']} runs): mean |relative error| "
                   f"{h['mean_abs_rel_error']:.2%}, max {h['max_abs_rel_error']:.2%}.</p>")
    elif fit.holdout:
        holdout = f"<p class='warn'>Hold-out of the largest N: {html.escape(str(fit.holdout.get('note')))}</p>"
    ci_text = (f"bootstrap {fit.config.bootstrap} resamples, {fit.config.ci:.0%} intervals" if fit.ci
               else "no confidence intervals (fitted with --bootstrap 0)")
    answers, evidence, evidence_note = evidence_of(fit, runs)
    next_html = ""
    if inputs.suggestion is not None:
        from quest_lab.analysis.suggest_panel import what_to_run_next

        next_html, pngs = what_to_run_next(inputs.suggestion)
        for name, png in pngs.items():
            (out / name).write_bytes(png)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    provenance = pd.DataFrame([
        {"item": "runs source", "value": inputs.source}, {"item": "sweeps", "value": ", ".join(sweeps) or "—"},
        {"item": "filter (--where)", "value": inputs.where or "—"}, {"item": "fit", "value": inputs.origin},
        {"item": "fit method / mode", "value": f"{fit.config.method} / {fit.config.mode}, Huber δ = {fit.config.huber_delta:g}"},
        {"item": "code version", "value": code_version()}, {"item": "generated", "value": now},
    ])
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>quest-lab report: {html.escape(fit.law)} law</title>
<style>{CSS}</style></head><body>
<h1>quest-lab report: {html.escape(fit.law)} law</h1>
<p class="sub">{html.escape(fit.formula)} — {fit.n_runs} runs fitted, {len(runs)} runs shown, generated {now}</p>
<section id="verdict">{verdict_box(evidence, evidence_note)}</section>
<h2 id="fit">Fit</h2>
<p>Objective (sum-Huber on log residuals) {fit.objective:.6g}; R² {fit.r2:.4f};
{ci_text}.</p>
{_table(fit_table(fit))}
{holdout}
<ul>{warn}</ul>
{fig_html}
<h2 id="answers">Derived answers</h2>
{answers_html(answers)}
{next_html}
<h2 id="eff">Efficiency table</h2>
{_table(derived.efficiency_per_bit(fit))}
<h2 id="runs">Runs</h2>
<div class="scroll">{_table(run_table)}</div>
<h2 id="provenance">Provenance</h2>
{_table(provenance)}
</body></html>
"""
    index = out / "index.html"
    index.write_text(doc, encoding="utf-8")
    log.info("wrote %s", index)
    return index
