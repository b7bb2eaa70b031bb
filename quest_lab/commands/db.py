"""quest-lab db status | upgrade: the store's schema revision (Alembic migrations in quest_lab/migrations)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from quest_lab.commands import bad_input, open_store, say

app = typer.Typer(no_args_is_help=True)

StoreOpt = Annotated[Optional[str], typer.Option("--store", help="SQLAlchemy URL of the results store (default: sqlite:///results.db).")]


@app.command("status")
def status_command(store: StoreOpt = None) -> None:
    """Print the store's schema revision and the one this quest-lab needs."""
    from quest_lab.store_db import BASELINE_REVISION, head_revision

    handle = open_store(store)
    with bad_input():
        rev = handle.revision()
    head = head_revision()
    if rev is None:
        say(f"{handle.display_url}: empty (created at {head} on first write)")
    elif rev == head:
        say(f"{handle.display_url}: revision {rev} (current)")
    else:
        old = " (written before Alembic)" if rev == BASELINE_REVISION else ""
        say(f"{handle.display_url}: revision {rev}{old}; this quest-lab needs {head}: "
            f"run `quest-lab db upgrade --store {handle.display_url}`")


@app.command("upgrade")
def upgrade_command(store: StoreOpt = None) -> None:
    """Migrate the store to this quest-lab's schema, in one locked transaction (back it up first)."""
    handle = open_store(store)
    with bad_input():
        before, after = handle.upgrade()
    if before == after:
        say(f"{handle.display_url}: already at {after}")
    else:
        say(f"{handle.display_url}: upgraded {before or 'empty'} -> {after}")
