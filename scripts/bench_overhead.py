"""Per-call overhead of `router.Router.acompletion` over raw `litellm.acompletion`.

    python scripts/bench_overhead.py                 # defaults: 1.5-3 minutes on 2 cores
    python scripts/bench_overhead.py --quick         # a few rounds, for smoke use
    python scripts/bench_overhead.py --json out.json # also write every figure as JSON

What is measured
----------------
One simulated OpenAI-compatible provider (``scripts/fleet.py``) is set to answer with zero
added latency, so what a call costs is almost entirely client-side work: litellm building the
request, the HTTP round trip on loopback, litellm parsing the answer, plus whatever a routing
layer adds. Three modes call that same provider with the same messages, non-streaming:

- ``raw``: ``litellm.acompletion(...)`` with retries off and an explicit timeout (the baseline);
- ``router``: this project's ``Router.acompletion("bench", ...)`` over a one-deployment group;
- ``litellm-router``: LiteLLM's own ``litellm.Router`` (the alternative people compare with).

Sections:

1. Sequential: one call at a time. Per mode, the median and p99 of every call; the *added*
   cost of a mode is, per round, its median minus raw's median in that same round, summarised
   over rounds (median, IQR and min-max). p99 added is the pooled p99 of the mode minus the
   pooled p99 of raw (a tail needs every call, so it is not taken per round).
2. Concurrency 1, 32, 256 and 1,024 (``--concurrency``): that many workers making calls back
   to back; throughput = calls / wall time, and the ratio mode / raw per round (median, IQR,
   min-max); every call's latency is kept, so each level also has p50 and p99 per mode and the
   p99 added over raw (pooled over rounds). At each level a round makes about
   ``--calls-per-level`` calls per mode (at least one per worker).
3. In-process: no network at all. A backend whose ``complete`` returns one prebuilt
   ``ModelResponse`` at once is given to the router; ``router.acompletion`` is compared with
   awaiting that backend's ``complete`` directly. The difference is the router's own code
   (config lookup, ranking, deadline scope, decision record, cost), measured in µs with none of
   the millisecond noise of an HTTP round trip.

Why interleaved rounds
----------------------
A 2-core machine drifts: CPU frequency, other processes, litellm's background logging tasks
and the garbage collector move absolute timings by more than the overhead being measured. So
each round runs every mode once, in a freshly shuffled (seeded) order, and differences are
taken within a round, where the drift is shared; the spread over rounds shows how much is
noise. The baseline is always measured in the same run, never remembered from another one.
After warm-up the heap that lives for the whole run (litellm's import, clients, routers) is
frozen out of the garbage collector (``gc.freeze()``), and a ``gc.collect()`` between blocks
keeps one mode's garbage from being collected on another mode's clock.

Why a block ends when litellm's logging is done
-----------------------------------------------
``litellm.acompletion`` queues each call's success logging for a background worker. Past
~256 concurrent calls the worker falls behind and its backlog runs during the next block, on
another mode's clock (measured: a raw block at 256 left 0.61 logging jobs per call queued; the
router queues none, its calls skip that logging). So every timed block ends only when that
backlog has run (`drain_litellm_logging`), each mode paying for its own work; each level prints
the backlog per call its blocks left. ``--no-drain`` stops the clock when the calls return, as
this script did before 2026-12-02 (the figures of the older README tables).

Why the provider runs in another process
----------------------------------------
A server on the client's event loop would put its request handling on the same core and in
the same loop turns as the client, so the client's overhead would be diluted (or inflated) by
server work scheduled in between. In a separate process the server uses the other core and the
client's loop only runs client code, which is what the figures are about.

The goals printed beside the figures are the project's: a routed call costs no more than the
raw litellm call it makes (median added ≤ 0 ms, p99 added ≤ 0 ms, throughput ≥ 1.0× raw at
concurrency 32, 256 and 1,024), since the router skips litellm work it does itself (see
``router/_backend.py``). A benchmark reports; it exits 0 whether or not the goals are met
(non-zero only if it crashed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before anything can import litellm: keep its import off the network (bundled price map).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

try:
    import router
except ImportError:
    # Run from a checkout without `pip install -e .`: the package sits next to scripts/.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import router

Call = Callable[[], Awaitable[Any]]

ROOT = Path(__file__).resolve().parent.parent
FLEET_SCRIPT = ROOT / "scripts" / "fleet.py"
PROVIDER = "bench"
MODEL = "openai/sim-bench"
API_KEY = "sk-sim"
TIMEOUT_S = 120.0
"""Timeout and deadline of every mode: generous, since at concurrency 1,024 on a loaded 2-core
machine a call can wait seconds for the CPU and for litellm's pool (500 connections per host)."""
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say hello in one word."}]
EXPECTED_REPLY = f"Hello from {PROVIDER}."
MODES: tuple[str, ...] = ("raw", "router", "litellm-router")

