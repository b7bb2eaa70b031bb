"""quest-lab sweep: run a grid (plus the result commands: runs | export | import, and db upgrade | status)."""
from __future__ import annotations

import logging
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.table import Table

from quest_lab.commands import bad_input, console, db, fail, open_store, results, say
from quest_lab.sweep.claims import DEFAULT_TTL_S, MIN_TTL_S
from quest_lab.sweep.executors import load_executors
from quest_lab.sweep.grid import DEFAULT_MAX_GRID

app = typer.Typer()
app.add_typer(results.app)
app.add_typer(db.app, name="db", help="Store schema: show its revision, upgrade it.")
log = logging.getLogger(__name__)

# `auto` plus every registered executor (quest_lab/sweep/*_executor.py)
ExecutorChoice = Enum("ExecutorChoice", {n: n for n in ("auto", *load_executors())}, type=str)  # type: ignore[misc]


@app.command("sweep")
def sweep_command(
    file: Annotated[Path, typer.Argument(help="Sweep YAML (see sweeps/).")],
    executor: Annotated[ExecutorChoice, typer.Option(  # type: ignore[valid-type]
        help="Where trials run: ray (Ray Tune), local (sequential, in-process) or auto "
             "(ray when more than one trial can run at once or --address is given).")] = ExecutorChoice("auto"),  # type: ignore[assignment]
    store: results.StoreOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (total / done / to run) and exit.")] = False,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed", help="Also run the grid's failed runs again.")] = False,
    address: Annotated[Optional[str], typer.Option(help="Address of an existing Ray cluster, HOST:PORT (implies --executor ray).")] = None,
    progress: Annotated[Optional[bool], typer.Option(
        "--progress/--no-progress", help="Show the progress bar (default: on a terminal).")] = None,
    max_grid: Annotated[int, typer.Option(
        "--max-grid", help=f"Refuse grids with more points than this (default {DEFAULT_MAX_GRID:,}).")] = DEFAULT_MAX_GRID,
    claim_ttl: Annotated[float, typer.Option(
        "--claim-ttl", help="Seconds without a heartbeat after which another driver may retake this driver's "
                            f"runs (default {DEFAULT_TTL_S:g}, at least {MIN_TTL_S:g}).")] = DEFAULT_TTL_S,
    train_fn: Annotated[Optional[str], typer.Option(
        hidden=True, help="Train function 'module:function' (testing, custom trainers).")] = None,
) -> None:
    """Run a sweep file: every grid point not already completed/diverged in the store (drivers may share it)."""
    from quest_lab.sweep import expand, load_spec
    from quest_lab.sweep.executors import get_executor, import_train_fn

    if not max_grid >= 1:
        fail(f"--max-grid {max_grid} must be >= 1")
    if not (math.isfinite(claim_ttl) and claim_ttl >= MIN_TTL_S):
        fail(f"--claim-ttl {claim_ttl:g}: the claim TTL must be a number of seconds >= {MIN_TTL_S:g}")
    with bad_input():
        sweep = load_spec(file)
        expand(sweep, max_grid)  # every point resolved and checked before the store is touched
    if address and executor.value != "auto" and not get_executor(executor.value).remote:
        fail(f"--address needs an executor that runs on a cluster; drop --executor {executor.value}")
    fn = None
    if train_fn is not None:
        try:
            fn = import_train_fn(train_fn)
        except ValueError as e:
            fail(str(e))
    with open_store(store or sweep.spec.store) as store_handle, bad_input():  # closed (WAL checkpointed) on exit
        try:
            _plan_and_run(sweep, store_handle, executor=executor.value, dry_run=dry_run, rerun_failed=rerun_failed,
                          address=address, train_fn=fn, progress=progress, max_grid=max_grid, claim_ttl=claim_ttl)
        except KeyboardInterrupt:  # before any run started: every store write is one transaction
            _interrupted(sweep.name, file)


def _plan_and_run(sweep, store_handle, *, executor: str, dry_run: bool, rerun_failed: bool,
                  address: Optional[str], train_fn, progress: Optional[bool], max_grid: int, claim_ttl: float) -> None:
    from quest_lab.sweep import SweepSetupError, plan, run_sweep

    try:
        the_plan = plan(sweep, store_handle, rerun_failed=rerun_failed, max_points=max_grid)
    except ValueError as e:  # SpecError, a corpus that cannot be read for its identity
        fail(str(e))
    say(the_plan.summary())
    if dry_run:
        _print_plan(the_plan)
        return
    show = console.is_terminal if progress is None else progress
    try:
        outcome = run_sweep(the_plan, store_handle, executor=executor, address=address, train_fn=train_fn,
                            show_progress=show, claim_ttl_s=claim_ttl)
    except (SweepSetupError, ValueError) as e:
        fail(str(e))
    if not the_plan.to_run:
        return
    c = outcome.counts
    startup = f", ray start-up {outcome.startup_s:.1f} s" if outcome.startup_s else ""
    others = f", {outcome.skipped} held or finished by another driver" if outcome.skipped else ""
    lost = f", {outcome.lost} result(s) dropped (claim taken over)" if outcome.lost else ""
    say(f"sweep {sweep.name}: {c.get('completed', 0)} completed, {c.get('diverged', 0)} diverged, "
        f"{c.get('failed', 0)} failed{others}{lost} in {outcome.wall_s:.1f} s (executor {outcome.executor}{startup})")
    if outcome.interrupted:
        _interrupted(sweep.name, sweep.path, outcome.unfinished)
    if not outcome.ok:
        say(f"{c['failed']} run(s) failed: see `quest-lab runs --sweep {sweep.name} --status failed`; "
            "`--rerun-failed` retries them", err=True)
        raise typer.Exit(1)


def _interrupted(name: str, path, unfinished: int | None = None) -> NoReturn:
    left = f"{unfinished} run(s) not finished are pending again; " if unfinished else ""
    say(f"sweep {name} interrupted: results so far are stored, {left}run `quest-lab sweep {path}` again to resume",
        err=True)
    raise typer.Exit(130)


def _print_plan(the_plan) -> None:
    from rich.text import Text

    todo = the_plan.to_run
    if not todo:
        return
    table = Table("run_id", "size", "precision", "tokens", "seed", title=f"to run ({len(todo)})")
    for r in todo[:50]:
        c = r.config
        table.add_row(*(Text(str(v)) for v in (r.run_id, c.size, c.precision_label, f"{c.token_budget:,}", c.seed)))
    console.print(table)
    if len(todo) > 50:
        say(f"... and {len(todo) - 50} more")


if __name__ == "__main__":  # pragma: no cover
    app(sys.argv[1:])
