"""Command-line output: the one table renderer (rich on a terminal, plain aligned text for
pipes), the breaker-state colours, and a quiet router log.

`router check`, `router health` and `router report` describe their output as `Section`s and
print them with `print_sections`; the demo's live view (router._sim._demo) is a dashboard of its
own but colours breaker states with `STATE_STYLE` too. rich is imported only when a terminal
asks for it (it costs import time).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

__all__ = ["STATE_STYLE", "Section", "aligned", "print_sections", "quiet_router_log"]

STATE_STYLE: Final = {"closed": "green", "open": "red", "half_open": "yellow"}
"""rich styles of breaker states."""


@dataclass(frozen=True)
class Section:
    """One table of command output: a title, its columns and its rows of cells (all text)."""

    title: str
    columns: tuple[str, ...]
    rows: Sequence[Mapping[str, str]]
    left: tuple[str, ...] = ()
    """Columns of names, left-aligned in a rich table (the rest are figures, right-aligned)."""
    no_wrap: tuple[str, ...] = ()
    """Columns a rich table never wraps."""
    note: str | None = None
    """A line printed under the table."""
    styles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per column, the rich style of some values (e.g. a breaker state's colour)."""


def aligned(columns: Sequence[str], rows: Sequence[Mapping[str, str]]) -> list[str]:
    """A header line and one line per row, each value starting under its column's header."""
    widths = [max([len(c), *(len(r[c]) for r in rows)]) for c in columns]
    lines = []
    for cells in [dict(zip(columns, columns, strict=True)), *rows]:
        line = "  ".join(cells[c].ljust(w) for c, w in zip(columns, widths, strict=True))
        lines.append(line.rstrip())
    return lines


def print_sections(sections: Sequence[Section], *, gap: bool = True) -> None:
    """Print each section: a rich table when stdout is a terminal, else plain aligned text.

    A section without rows prints as ``title: none``. `gap` puts a blank line after each one.
    """
    if sys.stdout.isatty():
        _print_rich(sections)
        return
    for section in sections:
        if not section.rows:
            print(f"{section.title}: none")
        else:
            print(section.title)
            for line in aligned(section.columns, section.rows):
                print("  " + line)
            if section.note:
                print("  " + section.note)
        if gap:
            print()


def _print_rich(sections: Sequence[Section]) -> None:
    from rich.console import Console
    from rich.markup import escape  # cells are data: "[x]" must not be read as rich markup
    from rich.table import Table

    console = Console(file=sys.stdout)
    for section in sections:
        if not section.rows:
            console.print(f"[bold]{escape(section.title)}[/]: none")
            continue
        table = Table(title=escape(section.title), title_justify="left", title_style="bold")
        for column in section.columns:
            table.add_column(
                column,
                justify="left" if column in section.left else "right",
                no_wrap=column in section.no_wrap,
            )
        for row in section.rows:
            cells = []
            for column in section.columns:
                cell = escape(row[column])
                style = section.styles.get(column, {}).get(row[column])
                cells.append(f"[{style}]{cell}[/]" if style else cell)
            table.add_row(*cells)
        console.print(table)
        if section.note:
            console.print(escape(section.note), style="dim", highlight=False)


@contextmanager
def quiet_router_log() -> Iterator[None]:
    """Keep the router's breaker log lines off stderr unless logging was configured.

    With no handler anywhere, Python's last-resort handler prints every warning ("breaker
    opened") to stderr, through a live view or table that already shows the same state. A
    NullHandler on the ``router`` logger only stops that fallback: handlers a user configured
    still receive every record.
    """
    logger = logging.getLogger("router")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