GOAL_MEDIAN_ADDED_MS = 0.0
GOAL_P99_ADDED_MS = 0.0
GOAL_THROUGHPUT_RATIO = 1.0
GOAL_OWN_WORK_US = 25.0
"""The router's own in-process work per call, telemetry off (bench_telemetry.py: on)."""
SECTIONS = ("sequential", "concurrent", "in-process", "diagnose")
"""What a run measures (``--sections``): a long run split into pieces, one section each."""
DIAGNOSE_MODES = ("raw", "router", "raw-as-router", "raw-scoped", "raw-priced", "raw-info")
"""``--diag-modes`` choices: raw litellm; the router; raw litellm with exactly the keywords the
router's transport passes, inside its logging scope (``raw-as-router``: a difference between it
and ``router`` is the router's own Python, one between it and ``raw`` what the router asks
litellm for); and raw with one of those changes each: inside the logging scope only, with the
per-call prices only, with ``model_info`` only."""


GOAL_LEVELS = (32, 256, 1024)
"""Concurrency levels with a throughput goal (others are reported only)."""

# Seconds to wait for the provider process to answer; its import of aiohttp is quick, but a
# loaded CI machine is not.


@dataclass(frozen=True)
class Settings:
    """How much to measure (see `parse_args` for the defaults and `--quick`)."""

    rounds: int
    calls: int
    concurrency: tuple[int, ...]
    per_worker: int | None
    calls_per_level: int
    inproc_calls: int
    warmup: int
    seed: int
    sections: tuple[str, ...] = SECTIONS[:3]
    diag_modes: tuple[str, ...] = DIAGNOSE_MODES[:3]


# --- statistics -----------------------------------------------------------------------------


# quantile and spread come from _benchlib (shared by every benchmark).


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import (  # noqa: E402  (the scripts folder, after sys.path)
    ChildServer,
    InstantBackend,
    http_json,
    load_litellm,
    quantile,
    spread,
)

# --- the provider process -------------------------------------------------------------------


class Provider(ChildServer):
    """The simulated provider in its own process: started, tuned, and always stopped."""

    def __init__(self) -> None:
        super().__init__(
            f"the simulated provider ({FLEET_SCRIPT.name})",
            lambda ports: [
                sys.executable,
                str(FLEET_SCRIPT),
                "--provider",
                f"{PROVIDER}:{ports[0]}",
            ],
            1,
            "/_sim/stats",
        )

    @property
    def base_url(self) -> str:
        """The OpenAI base URL litellm calls."""
        return self.url(0, "/v1")

    def start(self) -> None:
        """Start it, then zero its latency: the figures are about what the client spends."""
        super().start()
        http_json(self.url(0, "/_sim/knobs"), {"latency_ms": 0, "latency_jitter_ms": 0})

    @property
    def pid(self) -> int:
        """The provider process's id (its CPU is read from /proc)."""
        assert self._proc is not None
        return self._proc.pid

    def stats(self) -> dict[str, Any]:
        """The provider's request counters."""
        result: dict[str, Any] = http_json(self.url(0, "/_sim/stats"))
        return result


# --- the three modes ------------------------------------------------------------------------


def router_config(base_url: str) -> dict[str, Any]:
    """A one-deployment config; the group ``bench`` routes to the deployment ``sim``.

    (A group may not share its deployment's name, so the deployment is called ``sim``.)
    """
    return {
        "router": {"deadline": TIMEOUT_S},
        "deployments": [
            {
                "name": "sim",
                "model": MODEL,
                "api_base": base_url,
                "api_key": API_KEY,
                "timeout": TIMEOUT_S,
                "groups": [PROVIDER],
                "input_cost_per_token": 1e-7,
                "output_cost_per_token": 4e-7,
            }
        ],
    }


def raw_params(base_url: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The raw ``litellm.acompletion`` keywords of the baseline: retries off, explicit timeout."""
    return {
        "model": MODEL,
        "api_base": base_url,
        "api_key": API_KEY,
        "num_retries": 0,
        "max_retries": 0,
        "timeout": timeout,
    }


def build_modes(litellm: Any, base_url: str) -> dict[str, Call]:
    """One zero-argument coroutine function per mode, all calling the same provider."""
    params = raw_params(base_url)
    ours = router.Router(router_config(base_url))
    theirs = litellm.Router(
        model_list=[{"model_name": PROVIDER, "litellm_params": dict(params)}], num_retries=0
    )
    acompletion = litellm.acompletion

    async def raw() -> Any:
        return await acompletion(messages=MESSAGES, **params)

    async def routed() -> Any:
        return await ours.acompletion(PROVIDER, MESSAGES)

    async def litellm_routed() -> Any:
        return await theirs.acompletion(model=PROVIDER, messages=MESSAGES)

    return {"raw": raw, "router": routed, "litellm-router": litellm_routed}


async def timed_calls(call: Call, n: int) -> list[float]:
    """Latency in seconds of each of `n` sequential calls."""
    latencies: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        started = clock()
        await call()
        latencies.append(clock() - started)
    return latencies


def litellm_backlog() -> int:
    """How many logging jobs litellm's logging worker still has queued (0 if it has none)."""
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    queue = getattr(GLOBAL_LOGGING_WORKER, "_queue", None)
    return 0 if queue is None else queue.qsize()


async def drain_litellm_logging() -> None:
    """Wait until litellm has done the logging work its calls left behind.

    ``litellm.acompletion`` hands each call's success logging to a background worker (a queue
    of up to 50,000 jobs, 100 at a time). Once calls arrive faster than it keeps up (from
    ~256 concurrent calls on this machine) the queue grows and its jobs run later: during the
    *next* block, on whichever mode runs then. A block that stops its clock before its own
    backlog has run leaves that CPU out of its time and charges it to the next block (at
    concurrency 256 a raw block ran ~40% of its own logging and the router block after it ran
    the other ~60%). So every timed block ends when that backlog is done, and the per-call
    service-logging tasks litellm creates have run. ``--no-drain`` measures the old way.
    """
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    await GLOBAL_LOGGING_WORKER.flush()
    for _ in range(3):  # tasks created with create_task by the last calls: one loop turn each
        await asyncio.sleep(0)


DRAIN = True
"""Whether timed blocks end only once litellm's deferred logging is done (`--no-drain`: no)."""


async def burst(
    call: Call,
    workers: int,
    per_worker: int,
    latencies: list[float] | None = None,
    backlog: list[int] | None = None,
) -> float:
    """Wall seconds for `workers` concurrent workers to make `per_worker` calls each, and (with
    `DRAIN`) for litellm to finish the logging work those calls left queued."""
    clock = time.perf_counter

    async def worker() -> None:
        for _ in range(per_worker):
            if latencies is None:
                await call()
            else:
                began = clock()
                await call()
                latencies.append(clock() - began)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(workers)))
    if backlog is not None:
        backlog[0] = litellm_backlog()
    if DRAIN:
        await drain_litellm_logging()
    return clock() - started


