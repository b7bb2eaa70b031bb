"""Typer sub-apps, one per command group; `cli.py` at the repository root merges them.

Output rules: every error is `fail(message)`: one line on stderr, rich markup escaped exactly once,
exit 2 (bad input; nothing written).  Text that holds user or stored strings (sweep names, paths, error
texts, URLs) is printed with `say` (no markup at all), never inside a markup f-string.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False)

# Exit code for bad input (unknown option value, malformed file, too little data): nothing written.
EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print a one-line error to stderr and exit with `code` (2 = bad input)."""
    first = " ".join(str(message).split("\n")).strip()
    err_console.print(f"[bold red]error:[/] {escape(first)}", markup=True)
    raise typer.Exit(code)


def say(message: str, *, err: bool = False) -> None:
    """Print `message` literally (no markup, no highlighting)."""
    (err_console if err else console).print(message, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def bad_input() -> Iterator[None]:
    """Known bad-input errors (unusable store, invalid filter, unsafe output path, bad sweep file)
    become `fail(message)`: one line, exit 2."""
    from quest_lab.filters import FilterError
    from quest_lab.outputs import OutputError
    from quest_lab.store_db import StoreError
    from quest_lab.sweep.spec import SpecError

    try:
        yield
    except (StoreError, FilterError, OutputError, SpecError) as exc:
        fail(str(exc))


def open_store(url: str | None):
    """The store at `url` (default sqlite:///results.db); a bad URL is exit 2."""
    from quest_lab.store import DEFAULT_URL, Store

    with bad_input():
        return Store(url or DEFAULT_URL)
