"""Fit a registered law to a run table: staged (16-bit base first, then precision terms) or joint.

    result = fit_frame(df, FitConfig(law="quest", bootstrap=200))

Base stage: every start of the law's grid (Chinchilla: 4500) optimised together by batched
L-BFGS, the best few polished by scipy L-BFGS-B; or `method="varpro"`: NNLS for A, B, E over a
grid of exponents, then the same polish (Chinchilla-form bases only).  Precision stage: the base
is held fixed and the precision parameters start from their (shared) grid.  `mode="joint"` then
frees everything, starting from the staged optimum.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quest_lab.analysis import data as data_mod
from quest_lab.analysis.cost import COST_MODELS, DEFAULT_RATES, CostModel, cost_models, validate_rates
from quest_lab.analysis.law_base import Design, InsufficientDataError, Law, ParamSpec, get_law, load_laws
from quest_lab.analysis.settings import HUBER_DELTA, METHODS, MODES
from quest_lab.analysis.optimize import SCREEN_ITER, Problem, grid_starts, huber, perturbed, varpro_starts

SCREEN_BUDGET = 1_000_000  # joint screen: starts × runs per L-BFGS step (4,500 starts up to 222 runs)

log = logging.getLogger(__name__)

# payload key of each precision-parameter kind ("eff[quest:w4a4]" -> payload["eff"]["quest:w4a4"])
EFF_KEYS = {"eff": "eff", "effN": "eff", "effD": "eff_D"}


@dataclass(frozen=True)
class FitConfig:
    law: str = "quest"
    method: str = "grid"  # "grid" (full start grid) or "varpro" (variable projection)
    # "joint" (global search over all parameters) or "staged" (biased on collinear base runs); None: the
    # law's default (joint; quartet: staged, the Quartet authors' procedure)
    mode: str | None = None
    bootstrap: int = 200  # resamples for the CIs; 0 = none
    ci: float = 0.8  # central interval level (0.8 = Epoch AI's 80% intervals)
    seed: int = 0
    workers: int = 2  # processes for the bootstrap
    holdout_largest: bool = False
    huber_delta: float = HUBER_DELTA
    budgets: tuple[tuple[str, float], ...] = ()  # (cost model, budget) answers are asked for; others: defaults
    hw_rates: tuple[tuple[float, float], ...] = DEFAULT_RATES  # train_flops: (bits, relative matmul cost)
    law_options: tuple[tuple[str, float], ...] = ()  # (name, value) the law takes, e.g. ("effD_max", 2.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hw_rates", validate_rates(self.hw_rates))
        for name, value in self.budgets:
            if name not in COST_MODELS:
                raise ValueError(f"budget for cost model {name!r}: unknown; allowed: {', '.join(COST_MODELS)}")
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"budget {name}={value!r} must be a positive finite number, e.g. {name}=1e18")
        laws = load_laws()
        if self.law not in laws:
            raise ValueError(f"law={self.law!r} is unknown; allowed: {', '.join(sorted(laws))}")
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown; allowed: {', '.join(METHODS)}")
        object.__setattr__(self, "law_options", tuple(sorted(laws[self.law].resolve_options(
            dict(self.law_options)).items())))
        if self.mode is None:
            object.__setattr__(self, "mode", laws[self.law].default_mode)
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is unknown; allowed: {', '.join(MODES)}")
        if self.method == "varpro" and not laws[self.law].chinchilla_base:
            raise ValueError(f"method='varpro' needs a Chinchilla-form base; the {self.law} law has none (use grid)")
        if self.bootstrap < 0:
            raise ValueError(f"bootstrap={self.bootstrap} must be >= 0")
        if not 0 < self.ci < 1:
            raise ValueError(f"ci={self.ci} must be in (0, 1), e.g. 0.8 or 0.95")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers} must be >= 1")
        if not self.huber_delta > 0:
            raise ValueError(f"huber_delta={self.huber_delta} must be > 0")


@dataclass
class FitResult:
    law: str
    formula: str
    params: dict[str, float]  # every parameter, public values ("A", "alpha", "eff[quest:w4a4]", …)
    theta: np.ndarray  # internal values, law.specs() order
    labels: tuple[str, ...]
    objective: float
    residuals: np.ndarray  # log L_pred − log L_obs, one per run
    r2: float  # in loss space
    n_runs: int
    config: FitConfig
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    samples: np.ndarray | None = None  # bootstrap parameter draws (public), (B, p)
    holdout: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    frame: pd.DataFrame | None = None  # the runs fitted (with `label`, `pred`)
    answers: dict[str, Any] | None = None  # per cost model: best precision at each budget (answers.py)
    evidence: dict[str, Any] | None = None  # identifiability checks and verdict (evidence.py)
    extras: dict[str, Any] | None = None  # law-specific results (qat: the weight/activation decomposition)

    def cost_models(self) -> dict[str, CostModel]:
        return cost_models(rates=self.config.hw_rates)

    @property
    def model(self) -> Law:
        return get_law(self.law, self.labels, dict(self.config.law_options))

    def scalars(self) -> dict[str, float]:
        return {k: v for k, v in self.params.items() if "[" not in k}

    def eff(self, kind: str = "eff") -> dict[str, float]:
        """Precision parameters of one payload kind ('eff' or 'eff_D') keyed by label."""
        out = {}
        for name, value in self.params.items():
            parsed = self.model.precision_label_of(name)
            if parsed and EFF_KEYS.get(parsed[0]) == kind:
                out[parsed[1]] = value
        return out

    def family_params(self) -> dict[str, float]:
        """Per-precision parameters that are not efficiencies (qat: "k[absmax:w4a4]", "gammaN[…]", …)."""
        law = self.model
        return {name: value for name, value in self.params.items()
                if (parsed := law.precision_label_of(name)) and parsed[0] not in EFF_KEYS}

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready: {"law", "params", "eff", "ci", "objective", "n_runs", …}."""
        payload: dict[str, Any] = {
            "law": self.law, "formula": self.formula, "params": self.scalars(), "eff": self.eff("eff"),
            "ci": {k: [float(lo), float(hi)] for k, (lo, hi) in self.ci.items()},
            "objective": self.objective, "n_runs": self.n_runs, "r2": self.r2,
            "labels": list(self.labels), "ci_level": self.config.ci, "bootstrap": self.config.bootstrap,
            "method": self.config.method, "mode": self.config.mode, "huber_delta": self.config.huber_delta,
            "holdout": self.holdout, "warnings": self.warnings, "elapsed_s": round(self.elapsed_s, 3),
            "cost_models": {name: m.describe() for name, m in self.cost_models().items()},
            "answers": self.answers, "evidence": self.evidence, "law_options": dict(self.config.law_options),
        }
        if self.extras is not None:
            payload["extras"] = self.extras
        if self.family_params():
            payload["precision_params"] = self.family_params()
        if self.eff("eff_D"):
            payload["eff_D"] = self.eff("eff_D")
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "FitResult":
        """Rebuild (without residuals/samples) from a stored payload, e.g. for `report`."""
        labels = tuple(payload.get("labels") or sorted(payload.get("eff", {})))
        options = dict(payload.get("law_options") or {})
        law = get_law(payload["law"], labels, options)
        params = dict(payload["params"])
        for name in law.param_names:
            parsed = law.precision_label_of(name)
            if parsed and parsed[0] in EFF_KEYS:
                params[name] = payload.get(EFF_KEYS[parsed[0]], {}).get(parsed[1], np.nan)
            elif parsed:
                params[name] = (payload.get("precision_params") or {}).get(name, np.nan)
        theta = law.from_public(params)
        rates = (payload.get("cost_models") or {}).get("train_flops", {}).get("params", {}).get("rates")
        config = FitConfig(law=payload["law"], bootstrap=int(payload.get("bootstrap", 0)),
                           ci=float(payload.get("ci_level", 0.8)), method=payload.get("method", "grid"),
                           mode=payload.get("mode", "staged"),  # fits stored before joint became the default
                           huber_delta=float(payload.get("huber_delta", HUBER_DELTA)),
                           hw_rates=tuple(tuple(r) for r in rates) if rates else DEFAULT_RATES,
                           law_options=tuple(options.items()))
        return cls(law=law.name, formula=law.formula, params=law.to_public(theta), theta=theta, labels=labels,
                   objective=float(payload.get("objective", np.nan)), residuals=np.array([]),
                   r2=float(payload.get("r2", np.nan)), n_runs=int(payload.get("n_runs", 0)), config=config,
                   ci={k: tuple(v) for k, v in payload.get("ci", {}).items()}, holdout=payload.get("holdout"),
                   warnings=list(payload.get("warnings", [])), answers=payload.get("answers"),
                   evidence=payload.get("evidence"), extras=payload.get("extras"))

    def predict(self, N, D, label: str | None = None, w_bits: float = 16, a_bits: float = 16,
                group=None) -> np.ndarray:
        """Predicted loss at (N, D) for a precision label (None / 'bf16' = full precision); `group` = G
        (default: the label's group size; per row: unknown unless given)."""
        dummy = Design(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, int), self.labels, np.zeros(0))
        d = dummy.with_inputs(N, D, label, w_bits, a_bits, group)
        return self.model.predict(self.theta, d).reshape(np.shape(np.broadcast_arrays(N, D)[0]))


