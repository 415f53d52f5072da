"""`router demo`: the simulated fleet, an outage, breakers opening and recovering, live.

The demo starts one simulated provider per deployment of the config (each must point at a
loopback ``api_base``), sends plain and streaming requests through a real `Router` (real
litellm, real HTTP) at a steady pace, takes the cheapest provider down with refused connections
a third of the way in (out of service: answers already in flight finish) and brings it back
later. A live table shows each deployment's breaker,
score, latency and traffic; an events panel shows the breaker transitions as they happen:

    +3.0s alpha closed -> open: 5 consecutive failures (last: ...) (open 1.0 s)
    +4.1s alpha open -> half_open: open period over: one probe admitted
    +4.1s alpha half_open -> open: probe failed: ... (open 2.1 s)
    +6.2s alpha open -> half_open: open period over: one probe admitted
    +6.2s alpha half_open -> closed: probe succeeded

The story's timing comes from the config's breaker settings (providers.toml sets short,
demo-only ones) and the schedule below: the outage starts at `_DOWN_AT`, the provider comes
back at `_BACK_AT`, after its first probe has failed and before its second, and the last part
of the run shows it winning its traffic back (the config ranks by cost). The demo exits 0 only
if every request succeeded, some call failed over, and the cheapest provider's breaker opened
and later closed again; otherwise it says what was missing.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from router._tables import STATE_STYLE, quiet_router_log

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._config import Config
    from router._decision import Decision
    from router._router import Router
    from router._sim import Behavior, Fleet
    from router._state import DeploymentHealth

EMBEDDED_CONFIG = Path(__file__).parent.parent / "demo_providers.toml"

# Character of each simulated provider, by its rank in price (cheapest first): the cheap one is
# fast, the others slower, and the middle one flaky enough to show a failover now and then.
_CHARACTERS: list[dict[str, Any]] = [
    {"latency_ms": 8.0, "latency_jitter_ms": 6.0},
    {"latency_ms": 15.0, "latency_jitter_ms": 10.0, "error_rate": 0.04, "error_status": 503},
    {"latency_ms": 25.0, "latency_jitter_ms": 15.0},
]

# The outage, as fractions of the requests. With the defaults (160 requests at 20/s, 8 s) and
# providers.toml's breaker (open 1 s, then 2 s, +0-10% jitter): down at 2.8 s; open by ~3.0 s;
# the first probe (~4.0-4.2 s) fails, the provider still down; back at 4.8 s; the second probe
# (~6.0-6.4 s) closes the breaker, leaving ~30 requests for the provider to win back. Fewer
# requests (or longer open periods) leave no time for the recovery, and the demo says so.
_DOWN_AT = 0.35
_BACK_AT = 0.60
# The last share of the requests in which the cheapest provider should be serving again.
_TAIL = 0.10
_EVENTS_SHOWN = 6
# Sample route reasons worth showing, in story order: the first of each kind is kept.
_SAMPLE_KINDS = ("failed over", "breaker open, skipped", "probe failed", "probe succeeded")


@dataclass
class _Tally:
    """Everything the live view and the summary show, updated as calls end."""

    started: float = 0.0
    """Router-clock time the load began: event times are shown relative to it."""
    served: dict[str, int] = field(default_factory=dict)
    served_by: dict[int, str] = field(default_factory=dict)
    """Request index -> the deployment that served it."""
    failed_attempts: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cost: float = 0.0
    failovers: int = 0
    ok: int = 0
    bad: list[str] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    seen: set[Transition] = field(default_factory=set)
    done: int = 0
    event: str = "all providers up"

    def record(self, i: int, decision: Decision, elapsed: float) -> None:
        """A call that returned (or whose stream ended): count it and keep its story."""
        self.done += 1
        self.latencies.append(elapsed)
        self.note(decision)
        for attempt in decision.attempts:
            if attempt.outcome != "success" and attempt.outcome != "cancelled":
                name = attempt.deployment
                self.failed_attempts[name] = self.failed_attempts.get(name, 0) + 1
        if decision.deployment is not None and decision.outcome == "success":
            self.ok += 1
            self.served[decision.deployment] = self.served.get(decision.deployment, 0) + 1
            self.served_by[i] = decision.deployment
            self.cost += decision.cost_usd
        if decision.failovers:
            self.failovers += 1

    def failed(self, i: int, exc: Exception, decision: Decision | None) -> None:
        """A call that raised: the demo reports it instead of crashing."""
        self.done += 1
        self.bad.append(f"request {i}: {type(exc).__name__}: {exc}")
        if decision is not None:
            self.note(decision)

    def note(self, decision: Decision) -> None:
        """Keep the call's breaker transitions (once each) and a sample of its reason."""
        for transition in decision.events:
            # Calls running at once can carry the same transition; it happened once.
            if transition not in self.seen:
                self.seen.add(transition)
                self.transitions.append(transition)
        for kind in _sample_kinds(decision):
            self.samples.setdefault(kind, decision.reason)

    def ordered(self) -> list[Transition]:
        """Transitions by the time they happened (calls end, and report, out of order)."""
        return sorted(self.transitions, key=lambda t: t.at)


