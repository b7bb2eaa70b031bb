"""The report's tables as pandas frames of formatted text (the template renders them with
`DataFrame.to_html`, escaped): law comparison, derived answers, runs, provenance."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from quest_lab.analysis.cost import COST_MODELS
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.report_sections import fmt
from quest_lab.version import code_identity

MAX_RUN_ROWS = 5000


@dataclass(frozen=True)
class FitOrigin:
    """Where a reported fit came from: a stored fit (id, time, the code that fitted it) or the report."""

    stored: bool
    fit_id: int | None = None
    created_at: str | None = None  # "YYYY-MM-DD HH:MM UTC"
    source: str = ""  # the fit's runs: store URL (no password) or CSV path
    where: str | None = None
    sweep: str | None = None
    code: dict[str, Any] = field(default_factory=dict)  # {"version", "git_commit"} at fit time

    @property
    def title(self) -> str:
        if not self.stored:
            return "fitted on the fly by `quest-lab report`"
        return f"stored fit #{self.fit_id}" + (f" ({self.created_at})" if self.created_at else "")


def utc(ts: Any) -> str | None:
    """A stored timestamp as 'YYYY-MM-DD HH:MM UTC' (stores return naive UTC datetimes or ISO text)."""
    if ts is None or (isinstance(ts, float) and not np.isfinite(ts)) or ts is pd.NaT:
        return None
    try:
        stamp = pd.Timestamp(ts)
    except (TypeError, ValueError):
        return str(ts)
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _code_text(code: dict[str, Any]) -> str:
    if not code:
        return "not recorded (fit stored by an older quest-lab)"
    return f"quest-lab {code.get('version', '?')}, git {code.get('git_commit', 'not a git checkout')}"


def holdout_text(fit: FitResult) -> str:
    h = fit.holdout
    if not h:
        return "not run (fit --holdout-largest)"
    if "mean_abs_rel_error" in h:
        return (f"{h['mean_abs_rel_error']:.2%} mean, {h['max_abs_rel_error']:.2%} max "
                f"({h['n_runs']} runs at N = {h['N']:,.0f})")
    return str(h.get("note", "not available"))


def comparison(fits: list[tuple[FitResult, FitOrigin, dict[str, Any]]]) -> pd.DataFrame:
    """One row per law: objective, R², leave-largest-out error, parameter count, verdict, origin."""
    rows = []
    for fit, origin, evidence in fits:
        rows.append({
            "law": fit.law, "formula": fit.formula, "runs fitted": fmt(fit.n_runs, "d"),
            "parameters": fmt(len(fit.params), "d"), "objective": fmt(fit.objective, ".4g"), "R²": fmt(fit.r2, ".4f"),
            "leave-largest-out error": holdout_text(fit),
            "bootstrap": f"{fit.config.bootstrap} resamples" if fit.ci else "none",
            "verdict": str(evidence.get("verdict", "—")), "fit": origin.title,
        })
    return pd.DataFrame(rows)


def answer_frames(answers: dict[str, Any]) -> list[tuple[str, dict[str, Any], pd.DataFrame]]:
    """(cost model name, its description, one row per budget) in cost-registry order."""
    out = []
    order = [n for n in COST_MODELS if n in answers] + sorted(set(answers) - set(COST_MODELS))  # stores sort keys
    for name in order:
        block = answers[name]
        rows = []
        for ans in block.get("answers", []):
            boot = ans.get("bootstrap") or {}
            share = boot.get("share", {})
            gap_ci = boot.get("gap_ci")
            gap = ans.get("gap")
            rows.append({
                "budget": fmt(ans["budget"], ".3g"), "budget from": ans.get("budget_source", ""), "best": ans["best"],
                "bootstrap share": f"{share.get(ans['best'], 0):.0%} of {boot['draws']}" if share else "—",
                "loss": fmt(ans["loss"]), "N*": fmt(ans["N"], ",.0f"),
                "D*": fmt(ans["D"], ",.0f") if ans.get("D") is not None else "∞ (data-rich)",
                "runner-up": ans.get("runner_up") or "—",
                "gap (CI)": "—" if gap is None else fmt(gap, ".3g") + (
                    f" [{gap_ci[0]:.3g}, {gap_ci[1]:.3g}]" if gap_ci else ""),
                "extrapolated": "; ".join(ans.get("reasons", [])) or "no",
            })
        cm = block.get("cost_model") or {}
        desc = {k: str(cm.get(k, "")) for k in ("formula", "unit", "citation")}
        out.append((name, desc, pd.DataFrame(rows)))
    return out


def _int(v: Any) -> str:
    return fmt(v, ",.0f")


# (frame column, header, formatter); pred columns are added per law
RUN_TABLE: tuple[tuple[str, str, Any], ...] = (
    ("run_id", "run_id", str), ("sweep", "sweep", str), ("status", "status", str), ("size", "size", str),
    ("label", "precision", str), ("N", "N", _int), ("D", "D", _int), ("D/N", "D/N", lambda v: fmt(v, ".1f")),
    ("seed", "seed", lambda v: fmt(v, ".0f")), ("loss", "loss", lambda v: fmt(v, ".4f")),
)
RUN_TABLE_TAIL: tuple[tuple[str, str, Any], ...] = (
    ("steps", "steps", _int), ("wall_time_s", "wall s", lambda v: fmt(v, ".1f")),
    ("tokens_per_s", "tokens/s", _int), ("device", "device", str),
    ("finished_at", "finished (UTC)", lambda v: (utc(v) or "—").removesuffix(" UTC")),
)


def run_table(runs: pd.DataFrame, preds: dict[str, np.ndarray]) -> tuple[pd.DataFrame, int]:
    """The runs as formatted text, newest first (by finish time when known); at most MAX_RUN_ROWS
    rows; also the number of runs in all.  `preds`: law -> prediction per row (NaN where unmodelled)."""
    frame = runs.assign(**{"D/N": runs["D"] / runs["N"]}, **{f"pred {law}": p for law, p in preds.items()})
    if "finished_at" in frame.columns and frame["finished_at"].notna().any():
        frame = frame.sort_values("finished_at", ascending=False, na_position="last", kind="stable")
    else:
        frame = frame.sort_values(["label", "N", "D"], kind="stable")
    frame = frame.head(MAX_RUN_ROWS)
    spec = list(RUN_TABLE) + [(f"pred {law}", f"pred {law}", lambda v: fmt(v, ".4f")) for law in preds]
    spec += list(RUN_TABLE_TAIL)
    cols = {}
    for col, head, f in spec:
        if col in frame.columns and not frame[col].isna().all():
            cols[head] = [("—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f(v))
                          for v in frame[col]]
    return pd.DataFrame(cols), len(runs)


def provenance(fits: list[tuple[FitResult, FitOrigin]], source: str, where: str | None, sweep: str | None,
               sweeps: list[str], now: datetime) -> pd.DataFrame:
    rows = [("runs source", source), ("sweeps", ", ".join(sweeps) or "—"), ("filter (--where)", where or "—"),
            ("sweep (--sweep)", sweep or "—")]
    for fit, origin in fits:
        p = f"{fit.law} law: "
        rows += [(p + "fit", origin.title), (p + "fit id", fmt(origin.fit_id, "d") if origin.fit_id else "—"),
                 (p + "fitted at", origin.created_at or now.strftime("%Y-%m-%d %H:%M UTC")),
                 (p + "fitted on", f"{origin.source or source}; where={origin.where or '—'}; "
                                   f"sweep={origin.sweep or '—'}"),
                 (p + "method / mode", f"{fit.config.method} / {fit.config.mode}, Huber δ = {fit.config.huber_delta:g}, "
                                       f"bootstrap {fit.config.bootstrap}"),
                 (p + "code at fit time", _code_text(origin.code) if origin.stored else "this report's")]
    code = code_identity()
    rows += [("report code version", f"quest-lab {code['version']}"),
             ("report git commit", code.get("git_commit", "not a git checkout")),
             ("generated", now.strftime("%Y-%m-%d %H:%M UTC"))]
    return pd.DataFrame(rows, columns=["item", "value"])
