"""``router report``: summarise a JSONL record file (never imports litellm)."""

from __future__ import annotations

import argparse
import json
import sys

from router._tables import print_sections

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
    print_sections(sections(report))
    return 0
