"""Chaos run: one fault schedule through this router and through LiteLLM's Router, in one run.

    python scripts/bench_chaos.py                    # defaults: 40 s per system at 40 req/s
    python scripts/bench_chaos.py --quick            # a few seconds per system (smoke use)
    python scripts/bench_chaos.py --json out.json    # also write every figure as JSON
    python scripts/bench_chaos.py --systems ours --set hedge_delay=0.1   # try a setting

The world
---------
Three simulated OpenAI-compatible providers (``scripts/fleet.py``, one separate process, knobs
changed over its control plane ``/_sim/{name}/knobs``), priced as in the demo providers.toml:

==  =======================================  ================  =============================
A   cheap and fast: 8-12 ms                  $0.10 / $0.40     per 1M input / output tokens
B   mid-priced, flaky: 18-22 ms, 10 % 503,   $0.25 / $1.00
    5 % 429 with ``Retry-After: 1``
C   expensive, steady: 28-32 ms              $0.50 / $2.00
==  =======================================  ================  =============================

Fault schedule, at fractions of each system's run: t=0 all healthy; t=25 % A answers every
request 503; t=50 % A accepts requests and never answers (hang); t=75 % A is healthy again.

Load: open loop. Poisson arrivals at ``--rate`` per second for ``--duration`` seconds, seeded,
the same arrival times for every system; every request is its own task launched on schedule
whatever the earlier ones are doing, and its latency is measured from its scheduled arrival.
Before each system the fleet is reset (knobs, counters, its random draws), the system is warmed
up (connections, latency samples) on the healthy fleet, and the fleet is reset again.

The systems
-----------
``ours``: ``router.Router`` over one group ``chat`` of the three deployments, each with
``timeout = 1`` s per attempt, and ``[router]``::

    deadline = 5.0, max_attempts = 3, timeout = 1.0
    strategy = "cost"                         # cheapest first; failover down the price list
    hedge = true, hedge_delay = "p95"         # a second attempt when the first is slower
                                              # than its deployment's observed p95
    breaker_open_base = 1.0, breaker_open_max = 2.0   # a dead A is probed every 1-2 s
    breaker_consecutive_failures = 5 (default), retry budget defaults

(why: "cost" keeps traffic on A whenever A's breaker lets it, so A gets its traffic back the
moment a probe succeeds; hedging at the primary's p95 bounds the wait on a probe of a hung A to
about one normal call (a fixed 50-100 ms delay gave a higher p99 for no fewer calls in trial
runs); open periods of 1-2 s (LiteLLM's cooldown here is 2 s) bring A back within about two
seconds of recovering, where a 4 s cap left a third of the "A back" quarter on B and C. The
retry budget, breaker trip rules and backoff are the defaults. ``--set KEY=VALUE`` overrides any
of these.)

LiteLLM's ``litellm.Router`` (1.110.2), once per routing strategy (``simple-shuffle``,
``latency-based-routing``, ``cost-based-routing``, ``least-busy``, ``usage-based-routing-v2``,
which runs in memory without Redis): the same three deployments in one ``model_name`` with the
same ``api_base``, key and ``input_cost_per_token`` / ``output_cost_per_token``, ``timeout=1``
and ``max_retries=0`` (no SDK retries) in ``litellm_params``; ``Router(num_retries=2,
timeout=1)`` (three attempts, like ours); retries re-pick within the group, skipping
deployments in cooldown, so no cross-group ``fallbacks`` are needed. Cooldown:
``allowed_fails=3`` and ``cooldown_time=2`` s (``--litellm-allowed-fails``,
``--litellm-cooldown``): a deployment failing more than 3 times in a minute rests 2 s, short
enough for A to be retried soon after it recovers. LiteLLM's defaults (``allowed_fails`` unset,
5 s cooldown) did much worse here in a trial run: cost-based routing fell to 65 % success with
a p50 of seconds, as B and C cooled down together. Each LiteLLM Router registers global
litellm callbacks; they are removed after its run so no system pays for another's.

What is reported, per system
----------------------------
success rate; p50 and p99 latency of every request (failures included, at the time they
failed); cost per 1,000 requests (each success's usage × the price of the provider that
answered, read from the reply; errors are not billed); cost ÷ oracle; upstream calls per request
(requests the three providers received, from the fleet's counters, ÷ client requests); A's share
of the requests arriving in the last eighth of the run. Per phase: success, p99, who served,
upstream calls. In the JSON also: cost if abandoned attempts (hedges that lost) were billed,
every error, the slowest requests, and for ours the hedges, retries and breaker openings.

The client side is kept honest: a full garbage collection and ``gc.freeze()`` before each
system's run (a full collection of litellm's heap stalls the loop ~200 ms on this machine,
landing on whichever system happens to run), and each system's client CPU seconds and
event-loop lateness are reported, so a run disturbed by other work on the machine shows it.

The oracle serves every request on the cheapest provider not failed by the schedule at its
arrival (A in the first and last quarter, B in between) with one call, at the usage of a normal
request: a lower bound no router can beat without knowing the future draws.

Goals (ours): 100 % success; p99 <= 300 ms with a 1 s attempt timeout; cost <= 1.3 x oracle;
<= 1.15 upstream calls per request; >= 90 % of the last eighth on A; and each figure better
than LiteLLM's best in the same run (the best value any strategy reached for that figure).
The overall best LiteLLM strategy (most goals met, then success, p99, cost) is marked.
A benchmark reports: it exits 0 whether or not goals are met (non-zero only if it crashed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _benchlib import (  # first: it puts the checkout on sys.path if router is not installed
    LITELLM_STRATEGIES,
    OPEN_LOOP_LEAD_S,
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

PROVIDERS = ("a", "b", "c")
GROUP = "chat"
# USD per input token, per output token: the demo providers.toml's three price points.
PRICES: Mapping[str, tuple[float, float]] = {
    "a": (1e-7, 4e-7),
    "b": (2.5e-7, 1e-6),
    "c": (5e-7, 2e-6),
}
# The fleet draws the 429 first, then the error among the rest: 0.10 / 0.95 of those is 503,
# so that 10 % of all of B's requests are 503 and 5 % are 429.
B_429_RATE = 0.05
B_503_RATE = 0.10
BASE_KNOBS: Mapping[str, Mapping[str, Any]] = {
    "a": {"latency_ms": 8.0, "latency_jitter_ms": 4.0},
    "b": {
        "latency_ms": 18.0,
        "latency_jitter_ms": 4.0,
        "error_rate": B_503_RATE / (1.0 - B_429_RATE),
        "error_status": 503,
        "rate_limit_rate": B_429_RATE,
        "retry_after_s": 1.0,
    },
    "c": {"latency_ms": 28.0, "latency_jitter_ms": 4.0},
}
MESSAGES: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": "Summarise this incident report for the on-call channel in one short line: "
        "provider A returned 503 to every request for ten minutes, then stopped answering.",
    }
]
ATTEMPT_TIMEOUT_S = 1.0
DEADLINE_S = 5.0
MAX_ATTEMPTS = 3
# The client gives up on a call after this long and counts it failed; only reachable by a
# system without an overall deadline (LiteLLM's retries each get the full attempt timeout).
CLIENT_CAP_S = 15.0
LAST_EIGHTH = 7.0 / 8.0
# How many of each system's slowest requests the JSON keeps, to show where its tail comes from.
SLOWEST = 20

OURS_SETTINGS: Mapping[str, Any] = {
    "deadline": DEADLINE_S,
    "max_attempts": MAX_ATTEMPTS,
    "timeout": ATTEMPT_TIMEOUT_S,
    "strategy": "cost",
    "hedge": True,
    "hedge_delay": "p95",
    "breaker_open_base": 1.0,
    "breaker_open_max": 2.0,
}
LITELLM_ALLOWED_FAILS = 3
LITELLM_COOLDOWN_S = 2.0


@dataclass(frozen=True)
class Phase:
    """A stretch of the fault schedule: from fraction `at` of the run, these knobs apply."""

    name: str
    at: float
    knobs: Mapping[str, Mapping[str, Any]]
    oracle: str
    """The cheapest provider the schedule has not failed during this phase."""


PHASES: tuple[Phase, ...] = (
    Phase("healthy", 0.0, {}, "a"),
    Phase("A 503", 0.25, {"a": {"outage": "503"}}, "b"),
    Phase("A hangs", 0.50, {"a": {"outage": None, "hang": True}}, "b"),
    Phase("A back", 0.75, {"a": {"hang": False}}, "a"),
)


@dataclass(frozen=True)
class Goal:
    """A target for one figure of ours; `higher` says which direction is better."""

    key: str
    label: str
    target: float
    higher: bool
    unit: str


GOALS: tuple[Goal, ...] = (
    Goal("success", "success rate", 1.0, True, "%"),
    Goal("p99_ms", "p99 latency", 300.0, False, "ms"),
    Goal("cost_ratio", "cost ÷ oracle", 1.3, False, "x"),
    Goal("upstream_per_request", "upstream calls / request", 1.15, False, "x"),
    Goal("a_share_last_eighth", "A's share, last eighth", 0.90, True, "%"),
)
# Figures compared with LiteLLM's best without a goal of their own.
COMPARED: tuple[tuple[str, str, bool, str], ...] = (
    ("p50_ms", "p50 latency", False, "ms"),
    ("cost_per_1k", "cost per 1,000 requests", False, "$"),
)


@dataclass(frozen=True)
class Settings:
    """How much to run (see `parse_args`)."""

    duration: float
    rate: float
    warmup: int
    seed: int
    systems: tuple[str, ...]
    ours: Mapping[str, Any]
    litellm_allowed_fails: int | None
    litellm_cooldown: float | None


@dataclass(frozen=True, slots=True)
class Sample:
    """What happened to one client request."""

    arrival: float
    latency: float
    ok: bool
    served: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 0
    hedged: bool = False
    hedge_won: bool = False
    opened: tuple[str, ...] = ()
    """Deployments whose breaker this call saw open (ours only)."""
    budget_spent: bool = False


@dataclass
class System:
    """One contender: how to call it, and what to print about its configuration."""

    name: str
    kind: str
    config: dict[str, Any]
    call: Callable[[], Awaitable[Any]]


# --- the fleet ------------------------------------------------------------------------------


def fleet_server(seed: int) -> ChildServer:
    """``scripts/fleet.py`` with providers a, b, c and a control plane, in its own process."""
    return sim_fleet_server(seed, PROVIDERS)


# --- the systems ----------------------------------------------------------------------------


def ours_config(urls: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The router config: one group over the three deployments, each with a 1 s timeout."""
    return router_config(urls, settings, PRICES, group=GROUP, timeout=ATTEMPT_TIMEOUT_S)


