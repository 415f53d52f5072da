"""Memory: router state per deployment, per call in flight, and RSS over a steady soak.

    python scripts/bench_memory.py                   # all sections, a 30-minute soak
    python scripts/bench_memory.py --minutes 3       # a short soak (growth needs > 2 minutes)
    python scripts/bench_memory.py --minutes 0       # no soak
    python scripts/bench_memory.py --json out.json   # also write every figure as JSON

What is measured
----------------
1. **State per deployment** (in-process, ``tracemalloc``): a `Router` over N deployments, one
   call served by each (so each has its health and breaker); the bytes the router holds minus
   the same router before any call, divided by N. N = 10 and 1,000, to see the per-deployment
   slope rather than a fixed cost.
2. **Per call in flight** (in-process, ``tracemalloc``): 10,000 calls held open at once by a
   backend that does not answer until released; the bytes allocated while they are all in
   flight, for ``router.acompletion`` and (the baseline, same run) for the backend's
   ``complete`` awaited directly in as many tasks. The difference divided by the calls is the
   router's own memory per call in flight (its call record, deadline scope, task frames).
3. **10,000 calls in flight over HTTP**: the simulated provider (its own process) answers each
   call after a delay long enough that all are in flight at once; the process RSS at the peak,
   over the RSS before, for raw ``litellm.acompletion`` and for the router, each in a fresh
   child process (same run, same provider). This is litellm's memory plus the router's.
4. **Soak**: two child processes at the same steady open-loop rate for ``--minutes``, one
   calling raw litellm (the baseline), one the router, against the same provider (a few ms of
   latency); each samples its RSS every ``--sample-s`` seconds (60 by default). Growth is the
   last sample over the sample at two minutes (after warm-up: litellm's caches, the connection
   pool, the allocator's arenas), in percent.

A benchmark reports; it exits 0 whether or not the goals are met (state and memory per call in
flight ≤ 20 kB, soak growth ≤ 5 % after the first two minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _benchlib import (
    InstantBackend,
    http_json,
    load_litellm,
    machine_facts,
    raise_keyboard_interrupt,
    write_json,
)
from bench_overhead import (
    API_KEY,
    MESSAGES,
    MODEL,
    PROVIDER,
    TIMEOUT_S,
    Provider,
    prebuilt_response,
    raw_params,
    router_config,
)

GOAL_PER_CALL_BYTES = 20_000
GOAL_SOAK_GROWTH_PCT = 5.0
SECTIONS = ("state", "in-flight", "http", "soak")
WARM_S = 120.0
"""Soak growth is measured from the sample at this point on (after warm-up)."""


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- 1. state per deployment ----------------------------------------------------------------


def many_deployments(n: int) -> dict[str, Any]:
    """A config with `n` priced deployments, each its own group."""
    return {
        "router": {"deadline": TIMEOUT_S},
        "deployments": [
            {
                "name": f"d{i}",
                "model": MODEL,
                "api_base": "http://unused.invalid/v1",
                "api_key": API_KEY,
                "groups": [f"g{i}"],
                "input_cost_per_token": 1e-7,
                "output_cost_per_token": 4e-7,
            }
            for i in range(n)
        ],
    }


async def state_per_deployment(litellm: Any, n: int) -> dict[str, float]:
    """Bytes the router holds per deployment once each has served a call."""
    import router

    backend = InstantBackend(prebuilt_response(litellm))
    ours = router.Router(many_deployments(n), backend=backend, telemetry=False)
    await ours.acompletion("g0", MESSAGES)  # first-call costs (imports, caches) out of the way
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(n):
        await ours.acompletion(f"g{i}", MESSAGES)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return {"deployments": n, "bytes": held, "bytes_per_deployment": held / n}


# --- 2. per call in flight, in-process ------------------------------------------------------


class HeldBackend(InstantBackend):
    """Answers every call with the prebuilt response once `release` is set."""

    def __init__(self, response: Any) -> None:
        super().__init__(response)
        self.release = asyncio.Event()
        self.waiting = 0

    async def complete(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        self.waiting += 1
        await self.release.wait()
        return self._response


async def _held_bytes(make: Any, backend: HeldBackend, n: int) -> int:
    backend.release = asyncio.Event()
    backend.waiting = 0
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(make()) for _ in range(n)]
    while backend.waiting < n:
        await asyncio.sleep(0.01)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    backend.release.set()
    await asyncio.gather(*tasks)
    return held


async def per_call_in_flight(litellm: Any, n: int, rounds: int) -> dict[str, Any]:
    """Router bytes per call in flight over the direct backend call, median of rounds."""
    import router

    backend = HeldBackend(prebuilt_response(litellm))
    ours = router.Router(router_config("http://unused.invalid/v1"), backend=backend)
    deployment = ours.config.deployment("sim")
    request = {"messages": MESSAGES}

    async def direct() -> Any:
        return await backend.complete(deployment, request, TIMEOUT_S)

    async def routed() -> Any:
        return await ours.acompletion(PROVIDER, MESSAGES)

    await _held_bytes(routed, backend, 100)  # warm-up
    direct_b: list[int] = []
    routed_b: list[int] = []
    for _ in range(rounds):
        direct_b.append(await _held_bytes(direct, backend, n))
        routed_b.append(await _held_bytes(routed, backend, n))
    added = sorted((r - d) / n for r, d in zip(routed_b, direct_b, strict=True))
    return {
        "calls": n,
        "direct_bytes_per_call": sorted(direct_b)[len(direct_b) // 2] / n,
        "router_bytes_per_call": sorted(routed_b)[len(routed_b) // 2] / n,
        "added_bytes_per_call": added[len(added) // 2],
        "added_min_max": [added[0], added[-1]],
    }


# --- 3 and 4: child processes against the provider ------------------------------------------


def _call_for(mode: str, litellm: Any, base_url: str, timeout: float) -> Any:
    import router

    params = raw_params(base_url, timeout)
    if mode == "raw":
        acompletion = litellm.acompletion

        async def raw() -> Any:
            return await acompletion(messages=MESSAGES, **params)

        return raw
    config = router_config(base_url)
    config["router"]["deadline"] = timeout
    config["deployments"][0]["timeout"] = timeout
    ours = router.Router(config, telemetry=False)

    async def routed() -> Any:
        return await ours.acompletion(PROVIDER, MESSAGES)

    return routed


async def _in_flight_child(mode: str, base_url: str, n: int) -> dict[str, Any]:
    litellm = load_litellm()
    # Calls queue behind litellm's connection pool (1,000 connections): still in flight for the
    # caller, so the timeouts are long enough for every call to be served.
    call = _call_for(mode, litellm, base_url, 900.0)
    await asyncio.gather(*(call() for _ in range(20)))
    gc.collect()
    before = rss_bytes()
    peak = before
    tasks = [asyncio.ensure_future(call()) for _ in range(n)]
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_bytes())
        await asyncio.sleep(0.05)
    failed = [t.exception() for t in tasks if t.exception() is not None]
    errors = len(failed)
    return {
        "first_error": repr(failed[0])[:300] if failed else None,
        "mode": mode,
        "calls": n,
        "errors": errors,
        "rss_before": before,
        "rss_peak": peak,
        "bytes_per_call": (peak - before) / n,
    }


async def _soak_child(
    mode: str, base_url: str, rate: float, minutes: float, sample_s: float
) -> None:
    litellm = load_litellm()
    call = _call_for(mode, litellm, base_url, 30.0)
    for _ in range(20):
        await call()
    loop = asyncio.get_running_loop()
    rng = random.Random(1)
    start = loop.time()
    end = start + minutes * 60.0
    next_sample = start
    pending: set[asyncio.Task[Any]] = set()
    calls = errors = 0

    def done(task: asyncio.Task[Any]) -> None:
        nonlocal errors
        pending.discard(task)
        if task.cancelled() or task.exception() is not None:
            errors += 1

    due = start
    while True:
        now = loop.time()
        if now >= next_sample:
            line = {
                "t": now - start,
                "rss": rss_bytes(),
                "calls": calls,
                "errors": errors,
                "cpu_s": time.process_time(),
            }
            print(json.dumps(line), flush=True)
            next_sample += sample_s
        if now >= end:
            break
        due += rng.expovariate(rate)
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(call())
        pending.add(task)
        task.add_done_callback(done)
        calls += 1
    await asyncio.gather(*pending, return_exceptions=True)


def _child_main(args: argparse.Namespace) -> int:
    if args.child == "in-flight":
        result = asyncio.run(_in_flight_child(args.mode, args.base_url, args.in_flight))
        print(json.dumps(result), flush=True)
    else:
        asyncio.run(_soak_child(args.mode, args.base_url, args.rate, args.minutes, args.sample_s))
    return 0


def _child(args: argparse.Namespace, kind: str, mode: str, base_url: str) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--mode",
        mode,
        "--base-url",
        base_url,
        "--in-flight",
        str(args.in_flight),
        "--rate",
        str(args.rate),
        "--minutes",
        str(args.minutes),
        "--sample-s",
        str(args.sample_s),
    ]


def in_flight_over_http(args: argparse.Namespace, provider: Provider) -> list[dict[str, Any]]:
    """Section 3: each mode in a fresh process, the provider slow enough to hold them all."""
    http_json(provider.url(0, "/_sim/knobs"), {"latency_ms": args.slow_ms, "latency_jitter_ms": 0})
    results = []
    try:
        for mode in ("raw", "router"):
            argv = _child(args, "in-flight", mode, provider.base_url)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"in-flight child ({mode}) failed: {done.stderr[-2000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        http_json(provider.url(0, "/_sim/knobs"), {"latency_ms": 0, "latency_jitter_ms": 0})
    return results


def soak(args: argparse.Namespace, provider: Provider) -> dict[str, Any]:
    """Section 4: raw and router soaking side by side; RSS samples from each."""
    http_json(provider.url(0, "/_sim/knobs"), {"latency_ms": args.soak_latency_ms})
    procs = {
        mode: subprocess.Popen(
            _child(args, "soak", mode, provider.base_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for mode in ("raw", "router")
    }
    samples: dict[str, list[dict[str, Any]]] = {}
    try:
        for mode, proc in procs.items():
            out, _ = proc.communicate(timeout=args.minutes * 60 + 600)
            samples[mode] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    result: dict[str, Any] = {"samples": samples, "growth_pct": {}}
    for mode, rows in samples.items():
        warm = [r for r in rows if r["t"] >= WARM_S - 1.0]
        if len(warm) >= 2:
            first, last = warm[0]["rss"], warm[-1]["rss"]
            result["growth_pct"][mode] = (last - first) / first * 100.0
        else:
            result["growth_pct"][mode] = None
    return result


# --- report ---------------------------------------------------------------------------------


def _kb(n: float) -> str:
    return f"{n / 1000:.1f} kB"


def report(results: Mapping[str, Any], args: argparse.Namespace) -> str:
    """The human-readable tables."""
    m = results["machine"]
    lines = [
        "router: memory (state per deployment, per call in flight, soak)",
        f"python {m['python']} | litellm {m['litellm']} | {m['cpu_count']} CPUs | "
        f"load average at start {m['load_average_at_start']}",
        "",
    ]
    if results.get("state"):
        lines += ["State per deployment (tracemalloc, each deployment served one call)"]
        for row in results["state"]:
            lines.append(
                f"  {row['deployments']:>6} deployments: {_kb(row['bytes'])} held, "
                f"{row['bytes_per_deployment']:.0f} B per deployment"
            )
    f = results.get("in_flight")
    if f:
        verdict = "PASS" if f["added_bytes_per_call"] <= GOAL_PER_CALL_BYTES else "MISS"
        lines += [
            "",
            f"Per call in flight, in-process ({f['calls']} calls held open; tracemalloc, "
            "median of rounds)",
            f"  backend.complete alone (baseline) {f['direct_bytes_per_call']:8.0f} B/call",
            f"  router.acompletion               {f['router_bytes_per_call']:8.0f} B/call",
            f"  added by the router              {f['added_bytes_per_call']:8.0f} B/call "
            f"(min-max {f['added_min_max'][0]:.0f}..{f['added_min_max'][1]:.0f}); goal <= "
            f"{GOAL_PER_CALL_BYTES} B: {verdict}",
        ]
    if results.get("http"):
        lines += ["", f"{args.in_flight} calls in flight over HTTP (provider {args.slow_ms} ms)"]
        for row in results["http"]:
            lines.append(
                f"  {row['mode']:<7} RSS {row['rss_before'] / 1e6:7.1f} MB -> peak "
                f"{row['rss_peak'] / 1e6:7.1f} MB: {_kb(row['bytes_per_call'])} per call "
                f"in flight ({row['errors']} errors)"
            )
            if row.get("first_error"):
                lines.append(f"          first error: {row['first_error']}")
    if results.get("soak"):
        s = results["soak"]
        lines += [
            "",
            f"Soak: {args.minutes:g} min at {args.rate:g} calls/s per process (open loop), "
            f"provider {args.soak_latency_ms:g} ms; RSS every {args.sample_s:g} s",
        ]
        for mode, rows in s["samples"].items():
            trail = " ".join(f"{r['rss'] / 1e6:.1f}" for r in rows)
            growth = s["growth_pct"][mode]
            shown = "n/a (run > 2 min)" if growth is None else f"{growth:+.2f}%"
            calls = rows[-1]["calls"] if rows else 0
            errors = rows[-1]["errors"] if rows else 0
            core = ""
            if len(rows) >= 2 and "cpu_s" in rows[-1] and rows[-1]["t"] > rows[0]["t"]:
                busy = (rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / (rows[-1]["t"] - rows[0]["t"])
                core = f"; {busy:.0%} of a core"
            lines.append(
                f"  {mode:<7} growth after 2 min {shown}; {calls} calls, {errors} errors{core}"
            )
            lines.append(f"          RSS MB: {trail}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length (30; 0: none)")
    parser.add_argument("--rate", type=float, default=20.0, help="soak calls/s per process (20)")
    parser.add_argument("--sample-s", type=float, default=60.0, help="RSS sample period (60)")
    parser.add_argument("--soak-latency-ms", type=float, default=5.0, help="provider latency (5)")
    parser.add_argument("--in-flight", type=int, default=10_000, help="calls held open (10000)")
    parser.add_argument("--slow-ms", type=float, default=3000.0, help="slow provider delay (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process rounds (3)")
    parser.add_argument("--no-http", action="store_true", help="skip the over-HTTP in-flight run")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated sections (state,in-flight,http,soak): e.g. the soak alone, at a "
        "low priority, apart from the CPU-heavy in-flight runs",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    parser.add_argument("--child", choices=("in-flight", "soak"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("raw", "router"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = {part.strip() for part in args.sections.split(",") if part.strip()}
    if not chosen or chosen - set(SECTIONS):
        parser.error(f"--sections: choose from {', '.join(SECTIONS)}")
    if args.no_http:
        chosen.discard("http")
    if args.minutes <= 0:
        chosen.discard("soak")
    args.chosen = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 unless it crashed."""
    args = parse_args(argv)
    if args.child:
        return _child_main(args)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started = time.perf_counter()
    litellm = load_litellm()
    results: dict[str, Any] = {"machine": machine_facts()}
    chosen = args.chosen
    if "state" in chosen:
        results["state"] = [asyncio.run(state_per_deployment(litellm, n)) for n in (10, 1000)]
    if "in-flight" in chosen:
        results["in_flight"] = asyncio.run(per_call_in_flight(litellm, args.in_flight, args.rounds))
    provider = Provider()
    try:
        if chosen & {"http", "soak"}:
            with provider.running():
                if "http" in chosen:
                    results["http"] = in_flight_over_http(args, provider)
                if "soak" in chosen:
                    results["soak"] = soak(args, provider)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    results["runtime_s"] = time.perf_counter() - started
    print(report(results, args))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
