"""Report figures (matplotlib, one consistent style): each function returns a Figure.

Colours are fixed per precision label across all figures (full precision is black); marker shapes
encode the training budget, line styles the model size.  Log axes use matplotlib's own locators and
formatters: `LogLocator` at 1, 2, 5 × 10^k (more steps on short ranges, so an axis spanning less than
a decade still gets several labels) and `EngFormatter` (20k, 1.5M, 10G); no hand-written formatting.  Every title and legend says what is drawn: points are observed runs, lines are
the fitted law.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

from quest_lab.analysis import derived
from quest_lab.analysis.cost import CostModel
from quest_lab.analysis.fit import FitResult
from quest_lab.quant.specs import label_sort_key
from quest_lab.analysis.law_base import BASE_LABEL

STYLE = {
    "figure.figsize": (7.5, 4.6), "figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True,
    "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
    "axes.titlesize": 11, "axes.titleweight": "bold", "legend.fontsize": 8, "legend.frameon": False,
    "svg.fonttype": "path",
}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]  # one per training budget
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)), (0, (8, 2))]  # one per model size
MAX_GROUPS = 9  # curves per panel (single precision) or panels (several precisions, max 6 shown)
FRONTIER = "#e6550d"
DIVERGED = "#d62728"


def log_axis(ax, values, which: str = "x") -> None:
    """A log axis labelled at 1, 2, 5 × 10^k (every decade only on wide ranges, more steps on narrow
    ones), with engineering prefixes."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    span = float(np.log10(v.max() / v.min())) if v.size else 3.0
    subs = (1.0,) if span > 3 else (1.0, 2.0, 5.0) if span > 0.8 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(EngFormatter(sep=""))
    axis.set_minor_formatter(NullFormatter())


def short_labels(labels) -> dict[str, str]:
    """Precision labels without the quantizer ('w4a4') when one quantizer covers every quantized label."""
    quant = [lab for lab in set(labels) if lab != BASE_LABEL]
    if len({lab.split(":", 1)[0] for lab in quant}) > 1:
        return {lab: lab for lab in labels}
    return {lab: lab.split(":", 1)[-1] for lab in labels}


def label_colors(labels) -> dict[str, str]:
    quant = sorted(set(labels) - {BASE_LABEL}, key=label_sort_key)
    colors = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(quant)}
    colors[BASE_LABEL] = "#111111"
    return colors


def _clusters(values: pd.Series, gap_dex: float = 0.1) -> tuple[pd.Series, float]:
    """Each value replaced by the geometric mean of its cluster (sorted log10 values split at gaps
    wider than `gap_dex`), so slightly scattered budgets (extracted data, rounding) group together;
    also the widest cluster's spread in dex."""
    logs = np.log10(values.to_numpy(float))
    order = np.argsort(logs)
    cluster = np.zeros(len(logs), int)
    cluster[order] = np.concatenate([[0], np.cumsum(np.diff(logs[order]) > gap_dex)])
    centers = {c: 10 ** logs[cluster == c].mean() for c in np.unique(cluster)}
    spread = max(float(np.ptp(logs[cluster == c])) for c in centers)
    return pd.Series([centers[c] for c in cluster], index=values.index), spread


def budget_groups(df: pd.DataFrame, max_spread_dex: float = 0.3) -> tuple[str, pd.Series]:
    """How runs share a training budget: fixed tokens D, fixed tokens-per-parameter D/N, or
    fixed compute C = 6ND (IsoFLOP).  Picks the tightest-clustered choice with the fewest groups."""
    candidates = {"D": df["D"], "D/N": df["D"] / df["N"], "C": 6.0 * df["N"] * df["D"]}
    grouped = {k: _clusters(v) for k, v in candidates.items()}
    tight = [k for k, (_, spread) in grouped.items() if spread <= max_spread_dex]
    if tight:
        kind = min(tight, key=lambda k: grouped[k][0].nunique())
        return kind, grouped[kind][0]
    # budgets spread continuously (e.g. Chinchilla's Figure 4): 5 IsoFLOP bins by quantile of C
    logc = np.log10(candidates["C"])
    bins = pd.qcut(logc, q=min(5, logc.nunique()), labels=False, duplicates="drop")
    centers = 10 ** logc.groupby(bins).transform("mean")
    return "C", centers.map(lambda x: float(f"{x:.2g}"))