def build_ours(urls: Mapping[str, str], settings: Settings) -> System:
    """This project's router with the settings under test."""
    ours = router.Router(ours_config(urls, settings.ours), seed=settings.seed)
    effective = ours.config.settings_for(GROUP).model_dump()

    async def call() -> Any:
        return await ours.acompletion(GROUP, MESSAGES)

    return System("ours", "ours", {"router": effective}, call)


def build_litellm(litellm: Any, urls: Mapping[str, str], strategy: str, s: Settings) -> System:
    """LiteLLM's Router with one routing strategy, the same deployments and retry count."""
    kwargs: dict[str, Any] = {
        "num_retries": MAX_ATTEMPTS - 1,
        "timeout": ATTEMPT_TIMEOUT_S,
        "routing_strategy": strategy,
    }
    if s.litellm_allowed_fails is not None:
        kwargs["allowed_fails"] = s.litellm_allowed_fails
    if s.litellm_cooldown is not None:
        kwargs["cooldown_time"] = s.litellm_cooldown
    model_list = litellm_model_list(urls, PRICES, group=GROUP, timeout=ATTEMPT_TIMEOUT_S)
    theirs = litellm.Router(model_list=model_list, **kwargs)

    async def call() -> Any:
        return await theirs.acompletion(model=GROUP, messages=MESSAGES)

    shown = {**kwargs, "model_list": f"{len(PROVIDERS)} deployments in '{GROUP}'"}
    return System(f"litellm {strategy}", "litellm", {"Router": shown}, call)


