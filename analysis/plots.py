"""Report figures (matplotlib, one consistent style): each function returns a Figure.

Colours are fixed per precision label across all figures (full precision is black).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from quest_lab.analysis import derived
from quest_lab.analysis.cost import CostModel
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL

STYLE = {
    "figure.figsize": (7.5, 4.6), "figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True,
    "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
    "axes.titlesize": 11, "axes.titleweight": "bold", "legend.fontsize": 8, "legend.frameon": False,
}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
MAX_GROUPS = 9  # curves per panel (single precision) or panels (several precisions, max 6 shown)


def _short(value: float, _pos=None) -> str:
    """Compact number for ticks and titles: 2e4, 1.5e5, 0.3 (no '+05' padding)."""
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mant, exp = f"{value:.2e}".split("e")
    return f"{float(mant):g}e{int(exp)}"


def _logx(ax, values) -> None:
    """Log x axis that is labelled even when the data span less than a decade (matplotlib's
    default then labels at most one tick): ticks at 1, 2, 5 × 10^k; 1, 2, 3, 5 within one decade (every
    digit crowds the labels at 6–9 in a narrow panel); every digit only within a factor of ~3."""
    ax.set_xscale("log")
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    span = np.log10(v.max() / v.min()) if v.size else 3.0
    subs = ((1.0,) if span > 2.5 else (1.0, 2.0, 5.0) if span > 1 else (1.0, 2.0, 3.0, 5.0) if span > 0.5
            else np.arange(1.0, 10.0))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(_short))
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges


def label_colors(labels) -> dict[str, str]:
    quant = sorted(set(labels) - {BASE_LABEL}, key=lambda lab: (-derived.label_bits(lab)[0], lab))
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


def _group_title(kind: str, value: float) -> str:
    return {"D": f"D = {_short(value)} tokens", "D/N": f"D/N = {_short(value)} tokens/param",
            "C": f"6ND ≈ {_short(float(f'{value:.2g}'))} FLOPs"}[kind]  # IsoFLOP bins: 6ND whatever the bits


def loss_vs_n(runs: pd.DataFrame, fit: FitResult) -> Figure:
    """Observed loss vs N per precision with the fitted law's curves (one panel per budget group,
    or one panel coloured by budget when there is a single precision)."""
    kind, groups = budget_groups(runs)
    values = sorted(groups.unique())
    labels = sorted(runs["label"].unique())
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
                ax.scatter(pts["N"], pts["loss"], s=22, color=color, alpha=0.85, zorder=3,
                           label=_group_title(kind, value) if single else label)
                if label == BASE_LABEL or label in fit.labels:
                    w, a = derived.label_bits(label)
                    N, D = _curve_inputs(kind, value, n_grid)
                    ax.plot(N, fit.predict(N, D, label, w, a), color=color, lw=1.4, alpha=0.9)
        _logx(ax, n_grid)
        ax.set_xlabel("N (non-embedding parameters)")
        ax.set_title(_group_title(kind, panel) if panel is not None else f"{fit.law} fit: loss vs N")
    if not single:
        fig.suptitle(f"{fit.law} law: observed loss (points) and fitted law (lines) per training budget",
                     fontweight="bold")
    lo, hi = float(runs["loss"].min()), float(runs["loss"].max())
    pad = 0.12 * max(hi - lo, 0.05 * hi)
    axes[0].set_ylim(lo - pad, hi + pad)  # curves may extrapolate far beyond the data
    axes[0].set_ylabel("final eval loss (nats)")
    axes[-1].legend(loc="upper right")
    return fig


def _pareto(ax, x: np.ndarray, runs: pd.DataFrame, xlabel: str, title: str) -> None:
    colors = label_colors(runs["label"].unique())
    loss = runs["loss"].to_numpy(float)
    mask = derived.pareto_mask(x, loss)
    for label in sorted(runs["label"].unique()):
        sel = (runs["label"] == label).to_numpy()
        ax.scatter(x[sel], loss[sel], s=22, color=colors[label], alpha=0.55, label=label, zorder=2)
    order = np.argsort(x[mask])
    fx, fy = x[mask][order], loss[mask][order]
    ax.step(fx, fy, where="post", color="#e6550d", lw=2.2, zorder=3, label="Pareto frontier")
    ax.scatter(fx, fy, s=60, facecolors="none", edgecolors="#e6550d", linewidths=1.8, zorder=4)
    _logx(ax, x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final eval loss (nats)")
    ax.set_title(title)
    ax.legend(loc="upper right")


def pareto(runs: pd.DataFrame, cost: CostModel) -> Figure:
    """Loss vs the cost of each run under one cost model, its Pareto frontier; the axis names the model."""
    fig = Figure(layout="constrained")
    x = np.asarray(cost.cost(runs["N"], runs["D"], runs["w_bits"], runs["a_bits"]), float)
    _pareto(fig.subplots(), x, runs, f"{cost.title} [{cost.unit}] — cost model '{cost.name}'",
            f"Pareto frontier: loss vs {cost.title} (cost model '{cost.name}')")
    return fig


def efficiency_bars(fit: FitResult) -> Figure:
    """eff(P)·16/P per precision with bootstrap CIs; the best one highlighted."""
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
        bars[int(np.nanargmax(y))].set_edgecolor("#e6550d")
        bars[int(np.nanargmax(y))].set_linewidth(2.5)
    for bar, value in zip(bars, y):  # inside the bar, clear of the error bar
        ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value / 2), ha="center", va="center",
                    color="white", fontsize=9, fontweight="bold")
    ax.axhline(1.0, color="#111111", lw=0.8, ls="--")
    ax.set_ylabel("efficiency per bit  eff(P)·16/P  (cost model 'memory')")
    has_ci = bool(np.isfinite(table["eff_per_bit_lo"].to_numpy(float)[table["label"] != BASE_LABEL]).any())
    ax.set_title(f"Efficiency per bit ({fit.law} law; "
                 + (f"{fit.config.ci:.0%} bootstrap CIs)" if has_ci else "no CIs: fitted with --bootstrap 0)"))
    ax.tick_params(axis="x", rotation=20)
    return fig


def residuals(runs: pd.DataFrame, pred: np.ndarray) -> Figure:
    """Relative residuals (pred − obs)/obs vs N and vs D, coloured by precision."""
    colors = label_colors(runs["label"].unique())
    rel = 100.0 * (pred - runs["loss"].to_numpy(float)) / runs["loss"].to_numpy(float)
    fig = Figure(figsize=(9.5, 4.0), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, name in zip(axes, ("N", "D"), ("N (parameters)", "D (tokens)")):
        for label in sorted(runs["label"].unique()):
            sel = (runs["label"] == label).to_numpy()
            ax.scatter(runs[col].to_numpy(float)[sel], rel[sel], s=18, color=colors[label], alpha=0.8, label=label)
        ax.axhline(0, color="#111111", lw=0.8)
        _logx(ax, runs[col])
        ax.set_xlabel(name)
    axes[0].set_ylabel("residual (pred − obs)/obs  [%]")
    fig.suptitle("Fit residuals: relative error of the fitted law per run", fontweight="bold")
    axes[1].legend(loc="best")
    return fig
