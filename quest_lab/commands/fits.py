"""quest-lab fits: list the fits stored in the results store (newest first)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.text import Text

from quest_lab.commands import StoreOpt, bad_input, console, new_app, open_store, say
from quest_lab.commands.analysis import LawName
from quest_lab.commands.tables import Column, dropped_note, fit_columns, table_of

app = new_app()


def _num(value, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


@app.command("fits")
def fits_command(
    law: Annotated[Optional[LawName], typer.Option("--law", help="Only fits of this law.")] = None,  # type: ignore[valid-type]
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many fits (the newest).")] = 50,
) -> None:
    """List stored fits, newest first.

    Id, law, time, runs, R², bootstrap, mode, verdict and the filters each was fitted with.
    """
    from quest_lab.analysis.report_tables import utc
    from quest_lab.store_fits import list_fits

    handle = open_store(store)
    with bad_input():
        fits = list_fits(handle, law.value if law else None, limit=limit)
    if not fits:
        say("no stored fits" + (f" of the {law.value} law" if law else "") + f" in {handle.display_url}; "
            "run `quest-lab fit` first")
        return
    rows = [f.summary() for f in fits]
    cols = [Column("id", tuple(str(r["id"]) for r in rows), 0, "right"),
            Column("law", tuple(str(r["law"]) for r in rows), 0),
            Column("fitted (UTC)", tuple((utc(r["created_at"]) or "-").removesuffix(" UTC") for r in rows), 1),
            Column("runs", tuple(_num(r["runs"], "d") for r in rows), 3, "right"),
            Column("R²", tuple(_num(r["r2"], ".4f") for r in rows), 2, "right"),
            Column("bootstrap", tuple(_num(r["bootstrap"], "d") for r in rows), 5, "right"),
            Column("mode", tuple(str(r["mode"]) for r in rows), 6),
            Column("verdict", tuple(str(r["verdict"] or "-") for r in rows), 4)]
    shown, dropped = fit_columns(cols, console.width)
    console.print(table_of(shown))
    if dropped:
        console.print(Text(dropped_note(dropped)))
    for f in fits:  # filters on their own lines: any length, printed literally
        s = f.summary()
        if s["where"] or s["sweep"]:
            say(f"#{s['id']}: fitted on {'--sweep ' + s['sweep'] if s['sweep'] else 'all sweeps'}"
                + (f", --where {s['where']}" if s["where"] else ""))
    console.print(Text(f"{len(fits)} fit(s) in {handle.display_url}; `quest-lab report --law LAW` reports the "
                       "newest of each law"))
