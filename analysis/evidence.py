"""Evidence behind a fit's answers: identifiability checks and a one-line verdict.

Checks (docs/design.md §5):
- fewer than 3 distinct model sizes or token budgets: an exponent, its amplitude and E are three
  unknowns for two points;
- N and D collinear (all but at most two runs within COLLINEAR_TOL of one log D–log N line, e.g. one
  tokens-per-parameter line):
  among all runs nothing separates the N term from the D term; among the full-precision runs alone
  the staged fit's base is biased (the joint fit separates them through the other runs);
- parameters at a bound, CIs touching a bound, CIs wider than the value;
- answers outside the observed N, D or cost range, on the search bound, or contradicted by a run;
- the law's own checks (`Law.evidence_checks`; qat: each precision family's exponents need two or
  more distinct N, D and group sizes among its runs).

Verdict: "not identifiable" when a blocking check fails (few sizes or budgets, all runs collinear, an
exponent α/β at a bound or with a CI wider than its value, the staged base on collinear runs, an
answer a run contradicts); else "extrapolated" when an answer leaves the observed range; else
"supported".  Separately, a scale note when every model is smaller than the QuEST paper's smallest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import theilslopes

from quest_lab.analysis.fit import FitResult, at_bounds
from quest_lab.analysis.law_base import BASE_LABEL

PAPER_SMALLEST_N = 30_482_560  # the QuEST paper's smallest model, "30M" (docs/design.md §2)
COLLINEAR_TOL = 0.05  # a run more than 5 % off the fitted log D–log N line is "off the line"
MIN_OFF_LINE = 3  # fewer runs than this off the line: N and D are collinear
DISTINCT_RTOL = 0.01  # values within 1 % count as one model size / token budget
EXPONENTS = ("alpha", "beta")  # every derived answer hinges on these: their problems block
VERDICTS = ("supported", "extrapolated", "not identifiable")


@dataclass(frozen=True)
class Check:
    name: str
    severity: str  # "blocking" or "caveat"
    message: str


def distinct(values) -> np.ndarray:
    """Distinct values up to DISTINCT_RTOL (sorted cluster representatives)."""
    v = np.sort(np.asarray(values, float))
    if not v.size:
        return v
    keep = np.concatenate([[True], np.diff(np.log(v)) > np.log1p(DISTINCT_RTOL)])
    return v[keep]


def collinearity(runs: pd.DataFrame) -> tuple[bool, float, int]:
    """(collinear, D/N at the geometric mean, runs off the line): log D against log N by a robust
    (Theil–Sen) line; the runs are collinear when fewer than MIN_OFF_LINE of them lie more than
    COLLINEAR_TOL off it, i.e. when at most two runs would have to separate the N and D terms."""
    x, y = np.log(runs["N"].to_numpy(float)), np.log(runs["D"].to_numpy(float))
    ratio = float(np.exp(np.mean(y - x))) if len(x) else float("nan")
    if len(distinct(runs["N"])) < 3:
        return False, ratio, len(x)
    slope, icpt = theilslopes(y, x)[:2]
    off = int(np.sum(np.abs(y - (slope * x + icpt)) > COLLINEAR_TOL))
    return off < MIN_OFF_LINE, ratio, off


def _fmt_list(values) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def data_checks(runs: pd.DataFrame, mode: str, uses_precision: bool) -> list[Check]:
    out = []
    for col, what, terms in (("N", "model sizes", "A, α and E"), ("D", "token budgets", "B, β and E")):
        vals = distinct(runs[col])
        if len(vals) < 3:
            out.append(Check(f"few_{col}", "blocking", f"only {len(vals)} distinct {what} ({_fmt_list(vals)}): "
                                                       f"{terms} cannot be told apart"))
    all_line, ratio, off = collinearity(runs)
    if all_line:
        but = f"all but {off} of the {len(runs)} runs lie" if off else "every run lies"
        out.append(Check("collinear_all", "blocking", f"{but} on one tokens-per-parameter line (D/N ≈ {ratio:.3g}): "
                                                      "the N and D terms cannot be separated"))
    base = runs[runs["label"] == BASE_LABEL]
    base_line, bratio, _ = collinearity(base) if len(base) else (False, np.nan, 0)
    if uses_precision and base_line and not all_line:
        if mode == "staged":
            out.append(Check("collinear_base", "blocking", f"the full-precision runs lie on one tokens-per-parameter "
                                                           f"line (D/N ≈ {bratio:.3g}) and the staged fit takes its base "
                                                           "from them alone: the base, hence every eff, is biased; use "
                                                           "the default joint fit"))
        else:
            out.append(Check("collinear_base", "caveat", f"the full-precision runs lie on one tokens-per-parameter line "
                                                         f"(D/N ≈ {bratio:.3g}); the joint fit separates N from D "
                                                         "through the quantized runs"))
    if mode == "staged" and uses_precision:
        out.append(Check("staged", "caveat", "staged fit: base on full-precision runs first, precision terms after; "
                                             "biased when those runs cannot separate N from D"))
    return out


def parameter_checks(result: FitResult) -> list[Check]:
    out = []
    for spec, t, side in at_bounds(result.model, result.theta):
        sev = "blocking" if spec.name in EXPONENTS else "caveat"
        out.append(Check(f"at_bound:{spec.name}", sev, f"{spec.name} = {spec.public(t):.4g} is at its {side} "
                                                       "bound: the data do not pin it down"))
    for name, (lo, hi) in result.ci.items():
        value = result.params.get(name)
        if value is None or not np.isfinite([lo, hi, value]).all():
            continue
        if hi - lo > abs(value):
            sev = "blocking" if name in EXPONENTS else "caveat"
            out.append(Check(f"ci_wide:{name}", sev, f"{name} = {value:.4g} has a {result.config.ci:.0%} CI "
                                                     f"[{lo:.4g}, {hi:.4g}] wider than its value"))
    out += [Check("ci_at_bound", "caveat", w) for w in result.warnings if "CI" in w and "bound" in w]
    return out


def law_checks(result: FitResult, runs: pd.DataFrame) -> list[Check]:
    """The law's own identifiability checks on the fitted runs (none for most laws)."""
    from quest_lab.analysis.data import design

    law = result.model
    if not result.labels or "label" not in runs.columns:
        return []
    known = runs[runs["label"].isin(set(result.labels) | {BASE_LABEL})]
    return [Check(*c) for c in law.evidence_checks(design(known, labels=result.labels))]


