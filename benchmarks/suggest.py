"""Does `quest-lab suggest` pick better runs than random or "just train bigger"?  Synthetic ground truth.

    python benchmarks/suggest.py              # full: 20 seeds × 3 questions (tens of minutes on 2 cores)
    python benchmarks/suggest.py --smoke      # quick: 1 seed, the extrapolate question, small bootstraps
    python benchmarks/suggest.py --bounds     # the c-optimal oracle's bound in other settings (seconds)
    python benchmarks/suggest.py --rescore suggest20.csv --outcomes 3   # expected widths of those designs

Truth: the QuEST law with Chinchilla-like base parameters and plausible efficiencies, losses with
0.5 % multiplicative noise (the residual level of published fits).  Grid: the paper's sizes 30M–800M ×
10/20/50/100/200 tokens per parameter × BF16, QuEST W2A2/W3A3/W4A4/W8A8 (150 runs).  The initial data are
the 45 runs at 30M–100M and 20–100 tokens/parameter; the other 105 are the candidates, each costing its
training FLOPs under the cost registry's `train_flops` model (BF16-equivalent: forward at the rate of
max(w, a) bits, backward in full precision; what `suggest --budget 1e18` counts).  The fit is the one
`quest-lab fit` makes by default (the quest law's default mode, joint).  Per seed and question:

- suggested: `suggest(n=K, budget=the initial grid's cost)`;
- random: K' runs drawn at random among those still affordable, total cost ≤ the suggested runs' cost;
- largest: K' runs, each the largest model (then the most tokens) still affordable, same total cost;

(K' = the number of runs suggested).  The chosen runs' losses come from the truth plus noise (the same
draw for a run whatever design picks it), the law is refitted and the question's 80 % bootstrap
interval measured (200 replicates).  Printed: widths and the ratios suggested/random and
suggested/largest per seed, their medians, and the wall time.

The realised widths are noisy (one outcome of the new runs, one bootstrap), so every design is also
measured with the linearised yardstick at the truth (`analysis/suggest_linear.py`: the Fisher-information
width of the fit's Huber M-estimator, no noise), next to the c-optimal *oracle* batch under the same limits
(n, budget): the best any design could do to first order if it knew the truth.  Its ratio to random and
largest-first batches of its own cost bounds what any method can reach in this setting.  `--verbose`
prints each design's runs; `--out F.csv` writes one row per seed and question.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from quest_lab.analysis import FitConfig, fit_frame, get_law, normalise
from quest_lab.analysis.data import design
from quest_lab.analysis.questions import parse_question
from quest_lab.analysis.suggest import SuggestConfig, suggest
from quest_lab.analysis.suggest_linear import LinearYardstick
from quest_lab.analysis.suggest_refit import question_interval
from quest_lab.analysis.cost import get_cost_model
from quest_lab.sizes import non_embedding_params

TRUE = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28,
        "eff[quest:w2a2]": 0.45, "eff[quest:w3a3]": 0.70, "eff[quest:w4a4]": 0.85, "eff[quest:w8a8]": 0.98}
NOISE = 0.005
PRECISIONS = [("bf16", 16, 16), ("quest", 2, 2), ("quest", 3, 3), ("quest", 4, 4), ("quest", 8, 8)]
SIZES = ["30M", "50M", "100M", "200M", "430M", "800M"]
TOKENS_PER_PARAM = [10, 20, 50, 100, 200]
INITIAL = {"sizes": ["30M", "50M", "100M"], "tokens_per_param": [20, 50, 100]}
FLOPS = get_cost_model("train_flops")
QUESTIONS = {
    "eff": "eff:label=quest:w4a4",
    "extrapolate": "extrapolate:size=1.6B,tokens=1.6e11,label=quest:w4a4",
    "best-precision": f"best-precision:memory={16 * non_embedding_params('800M'):.6g}",
}


def ground_truth(seed: int, outcome: int = 0) -> pd.DataFrame:
    """The full grid with noisy losses from the true law (one noise draw per run and seed; `outcome` > 0:
    another draw, for the expected width of a design over what its runs may show)."""
    rows = []
    for size in SIZES:
        N = non_embedding_params(size)
        for tpp in TOKENS_PER_PARAM:
            for q, w, a in PRECISIONS:
                D = tpp * N
                rows.append(dict(key=f"{size}/{q}:w{w}a{a}/{tpp}", size=size, N=float(N), D=float(D), tpp=tpp,
                                 quantizer=q, w_bits=w, a_bits=a, cost=float(FLOPS.cost(N, D, w, a))))
    grid = normalise(pd.DataFrame(rows).assign(loss=1.0))
    d = design(grid)
    law = get_law("quest", d.labels)
    clean = law.predict(law.from_public(TRUE), d)
    rng = np.random.default_rng(seed if outcome == 0 else [seed, outcome])
    return grid.assign(loss=clean * np.exp(rng.normal(0.0, NOISE, len(grid))))


def affordable(cands: pd.DataFrame, k: int, total: float, pick) -> list[int]:
    """k candidates with total cost ≤ `total`: each step `pick(rows)` chooses among those that leave
    room for the remaining slots at the cheapest cost."""
    cost = cands["cost"].to_numpy(float)
    chosen: list[int] = []
    left = total
    for step in range(k):
        rest = np.array([i for i in range(len(cands)) if i not in chosen])
        cheapest = np.sort(cost[rest])
        reserve = cheapest[:k - step - 1].sum() if k - step - 1 > 0 else 0.0
        ok = rest[cost[rest] <= left - reserve + 1e-9 * total]
        if ok.size == 0:
            break
        i = int(pick(ok))
        chosen.append(i)
        left -= cost[i]
    return chosen


def largest_first(cands: pd.DataFrame):
    def pick(ok: np.ndarray) -> int:
        sub = cands.iloc[ok]
        return int(ok[np.lexsort((-sub["D"].to_numpy(), -sub["N"].to_numpy()))[0]])

    return pick


def run_seed(seed: int, question: str, args, fit: FitConfig) -> dict:
    grid = ground_truth(seed)
    init = grid["size"].isin(INITIAL["sizes"]) & grid["tpp"].isin(INITIAL["tokens_per_param"])
    runs, cands = grid[init].reset_index(drop=True), grid[~init].reset_index(drop=True)
    q = parse_question(question)
    budget = float(runs["cost"].sum()) * args.budget_factor
    t0 = time.perf_counter()
    res = suggest(runs, cands.drop(columns=["loss"]), q, SuggestConfig(
        fit=fit, n=args.n, budget=budget, bootstrap=args.bootstrap, refine=args.refine, samples=args.samples,
        workers=args.workers, max_seconds=args.max_seconds, seed=seed))
    t_suggest = time.perf_counter() - t0
    k, spent = len(res.chosen), res.total_cost
    rng = np.random.default_rng(10_000 + seed)
    designs = {"suggested": res.chosen,
               "random": affordable(cands, k, spent, lambda ok: rng.choice(ok)),
               "largest": affordable(cands, k, spent, largest_first(cands))}
    ref = fit_frame(runs, fit, with_answers=False).theta  # every design's interval is of the question bound at the initial fit
    out = {"seed": seed, "question": question.split(":")[0], "runs": k, "cost": spent, "suggest_s": t_suggest,
           "predicted_ratio": res.width_after / res.width_before, "checked_ratio": res.check_ratio}
    for name, rows in designs.items():
        data = pd.concat([runs, cands.iloc[rows]], ignore_index=True)
        iv = question_interval(data, q, fit, bootstrap=args.eval_bootstrap, seed=20_000 + seed, reference=ref)
        out[f"w_{name}"] = iv["width"]
        out[f"cost_{name}"] = float(cands.iloc[rows]["cost"].sum())
        out[f"runs_{name}"] = " ".join(sorted(cands.iloc[rows]["key"]))
    out["w_initial"] = question_interval(runs, q, fit, bootstrap=args.eval_bootstrap, seed=20_000 + seed,
                                         reference=ref)["width"]
    out["vs_random"] = out["w_suggested"] / out["w_random"]
    out["vs_largest"] = out["w_suggested"] / out["w_largest"]
    out.update(linear_yardstick(runs, cands, q, designs, args, budget, rng, fit.huber_delta))
    return out


def true_yardstick(runs: pd.DataFrame, cands: pd.DataFrame, q, delta: float) -> LinearYardstick:
    """Fisher-information widths of question `q` at the true law, for `runs` plus rows of `cands`."""
    law = get_law("quest", design(pd.concat([runs, cands]).assign(loss=1.0)).labels)
    theta = law.from_public(TRUE)
    return LinearYardstick(law, theta, design(runs, labels=law.labels), design(cands.assign(loss=1.0), labels=law.labels),
                           q.bind(law, theta), NOISE, delta)


def oracle_vs_baselines(ys: LinearYardstick, cands: pd.DataFrame, n: int, budget: float, rng,
                        draws: int) -> tuple[list[int], float, float]:
    """The c-optimal oracle batch (≤ n runs within budget) and its width over that of random batches
    (median of `draws`) and of the largest-first batch, both of the oracle's own size and cost."""
    cost = cands["cost"].to_numpy(float)
    best = ys.oracle(cost, n, budget)
    k, spent, w = len(best), float(cost[best].sum()), ys.width(best)
    rand = np.median([ys.width(affordable(cands, k, spent, lambda ok: rng.choice(ok))) for _ in range(draws)])
    return best, w / rand, w / ys.width(affordable(cands, k, spent, largest_first(cands)))


