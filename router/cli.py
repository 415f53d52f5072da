"""The ``router`` command line.

``router check [PATH]`` loads the config (PATH, else ``$ROUTER_CONFIG``, else
``./providers.toml``), prints the resolved routing table and any warnings, and exits 0 when
the config is usable, 1 on any problem, 2 on a usage error. It never imports litellm, so it
answers at once.

Subcommands are rows of :data:`COMMANDS`; adding one is a :class:`Command` and two functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from router._config import (
    ENV_REF_PREFIX,
    Config,
    ConfigError,
    Deployment,
    RouterSettings,
    check_config,
    load_config,
)

__all__ = ["COMMANDS", "Command", "build_parser", "main", "run_check", "run_demo"]


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, argument setup and the function it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- router check ---------------------------------------------------------------------------

_COLUMNS = (
    "deployment",
    "model",
    "api_base",
    "in $/1M",
    "out $/1M",
    "timeout",
    "max ctx",
    "key",
    "weight",
    "tags",
    "params",
)
# Columns shown only when some row of the table differs from this value.
_OPTIONAL = {"weight": "1", "tags": "-", "params": "-"}


def _per_million(cost: float | None) -> str:
    if cost is None:
        return "litellm map"
    per_million = float(f"{cost * 1_000_000:.6g}")  # drop float noise: 1e-7 * 1e6 != 0.1
    cents = per_million * 100
    return f"{per_million:.2f}" if abs(cents - round(cents)) < 1e-9 else f"{per_million:g}"


def _api_base(value: str | None) -> str:
    if value is None:
        return "provider default"
    if value.startswith(ENV_REF_PREFIX):
        return f"env {value[len(ENV_REF_PREFIX) :]}"
    parts = urlsplit(value)
    if parts.password is not None or parts.username is not None:
        # Credentials in a URL are as secret as a key: show the host only.
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def _row(dep: Deployment, settings: RouterSettings) -> dict[str, str]:
    timeout = f"{dep.timeout:g} s" if dep.timeout else f"{settings.timeout:g} s (default)"
    context = f"{dep.max_context_tokens:,}" if dep.max_context_tokens else "litellm map"
    return {
        "deployment": dep.name,
        "model": dep.model,
        "api_base": _api_base(dep.api_base),
        "in $/1M": _per_million(dep.input_cost_per_token),
        "out $/1M": _per_million(dep.output_cost_per_token),
        "timeout": timeout,
        "max ctx": context,
        "key": dep.key_source(),
        "weight": f"{dep.weight:g}",
        "tags": ", ".join(dep.tags) or "-",
        "params": ", ".join(dep.litellm_params) or "-",  # keys only: values may be secrets
    }


def _sections(config: Config) -> list[tuple[str, list[dict[str, str]]]]:
    """(title, rows) per group, then the deployments that are in no group."""
    sections = []
    for group in config.group_names():
        s = config.settings_for(group)
        title = f"group {group}: deadline {s.deadline:g} s, max_attempts {s.max_attempts}"
        sections.append((title, [_row(d, s) for d in config.deployments_in(group)]))
    loose = [d for d in config.deployments if not d.groups]
    if loose:
        s = config.router
        title = (
            f"no group (callers use the deployment's name): deadline {s.deadline:g} s,"
            f" max_attempts {s.max_attempts}"
        )
        sections.append((title, [_row(d, s) for d in loose]))
    return sections


def _columns(rows: list[dict[str, str]]) -> list[str]:
    return [c for c in _COLUMNS if c not in _OPTIONAL or any(r[c] != _OPTIONAL[c] for r in rows)]


def _print_plain(sections: list[tuple[str, list[dict[str, str]]]]) -> None:
    for title, rows in sections:
        columns = _columns(rows)
        widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
        print(title)
        for cells in [dict(zip(columns, columns, strict=True)), *rows]:
            line = "  ".join(cells[c].ljust(w) for c, w in zip(columns, widths, strict=True))
            print("  " + line.rstrip())
        print()


def _print_rich(sections: list[tuple[str, list[dict[str, str]]]]) -> None:
    # Imported here: only a terminal needs rich, and it costs import time.
    from rich.console import Console
    from rich.markup import escape  # names are data: "[x]" must not be read as rich markup
    from rich.table import Table

    console = Console(file=sys.stdout)
    for title, rows in sections:
        columns = _columns(rows)
        table = Table(title=escape(title), title_justify="left", title_style="bold")
        for column in columns:
            table.add_column(column, no_wrap=column in ("deployment", "key"))
        for row in rows:
            table.add_row(*(escape(row[c]) for c in columns))
        console.print(table)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help="config file (default: $ROUTER_CONFIG, else ./providers.toml)",
    )


def run_check(args: argparse.Namespace) -> int:
    """``router check``: 0 if the config is usable (warnings allowed), 1 on any problem."""
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    sections = _sections(config)
    if sys.stdout.isatty():
        _print_rich(sections)
    else:
        _print_plain(sections)
    findings = check_config(config)
    errors = sum(1 for f in findings if f.startswith("error:"))
    groups = len(config.group_names())
    print(
        f"{config.source}: {len(config.deployments)} deployment(s), {groups} group(s);"
        f" {errors} problem(s), {len(findings) - errors} warning(s)"
    )
    sys.stdout.flush()  # the table first, then the findings, when both go to a terminal
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if errors else 0


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="config to run on (default: $ROUTER_CONFIG, else ./providers.toml, else the "
        "embedded demo config); every deployment must point at a loopback api_base",
    )
    parser.add_argument("--requests", type=int, default=160, help="requests to send (160)")


def run_demo(args: argparse.Namespace) -> int:
    """``router demo``: the simulated fleet, a mixed workload, an outage half-way, a summary."""
    from router._demo import main as demo_main

    try:
        return demo_main(args.config, requests=max(10, args.requests))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a fleet port already in use
        print(f"router demo: {exc}", file=sys.stderr)
        return 1


# --- the command table ----------------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command(
        "check", "validate the config and print the routing table", _check_arguments, run_check
    ),
    Command(
        "demo",
        "run the local simulated fleet through the router, with an outage half-way",
        _demo_arguments,
        run_demo,
    ),
    # To add a subcommand: write _<name>_arguments(parser) and run_<name>(args) -> exit code,
    # then add Command("<name>", "<help>", _<name>_arguments, run_<name>) here.
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per row of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="router", description="Resilience and routing layer over litellm."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("router: error: a command is required", file=sys.stderr)
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
