"""Quartet (Castro, Panferov et al. 2025, arXiv 2505.14669): L = (A/(N·effN)^α + B/(D·effD)^β)^γ + E.

True to the authors' fit (IST-DASLab/Quartet, `notebooks/plots.ipynb` at commit 5b9d74c: the base
cell with `bf16_model`/`residuals`, then `fit_forward_model`, `fit_backward_model` and
`fit_forward_backward_model`):
- **Forward and backward.**  effN belongs to the forward precision, effD to the backward (gradient)
  precision.  A run's label "q:w4a4b4" splits into the forward label "q:w4a4" (→ `effN[q:w4a4]`) and the
  backward label "q:b4" (→ `effD[q:b4]`, `quest_lab.quant.specs.forward_label`/`backward_label`); a side
  at 16 bits has no parameter, its eff is pinned to 1 (forward-only runs: effD = 1; backward-only runs:
  effN = 1), as in the authors' `forward_model`/`backward_model`.  Runs sharing a forward (or backward)
  label share its eff.
- **Procedure** (the law's default mode, `staged`): the base (A, α, B, β, E, γ) on the full-precision
  runs (16-bit forward and backward) from the authors' start grid a, b ∈ {0, 5, 10}, α, β ∈ {0, 0.5, 1},
  e ∈ {0, 0.5}, γ ∈ {0, 0.5, 1} (486 starts; γ = 0 is taken at its bound 0.01); then, with the base
  fixed, each scheme's effs from the starts effN, effD ∈ {0.5, 1} (`precision_blocks`: one block per
  group of labels that share an eff).  Objective: the sum of Huber(δ) on log residuals — what their
  `least_squares(loss="huber", f_scale=δ)` minimises; they use δ = 1e-4 (`fit --huber-delta 1e-4`).
  `--mode joint` refits everything together instead.
- **Bounds.**  The authors' fits are unbounded, and their effD of full-FP4 schemes exceeds 1 (1.07–1.16
  in the paper's later version), so effs are not capped at 1: they lie in [effN_min, effN_max] and
  [effD_min, effD_max], law options (`fit --law-option effD_max=1.05`) stored with the fit and shown
  in the report.  Defaults (1e-6, 10) never bind on the authors' runs (their smallest fitted eff is
  1.9e-4).
The base is not of the Chinchilla form (γ), so variable projection does not apply.
"""
from __future__ import annotations

import numpy as np

from quest_lab.analysis.law_base import Design, Law, LawOption, ParamSpec, register_law, softmax_terms
from quest_lab.quant.specs import backward_label, forward_label

EFF_STARTS = (0.5, 1.0)  # the authors' starts for effN and effD (fit_forward_backward_model)
EFF_DEFAULTS = (1e-6, 10.0)


def _grid(lo: float, hi: float) -> tuple[float, ...]:
    return tuple(sorted({min(max(g, lo), hi) for g in EFF_STARTS}))