# -- the fitting procedure --------------------------------------------------------------------
def _stage_masks(law: Law) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    specs = law.specs()
    base = np.array([s.stage == "base" for s in specs])
    neutral = np.array([s.neutral if s.neutral is not None else s.grid[0] for s in specs], float)
    return base, ~base, neutral


def fit_design(law: Law, d: Design, config: FitConfig, weights: np.ndarray | None = None,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """Best internal theta and its objective (docs/design.md §5).

    staged: base parameters on the full-precision runs (precision terms neutral), then the precision
    parameters on all runs with the base fixed.  Biased when the base runs cannot separate N from D
    (one tokens-per-parameter line, as in every paper ladder): kept as an option and as a start.
    joint (default): all parameters together, by a global search whose starts are the staged optimum
    (plus jitter), the law's own structural starts (`Law.joint_starts`, e.g. variable projection) and
    every point of the base grid with the precision parameters at their staged values.
    """
    base, prec, theta = _stage_masks(law)
    delta = config.huber_delta
    w_all = np.ones(d.n) if weights is None else weights
    rng = rng or np.random.default_rng(config.seed)
    specs = law.specs()
    # 1. base parameters on the full-precision runs, precision terms neutral
    brows = np.nonzero(d.is_base)[0] if law.uses_precision else np.arange(d.n)
    bprob = Problem(law, d.subset(brows), base, theta, delta, w_all[brows])
    starts = varpro_starts(bprob.d) if config.method == "varpro" else grid_starts(specs, base)
    theta, f = bprob.solve(starts)
    if not (prec.any() and law.uses_precision):
        return theta, f
    # 2. precision parameters with the base fixed, one independent block at a time (the law's
    #    `precision_blocks`: e.g. one per scheme, as the Quartet authors fit them), from the law's grid
    #    plus its structural starts
    extra = law.precision_starts(d, theta)
    for params, rows in law.precision_blocks(d):
        free = np.zeros(len(specs), bool)
        free[params] = True
        starts = np.vstack([grid_starts(specs, free), extra[:, free]]) if len(extra) else grid_starts(specs, free)
        theta, _ = Problem(law, d.subset(rows), free, theta, delta, w_all[rows]).solve(starts)
    f = float((huber(law.log_predict(theta, d)[0] - d.y, delta) * w_all).sum())
    if config.mode == "staged":
        return theta, f
    # 3. joint: global search over all parameters; the base grid is subsampled (seeded) only where
    #    starts × runs would exceed SCREEN_BUDGET residuals per step (thousands of runs)
    free = np.ones(len(specs), bool)
    grid = grid_starts(specs, base)
    if len(grid) * d.n > SCREEN_BUDGET:
        grid = grid[np.sort(rng.choice(len(grid), max(SCREEN_BUDGET // d.n, 64), replace=False))]
    screen = np.tile(theta, (len(grid), 1))
    screen[:, base] = grid
    pool = np.vstack([perturbed(theta, specs, free, 4, rng), law.joint_starts(d), screen])
    jtheta, jf = Problem(law, d, free, theta, delta, w_all).solve(pool, screen_iter=SCREEN_ITER)
    return (jtheta, jf) if jf <= f else (theta, f)


def at_bounds(law: Law, theta: np.ndarray) -> list[tuple[ParamSpec, float, str]]:
    """(spec, internal value, side) of every parameter within 1e-6 of its span from a bound."""
    out = []
    for s, t in zip(law.specs(), theta):
        span = s.upper - s.lower
        if (t - s.lower) < 1e-6 * span:
            out.append((s, float(t), "lower"))
        elif (s.upper - t) < 1e-6 * span:
            out.append((s, float(t), "upper"))
    return out


def _bound_warnings(law: Law, theta: np.ndarray) -> list[str]:
    return [f"{s.name} = {s.public(t):.4g} is at its {side} bound; the data do not pin it down"
            for s, t, side in at_bounds(law, theta)]


def ci_bound_warnings(law: Law, ci: dict[str, tuple[float, float]], level: float) -> list[str]:
    """CIs whose end lies on a parameter bound: at least (1 − level)/2 of the bootstrap refits ended on
    the bound, so that end of the interval is set by the bound, not by the data (every law)."""
    out = []
    for s in law.specs():
        if s.name not in ci:
            continue
        lo, hi = ci[s.name]
        for side, end, bound in (("lower", lo, s.lower), ("upper", hi, s.upper)):
            if not np.isfinite(end) or (s.log and end <= 0):
                continue
            if abs(s.internal(end) - bound) < 1e-6 * (s.upper - s.lower):
                out.append(f"{s.name}: {level:.0%} CI [{lo:.4g}, {hi:.4g}] touches its {side} bound "
                           f"{s.public(bound):.4g}; that end is set by the bound, not by the data")
    return out


def fit_frame(df: pd.DataFrame, config: FitConfig, with_answers: bool = True) -> FitResult:
    """Validate `df` (normalised run table), fit, bootstrap, hold out, answer (per cost model) and
    assess the evidence; raises InsufficientDataError."""
    from quest_lab.analysis.bootstrap import bootstrap_samples, intervals

    t0 = time.perf_counter()
    law_cls = load_laws()[config.law]
    df = data_mod.normalise(df) if "label" not in df.columns else df
    options = dict(config.law_options)
    probe = law_cls(tuple(sorted(set(df["label"]) - {data_mod.BASE_LABEL})) if law_cls.uses_precision else (), options)
    df = data_mod.validate(df, config.law, len(probe.specs()), law_cls.uses_precision)
    d = data_mod.design(df)
    law = law_cls(d.labels if law_cls.uses_precision else (), options)
    if not law_cls.uses_precision:
        d = data_mod.design(df, labels=())
    law.check_design(d)
    theta, f = fit_design(law, d, config)
    logp = law.log_predict(theta, d)[0]
    pred = np.exp(logp)
    loss = np.exp(d.y)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant losses: R² undefined (NaN → null in JSON)
        r2 = 1.0 - float(((loss - pred) ** 2).sum() / ((loss - loss.mean()) ** 2).sum())
    warnings = _bound_warnings(law, theta)
    for w in warnings:
        log.info("%s law: %s", config.law, w)  # the CLI prints result.warnings
    result = FitResult(law=law.name, formula=law.formula, params=law.to_public(theta), theta=theta,
                       labels=law.labels, objective=f, residuals=logp - d.y, r2=r2, n_runs=d.n, config=config,
                       warnings=warnings, frame=df.assign(pred=pred))
    if config.bootstrap:
        result.samples = bootstrap_samples(law, d, theta, config)
        result.ci = intervals(law, result.samples, config.ci)
        ci_warnings = ci_bound_warnings(law, result.ci, config.ci)
        for w in ci_warnings:
            log.info("%s law: %s", config.law, w)
        result.warnings += ci_warnings
    result.extras = law.extras(theta, d, result.samples, config.ci)
    if config.holdout_largest:
        result.holdout = holdout_largest(df, config)
    if with_answers:
        from quest_lab.analysis.answers import build_answers
        from quest_lab.analysis.evidence import assess

        result.answers = build_answers(result, df, result.cost_models(), config.budgets)
        result.evidence = assess(result, df, result.answers)
    result.elapsed_s = time.perf_counter() - t0
    return result


def holdout_largest(df: pd.DataFrame, config: FitConfig) -> dict[str, Any]:
    """Refit without the largest model size; relative error of the prediction on it."""
    n_max = df["N"].max()
    train, test = df[df["N"] < n_max], df[df["N"] == n_max]
    try:
        sub = fit_frame(train.reset_index(drop=True), FitConfig(
            law=config.law, method=config.method, mode=config.mode, bootstrap=0, seed=config.seed,
            huber_delta=config.huber_delta, law_options=config.law_options), with_answers=False)
    except InsufficientDataError as exc:
        return {"N": float(n_max), "n_runs": 0, "note": f"cannot refit without the largest N: {exc}"}
    known = test[test["label"].isin(set(sub.labels) | {data_mod.BASE_LABEL})]
    if known.empty:
        return {"N": float(n_max), "n_runs": 0, "note": "no held-out run has a precision seen in training"}
    groups = known["G"] if "G" in known.columns else [None] * len(known)
    pred = np.array([float(sub.predict(n, dd, lab, w, a, g)) for n, dd, lab, w, a, g in
                     zip(known["N"], known["D"], known["label"], known["w_bits"], known["a_bits"], groups)])
    rel = (pred - known["loss"].to_numpy()) / known["loss"].to_numpy()
    return {"N": float(n_max), "n_runs": int(len(known)), "mean_abs_rel_error": float(np.mean(np.abs(rel))),
            "max_abs_rel_error": float(np.max(np.abs(rel))), "params": sub.scalars()}

