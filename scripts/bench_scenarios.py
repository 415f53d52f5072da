"""Scenario library run: seeded fault scenarios through this router and its peers, in one run.

    python scripts/bench_scenarios.py                        # every kind, seed 0, all systems
    python scripts/bench_scenarios.py --seeds 0,1,2          # figures as median over seeds
    python scripts/bench_scenarios.py --quick                # smoke: 3 kinds, short runs
    python scripts/bench_scenarios.py --kinds hang,flapping --systems ours,ours-hedge
    python scripts/bench_scenarios.py --set breaker_open_base=2   # try a setting on ours
    python scripts/bench_scenarios.py --systems ours,ours-slo --slo latency_slo=0.08   # objectives
    python scripts/bench_scenarios.py --merge s0.json s1.json s2.json --markdown   # combine

The world and the scenarios are in ``scripts/_scenarios.py``: four simulated deployments of
three providers (A cheap and fast, in two regions ``a`` and ``a2``; B mid-priced and a little
flaky; C dear and steady) in one separate process (``scripts/fleet.py``), and fifteen kinds of
fault schedule (outage 503 / refused, hang, flapping, latency brownout, first-token brownout,
slow-drip and cut streams, partial 429 storms with and without Retry-After, a key-wide 429,
error-rate creep, both of A's deployments failing together, a recovery, mixed latency tails),
each drawn at random within ranges from its seed.

Load: open loop, Poisson arrivals at ``--rate`` for ``--duration`` seconds, the same arrivals
for every system of a scenario; latency from each request's scheduled arrival (streams: until
the last chunk). Before each system's run the fleet is reset, the system warmed up on the
healthy fleet, and the fleet reset again.

The systems, each configured with the same four deployments and a 1 s per-attempt timeout
(``timeout`` on each deployment; everything else at each system's own defaults unless said):

- ``ours``: ``router.Router`` with the project's DEFAULT ``[router]`` settings;
- ``ours-hedge``: the same with ``hedge = true``;
- ``ours-slo`` (only when ``--systems`` names it): the defaults plus latency objectives
  (router._slo), ``--slo KEY=VALUE`` each, else `DEFAULT_SLO`: p95 of 80 ms for whole calls
  and for a stream's first chunk, about twice what the dear provider C normally takes here
  with litellm's client, so every healthy deployment meets it and a browned-out one does not;
- LiteLLM's ``litellm.Router`` once per routing strategy (``simple-shuffle``,
  ``latency-based-routing``, ``cost-based-routing``, ``least-busy``, ``usage-based-routing-v2``)
  with ``num_retries=2`` (three attempts), ``allowed_fails=3``, ``cooldown_time=2`` s (its
  defaults did far worse in ``scripts/bench_chaos.py``), prices in ``litellm_params``;
- Portkey's gateway (``@portkey-ai/gateway@1.15.2``, installed by this script with npm into
  ``~/.cache/router-bench/portkey`` unless ``--portkey-dir`` says where it is, started on a free
  loopback port), reached through ``litellm.acompletion`` with an ``x-portkey-config`` header:
  ``portkey-fallback`` (targets a, a2, b, c in price order, ``strategy.mode = "fallback"``,
  which falls back on any non-2xx answer; ``retry.attempts = 2`` on 429/5xx, Portkey's retry
  default list; ``request_timeout = 1000`` ms) and ``portkey-loadbalance`` (the same targets with
  equal weights, the same retry and timeout). Portkey retries with its own exponential backoff.

Figures per system and scenario: success, p50/p99, cost per 1k requests (successes × the
answering provider's price at the warm-up's usage), cost ÷ the oracle (``_scenarios.oracle_cost``),
upstream calls per request (from the fleet's counters), the cheap provider's share of requests
arriving from 1 s after the recovery to the end. With several seeds each figure is reported as
the median over seeds with its min-max. The summary counts on how many scenario kinds the
default (and ``ours-hedge``) is at least as good as every peer on every figure, and which goals
(100 % success, p99 <= the best peer's, cost <= 1.25x oracle, <= 1.10 calls/request, >= 90 %
cheap share after recovery) it meets. A benchmark: it exits 0 whether or not goals are met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _scenarios as sc
import aiohttp
from _benchlib import (  # first: it puts the checkout on sys.path if router is not installed
    LITELLM_STRATEGIES,
    SIM_API_KEY,
    ChildServer,
    LagMonitor,
    SimFleet,
    close_litellm_clients,
    latency_summary,
    litellm_globals_restored,
    litellm_model_list,
    load_litellm,
    machine_facts,
    open_loop,
    poisson_arrivals,
    raise_keyboard_interrupt,
    router_config,
    served_by,
    sim_fleet_server,
    write_json,
)

import router

API_KEY = SIM_API_KEY
GROUP = "chat"
MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "Summarise the incident in one short line for the channel."}
]
ATTEMPT_TIMEOUT_S = 1.0
CLIENT_CAP_S = 15.0
RECOVERY_GRACE_S = 1.0
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = Path.home() / ".cache" / "router-bench" / "portkey"
PORTKEY_SCRIPT = Path("node_modules/@portkey-ai/gateway/build/start-server.js")
PORTKEY_MODES = ("fallback", "loadbalance")
PEERS = (
    *(f"litellm {s}" for s in LITELLM_STRATEGIES),
    *(f"portkey-{m}" for m in PORTKEY_MODES),
)
SYSTEMS = ("ours", "ours-hedge", *PEERS)
"""The systems run by default."""
OURS = ("ours", "ours-hedge", "ours-slo")
KNOWN = ("ours", "ours-hedge", "ours-slo", *PEERS)
"""Every system, in report order (``ours-slo`` only when asked for)."""
DEFAULT_SLO: Mapping[str, Any] = {"latency_slo": 0.08, "first_chunk_slo": 0.08}
LITELLM_ALLOWED_FAILS = 3
LITELLM_COOLDOWN_S = 2.0
MAX_ATTEMPTS = 3

# (key, label, higher is better)
FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("success", "success", True),
    ("p50_ms", "p50 ms", False),
    ("p99_ms", "p99 ms", False),
    ("cost_per_1k", "$/1k", False),
    ("upstream_per_request", "calls/req", False),
    ("cheap_share_after", "cheap after", True),
    ("cheap_back_s", "cheap back s", False),
)
GOAL_COST_RATIO = 1.25
GOAL_CALLS = 1.10
GOAL_SHARE = 0.90
GOAL_BACK_S = 10.0
BACK_MIN_REQUESTS = 10
"""`cheap_back`: the share is judged over at least this many requests (the run's last ones)."""


@dataclass(frozen=True)
class Settings:
    duration: float
    rate: float
    warmup: int
    seeds: tuple[int, ...]
    kinds: tuple[str, ...]
    systems: tuple[str, ...]
    ours: Mapping[str, Any]
    portkey_dir: Path
    slo: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SLO))
    """``ours-slo``'s objectives, on top of `ours`."""


