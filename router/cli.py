"""The ``router`` command line.

``router check [PATH]`` loads the config (PATH, else ``$ROUTER_CONFIG``, else
``./providers.toml``), prints the resolved routing table and any warnings, and exits 0 when
the config is usable, 1 on any problem, 2 on a usage error. It never imports litellm, so it
answers at once.

``router health [PATH] [--probes N] [--json]`` measures every deployment of the config with a
few tiny requests through a fresh `Router` and prints its health and breaker snapshot; it exits
0 when every deployment is closed, scored above 0 and answered, else 1. With ``--redis URL
[--prefix P]`` it sends nothing and prints the shared view of every router process using that
Redis (router._redis_state.fleet_view).

``router demo`` runs the local simulated fleet through the router (see router._sim._demo).

``router report FILE [--json] [--by route|step|group|deployment ...]`` summarises a JSONL record
file (``[router] record_file``): success, failure, escalation and review rates, cost and latency,
overall, per job, per route and step, per escalation trigger (see router._report). It exits 0,
or 1 when the file is missing or has a malformed line. Like ``check`` it never imports litellm.

Subcommands are rows of :data:`COMMANDS`; adding one is a :class:`Command` and two functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router._cli._check import check_arguments, run_check
from router._config import ConfigError

if TYPE_CHECKING:
    pass

__all__ = [
    "COMMANDS",
    "Command",
    "build_parser",
    "main",
    "run_check",
    "run_demo",
    "run_eval",
    "run_health",
    "run_report",
]


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, argument setup and the function it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="config to run on (default: $ROUTER_CONFIG, else ./providers.toml, else the "
        "embedded demo config); every deployment must point at a loopback api_base",
    )
    parser.add_argument("--requests", type=int, default=160, help="requests to send (160)")
    parser.add_argument(
        "--otlp",
        default=None,
        metavar="URL",
        help="send the demo's traces to this OTLP endpoint (e.g. http://localhost:4318 for "
        "Jaeger over HTTP, http://localhost:4317 for gRPC)",
    )


def run_demo(args: argparse.Namespace) -> int:
    """``router demo``: the simulated fleet, an outage, the breakers' story live, a summary."""
    from router._sim._demo import main as demo_main

    try:
        return demo_main(args.config, requests=max(10, args.requests), otlp=args.otlp)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a fleet port already in use
        print(f"router demo: {exc}", file=sys.stderr)
        return 1


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="routellm|run ...",
        help="'routellm --dataset gsm8k|mmlu|all' replays the shipped RouteLLM data; "
        "'run FILE --config TOML --scorer ...' evaluates your own data (see --help of each)",
    )


def run_eval(args: argparse.Namespace) -> int:
    """``router eval``: replay labelled data through the router and compare policies."""
    from router._eval import main as eval_main

    return eval_main(args.args)


def _health_arguments(parser: argparse.ArgumentParser) -> None:
    from router._cli._health import health_arguments

    health_arguments(parser)


def run_health(args: argparse.Namespace) -> int:
    """``router health``: probe every deployment (router._cli._health)."""
    from router._cli._health import run_health as run

    return run(args)


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    from router._cli._report import report_arguments

    report_arguments(parser)


def run_report(args: argparse.Namespace) -> int:
    """``router report FILE``: summarise a record file (router._cli._report)."""
    from router._cli._report import run_report as run

    return run(args)


# --- the command table ----------------------------------------------------------------------


def _review_arguments(parser: argparse.ArgumentParser) -> None:
    from router._review import add_arguments

    add_arguments(parser)


def run_review(args: argparse.Namespace) -> int:
    """``router review FILE``: routed failures, escalations and review cases (router._review)."""
    from router._review import run

    return run(args)


COMMANDS: tuple[Command, ...] = (
    Command("check", "validate the config and print the routing table", check_arguments, run_check),
    Command(
        "health",
        "measure every deployment with a few tiny requests; print its health and breaker",
        _health_arguments,
        run_health,
    ),
    Command(
        "demo",
        "run the local simulated fleet through the router: an outage, breakers opening, "
        "a probe and the recovery",
        _demo_arguments,
        run_demo,
    ),
    Command(
        "report",
        "summarise a JSONL record file: success, failure, escalation and review rates, "
        "cost and latency, per route, step and job",
        _report_arguments,
        run_report,
    ),
    Command(
        "eval",
        "replay labelled data through the router and compare routing policies",
        _eval_arguments,
        run_eval,
    ),
    Command(
        "review",
        "list the routed failures, escalations and human-review cases of a record file, "
        "grouped by route and reason (--html OUT: one self-contained page)",
        _review_arguments,
        run_review,
    ),
    Command(
        "serve",
        "run the router as an OpenAI-compatible HTTP gateway (see the README's Gateway section)",
        lambda parser: _serve_module().add_arguments(parser),
        lambda args: _serve_module().run(args),
    ),
    # To add a subcommand: write _<name>_arguments(parser) and run_<name>(args) -> exit code,
    # then add Command("<name>", "<help>", _<name>_arguments, run_<name>) here.
)


def _serve_module() -> Any:
    # Lazy: starlette and uvicorn (the serve extra) load only for `router serve`.
    from router._serve import _server

    return _server


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with one subparser per row of :data:`COMMANDS`.

    ``only``: the one subcommand whose arguments are set up (the others keep their name and
    help): setting up a subcommand's arguments imports its module, and ``router check`` must
    answer at once.
    """
    parser = argparse.ArgumentParser(
        prog="router", description="Resilience and routing layer over litellm."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        if only is None or command.name == only:
            command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def _chosen(argv: list[str]) -> str | None:
    """The subcommand named by `argv` (its first word, when no option comes before it)."""
    names = {c.name for c in COMMANDS}
    return argv[0] if argv and argv[0] in names else None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors)."""
    parser = build_parser(_chosen(sys.argv[1:] if argv is None else argv))
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