# --- one run --------------------------------------------------------------------------------


def answered_by(response: Any) -> str | None:
    """The provider that answered, from the simulator's reply text (same for every system)."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError):
        return None
    return served_by(content)


def call_cost(provider: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD of one answered call on `provider`."""
    cin, cout = PRICES[provider]
    return prompt_tokens * cin + completion_tokens * cout


def sample_of(arrival: float, latency: float, outcome: Any) -> Sample:
    """A `Sample` from a response or an exception, with our decision record when there is one."""
    decision = router.get_decision(outcome)
    extra: dict[str, Any] = {}
    if decision is not None:
        extra = {
            "attempts": len(decision.attempts),
            "hedged": decision.hedged,
            "hedge_won": any(a.hedge and a.outcome == "success" for a in decision.attempts),
            "opened": tuple(e.deployment for e in decision.events if e.after.value == "open"),
            "budget_spent": any("retry budget spent" in note for note in decision.notes),
        }
    if isinstance(outcome, BaseException):
        error = type(outcome).__name__
        status = getattr(outcome, "status_code", None)
        return Sample(
            arrival, latency, False, error=f"{error} {status}" if status else error, **extra
        )
    usage = getattr(outcome, "usage", None)
    served = answered_by(outcome)
    return Sample(
        arrival,
        latency,
        served is not None,
        served=served,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        error=None if served is not None else "unrecognised reply",
        **extra,
    )


