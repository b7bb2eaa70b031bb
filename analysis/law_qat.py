"""Chen et al. 2025, "Scaling Law for Quantization-Aware Training" (arXiv 2505.14302):

    L(N, D, G) = A/N^α + B/D^β + E + δ_p(N, D, G),   δ_p = k·D^γD·(log₂ G)^γG / N^γN

The BF16 Chinchilla law plus a quantization error δ_p per precision p that falls with the model size N
(γN > 0 in the paper), rises with the training tokens D (γD > 0) and with coarser groups G (γG > 0;
log₂ G so that δ → 0 as G → 1).  Here:
- **Precision families.**  One δ per *family*: the precision label without its group size
  ("absmax:w4a4g32", "absmax:w4a4g64" and "absmax:w4a4" share the family "absmax:w4a4"); G is an input,
  the run's group size (`analysis.data`: a per-row scale is one group spanning the row, G = K, the model
  width; the paper's text available to us does not say how it encodes per channel, so this is ours).
  Each family has k (fitted as log k), γN, γD and — only when its runs have at least two group settings
  — γG (with one setting (log₂ G)^γG is a constant that k absorbs).
- **Weight/activation decomposition.**  Weight-only (W4A16) and activation-only (W16A4) runs are
  families of their own, so each component has its own k and γ's, as in the paper's δ_W and δ_A; where
  a W+A family (W4A4) and both its components were run, `extras()` compares δ_W + δ_A with the W4A4
  error at the W4A4 runs (fitted and observed), with bootstrap intervals.
- **Signs.**  The paper fits positive exponents; we let γN, γD, γG take either sign (bounds ±4), so a
  direction the data contradict shows as a negative exponent, not as a parameter stuck on a bound.
- **Procedure** (default mode `staged`): L_BF16 on the BF16 runs (the Chinchilla grid), then each
  family's δ with the base fixed (δ_p is defined against the BF16 law), from a start grid plus a
  log-linear least-squares start on the observed errors L − L_BF16 > 0.  `--mode joint` frees all.
"""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import (Design, InsufficientDataError, Law, ParamSpec, chinchilla_specs,
                                         register_law, softmax_terms)
from quest_lab.quant.specs import OFF_BITS, parse_precision_label, precision_label

EXP_BOUND = 4.0  # γN, γD, γG ∈ [−4, 4]
LOGK_BOUNDS = (-100.0, 100.0)
LOGK_GRID = (-10.0, -5.0, 0.0, 5.0)
EXP_GRID = (0.0, 0.5, 1.0)
KINDS = ("k", "gammaN", "gammaD", "gammaG")


def family_of(label: str) -> str:
    """The precision family of a label: its label without the group size."""
    p = parse_precision_label(label)
    return precision_label(p.quantizer, p.w_bits, p.a_bits, None, p.g_bits)