@register_law("quartet")
class QuartetLaw(Law):
    formula = "L = (A/(N·effN)^α + B/(D·effD)^β)^γ + E"
    chinchilla_base = False
    default_mode = "staged"  # the authors' procedure: base on full-precision runs, then each scheme's effs
    OPTIONS = {
        "effN_min": LawOption(EFF_DEFAULTS[0], "lower bound of every effN"),
        "effN_max": LawOption(EFF_DEFAULTS[1], "upper bound of every effN (the authors: none)"),
        "effD_min": LawOption(EFF_DEFAULTS[0], "lower bound of every effD"),
        "effD_max": LawOption(EFF_DEFAULTS[1], "upper bound of every effD (the authors: none; their "
                                               "full-FP4 effD is 1.07–1.16)"),
    }

    def __init__(self, labels=(), options=None) -> None:
        super().__init__(labels, options)
        for side in ("effN", "effD"):
            lo, hi = self.options[f"{side}_min"], self.options[f"{side}_max"]
            if not 0 < lo < hi:
                raise ValueError(f"quartet law: {side}_min={lo:g} and {side}_max={hi:g} must satisfy "
                                 f"0 < {side}_min < {side}_max")
        fwd = [forward_label(lab) for lab in self.labels]
        bwd = [backward_label(lab) for lab in self.labels]
        self.forward_labels = tuple(dict.fromkeys(f for f in fwd if f is not None))
        self.backward_labels = tuple(dict.fromkeys(b for b in bwd if b is not None))
        nf = len(self.forward_labels)
        # per precision label: column of its effN / effD in theta, -1 where that side is 16-bit (eff = 1)
        self._fcol = np.array([6 + self.forward_labels.index(f) if f else -1 for f in fwd], dtype=int)
        self._bcol = np.array([6 + nf + self.backward_labels.index(b) if b else -1 for b in bwd], dtype=int)
        self._specs = self._build_specs()

    def _build_specs(self) -> list[ParamSpec]:
        specs = [
            ParamSpec("A", -10.0, 60.0, (0.0, 5.0, 10.0), log=True),
            ParamSpec("B", -10.0, 60.0, (0.0, 5.0, 10.0), log=True),
            ParamSpec("E", -10.0, 3.0, (0.0, 0.5), log=True),
            ParamSpec("alpha", 0.0, 4.0, (0.0, 0.5, 1.0)),
            ParamSpec("beta", 0.0, 4.0, (0.0, 0.5, 1.0)),
            ParamSpec("gamma", 0.01, 5.0, (0.01, 0.5, 1.0)),
        ]
        o = self.options
        specs += [ParamSpec(f"effN[{lab}]", o["effN_min"], o["effN_max"], _grid(o["effN_min"], o["effN_max"]),
                            stage="precision", neutral=1.0) for lab in self.forward_labels]
        specs += [ParamSpec(f"effD[{lab}]", o["effD_min"], o["effD_max"], _grid(o["effD_min"], o["effD_max"]),
                            stage="precision", neutral=1.0) for lab in self.backward_labels]
        return specs

    def specs(self) -> list[ParamSpec]:
        return list(self._specs)

    def _cols(self, d: Design) -> tuple[np.ndarray, np.ndarray]:
        quant = d.label_idx >= 0
        k = np.where(quant, d.label_idx, 0)
        if not self.labels:
            return np.full(d.n, -1), np.full(d.n, -1)
        return np.where(quant, self._fcol[k], -1), np.where(quant, self._bcol[k], -1)

    def batch_log_predict(self, theta: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
        a, b, e, alpha, beta, gamma = self.columns(theta, 6)
        fcol, bcol = self._cols(d)
        ones = np.ones((len(theta), d.n))
        uN = np.where(fcol >= 0, theta[:, np.maximum(fcol, 0)], 1.0) if self.forward_labels else ones
        uD = np.where(bcol >= 0, theta[:, np.maximum(bcol, 0)], 1.0) if self.backward_labels else ones
        xN, xD = d.logN + np.log(uN), d.logD + np.log(uD)
        logS, (v1, v2) = softmax_terms(a - alpha * xN, b - beta * xD)
        lse, (w1, w2) = softmax_terms(gamma * logS, e)
        g = w1 * gamma  # d lse / d logS
        jac = np.zeros((len(theta), d.n, theta.shape[1]))
        jac[..., 0], jac[..., 1], jac[..., 2] = g * v1, g * v2, w2
        jac[..., 3], jac[..., 4], jac[..., 5] = -g * v1 * xN, -g * v2 * xD, w1 * logS
        rows = np.nonzero(fcol >= 0)[0]
        jac[:, rows, fcol[rows]] = (-alpha * g * v1 / uN)[:, rows]
        rows = np.nonzero(bcol >= 0)[0]
        jac[:, rows, bcol[rows]] = (-beta * g * v2 / uD)[:, rows]
        return lse, jac

    def precision_blocks(self, d: Design) -> list[tuple[np.ndarray, np.ndarray]]:
        """One block per group of labels linked by a shared effN or effD (the authors fit each scheme
        on its own runs with the base fixed; labels sharing a forward or backward label are tied)."""
        parent = list(range(len(self.labels)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for cols in (self._fcol, self._bcol):
            first: dict[int, int] = {}
            for i, c in enumerate(cols):
                if c >= 0:
                    parent[root(i)] = root(first.setdefault(int(c), i))
        out = []
        for r in sorted({root(i) for i in range(len(self.labels))}):
            members = [i for i in range(len(self.labels)) if root(i) == r]
            params = sorted({int(c) for i in members for c in (self._fcol[i], self._bcol[i]) if c >= 0})
            rows = np.nonzero(np.isin(d.label_idx, members))[0]
            if params and rows.size:
                out.append((np.array(params), rows))
        return out

    def eff_of(self, theta: np.ndarray, label: str, w_bits: float, a_bits: float) -> float:
        """The forward (parameter) efficiency effN of a label; 1 where the forward is 16-bit."""
        if label not in self.labels:
            return 1.0
        c = self._fcol[self.labels.index(label)]
        return 1.0 if c < 0 else float(theta[c])

    def eff_D_of(self, theta: np.ndarray, label: str) -> float:
        """The backward (data) efficiency effD of a label; 1 where the gradients are 16-bit."""
        if label not in self.labels:
            return 1.0
        c = self._bcol[self.labels.index(label)]
        return 1.0 if c < 0 else float(theta[c])
