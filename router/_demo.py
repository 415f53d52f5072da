"""`router demo`: the simulated fleet, a mixed workload, an outage half-way, a live table.

The demo starts one simulated provider per deployment of the config (each must point at a
loopback ``api_base``), sends plain and streaming requests through a real `Router` (real
litellm, real HTTP), takes the preferred (cheapest) provider down half-way with a refused
connection, brings it back near the end, and prints a summary. It exits 0 only if every request
ended as designed: a complete answer, within its deadline.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from router._config import Config
    from router._fleet import Behavior, Fleet

EMBEDDED_CONFIG = Path(__file__).with_name("demo_providers.toml")

# Character of each simulated provider, by its rank in price (cheapest first): the cheap one is
# fast, the others slower, and the middle one flaky enough to show a failover now and then.
_CHARACTERS: list[dict[str, Any]] = [
    {"latency_ms": 8.0, "latency_jitter_ms": 6.0},
    {"latency_ms": 15.0, "latency_jitter_ms": 10.0, "error_rate": 0.04, "error_status": 503},
    {"latency_ms": 25.0, "latency_jitter_ms": 15.0},
]


@dataclass
class _Tally:
    served: dict[str, int] = field(default_factory=dict)
    failed_attempts: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cost: float = 0.0
    failovers: int = 0
    ok: int = 0
    bad: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    done: int = 0
    event: str = "all providers up"

    def record(self, decision: Any, elapsed: float) -> None:
        self.done += 1
        self.latencies.append(elapsed)
        for attempt in decision.attempts:
            if attempt.outcome != "success":
                name = attempt.deployment
                self.failed_attempts[name] = self.failed_attempts.get(name, 0) + 1
        if decision.deployment is not None and decision.outcome == "success":
            self.ok += 1
            self.served[decision.deployment] = self.served.get(decision.deployment, 0) + 1
            self.cost += decision.cost_usd
        if decision.failovers:
            self.failovers += 1
            if len(self.reasons) < 4:
                self.reasons.append(decision.reason)


def resolve_config_path(path: str | None) -> Path:
    """The config the demo runs on: the argument, else ./providers.toml, else the embedded one."""
    if path:
        return Path(path)
    env = os.environ.get("ROUTER_CONFIG")
    if env:
        return Path(env)
    local = Path("providers.toml")
    return local if local.exists() else EMBEDDED_CONFIG


def _fleet_for(config: Config) -> tuple[Fleet, list[str]]:
    from router._fleet import Behavior, Fleet

    specs: dict[str, tuple[int, Behavior]] = {}
    ranked = sorted(
        config.deployments,
        key=lambda d: (d.input_cost_per_token or 0.0) + (d.output_cost_per_token or 0.0),
    )
    for rank, deployment in enumerate(ranked):
        url = urlparse(deployment.api_base or "")
        if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
            raise SystemExit(
                f"router demo: deployment '{deployment.name}' is not on the local simulated "
                f"fleet (api_base must be http://127.0.0.1:PORT/v1); use your own config with "
                f"the library instead"
            )
        knobs = _CHARACTERS[min(rank, len(_CHARACTERS) - 1)]
        specs[deployment.name] = (url.port, Behavior(**knobs))
    return Fleet(specs, seed=7), [d.name for d in ranked]


def _table(tally: _Tally, names: list[str], fleet: Fleet, total: int) -> Any:
    from rich.table import Table

    table = Table(
        title=f"router demo: {tally.done}/{total} requests - {tally.event}", title_justify="left"
    )
    for column in ("deployment", "provider state", "served", "failed attempts", "share"):
        table.add_column(
            column, justify="right" if column not in ("deployment", "provider state") else "left"
        )
    for name in names:
        behavior = fleet[name].behavior
        state = "DOWN (refused)" if behavior.outage == "refused" else "up"
        served = tally.served.get(name, 0)
        share = f"{100 * served / tally.ok:.0f}%" if tally.ok else "-"
        table.add_row(name, state, str(served), str(tally.failed_attempts.get(name, 0)), share)
    return table


async def _one(router: Any, group: str, i: int, rng: random.Random, tally: _Tally) -> None:
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
        tally.done += 1
        tally.bad.append(f"request {i}: {type(exc).__name__}: {exc}")
        return
    tally.record(decision, time.perf_counter() - started)


async def run_demo(
    config_path: str | None = None,
    *,
    requests: int = 160,
    rate: float = 20.0,
    concurrency: int = 8,
    quiet: bool = False,
) -> int:
    """Run the demo; returns the process exit code."""
    from rich.console import Console
    from rich.live import Live

    from router._config import load_config
    from router._router import Router

    path = resolve_config_path(config_path)
    config = load_config(path)
    group = config.group_names()[0]
    fleet, names = _fleet_for(config)
    console = Console()
    console.print(
        f"[bold]router demo[/]: config {path}, group '{group}', "
        f"{len(names)} simulated providers, {requests} requests "
        f"(plain and streaming); the cheapest provider goes down half-way."
    )
    rng = random.Random(11)
    tally = _Tally()
    await fleet.start()
    try:
        router = Router(config, seed=3)
        # Warm up litellm (its first call imports and builds clients) outside the measurement.
        await router.acompletion(group, [{"role": "user", "content": "warm up"}])
        preferred = names[0]
        limiter = asyncio.Semaphore(concurrency)
        tasks: list[asyncio.Task[None]] = []

        async def guarded(i: int) -> None:
            async with limiter:
                await _one(router, group, i, rng, tally)

        with Live(
            _table(tally, names, fleet, requests),
            console=console,
            refresh_per_second=8,
            transient=quiet,
        ) as live:
            for i in range(requests):
                if i == requests // 2:
                    fleet[preferred].set(outage="refused")
                    tally.event = f"{preferred} is DOWN (connection refused)"
                if i == (requests * 17) // 20:
                    fleet[preferred].set(outage=None)
                    tally.event = f"{preferred} is back"
                tasks.append(asyncio.create_task(guarded(i)))
                await asyncio.sleep(1.0 / rate)
                live.update(_table(tally, names, fleet, requests))
            await asyncio.gather(*tasks)
            live.update(_table(tally, names, fleet, requests))
    finally:
        await fleet.stop()
    return _summary(console, tally, requests)


def _summary(console: Any, tally: _Tally, total: int) -> int:
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
    if tally.reasons:
        console.print("[bold]sample route reasons[/]:")
        for reason in tally.reasons:
            console.print(f"  - {reason}")
    for line in tally.bad[:10]:
        console.print(f"[red]not as designed[/]: {line}")
    passed = tally.ok == total and tally.failovers > 0
    if tally.failovers == 0:
        console.print("[red]no failover happened: the demo did not show what it should[/]")
    return 0 if passed else 1


def main(config_path: str | None = None, requests: int = 160) -> int:
    """Entry point for `router demo`."""
    return asyncio.run(run_demo(config_path, requests=requests))