async def warm_up(system: System, n: int) -> tuple[int, int]:
    """Open connection pools and give latency-aware strategies samples; returns usage tokens."""
    usage = (0, 0)
    for start in range(0, n, 4):
        responses = await asyncio.gather(*(system.call() for _ in range(min(4, n - start))))
        u = responses[-1].usage
        usage = (int(u.prompt_tokens), int(u.completion_tokens))
    return usage


async def run_system(
    system: System, fleet: SimFleet, arrivals: Sequence[float], s: Settings
) -> dict[str, Any]:
    """Warm up, then the whole fault schedule under open-loop load; figures of one system."""
    loop = asyncio.get_running_loop()
    await fleet.reset()
    usage = await warm_up(system, s.warmup)
    await fleet.reset()
    snapshots: list[dict[str, Any]] = []

    def phase_change(phase: Phase) -> Callable[[], Awaitable[None]]:
        async def act() -> None:
            snapshots.append(await fleet.stats())
            await fleet.apply(phase.knobs)

        return act

    events = [(p.at * s.duration, phase_change(p)) for p in PHASES if p.knobs]

    async def fire(index: int, due: float) -> Sample:
        arrival = arrivals[index]
        try:
            response = await asyncio.wait_for(system.call(), CLIENT_CAP_S)
        except Exception as exc:
            return sample_of(arrival, loop.time() - due, exc)
        return sample_of(arrival, loop.time() - due, response)

    monitor = LagMonitor()
    # litellm's heap is large: a full collection of it stalls the loop for ~200 ms on this
    # machine, hitting whichever system happens to be running. Freezing what exists now (the
    # imports, the warmed-up system) leaves the collector only the run's own garbage.
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    cpu = time.process_time()
    origin = loop.time()
    monitor.start()
    try:
        samples = await open_loop(arrivals, fire, events)
    finally:
        stalls = await monitor.stop()
        gc.unfreeze()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - started
    snapshots.append(await fleet.stats())
    figures = analyse(system, samples, snapshots, usage, s, wall)
    # When, on the schedule's clock, the worst client stalls ended (to line up with `slowest`).
    stalls["worst"] = [
        {"at_s": round(at - origin - OPEN_LOOP_LEAD_S, 3), "late_ms": round(late * 1e3, 1)}
        for at, late in sorted(monitor.stalls, key=lambda x: -x[1])[:5]
    ]
    figures["client_stalls"] = stalls
    figures["client_cpu_s"] = cpu
    return figures


# --- analysis -------------------------------------------------------------------------------


def phase_of(arrival: float, duration: float) -> Phase:
    """The phase in force at an arrival time."""
    current = PHASES[0]
    for phase in PHASES:
        if arrival >= phase.at * duration:
            current = phase
    return current


def _requests(stats: Mapping[str, Any]) -> dict[str, int]:
    return {name: int(stats[name]["requests"]) for name in PROVIDERS}


