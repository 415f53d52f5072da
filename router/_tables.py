"""Tables for the command line: plain aligned text for pipes, rich tables for a terminal."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["aligned"]


def aligned(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> list[str]:
    """A header line and one line per row, each value starting under its column's header."""
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = []
    for cells in [dict(zip(columns, columns, strict=True)), *rows]:
        line = "  ".join(cells[c].ljust(w) for c, w in zip(columns, widths, strict=True))
        lines.append(line.rstrip())
    return lines
