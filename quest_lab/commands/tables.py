"""Terminal tables that fit the terminal: columns are dropped (least important first) until the rest fit
at their full width, so no header or cell is ever cut; the caller says which were left out.

    shown, dropped = fit_columns(columns, console.width)
    console.print(table_of(shown))
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

GAP = 3  # cells between two columns: a padding space, the (blank) column divider, a padding space


@dataclass(frozen=True)
class Column:
    header: str
    cells: tuple[str, ...]
    keep: int  # lower is kept longer when the terminal is narrow (0: always kept)
    justify: str = "left"

    @property
    def width(self) -> int:
        return max([cell_len(self.header), *(cell_len(c) for c in self.cells)])


def fit_columns(columns: Sequence[Column], width: int) -> tuple[list[Column], list[Column]]:
    """(columns shown in their given order, columns left out): the most important columns whose full
    widths fit in `width`."""
    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(columns)), key=lambda i: (columns[i].keep, i)):
        need = columns[i].width + (GAP if chosen else 0)
        if columns[i].keep == 0 or used + need <= width:
            chosen.add(i)
            used += need
    return ([c for i, c in enumerate(columns) if i in chosen],
            [c for i, c in enumerate(columns) if i not in chosen])


def table_of(columns: Sequence[Column]) -> Table:
    """A borderless table of the columns at their full widths; cells are literal text, never markup."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False)
    for col in columns:
        table.add_column(col.header, justify=col.justify, no_wrap=True, min_width=col.width)  # type: ignore[arg-type]
    for row in zip(*(c.cells for c in columns)):
        table.add_row(*(Text(cell) for cell in row))
    return table


def dropped_note(dropped: Sequence[Column], hint: str = "widen the terminal") -> str:
    return f"(left out for width: {', '.join(c.header for c in dropped)}; {hint})" if dropped else ""