def answer_checks(answers: dict[str, Any]) -> tuple[list[Check], list[str]]:
    """Blocking checks for contradicted answers; the list of extrapolation reasons."""
    blocking, extrapolated = [], []
    for name, block in (answers or {}).items():
        for ans in block.get("answers", []):
            where = f"{name} at {ans['budget']:.3g} {ans.get('unit', '')}".rstrip()
            if ans.get("contradicted_by"):
                blocking.append(Check(f"contradicted:{name}", "blocking",
                                      f"{where}: {ans['contradicted_by']}: the law does not describe the runs there"))
            for reason in ans.get("reasons", []):
                extrapolated.append(f"{where}: {reason}")
    return blocking, extrapolated


def scale_note(runs: pd.DataFrame) -> str | None:
    n_max = float(runs["N"].max())
    if n_max >= PAPER_SMALLEST_N:
        return None
    return (f"The largest model here has N = {n_max:.3g} non-embedding parameters, {PAPER_SMALLEST_N / n_max:.0f}× "
            f"smaller than the QuEST paper's smallest ({PAPER_SMALLEST_N / 1e6:.0f}M): these models are too small for "
            "the paper's conclusions (e.g. that 4 bits is optimal); they neither confirm nor refute them.")


def assess(result: FitResult, runs: pd.DataFrame, answers: dict[str, Any] | None) -> dict[str, Any]:
    """The verdict with its reasons and every check (JSON-ready; stored in the fit payload)."""
    checks = data_checks(runs, result.config.mode, bool(result.labels)) + parameter_checks(result)
    checks += law_checks(result, runs)
    contradicted, extrapolated = answer_checks(answers or {})
    checks += contradicted
    blocking = [c.message for c in checks if c.severity == "blocking"]
    if blocking:
        verdict, because = "not identifiable", blocking
    elif extrapolated:
        verdict, because = "extrapolated", extrapolated
    else:
        verdict = "supported"
        because = ["every exponent is identified and every answer lies within the observed N, D and cost range"]
    return {"verdict": verdict, "because": because, "extrapolations": extrapolated,
            "checks": [asdict(c) for c in checks], "scale_note": scale_note(runs),
            "observed": {"N": [float(runs["N"].min()), float(runs["N"].max())],
                         "D": [float(runs["D"].min()), float(runs["D"].max())],
                         "distinct_N": int(len(distinct(runs["N"]))), "distinct_D": int(len(distinct(runs["D"]))),
                         "runs": int(len(runs))}}