def per_worker_at(settings: Settings, level: int) -> int:
    """Calls per worker at a concurrency level: ``--per-worker``, else ~calls-per-level total."""
    if settings.per_worker is not None:
        return settings.per_worker
    return max(1, round(settings.calls_per_level / level))


async def warm_up(modes: Mapping[str, Call], settings: Settings) -> None:
    """Open connection pools and pay first-call costs before anything is timed."""
    for name, call in modes.items():
        if name not in MODES:
            continue
        response = await call()
        content = response.choices[0].message.content
        if content != EXPECTED_REPLY:
            raise RuntimeError(f"{name}: unexpected reply {content!r} (want {EXPECTED_REPLY!r})")
        await timed_calls(call, settings.warmup)
        for level in settings.concurrency:
            await burst(call, level, 1)


def _blocks(rng: random.Random) -> list[str]:
    order = list(MODES)
    rng.shuffle(order)
    return order


async def run_sequential(
    modes: Mapping[str, Call], settings: Settings, rng: random.Random
) -> dict[str, Any]:
    """Interleaved rounds of `calls` sequential calls per mode; see the module docstring."""
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    round_medians: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(settings.rounds):
        for mode in _blocks(rng):
            await drain_litellm_logging()  # nothing left over from the block before
            gc.collect()
            latencies = await timed_calls(modes[mode], settings.calls)
            samples[mode].extend(latencies)
            round_medians[mode].append(statistics.median(latencies))
    per_mode = {
        m: {
            "median_ms": statistics.median(samples[m]) * 1e3,
            "p99_ms": quantile(samples[m], 0.99) * 1e3,
            "mean_ms": statistics.fmean(samples[m]) * 1e3,
            "calls": len(samples[m]),
        }
        for m in MODES
    }
    added: dict[str, Any] = {}
    for m in MODES[1:]:
        deltas = [
            (mine - base) * 1e3
            for mine, base in zip(round_medians[m], round_medians["raw"], strict=True)
        ]
        # The same difference relative to raw: a busy or slower machine stretches both, so
        # this drifts less than milliseconds do when the run shares the cores.
        relative = [
            (mine / base - 1.0) * 100.0
            for mine, base in zip(round_medians[m], round_medians["raw"], strict=True)
        ]
        added[m] = {
            "median_added_ms": spread(deltas),
            "median_added_pct": spread(relative),
            "p99_added_ms": per_mode[m]["p99_ms"] - per_mode["raw"]["p99_ms"],
        }
    return {"modes": per_mode, "added": added}


async def run_concurrent(
    modes: Mapping[str, Call], settings: Settings, rng: random.Random, level: int
) -> dict[str, Any]:
    """Interleaved rounds of one burst per mode at `level` workers; throughput, ratio, tails."""
    throughput: dict[str, list[float]] = {m: [] for m in MODES}
    latencies: dict[str, list[float]] = {m: [] for m in MODES}
    backlogs: dict[str, list[float]] = {m: [] for m in MODES}
    backlog_at_end = [0]
    per_worker = per_worker_at(settings, level)
    calls = level * per_worker
    for _ in range(settings.rounds):
        for mode in _blocks(rng):
            await drain_litellm_logging()  # nothing left over from the block before
            gc.collect()
            wall = await burst(modes[mode], level, per_worker, latencies[mode], backlog_at_end)
            backlogs[mode].append(backlog_at_end[0] / calls)
            throughput[mode].append(calls / wall)
    p99 = {m: quantile(latencies[m], 0.99) * 1e3 for m in MODES}
    per_mode = {
        m: {
            "median_calls_per_s": statistics.median(throughput[m]),
            "rounds": throughput[m],
            "p50_ms": quantile(latencies[m], 0.5) * 1e3,
            "p99_ms": p99[m],
            # litellm logging jobs per call still queued when the calls were done (run before
            # the clock stops, unless --no-drain)
            "logging_backlog_per_call": statistics.median(backlogs[m]),
        }
        for m in MODES
    }
    ratio = {
        m: spread([a / b for a, b in zip(throughput[m], throughput["raw"], strict=True)])
        for m in MODES[1:]
    }
    p99_added = {m: p99[m] - p99["raw"] for m in MODES[1:]}
    return {
        "concurrency": level,
        "per_worker": per_worker,
        "calls_per_round": calls,
        "modes": per_mode,
        "ratio_to_raw": ratio,
        "p99_added_ms": p99_added,
    }