def log_log2(G: np.ndarray) -> np.ndarray:
    """log(log₂ G), the regressor of γG (NaN where G is unknown or below 2)."""
    G = np.asarray(G, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(G >= 2, np.log(np.log2(np.where(G >= 2, G, 2.0))), np.nan)


@register_law("qat")
class QatLaw(Law):
    formula = "L = A/N^α + B/D^β + E + k·D^γD·(log₂ G)^γG / N^γN"
    default_mode = "staged"

    def __init__(self, labels=(), options=None) -> None:
        super().__init__(labels, options)
        fams = [family_of(lab) for lab in self.labels]
        self.families = tuple(dict.fromkeys(fams))
        settings = {f: {parse_precision_label(lab).group_size for lab, g in zip(self.labels, fams) if g == f}
                    for f in self.families}
        self.has_gG = {f: len(settings[f]) >= 2 for f in self.families}
        specs = chinchilla_specs()
        self.cols: dict[str, dict[str, int]] = {}
        for f in self.families:
            self.cols[f] = {}
            for kind in KINDS:
                if kind == "gammaG" and not self.has_gG[f]:
                    continue
                self.cols[f][kind] = len(specs)
                if kind == "k":
                    specs.append(ParamSpec(f"k[{f}]", *LOGK_BOUNDS, LOGK_GRID, stage="precision", log=True,
                                           neutral=LOGK_BOUNDS[0]))
                else:
                    specs.append(ParamSpec(f"{kind}[{f}]", -EXP_BOUND, EXP_BOUND, EXP_GRID, stage="precision",
                                           neutral=0.0))
        self._specs = specs
        # per label: the columns of its family's parameters (-1: none)
        fam_idx = [self.families.index(f) for f in fams]
        self._col = {kind: np.array([self.cols[self.families[i]].get(kind, -1) for i in fam_idx], dtype=int)
                     for kind in KINDS}

    def specs(self) -> list[ParamSpec]:
        return list(self._specs)

    def _row_cols(self, d: Design) -> dict[str, np.ndarray]:
        quant = d.label_idx >= 0
        k = np.where(quant, d.label_idx, 0)
        if not self.labels:
            return {kind: np.full(d.n, -1) for kind in KINDS}
        return {kind: np.where(quant, col[k], -1) for kind, col in self._col.items()}

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta = self.columns(theta, 5)
        c = self._row_cols(d)
        K = len(theta)
        jac = np.zeros((K, d.n, theta.shape[1]))
        has = c["k"] >= 0
        if not has.any():
            lse, (w1, w2, w3) = softmax_terms(a - alpha * d.logN, b - beta * d.logD, e)
            w4 = np.zeros_like(w1)
        else:
            take = lambda kind: np.where(c[kind] >= 0, theta[:, np.maximum(c[kind], 0)], 0.0)  # noqa: E731
            llg = np.where(c["gammaG"] >= 0, log_log2(d.groups), 0.0)
            t4 = take("k") + take("gammaD") * d.logD - take("gammaN") * d.logN + take("gammaG") * llg
            t4 = np.where(has, t4, -np.inf)
            lse, (w1, w2, w3, w4) = softmax_terms(a - alpha * d.logN, b - beta * d.logD, e, t4)
            for kind, x in (("k", np.ones(d.n)), ("gammaN", -d.logN), ("gammaD", d.logD), ("gammaG", llg)):
                rows = np.nonzero(c[kind] >= 0)[0]
                jac[:, rows, c[kind][rows]] = (w4 * x)[:, rows]
        jac[..., 0], jac[..., 1], jac[..., 2] = w1, w2, w3
        jac[..., 3], jac[..., 4] = -w1 * d.logN, -w2 * d.logD
        return lse, jac

    # -- δ itself ---------------------------------------------------------------------------------
    def delta(self, theta: np.ndarray, family: str, N, D, G=None) -> np.ndarray:
        """δ_family(N, D, G) for one parameter vector (internal values); G ignored without γG."""
        cols = self.cols[family]
        N, D, G = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float),
                                      np.asarray(np.nan if G is None else G, float))
        t = theta[cols["k"]] + theta[cols["gammaD"]] * np.log(D) - theta[cols["gammaN"]] * np.log(N)
        if "gammaG" in cols:
            t = t + theta[cols["gammaG"]] * log_log2(G)
        return np.exp(t)

    def base_loss(self, theta: np.ndarray, N, D) -> np.ndarray:
        """The BF16 law A/N^α + B/D^β + E."""
        A, B, E = np.exp(theta[:3])
        return A / np.asarray(N, float) ** theta[3] + B / np.asarray(D, float) ** theta[4] + E

    def family_rows(self, d: Design, family: str) -> np.ndarray:
        members = [i for i, lab in enumerate(self.labels) if family_of(lab) == family]
        return np.nonzero(np.isin(d.label_idx, members))[0]

    # -- fitting hooks ------------------------------------------------------------------------------
    def check_design(self, d: Design) -> None:
        for f in self.families:
            if not self.has_gG[f]:
                continue
            rows = self.family_rows(d, f)
            bad = rows[~(d.groups[rows] >= 2)]
            if bad.size:
                raise InsufficientDataError(
                    f"qat law: {bad.size} run(s) of {f} have no group size G >= 2 (rows {list(bad[:5])}); G is "
                    "needed where a precision has several group sizes: give group_size, or for per-row runs a "
                    "registered size (G = its width) or group_size = the row length K")

    def precision_blocks(self, d: Design) -> list[tuple[np.ndarray, np.ndarray]]:
        """One block per family: its δ parameters, fitted on its runs with the base fixed."""
        return [(np.array(sorted(self.cols[f].values())), self.family_rows(d, f)) for f in self.families
                if self.family_rows(d, f).size]

    def precision_starts(self, d: Design, theta: np.ndarray) -> np.ndarray:
        """One start: per family, least squares of log(L_obs − L_BF16) on (1, log D, −log N, log log₂ G)
        over its runs whose observed error is positive (log δ is linear in the parameters)."""
        start = np.array(theta, float)
        specs = self.specs()
        for f in self.families:
            rows = self.family_rows(d, f)
            N, D = np.exp(d.logN[rows]), np.exp(d.logD[rows])
            err = np.exp(d.y[rows]) - self.base_loss(theta, N, D)
            ok = err > 0
            kinds = [k for k in KINDS if k in self.cols[f]]
            if ok.sum() <= len(kinds):
                continue
            X = np.stack([np.ones(ok.sum()), -d.logN[rows][ok], d.logD[rows][ok]]
                         + ([log_log2(d.groups[rows][ok])] if "gammaG" in self.cols[f] else []), axis=1)
            if not np.isfinite(X).all():
                continue
            coef = np.linalg.lstsq(X, np.log(err[ok]), rcond=None)[0]
            for kind, v in zip(kinds, coef):
                j = self.cols[f][kind]
                start[j] = np.clip(v, specs[j].lower, specs[j].upper)
        return start[None, :]

    def evidence_checks(self, d: Design) -> list[tuple[str, str, str]]:
        """Per family: γN needs >= 2 model sizes, γD >= 2 token budgets, γG >= 2 group settings among its
        runs (blocking below 2, a caveat at exactly 2: an exponent through two points has no check)."""
        from quest_lab.analysis.evidence import distinct

        out = []
        for f in self.families:
            rows = self.family_rows(d, f)
            axes = [("gammaN", "model sizes", np.exp(d.logN[rows])), ("gammaD", "token budgets", np.exp(d.logD[rows]))]
            if self.has_gG[f]:
                axes.append(("gammaG", "group sizes", d.groups[rows][np.isfinite(d.groups[rows])]))
            else:
                out.append((f"qat_no_gammaG:{f}", "caveat", f"{f} was run at one group setting: γG is not fitted "
                                                            "for it (k absorbs (log₂ G)^γG)"))
            for kind, what, vals in axes:
                n = len(distinct(vals)) if len(vals) else 0
                if n < 2:
                    out.append((f"qat_few:{kind}[{f}]", "blocking", f"{kind}[{f}] cannot be identified: its runs "
                                                                    f"have {n} distinct {what}"))
                elif n == 2:
                    out.append((f"qat_few:{kind}[{f}]", "caveat", f"{kind}[{f}] rests on 2 distinct {what}"))
        return out

    def extras(self, theta: np.ndarray, d: Design, samples: np.ndarray | None, level: float) -> dict | None:
        from quest_lab.analysis.qat_decomposition import decomposition

        return {"families": {f: {"gammaG_fitted": self.has_gG[f], "runs": int(self.family_rows(d, f).size)}
                             for f in self.families},
                "decomposition": decomposition(self, theta, d, samples, level)}


def components(family: str) -> tuple[str, str] | None:
    """(weight-only, activation-only) families of a W+A family "q:w4a4" → ("q:w4a16", "q:w16a4");
    None unless both sides are quantized and the gradients are 16-bit."""
    p = parse_precision_label(family)
    if p.w_bits >= OFF_BITS or p.a_bits >= OFF_BITS or p.g_bits < OFF_BITS:
        return None
    return (precision_label(p.quantizer, p.w_bits, OFF_BITS), precision_label(p.quantizer, OFF_BITS, p.a_bits))
