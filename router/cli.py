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
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
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

if TYPE_CHECKING:
    from router._decision import Decision
    from router._report import Section
    from router._router import Router
    from router._state import DeploymentHealth

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


def _aligned(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> list[str]:
    """A header line and one line per row, each value starting under its column's header."""
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = []
    for cells in [dict(zip(columns, columns, strict=True)), *rows]:
        line = "  ".join(cells[c].ljust(w) for c, w in zip(columns, widths, strict=True))
        lines.append(line.rstrip())
    return lines


def _print_plain(sections: list[tuple[str, list[dict[str, str]]]]) -> None:
    for title, rows in sections:
        print(title)
        for line in _aligned(_columns(rows), rows):
            print("  " + line)
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
    parser.add_argument(
        "--diff",
        nargs=2,
        metavar=("OLD", "NEW"),
        default=None,
        help="print what a reload from OLD to NEW would change (exit 1 if NEW is invalid)",
    )


def _run_check_diff(old_path: str, new_path: str) -> int:
    from router._diff import diff_configs

    try:
        old = load_config(old_path)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    try:
        new = load_config(new_path)
    except ConfigError as exc:
        print(
            f"{new_path}: invalid; a reload would be refused and change nothing:", file=sys.stderr
        )
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    print("\n".join(diff_configs(old, new).lines()))
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``router check``: 0 if the config is usable (warnings allowed), 1 on any problem."""
    if getattr(args, "diff", None):
        return _run_check_diff(*args.diff)
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


# --- router health --------------------------------------------------------------------------

_HEALTH_COLUMNS = (
    "deployment",
    "state",
    "score",
    "ewma ms",
    "p95 ms",
    "error rate",
    "calls",
    "in-flight",
    "open for s",
    "paused for s",
    "trips",
    "last error",
)
_STATE_STYLE = {"closed": "green", "open": "red", "half_open": "yellow"}
_PING: list[dict[str, Any]] = [{"role": "user", "content": "ping"}]
# A warm-up only has to get litellm's setup done; a slow provider is the probes' to report.
_WARM_UP_TIMEOUT_S = 5.0
_HEALTH_EPILOG = (
    "A process cannot see another process's in-memory breakers and health, so this command "
    "measures: it builds a router from the config, sends N tiny requests (max_tokens=1) to "
    "each deployment by its own name (after one unmeasured warm-up request each, which keeps "
    "litellm's one-off setup out of the figures), and prints what this router saw. Exit 0 if "
    "every deployment is closed, scored above 0 and answered at least one probe, else 1. "
    "With --redis URL it sends nothing: it reads the shared view that the router processes "
    'using that Redis ([state] backend = "redis") publish: shared breakers and pauses, each '
    "process's breaker states, scores and fleet rate-limit usage; exit 0 if processes report "
    "and no deployment is open, half-open or paused anywhere, else 1."
)


@dataclass
class _Probed:
    """What `router health` saw of one deployment beyond its health snapshot."""

    answered: int = 0
    last_error: str | None = None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _health_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _HEALTH_EPILOG
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help="config file (default: $ROUTER_CONFIG, else ./providers.toml)",
    )
    parser.add_argument(
        "--probes",
        type=_positive_int,
        default=3,
        metavar="N",
        help="requests sent to each deployment (default 3)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the snapshots as JSON instead of a table"
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="show the shared view of every router process using this Redis (no probes)",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="key prefix of that fleet (default: the config's [state] key_prefix, else router:)",
    )


@contextmanager
def _quiet_router_log() -> Iterator[None]:
    """Keep the router's breaker log lines off stderr unless logging was configured.

    With no handler anywhere, Python's last-resort handler prints every warning ("breaker
    opened") to stderr, interleaved with the table that already shows the same state. A
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


def _attempt_error(decision: Decision | None) -> str | None:
    """The last provider error among a call's attempts (secret-free labels), if any."""
    if decision is None:
        return None
    errors = [a.error for a in decision.attempts if a.error]
    return errors[-1] if errors else None


def _why_not(exc: BaseException) -> str:
    """Why a call reached no provider at all (e.g. its breaker is open)."""
    from router._errors import describe

    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, dict) and reasons:
        return "; ".join(str(why) for why in reasons.values())
    return describe(exc)


async def _warm_up(router: Router, deployment: Deployment) -> None:
    """One unrecorded call to `deployment`, straight through the transport.

    litellm's first call pays a one-off setup (about a second) and each deployment's first
    call builds its HTTP client. Neither is the provider's latency, and the peak EWMA would
    keep that first sample for many seconds, so it must not reach the health figures.
    """
    timeout = min(deployment.timeout or router.config.router.timeout, _WARM_UP_TIMEOUT_S)
    request = {"messages": _PING, "max_tokens": 1}
    try:
        async with asyncio.timeout(timeout):
            await router.transport.complete(deployment, request, timeout)
    except Exception:  # a failing deployment is the probes' business, not the warm-up's
        return