def linear_yardstick(runs, cands, q, designs, args, budget, rng, delta) -> dict:
    """The same designs under the Fisher information at the truth (`suggest_linear.py`), and the
    c-optimal oracle batch with suggest's limits (n, budget) against random and largest-first batches
    of the oracle's own cost: what any design could gain here."""
    ys = true_yardstick(runs, cands, q, delta)
    out = {f"lin_{k}": ys.width(rows) for k, rows in designs.items()}
    out["lin_initial"] = ys.width([])
    best, vs_random, vs_largest = oracle_vs_baselines(ys, cands, args.n, budget, rng, draws=20)
    out.update(lin_oracle=ys.width(best), lin_oracle_vs_random=vs_random, lin_oracle_vs_largest=vs_largest,
               lin_suggested_vs_random=out["lin_suggested"] / out["lin_random"],
               lin_suggested_vs_largest=out["lin_suggested"] / out["lin_largest"],
               runs_oracle=" ".join(sorted(cands.iloc[best]["key"])))
    return out


def rescore_task(task: tuple) -> dict:
    """One seed and question of a `--out` CSV: each design's 80 % width averaged over `outcomes` draws
    of its runs' losses (the initial runs keep theirs: they are what is known)."""
    row, outcomes, eval_bootstrap = task
    fit = FitConfig(law="quest", bootstrap=0)
    seed, q = int(row["seed"]), parse_question(QUESTIONS[row["question"]])
    grid = ground_truth(seed)
    init = grid["size"].isin(INITIAL["sizes"]) & grid["tpp"].isin(INITIAL["tokens_per_param"])
    runs = grid[init].reset_index(drop=True)
    ref = fit_frame(runs, fit, with_answers=False).theta
    out = {"seed": seed, "question": row["question"]}
    for name in ("suggested", "random", "largest"):
        keys = str(row[f"runs_{name}"]).split()
        widths = []
        for r in range(outcomes):
            cands = ground_truth(seed, r)[~init].set_index("key")
            data = pd.concat([runs, cands.loc[keys].reset_index()], ignore_index=True)
            widths.append(question_interval(data, q, fit, bootstrap=eval_bootstrap, seed=20_000 + seed,
                                            reference=ref)["width"])
        out[f"ew_{name}"] = float(np.mean(widths))
    out["ew_vs_random"] = out["ew_suggested"] / out["ew_random"]
    out["ew_vs_largest"] = out["ew_suggested"] / out["ew_largest"]
    return out


