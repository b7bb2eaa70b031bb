"""quest-lab runs | export | import: list, move out and bring in results."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from quest_lab.commands import StoreOpt, bad_input, console, fail, new_app, open_store, say
from quest_lab.commands.tables import Column, dropped_note, fit_columns, table_of
from quest_lab.export import FORMATS, TABLES
from quest_lab.run import RUN_STATUSES

app = new_app()

ExportFormat = Enum("ExportFormat", {f: f for f in FORMATS}, type=str)  # type: ignore[misc]
ExportTable = Enum("ExportTable", {t: t for t in TABLES}, type=str)  # type: ignore[misc]
StatusChoice = Enum("StatusChoice", {s: s for s in RUN_STATUSES}, type=str)  # type: ignore[misc]
# `runs --sort KEY`: the frame columns each key orders by ("time": finished, else started, else registered)
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "time": ("_time",), "loss": ("loss",), "N": ("N",), "D": ("D",), "size": ("N", "size"),
    "precision": ("precision",), "status": ("status",), "seed": ("seed",), "wall": ("wall_time_s",),
    "run_id": ("run_id",), "sweep": ("sweep",),
}
SortKey = Enum("SortKey", {k: k for k in SORT_KEYS}, type=str)  # type: ignore[misc]

WhereOpt = Annotated[Optional[str], typer.Option(
    "--where", help="Row filter: comparisons of columns with numbers or 'strings', and/or/not, in [...], "
                    "e.g. \"w_bits >= 2 and quantizer == 'quest'\".")]


def _read_runs(url: str | None, sweep: str | None, statuses: tuple[str, ...] | None, where: str | None = None):
    with bad_input():
        return open_store(url).runs_frame(sweep=sweep, statuses=statuses, where=where)


def _fmt(x, spec: str = "") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return format(x, spec) if spec else str(x)


def _when(ts) -> str:
    import pandas as pd

    return "-" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%m-%d %H:%M")


def _columns(frame, show_sweep: bool) -> list[Column]:
    """The `runs` columns, most important first kept: run_id, status, precision, loss, D, size, N, ..."""
    rows = list(frame.itertuples(index=False))
    col = lambda head, keep, cells, justify="left": Column(head, tuple(cells), keep, justify)  # noqa: E731
    out = [col("run_id", 0, (str(r.run_id) for r in rows))]
    if show_sweep:
        out.append(col("sweep", 7, (_fmt(r.sweep) for r in rows)))
    out += [col("status", 1, (str(r.status) for r in rows)), col("size", 5, (_fmt(r.size) for r in rows)),
            col("precision", 2, (_fmt(r.precision) for r in rows)),
            col("N", 6, (_fmt(r.N, ",.0f") for r in rows), "right"),
            col("D", 4, (_fmt(r.D, ",.0f") for r in rows), "right"),
            col("seed", 8, (_fmt(r.seed) for r in rows), "right"),
            col("loss", 3, (_fmt(r.loss, ".4f") for r in rows), "right"),
            col("wall s", 9, (_fmt(r.wall_time_s, ".1f") for r in rows), "right"),
            col("finished", 10, (_when(r.finished_at) for r in rows))]
    return out


@app.command("runs")
def runs_command(
    sweep: Annotated[Optional[str], typer.Option(help="Only this sweep's runs.")] = None,
    status: Annotated[Optional[StatusChoice], typer.Option(help="Only runs with this status.")] = None,  # type: ignore[valid-type]
    where: WhereOpt = None,
    store: StoreOpt = None,
    sort: Annotated[SortKey, typer.Option(  # type: ignore[valid-type]
        "--sort", help="Order of the rows shown: time (finished, else started, else registered), loss, N, D, "
                       "size, precision, status, seed, wall, run_id or sweep.")] = SortKey("time"),  # type: ignore[assignment]
    reverse: Annotated[bool, typer.Option("--reverse", help="Descending order (e.g. newest or highest loss first).")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many runs: the newest ones.")] = 200,
) -> None:
    """List runs in the store.

    Oldest first (see --sort); the columns that fit the terminal, the others named below the table.
    """
    frame = _read_runs(store, sweep, (status.value,) if status is not None else None, where)
    if frame.empty:
        say("no runs" + (f" in sweep {sweep}" if sweep else "") + (f" with status {status.value}" if status else "")
            + (f" matching {where}" if where else ""))
        return
    frame = frame.assign(_time=frame["finished_at"].fillna(frame["started_at"]).fillna(frame["created_at"]))
    shown = frame.sort_values(["_time", "run_id"], kind="stable").tail(limit)
    shown = shown.sort_values(list(SORT_KEYS[sort.value]), ascending=not reverse, na_position="last", kind="stable")
    show_error = status is not None and status.value == "failed"
    columns, dropped = fit_columns(_columns(shown, shown.sweep.nunique(dropna=False) > 1), console.width)
    console.print(table_of(columns))
    if show_error:  # one line per run, printed literally: an error text may hold anything
        for r in shown.itertuples(index=False):
            head = r.error.splitlines()[0] if isinstance(r.error, str) and r.error.strip() else "(no error text)"
            say(f"{r.run_id}: {head[:300]}")
    if dropped:
        console.print(Text(dropped_note(dropped, "widen the terminal, or `quest-lab export` every column")))
    order = f"by {sort.value}" + (", descending" if reverse else "")
    say(f"{len(frame)} run(s)" + (f", showing the newest {limit}" if len(frame) > limit else "") + f", {order}")


@app.command("export")
def export_command(
    path: Annotated[Optional[Path], typer.Argument(
        help="Output file: .csv, .parquet (.pq) or .jsonl (.ndjson); the extension picks the format.")] = None,
    format: Annotated[Optional[ExportFormat], typer.Option(  # type: ignore[valid-type]
        "--format", help="File format: csv, parquet or jsonl (default: from the extension).")] = None,
    table: Annotated[ExportTable, typer.Option(  # type: ignore[valid-type]
        "--table", help="runs: one row per run; curves: one row per logged loss point of those runs.")] = ExportTable("runs"),  # type: ignore[assignment]
    sweep: Annotated[Optional[str], typer.Option(help="Only this sweep's runs.")] = None,
    status: Annotated[Optional[StatusChoice], typer.Option(help="Only runs with this status (default: all).")] = None,  # type: ignore[valid-type]
    where: WhereOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists.")] = False,
    store: StoreOpt = None,
    schema: Annotated[bool, typer.Option("--schema", help="Print the columns of --table (name, type, meaning) and exit.")] = False,
) -> None:
    """Export runs or loss curves to CSV, Parquet or JSON Lines.

    Columns: --schema.  Never over the store, nor over a file without --force.
    """
    from quest_lab.export import format_of, ordered, schema_text, writer
    from quest_lab.outputs import check_file_target, write_file

    if schema:
        say(schema_text(table.value))
        return
    if path is None:
        fail("give the output file PATH (.csv, .parquet or .jsonl), or --schema to see the columns")
    handle = open_store(store)
    with bad_input():
        check_file_target(path, force=force, protected=handle.files())  # before reading anything
    by_ext = format_of(path)
    if format is None and by_ext is None:
        fail(f"cannot tell the format of {path} from its extension; use .csv, .parquet or .jsonl, or give --format")
    if format is not None and by_ext is not None and format.value != by_ext:
        fail(f"{path} has the extension {path.suffix} but --format is {format.value}; make them agree")
    fmt = format.value if format is not None else by_ext
    frame = _read_runs(store, sweep, (status.value,) if status else None, where)
    what = f"{len(frame)} run(s)"
    if table.value == "curves":
        with bad_input():
            frame = handle.curves(frame["run_id"].tolist())
        what = f"{len(frame)} curve point(s) of {frame['run_id'].nunique()} run(s)"
    with bad_input():
        write_file(path, writer(fmt, ordered(frame, table.value)), force=force, protected=handle.files())
    say(f"wrote {what} to {path} ({fmt})")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV of external runs.")],
    map_: Annotated[Optional[list[str]], typer.Option(
        "--map", metavar="COLUMN=FIELD", help="COLUMN=FIELD, FIELD one of N, D, C, loss, w_bits, a_bits, quantizer "
                      "(C = training FLOPs: D = C/(6N)). Repeatable.")] = None,
    default: Annotated[Optional[list[str]], typer.Option(
        "--default", metavar="FIELD=VALUE", help="FIELD=VALUE for w_bits / a_bits / quantizer when the file has no such column "
                          "(e.g. w_bits=16, quantizer=bf16). Repeatable.")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="Sweep name for the rows (default: the file's stem).")] = None,
    store: StoreOpt = None,
) -> None:
    """Import published runs from a CSV.

    They are fitted and reported like our own; importing twice adds nothing.
    """
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