async def _measure(
    config: Config, probes: int
) -> tuple[list[DeploymentHealth], dict[str, _Probed]]:
    """Send `probes` requests to every deployment; its health snapshots and what was seen."""
    from router._decision import get_decision
    from router._router import Router

    router = Router(config)
    seen = {d.name: _Probed() for d in config.deployments}
    await asyncio.gather(*(_warm_up(router, d) for d in config.deployments))

    async def probe(name: str) -> None:
        record = seen[name]
        # One probe at a time per deployment, so each measures the deployment and not a queue
        # of our own requests; the deployments are measured concurrently.
        for _ in range(probes):
            try:
                response = await router.acompletion(name, _PING, max_tokens=1)
            except Exception as exc:  # measured, not raised: the table reports it
                error = _attempt_error(get_decision(exc))
                if error is not None:
                    record.last_error = error
                elif record.last_error is None:
                    # No provider answered (breaker open, key unset): say why, but never hide
                    # an earlier provider error, which says more.
                    record.last_error = _why_not(exc)
                continue
            record.answered += 1
            # A probe can succeed on a retry after a failed attempt: that error counts too.
            error = _attempt_error(get_decision(response))
            if error is not None:
                record.last_error = error

    await asyncio.gather(*(probe(d.name) for d in config.deployments))
    return router.health(), seen


def _problem(health: DeploymentHealth, probed: _Probed) -> str | None:
    """Why a deployment does not count as healthy, or None."""
    if health.state != "closed":
        return f"breaker {health.state}"
    if health.score <= 0:
        return "score 0"
    if probed.answered == 0:
        return "answered no probe"
    return None


def _tenths(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _health_row(health: DeploymentHealth, probed: _Probed) -> dict[str, str]:
    return {
        "deployment": health.deployment,
        "state": health.state,
        "score": f"{health.score:.2f}",
        "ewma ms": _tenths(health.latency_ms),
        "p95 ms": _tenths(health.p95_ms),
        "error rate": f"{100 * health.error_rate:.0f}%",
        "calls": str(health.calls),
        "in-flight": str(health.in_flight),
        "open for s": _tenths(health.open_for_s),
        "paused for s": _tenths(health.paused_for_s),
        "trips": str(health.trips),
        "last error": probed.last_error or "-",
    }


def _print_health_rich(title: str, rows: list[dict[str, str]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left", title_style="bold")
    for column in _HEALTH_COLUMNS:
        left = column in ("deployment", "state", "last error")
        table.add_column(
            column, justify="left" if left else "right", no_wrap=column != "last error"
        )
    for row in rows:
        cells = [escape(row[c]) for c in _HEALTH_COLUMNS]
        style = _STATE_STYLE.get(row["state"])
        if style:
            at = _HEALTH_COLUMNS.index("state")
            cells[at] = f"[{style}]{cells[at]}[/]"
        table.add_row(*cells)
    Console(file=sys.stdout).print(table)


def _run_shared_health(args: argparse.Namespace) -> int:
    """``router health --redis URL``: the shared view (see router._redis_state.fleet_view)."""
    config: Config | None = None
    if args.path is not None or args.prefix is None:
        try:
            config = load_config(args.path)
        except ConfigError as exc:
            if args.path is not None:  # asked for this file: its problems matter
                for problem in exc.problems:
                    print(problem, file=sys.stderr)
                return 1
    prefix = args.prefix or (config.state.key_prefix if config is not None else "router:")
    names = [d.name for d in config.deployments] if config is not None else []
    from router._redis_state import fleet_view, print_fleet_view, safe_url

    try:
        view = asyncio.run(fleet_view(args.redis, prefix, names=names))
    except Exception as exc:  # unreachable, refused, bad URL: say so, no traceback
        print(f"{safe_url(args.redis)}: cannot read the shared view: {exc}", file=sys.stderr)
        return 1
    return print_fleet_view(view, args.json)


def run_health(args: argparse.Namespace) -> int:
    """``router health``: 0 if every deployment is closed, scored above 0 and answered, else 1."""
    if getattr(args, "redis", None):
        return _run_shared_health(args)
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    with _quiet_router_log():
        snapshots, seen = asyncio.run(_measure(config, args.probes))
    problems = {h.deployment: why for h in snapshots if (why := _problem(h, seen[h.deployment]))}
    if args.json:
        entries = [
            {
                **dataclasses.asdict(h),
                "answered": seen[h.deployment].answered,
                "last_error": seen[h.deployment].last_error,
                "healthy": h.deployment not in problems,
            }
            for h in snapshots
        ]
        print(json.dumps(entries, indent=2))
        return 1 if problems else 0
    rows = [_health_row(h, seen[h.deployment]) for h in snapshots]
    title = f"{config.source}: {args.probes} probe(s) per deployment, as this process saw them"
    if sys.stdout.isatty():
        _print_health_rich(title, rows)
    else:
        print(title)
        for line in _aligned(_HEALTH_COLUMNS, rows):
            print("  " + line)
    if any(getattr(h, "degraded", False) for h in snapshots):
        print("state store degraded: Redis unreachable; this is this process's local view only")
    healthy = len(snapshots) - len(problems)
    verdict = f"{len(snapshots)} deployment(s), {healthy} healthy"
    if problems:
        verdict += "; not healthy: " + ", ".join(f"{n} ({why})" for n, why in problems.items())
    print(verdict)
    return 1 if problems else 0


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


# --- router report --------------------------------------------------------------------------


def _report_arguments(parser: argparse.ArgumentParser) -> None:
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
        for line in _aligned(section.columns, section.rows):
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


# --- the command table ----------------------------------------------------------------------

def _review_arguments(parser: argparse.ArgumentParser) -> None:
    from router._review import add_arguments

    add_arguments(parser)


def run_review(args: argparse.Namespace) -> int:
    """``router review FILE``: routed failures, escalations and review cases (router._review)."""
    from router._review import run

    return run(args)


COMMANDS: tuple[Command, ...] = (
    Command(
        "check", "validate the config and print the routing table", _check_arguments, run_check
    ),
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