def analyse(
    system: System,
    samples: Sequence[Sample],
    snapshots: Sequence[Mapping[str, Any]],
    usage: tuple[int, int],
    s: Settings,
    wall: float,
) -> dict[str, Any]:
    """Every figure of one system's run."""
    n = len(samples)
    ok = [x for x in samples if x.ok]
    cost = sum(call_cost(x.served, x.prompt_tokens, x.completion_tokens) for x in ok if x.served)
    oracle = sum(call_cost(phase_of(x.arrival, s.duration).oracle, *usage) for x in samples)
    final = snapshots[-1]
    upstream = _requests(final)
    # Requests a provider received but neither answered nor failed nor hung on: attempts the
    # client abandoned mid-flight (hedges that lost). A provider may bill them.
    abandoned = {
        name: max(
            0,
            int(final[name]["requests"])
            - int(final[name]["ok"])
            - sum(int(v) for v in final[name]["errors_by_status"].values())
            - int(final[name]["hung"]),
        )
        for name in PROVIDERS
    }
    abandoned_cost = sum(call_cost(name, *usage) * k for name, k in abandoned.items())
    last = [x for x in samples if x.arrival >= LAST_EIGHTH * s.duration]
    errors: dict[str, int] = {}
    for x in samples:
        if not x.ok:
            key = x.error or "unknown"
            errors[key] = errors.get(key, 0) + 1
    summary = latency_summary([x.latency for x in samples])
    figures: dict[str, Any] = {
        "system": system.name,
        "kind": system.kind,
        "config": system.config,
        "requests": n,
        "success": len(ok) / n,
        "p50_ms": summary["p50"],
        "p99_ms": summary["p99"],
        "latency_ms": summary,
        "cost_per_1k": cost / n * 1000,
        "oracle_cost_per_1k": oracle / n * 1000,
        "cost_ratio": cost / oracle if oracle else float("nan"),
        "cost_per_1k_with_abandoned": (cost + abandoned_cost) / n * 1000,
        "upstream_calls": upstream,
        "upstream_per_request": sum(upstream.values()) / n,
        "abandoned_calls": abandoned,
        "a_share_last_eighth": (
            sum(1 for x in last if x.served == "a") / len(last) if last else float("nan")
        ),
        "errors": errors,
        "phases": phase_figures(samples, snapshots, s.duration),
        "fleet_stats": dict(final),
        "usage_per_request": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
        "slowest": [
            {
                "arrival_s": round(x.arrival, 3),
                "latency_ms": round(x.latency * 1e3, 1),
                "served": x.served,
                "error": x.error,
                "attempts": x.attempts,
                "hedged": x.hedged,
            }
            for x in sorted(samples, key=lambda x: x.latency, reverse=True)[:SLOWEST]
        ],
        "wall_s": wall,
    }
    if system.kind == "ours":
        opened: dict[str, int] = {}
        for x in samples:
            for name in x.opened:
                opened[name] = opened.get(name, 0) + 1
        figures["router"] = {
            "hedged_calls": sum(1 for x in samples if x.hedged),
            "hedges_won": sum(1 for x in samples if x.hedge_won),
            "calls_with_retries": sum(1 for x in samples if x.attempts > 1),
            "breaker_opened": opened,
            "budget_spent_calls": sum(1 for x in samples if x.budget_spent),
        }
    return figures


def phase_figures(
    samples: Sequence[Sample], snapshots: Sequence[Mapping[str, Any]], duration: float
) -> list[dict[str, Any]]:
    """Per phase: requests, success, p50/p99, who served, and upstream calls per request.

    Upstream calls per phase come from fleet counters read at each phase change, so an attempt
    in flight across a change is counted in the phase where the provider received it.
    """
    out: list[dict[str, Any]] = []
    previous = dict.fromkeys(PROVIDERS, 0)
    for index, phase in enumerate(PHASES):
        end = PHASES[index + 1].at if index + 1 < len(PHASES) else 1.0
        mine = [x for x in samples if phase.at * duration <= x.arrival < end * duration]
        counts = _requests(snapshots[index]) if index < len(snapshots) else previous
        calls = sum(counts[p] - previous[p] for p in PROVIDERS)
        previous = counts
        served = {p: sum(1 for x in mine if x.served == p) for p in PROVIDERS}
        k = len(mine)
        lat = latency_summary([x.latency for x in mine])
        out.append(
            {
                "phase": phase.name,
                "requests": k,
                "success": sum(1 for x in mine if x.ok) / k if k else float("nan"),
                "p50_ms": lat["p50"],
                "p99_ms": lat["p99"],
                "served_share": {p: (v / k if k else float("nan")) for p, v in served.items()},
                "upstream_per_request": calls / k if k else float("nan"),
                "hedged": sum(1 for x in mine if x.hedged),
            }
        )
    return out