# --- diagnose: where a concurrency level's time goes, per mode ----------------------------


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _provider_sockets(port: int) -> dict[str, int]:
    """This machine's TCP sockets whose remote end is the provider's port, by state."""
    states = {"01": "established", "06": "time_wait", "08": "close_wait"}
    counts = dict.fromkeys(states.values(), 0)
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[2].split(":")[1], 16) == port and parts[3] in states:
                counts[states[parts[3]]] += 1
    return counts


class LoopCounters:
    """Counts on the running loop: connections opened (always), and, when `detailed`, every
    call_soon / call_at / call_soon_threadsafe / create_task. Instance attributes on this
    benchmark's own loop only (nothing in litellm or the router is touched)."""

    NAMES = ("create_connection", "call_soon", "call_at", "call_soon_threadsafe", "create_task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.counts = dict.fromkeys(self.NAMES, 0)
        self.detailed = False
        self.max_scheduled = 0
        self._wrap("create_connection", always=True)
        for name in self.NAMES[1:]:
            self._wrap(name, always=False)

    def _wrap(self, name: str, always: bool) -> None:
        original = getattr(self.loop, name)
        counts = self.counts

        if always:

            def counted(*args: Any, **kwargs: Any) -> Any:
                counts[name] += 1
                return original(*args, **kwargs)

        else:

            def counted(*args: Any, **kwargs: Any) -> Any:
                if self.detailed:
                    counts[name] += 1
                return original(*args, **kwargs)

        setattr(self.loop, name, counted)

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


class GcCounter:
    """Collections per generation and total pause time, from gc.callbacks."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.pause_s = 0.0
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.collections[info["generation"]] += 1
            self.pause_s += time.perf_counter() - self._began

    def snapshot(self) -> tuple[list[int], float]:
        return list(self.collections), self.pause_s


def diagnose_modes(litellm: Any, base_url: str, wanted: Sequence[str]) -> dict[str, Call]:
    """The `wanted` modes of `DIAGNOSE_MODES`, all calling the same provider."""
    modes = build_modes(litellm, base_url)
    ours = router.Router(router_config(base_url))
    transport = ours.transport
    deployment = ours.config.deployment("sim")
    request = {"messages": MESSAGES}
    as_router = transport._call(deployment, request, TIMEOUT_S)  # type: ignore[attr-defined]
    scope = transport.quiet.scope  # type: ignore[attr-defined]
    acompletion = litellm.acompletion
    plain = {**raw_params(base_url), "messages": MESSAGES}
    priced = {
        **plain,
        "input_cost_per_token": as_router["input_cost_per_token"],
        "output_cost_per_token": as_router["output_cost_per_token"],
    }
    info = {**plain, "model_info": as_router["model_info"]}

    async def in_scope(kwargs: dict[str, Any] = as_router) -> Any:
        with scope(request):
            return await acompletion(**kwargs)

    async def scoped() -> Any:
        return await in_scope(plain)

    async def with_prices() -> Any:
        return await acompletion(**priced)

    async def with_info() -> Any:
        return await acompletion(**info)

    every: dict[str, Call] = {
        "raw": modes["raw"],
        "router": modes["router"],
        "raw-as-router": in_scope,
        "raw-scoped": scoped,
        "raw-priced": with_prices,
        "raw-info": with_info,
    }
    return {name: every[name] for name in wanted}


async def run_diagnose(
    litellm: Any, provider: Provider, settings: Settings, rng: random.Random
) -> dict[str, Any]:
    """Per level and mode, per round: throughput, p99, connections opened, CPU per call (whole
    process, loop thread, other threads, the provider), GC; then one instrumented block per
    mode counting loop callbacks, timers and tasks per call."""
    modes = diagnose_modes(litellm, provider.base_url, settings.diag_modes)
    names = list(modes)
    for call in modes.values():
        await call()
        for level in settings.concurrency:
            await burst(call, level, 1)
    loop = asyncio.get_running_loop()
    counters = LoopCounters(loop)
    gcc = GcCounter()
    pid = provider.pid
    port = provider.ports[0]
    out: dict[str, Any] = {}
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    for level in settings.concurrency:
        per_worker = per_worker_at(settings, level)
        calls = level * per_worker
        rows: dict[str, dict[str, list[float]]] = {m: {} for m in names}
        lat: dict[str, list[float]] = {m: [] for m in names}

        def add(mode: str, key: str, value: float, rows: dict[str, Any] = rows) -> None:
            rows[mode].setdefault(key, []).append(value)

        for _ in range(settings.rounds):
            order = list(names)
            rng.shuffle(order)
            for mode in order:
                await drain_litellm_logging()  # nothing left over from the block before
                gc.collect()
                before_req = provider.stats()["requests"]
                c0 = counters.snapshot()
                g0, p0 = gcc.snapshot()
                prov0 = _proc_cpu_s(pid)
                proc0, thr0 = time.process_time(), time.thread_time()
                left = [0]
                wall = await burst(modes[mode], level, per_worker, lat[mode], left)
                proc1, thr1 = time.process_time(), time.thread_time()
                prov1 = _proc_cpu_s(pid)
                sockets = _provider_sockets(port)
                g1, p1 = gcc.snapshot()
                c1 = counters.snapshot()
                served = provider.stats()["requests"] - before_req
                add(mode, "calls_per_s", calls / wall)
                add(mode, "cpu_us_per_call", (proc1 - proc0) / calls * 1e6)
                add(mode, "loop_thread_us_per_call", (thr1 - thr0) / calls * 1e6)
                add(
                    mode,
                    "other_threads_us_per_call",
                    ((proc1 - proc0) - (thr1 - thr0)) / calls * 1e6,
                )
                add(mode, "client_cpu_share_of_wall", (proc1 - proc0) / wall)
                add(mode, "provider_us_per_request", (prov1 - prov0) / max(served, 1) * 1e6)
                add(mode, "provider_cpu_share_of_wall", (prov1 - prov0) / wall)
                add(mode, "connections_opened", c1["create_connection"] - c0["create_connection"])
                add(mode, "sockets_established_after", sockets["established"])
                add(mode, "sockets_time_wait_after", sockets["time_wait"])
                add(mode, "gc_collections_per_1000_calls", (sum(g1) - sum(g0)) / calls * 1e3)
                add(mode, "gc_gen2_collections", g1[2] - g0[2])
                add(mode, "gc_pause_us_per_call", (p1 - p0) / calls * 1e6)
                add(mode, "provider_requests_per_call", served / calls)
                add(mode, "logging_backlog_per_call", left[0] / calls)
        ratios = {
            m: spread(
                [
                    a / b
                    for a, b in zip(rows[m]["calls_per_s"], rows["raw"]["calls_per_s"], strict=True)
                ]
            )
            for m in names[1:]
        }
        # One instrumented block per mode: loop work per call (the wrappers cost time, so these
        # blocks are not timed).
        loop_work: dict[str, dict[str, float]] = {}
        for mode in names:
            await drain_litellm_logging()
            gc.collect()
            counters.detailed = True
            counters.max_scheduled = 0
            c0 = counters.snapshot()
            sampler = asyncio.ensure_future(_sample_loop(loop, counters))
            await burst(modes[mode], level, per_worker)
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            counters.detailed = False
            c1 = counters.snapshot()
            loop_work[mode] = {k: (c1[k] - c0[k]) / calls for k in LoopCounters.NAMES[1:]}
            loop_work[mode]["max_timer_handles"] = counters.max_scheduled
            loop_work[mode]["max_tasks"] = counters.max_tasks  # type: ignore[attr-defined]
        out[str(level)] = {
            "calls_per_round": calls,
            "modes": {
                m: {
                    **{k: statistics.median(v) for k, v in rows[m].items()},
                    "spread": {k: spread(v) for k, v in rows[m].items()},
                    "p50_ms": quantile(lat[m], 0.5) * 1e3,
                    "p99_ms": quantile(lat[m], 0.99) * 1e3,
                    "loop_work_per_call": loop_work[m],
                }
                for m in names
            },
            "ratio_to_raw": ratios,
            "client_cache_entries": len(getattr(cache, "cache_dict", {}) or {}),
        }
        # Each level as it finishes (a long run split into holds keeps what it measured).
        print("\n".join(_diagnose_lines({str(level): out[str(level)]})), flush=True)
    gc.callbacks.remove(gcc._callback)
    return out


async def _sample_loop(loop: asyncio.AbstractEventLoop, counters: LoopCounters) -> None:
    """Every 10 ms: the loop's timer heap size and the number of tasks (max over the block)."""
    counters.max_tasks = 0  # type: ignore[attr-defined]
    while True:
        scheduled = len(getattr(loop, "_scheduled", ()))
        counters.max_scheduled = max(counters.max_scheduled, scheduled)
        counters.max_tasks = max(counters.max_tasks, len(asyncio.all_tasks(loop)))  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)