def _sample_kinds(decision: Decision) -> list[str]:
    kinds = []
    probes = [a for a in decision.attempts if a.probe]
    if decision.failovers and not probes:
        kinds.append("failed over")
    if any("breaker open" in s.why for s in decision.skipped):
        kinds.append("breaker open, skipped")
    if any(a.outcome != "success" for a in probes):
        kinds.append("probe failed")
    if any(a.outcome == "success" for a in probes):
        kinds.append("probe succeeded")
    return kinds


def resolve_config_path(path: str | None) -> Path:
    """The config the demo runs on: the argument, else ./providers.toml, else the embedded one."""
    if path:
        return Path(path)
    env = os.environ.get("ROUTER_CONFIG")
    if env:
        return Path(env)
    local = Path("providers.toml")
    return local if local.exists() else EMBEDDED_CONFIG


def _fleet_for(config: Config, *, ephemeral: bool = False) -> tuple[Fleet, list[str]]:
    """One simulated provider per deployment, and the deployment names cheapest first."""
    from router._sim import Behavior, Fleet
    from router._sim._protocols import protocol_for_model

    specs: dict[str, tuple[int, Behavior]] = {}
    # Each provider speaks its deployment's wire protocol (Anthropic, Gemini, Azure, ...).
    protocols = {d.name: protocol_for_model(d.model) for d in config.deployments}
    ranked = sorted(
        config.deployments,
        key=lambda d: (d.input_cost_per_token or 0.0) + (d.output_cost_per_token or 0.0),
    )
    for rank, deployment in enumerate(ranked):
        url = urlparse(deployment.api_base or "")
        if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
            raise SystemExit(
                f"router demo: deployment '{deployment.name}' is not on the local simulated "
                f"fleet (api_base must be http://127.0.0.1:PORT[/v1]); use your own config with "
                f"the library instead"
            )
        knobs = _CHARACTERS[min(rank, len(_CHARACTERS) - 1)]
        specs[deployment.name] = (0 if ephemeral else url.port, Behavior(**knobs))
    return Fleet(specs, seed=7, protocols=protocols), [d.name for d in ranked]


def _on_fleet(config: Config, fleet: Fleet) -> Config:
    """`config` with every api_base pointing at the running fleet (for ephemeral ports)."""
    from router._config import Config

    data = config.model_dump(exclude_unset=True)
    for entry in data["deployments"]:
        entry["api_base"] = fleet[entry["name"]].base_url
    return Config.from_dict(data, source=config.source)


async def _warm_up(router: Router) -> None:
    """One plain and one streaming call per deployment, straight through the transport.

    litellm's first call pays a one-off setup (about a second) and each deployment's first call
    builds its HTTP client. Neither is the provider's latency, so they go outside the
    measurement and outside the health figures (a peak EWMA would keep them for seconds).
    """
    backend = router.transport
    request = {"messages": [{"role": "user", "content": "warm up"}]}

    async def one(deployment: Any) -> None:
        try:
            await backend.complete(deployment, request, 10.0)
            async for _ in await backend.stream(deployment, request, 10.0):
                pass
        except Exception:  # a provider that fails now is the demo's to show, not this
            return

    await asyncio.gather(*(one(d) for d in router.config.deployments))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(
    tally: _Tally, names: list[str], fleet: Fleet, total: int, health: Sequence[DeploymentHealth]
) -> Any:
    from rich import box
    from rich.table import Table

    by_name = {h.deployment: h for h in health}
    # A light box and short, wrappable headers: nine columns still fit an 80-column terminal.
    table = Table(
        title=f"router demo: {tally.done}/{total} requests - {tally.event}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        caption="failed: failed attempts; share: of the requests served so far",
        caption_justify="left",
    )
    for column in ("deployment", "breaker"):
        table.add_column(column, no_wrap=True)
    for column in ("score", "ewma ms", "err rate", "open for", "served", "failed", "share"):
        table.add_column(column, justify="right")
    for name in names:
        # The simulated provider's own state, beside what the router believes of it.
        down = fleet[name].behavior.outage == "refused"
        label = f"{name} [red]DOWN[/]" if down else name
        served = tally.served.get(name, 0)
        share = f"{100 * served / tally.ok:.0f}%" if tally.ok else "-"
        h = by_name.get(name)
        if h is None:
            breaker, score, ewma, errors, open_for = "-", "-", "-", "-", "-"
        else:
            breaker = f"[{STATE_STYLE.get(h.state, 'white')}]{h.state}[/]"
            score = f"{h.score:.2f}"
            ewma = _ms(h.latency_ms)
            errors = f"{100 * h.error_rate:.0f}%"
            open_for = "-" if h.open_for_s is None else f"{h.open_for_s:.1f} s"
        failed = str(tally.failed_attempts.get(name, 0))
        table.add_row(label, breaker, score, ewma, errors, open_for, str(served), failed, share)
    return table