def _better(ours: float, theirs: float, higher: bool) -> str:
    if abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)):
        return "tie"
    return "better" if (ours > theirs) == higher else "worse"


def judge(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Goals for ours (PASS/MISS), LiteLLM's best per figure, and the best LiteLLM strategy."""
    ours = next((r for r in results if r["kind"] == "ours"), None)
    theirs = [r for r in results if r["kind"] == "litellm"]

    def passed(r: Mapping[str, Any], g: Goal) -> bool:
        value = float(r[g.key])
        return value >= g.target - 1e-12 if g.higher else value <= g.target + 1e-12

    best_overall: str | None = None
    if theirs:
        ranked = sorted(
            theirs,
            key=lambda r: (
                -sum(passed(r, g) for g in GOALS),
                -r["success"],
                r["p99_ms"],
                r["cost_ratio"],
            ),
        )
        best_overall = ranked[0]["system"]
    rows: list[dict[str, Any]] = []
    specs = [(g.key, g.label, g.higher, g.unit, g) for g in GOALS] + [
        (key, label, higher, unit, None) for key, label, higher, unit in COMPARED
    ]
    for key, label, higher, unit, goal in specs:
        row: dict[str, Any] = {"figure": key, "label": label, "unit": unit}
        if goal is not None:
            row["target"] = goal.target
            row["comparison"] = ">=" if goal.higher else "<="
        if ours is not None:
            row["ours"] = ours[key]
            if goal is not None:
                row["pass"] = passed(ours, goal)
        if theirs:
            pick = max if higher else min
            best = pick(theirs, key=lambda r: float(r[key]))
            row["litellm_best"] = best[key]
            row["litellm_best_system"] = best["system"]
            overall = next(r for r in theirs if r["system"] == best_overall)
            row["litellm_overall_best"] = overall[key]
            if ours is not None:
                row["vs_litellm_best"] = _better(float(ours[key]), float(best[key]), higher)
                row["vs_litellm_overall_best"] = _better(
                    float(ours[key]), float(overall[key]), higher
                )
        rows.append(row)
    return {"goals": rows, "litellm_best_overall": best_overall}


# --- report ---------------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit == "%":
        return f"{value:.2%}"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "$":
        return f"${value:.5f}"
    return f"{value:.3f}x"


def report(results: Mapping[str, Any]) -> str:
    """The human-readable tables."""
    m, s = results["machine"], results["settings"]
    best = results["verdict"]["litellm_best_overall"]
    lines = [
        "router chaos run: one fault schedule through this router and LiteLLM's Router",
        f"python {m['python']} | litellm {m['litellm']} | router {m['router']} | "
        f"{m['cpu_count']} CPUs ({m['cpus_usable']} usable) | load at start "
        f"{m['load_average_at_start']}",
        f"load: open loop, Poisson {s['rate']:g} req/s for {s['duration']:g} s per system "
        f"({s['requests']} requests, seed {s['seed']}); order run: {', '.join(s['order'])}",
        "faults: t=0 healthy; 25% A 503 outage; 50% A hangs; 75% A healthy. B: 10% 503 + 5% 429 "
        "(Retry-After 1 s) throughout",
        "",
        f"  {'system':<32}{'success':>9}{'p50':>9}{'p99':>10}{'$/1k req':>11}{'÷oracle':>9}"
        f"{'calls/req':>10}{'A last 1/8':>11}",
    ]
    for r in results["systems"]:
        mark = " *" if r["system"] == best else ""
        lines.append(
            f"  {r['system'] + mark:<32}{r['success']:>9.2%}{r['p50_ms']:>7.1f}ms"
            f"{r['p99_ms']:>8.1f}ms{r['cost_per_1k']:>11.5f}{r['cost_ratio']:>9.3f}"
            f"{r['upstream_per_request']:>10.3f}{r['a_share_last_eighth']:>11.1%}"
        )
    oracle = results["systems"][0]["oracle_cost_per_1k"]
    lines += [
        f"  (oracle: ${oracle:.5f} per 1k requests; * = LiteLLM's best strategy overall: most "
        "goals met, then success, p99, cost; 'LiteLLM best' = the best value any strategy "
        "reached for that figure, 'vs *' = ours against the * strategy)",
        "",
        f"  {'goal':<28}{'target':>10}{'ours':>12}{'':>6}{'LiteLLM best':>14}  "
        f"{'(strategy)':<28}{'ours vs it':>10}{'vs *':>8}",
    ]
    for g in results["verdict"]["goals"]:
        unit = g["unit"]
        target = f"{g['comparison']} {_fmt(g['target'], unit)}" if "target" in g else "-"
        ours = _fmt(g["ours"], unit) if "ours" in g else "-"
        verdict = ("PASS" if g["pass"] else "MISS") if "pass" in g else ""
        theirs = _fmt(g["litellm_best"], unit) if "litellm_best" in g else "-"
        lines.append(
            f"  {g['label']:<28}{target:>10}{ours:>12}{verdict:>6}{theirs:>14}  "
            f"{'(' + g.get('litellm_best_system', '-') + ')':<28}"
            f"{g.get('vs_litellm_best', '-'):>10}{g.get('vs_litellm_overall_best', '-'):>8}"
        )
    for r in results["systems"]:
        if r["kind"] != "ours" and r["system"] != best:
            continue
        lines += ["", f"  per phase, {r['system']}:"]
        for p in r["phases"]:
            share = " ".join(f"{k.upper()} {v:5.1%}" for k, v in p["served_share"].items())
            lines.append(
                f"    {p['phase']:<9} n={p['requests']:<5} success {p['success']:7.2%}  "
                f"p50 {p['p50_ms']:6.1f} ms  p99 {p['p99_ms']:7.1f} ms  calls/req "
                f"{p['upstream_per_request']:.3f}  served: {share}"
                + (f"  hedged {p['hedged']}" if r["kind"] == "ours" else "")
            )
        if r["errors"]:
            lines.append(f"    errors: {r['errors']}")
        if "router" in r:
            x = r["router"]
            lines.append(
                f"    hedged calls {x['hedged_calls']} (hedge won {x['hedges_won']}), calls with "
                f"retries {x['calls_with_retries']}, calls that saw a breaker open "
                f"{x['breaker_opened']}, retry budget spent on {x['budget_spent_calls']} calls"
            )
    lines.append("")
    lines.append(
        "  client process per system: CPU seconds (the system's own work: the fleet runs "
        "elsewhere), and event-loop lateness > 25 ms (its own CPU plus anything else on the "
        "machine)"
    )
    for r in results["systems"]:
        st = r["client_stalls"]
        lines.append(
            f"    {r['system']:<32} CPU {r['client_cpu_s']:6.1f} s   late {st['count']:>4} times, "
            f"total {st['total_ms'] / 1e3:5.2f} s, worst {st['max_ms']:6.0f} ms"
        )
    lines += ["", "configurations:"]
    shown: set[str] = set()
    for r in results["systems"]:
        if r["kind"] not in shown:  # LiteLLM's differ only in routing_strategy
            shown.add(r["kind"])
            lines.append(f"  {r['system']}: {json.dumps(r['config'], default=str)}")
    lines.append(f"run took {results['runtime_s']:.0f} s")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


async def measure(litellm: Any, server: ChildServer, s: Settings) -> dict[str, Any]:
    """Every system through the same schedule, one after another, against the running fleet."""
    arrivals = poisson_arrivals(s.rate, s.duration, random.Random(s.seed))
    if not arrivals:
        raise SystemExit("no arrivals: raise --rate or --duration")
    order = list(s.systems)
    random.Random(f"order:{s.seed}").shuffle(order)
    results: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        fleet = SimFleet(server, session, PROVIDERS, BASE_KNOBS)
        for name in order:
            with litellm_globals_restored(litellm):
                if name == "ours":
                    system = build_ours(fleet.urls, s)
                else:
                    system = build_litellm(litellm, fleet.urls, name, s)
                print(f"running {system.name} ...", file=sys.stderr, flush=True)
                results.append(await run_system(system, fleet, arrivals, s))
        await fleet.reset()
    await close_litellm_clients(litellm)
    results.sort(key=lambda r: (r["kind"] != "ours", s.systems.index(_key(r))))
    return {"systems": results, "order": [_label(n) for n in order], "requests": len(arrivals)}


def _key(r: Mapping[str, Any]) -> str:
    return "ours" if r["kind"] == "ours" else str(r["system"]).removeprefix("litellm ")


def _label(name: str) -> str:
    return name if name == "ours" else f"litellm {name}"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: `kind`, or None for "default" (leave LiteLLM's own default)."""

    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("default", "none") else kind(text)

    return parse


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    """Command-line settings; `--quick` lowers the defaults, explicit values still win."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, help="seconds of load per system (40)")
    parser.add_argument("--rate", type=float, help="arrivals per second (40)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per system (40)")
    parser.add_argument("--seed", type=int, default=0, help="arrivals, fleet draws, order (0)")
    parser.add_argument(
        "--systems",
        default=",".join(("ours", *LITELLM_STRATEGIES)),
        help="comma-separated: ours and/or LiteLLM strategies (default: all)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one of our [router] settings (VALUE read as JSON, else a string)",
    )
    parser.add_argument(
        "--litellm-allowed-fails",
        type=_optional(int),
        default=LITELLM_ALLOWED_FAILS,
        help=f"LiteLLM's allowed_fails ({LITELLM_ALLOWED_FAILS}; 'default' leaves it unset)",
    )
    parser.add_argument(
        "--litellm-cooldown",
        type=_optional(float),
        default=LITELLM_COOLDOWN_S,
        help=f"LiteLLM's cooldown_time in s ({LITELLM_COOLDOWN_S:g}; 'default' leaves it unset)",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per system (smoke)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    systems = tuple(x.strip() for x in args.systems.split(",") if x.strip())
    unknown = [x for x in systems if x != "ours" and x not in LITELLM_STRATEGIES]
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; known: ours, {', '.join(LITELLM_STRATEGIES)}")
    ours = dict(OURS_SETTINGS)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        ours[key.strip()] = _value(value.strip())
    settings = Settings(
        duration=args.duration or (3.0 if args.quick else 40.0),
        rate=args.rate or (20.0 if args.quick else 40.0),
        warmup=args.warmup or (12 if args.quick else 40),
        seed=args.seed,
        systems=systems,
        ours=ours,
        litellm_allowed_fails=args.litellm_allowed_fails,
        litellm_cooldown=args.litellm_cooldown,
    )
    if settings.duration <= 0 or settings.rate <= 0 or settings.warmup < 1:
        parser.error("--duration and --rate must be > 0, --warmup at least 1")
    return settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 whether or not the goals are met."""
    settings, json_path = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    # Breaker transitions are expected here by the hundred; they are counted, not logged.
    logging.getLogger("router").setLevel(logging.ERROR)
    started = time.perf_counter()
    server = fleet_server(settings.seed)
    try:
        with server.running():
            # The fleet boots while litellm imports, which takes seconds.
            litellm = load_litellm()
            results: dict[str, Any] = {"machine": machine_facts()}
            measured = asyncio.run(measure(litellm, server, settings))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    results["settings"] = {
        "duration": settings.duration,
        "rate": settings.rate,
        "warmup": settings.warmup,
        "seed": settings.seed,
        "requests": measured["requests"],
        "order": measured["order"],
        "ours": dict(settings.ours),
        "litellm_allowed_fails": settings.litellm_allowed_fails,
        "litellm_cooldown": settings.litellm_cooldown,
        "phases": [{"phase": p.name, "at": p.at, "knobs": p.knobs} for p in PHASES],
        "base_knobs": BASE_KNOBS,
        "prices": PRICES,
    }
    results["systems"] = measured["systems"]
    results["verdict"] = judge(results["systems"])
    results["runtime_s"] = time.perf_counter() - started
    print(report(results))
    write_json(json_path, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