def _diagnose_lines(diag: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for level, d in diag.items():
        names = list(d["modes"])
        lines += [
            "",
            f"Diagnose, concurrency {level}, {d['calls_per_round']} calls/mode/round "
            f"(medians over rounds; litellm client cache entries {d['client_cache_entries']})",
        ]
        keys = [k for k in d["modes"][names[0]] if k not in ("spread", "loop_work_per_call")]
        lines.append(f"  {'figure':<34}" + "".join(f"{m:>16}" for m in names))
        for k in keys:
            lines.append(f"  {k:<34}" + "".join(f"{d['modes'][m][k]:>16.3f}" for m in names))
        for k in d["modes"][names[0]]["loop_work_per_call"]:
            lines.append(
                f"  {'loop ' + k:<34}"
                + "".join(f"{d['modes'][m]['loop_work_per_call'][k]:>16.3f}" for m in names)
            )
        for m in names[1:]:
            r = d["ratio_to_raw"][m]
            lines.append(f"  ratio {m} / raw: {r['median']:.3f} ({_range(r, '.3f')})")
    return lines


# --- in-process: the router's own work ------------------------------------------------------


def prebuilt_response(litellm: Any) -> Any:
    """The answer the in-process backend returns, shaped like the provider's."""
    return litellm.ModelResponse(
        id="chatcmpl-bench",
        model="sim-bench",
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": EXPECTED_REPLY},
                "finish_reason": "stop",
            }
        ],
        usage=litellm.Usage(prompt_tokens=6, completion_tokens=4, total_tokens=10),
    )