@dataclass(frozen=True, slots=True)
class Sample:
    arrival: float
    latency: float
    ok: bool
    served: str | None = None
    error: str | None = None


@dataclass
class System:
    name: str
    call: Callable[[bool], Awaitable[str]]
    """Makes one request (streamed or not); returns the answer's text or raises."""
    config: dict[str, Any]
    tally: AttemptTally | None = None
    """Ours only: what its attempts were (a diagnostic, not a figure)."""


class AttemptTally(router.BaseObserver):
    """Counts our router's attempts by deployment, outcome and kind (first, retry, hedge,
    probe) and its breaker openings: where the upstream calls of a run went."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.openings: dict[str, int] = {}
        self.slowest: list[tuple[float, str]] = []
        self.on = False

    def call_finished(
        self, decision: Any, error: BaseException | None, *, messages: Any = None, **_: Any
    ) -> None:
        if not self.on:
            return
        for a in decision.attempts:
            kind = "hedge" if a.hedge else "probe" if a.probe else "first"
            kind = "next" if kind == "first" and a.number > 1 else kind
            key = f"{a.deployment} {kind} {a.outcome}" + (f" {a.error}" if a.error else "")
            self.attempts[key] = self.attempts.get(key, 0) + 1
        trail = " ".join(
            f"{a.deployment}@{a.started_s * 1000:.0f}+{a.latency_s * 1000:.0f}"
            f"{'h' if a.hedge else ''}{'p' if a.probe else ''}:{str(a.outcome)[:4]}"
            for a in decision.attempts
        )
        self.slowest.append((float(decision.elapsed_s), trail))
        if len(self.slowest) > 40:
            self.slowest.sort(reverse=True)
            del self.slowest[8:]

    def transition(self, transition: Any) -> None:
        if self.on and str(transition.after) == "open":
            self.openings[transition.deployment] = self.openings.get(transition.deployment, 0) + 1


# --- the fleet ------------------------------------------------------------------------------


def fleet_server(seed: int) -> ChildServer:
    return sim_fleet_server(seed, sc.DEPLOYMENTS)


# --- the systems ----------------------------------------------------------------------------


async def _drain(stream: Any) -> str:
    parts: list[str] = []
    async for chunk in stream:
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            piece = getattr(delta, "content", None)
            if piece:
                parts.append(piece)
    return "".join(parts)


def _text(response: Any) -> str:
    try:
        return str(response.choices[0].message.content or "")
    except (AttributeError, IndexError):
        return ""


def ours_config(urls: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, Any]:
    return router_config(urls, settings, sc.PRICES, group=GROUP, timeout=ATTEMPT_TIMEOUT_S)


def build_ours(name: str, urls: Mapping[str, str], s: Settings, seed: int) -> System:
    settings = dict(s.ours)
    if name == "ours-hedge":
        settings["hedge"] = True
    elif name == "ours-slo":
        settings.update(s.slo)
    tally = AttemptTally()
    ours = router.Router(ours_config(urls, settings), seed=seed, observer=tally)

    async def call(stream: bool) -> str:
        if stream:
            return await _drain(await ours.acompletion(GROUP, MESSAGES, stream=True))
        return _text(await ours.acompletion(GROUP, MESSAGES))

    return System(name, call, {"router": settings}, tally)


def build_litellm(litellm: Any, urls: Mapping[str, str], strategy: str) -> System:
    model_list = litellm_model_list(urls, sc.PRICES, group=GROUP, timeout=ATTEMPT_TIMEOUT_S)
    kwargs: dict[str, Any] = {
        "num_retries": MAX_ATTEMPTS - 1,
        "timeout": ATTEMPT_TIMEOUT_S,
        "routing_strategy": strategy,
        "allowed_fails": LITELLM_ALLOWED_FAILS,
        "cooldown_time": LITELLM_COOLDOWN_S,
    }
    theirs = litellm.Router(model_list=model_list, **kwargs)

    async def call(stream: bool) -> str:
        if stream:
            response = await theirs.acompletion(model=GROUP, messages=MESSAGES, stream=True)
            return await _drain(response)
        return _text(await theirs.acompletion(model=GROUP, messages=MESSAGES))

    return System(f"litellm {strategy}", call, {"Router": kwargs})


def portkey_config(urls: Mapping[str, str], mode: str) -> dict[str, Any]:
    targets = [
        {
            "provider": "openai",
            "api_key": API_KEY,
            "custom_host": urls[name],
            "override_params": {"model": f"sim-{name}"},
            **({"weight": 1} if mode == "loadbalance" else {}),
        }
        for name in sc.DEPLOYMENTS
    ]
    return {
        "strategy": {"mode": mode},
        "retry": {"attempts": MAX_ATTEMPTS - 1, "on_status_codes": [429, 500, 502, 503, 504]},
        "request_timeout": int(ATTEMPT_TIMEOUT_S * 1000),
        "targets": targets,
    }


def build_portkey(litellm: Any, gateway: str, urls: Mapping[str, str], mode: str) -> System:
    config = portkey_config(urls, mode)
    headers = {"x-portkey-config": json.dumps(config)}

    async def call(stream: bool) -> str:
        kwargs: dict[str, Any] = {
            "model": "openai/sim",
            "messages": MESSAGES,
            "api_base": gateway,
            "api_key": API_KEY,
            "extra_headers": headers,
            "max_retries": 0,
            "timeout": CLIENT_CAP_S,
        }
        if stream:
            return await _drain(await litellm.acompletion(stream=True, **kwargs))
        return _text(await litellm.acompletion(**kwargs))

    return System(f"portkey-{mode}", call, {"x-portkey-config": config})


def ensure_portkey(directory: Path) -> Path:
    """The gateway's start script, installed with npm into `directory` if missing."""
    script = directory / PORTKEY_SCRIPT
    if script.exists():
        return script
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found: Portkey's gateway cannot be installed")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {directory} ...", file=sys.stderr)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return script


