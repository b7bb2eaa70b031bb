"""Sweep overhead: wall time of a sweep vs the ideal (sum of trial times / concurrency).

    python benchmarks/sweep.py                      # sweeps/smoke.yaml, real train(), ray, 2 at once
    python benchmarks/sweep.py --executor local     # the same, sequential in-process
    python benchmarks/sweep.py --smoke              # 8 fake 1-second trials (CI: ~20 s)

Writes to a temporary store (never results.db).  Prints: Ray start-up, sweep wall time without
start-up, the sum of the trials' own wall times, the ideal = sum / concurrency, and the ratio
(goal <= 1.2).  Trial times are those the trials measured themselves under the same load.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key, value in {"RAY_AUTH_MODE": "disabled", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                   "RAY_USAGE_STATS_ENABLED": "0"}.items():
    os.environ.setdefault(key, value)

from quest_lab.run import RunConfig, RunResult  # noqa: E402
from quest_lab.store import Store  # noqa: E402
from quest_lab.sweep import load_spec, parse_spec, plan, run_sweep  # noqa: E402

FAKE_SECONDS = 1.0


def fake_timed_train(cfg: RunConfig) -> RunResult:
    """Sleeps FAKE_SECONDS and reports it as the trial's wall time (pickled by value to workers)."""
    t0 = time.perf_counter()
    time.sleep(FAKE_SECONDS)
    return RunResult(config=cfg.to_dict(), status="completed", n_params=cfg.n_params,
                     tokens=cfg.token_budget, w_bits=cfg.w_bits, a_bits=cfg.a_bits,
                     quantizer=cfg.quantizer, final_eval_loss=3.0, wall_time_s=time.perf_counter() - t0)


def smoke_sweep(store_url: str):
    doc = {"name": "bench-smoke", "base": {"corpus": "shakespeare", "tokenizer": "byte", "device": "cpu",
                                           "tokens": 1024},
           "grid": {"size": ["nano", "micro"], "bits": [2, 4, 8, 16]},
           "resources": {"cpus": 1}, "max_concurrent": 2, "store": store_url}
    return parse_spec(doc, "<bench-smoke>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=ROOT / "sweeps" / "smoke.yaml")
    ap.add_argument("--executor", choices=("ray", "local"), default="ray")
    ap.add_argument("--smoke", action="store_true", help="8 fake 1-second trials instead of real training")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        sweep = smoke_sweep(url) if args.smoke else load_spec(args.sweep)
        store = Store(url)
        the_plan = plan(sweep, store)
        conc = 1 if args.executor == "local" else min(sweep.spec.max_concurrent or 2, os.cpu_count() or 1)
        print(f"{the_plan.summary()}; executor {args.executor}, concurrency {conc}, {os.cpu_count()} cores")
        outcome = run_sweep(the_plan, store, executor=args.executor,
                            train_fn=fake_timed_train if args.smoke else None, show_progress=False,
                            storage_path=f"{tmp}/ray")
        frame = store.runs_frame(statuses=None)
        trial_sum = float(frame.wall_time_s.fillna(0).sum())
        ideal = trial_sum / conc
        work = outcome.wall_s - outcome.first_trial_s
        print(f"runs: {outcome.counts}")
        print(f"ray.init:                          {outcome.startup_s:7.1f} s")
        print(f"start-up until the first trial runs: {outcome.first_trial_s:5.1f} s  (ray.init + Tune + worker spawn)")
        print(f"sweep wall after start-up:         {work:7.1f} s")
        print(f"sum of trial times:                {trial_sum:7.1f} s  (ideal at concurrency {conc}: {ideal:.1f} s)")
        print(f"wall after start-up / ideal:       {work / ideal:7.2f}x  (goal <= 1.2x)")
        print(f"total wall / ideal:                {outcome.wall_s / ideal:7.2f}x  (start-up included)")
        store.close()


if __name__ == "__main__":
    main()