def _curve_inputs(kind: str, value: float, n_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if kind == "D":
        return n_grid, np.full_like(n_grid, value)
    if kind == "D/N":
        return n_grid, value * n_grid
    return n_grid, value / (6.0 * n_grid)


def group_title(kind: str, value: float) -> str:
    """'D = 131,072 tokens', 'D/N = 20 tokens/param', '6ND ≈ 13 TFLOPs' (IsoFLOP bins: 6ND whatever the bits)."""
    if kind == "D":
        return f"D = {value:,.0f} tokens"
    if kind == "D/N":
        return f"D/N = {value:.3g} tokens/param"
    return f"6ND ≈ {EngFormatter(unit='FLOPs', places=1)(value)}"


def _budget_markers(values) -> dict[float, str]:
    return {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(sorted(values))}


def loss_vs_n(runs: pd.DataFrame, fit: FitResult) -> Figure:
    """Observed loss vs N per precision (points) with the fitted law's curves (lines); one panel per
    budget group, or one panel coloured by budget when there is a single precision.  `runs`: the runs
    the law speaks for."""
    kind, groups = budget_groups(runs)
    values = sorted(groups.unique())
    labels = sorted(runs["label"].unique(), key=label_sort_key)
    colors = label_colors(labels)
    single = len(labels) == 1
    limit = MAX_GROUPS if single else 6
    if len(values) > limit:
        values = [values[i] for i in np.linspace(0, len(values) - 1, limit).round().astype(int)]
    panels = [None] if single else values
    fig = Figure(figsize=(min(4.2 * len(panels), 12.6) if not single else 7.5, 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    n_grid = np.geomspace(runs["N"].min() / 1.5, runs["N"].max() * 1.5, 80)
    group_cols = colormaps["viridis"](np.linspace(0, 0.9, len(values)))
    handles: dict[str, Line2D] = {}
    for ax, panel in zip(axes, panels):
        for gi, value in enumerate(values):
            if panel is not None and value != panel:
                continue
            sel = runs[groups == value]
            for label in labels:
                pts = sel[sel["label"] == label]
                if pts.empty:
                    continue
                color = group_cols[gi] if single else colors[label]
                name = group_title(kind, value) if single else label
                ax.scatter(pts["N"], pts["loss"], s=22, color=color, alpha=0.85, zorder=3)
                w, a = derived.label_bits(label)
                N, D = _curve_inputs(kind, value, n_grid)
                ax.plot(N, fit.predict(N, D, label, w, a), color=color, lw=1.4, alpha=0.9)
                handles.setdefault(name, Line2D([], [], color=color, marker="o", ms=5, lw=1.4, label=name))
        log_axis(ax, n_grid)
        ax.set_xlabel("N (non-embedding parameters)")
        ax.set_title(group_title(kind, panel) if panel is not None else f"{fit.law} law: loss vs N")
    if not single:
        fig.suptitle(f"{fit.law} law: observed loss (points) and fitted law (lines) per training budget",
                     fontweight="bold")
    lo, hi = float(runs["loss"].min()), float(runs["loss"].max())
    pad = 0.12 * max(hi - lo, 0.05 * hi)
    axes[0].set_ylim(lo - pad, hi + pad)  # curves may extrapolate far beyond the data
    axes[0].set_ylabel("final eval loss (nats)")
    key = [Line2D([], [], color="#777777", marker="o", ls="none", ms=5, label="point: observed run"),
           Line2D([], [], color="#777777", lw=1.4, label=f"line: fitted {fit.law} law")]
    axes[-1].legend(handles=key + list(handles.values()), loc="upper right")
    return fig


def _annotate_frontier(ax, x: np.ndarray, y: np.ndarray, labels: list[str]) -> None:
    """Each frontier run's precision beside it: above-right, or below-right when the previous label is close."""
    above = True
    for i, (xi, yi, lab) in enumerate(zip(x, y, labels)):
        if i and np.log10(xi / x[i - 1]) < 0.25:
            above = not above
        ax.annotate(lab, (xi, yi), xytext=(5, 6) if above else (5, -6), textcoords="offset points", fontsize=7,
                    color=FRONTIER, va="bottom" if above else "top", zorder=5)


def pareto(runs: pd.DataFrame, cost: CostModel) -> Figure:
    """Loss vs the cost of each run under one cost model, and its Pareto frontier (labelled with each
    frontier run's precision).  Marker shape = training budget.  A cost that ignores D (memory) gets one
    frontier per budget, since a longer-trained run is not cheaper in it; a cost that scales with N·D
    gets one frontier over all runs."""
    fig = Figure(figsize=(8.2, 5.0), layout="constrained")
    ax = fig.subplots()
    x = np.asarray(cost.cost(runs["N"], runs["D"], runs["w_bits"], runs["a_bits"]), float)
    loss = runs["loss"].to_numpy(float)
    kind, groups = budget_groups(runs)
    markers = _budget_markers(groups.unique())
    colors = label_colors(runs["label"].unique())
    short = short_labels(runs["label"].unique())
    for label in sorted(runs["label"].unique(), key=label_sort_key):
        for value, marker in markers.items():
            sel = ((runs["label"] == label) & (groups == value)).to_numpy()
            if sel.any():
                ax.scatter(x[sel], loss[sel], s=26, marker=marker, color=colors[label], alpha=0.6, zorder=2)
    per_budget = cost.scales_with == "N" and len(markers) > 1
    fronts = [(groups == v).to_numpy() for v in markers] if per_budget else [np.ones(len(runs), bool)]
    styles = LINESTYLES if per_budget else ["-"]
    for i, sel in enumerate(fronts):
        idx = np.nonzero(sel)[0]
        mask = derived.pareto_mask(x[idx], loss[idx])
        order = np.argsort(x[idx][mask])
        fi = idx[mask][order]
        ax.step(x[fi], loss[fi], where="post", color=FRONTIER, lw=2.0, ls=styles[i % len(styles)], zorder=3)
        ax.scatter(x[fi], loss[fi], s=70, facecolors="none", edgecolors=FRONTIER, linewidths=1.6, zorder=4)
        _annotate_frontier(ax, x[fi], loss[fi], [short[runs["label"].iloc[j]] for j in fi])
    log_axis(ax, x)
    ax.set_xlabel(f"{cost.title} [{cost.unit}] — cost model '{cost.name}'")
    ax.set_ylabel("final eval loss (nats)")
    ax.set_title(f"Pareto frontier: loss vs {cost.title} (cost model '{cost.name}')")
    handles = [Line2D([], [], color=colors[lab], marker="o", ls="none", label=lab) for lab in sorted(colors, key=label_sort_key)
               if lab in set(runs["label"])]
    handles += [Line2D([], [], color="#555555", marker=m, ls="none", label=group_title(kind, v))
                for v, m in markers.items()]
    if per_budget:
        handles += [Line2D([], [], color=FRONTIER, lw=2.0, ls=styles[i % len(styles)],
                           label=f"frontier at {group_title(kind, v)}") for i, v in enumerate(markers)]
    else:
        handles.append(Line2D([], [], color=FRONTIER, lw=2.0, marker="o", mfc="none", label="Pareto frontier"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def efficiency_bars(fit: FitResult) -> Figure:
    """eff(P)·16/P per precision with bootstrap CIs where the law has eff parameters; the best one
    outlined."""
    table = derived.efficiency_per_bit(fit)
    colors = label_colors(table["label"])
    fig = Figure(layout="constrained")
    ax = fig.subplots()
    y = table["eff_per_bit"].to_numpy(float)
    lo = np.nan_to_num(y - table["eff_per_bit_lo"].to_numpy(float), nan=0.0).clip(min=0)
    hi = np.nan_to_num(table["eff_per_bit_hi"].to_numpy(float) - y, nan=0.0).clip(min=0)
    bars = ax.bar(table["label"], y, color=[colors[lab] for lab in table["label"]], yerr=[lo, hi], capsize=4,
                  alpha=0.85)
    if len(bars):
        bars[int(np.nanargmax(y))].set_edgecolor(FRONTIER)
        bars[int(np.nanargmax(y))].set_linewidth(2.5)
    for bar, value in zip(bars, y):  # inside the bar, clear of the error bar
        ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value / 2), ha="center", va="center",
                    color="white", fontsize=9, fontweight="bold")
    ax.axhline(1.0, color="#111111", lw=0.8, ls="--")
    ax.set_ylabel("efficiency per bit  eff(P)·16/P  (cost model 'memory')")
    quant = (table["label"] != BASE_LABEL).to_numpy()
    has_ci = bool(np.isfinite(table["eff_per_bit_lo"].to_numpy(float)[quant]).any())
    if has_ci:
        note = f"{fit.config.ci:.0%} bootstrap CIs, {fit.config.bootstrap} resamples"
    elif fit.config.bootstrap == 0:
        note = "no CIs: fitted with --bootstrap 0"
    else:
        note = f"no CIs: the {fit.law} law derives eff from other parameters"
    ax.set_title(f"Efficiency per bit ({fit.law} law; {note})")
    ax.tick_params(axis="x", rotation=20)
    return fig


def residuals(runs: pd.DataFrame, pred: np.ndarray, law: str) -> Figure:
    """Relative residuals (pred − obs)/obs vs N and vs D, coloured by precision; only runs the law
    predicts (finite `pred`) are drawn and listed."""
    keep = np.isfinite(pred)
    runs, pred = runs[keep].reset_index(drop=True), pred[keep]
    labels = sorted(runs["label"].unique(), key=label_sort_key)
    colors = label_colors(labels)
    rel = 100.0 * (pred - runs["loss"].to_numpy(float)) / runs["loss"].to_numpy(float)
    fig = Figure(figsize=(9.5, 4.0), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, name in zip(axes, ("N", "D"), ("N (parameters)", "D (tokens)")):
        for label in labels:
            sel = (runs["label"] == label).to_numpy()
            ax.scatter(runs[col].to_numpy(float)[sel], rel[sel], s=18, color=colors[label], alpha=0.8, label=label)
        ax.axhline(0, color="#111111", lw=0.8)
        log_axis(ax, runs[col])
        ax.set_xlabel(name)
    axes[0].set_ylabel("residual (pred − obs)/obs  [%]")
    fig.suptitle(f"{law} law: relative error of the fitted law per run ({len(runs)} runs)", fontweight="bold")
    axes[1].legend(loc="best")
    return fig
