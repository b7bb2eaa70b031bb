"""Design the next sweep: which runs shrink the uncertainty of a question's answer the most per unit cost.

    result = suggest(runs, candidates, parse_question("eff:label=quest:w4a4"), SuggestConfig(n=8, budget=1e18))

1. Fit the law (`fit_frame`, no bootstrap) and bind the question: a scalar target per parameter vector
   (`questions.py`).
2. Paired bootstrap: B stratified resamples of the runs, refitted (`suggest_refit.refit_replicates`);
   the target's central `ci` interval over the replicates is the uncertainty now.
3. Simulate-and-refit, the expected effect of a batch of candidate runs: in every replicate each
   candidate's log loss is simulated from a plausible truth (one of `truths` bootstrap refits, so the
   design is judged over what the runs may show, not only at the point fit) plus residual noise σ
   (robust, from the fit), with its resampling multiplicity; every replicate is refitted warm (from its
   own fit and from its truth), and the interval's width within each truth group is pooled.  Common
   random numbers: every batch sees the same replicates and draws, so batches compare paired.
4. Batches (`suggest_batches.py`), all within `n` runs and the budget, chosen greedily by expected
   narrowing per effective cost max(cost, budget left / runs left) from a cheap screen (the bootstrap
   ensemble's linear-Gaussian preposterior variance), the locally c-optimal batch at the point fit
   (Fisher information, `suggest_linear.py`), the largest affordable models and screen-weighted draws.
   All are simulated; the narrowest is improved by swapping one run at a time for the screen's best
   alternatives (kept when > 2 % narrower) until no swap helps or the time left is what the last step
   needs.  The chosen batch is then re-simulated on an independent ensemble (its narrowing without the
   selection's optimism), and the expected width run by run (the batch's prefixes) simulated.
   `max_seconds` caps the wall time after the fit, the bootstrap and the portfolio, which always run.
Batches are simulated in parallel on `workers` processes (forkserver, as the bootstrap).
"""
from __future__ import annotations

import logging
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from quest_lab.analysis import data as data_mod
from quest_lab.analysis.fit import FitConfig, FitResult, fit_frame
from quest_lab.analysis.law_base import BASE_LABEL, Design, Law, get_law
from quest_lab.analysis.questions import Question, Target
from quest_lab.analysis.suggest_batches import Batches, EnsembleScreen
from quest_lab.analysis.suggest_linear import LinearYardstick
from quest_lab.analysis.suggest_refit import Replicates, refit_replicates, stage_masks

log = logging.getLogger(__name__)
CANDIDATE_COLUMNS = ("N", "D", "w_bits", "a_bits", "label", "cost")
MIN_NOISE = 1e-4  # floor on the residual σ (log loss) used to simulate candidate losses
# a swap is kept only if it narrows the simulated width by more than this: the minimum over many noisy
# estimates is biased low (winner's curse), and a batch is not worth changing for noise
SWAP_GAIN = 0.02
FRESH_SEED = 1_000_003  # seed offset of the independent ensemble that re-checks the chosen batch