def portkey_server(script: Path) -> ChildServer:
    node = shutil.which("node") or "node"

    def argv(ports: Sequence[int]) -> list[str]:
        return [node, str(script), f"--port={ports[0]}", "--headless"]

    return ChildServer("Portkey's gateway", argv, 1, "/", ready_json=False)


# --- one run --------------------------------------------------------------------------------


async def warm_up(system: System, n: int, stream: bool) -> None:
    """Open connections and give latency-aware systems samples (errors are not fatal here)."""
    for start in range(0, n, 4):
        await asyncio.gather(
            *(system.call(stream) for _ in range(min(4, n - start))), return_exceptions=True
        )


async def run_one(
    system: System,
    fleet: SimFleet,
    scenario: sc.Scenario,
    arrivals: Sequence[float],
    s: Settings,
    usage: tuple[int, int],
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    await fleet.reset()
    await warm_up(system, s.warmup, scenario.stream)
    await fleet.reset()

    def act(knobs: Mapping[str, Mapping[str, Any]]) -> Callable[[], Awaitable[None]]:
        async def apply() -> None:
            await fleet.apply(knobs)

        return apply

    events = [(step.at, act(step.knobs)) for step in scenario.steps]
    initial = [step for step in scenario.steps if step.at <= 0.0]
    for step in initial:
        await fleet.apply(step.knobs)

    async def fire(index: int, due: float) -> Sample:
        arrival = arrivals[index]
        try:
            text = await asyncio.wait_for(system.call(scenario.stream), CLIENT_CAP_S)
        except Exception as exc:
            return Sample(arrival, loop.time() - due, False, error=_label(exc))
        served = served_by(text)
        return Sample(
            arrival,
            loop.time() - due,
            served is not None,
            served,
            None if served else "incomplete answer",
        )

    monitor = LagMonitor()
    if system.tally is not None:
        system.tally.on = True
    gc.collect()
    gc.freeze()
    monitor.start()
    try:
        samples = await open_loop(arrivals, fire, [e for e in events if e[0] > 0.0])
    finally:
        stalls = await monitor.stop()
        gc.unfreeze()
    stats = await fleet.stats()
    figures = analyse(system.name, scenario, samples, stats, usage, stalls)
    if system.tally is not None:
        system.tally.on = False
        figures["attempts"] = dict(sorted(system.tally.attempts.items()))
        figures["openings"] = dict(sorted(system.tally.openings.items()))
        slowest = sorted(system.tally.slowest, reverse=True)[:8]
        figures["slowest"] = [f"{t * 1000:.0f}ms {trail}" for t, trail in slowest]
    return figures


def _label(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


def cheap_back(samples: Sequence[Sample], recovered_at: float | None) -> float:
    """Seconds from the recovery until the cheap provider has its traffic back: the earliest
    arrival ``t >= recovered_at`` from which it served at least `GOAL_SHARE` of the requests
    arriving from ``t`` to the end of the run (at least `BACK_MIN_REQUESTS` of them; a failed
    request is not the cheap provider's). NaN without a recovery; infinity when no such
    arrival exists (not back within the run, or the run ends too soon after the recovery to
    tell). A suffix share, so a recovery that comes back and is lost again is not "back"."""
    if recovered_at is None:
        return float("nan")
    after = sorted((x for x in samples if x.arrival >= recovered_at), key=lambda x: x.arrival)
    cheap = 0
    best = float("inf")
    # From the end backwards: the suffix from index i has len(after) - i requests.
    for i in range(len(after) - 1, -1, -1):
        if after[i].ok and after[i].served in sc.CHEAP:
            cheap += 1
        n = len(after) - i
        if n >= BACK_MIN_REQUESTS and cheap >= GOAL_SHARE * n - 1e-9:
            best = after[i].arrival - recovered_at
    return best


def analyse(
    name: str,
    scenario: sc.Scenario,
    samples: Sequence[Sample],
    stats: Mapping[str, Any],
    usage: tuple[int, int],
    stalls: Mapping[str, Any],
) -> dict[str, Any]:
    n = len(samples)
    ok = [x for x in samples if x.ok and x.served in sc.PRICES]
    cost = sum(
        usage[0] * sc.PRICES[x.served][0] + usage[1] * sc.PRICES[x.served][1]
        for x in ok
        if x.served
    )
    oracle = sum(sc.oracle_cost(scenario, x.arrival, usage) for x in samples)
    upstream = {d: int(stats[d]["requests"]) for d in sc.DEPLOYMENTS}
    after = scenario.recovered_at
    if after is None:
        window = [x for x in samples if x.arrival >= scenario.duration / 2]
    else:
        grace = min(RECOVERY_GRACE_S, scenario.duration / 10)
        window = [x for x in samples if x.arrival >= after + grace]
    cheap = sum(1 for x in window if x.served in sc.CHEAP)
    errors: dict[str, int] = {}
    for x in samples:
        if not x.ok:
            errors[x.error or "?"] = errors.get(x.error or "?", 0) + 1
    summary = latency_summary([x.latency for x in samples])
    served = {d: sum(1 for x in ok if x.served == d) for d in sc.DEPLOYMENTS}
    return {
        "system": name,
        "scenario": scenario.name,
        "kind": scenario.kind,
        "seed": scenario.seed,
        "requests": n,
        "success": len(ok) / n if n else float("nan"),
        "p50_ms": summary["p50"],
        "p99_ms": summary["p99"],
        "cost_per_1k": cost / n * 1000 if n else float("nan"),
        "oracle_per_1k": oracle / n * 1000 if n else float("nan"),
        "cost_ratio": cost / oracle if oracle else float("nan"),
        "upstream_per_request": sum(upstream.values()) / n if n else float("nan"),
        "cheap_share_after": cheap / len(window) if window else float("nan"),
        "cheap_back_s": cheap_back(samples, after),
        "after_recovery_s": float("nan") if after is None else scenario.duration - after,
        "served": served,
        "upstream": upstream,
        "errors": errors,
        "client_stalls": dict(stalls),
    }


# --- the library ----------------------------------------------------------------------------


async def measure(
    litellm: Any, fleet_proc: ChildServer, gateway: str | None, s: Settings
) -> list[dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=10)
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fleet = SimFleet(fleet_proc, session, sc.DEPLOYMENTS, sc.BASE_KNOBS)
        known = await fleet.known_knobs()
        await fleet.reset()
        # Every provider answers the same text length, so one usage prices every answer.
        probe = await litellm.acompletion(
            model="openai/sim-a", messages=MESSAGES, api_base=fleet.urls["a"], api_key=API_KEY
        )
        usage = (int(probe.usage.prompt_tokens), int(probe.usage.completion_tokens))
        scenarios = sc.library(s.kinds, s.seeds, s.duration)
        for scenario in scenarios:
            missing = sc.knobs_supported(scenario, known)
            if missing:
                print(f"skipping {scenario.name}: fleet lacks knobs {missing}", file=sys.stderr)
                continue
            arrivals = poisson_arrivals(s.rate, s.duration, random.Random(scenario.name))
            order = list(s.systems)
            random.Random(f"order:{scenario.name}").shuffle(order)
            print(f"{scenario.name}: {scenario.description}", file=sys.stderr, flush=True)
            for name in order:
                if name.startswith("portkey") and (gateway is None or scenario.stream):
                    # Portkey 1.15.2 on this Node answers every stream "Something went wrong"
                    # (TypeError: immutable; Portkey-AI/gateway#1389): not measured on streams.
                    continue
                with litellm_globals_restored(litellm):
                    system = make_system(litellm, name, fleet.urls, gateway, s, scenario.seed)
                    figures = await run_one(system, fleet, scenario, arrivals, s, usage)
                figures["description"] = scenario.description
                figures["stream"] = scenario.stream
                results.append(figures)
                print(
                    f"  {name:<34} ok {figures['success']:7.2%}  p50 {figures['p50_ms']:7.1f}"
                    f"  p99 {figures['p99_ms']:7.1f}  cost {figures['cost_ratio']:5.2f}x"
                    f"  calls {figures['upstream_per_request']:5.3f}"
                    f"  cheap {figures['cheap_share_after']:6.1%}"
                    f"  back {figures['cheap_back_s']:5.2f}s",
                    file=sys.stderr,
                    flush=True,
                )
        await fleet.reset()
    await close_litellm_clients(litellm)
    return results


def make_system(
    litellm: Any,
    name: str,
    urls: Mapping[str, str],
    gateway: str | None,
    s: Settings,
    seed: int,
) -> System:
    if name in OURS:
        return build_ours(name, urls, s, seed)
    if name.startswith("litellm "):
        return build_litellm(litellm, urls, name.removeprefix("litellm "))
    assert gateway is not None
    return build_portkey(litellm, gateway, urls, name.removeprefix("portkey-"))


# --- the report -----------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> system -> figure -> {median, min, max, values} over seeds."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        per = out.setdefault(r["kind"], {}).setdefault(r["system"], {})
        for key in (*(f[0] for f in FIGURES), "cost_ratio", "after_recovery_s"):
            # A run from before a figure existed (a merged older JSON) has no value for it.
            per.setdefault(key, {"values": []})["values"].append(r.get(key, float("nan")))
    for systems in out.values():
        for figures in systems.values():
            for entry in figures.values():
                values = [v for v in entry["values"] if v == v]
                entry["median"] = _median(values)
                entry["min"] = min(values) if values else float("nan")
                entry["max"] = max(values) if values else float("nan")
    return out


def _at_least(ours: float, theirs: float, higher: bool) -> bool:
    if theirs != theirs:
        return True
    if ours != ours:
        return False
    return ours >= theirs - 1e-9 if higher else ours <= theirs + 1e-9


def verdict(agg: Mapping[str, Mapping[str, Mapping[str, Any]]], who: str) -> dict[str, Any]:
    """Per kind: figures where `who` is worse than some peer, and its goals."""
    kinds: dict[str, Any] = {}
    wins = 0
    undominated = 0
    goals_met = 0
    for kind, systems in agg.items():
        if who not in systems:
            continue
        mine = systems[who]
        peers = {k: v for k, v in systems.items() if k in PEERS}
        losses: list[str] = []
        for key, _, higher in FIGURES:
            beaten = [
                (figures[key]["median"], peer)
                for peer, figures in peers.items()
                if not _at_least(mine[key]["median"], figures[key]["median"], higher)
            ]
            if beaten:
                value, peer = (max if higher else min)(beaten)
                losses.append(
                    f"{key} {_short(mine[key]['median'], key)} vs {_short(value, key)} "
                    f"({peer}{f' +{len(beaten) - 1}' if len(beaten) > 1 else ''})"
                )
        best_p99 = min((f["p99_ms"]["median"] for f in peers.values()), default=float("nan"))
        share = mine["cheap_share_after"]["median"]
        back = mine["cheap_back_s"]["median"]
        window = mine["after_recovery_s"]["median"]
        goals = {
            "success 100%": mine["success"]["min"] >= 1.0,
            "p99 <= best peer": _at_least(mine["p99_ms"]["median"], best_p99, False),
            f"cost <= {GOAL_COST_RATIO}x oracle": mine["cost_ratio"]["median"] <= GOAL_COST_RATIO,
            f"calls <= {GOAL_CALLS}": mine["upstream_per_request"]["median"] <= GOAL_CALLS,
            f"cheap share >= {GOAL_SHARE:.0%}": share != share or share >= GOAL_SHARE,
        }
        if back == back and (back <= GOAL_BACK_S or window >= GOAL_BACK_S):
            # Judged when it is back, or when the runs were long enough to have seen it.
            goals[f"cheap back <= {GOAL_BACK_S:g} s"] = back <= GOAL_BACK_S
        # Pareto: a peer at least as good on every figure and better on one. A peer that is
        # cheaper only because it waited seconds through an outage (Portkey's fallback), or
        # calls less because it dropped requests, does not dominate.
        dominated = [
            peer
            for peer, figures in peers.items()
            if all(
                _at_least(figures[key]["median"], mine[key]["median"], higher)
                for key, _, higher in FIGURES
            )
            and any(
                not _at_least(mine[key]["median"], figures[key]["median"], higher)
                for key, _, higher in FIGURES
            )
        ]
        if not losses:
            wins += 1
        if not dominated:
            undominated += 1
        if all(goals.values()):
            goals_met += 1
        kinds[kind] = {
            "losses": losses,
            "goals": goals,
            "best_peer_p99": best_p99,
            "dominated_by": dominated,
        }
    return {
        "kinds": kinds,
        "wins": wins,
        "undominated": undominated,
        "goals_met": goals_met,
        "of": len(kinds),
    }


def verdicts(agg: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """`verdict` for ``ours`` and ``ours-hedge``, and ``ours-slo`` when it was run."""
    ran = {name for systems in agg.values() for name in systems}
    return {who: verdict(agg, who) for who in OURS if who != "ours-slo" or who in ran}


def _short(value: float, key: str) -> str:
    if key == "cheap_back_s":
        return "never" if value == float("inf") else f"{value:.2f}s"
    if key in ("success", "cheap_share_after"):
        return f"{value:.1%}"
    if key.endswith("_ms"):
        return f"{value:.0f}ms"
    if key == "cost_per_1k":
        return f"{value * 1000:.2f}m$"
    return f"{value:.3f}"


def _cell(entry: Mapping[str, Any], key: str, several: bool) -> str:
    m = entry["median"]
    if m != m:
        return "n/a"
    if key in ("success", "cheap_share_after"):
        text = f"{m:.1%}"
        spread = f" ({entry['min']:.1%}-{entry['max']:.1%})"
    elif key == "cheap_back_s":
        # Infinity: not back within the run (see `cheap_back`).
        def back(v: float) -> str:
            return "never" if v == float("inf") else f"{v:.2f}"

        text = back(m)
        spread = f" ({back(entry['min'])}-{back(entry['max'])})"
    elif key.endswith("_ms"):
        text = f"{m:.0f}"
        spread = f" ({entry['min']:.0f}-{entry['max']:.0f})"
    elif key == "cost_per_1k":
        text = f"{m * 1000:.2f}m"
        spread = ""
    else:
        text = f"{m:.3f}" if key == "upstream_per_request" else f"{m:.2f}x"
        spread = f" ({entry['min']:.2f}-{entry['max']:.2f})"
    return text + (spread if several else "")


def report(results: Mapping[str, Any]) -> str:
    s = results["settings"]
    agg = results["aggregate"]
    several = len(s["seeds"]) > 1
    m = results["machine"]
    lines = [
        "router scenario library: seeded faults through this router and its peers, same run",
        f"python {m['python']} | litellm {m['litellm']} | {m['cpu_count']} CPUs | load at "
        f"start {m['load_average_at_start']} | seeds {s['seeds']} | {s['duration']:g} s at "
        f"{s['rate']:g} req/s per system | took {results['runtime_s']:.0f} s",
        "figures: median over seeds (min-max); $/1k in milli-USD; cost also as x oracle",
        "",
    ]
    header = (
        f"  {'system':<32}{'success':>16}{'p50 ms':>12}{'p99 ms':>16}{'$/1k':>8}"
        f"{'x oracle':>18}{'calls/req':>18}{'cheap after':>18}{'back s':>20}"
    )
    descriptions: dict[str, list[str]] = {}
    for r in results["runs"]:
        text = f"#{r['seed']}: {r['description']}"
        if text not in descriptions.setdefault(r["kind"], []):
            descriptions[r["kind"]].append(text)
    for kind, systems in agg.items():
        lines.append(f"{kind}" + ("  (streams)" if kind in results["stream_kinds"] else ""))
        for text in descriptions.get(kind, []):
            lines.append(f"    {text}")
        lines.append(header)
        for name in KNOWN:
            if name not in systems:
                continue
            f = systems[name]
            lines.append(
                f"  {name:<32}{_cell(f['success'], 'success', several):>16}"
                f"{_cell(f['p50_ms'], 'p50_ms', False):>12}"
                f"{_cell(f['p99_ms'], 'p99_ms', several):>16}"
                f"{_cell(f['cost_per_1k'], 'cost_per_1k', False):>8}"
                f"{_cell(f['cost_ratio'], 'cost_ratio', several):>18}"
                f"{_cell(f['upstream_per_request'], 'upstream_per_request', several):>18}"
                f"{_cell(f['cheap_share_after'], 'cheap_share_after', several):>18}"
                f"{_cell(f['cheap_back_s'], 'cheap_back_s', several):>20}"
            )
        lines.append("")
    for who in OURS:
        v = results["verdict"].get(who)
        if not v or not v["of"]:
            continue
        lines.append(
            f"{who}: at least as good as every peer on every figure in {v['wins']} of "
            f"{v['of']} scenario kinds; not dominated by any peer (no peer at least as good "
            f"on every figure and better on one) in {v.get('undominated', '?')} of {v['of']}; "
            f"every goal met in {v['goals_met']} of {v['of']}"
        )
        for kind, k in v["kinds"].items():
            missed = [g for g, ok in k["goals"].items() if not ok]
            by = k.get("dominated_by") or []
            lines.append(
                f"  {kind:<28} worse on: {', '.join(k['losses']) or 'nothing'}"
                + (f" | goals missed: {', '.join(missed)}" if missed else "")
                + (f" | dominated by: {', '.join(by)}" if by else "")
            )
        lines.append("")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


QUICK_KINDS = ("outage_503", "stream_cut")
QUICK_SYSTEMS = ("ours", "ours-hedge", "litellm simple-shuffle")


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, help="seconds of load per system (10)")
    parser.add_argument("--rate", type=float, help="arrivals per second (30)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per system (20)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (0)")
    parser.add_argument("--kinds", help="comma-separated scenario kinds (default: all)")
    parser.add_argument("--systems", help="comma-separated systems (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--slo", action="append", default=[], metavar="KEY=VALUE", help="ours-slo's objectives"
    )
    parser.add_argument("--portkey-dir", type=Path, default=PORTKEY_DIR)
    parser.add_argument("--quick", action="store_true", help="smoke: 3 kinds, short runs")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    default = QUICK_SYSTEMS if args.quick else SYSTEMS
    systems = tuple(x.strip() for x in (args.systems or ",".join(default)).split(",") if x.strip())
    unknown = [x for x in systems if x not in KNOWN]
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; known: {', '.join(KNOWN)}")
    if args.kinds:
        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    else:
        kinds = QUICK_KINDS if args.quick else tuple(sc.KINDS)
    bad = [k for k in kinds if k not in sc.KINDS]
    if bad:
        parser.error(f"--kinds: unknown {bad}; known: {', '.join(sc.KINDS)}")
    ours: dict[str, Any] = {}
    slo: dict[str, Any] = {}
    for flag, items, into in (("--set", args.set, ours), ("--slo", args.slo, slo)):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"{flag} {item!r}: expected KEY=VALUE")
            into[key.strip()] = _value(value.strip())
    try:
        seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    except ValueError:
        parser.error("--seeds: comma-separated integers")
    settings = Settings(
        duration=args.duration or (2.0 if args.quick else 10.0),
        rate=args.rate or (20.0 if args.quick else 30.0),
        warmup=args.warmup or (8 if args.quick else 20),
        seeds=seeds or (0,),
        kinds=kinds,
        systems=systems,
        ours=ours,
        portkey_dir=args.portkey_dir,
        slo=slo or DEFAULT_SLO,
    )
    if settings.duration <= 0 or settings.rate <= 0 or settings.warmup < 1:
        parser.error("--duration and --rate must be > 0, --warmup at least 1")
    return settings, args.json


@contextlib.contextmanager
def _maybe_portkey(s: Settings) -> Iterator[str | None]:
    if not any(x.startswith("portkey") for x in s.systems):
        yield None
        return
    try:
        script = ensure_portkey(s.portkey_dir)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        print(f"Portkey's gateway unavailable, its systems skipped: {exc}", file=sys.stderr)
        yield None
        return
    server = portkey_server(script)
    with server.running():
        yield server.url(0, "/v1")


def merge(paths: Sequence[Path]) -> dict[str, Any]:
    """One result from several runs' JSON files (say one per seed, run apart or in parallel)."""
    loaded = [json.loads(path.read_text()) for path in paths]
    runs = [r for result in loaded for r in result["runs"]]
    for r in runs:  # JSON wrote NaN and infinity as null
        for key, value in list(r.items()):
            if value is None:
                # A recovery the cheap provider was never back from (`cheap_back`) is
                # infinity; without a recovery (no after_recovery_s) it does not apply.
                back = key == "cheap_back_s" and r.get("after_recovery_s") is not None
                r[key] = float("inf") if back else float("nan")
    first = loaded[0]
    settings = dict(first["settings"])
    settings["seeds"] = sorted({s for result in loaded for s in result["settings"]["seeds"]})
    agg = aggregate(runs)
    return {
        "machine": first["machine"],
        "settings": settings,
        "runs": runs,
        "aggregate": agg,
        "stream_kinds": sorted({r["kind"] for r in runs if r["stream"]}),
        "verdict": verdicts(agg),
        "runtime_s": sum(float(result["runtime_s"]) for result in loaded),
        "merged_from": [str(p) for p in paths],
        "loads_at_start": [result["machine"]["load_average_at_start"] for result in loaded],
    }


def markdown(results: Mapping[str, Any]) -> str:
    """The per-kind table (median over seeds, min-max) for the README."""
    agg = results["aggregate"]
    several = len(results["settings"]["seeds"]) > 1
    lines = [
        "| scenario | system | success | p50 ms | p99 ms | × oracle | calls/req | cheap after "
        "| cheap back s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    streams = set(results.get("stream_kinds", ()))
    for kind, systems in agg.items():
        for name in KNOWN:
            if name not in systems:
                if name.startswith("portkey") and kind in streams:
                    lines.append(
                        f"| {kind} | {name} | not measured: Portkey 1.15.2 answers every stream "
                        '"Something went wrong" here (Portkey-AI/gateway#1389) | | | | | | |'
                    )
                continue
            f = systems[name]
            label = f"**{name}**" if name.startswith("ours") else name
            lines.append(
                f"| {kind} | {label} | {_cell(f['success'], 'success', several)} "
                f"| {_cell(f['p50_ms'], 'p50_ms', False)} "
                f"| {_cell(f['p99_ms'], 'p99_ms', several)} "
                f"| {_cell(f['cost_ratio'], 'cost_ratio', several)} "
                f"| {_cell(f['upstream_per_request'], 'upstream_per_request', several)} "
                f"| {_cell(f['cheap_share_after'], 'cheap_share_after', several)} "
                f"| {_cell(f['cheap_back_s'], 'cheap_back_s', several)} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--merge":
        # python scripts/bench_scenarios.py --merge a.json b.json ... [--markdown]
        paths = [Path(a) for a in argv[1:] if not a.startswith("--")]
        merged = merge(paths)
        print(report(merged))
        if "--markdown" in argv:
            print()
            print(markdown(merged))
        return 0
    settings, json_path = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    logging.getLogger("router").setLevel(logging.CRITICAL)
    os.environ.setdefault("LITELLM_LOG", "CRITICAL")
    started = time.perf_counter()
    server = fleet_server(min(settings.seeds))
    try:
        with server.running(), _maybe_portkey(settings) as gateway:
            litellm = load_litellm()
            machine = machine_facts()
            runs = asyncio.run(measure(litellm, server, gateway, settings))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    agg = aggregate(runs)
    results: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "duration": settings.duration,
            "rate": settings.rate,
            "warmup": settings.warmup,
            "seeds": list(settings.seeds),
            "kinds": list(settings.kinds),
            "systems": list(settings.systems),
            "ours": dict(settings.ours),
            "ours-slo": {**settings.ours, **settings.slo},
            "attempt_timeout_s": ATTEMPT_TIMEOUT_S,
            "base_knobs": sc.BASE_KNOBS,
            "prices": sc.PRICES,
        },
        "runs": runs,
        "aggregate": agg,
        "stream_kinds": sorted({r["kind"] for r in runs if r["stream"]}),
        "verdict": verdicts(agg),
        "runtime_s": time.perf_counter() - started,
    }
    print(report(results))
    write_json(json_path, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
