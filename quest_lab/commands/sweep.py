"""quest-lab sweep | runs | export | import: run grids, list and move results."""
from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich import box
from rich.table import Table

from rich.markup import escape

from quest_lab.commands import console, err_console
from quest_lab.commands import fail as _fail
from quest_lab.run import RUN_STATUSES

app = typer.Typer()
log = logging.getLogger(__name__)


class ExecutorChoice(str, Enum):
    auto = "auto"
    ray = "ray"
    local = "local"


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


def fail(message: str) -> NoReturn:
    """One-line error, exit 2; the message is printed literally (no rich markup)."""
    _fail(escape(message))


StatusChoice = Enum("StatusChoice", {s: s for s in RUN_STATUSES}, type=str)

StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", help="SQLAlchemy URL of the results store (default: the sweep file's, else sqlite:///results.db).")]


def _open_store(url: str | None):
    from quest_lab.store import DEFAULT_URL, Store, StoreError

    try:
        return Store(url or DEFAULT_URL)
    except StoreError as e:
        fail(str(e))


def _read_runs(url: str | None, sweep: str | None, statuses: tuple[str, ...] | None):
    from quest_lab.store import StoreError

    try:
        return _open_store(url).runs_frame(sweep=sweep, statuses=statuses)
    except StoreError as e:
        fail(str(e))


@app.command("sweep")
def sweep_command(
    file: Annotated[Path, typer.Argument(help="Sweep YAML (see sweeps/).")],
    executor: Annotated[ExecutorChoice, typer.Option(
        help="Where trials run: ray (Ray Tune), local (sequential, in-process) or auto "
             "(ray when more than one trial can run at once).")] = ExecutorChoice.auto,
    store: StoreOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (total / done / to run) and exit.")] = False,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed", help="Also run the grid's failed runs again.")] = False,
    address: Annotated[Optional[str], typer.Option(help="Address of an existing Ray cluster (implies --executor ray).")] = None,
    progress: Annotated[Optional[bool], typer.Option(
        "--progress/--no-progress", help="Show the progress bar (default: on a terminal).")] = None,
    train_fn: Annotated[Optional[str], typer.Option(
        hidden=True, help="Train function 'module:function' (testing, custom trainers).")] = None,
) -> None:
    """Run a sweep file: every grid point not already completed/diverged in the store."""
    from quest_lab.sweep import SpecError, load_spec
    from quest_lab.sweep.executors import import_train_fn

    try:
        sweep = load_spec(file)
    except SpecError as e:
        fail(str(e))
    if address and executor == ExecutorChoice.local:
        fail("--address needs the ray executor; drop --executor local")
    fn = None
    if train_fn is not None:
        try:
            fn = import_train_fn(train_fn)
        except ValueError as e:
            fail(str(e))
    with _open_store(store or sweep.spec.store) as results:  # closed (WAL checkpointed) on exit
        try:
            _plan_and_run(sweep, results, executor=executor, dry_run=dry_run, rerun_failed=rerun_failed,
                          address=address, train_fn=fn, progress=progress)
        except KeyboardInterrupt:  # before any run started: every store write is one transaction
            _interrupted(sweep.name, file)


def _plan_and_run(sweep, results, *, executor: ExecutorChoice, dry_run: bool, rerun_failed: bool,
                  address: Optional[str], train_fn, progress: Optional[bool]) -> None:
    from quest_lab.store import StoreError
    from quest_lab.sweep import SweepSetupError, plan, run_sweep

    try:
        the_plan = plan(sweep, results, rerun_failed=rerun_failed)
    except (StoreError, ValueError) as e:
        fail(str(e))
    console.print(the_plan.summary())
    if dry_run:
        _print_plan(the_plan)
        return
    show = console.is_terminal if progress is None else progress
    try:
        outcome = run_sweep(the_plan, results, executor=executor.value, address=address,
                            train_fn=train_fn, show_progress=show)
    except (SweepSetupError, StoreError) as e:
        fail(str(e))
    if not the_plan.to_run:
        return
    c = outcome.counts
    startup = f", ray start-up {outcome.startup_s:.1f} s" if outcome.startup_s else ""
    console.print(f"sweep {sweep.name}: {c.get('completed', 0)} completed, {c.get('diverged', 0)} diverged, "
                  f"{c.get('failed', 0)} failed in {outcome.wall_s:.1f} s (executor {outcome.executor}{startup})")
    if outcome.interrupted:
        _interrupted(sweep.name, sweep.path, outcome.unfinished)
    if not outcome.ok:
        err_console.print(f"{c['failed']} run(s) failed: see `quest-lab runs --sweep {sweep.name} --status failed`; "
                          "`--rerun-failed` retries them")
        raise typer.Exit(1)


