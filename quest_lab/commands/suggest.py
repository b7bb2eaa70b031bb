"""quest-lab suggest: design the next sweep for the question a researcher asks.

    quest-lab suggest --question best-precision:memory=4e6 --budget 1e13 [--law quest] [--where FILTER]
                      [--candidates sweeps/X.yaml] [--n 8] [--out sweeps/next.yaml] [--force]

Fits the law to the stored runs, measures the question's bootstrap interval, and picks the candidate
runs (the grid's points not in the store, or a grid around the stored runs) that are expected to
narrow it most per unit cost (`quest_lab.analysis.suggest`).  Writes a sweep YAML of the chosen runs
that `quest-lab sweep` runs as usual, and prints a table: run, cost, expected CI width before/after, why.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from quest_lab.analysis.settings import HUBER_DELTA
from quest_lab.commands import bad_input, console, err_console, fail, new_app, open_store, say
from quest_lab.commands.analysis import (DEFAULT_STORE, Method, Mode, WhereOpt, _sqlite_missing, load_runs,
                                         parse_law_options, parse_rates)
from quest_lab.safe_text import display_url, json_safe

app = new_app()
DEFAULT_OUT = Path("sweeps/next.yaml")


def _header(result, budget, store: str) -> str:
    lines = [f"Suggested by `quest-lab suggest` ({result.law} law, {result.mode} fit, {result.n_runs} stored runs "
             f"in {store}).",
             f"Question: {result.question} -> {result.target}",
             f"Now: {result.value:.4g}, {result.ci_before[0]:.4g} to {result.ci_before[1]:.4g} (80% CI width "
             f"{result.width_before:.3g}); expected width with these runs: {result.width_after:.3g}"
             + (f" (re-checked on a fresh ensemble: {result.check_ratio:.0%} of now)." if math.isfinite(result.check_ratio)
                else "."),
             f"Cost: {result.total_cost:.3g} of {budget.amount:.3g} {budget.unit}.", "Runs, in order of choice:"]
    for r in result.table.itertuples(index=False):
        lines.append(f"  {r.step}. {r.size} {r.label} D={r.D:.3g}: {r.cost:.3g} {budget.unit}, CI width "
                     f"{r.ci_width_before:.3g} -> {r.ci_width_after:.3g} ({r.why})")
    return "\n".join(lines + [f"Note: {n}" for n in result.notes])


def _print(result, budget) -> None:
    table = Table(title=f"{result.target}: 80% CI width {result.width_before:.3g} now", title_justify="left")
    for col in ("#", "run", "size", "precision", "tokens", f"cost [{budget.unit}]", "CI before", "CI after", "why"):
        table.add_column(col, justify="left" if col in ("run", "size", "precision", "why") else "right")
    for r in result.table.itertuples(index=False):
        table.add_row(str(r.step), r.candidate, r.size, escape(r.label), f"{r.D:.3g}", f"{r.cost:.3g}",
                      f"{r.ci_width_before:.3g}", f"{r.ci_width_after:.3g}", escape(r.why))
    console.print(table)
    console.print(f"{len(result.chosen)} run(s), cost {result.total_cost:.3g} of {budget.amount:.3g} {budget.unit}; "
                  f"expected 80% CI width {result.width_before:.3g} -> {result.width_after:.3g}; "
                  f"{result.n_candidates} candidates, {result.refits} simulate-and-refit evaluations ({result.mode} fit), "
                  f"{result.elapsed_s:.1f} s")
    if math.isfinite(result.check_ratio):
        console.print(f"independent re-check (fresh bootstrap ensemble, no selection bias): width "
                      f"{result.check_before:.3g} -> {result.check_after:.3g} ({result.check_ratio:.0%} of now)")
    if result.shares_before:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in result.shares_before.items())
        console.print(f"best precision now (share of bootstrap replicates): {escape(shares)}")
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", markup=True)


@app.command("suggest")
def suggest_cmd(
    question: Annotated[str, typer.Option("--question", help="NAME[:key=value,...]: best-precision:memory=BITS | "
                                          "best-precision:compute=FLOPS[,cost=train_flops|bops] | eff:label=quest:w4a4 | "
                                          "extrapolate:size=800M,tokens=1e10,label=quest:w4a4.")],
    budget: Annotated[str, typer.Option("--budget", help="Total cost of the suggested runs: BF16-equivalent training "
                                        "FLOPs of the train_flops cost model (1e18), bit-operations (1e20bops), or "
                                        "GPU-hours at the store's measured speed (2.5gpu-h).")],
    law: Annotated[str, typer.Option("--law", help="Scaling law to fit (see `quest-lab fit --help`).")] = "quest",
    candidates: Annotated[Optional[Path], typer.Option("--candidates", help="Sweep YAML whose points not yet in "
                          "the store are the candidates (default: a grid around the stored runs).")] = None,
    n: Annotated[int, typer.Option("--n", help="At most this many runs.")] = 8,
    out: Annotated[Path, typer.Option("--out", help="Sweep YAML to write (its folder must exist).")] = DEFAULT_OUT,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out (and --json) if it exists.")] = False,
    store: Annotated[Optional[str], typer.Option("--store", help=f"SQLAlchemy URL of the results store "
                     f"(default: the candidates file's, else {DEFAULT_STORE}).")] = None,
    where: WhereOpt = None,
    method: Annotated[Method, typer.Option("--method", help="As `quest-lab fit --method`.")] = Method("grid"),  # type: ignore[arg-type]
    mode: Annotated[Optional[Mode], typer.Option("--mode", help="As `quest-lab fit --mode` (default: the law's: "
                    "joint; quartet, qat: staged); the bootstrap refits follow it.")] = None,  # type: ignore[valid-type]
    huber_delta: Annotated[float, typer.Option("--huber-delta", help="As `quest-lab fit --huber-delta`.")] = HUBER_DELTA,
    law_option: Annotated[Optional[list[str]], typer.Option("--law-option", help="NAME=VALUE (repeatable), as "
                          "`quest-lab fit --law-option`.")] = None,
    hw_rates: Annotated[Optional[str], typer.Option("--hw-rates", help="train_flops rate table for the runs' "
                        "costs, as `quest-lab fit --hw-rates`.")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates.")] = 200,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Wall-time cap on simulate-and-refit: "
                           "the swaps stop so that the run ends by then (fit, bootstrap and portfolio always run).")] = 50.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Processes for the refits.")] = min(2, os.cpu_count() or 1),
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the suggestion as JSON here "
                         "(`quest-lab report --suggestion` shows it as the 'what to run next' panel).")] = None,
) -> None:
    """Suggest the runs that narrow an answer most per unit cost.

    Writes them as a sweep file that `quest-lab sweep` runs as usual.
    """
    from quest_lab.analysis import candidates as cand
    from quest_lab.analysis.fit import FitConfig
    from quest_lab.analysis.law_base import InsufficientDataError, load_laws
    from quest_lab.analysis.questions import parse_question
    from quest_lab.analysis.suggest import SuggestConfig, suggest
    from quest_lab.outputs import check_file_target

    laws = load_laws()
    if law not in laws:
        fail(f"--law {law!r} is unknown; allowed: {', '.join(sorted(laws))}")
    try:
        q = parse_question(question)
        the_budget = cand.parse_budget(budget)
        # the fit `quest-lab fit` makes with the same options (the law's default mode unless --mode)
        fit_cfg = FitConfig(law=law, method=method.value, mode=mode.value if mode else None, bootstrap=0,
                            seed=seed, huber_delta=huber_delta, hw_rates=parse_rates(hw_rates),
                            law_options=parse_law_options(law_option or []))
        config = SuggestConfig(fit=fit_cfg, n=n, budget=the_budget.amount, bootstrap=bootstrap,
                               max_seconds=max_seconds, seed=seed, workers=workers)
    except ValueError as exc:
        fail(str(exc))
    sweep = None
    if candidates is not None:
        from quest_lab.sweep.spec import load_spec

        with bad_input():
            sweep = load_spec(candidates)
    url = store or (sweep.spec.store if sweep is not None else DEFAULT_STORE)
    missing = _sqlite_missing(url)
    if missing:
        fail(f"no results database at {missing}; run `quest-lab sweep SPEC.yaml` first or pass --store URL")
    results = open_store(url)
    with bad_input():  # never over the store's files, nor over a file without --force; before any work
        for path in [out] + ([json_path] if json_path is not None else []):
            check_file_target(path, force=force, protected=results.files())
    runs = load_runs(url, None, where, None)
    try:
        with bad_input():
            if candidates is not None:
                configs, run_ids = cand.from_sweep(sweep, results.statuses)
            else:
                configs, run_ids = cand.around_store(list(results.run_configs(runs["run_id"]).values()),
                                                     results.statuses)
            pool = cand.frame(configs, run_ids, runs, the_budget, fit_cfg.hw_rates)
    except (InsufficientDataError, ValueError) as exc:
        fail(str(exc))
    if pool.empty:
        fail("every candidate run is already in the store; give a larger grid with --candidates")
    cheapest = float(pool["cost"].min())
    if cheapest > the_budget.amount:
        fail(f"--budget {budget} affords no candidate: the cheapest costs {cheapest:.3g} {the_budget.unit}")
    try:
        result = suggest(runs, pool, q, config)
    except ValueError as exc:  # InsufficientDataError included
        fail(str(exc))
    _print(result, the_budget)
    if not result.chosen:
        fail("no run is expected to narrow the interval; nothing written", code=1)
    chosen = pool.iloc[result.chosen]
    extra = {k: sweep.spec.model_dump()[k] for k in cand.SWEEP_KEYS if k in sweep.spec.model_fields_set} if sweep else {}
    doc = cand.sweep_document(cand.sweep_name(out), list(chosen["config"]), url, extra)
    cand.check_document(doc, list(chosen["key"]), str(out))
    with bad_input():
        cand.write_sweep(out, doc, _header(result, the_budget, display_url(url)), force=force,
                         protected=results.files())
        if json_path is not None:
            payload = json_safe(result.to_payload())
            cand.write_text(json_path, json.dumps(payload, indent=2, allow_nan=False, default=float) + "\n",
                            force=force, protected=results.files())
    say(f"wrote {out}: `quest-lab sweep {out}` runs the {len(chosen)} suggested run(s)")
