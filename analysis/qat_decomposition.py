"""The weight/activation decomposition of the QAT law (Chen et al. 2025, arXiv 2505.14302, which splits
the W4A4 error δ_W4A4 into a weight part δ_W, from W4A16 runs, and an activation part δ_A, from W16A4
runs, each with its own k and exponents).

For every W+A family whose two components were run (e.g. "absmax:w4a4" with "absmax:w4a16" and
"absmax:w16a4"), at the W+A runs: δ_W + δ_A (each component's fitted law) against the fitted W+A error
δ_WA and the observed one, L − L_BF16(N, D).  A component fitted at one group setting (no γG) is
compared only at the W+A runs of that setting.  Ratios are of totals over those runs
(Σ(δ_W + δ_A) / Σ δ), with bootstrap intervals when the fit has bootstrap draws.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from quest_lab.quant.specs import parse_precision_label


def _settings(law, family: str) -> set:
    from quest_lab.analysis.law_qat import family_of

    return {parse_precision_label(lab).group_size for lab in law.labels if family_of(lab) == family}


def _ratios(law, theta: np.ndarray, fam: str, fw: str, fa: str, N, D, G, loss) -> dict[str, Any]:
    dw, da = law.delta(theta, fw, N, D, G), law.delta(theta, fa, N, D, G)
    dwa = law.delta(theta, fam, N, D, G)
    obs = loss - law.base_loss(theta, N, D)
    total_obs = float(obs.sum())
    return {"delta_w": dw, "delta_a": da, "delta_wa": dwa, "delta_obs": obs,
            "sum_over_fitted": float((dw + da).sum() / dwa.sum()),
            "sum_over_observed": float((dw + da).sum() / total_obs) if total_obs > 0 else float("nan")}


def decomposition(law, theta: np.ndarray, d, samples: np.ndarray | None, level: float) -> dict[str, Any]:
    """{W+A family: {"weight", "activation", "runs", "sum_over_fitted", "sum_over_observed", their CIs,
    "table"}} for every W+A family with both components; empty when the data have none."""
    from quest_lab.analysis.law_qat import components

    out: dict[str, Any] = {}
    specs = law.specs()
    thetas = None
    if samples is not None and len(samples):
        with np.errstate(all="ignore"):
            thetas = np.array([[s.internal(v) for s, v in zip(specs, row)] for row in samples])
        thetas = thetas[np.all(np.isfinite(thetas), axis=1)]
    for fam in law.families:
        comp = components(fam)
        if comp is None or not all(c in law.families for c in comp):
            continue
        fw, fa = comp
        rows = law.family_rows(d, fam)
        keep = np.ones(rows.size, bool)
        for c in comp:
            if not law.has_gG[c]:  # compare at the group setting the component was run at
                setting = _settings(law, c)
                keep &= np.array([parse_precision_label(d.labels[d.label_idx[i]]).group_size in setting for i in rows])
        rows = rows[keep]
        if not rows.size:
            out[fam] = {"weight": fw, "activation": fa, "runs": 0,
                        "note": "no W+A run at the group setting of its components"}
            continue
        N, D, G = np.exp(d.logN[rows]), np.exp(d.logD[rows]), d.groups[rows]
        loss = np.exp(d.y[rows])
        best = _ratios(law, theta, fam, fw, fa, N, D, G, loss)
        entry: dict[str, Any] = {
            "weight": fw, "activation": fa, "runs": int(rows.size),
            "sum_over_fitted": best["sum_over_fitted"], "sum_over_observed": best["sum_over_observed"],
            "table": [{"label": d.labels[d.label_idx[i]], "N": float(n), "D": float(dd),
                       "G": None if not np.isfinite(g) else float(g), "delta_w": float(w), "delta_a": float(a),
                       "delta_sum": float(w + a), "delta_wa": float(wa), "delta_obs": float(o)}
                      for i, n, dd, g, w, a, wa, o in zip(rows, N, D, G, best["delta_w"], best["delta_a"],
                                                          best["delta_wa"], best["delta_obs"])],
        }
        if thetas is not None and len(thetas):
            q = [50 * (1 - level), 50 * (1 + level)]
            with np.errstate(all="ignore"):
                draws = [_ratios(law, t, fam, fw, fa, N, D, G, loss) for t in thetas]
            for key in ("sum_over_fitted", "sum_over_observed"):
                vals = np.array([r[key] for r in draws], float)
                vals = vals[np.isfinite(vals)]
                entry[f"{key}_ci"] = [float(x) for x in np.percentile(vals, q)] if vals.size else None
        out[fam] = entry
    return out