def _event_line(transition: Transition, started: float, markup: bool) -> str:
    text = (
        f"+{transition.at - started:.1f}s {transition.deployment} "
        f"{transition.before.value} -> {transition.after.value}: {transition.reason}"
    )
    if transition.open_for is not None:
        text += f" (open {transition.open_for:.1f} s)"
    if not markup:
        return text
    from rich.markup import escape

    style = STATE_STYLE.get(transition.after.value, "white")
    return f"[{style}]{escape(text)}[/]"


def _view(
    tally: _Tally, names: list[str], fleet: Fleet, total: int, health: Sequence[DeploymentHealth]
) -> Any:
    from rich.console import Group
    from rich.panel import Panel

    recent = tally.ordered()[-_EVENTS_SHOWN:]
    lines = [_event_line(t, tally.started, markup=True) for t in recent]
    events = Panel(
        "\n".join(lines) or "[dim](no breaker transitions yet)[/]",
        title="breaker events",
        title_align="left",
    )
    return Group(_table(tally, names, fleet, total, health), events)


async def _one(router: Router, group: str, i: int, rng: random.Random, tally: _Tally) -> None:
    from router._decision import get_decision

    messages = [{"role": "user", "content": f"request {i}: say hello in a few words"}]
    started = time.perf_counter()
    try:
        if rng.random() < 0.35:
            stream = await router.acompletion(
                group, messages, stream=True, stream_options={"include_usage": True}
            )
            async for _ in stream:
                pass
            decision = stream.decision
        else:
            response = await router.acompletion(group, messages)
            decision = get_decision(response)
    except Exception as exc:  # the demo reports every failure instead of crashing
        tally.failed(i, exc, get_decision(exc))
        return
    if decision is None:
        tally.failed(i, RuntimeError("the response carried no decision record"), None)
        return
    tally.record(i, decision, time.perf_counter() - started)


async def run_demo(
    config_path: str | None = None,
    *,
    requests: int = 160,
    rate: float = 20.0,
    concurrency: int = 8,
    quiet: bool = False,
    ephemeral: bool = False,
    otlp: str | None = None,
) -> int:
    """Run the demo; returns the process exit code.

    ``ephemeral=True`` runs the fleet on free ports and points the config's deployments at
    them, so the demo can run where the config's ports are taken (tests, a busy machine).
    """
    from rich.console import Console
    from rich.live import Live

    from router._loading import load_config
    from router._router import Router

    path = resolve_config_path(config_path)
    config = load_config(path)
    group = config.group_names()[0]
    fleet, names = _fleet_for(config, ephemeral=ephemeral)
    preferred = names[0]
    down_at, back_at = int(requests * _DOWN_AT), int(requests * _BACK_AT)
    console = Console()
    settings = config.settings_for(group)
    console.print(
        f"[bold]router demo[/]: config {path}, group '{group}' ({settings.strategy} strategy), "
        f"{len(names)} simulated providers, {requests} requests (plain and streaming) at "
        f"{rate:g}/s; {preferred}, the cheapest, is down from request {down_at} to {back_at}. "
        f"Breakers open for {settings.breaker_open_base:g} s, doubling up to "
        f"{settings.breaker_open_max:g} s."
    )
    rng = random.Random(11)
    tally = _Tally()
    await fleet.start()
    observer = None
    try:
        if ephemeral:
            config = _on_fleet(config, fleet)
        observer = _otlp_observer(otlp, console) if otlp else None
        router = Router(config, seed=3, observer=observer)
        await _warm_up(router)
        limiter = asyncio.Semaphore(concurrency)
        tasks: list[asyncio.Task[None]] = []

        async def guarded(i: int) -> None:
            async with limiter:
                await _one(router, group, i, rng, tally)

        def view() -> Any:
            return _view(tally, names, fleet, requests, router.health())

        with (
            quiet_router_log(),
            Live(view(), console=console, refresh_per_second=8, transient=quiet) as live,
        ):
            tally.started = router.clock.now()
            begun = time.monotonic()
            for i in range(requests):
                if i == down_at:
                    # Out of service, not crashed: new requests are refused, and the answers
                    # already being streamed finish (a stream cut mid-way is not something a
                    # router can fail over, and not what this story is about).
                    fleet[preferred].set(outage="refused", drain=True)
                    tally.event = f"{preferred} is DOWN (connection refused)"
                if i == back_at:
                    fleet[preferred].set(outage=None)
                    tally.event = f"{preferred} is back"
                tasks.append(asyncio.create_task(guarded(i)))
                live.update(view())
                # Paced by the schedule, not by sleeping a fixed step: redrawing the view takes
                # time too, and a drifting pace would move the outage against the breaker's
                # wall-clock timings.
                await asyncio.sleep(max(0.0, begun + (i + 1) / rate - time.monotonic()))
            await asyncio.gather(*tasks)
            live.update(view())
    finally:
        await fleet.stop()
        if otlp and observer is not None:
            flush = getattr(observer, "force_flush", None)
            if flush is not None:
                flush()
            console.print(
                f"traces sent to {otlp} (service 'router-demo'); in Jaeger: "
                "http://localhost:16686/search?service=router-demo"
            )
    return _summary(console, tally, requests, preferred, quiet)