def rescore(path: str, outcomes: int, eval_bootstrap: int, workers: int) -> None:
    """`--rescore F.csv`: the designs of an earlier `--out` run, measured by their expected width."""
    from concurrent.futures import ProcessPoolExecutor

    df = pd.read_csv(path)
    tasks = [(row, outcomes, eval_bootstrap) for _, row in df.iterrows()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(rescore_task, tasks))
    res = pd.DataFrame(rows)
    for _, r in res.iterrows():
        print(f"{r['question']:<15} seed {r['seed']:>2}: expected width suggested {r['ew_suggested']:.4g}, random "
              f"{r['ew_random']:.4g}, largest {r['ew_largest']:.4g}; ratio vs random {r['ew_vs_random']:.3f}, "
              f"vs largest {r['ew_vs_largest']:.3f}")
    print(f"\nmedian over seeds, each design's width averaged over {outcomes} outcome draws of its runs:")
    print(res.groupby("question").agg(seeds=("seed", "count"), vs_random=("ew_vs_random", "median"),
                                      vs_largest=("ew_vs_largest", "median"),
                                      below_1_random=("ew_vs_random", lambda v: int((v < 1).sum())),
                                      below_1_largest=("ew_vs_largest", lambda v: int((v < 1).sum())))
          .to_string(float_format=lambda x: f"{x:.3f}"))


