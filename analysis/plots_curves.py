"""Training-curve panel: loss vs tokens for every run (colour = precision, line style = model size, one
panel per training budget), diverged runs marked where they stopped.

Each run's line is its eval-loss curve when the run evaluated at >= MIN_EVAL_POINTS points (`eval_every`),
else its logged training loss (the per-step batch loss, smoothed by an exponential moving average);
the dot at the end is the final eval loss.  Every line carries the SVG id `curve-<run_id>` so the
report (and its tests) can count and address them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from quest_lab.analysis.plots import DIVERGED, LINESTYLES, budget_groups, group_title, label_colors

MIN_EVAL_POINTS = 3
EMA_FRACTION = 0.08  # smoothing span: 8 % of a run's logged points
MAX_PANELS = 4
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def curve_id(run_id: object) -> str:
    """The SVG id of a run's line (only [A-Za-z0-9_.-]: stored run ids are untrusted text)."""
    return "curve-" + _UNSAFE_ID.sub("_", str(run_id))[:64]


@dataclass(frozen=True)
class CurveSummary:
    """What the panel drew, for its caption."""

    runs: int
    eval_lines: int
    train_lines: int
    diverged: int
    panels: int
    budgets: int


def _ema(values: np.ndarray) -> np.ndarray:
    span = max(1.0, EMA_FRACTION * len(values))
    return pd.Series(values).ewm(span=span, adjust=True).mean().to_numpy()


def _line(curves: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """(tokens, loss, source) of one run: its eval curve when long enough, else its smoothed train curve."""
    ev = curves[curves["kind"] == "eval"].sort_values("step")
    if len(ev) >= MIN_EVAL_POINTS:
        return ev["tokens"].to_numpy(float), ev["loss"].to_numpy(float), "eval"
    tr = curves[curves["kind"] == "train"].sort_values("step")
    y = tr["loss"].to_numpy(float)
    ok = np.isfinite(y)
    return tr["tokens"].to_numpy(float)[ok], _ema(y[ok]) if ok.any() else y[ok], "train"


def _size_styles(runs: pd.DataFrame) -> dict[str, object]:
    sizes = runs.assign(size_name=_size_names(runs)).groupby("size_name")["N"].min().sort_values()
    return {name: LINESTYLES[i % len(LINESTYLES)] for i, name in enumerate(sizes.index)}


def _size_names(runs: pd.DataFrame) -> pd.Series:
    named = runs["size"] if "size" in runs.columns else pd.Series([None] * len(runs), index=runs.index)
    fallback = runs["N"].map(lambda n: f"N = {n:,.0f}")
    return named.where(named.notna() & (named.astype(str) != ""), fallback).astype(str)


def training_curves(runs: pd.DataFrame, curves: pd.DataFrame) -> tuple[Figure, CurveSummary]:
    """One line per run of `runs` (completed and diverged) that has a stored curve."""
    have = set(curves["run_id"].astype(str))
    runs = runs[runs["run_id"].astype(str).isin(have)].reset_index(drop=True)
    kind, groups = budget_groups(runs)
    values = sorted(groups.unique())
    if len(values) > MAX_PANELS:
        values = [values[i] for i in np.linspace(0, len(values) - 1, MAX_PANELS).round().astype(int)]
    colors = label_colors(runs["label"].unique())
    styles = _size_styles(runs)
    sizes = _size_names(runs)
    by_run = {rid: c for rid, c in curves.groupby(curves["run_id"].astype(str))}
    fig = Figure(figsize=(min(5.2 * len(values), 13.0) + 2.2, 4.8), layout="constrained")
    axes = fig.subplots(1, len(values), sharey=True, squeeze=False)[0]
    counts = {"eval": 0, "train": 0}
    diverged = 0
    tails: list[float] = []
    for ax, value in zip(axes, values):
        for i in np.nonzero((groups == value).to_numpy())[0]:
            run = runs.iloc[i]
            x, y, source = _line(by_run[str(run["run_id"])])
            if not len(x):
                continue
            counts[source] += 1
            color = colors[run["label"]]
            (line,) = ax.plot(x, y, color=color, ls=styles[sizes.iloc[i]], lw=1.2, alpha=0.9)
            line.set_gid(curve_id(run["run_id"]))
            tails.extend(y[x >= 0.1 * x.max()])
            if run.get("status") == "diverged":
                diverged += 1
                ax.scatter([x[-1]], [y[-1]], marker="x", s=60, color=DIVERGED, linewidths=2, zorder=5)
            elif np.isfinite(run.get("loss", np.nan)):
                ax.scatter([x[-1]], [run["loss"]], s=14, color=color, zorder=4)
        ax.set_title(group_title(kind, value))
        ax.set_xlabel("tokens seen")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    finite = np.asarray([t for t in tails if np.isfinite(t)])
    if finite.size:
        lo, hi = float(finite.min()), float(np.quantile(finite, 0.98))
        pad = 0.06 * max(hi - lo, 0.02 * hi)
        axes[0].set_ylim(lo - pad, hi + pad)  # the first 10 % of training (log(vocab) at step 0) is cut
    axes[0].set_ylabel("loss (nats)")
    source = ("eval loss" if not counts["train"] else "training loss (EMA-smoothed)" if not counts["eval"]
              else "eval loss or smoothed training loss")
    fig.suptitle(f"Training curves: {source} vs tokens, one line per run", fontweight="bold")
    handles = [Line2D([], [], color=c, lw=2, label=lab) for lab, c in sorted(colors.items())]
    handles += [Line2D([], [], color="#555555", ls=s, lw=1.2, label=name) for name, s in styles.items()]
    handles.append(Line2D([], [], color="#555555", marker="o", ls="none", ms=4, label="final eval loss"))
    if diverged:
        handles.append(Line2D([], [], color=DIVERGED, marker="x", ls="none", ms=7, mew=2, label="diverged (last step)"))
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    summary = CurveSummary(runs=counts["eval"] + counts["train"], eval_lines=counts["eval"],
                           train_lines=counts["train"], diverged=diverged, panels=len(values), budgets=groups.nunique())
    return fig, summary