async def _loop_seconds(call: Call, n: int) -> float:
    # One clock read per block, not per call: a per-call perf_counter() would cost about as
    # much as the direct backend call being measured.
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return time.perf_counter() - started


async def run_in_process(litellm: Any, settings: Settings, rng: random.Random) -> dict[str, Any]:
    """`router.acompletion` vs the backend's `complete` alone, interleaved rounds."""
    backend = InstantBackend(prebuilt_response(litellm))
    ours = router.Router(router_config("http://unused.invalid/v1"), backend=backend)
    deployment = ours.config.deployment("sim")
    request = {"messages": MESSAGES}

    async def direct() -> Any:
        return await backend.complete(deployment, request, TIMEOUT_S)

    async def routed() -> Any:
        return await ours.acompletion(PROVIDER, MESSAGES)

    calls = {"direct": direct, "router": routed}
    per_round = max(1, settings.inproc_calls // settings.rounds)
    for call in calls.values():
        await _loop_seconds(call, min(per_round, 500))
    us: dict[str, list[float]] = {"direct": [], "router": []}
    for _ in range(settings.rounds):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            gc.collect()
            us[name].append(await _loop_seconds(calls[name], per_round) / per_round * 1e6)
    added = [r - d for r, d in zip(us["router"], us["direct"], strict=True)]
    return {
        "calls_per_mode": per_round * settings.rounds,
        "direct_us": statistics.median(us["direct"]),
        "router_us": statistics.median(us["router"]),
        "added_us": spread(added),
    }


# --- report ---------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: interpreter, litellm, cores."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "litellm": importlib.metadata.version("litellm"),
        "router": importlib.metadata.version("router"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "platform": platform.platform(),
        # Other work on the machine moves every figure; the load says whether there was any.
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def goals(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each goal with the router's figure, PASS/MISS, and LiteLLM Router's figure beside it.

    Only the goals of the sections that ran (``--sections``).
    """

    def row(name: str, unit: str, target: float, at_most: bool, pick: Any) -> dict[str, Any]:
        value = float(pick("router"))
        theirs = pick("litellm-router") if "litellm-router" in MODES else None
        return {
            "goal": name,
            "unit": unit,
            "target": target,
            "comparison": "<=" if at_most else ">=",
            "router": value,
            "litellm_router": None if theirs is None else float(theirs),
            "pass": value <= target if at_most else value >= target,
        }

    rows = []
    if results.get("sequential"):
        added = results["sequential"]["added"]
        rows += [
            row(
                "median added, sequential",
                "ms",
                GOAL_MEDIAN_ADDED_MS,
                True,
                lambda m: added[m]["median_added_ms"]["median"],
            ),
            row(
                "p99 added, sequential",
                "ms",
                GOAL_P99_ADDED_MS,
                True,
                lambda m: added[m]["p99_added_ms"],
            ),
        ]
    for key, level in results["concurrent"].items():
        if int(key) not in GOAL_LEVELS:
            continue
        rows.append(
            row(
                f"throughput vs raw, concurrency {key}",
                "ratio",
                GOAL_THROUGHPUT_RATIO,
                False,
                lambda m, level=level: level["ratio_to_raw"][m]["median"],
            )
        )
        rows.append(
            row(
                f"p99 added, concurrency {key}",
                "ms",
                GOAL_P99_ADDED_MS,
                True,
                lambda m, level=level: level["p99_added_ms"][m],
            )
        )
    if results.get("in_process"):
        inproc = results["in_process"]
        rows.append(
            row(
                "router's own work, telemetry off",
                "us",
                GOAL_OWN_WORK_US,
                True,
                lambda m: inproc["added_us"]["median"] if m == "router" else None,
            )
        )
    return rows


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _range(s: Mapping[str, float], fmt: str) -> str:
    return f"IQR {s['q25']:{fmt}}..{s['q75']:{fmt}}, min-max {s['min']:{fmt}}..{s['max']:{fmt}}"


def report(results: Mapping[str, Any]) -> str:
    """The human-readable table."""
    m, s = results["machine"], results["settings"]
    seq, inproc = results.get("sequential"), results.get("in_process")
    lines = [
        "router: per-call overhead vs raw litellm (same provider, same run, interleaved rounds)",
        f"python {m['python']} ({m['implementation']}) | litellm {m['litellm']} | "
        f"router {m['router']} | {m['cpu_count']} CPUs ({m['cpus_usable']} usable) | "
        f"{m['cpu_model']}",
        f"provider: scripts/fleet.py in its own process at {results['provider']['base_url']}, "
        "latency 0 ms",
        f"settings: {s['rounds']} rounds (seed {s['seed']}); sequential {s['calls']} calls/mode/"
        f"round; concurrency {', '.join(map(str, s['concurrency']))} at ~"
        f"{s['calls_per_level']} calls/mode/round; in-process {s['inproc_calls']} calls/mode; "
        f"sections {', '.join(s['sections'])}",
    ]
    if seq:
        lines += _sequential_lines(seq)
    for conc in results["concurrent"].values():
        lines += _concurrent_lines(conc)
    if results.get("diagnose"):
        lines += _diagnose_lines(results["diagnose"])
    if inproc:
        added_us = inproc["added_us"]
        lines += [
            "",
            "In-process (no network): router.acompletion vs the backend's complete() alone",
            f"  backend.complete   {inproc['direct_us']:8.2f} µs/call",
            f"  router.acompletion {inproc['router_us']:8.2f} µs/call",
            f"  added              {added_us['median']:8.2f} µs/call   ({_range(added_us, '.2f')})",
        ]
    lines += [
        "",
        f"  {'goal (router vs raw litellm)':<38}{'target':>12}{'router':>12}{'result':>8}"
        f"{'LiteLLM Router':>17}",
    ]
    for g in results["goals"]:
        theirs = "-"
        if g["unit"] == "ms":
            target, ours = _ms(g["target"]), _ms(g["router"])
            if g["litellm_router"] is not None:
                theirs = _ms(g["litellm_router"])
        elif g["unit"] == "us":
            target, ours = f"{g['target']:g} µs", f"{g['router']:.1f} µs"
        else:
            target, ours = f"{g['target']:.0%}", f"{g['router']:.1%}"
            if g["litellm_router"] is not None:
                theirs = f"{g['litellm_router']:.1%}"
        lines.append(
            f"  {g['goal']:<38}{g['comparison'] + ' ' + target:>12}{ours:>12}"
            f"{'PASS' if g['pass'] else 'MISS':>8}{theirs:>17}"
        )
    stats = results["provider"]["stats"]
    lines += [
        "",
        f"provider served {stats['ok']} of {stats['requests']} requests OK; "
        f"run took {results['runtime_s']:.0f} s",
    ]
    if m.get("load_avg") and m.get("load_avg_end"):
        lines.append(
            f"load average (1 min) {m['load_avg'][0]:.2f} at start, "
            f"{m['load_avg_end'][0]:.2f} at end (above ~0.5 means other work shared the cores)"
        )
    return "\n".join(lines)


def _sequential_lines(seq: Mapping[str, Any]) -> list[str]:
    lines = [
        "",
        f"Sequential, {seq['modes']['raw']['calls']} calls per mode "
        "(added = per-round median minus raw's, over rounds)",
        f"  {'mode':<15}{'median':>11}{'p99':>11}   {'added median':>12}{'% of raw':>10}   "
        f"{'spread of added over rounds (ms)':<44}{'p99 added':>11}",
    ]
    for mode in MODES:
        figures = seq["modes"][mode]
        head = f"  {mode:<15}{_ms(figures['median_ms']):>11}{_ms(figures['p99_ms']):>11}"
        if mode == "raw":
            lines.append(f"{head}   {'(baseline)':>12}")
            continue
        a = seq["added"][mode]
        med = a["median_added_ms"]
        pct = a["median_added_pct"]["median"]
        lines.append(
            f"{head}   {_ms(med['median']):>12}{pct:>+9.1f}%   {_range(med, '+.3f'):<44}"
            f"{_ms(a['p99_added_ms']):>11}"
        )
    return lines


def _concurrent_lines(conc: Mapping[str, Any]) -> list[str]:
    lines = [
        "",
        f"Concurrency {conc['concurrency']}, {conc['calls_per_round']} calls per mode per "
        "round (p99 pooled over rounds)",
        f"  {'mode':<15}{'calls/s':>10}   {'ratio to raw':>12}{'p50':>12}{'p99':>12}"
        f"{'p99 added':>11}   spread of the ratio over rounds",
    ]
    for mode in MODES:
        f = conc["modes"][mode]
        shown = "(baseline)"
        if mode != "raw":
            shown = format(conc["ratio_to_raw"][mode]["median"], ".3f")
        head = (
            f"  {mode:<15}{f['median_calls_per_s']:>10.0f}   {shown:>12}"
            f"{_ms(f['p50_ms']):>12}{_ms(f['p99_ms']):>12}"
        )
        if mode == "raw":
            lines.append(head)
            continue
        r = conc["ratio_to_raw"][mode]
        lines.append(f"{head}{_ms(conc['p99_added_ms'][mode]):>11}   {_range(r, '.3f')}")
    backlog = ", ".join(
        f"{mode} {conc['modes'][mode]['logging_backlog_per_call']:.3f}" for mode in MODES
    )
    drained = "run before each block's clock stopped" if DRAIN else "NOT drained (--no-drain)"
    lines.append(
        f"  litellm logging jobs still queued per call at a block's end: {backlog} ({drained})"
    )
    return lines


# --- main -----------------------------------------------------------------------------------


async def measure(litellm: Any, provider: Provider, settings: Settings) -> dict[str, Any]:
    """Every section, against the running provider."""
    rng = random.Random(settings.seed)
    modes = build_modes(litellm, provider.base_url)
    await warm_up(modes, settings)
    # Everything alive now (litellm's import, the clients, the routers) stays alive for the
    # run; freezing it out of the collector's view makes the gc.collect() between blocks cost
    # milliseconds instead of ~0.2 s each, and keeps full collections of that static heap from
    # landing in some block's timings. Garbage made by the calls is still collected as usual.
    gc.collect()
    gc.freeze()
    wanted = settings.sections
    # Each section and level is printed as it finishes (a run cut short by a time limit keeps
    # what it measured); the full report and the goals follow at the end.
    sequential = await run_sequential(modes, settings, rng) if "sequential" in wanted else None
    if sequential is not None:
        print("\n".join(_sequential_lines(sequential)), flush=True)
    concurrent: dict[str, Any] = {}
    for level in settings.concurrency if "concurrent" in wanted else ():
        concurrent[str(level)] = await run_concurrent(modes, settings, rng, level)
        print("\n".join(_concurrent_lines(concurrent[str(level)])), flush=True)
    in_process = await run_in_process(litellm, settings, rng) if "in-process" in wanted else None
    diagnose = (
        await run_diagnose(litellm, provider, settings, rng) if "diagnose" in wanted else None
    )
    # Close litellm's cached HTTP clients on this loop, not at interpreter exit after it closed.
    close = getattr(litellm, "close_litellm_async_clients", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
    return {
        "sequential": sequential,
        "concurrent": concurrent,
        "in_process": in_process,
        "diagnose": diagnose,
    }


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    """Command-line settings; `--quick` lowers every default, explicit values still win."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, help="interleaved rounds per section (default 20)")
    parser.add_argument("--calls", type=int, help="sequential calls per mode per round (100)")
    parser.add_argument(
        "--concurrency",
        default="1,32,256,1024",
        help="comma-separated concurrency levels (1,32,256,1024)",
    )
    parser.add_argument(
        "--calls-per-level", type=int, help="calls per mode per round at each level (~400)"
    )
    parser.add_argument("--per-worker", type=int, help="calls per worker (overrides the above)")
    parser.add_argument("--inproc-calls", type=int, help="in-process calls per mode (20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mode order shuffle")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS[:3]),
        help="comma-separated sections to run (sequential,concurrent,in-process; diagnose on "
        "request): a long run "
        "split into pieces",
    )
    parser.add_argument(
        "--diag-modes",
        default="raw,router,raw-as-router",
        help=f"modes of the diagnose section, raw first ({','.join(DIAGNOSE_MODES)})",
    )
    parser.add_argument(
        "--without-litellm-router",
        action="store_true",
        help="leave LiteLLM's Router out (raw and router only: a shorter run)",
    )
    parser.add_argument(
        "--no-drain",
        action="store_true",
        help="stop a block's clock when its calls are done, before litellm ran the logging "
        "they queued (the method before 2026-12-02 evening; see drain_litellm_logging)",
    )
    parser.add_argument("--quick", action="store_true", help="a few small rounds (smoke use)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    global DRAIN, MODES
    DRAIN = not args.no_drain
    if args.without_litellm_router:
        MODES = MODES[:2]
    quick = args.quick
    settings = Settings(
        rounds=args.rounds or (3 if quick else 20),
        calls=args.calls or (20 if quick else 100),
        concurrency=_levels(parser, args.concurrency),
        per_worker=args.per_worker,
        calls_per_level=args.calls_per_level or (64 if quick else 400),
        inproc_calls=args.inproc_calls or (1500 if quick else 20000),
        warmup=10 if quick else 50,
        seed=args.seed,
        sections=_sections(parser, args.sections),
        diag_modes=_diag_modes(parser, args.diag_modes),
    )
    for name in ("rounds", "calls", "calls_per_level", "inproc_calls"):
        if getattr(settings, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if settings.per_worker is not None and settings.per_worker < 1:
        parser.error("--per-worker must be at least 1")
    return settings, args.json


def _sections(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        parser.error(f"--sections: {', '.join(unknown) or 'none given'}; choose from {SECTIONS}")
    return chosen


def _diag_modes(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(chosen) - set(DIAGNOSE_MODES))
    if unknown or not chosen or chosen[0] != "raw":
        parser.error(f"--diag-modes: raw first, then any of {DIAGNOSE_MODES}")
    return chosen


def _levels(parser: argparse.ArgumentParser, text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        parser.error(f"--concurrency: {text!r} is not a comma-separated list of integers")
    if not levels or min(levels) < 1:
        parser.error("--concurrency levels must be at least 1")
    return levels


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    # SIGTERM would end the process without running `finally`; make it unwind like Ctrl-C so
    # the provider process is stopped.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 whether or not the goals are met."""
    settings, json_path = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.perf_counter()
    provider = Provider()
    try:
        with provider.running():
            # The provider starts first (before threads exist, for the fork) and boots while
            # litellm imports, which takes seconds.
            # The quiet litellm of every benchmark: no debug banner, and its loggers silenced (at
            # concurrency 1,024 it logs a pool-saturation warning per waiting call, for every
            # mode alike, and formatting them would be measured).
            litellm = load_litellm()
            results: dict[str, Any] = {"machine": machine_facts()}
            results["settings"] = {
                "rounds": settings.rounds,
                "calls": settings.calls,
                "concurrency": list(settings.concurrency),
                "per_worker": settings.per_worker,
                "calls_per_level": settings.calls_per_level,
                "inproc_calls": settings.inproc_calls,
                "warmup": settings.warmup,
                "seed": settings.seed,
                "sections": list(settings.sections),
                "drain_litellm_logging": DRAIN,
            }
            results.update(asyncio.run(measure(litellm, provider, settings)))
            results["provider"] = {"base_url": provider.base_url, "stats": provider.stats()}
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    results["goals"] = goals(results)
    if hasattr(os, "getloadavg"):
        results["machine"]["load_avg_end"] = list(os.getloadavg())
    results["runtime_s"] = time.perf_counter() - started
    print(report(results))
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
