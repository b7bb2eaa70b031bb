"""Report panels of the QAT law (Chen et al. 2025, arXiv 2505.14302): the quantization error δ against
N, D and G, and observed against fitted loss.  Each function takes a FitResult of `--law qat` (and the
runs, for a stored fit without its frame) and returns (Figure, caption); `qat_figures` returns them
all as (name, Figure, caption) for the report.

Observed δ of a run = its loss − the fitted BF16 law L_BF16(N, D); fitted δ = the family's
k·D^γD·(log₂ G)^γG / N^γN.  Points are runs (colour: group setting; per row = "row"), lines the law.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL
from quest_lab.quant.specs import label_sort_key, parse_precision_label

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
STYLE = {"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
         "font.size": 9, "legend.fontsize": 7, "legend.frameon": False}
MAX_PANELS = 4


def _runs(result: FitResult, runs: pd.DataFrame | None) -> pd.DataFrame:
    """The fitted runs with `family`, `setting` (group size or "row"), `delta_obs` and `delta_fit`."""
    from quest_lab.analysis import data
    from quest_lab.analysis.law_qat import family_of

    if result.law != "qat":
        raise ValueError(f"QAT panels need a qat fit, not {result.law!r}")
    df = result.frame if runs is None else runs
    if df is None:
        raise ValueError("a stored fit has no runs: pass the runs frame (analysis.data.load_store/load_csv)")
    df = data.normalise(df) if "label" not in df.columns else df
    df = df[df["label"].isin(set(result.labels))].copy()
    law, theta = result.model, result.theta
    df["family"] = [family_of(lab) for lab in df["label"]]
    df["setting"] = [parse_precision_label(lab).group_size or "row" for lab in df["label"]]
    df["delta_obs"] = df["loss"].to_numpy(float) - law.base_loss(theta, df["N"], df["D"])
    df["delta_fit"] = [float(law.delta(theta, f, n, d, g)) for f, n, d, g in
                       zip(df["family"], df["N"], df["D"], df["G"])]
    return df


def _families(df: pd.DataFrame) -> list[str]:
    return sorted(df["family"].unique())[:MAX_PANELS]


def _settings(df: pd.DataFrame) -> list:
    return sorted(df["setting"].unique(), key=lambda s: (isinstance(s, str), s if not isinstance(s, str) else 0))


def _panels(n: int) -> tuple[Figure, list]:
    fig = Figure(figsize=(3.6 * max(n, 1), 3.4), dpi=110)
    axes = [fig.add_subplot(1, max(n, 1), i + 1) for i in range(max(n, 1))]
    return fig, axes


def _against(result: FitResult, runs, x: str, xlabel: str) -> tuple[Figure, str]:
    df = _runs(result, runs)
    law, theta = result.model, result.theta
    fams = _families(df)
    with rc_context(STYLE):
        fig, axes = _panels(len(fams))
        for ax, fam in zip(axes, fams):
            sub = df[df["family"] == fam]
            for i, setting in enumerate(_settings(sub)):
                pts = sub[sub["setting"] == setting]
                color = COLORS[i % len(COLORS)]
                ax.scatter(pts[x], pts["delta_obs"], s=14, color=color, label=f"G={setting}", zorder=3)
                # the law along x, the other inputs at each observed combination of this setting
                others = [c for c in ("N", "D", "G") if c != x]
                grid = np.geomspace(sub[x].min(), sub[x].max(), 50) if x != "G" else None
                for _, combo in pts[others].drop_duplicates().iterrows():
                    if grid is None:
                        continue
                    inputs = {x: grid, **{c: np.full_like(grid, float(combo[c])) for c in others}}
                    ax.plot(grid, law.delta(theta, fam, inputs["N"], inputs["D"], inputs["G"]), color=color,
                            lw=0.8, alpha=0.6)
            if x == "G":  # the law along G at each observed (N, D)
                gs = sub["G"][np.isfinite(sub["G"])]
                if len(gs) and "gammaG" in law.cols[fam]:
                    grid = np.geomspace(max(gs.min(), 2.0), gs.max(), 50)
                    for j, (_, combo) in enumerate(sub[["N", "D"]].drop_duplicates().iterrows()):
                        ax.plot(grid, law.delta(theta, fam, combo["N"], combo["D"], grid), color="#555555",
                                lw=0.7, alpha=0.5, label="law" if j == 0 else None)
            ax.set_xscale("log", base=2 if x == "G" else 10)
            ax.axhline(0.0, color="#999999", lw=0.6)
            ax.set_title(fam, fontsize=9)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("δ = L − L_BF16(N, D)")
            ax.legend(loc="best")
        fig.tight_layout()
    caption = (f"Quantization error δ against {xlabel} per precision family (points: runs, observed δ = loss − "
               f"fitted BF16 law; lines: the fitted δ = k·D^γD·(log₂ G)^γG/N^γN at the runs' other inputs). "
               "Chen et al. 2025 find δ falling with N and rising with D and G.")
    return fig, caption


def delta_vs_N(result: FitResult, runs: pd.DataFrame | None = None) -> tuple[Figure, str]:
    return _against(result, runs, "N", "N (non-embedding parameters)")


def delta_vs_D(result: FitResult, runs: pd.DataFrame | None = None) -> tuple[Figure, str]:
    return _against(result, runs, "D", "D (training tokens)")


def delta_vs_G(result: FitResult, runs: pd.DataFrame | None = None) -> tuple[Figure, str]:
    return _against(result, runs, "G", "G (group size; per row: the width)")


def observed_vs_fitted(result: FitResult, runs: pd.DataFrame | None = None) -> tuple[Figure, str]:
    from quest_lab.analysis import data

    df = result.frame if runs is None else runs
    if df is None:
        raise ValueError("a stored fit has no runs: pass the runs frame (analysis.data.load_store/load_csv)")
    df = data.normalise(df) if "label" not in df.columns else df
    df = df[df["label"].isin(set(result.labels) | {BASE_LABEL})]
    d = data.design(df, labels=result.labels)
    pred = result.model.predict(result.theta, d)
    with rc_context(STYLE):
        fig = Figure(figsize=(4.6, 4.2), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
        for i, lab in enumerate(sorted(df["label"].unique(), key=label_sort_key)):
            m = (df["label"] == lab).to_numpy()
            ax.scatter(pred[m], df["loss"].to_numpy(float)[m], s=12, label=lab,
                       color="#111111" if lab == BASE_LABEL else COLORS[i % len(COLORS)])
        lo, hi = float(min(pred.min(), df["loss"].min())), float(max(pred.max(), df["loss"].max()))
        ax.plot([lo, hi], [lo, hi], color="#999999", lw=0.8)
        ax.set_xlabel("fitted loss")
        ax.set_ylabel("observed loss")
        ax.legend(loc="upper left", ncol=2)
        fig.tight_layout()
    rel = np.abs(pred / df["loss"].to_numpy(float) - 1)
    caption = (f"Observed against fitted loss (qat law, {len(df)} runs; mean |relative error| {rel.mean():.2%}, "
               f"max {rel.max():.2%}); the diagonal is a perfect fit.")
    return fig, caption


def qat_figures(result: FitResult, runs: pd.DataFrame | None = None) -> list[tuple[str, Figure, str]]:
    """Every QAT panel as (file stem, Figure, caption)."""
    out = [(f"qat_delta_{x}", *fn(result, runs)) for x, fn in (("N", delta_vs_N), ("D", delta_vs_D), ("G", delta_vs_G))]
    return out + [("qat_observed_vs_fitted", *observed_vs_fitted(result, runs))]

