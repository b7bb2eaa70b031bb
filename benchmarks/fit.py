"""Fit benchmark on Epoch AI's Chinchilla extraction (240 points after dropping the 5 worst).

    python benchmarks/fit.py            # full: 4500-start grid, varpro, bootstrap 1000 on 2 workers
    python benchmarks/fit.py --smoke    # quick: same fits, bootstrap 100, fewer sequential starts

Prints wall times, objectives and ratios measured in this one run (timings depend on the machine
and its load; compare ratios, not absolute numbers across machines).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from quest_lab.analysis import FitConfig, drop_highest_loss, fit_frame, get_law, load_csv
from quest_lab.analysis.data import design
from quest_lab.analysis.optimize import Problem, batched_lbfgs, grid_starts

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "chinchilla_epoch_svg_extracted.csv"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="quick run for CI")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    df = drop_highest_loss(load_csv(args.data), 5)
    n_boot = 100 if args.smoke else 1000
    n_seq = 20 if args.smoke else 200

    grid, t_grid = timed(lambda: fit_frame(df, FitConfig(law="chinchilla", method="grid", bootstrap=0)))
    varpro, t_varpro = timed(lambda: fit_frame(df, FitConfig(law="chinchilla", method="varpro", bootstrap=0)))

    # batched vs one-scipy-call-per-start L-BFGS on the same sample of grid starts
    law = get_law("chinchilla")
    prob = Problem(law, design(df, ()), np.ones(5, bool), np.zeros(5))
    starts = grid_starts(law.specs(), np.ones(5, bool))
    sample = starts[np.random.default_rng(0).choice(len(starts), n_seq, replace=False)]
    tol = {"maxiter": 200, "ftol": 1e-9, "gtol": 1e-8}  # the grid stage's tolerances, both ways
    batched, t_batched = timed(lambda: batched_lbfgs(prob, sample, **tol))
    seq, t_seq = timed(lambda: [minimize(prob.fun, x, jac=True, method="L-BFGS-B",
                                         bounds=list(zip(prob.lo, prob.hi)), options=tol).fun for x in sample])

    boot, t_boot = timed(lambda: fit_frame(df, FitConfig(law="chinchilla", method="varpro", bootstrap=n_boot,
                                                         workers=args.workers)))

    print(f"Chinchilla (Epoch extraction), {grid.n_runs} points; {'smoke' if args.smoke else 'full'} run")
    print(f"{'fit':<46}{'time [s]':>10}{'objective':>20}")
    print(f"{'grid: 4500 starts, batched L-BFGS + polish':<46}{t_grid:>10.2f}{grid.objective:>20.10e}")
    print(f"{'varpro: NNLS over (α, β) + polish':<46}{t_varpro:>10.2f}{varpro.objective:>20.10e}")
    print(f"{'speed-up varpro vs grid':<46}{t_grid / t_varpro:>9.1f}x   objective rel. diff "
          f"{abs(varpro.objective - grid.objective) / grid.objective:.1e}")
    print(f"{f'{n_seq} grid starts, scipy L-BFGS-B one by one':<46}{t_seq:>10.2f}{min(seq):>20.10e}")
    print(f"{f'{n_seq} grid starts, batched L-BFGS':<46}{t_batched:>10.2f}{np.min(batched[1]):>20.10e}")
    print(f"{'speed-up batched vs one by one':<46}{t_seq / t_batched:>9.1f}x")
    print(f"{f'bootstrap {n_boot}, {args.workers} workers (incl. the fit)':<46}{t_boot:>10.2f}")
    print("params (grid):", {k: round(v, 4) for k, v in grid.params.items()})
    print("80% CIs:", {k: (round(lo, 4), round(hi, 4)) for k, (lo, hi) in boot.ci.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
