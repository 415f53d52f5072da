"""``router report``: summarise a JSONL record file (never imports litellm)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from router._tables import aligned

if TYPE_CHECKING:
    from router._report import Section

__all__ = ["report_arguments", "run_report"]


def report_arguments(parser: argparse.ArgumentParser) -> None:
    from router._report import DEFAULT_GROUPINGS, GROUPINGS

    parser.add_argument("file", metavar="FILE", help="a JSONL record file ([router] record_file)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--by",
        nargs="+",
        action="extend",
        choices=GROUPINGS,
        default=None,
        metavar="FIELD",
        help=f"group the calls by {', '.join(GROUPINGS)} (repeatable; "
        f"default: {' and '.join(DEFAULT_GROUPINGS)})",
    )


def _print_report_rich(sections: Sequence[Section]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout)
    for section in sections:
        table = Table(title=escape(section.title), title_justify="left", title_style="bold")
        for column in section.columns:
            table.add_column(column, justify="left" if column in section.left else "right")
        for row in section.rows:
            table.add_row(*(escape(row[c]) for c in section.columns))
        if section.rows:
            console.print(table)
        else:
            console.print(f"[bold]{escape(section.title)}[/]: none")
        if section.note and section.rows:
            console.print(escape(section.note), style="dim", highlight=False)


def _print_report_plain(sections: Sequence[Section]) -> None:
    for section in sections:
        if not section.rows:
            print(f"{section.title}: none")
            print()
            continue
        print(section.title)
        for line in aligned(section.columns, section.rows):
            print("  " + line)
        if section.note:
            print("  " + section.note)
        print()


def run_report(args: argparse.Namespace) -> int:
    """``router report``: 0 with the report printed; 1 if the file is missing or malformed."""
    # router._report uses the standard library only: no litellm, so the report answers at once.
    from router._report import DEFAULT_GROUPINGS, ReportError, headline, load, sections, summarise

    try:
        records = load(args.file)
    except ReportError as exc:
        print(exc, file=sys.stderr)
        return 1
    report = summarise(records, args.file, args.by or DEFAULT_GROUPINGS)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(headline(report))
    print()
    if sys.stdout.isatty():
        _print_report_rich(sections(report))
    else:
        _print_report_plain(sections(report))
    return 0