def _summary(console: Any, tally: _Tally, total: int, preferred: str, quiet: bool) -> int:
    from rich.markup import escape

    latencies = sorted(tally.latencies)
    p50 = statistics.median(latencies) * 1000 if latencies else 0.0
    p99 = (
        latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000 if latencies else 0.0
    )
    console.print(
        f"\n[bold]summary[/]: {tally.ok}/{total} succeeded "
        f"({100 * tally.ok / total:.1f}%), p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"cost ${tally.cost:.6f}, {tally.failovers} call(s) failed over"
    )
    transitions = tally.ordered()
    kinds = Counter(f"{t.before.value} -> {t.after.value}" for t in transitions)
    counted = ", ".join(f"{kind} ×{n}" for kind, n in kinds.items()) or "none"
    console.print(f"[bold]breaker transitions[/] ({len(transitions)}): {counted}")
    tail = max(1, round(total * _TAIL))
    mine = sum(1 for i in range(total - tail, total) if tally.served_by.get(i) == preferred)
    console.print(
        f"[bold]{preferred}'s share of the last {tail} requests[/]: {mine}/{tail} "
        f"({100 * mine / tail:.0f}%)"
    )
    if len(transitions) > _EVENTS_SHOWN or quiet:
        # The events panel shows the last few; list them all when it could not (or is gone).
        console.print("[bold]breaker events[/]:")
        for transition in transitions:
            console.print(f"  {_event_line(transition, tally.started, markup=True)}")
    if tally.samples:
        console.print("[bold]sample route reasons[/]:")
        for kind in _SAMPLE_KINDS:
            if kind in tally.samples:
                console.print(f"  - {kind}: {escape(tally.samples[kind])}")
    for line in tally.bad[:10]:
        console.print(f"[red]not as designed[/]: {escape(line)}")
    missing = _missing(tally, total, preferred)
    for line in missing:
        console.print(f"[red]missing[/]: {line}")
    if not missing:
        console.print(
            f"[green]as designed[/]: every request succeeded, calls failed over, and "
            f"{preferred}'s breaker opened and closed again on a successful probe."
        )
    return 1 if missing else 0


def _missing(tally: _Tally, total: int, preferred: str) -> list[str]:
    """What the run failed to show, one line each (empty when the story is complete)."""
    missing = []
    if tally.ok < total:
        missing.append(f"{total - tally.ok} of {total} request(s) did not succeed")
    if tally.failovers == 0:
        missing.append("no call failed over")
    own = [t for t in tally.ordered() if t.deployment == preferred]
    opened = next((t.at for t in own if t.after.value == "open"), None)
    if opened is None:
        missing.append(f"{preferred}'s breaker never opened")
    elif not any(t.after.value == "closed" and t.at > opened for t in own):
        missing.append(
            f"{preferred}'s breaker did not close again before the end (no recovery seen); "
            f"more requests (--requests) leave the open period time to end"
        )
    return missing


def _otlp_observer(url: str, console: Any) -> Any:
    """Telemetry exporting the demo's spans to an OTLP endpoint (4317: gRPC, else HTTP)."""
    from router import telemetry
    from router._config import TelemetrySettings

    protocol: Literal["grpc", "http/protobuf"] = (
        "grpc" if url.rstrip("/").endswith(":4317") else "http/protobuf"
    )
    console.print(f"exporting traces to {url} over {protocol}")
    return telemetry.observer_for(
        TelemetrySettings(
            enabled=True,
            endpoint=url,
            protocol=protocol,
            service_name="router-demo",
            logs=False,
            metrics=False,
        )
    )


def main(config_path: str | None = None, requests: int = 160, otlp: str | None = None) -> int:
    """Entry point for `router demo`."""
    return asyncio.run(run_demo(config_path, requests=requests, otlp=otlp))
