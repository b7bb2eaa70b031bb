"""Typer sub-apps, one per command group; `cli.py` at the repository root merges them.

Output rules: every error is `fail(message)`: one line on stderr, rich markup escaped exactly once,
exit 2 (bad input; nothing written).  Every warning is `warn(message)` or a `logging` warning, both printed
as `warning: message` on stderr (`cli.py` formats log records the same way).  Text that holds user or
stored strings (sweep names, paths, error texts, URLs) is printed with `say` (no markup at all), never
inside a markup f-string.  Help is click's plain help (`new_app`): wrapped at the terminal width, never cut.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn, Optional

import typer
import typer.core
from rich.console import Console
from typer.core import TyperGroup
from rich.markup import escape

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
console = Console(highlight=False)

# Exit code for bad input (unknown option value, malformed file, too little data): nothing written.
EXIT_BAD_INPUT = 2
DEFAULT_STORE = "sqlite:///results.db"  # quest_lab.store.DEFAULT_URL (checked by tests/test_cli_help.py)

StoreOpt = Annotated[Optional[str], typer.Option(
    "--store", help=f"SQLAlchemy URL of the results store (default: {DEFAULT_STORE}).")]


def new_app(**kwargs) -> typer.Typer:
    """A command group with plain click help: wrapped at the terminal width, never cut with an ellipsis."""
    return typer.Typer(rich_markup_mode=None, **kwargs)


def _click_exceptions():
    """The click exceptions Typer raises: its vendored copy (typer >= 0.20) or click's own."""
    vendored = getattr(typer.core, "_click", None)
    if vendored is not None:
        return vendored.exceptions
    import click

    return click.exceptions


class OneLineErrors(TyperGroup):
    """The root command: a usage error (unknown option, a value outside its choices) is one line,
    `error: ...`, exit 2, like every other bad input; help, --version and command exit codes as usual."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        import sys

        errors = _click_exceptions()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except errors.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            error_line(exc.format_message() + where)
            sys.exit(EXIT_BAD_INPUT)
        except errors.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("Aborted.", markup=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def error_line(message: str) -> None:
    """`error: message` on one line of stderr (the message is never markup)."""
    first = " ".join(str(message).split("\n")).strip()
    err_console.print(f"[bold red]error:[/] {escape(first)}", markup=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print a one-line error to stderr and exit with `code` (2 = bad input)."""
    error_line(message)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """`warning: message` on stderr, printed literally (the format of logged warnings too)."""
    err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


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
    from quest_lab.store import Store

    with bad_input():
        return Store(url or DEFAULT_STORE)