@dataclass(frozen=True)
class SuggestConfig:
    # the fit `quest-lab fit` makes by default (the law's default mode: joint, or staged for quartet/qat)
    fit: FitConfig = field(default_factory=lambda: FitConfig(law="quest", bootstrap=0))
    n: int = 8  # at most this many runs
    budget: float = math.inf  # total cost of the chosen runs, in the candidates' cost unit
    bootstrap: int = 200  # replicates of the paired bootstrap
    ci: float = 0.8  # central interval whose width is the uncertainty
    samples: int = 6  # screen-weighted random batches in the portfolio
    refine: int = 4  # alternatives tried per swap (0: keep the best portfolio batch)
    truths: int | None = None  # bootstrap draws the candidates' losses are simulated from (None: bootstrap/25, ≤ 8)
    workers: int = 2
    max_seconds: float = 50.0  # wall-time cap: swaps stop so that the prefixes end by then
    noise: float | None = None  # residual σ of log loss; None: robust estimate from the fit
    seed: int = 0

    @property
    def n_truths(self) -> int:
        return self.truths if self.truths is not None else max(1, min(8, self.bootstrap // 25))

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n={self.n!r} must be an integer >= 1 (runs to suggest)")
        if not self.budget > 0:
            raise ValueError(f"budget={self.budget!r} must be > 0")
        if self.bootstrap < 20:
            raise ValueError(f"bootstrap={self.bootstrap} must be >= 20 for an interval width to mean anything")
        if not 0 < self.ci < 1:
            raise ValueError(f"ci={self.ci} must be in (0, 1), e.g. 0.8")
        if self.truths is not None and not 1 <= self.truths <= self.bootstrap // 10:
            raise ValueError(f"truths={self.truths} must be in [1, bootstrap/10 = {self.bootstrap // 10}]")
        if self.refine < 0 or self.samples < 0 or self.workers < 1:
            raise ValueError(f"refine={self.refine} and samples={self.samples} must be >= 0, "
                             f"workers={self.workers} >= 1")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds={self.max_seconds} must be > 0")
        if self.noise is not None and not self.noise > 0:
            raise ValueError(f"noise={self.noise} must be > 0 (σ of log loss, e.g. 0.005)")


@dataclass
class Suggestion:
    question: str
    target: str
    unit: str
    law: str
    n_runs: int
    noise: float
    value: float  # target at the point fit
    ci_before: tuple[float, float]
    width_before: float
    width_after: float  # expected width with every chosen run added
    table: pd.DataFrame  # one row per chosen run, in order of choice
    chosen: list[int]  # row positions in the candidates frame
    total_cost: float
    budget: float
    n_candidates: int
    shares_before: dict[str, float] = field(default_factory=dict)  # categorical answers (best-precision)
    shares_after: dict[str, float] = field(default_factory=dict)
    refits: int = 0  # simulate-and-refit evaluations
    mode: str = ""  # the fit's mode (joint / staged), which the refits follow
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    # the chosen batch re-simulated on an independent ensemble (no selection bias): widths without and
    # with its runs; NaN when the time cap left no room
    check_before: float = math.nan
    check_after: float = math.nan

    @property
    def check_ratio(self) -> float:
        return self.check_after / self.check_before if self.check_before > 0 else math.nan

    def to_payload(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "table"}
        out["table"] = self.table.to_dict(orient="records")
        return out

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "Suggestion":
        kw = dict(payload)
        kw["table"] = pd.DataFrame(kw.get("table", []))
        kw["ci_before"] = tuple(kw["ci_before"])
        for k in ("check_before", "check_after"):  # strict JSON writes NaN as null
            kw[k] = math.nan if kw.get(k) is None else kw[k]
        return cls(**kw)


def noise_level(fit: FitResult, n_params: int) -> float:
    """Robust residual σ of log loss: 1.4826·MAD, inflated by √(n/(n−p)) for the fitted parameters."""
    r = np.asarray(fit.residuals, float)
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return max(mad * math.sqrt(len(r) / max(len(r) - n_params, 1)), MIN_NOISE)


def width(values: np.ndarray, level: float, groups: np.ndarray | None = None) -> float:
    """Central `level` interval width of `values`; with `groups`, of the values centred on their
    group's median (the spread within a group, pooled over groups)."""
    v = np.asarray(values, float)
    if groups is not None:
        v = v.copy()
        for g in np.unique(groups):
            m = (groups == g) & np.isfinite(v)
            if m.any():
                v[m] -= np.median(v[m])
    v = v[np.isfinite(v)]
    if v.size < 10:
        return math.nan
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(hi - lo)


def _shares(answers: np.ndarray) -> dict[str, float]:
    labels, counts = np.unique(answers.astype(str), return_counts=True)
    return {str(k): float(c) / len(answers) for k, c in sorted(zip(labels, counts), key=lambda t: -t[1])}


def _augment(d: Design, c: Design) -> Design:
    return Design(*(np.concatenate([getattr(d, f), getattr(c, f)]) for f in
                    ("logN", "logD", "w_bits", "a_bits", "label_idx")), d.labels, np.concatenate([d.y, c.y]),
                  np.concatenate([d.groups, c.groups]))


def _mp_context():
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload([__name__])
    return ctx


def _evaluate(job: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """Worker: target values (and categorical answers) of the replicates refitted on the runs plus
    a candidate set."""
    law_name, labels, options, question, theta_hat, d, W, Y, theta0, extra, mode, delta = job
    law = get_law(law_name, labels, options)
    theta = refit_replicates(law, d, W, Y, theta0, mode, delta, extra=extra)
    values = np.full(len(W), np.nan)
    ok = np.all(np.isfinite(theta), axis=1)
    target = question.bind(law, theta_hat)
    if ok.any():
        values[ok] = target.values(theta[ok])
    return values, (target.answers(theta[ok]) if target.answers and ok.any() else None)


class _Designer:
    """State of one suggestion: the fit, the replicates and the candidates' simulated observations."""

    def __init__(self, runs: pd.DataFrame, cands: pd.DataFrame, question: Question, config: SuggestConfig) -> None:
        self.config, self.question = config, question
        self.fit = fit_frame(runs, replace(config.fit, bootstrap=0), with_answers=False)
        self.law: Law = self.fit.model
        labels = self.fit.labels
        uses = self.law.uses_precision
        self.d = data_mod.design(self.fit.frame, labels=labels if uses else ())
        self.theta = self.fit.theta
        self.target: Target = question.bind(self.law, self.theta)
        self.noise = config.noise or noise_level(self.fit, len(self.theta))
        self.known = {BASE_LABEL, *labels} if uses else {BASE_LABEL}
        self.cands = cands.reset_index(drop=True)
        self.usable = (self.cands["label"].isin(self.known).to_numpy()
                       & np.isfinite(self.cands["cost"].to_numpy(float)) & (self.cands["cost"].to_numpy(float) > 0))
        self.cd = data_mod.design(self.cands.assign(loss=1.0, label=self.cands["label"].where(self.usable, BASE_LABEL)),
                                  labels=labels if uses else ())
        self.mode, self.delta = config.fit.mode, config.fit.huber_delta
        # the paired ensemble every batch is simulated on (common random numbers)
        self.reps = self.replicates(config.seed)
        self.theta_b = self.reps.theta_b
        self.screen = EnsembleScreen(self.target.values(self.theta_b), self._screen_predictions(), self.noise)

    def replicates(self, seed: int) -> Replicates:
        c = self.config
        return Replicates.draw(self.law, self.d, self.cd, self.theta, c.bootstrap, c.n_truths, self.mode, self.delta,
                               seed)

    def _screen_predictions(self) -> np.ndarray:
        """(B, m) log-loss predictions of the candidates over the ensemble, as far as each can move the
        estimate: under the staged fit a quantized run informs only the precision parameters, the base
        being fitted on 16-bit runs alone, so its prediction varies only through them (base held at
        the point fit); a 16-bit run, or any run of a joint fit, varies through everything."""
        preds = self.law.batch_log_predict(self.theta_b, self.cd)[0]
        quant = ~self.cd.is_base
        if self.mode == "staged" and self.law.uses_precision and quant.any():
            held = self.theta_b.copy()
            base = stage_masks(self.law)
            held[:, base] = self.theta[base]
            preds[:, quant] = self.law.batch_log_predict(held, self.cd.subset(np.nonzero(quant)[0]))[0]
        return preds

    def c_optimal(self, cost: np.ndarray, n: int, budget: float) -> list[int]:
        """The locally c-optimal batch at the point fit (`suggest_linear.py`): the Fisher-information
        view of the same question, one more member of the portfolio ([] if the linearisation fails)."""
        try:
            ys = LinearYardstick(self.law, self.theta, self.d, self.cd, self.target, self.noise, self.delta)
            return ys.oracle(np.where(self.usable, cost, np.inf), n, budget)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError) as exc:
            log.info("c-optimal batch skipped: %s", exc)
            return []

    def job(self, rows: list[int], reps: Replicates | None = None) -> tuple:
        r = reps or self.reps
        c = self.cd.subset(np.array(rows, int))
        d = _augment(self.d, c)
        B = len(r.W)
        W = np.hstack([r.W, r.M[:, rows]])
        Y = np.hstack([np.tile(self.d.y, (B, 1)), r.mu[:, rows] + self.noise * r.E[:, rows]])
        # two starts per replicate: its fit without the candidates, and the truth they were simulated from
        return (self.law.name, self.law.labels, self.law.options, self.question, self.theta, d, W, Y, r.theta_b,
                r.truth if rows else None, self.mode, self.delta)


def suggest(runs: pd.DataFrame, candidates: pd.DataFrame, question: Question, config: SuggestConfig) -> Suggestion:
    """Choose up to `config.n` candidates (columns N, D, w_bits, a_bits, label, cost; optional key,
    size) within `config.budget`; raises ValueError / InsufficientDataError with a one-line message."""
    t0 = time.perf_counter()
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}; need {', '.join(CANDIDATE_COLUMNS)}")
    if candidates.empty:
        raise ValueError("no candidate runs: every point of the grid is already in the store")
    candidates = candidates.reset_index(drop=True)
    dz = _Designer(runs, candidates, question, config)
    notes: list[str] = []
    if (~dz.usable).any():
        unknown = sorted(set(candidates.loc[~candidates["label"].isin(dz.known), "label"]))
        notes.append(f"{int((~dz.usable).sum())} candidate(s) skipped: no cost, or precisions without fitted "
                     f"runs ({', '.join(unknown) or 'none'}): run a few of those first")
    cost = candidates["cost"].to_numpy(float)
    batches = Batches(dz.screen, dz.usable, cost, candidates["N"].to_numpy(float), candidates["D"].to_numpy(float),
                      config.n, config.budget)
    rng = np.random.default_rng(config.seed + 1)
    pool = None
    if config.workers > 1:
        pool = ProcessPoolExecutor(max_workers=config.workers, mp_context=_mp_context())
    run = (lambda jobs: list(pool.map(_evaluate, jobs))) if pool else (lambda jobs: [_evaluate(j) for j in jobs])
    simulated: dict[tuple[int, ...], tuple[float, np.ndarray | None]] = {}

    rounds = lambda k: -(-k // config.workers)  # noqa: E731  (parallel rounds for k batches)
    round_s = [0.0]  # wall time of one round of parallel simulations, as last measured

    def sim(todo: list[list[int]]) -> list[float]:
        new = [b for b in dict.fromkeys(tuple(sorted(b)) for b in todo if b) if b not in simulated]
        ts = time.perf_counter()
        for b, (values, answers) in zip(new, run([dz.job(list(b)) for b in new])):
            simulated[b] = (width(values, config.ci, dz.reps.groups), answers)
        if new:
            round_s[0] = (time.perf_counter() - ts) / rounds(len(new))
        return [simulated[tuple(sorted(b))][0] if b else simulated[()][0] for b in todo]

    def out_of_time(then: int = 0) -> bool:
        """Would `then` more rounds of simulations end past `max_seconds`?"""
        return time.perf_counter() - t0 + round_s[0] * then > config.max_seconds

    origin: dict[tuple[int, ...], str] = {}
    check = (math.nan, math.nan)
    try:
        values0, answers0 = run([dz.job([])])[0]  # the width now, refitted like the batches (paired)
        simulated[()] = (w0 := width(values0, config.ci, dz.reps.groups), answers0)
        # 1. a portfolio: the screen's greedy batch, the largest affordable models, screen-weighted draws
        portfolio = {"screen greedy": batches.screen_batch(), "largest affordable": batches.largest_batch(),
                     "c-optimal at the fit": dz.c_optimal(cost, config.n, config.budget)}
        for k in range(config.samples):
            portfolio[f"screen-weighted draw {k + 1}"] = batches.sampled_batch(rng)
        for name, b in portfolio.items():
            origin.setdefault(tuple(sorted(b)), name)
        widths = sim([b for b in portfolio.values()])
        best, w_best = min(zip(portfolio.values(), widths), key=lambda t: t[1])
        # 2. improve by swaps: one run at a time replaced by the screen's best alternatives
        passes_without_gain, i = 0, 0
        reserve = rounds(config.n - 1) + rounds(config.refine)  # the prefixes after one more swap round
        while config.refine and best and not out_of_time(reserve) and passes_without_gain < len(best):
            trials = batches.swaps(best, i % len(best), config.refine)
            widths = sim(trials) if trials else []
            k = int(np.argmin(widths)) if trials else -1
            if k >= 0 and widths[k] < w_best * (1 - SWAP_GAIN):
                best, w_best, passes_without_gain = trials[k], widths[k], 0
                origin.setdefault(tuple(sorted(best)), f"swap of run {i % len(best) + 1}")
            else:
                passes_without_gain += 1
            i += 1
        if config.refine and best and passes_without_gain < len(best):
            notes.append(f"time cap ({config.max_seconds:g} s): swaps stopped after {i} "
                         f"(the portfolio is always simulated)")
        if best and not w_best < w0:
            notes.append("no batch of candidates is expected to narrow the CI; nothing suggested")
            best = []
        best = batches.order(best)
        # 3. the chosen batch re-simulated on a fresh ensemble: the narrowest of many noisy simulated
        # widths is biased low (winner's curse), an independent draw is not
        if best and not out_of_time(2):
            fresh = dz.replicates(config.seed + FRESH_SEED)
            (v0, _), (v1, _) = run([dz.job([], fresh), dz.job(best, fresh)])
            check = (width(v0, config.ci, fresh.groups), width(v1, config.ci, fresh.groups))
        elif best:
            notes.append("time cap: the chosen batch was not re-simulated on a fresh ensemble")
        # 4. expected width run by run (the batch's prefixes, most valuable first), as time allows
        if len(best) > 1 and not out_of_time(rounds(len(best) - 1)):
            sim([best[:k] for k in range(1, len(best))])
        elif len(best) > 1:
            notes.append("time cap: the expected width run by run was not simulated (only the batch's)")
    finally:
        if pool is not None:
            pool.shutdown()
    how = origin.get(tuple(sorted(best)), "")
    rows_out: list[dict[str, Any]] = []
    before = w0
    for k, pick in enumerate(best):
        after = simulated.get(tuple(sorted(best[:k + 1])), (math.nan, None))[0]
        row = candidates.iloc[pick]
        delta = f"{(after - before) / w0:+.1%} of the CI width" if np.isfinite(after) else "not simulated alone"
        share = f", {cost[pick] / config.budget:.0%} of the budget" if math.isfinite(config.budget) else ""
        rows_out.append({
            "step": k + 1, "candidate": str(row.get("key", pick)), "size": str(row.get("size", "")),
            "N": float(row["N"]), "D": float(row["D"]), "label": str(row["label"]), "cost": float(cost[pick]),
            "ci_width_before": before, "ci_width_after": after,
            "why": f"{delta}{share}; in the narrowest simulated batch ({how})",
        })
        before = after if np.isfinite(after) else before
    categorical = dz.target.answers is not None
    lo, hi = np.nanpercentile(dz.target.values(dz.theta_b), [50 * (1 - config.ci), 50 * (1 + config.ci)])
    return Suggestion(
        question=question.spec(), target=dz.target.description, unit=dz.target.unit, law=dz.law.name,
        n_runs=dz.d.n, noise=dz.noise, value=float(dz.target.values(dz.theta)[0]), ci_before=(float(lo), float(hi)),
        width_before=w0, width_after=w_best if best else w0, table=pd.DataFrame(rows_out), chosen=best,
        total_cost=float(cost[best].sum()) if best else 0.0, budget=config.budget, n_candidates=int(dz.usable.sum()),
        shares_before=_shares(dz.target.answers(dz.theta_b)) if categorical else {},
        shares_after=_shares(simulated[tuple(sorted(best))][1]) if categorical and best else {},
        refits=len(simulated), mode=dz.mode, elapsed_s=time.perf_counter() - t0, notes=notes,
        check_before=check[0], check_after=check[1])
