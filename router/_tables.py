"""Command-line output helpers: plain aligned tables for pipes; a quiet router log."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["aligned", "quiet_router_log"]


def aligned(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> list[str]:
    """A header line and one line per row, each value starting under its column's header."""
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = []
    for cells in [dict(zip(columns, columns, strict=True)), *rows]:
        line = "  ".join(cells[c].ljust(w) for c, w in zip(columns, widths, strict=True))
        lines.append(line.rstrip())
    return lines


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