def _interrupted(name: str, path, unfinished: int | None = None) -> NoReturn:
    left = f"{unfinished} run(s) not finished are pending again; " if unfinished else ""
    err_console.print(escape(f"sweep {name} interrupted: results so far are stored, {left}"
                             f"run `quest-lab sweep {path}` again to resume"), highlight=False)
    raise typer.Exit(130)


def _print_plan(the_plan) -> None:
    todo = the_plan.to_run
    if not todo:
        return
    table = Table("run_id", "size", "precision", "tokens", "seed", title=f"to run ({len(todo)})")
    for r in todo[:50]:
        c = r.config
        table.add_row(r.run_id, c.size, c.precision_label, f"{c.token_budget:,}", str(c.seed))
    console.print(table)
    if len(todo) > 50:
        console.print(f"... and {len(todo) - 50} more")


def _si(x) -> str:
    """1234567 -> '1.2M'."""
    if x is None or x != x:
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _fmt(x, spec: str = "") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return format(x, spec) if spec else str(x)


@app.command("runs")
def runs_command(
    sweep: Annotated[Optional[str], typer.Option(help="Only this sweep's runs.")] = None,
    status: Annotated[Optional[StatusChoice], typer.Option(help="Only runs with this status.")] = None,
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many rows (newest last).")] = 200,
) -> None:
    """List runs in the store as a table."""
    frame = _read_runs(store, sweep, (status.value,) if status is not None else None)
    if frame.empty:
        console.print("no runs" + (f" in sweep {sweep}" if sweep else "") + (f" with status {status.value}" if status else ""))
        return
    shown = frame.tail(limit)
    show_error = status is not None and status.value == "failed"  # keeps the default table narrow
    show_sweep = shown.sweep.nunique(dropna=False) > 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run_id", no_wrap=True, min_width=16)
    if show_sweep:
        table.add_column("sweep", overflow="fold")
    cols = ("status", "size", "precision", "D", "seed") + (() if show_error else ("loss", "time s"))
    widths = {"status": 9, "precision": 10, "size": 5}
    for col in cols:
        table.add_column(col, no_wrap=True, min_width=widths.get(col))
    if show_error:
        table.add_column("error", overflow="fold", min_width=24)
    for r in shown.itertuples(index=False):
        cells = ([_fmt(r.sweep)] if show_sweep else []) + [
            r.status, _fmt(r.size), _fmt(r.precision), _si(r.D), _fmt(r.seed)]
        if not show_error:
            cells += [_fmt(r.loss, ".4f"), _fmt(r.wall_time_s, ".1f")]
        else:
            cells.append((r.error or "").splitlines()[0][:60] if isinstance(r.error, str) else "")
        table.add_row(r.run_id, *cells)
    console.print(table)
    console.print(f"{len(frame)} run(s)" + (f", showing the last {limit}" if len(frame) > limit else ""))


@app.command("export")
def export_command(
    path: Annotated[Path, typer.Argument(help="Output file.")],
    format: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = ExportFormat.csv,
    sweep: Annotated[Optional[str], typer.Option(help="Only this sweep's runs.")] = None,
    status: Annotated[Optional[StatusChoice], typer.Option(help="Only runs with this status (default: all).")] = None,
    store: StoreOpt = None,
) -> None:
    """Write runs (one row each) to CSV or Parquet."""
    frame = _read_runs(store, sweep, (status.value,) if status else None)
    if path.parent and not path.parent.exists():
        fail(f"directory {path.parent} does not exist")
    if format == ExportFormat.csv:
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    console.print(f"wrote {len(frame)} run(s) to {path}")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV of external runs.")],
    map_: Annotated[Optional[list[str]], typer.Option(
        "--map", help="COLUMN=FIELD, FIELD one of N, D, C, loss, w_bits, a_bits, quantizer "
                      "(C = training FLOPs: D = C/(6N)). Repeatable.")] = None,
    default: Annotated[Optional[list[str]], typer.Option(
        "--default", help="FIELD=VALUE for w_bits / a_bits / quantizer when the file has no such column "
                          "(e.g. w_bits=16, quantizer=bf16). Repeatable.")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="Sweep name for the rows (default: the file's stem).")] = None,
    store: StoreOpt = None,
) -> None:
    """Load published runs so they can be fitted and reported like our own (idempotent)."""
    from quest_lab.store import StoreError
    from quest_lab.sweep.importer import ImportFileError, ImportSpec, parse_pairs, read_import

    try:
        spec = ImportSpec(path=file, mapping=parse_pairs(map_ or [], "--map"),
                          defaults=parse_pairs(default or [], "--default"), sweep=sweep)
        records = read_import(spec)
    except ImportFileError as e:
        fail(str(e))
    results = _open_store(store)
    try:
        new = results.import_runs(spec.sweep_name, spec.source, records)
    except StoreError as e:
        fail(str(e))
    console.print(f"imported {new} new run(s) from {file} into sweep {spec.sweep_name} "
                  f"({len(records) - new} already present)")


if __name__ == "__main__":  # pragma: no cover
    app(sys.argv[1:])
