"""``router health``: measure every deployment, or print the shared view of a Redis fleet."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router._breaker import State
from router._cli import config_argument
from router._config import Config, ConfigError, Deployment
from router._loading import load_config
from router._tables import STATE_STYLE, Section, aligned, print_sections, quiet_router_log

if TYPE_CHECKING:
    from router._decision import Decision
    from router._router import Router
    from router._state import DeploymentHealth

__all__ = ["health_arguments", "print_fleet_view", "run_health"]

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


def health_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _HEALTH_EPILOG
    config_argument(parser)
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
    from router._redact import safe_url
    from router._redis_view import fleet_view

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
    with quiet_router_log():
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
    table = Section(
        title,
        _HEALTH_COLUMNS,
        rows,
        left=("deployment", "state", "last error"),
        no_wrap=tuple(c for c in _HEALTH_COLUMNS if c != "last error"),
        styles={"state": STATE_STYLE},
    )
    print_sections([table], gap=False)
    if any(getattr(h, "degraded", False) for h in snapshots):
        print("state store degraded: Redis unreachable; this is this process's local view only")
    healthy = len(snapshots) - len(problems)
    verdict = f"{len(snapshots)} deployment(s), {healthy} healthy"
    if problems:
        verdict += "; not healthy: " + ", ".join(f"{n} ({why})" for n, why in problems.items())
    print(verdict)
    return 1 if problems else 0


# --- the shared view (router health --redis URL) ------------------------------------------


def _fleet_problem(entry: Mapping[str, Any]) -> str | None:
    if entry["shared_state"] == "open":
        return f"open for {entry['open_for_s']} s, by {entry['opened_by']}"
    bad = {k: v for k, v in entry["states"].items() if k != State.CLOSED.value}
    if bad:
        return ", ".join(f"{k} in {v} process(es)" for k, v in sorted(bad.items()))
    if entry["paused_for_s"] is not None:
        return f"paused for {entry['paused_for_s']} s ({entry['pause_reason']})"
    return None


def print_fleet_view(view: Mapping[str, Any], as_json: bool) -> int:
    """Print `fleet_view`'s result; 0 if processes report and nothing is open or paused."""
    problems = {d["deployment"]: why for d in view["deployments"] if (why := _fleet_problem(d))}
    processes = view["processes"]
    if as_json:
        print(json.dumps({**view, "problems": problems}, indent=2))
        return 1 if problems or not processes else 0
    print(f"{view['redis']} (prefix {view['prefix']!r}): {len(processes)} process(es) reporting")
    for p in processes:
        print(f"  {p['id']}  last report {p['age_s']} s ago")
    columns = (
        "deployment",
        "shared",
        "open for s",
        "paused for s",
        "processes",
        "states",
        "min score",
        "max error",
        "ewma ms",
        "calls",
        "rpm",
        "tpm",
    )
    rows = []
    for d in view["deployments"]:
        rows.append(
            {
                "deployment": d["deployment"],
                "shared": d["shared_state"],
                "open for s": _dash(d["open_for_s"]),
                "paused for s": _dash(d["paused_for_s"]),
                "processes": str(d["processes"]),
                "states": " ".join(f"{k}:{v}" for k, v in sorted(d["states"].items())) or "-",
                "min score": _dash(d["min_score"], ".2f"),
                "max error": "-"
                if d["max_error_rate"] is None
                else f"{100 * d['max_error_rate']:.0f}%",
                "ewma ms": _dash(d["mean_latency_ms"]),
                "calls": str(d["calls"]),
                "rpm": str(d["rpm_used"]),
                "tpm": str(d["tpm_used"]),
            }
        )
    for line in aligned(columns, rows):
        print("  " + line)
    if not processes:
        print("no router process is reporting to this Redis (prefix right? processes running?)")
        return 1
    verdict = f"{len(rows)} deployment(s), {len(rows) - len(problems)} healthy fleet-wide"
    if problems:
        verdict += "; not healthy: " + "; ".join(f"{n} ({w})" for n, w in problems.items())
    print(verdict)
    return 1 if problems else 0


def _dash(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)
