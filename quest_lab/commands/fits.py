"""quest-lab fits: list the fits stored in the results store (newest first)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from quest_lab.commands import StoreOpt, bad_input, console, new_app, open_store, say
from quest_lab.commands.analysis import LawName

app = new_app()


def _num(value, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


@app.command("fits")
def fits_command(
    law: Annotated[Optional[LawName], typer.Option("--law", help="Only fits of this law.")] = None,  # type: ignore[valid-type]
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many fits (the newest).")] = 50,
) -> None:
    """List stored fits, newest first: id, law, time, runs, R², bootstrap, mode, verdict, filters."""
    from quest_lab.analysis.report_tables import utc
    from quest_lab.store_fits import list_fits

    handle = open_store(store)
    with bad_input():
        fits = list_fits(handle, law.value if law else None, limit=limit)
    if not fits:
        say("no stored fits" + (f" of the {law.value} law" if law else "") + f" in {handle.display_url}; "
            "run `quest-lab fit` first")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col, justify in (("id", "right"), ("law", "left"), ("fitted (UTC)", "left"), ("runs", "right"),
                         ("R²", "right"), ("boot", "right"), ("mode", "left"), ("verdict", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "verdict", overflow="fold")
    for f in fits:
        s = f.summary()
        when = (utc(s["created_at"]) or "-").removesuffix(" UTC")
        table.add_row(*(Text(str(v)) for v in (
            s["id"], s["law"], when, _num(s["runs"], "d"), _num(s["r2"], ".4f"), _num(s["bootstrap"], "d"),
            s["mode"], s["verdict"] or "-")))
    console.print(table)
    for f in fits:  # filters on their own lines: any length, printed literally
        s = f.summary()
        if s["where"] or s["sweep"]:
            say(f"#{s['id']}: fitted on {'--sweep ' + s['sweep'] if s['sweep'] else 'all sweeps'}"
                + (f", --where {s['where']}" if s["where"] else ""))
    say(f"{len(fits)} fit(s) in {handle.display_url}; `quest-lab report --law LAW` reports the newest of each law")
