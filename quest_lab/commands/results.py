"""quest-lab runs | export | import: list, move out and bring in results."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from quest_lab.commands import bad_input, console, fail, open_store, say
from quest_lab.run import RUN_STATUSES

app = typer.Typer()


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


# file extension -> format, for `export PATH` without --format
EXTENSIONS = {".csv": ExportFormat.csv, ".parquet": ExportFormat.parquet, ".pq": ExportFormat.parquet}

StatusChoice = Enum("StatusChoice", {s: s for s in RUN_STATUSES}, type=str)  # type: ignore[misc]

StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", help="SQLAlchemy URL of the results store (default: the sweep file's, else sqlite:///results.db).")]
WhereOpt = Annotated[Optional[str], typer.Option(
    "--where", help="Row filter: comparisons of columns with numbers or 'strings', and/or/not, in [...], "
                    "e.g. \"w_bits >= 2 and quantizer == 'quest'\".")]


def _read_runs(url: str | None, sweep: str | None, statuses: tuple[str, ...] | None, where: str | None = None):
    with bad_input():
        return open_store(url).runs_frame(sweep=sweep, statuses=statuses, where=where)


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
    status: Annotated[Optional[StatusChoice], typer.Option(help="Only runs with this status.")] = None,  # type: ignore[valid-type]
    where: WhereOpt = None,
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many rows (newest last).")] = 200,
) -> None:
    """List runs in the store as a table."""
    frame = _read_runs(store, sweep, (status.value,) if status is not None else None, where)
    if frame.empty:
        say("no runs" + (f" in sweep {sweep}" if sweep else "") + (f" with status {status.value}" if status else "")
            + (f" matching {where}" if where else ""))
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
    for r in shown.itertuples(index=False):
        cells = ([_fmt(r.sweep)] if show_sweep else []) + [
            r.status, _fmt(r.size), _fmt(r.precision), _si(r.D), _fmt(r.seed)]
        if not show_error:
            cells += [_fmt(r.loss, ".4f"), _fmt(r.wall_time_s, ".1f")]
        table.add_row(Text(str(r.run_id)), *(Text(str(c)) for c in cells))  # stored strings: never markup
    console.print(table)
    if show_error:  # one line per run, printed literally: an error text may hold anything
        for r in shown.itertuples(index=False):
            head = r.error.splitlines()[0] if isinstance(r.error, str) and r.error.strip() else "(no error text)"
            say(f"{r.run_id}: {head[:300]}")
    say(f"{len(frame)} run(s)" + (f", showing the last {limit}" if len(frame) > limit else ""))


@app.command("export")
def export_command(
    path: Annotated[Path, typer.Argument(help="Output file (.csv or .parquet; the extension picks the format).")],
    format: Annotated[Optional[ExportFormat], typer.Option(
        "--format", help="File format (default: from the extension).")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="Only this sweep's runs.")] = None,
    status: Annotated[Optional[StatusChoice], typer.Option(help="Only runs with this status (default: all).")] = None,  # type: ignore[valid-type]
    where: WhereOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists.")] = False,
    store: StoreOpt = None,
) -> None:
    """Write runs (one row each) to CSV or Parquet; never over the store, nor over a file without --force."""
    from quest_lab.outputs import check_file_target, write_file

    handle = open_store(store)
    with bad_input():
        check_file_target(path, force=force, protected=handle.files())  # before reading anything
    by_ext = EXTENSIONS.get(path.suffix.lower())
    if format is None and by_ext is None:
        fail(f"cannot tell the format of {path} from its extension; use .csv or .parquet, or give --format")
    if format is not None and by_ext is not None and format != by_ext:
        fail(f"{path} has the extension {path.suffix} but --format is {format.value}; make them agree")
    fmt = format or by_ext
    frame = _read_runs(store, sweep, (status.value,) if status else None, where)

    def write(tmp: Path) -> None:
        if fmt == ExportFormat.csv:
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)

    with bad_input():
        write_file(path, write, force=force, protected=handle.files())
    say(f"wrote {len(frame)} run(s) to {path} ({fmt.value})")


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
    from quest_lab.sweep.importer import ImportFileError, ImportSpec, parse_pairs, read_import

    try:
        spec = ImportSpec(path=file, mapping=parse_pairs(map_ or [], "--map"),
                          defaults=parse_pairs(default or [], "--default"), sweep=sweep)
        records = read_import(spec)
    except ImportFileError as e:
        fail(str(e))
    with bad_input():
        new = open_store(store).import_runs(spec.sweep_name, spec.source, records)
    say(f"imported {new} new run(s) from {file} into sweep {spec.sweep_name} ({len(records) - new} already present)")
