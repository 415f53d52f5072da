"""Where one call's CPU goes: the router's own work, litellm, the provider SDK, HTTP, the loop.

    python scripts/profile_call.py                  # plain and streamed, raw litellm and router
    python scripts/profile_call.py --calls 100      # fewer calls (quicker, noisier)
    python scripts/profile_call.py --top 8          # also list the 8 costliest functions per part
    python scripts/profile_call.py --json out.json  # also write every figure as JSON

What is measured
----------------
One simulated OpenAI-compatible provider (``scripts/fleet.py``) runs in its own process with
zero added latency, so a call's CPU is all client-side. Two callers make the same call to it,
sequentially: raw ``litellm.acompletion`` (retries off, explicit timeout) and this project's
``Router.acompletion`` over a one-deployment group; plain and ``stream=True`` (every chunk read).

1. CPU per call without a profiler: process CPU time (every thread: litellm runs part of each
   call on an executor thread) over blocks of calls, interleaved rounds, median and spread.
2. The split, from ``cProfile`` with a per-thread CPU clock (``time.thread_time``) installed on
   the loop thread *and* on the executor threads litellm hands work to. Each function's own time
   goes to the part its file belongs to:

   - ``router``: this project's ``router/`` and ``telemetry/`` packages;
   - ``litellm``: litellm's wrapper (argument handling, logging objects, cost, response
     conversion, callbacks);
   - ``provider SDK``: the ``openai`` package (request building, response parsing);
   - ``HTTP``: httpx, httpcore, aiohttp and the socket/SSL/transport layer;
   - ``event loop``: asyncio's scheduler and the thread-pool hop litellm makes per call.

   Shared code (pydantic, the standard library, builtins) is charged to whoever called it, in
   proportion to the time each caller spent in it (walked up the callers until a known part).
   The loop thread's own waiting (epoll) costs no CPU on this clock and so counts for little.
   Shares are scaled to the unprofiled CPU per call of step 1 (the profiler itself slows
   every call down, evenly enough for shares, not for absolute figures).

The printed figures are for this machine and this moment (the load average is printed); the
shares and the raw-vs-router difference in the same run are what carry over.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import cProfile
import gc
import os
import pstats
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _benchlib import (
    load_litellm,
    machine_facts,
    raise_keyboard_interrupt,
    spread,
    write_json,
)
from bench_overhead import (
    MESSAGES,
    PROVIDER,
    TIMEOUT_S,
    Provider,
    raw_params,
    router_config,
)

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("router", "litellm", "provider SDK", "HTTP", "event loop", "benchmark driver")
Call = Callable[[], Awaitable[Any]]

# File-path fragments that decide a function's part; first match wins. Anything else (pydantic,
# the standard library, builtins) is shared code, charged to its callers.
_SITE = os.sep + "site-packages" + os.sep
_PART_OF: tuple[tuple[str, str], ...] = (
    (str(ROOT / "router") + os.sep, "router"),
    (str(ROOT / "telemetry") + os.sep, "router"),
    (str(Path(__file__).resolve()), "benchmark driver"),
    (_SITE + "litellm" + os.sep, "litellm"),
    (_SITE + "openai" + os.sep, "provider SDK"),
    (_SITE + "httpx" + os.sep, "HTTP"),
    (_SITE + "httpcore" + os.sep, "HTTP"),
    (_SITE + "h11" + os.sep, "HTTP"),
    (_SITE + "aiohttp" + os.sep, "HTTP"),
    (_SITE + "yarl" + os.sep, "HTTP"),
    (_SITE + "multidict" + os.sep, "HTTP"),
    (_SITE + "anyio" + os.sep, "HTTP"),
    (_SITE + "aiohappyeyeballs" + os.sep, "HTTP"),
    (os.sep + "ssl.py", "HTTP"),
    (os.sep + "socket.py", "HTTP"),
    (os.sep + "asyncio" + os.sep + "selector_events.py", "HTTP"),
    (os.sep + "asyncio" + os.sep + "sslproto.py", "HTTP"),
    (os.sep + "asyncio" + os.sep + "streams.py", "HTTP"),
    (os.sep + "asyncio" + os.sep, "event loop"),
    (os.sep + "selectors.py", "event loop"),
    (os.sep + "concurrent" + os.sep + "futures" + os.sep, "event loop"),
    (os.sep + "threading.py", "event loop"),
    (os.sep + "queue.py", "event loop"),
)
# Builtins whose owner is clear whoever called them.
_BUILTIN_PART = {"poll": "event loop", "send": "HTTP", "recv": "HTTP", "recv_into": "HTTP"}


def part_of(key: tuple[str, int, str]) -> str | None:
    """The part a profiled function belongs to, or None for shared code."""
    filename, _, name = key
    if filename == "~":
        for word, part in _BUILTIN_PART.items():
            if f"'{word}'" in name:
                return part
        return None
    for fragment, part in _PART_OF:
        if fragment in filename:
            return part
    return None


def attribute(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time per part, shared code charged to callers (see the module doc)."""
    raw: Mapping[Any, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def shares(key: Any, depth: int) -> dict[str, float]:
        part = part_of(key)
        if part is not None:
            return {part: 1.0}
        if key in memo:
            return memo[key]
        if depth > 40:
            return {"unattributed": 1.0}
        memo[key] = {"unattributed": 1.0}  # a cycle resolves to unattributed
        callers = raw[key][4] if key in raw else {}
        weights = {c: (v[2] + v[3]) for c, v in callers.items()}
        total = sum(weights.values())
        if not total:
            memo[key] = {"unattributed": 1.0}
            return memo[key]
        out: dict[str, float] = {}
        for caller, weight in weights.items():
            for part_name, share in shares(caller, depth + 1).items():
                out[part_name] = out.get(part_name, 0.0) + share * weight / total
        memo[key] = out
        return out

    seconds: dict[str, float] = {}
    for key, (_, _, tottime, _, _) in raw.items():
        for part_name, share in shares(key, 0).items():
            seconds[part_name] = seconds.get(part_name, 0.0) + tottime * share
    return seconds


def top_functions(stats: pstats.Stats, part: str, n: int) -> list[tuple[str, float]]:
    """The `n` functions of `part` with the most own time (seconds, whole profile)."""
    raw: Mapping[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = [
        (f"{Path(k[0]).name}:{k[1]}({k[2]})", v[2]) for k, v in raw.items() if part_of(k) == part
    ]
    rows.sort(key=lambda r: -r[1])
    return rows[:n]


class ProfiledExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose jobs run under a per-thread cProfile (thread CPU clock).

    Each job enables its thread's profiler and disables it when done, so no frame is left
    open (a profiler disabled from another thread would close open frames on the wrong clock).
    """

    def __init__(self) -> None:
        super().__init__()
        self.profiles: list[cProfile.Profile] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        def profiled() -> Any:
            profile = getattr(self._local, "profile", None)
            if profile is None:
                profile = self._local.profile = cProfile.Profile(time.thread_time)
                with self._lock:
                    self.profiles.append(profile)
            profile.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                profile.disable()

        return super().submit(profiled)


def build_calls(litellm: Any, base_url: str, stream: bool) -> dict[str, Call]:
    """raw litellm and the router, making the same call (plain or streamed, all chunks read)."""
    import router

    params = raw_params(base_url, TIMEOUT_S)
    ours = router.Router(router_config(base_url), telemetry=False)
    acompletion = litellm.acompletion

    async def raw() -> Any:
        if not stream:
            return await acompletion(messages=MESSAGES, **params)
        async for _ in await acompletion(messages=MESSAGES, stream=True, **params):
            pass
        return None

    async def routed() -> Any:
        if not stream:
            return await ours.acompletion(PROVIDER, MESSAGES)
        async for _ in await ours.acompletion(PROVIDER, MESSAGES, stream=True):
            pass
        return None

    return {"raw litellm": raw, "router": routed}


async def cpu_per_call(calls: Mapping[str, Call], n: int, rounds: int, seed: int) -> dict[str, Any]:
    """Process CPU µs per call, interleaved rounds (no profiler)."""
    rng = random.Random(seed)
    us: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            gc.collect()
            started = time.process_time()
            for _ in range(n):
                await calls[name]()
            us[name].append((time.process_time() - started) / n * 1e6)
    base = us["raw litellm"]
    return {
        "us": {name: spread(v) for name, v in us.items()},
        "router_minus_raw_us": spread([r - b for r, b in zip(us["router"], base, strict=True)]),
    }


async def profile(call: Call, n: int) -> pstats.Stats:
    """cProfile of `n` calls on the loop thread and on the executor threads litellm uses."""
    loop = asyncio.get_running_loop()
    executor = ProfiledExecutor()
    loop.set_default_executor(executor)
    main = cProfile.Profile(time.thread_time)
    main.enable()
    try:
        for _ in range(n):
            await call()
    finally:
        main.disable()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())
        executor.shutdown(wait=True)
    stats = pstats.Stats(main)
    for worker in executor.profiles:
        stats.add(worker)
    return stats


async def measure(litellm: Any, base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both kinds (plain, streamed): CPU per call, then each caller's profile split."""
    results: dict[str, Any] = {}
    for kind in ("plain", "streamed"):
        calls = build_calls(litellm, base_url, stream=kind == "streamed")
        for call in calls.values():
            for _ in range(30):
                await call()
        gc.collect()
        gc.freeze()
        cpu = await cpu_per_call(calls, args.block, args.rounds, args.seed)
        split: dict[str, Any] = {}
        for name, call in calls.items():
            stats = await profile(call, args.calls)
            seconds = attribute(stats)
            total = sum(seconds.values())
            per_call = cpu["us"][name]["median"]
            split[name] = {
                "share": {p: seconds.get(p, 0.0) / total for p in (*PARTS, "unattributed")},
                "us": {p: seconds.get(p, 0.0) / total * per_call for p in (*PARTS, "unattributed")},
                "top": {p: top_functions(stats, p, args.top) for p in PARTS} if args.top else {},
            }
        results[kind] = {"cpu": cpu, "split": split}
    return results


def report(results: Mapping[str, Any], args: argparse.Namespace) -> str:
    """The human-readable tables."""
    m = results["machine"]
    lines = [
        "router: where one call's CPU goes (same provider, same run)",
        f"python {m['python']} | litellm {m['litellm']} | {m['cpu_count']} CPUs | "
        f"load average at start {m['load_average_at_start']}",
        f"CPU per call: {args.rounds} interleaved rounds x {args.block} calls; split: cProfile "
        f"of {args.calls} calls per caller (thread CPU clock, loop + executor threads)",
    ]
    for kind in ("plain", "streamed"):
        section = results[kind]
        cpu, split = section["cpu"], section["split"]
        lines += ["", f"{kind} call"]
        header = f"  {'part':<18}" + "".join(f"{name:>22}" for name in split)
        lines.append(header)
        for part in (*PARTS, "unattributed"):
            row = f"  {part:<18}"
            for name in split:
                us = split[name]["us"][part]
                share = split[name]["share"][part]
                row += f"{us:>12.0f} µs {share:>5.1%}"
            lines.append(row)
        total = f"  {'total (no profiler)':<18}"
        for name in split:
            s = cpu["us"][name]
            total += f"{s['median']:>12.0f} µs {'':>5}"
        lines.append(total)
        d = cpu["router_minus_raw_us"]
        lines.append(
            f"  router minus raw, CPU per call: {d['median']:+.0f} µs "
            f"(IQR {d['q25']:+.0f}..{d['q75']:+.0f}, min-max {d['min']:+.0f}..{d['max']:+.0f})"
        )
        if args.top:
            for name in split:
                for part, rows in split[name]["top"].items():
                    if rows:
                        lines.append(f"  top {part} functions under {name} (own s, whole profile):")
                        lines += [f"    {s:8.3f}  {fn}" for fn, s in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 unless it crashed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300, help="profiled calls per caller (300)")
    parser.add_argument("--rounds", type=int, default=10, help="unprofiled rounds (10)")
    parser.add_argument("--block", type=int, default=50, help="calls per unprofiled block (50)")
    parser.add_argument("--top", type=int, default=0, help="list the N costliest functions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    provider = Provider()
    try:
        with provider.running():
            litellm = load_litellm()
            results: dict[str, Any] = {"machine": machine_facts()}
            results.update(asyncio.run(measure(litellm, provider.base_url, args)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(report(results, args))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