BOUND_GRIDS = {  # initial grids for --bounds: sizes × tokens per parameter (× the 5 precisions)
    "45 runs: 30M-100M × 20/50/100": (["30M", "50M", "100M"], [20, 50, 100]),
    "30 runs: 30M-100M × 20/100": (["30M", "50M", "100M"], [20, 100]),
    "20 runs: 30M, 100M × 20/100": (["30M", "100M"], [20, 100]),
    "60 runs: 30M-200M × 20/50/100": (["30M", "50M", "100M", "200M"], [20, 50, 100]),
}


def bounds(fit: FitConfig) -> None:
    """`--bounds`: the c-optimal oracle's linearised width ratio to random (median of 30 draws) and
    largest-first batches of its own cost, over initial grids × K × budget: what any design could
    reach, to first order, in settings other than the benchmark's (noise-free, seconds)."""
    grid = ground_truth(0)
    print("oracle / random, oracle / largest (linearised widths at the truth; ≤ 0.67 is the issue's goal)")
    for name, (sizes, tpps) in BOUND_GRIDS.items():
        init = grid["size"].isin(sizes) & grid["tpp"].isin(tpps)
        runs, cands = grid[init].reset_index(drop=True), grid[~init].reset_index(drop=True)
        for k, factor in ((4, 1.0), (8, 0.5), (8, 1.0), (8, 2.0), (16, 2.0)):
            budget = float(runs["cost"].sum()) * factor
            cells = []
            for qname, text in QUESTIONS.items():
                ys = true_yardstick(runs, cands, parse_question(text), fit.huber_delta)
                _, vs_random, vs_largest = oracle_vs_baselines(ys, cands, k, budget, np.random.default_rng(0), draws=30)
                cells.append(f"{qname} {vs_random:.2f} / {vs_largest:.2f}")
            print(f"  {name:<31} K={k:<2} budget {factor:g}×: " + ";  ".join(cells), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="1 seed, the extrapolate question, small bootstraps (CI)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--questions", default=",".join(QUESTIONS), help=f"comma-separated of {', '.join(QUESTIONS)}")
    ap.add_argument("--n", type=int, default=8, help="runs to add (K)")
    ap.add_argument("--budget-factor", type=float, default=1.0, help="budget = this × the initial grid's cost")
    ap.add_argument("--bootstrap", type=int, default=200, help="replicates inside suggest")
    ap.add_argument("--eval-bootstrap", type=int, default=200, help="replicates of the measured intervals")
    ap.add_argument("--refine", type=int, default=4, help="alternatives tried per swap")
    ap.add_argument("--samples", type=int, default=6, help="screen-weighted batches in the portfolio")
    ap.add_argument("--max-seconds", type=float, default=50.0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--verbose", action="store_true", help="print each design's runs")
    ap.add_argument("--out", default=None, help="write one row per seed and question (CSV)")
    ap.add_argument("--rescore", default=None, metavar="F.csv",
                    help="measure the designs of an earlier --out run by their expected width (--outcomes draws)")
    ap.add_argument("--outcomes", type=int, default=3, help="outcome draws per design for --rescore")
    ap.add_argument("--bounds", action="store_true",
                    help="only the c-optimal oracle's bound over initial grids × K × budget (linearised, seconds)")
    args = ap.parse_args()
    if args.smoke:
        args.seeds, args.questions, args.n, args.bootstrap, args.eval_bootstrap = 1, "extrapolate", 3, 40, 60
        args.refine, args.samples, args.max_seconds = 2, 2, 10.0
    unknown = [q for q in args.questions.split(",") if q not in QUESTIONS]
    if unknown:
        ap.error(f"unknown question(s) {unknown}; allowed: {', '.join(QUESTIONS)}")
    fit = FitConfig(law="quest", bootstrap=0)  # `quest-lab fit`'s defaults: grid starts, the law's mode (joint)
    if args.bounds:
        bounds(fit)
        return 0
    if args.rescore:
        t0 = time.perf_counter()
        rescore(args.rescore, args.outcomes, args.eval_bootstrap, args.workers)
        print(f"wall time {time.perf_counter() - t0:.0f} s")
        return 0
    t0 = time.perf_counter()
    rows = []
    for name in args.questions.split(","):
        for seed in range(args.seeds):
            r = run_seed(seed, QUESTIONS[name], args, fit)
            rows.append(r)
            print(f"{r['question']:<15} seed {seed:>2}: {r['runs']} runs, cost {r['cost']:.3g} FLOPs; 80% CI width "
                  f"initial {r['w_initial']:.4g}, suggested {r['w_suggested']:.4g}, random {r['w_random']:.4g}, "
                  f"largest {r['w_largest']:.4g}; ratio vs random {r['vs_random']:.3f}, vs largest "
                  f"{r['vs_largest']:.3f} (suggest {r['suggest_s']:.1f} s)", flush=True)
            if args.verbose:
                print(f"    linearised widths: initial {r['lin_initial']:.4g}, suggested {r['lin_suggested']:.4g}, "
                      f"random {r['lin_random']:.4g}, largest {r['lin_largest']:.4g}, oracle {r['lin_oracle']:.4g} "
                      f"(oracle vs random {r['lin_oracle_vs_random']:.3f}, vs largest {r['lin_oracle_vs_largest']:.3f})")
                for design_name in ("suggested", "random", "largest", "oracle"):
                    print(f"    {design_name:<9} {r[f'runs_{design_name}']}", flush=True)
    df = pd.DataFrame(rows)
    wall = time.perf_counter() - t0
    if args.out:
        df.to_csv(args.out, index=False)
    print(f"\nmedian over {args.seeds} seed(s) ({'smoke' if args.smoke else 'full'} run, fit mode {fit.mode}, "
          f"K = {args.n}, budget = {args.budget_factor:g} × initial grid cost, noise {NOISE:.1%}):")
    summary = df.groupby("question").agg(
        seeds=("seed", "count"), vs_random=("vs_random", "median"), vs_largest=("vs_largest", "median"),
        frac_le_067_random=("vs_random", lambda s: float((s <= 0.67).mean())),
        frac_le_067_largest=("vs_largest", lambda s: float((s <= 0.67).mean())),
        predicted=("predicted_ratio", "median"), checked=("checked_ratio", "median"), suggest_s=("suggest_s", "median"),
        lin_vs_random=("lin_suggested_vs_random", "median"), lin_vs_largest=("lin_suggested_vs_largest", "median"),
        oracle_vs_random=("lin_oracle_vs_random", "median"), oracle_vs_largest=("lin_oracle_vs_largest", "median"))
    print(summary.to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"wall time {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
