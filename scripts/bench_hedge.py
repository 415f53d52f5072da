"""Stragglers: hedged requests on vs off against providers with a heavy latency tail.

    python scripts/bench_hedge.py                    # defaults: about 4-5 minutes on 2 cores
    python scripts/bench_hedge.py --quick            # a few short rounds (smoke use)
    python scripts/bench_hedge.py --json out.json    # also write every figure as JSON

The world
---------
Two OpenAI-compatible deployments, ``s1`` and ``s2``, served by a small aiohttp server defined
in this file (``--serve``) and run in one separate process. Both draw their latency from the
same distribution, independently: lognormal with median ``--median-ms`` (20 ms) and shape
``--sigma`` (0.25), and with probability ``--straggler-rate`` (5 %) the draw is multiplied by
``--straggler-factor`` (10): one call in twenty is ten times slower, the shape The Tail at Scale
(Dean & Barroso, 2013) describes. The simulated fleet (``router/_sim/``) only has uniform
jitter, hence this server. Each round reseeds both servers' draws, so the modes of one round
meet the same sequence of straggler draws.

The modes, all over the same two deployments (``strategy = "weighted"``, equal weights: a random
primary per call; ``timeout = 2`` s per attempt, ``deadline = 5`` s, ``max_attempts = 3``):

- ``off``: this router, ``hedge = false``;
- ``hedge p95``: ``hedge = true, hedge_delay = "p95"`` (the primary's observed p95);
- ``hedge fixed``: ``hedge = true, hedge_delay = --fixed-delay`` (default 2.5 x the median,
  50 ms: above the body of the distribution as the client sees it, with litellm's own
  per-call time added, and well below the stragglers);
- ``litellm``: LiteLLM's ``Router`` (``simple-shuffle``, ``num_retries=2``, ``timeout=2``), which
  has no hedging: the reference tail without it.

Load: open loop, Poisson arrivals at ``--rate`` per second; interleaved rounds: in every round
each mode runs one ``--block``-second block of the same seeded arrivals, in a freshly shuffled
order, with a full garbage collection before each block (drift on a 2-core machine is shared by
the modes of a round rather than landing on one of them). Latency is measured from each
request's scheduled arrival. Each mode's router lives across rounds (as in a service) after a
warm-up that gives ``"p95"`` its samples.

Reported per mode: p50, p95, p99, p99.9 over all rounds pooled; extra upstream requests (what
the servers received ÷ client requests − 1); the p99 relative to ``off`` (pooled, and the
per-round ratios' median and range). Goal for hedging: p99 cut by >= 70 % with <= 10 % extra
requests (The Tail at Scale reports 1,800 → 74 ms at +2 %), the cut judged as the median over
rounds of each round's p99 against ``off``'s in the same round: on a shared 2-core machine one
busy second inflates one block's tail, and the median keeps that from deciding the result.
Blocks during which the client's event loop ran late (its own CPU or other processes) by
100 ms or more in all are listed, and the per-round ratio is also given over the "clean" rounds
only (neither the mode's block nor ``off``'s ran late), which is what a quiet machine would
show. The client's CPU per request is reported per mode (the servers run elsewhere). A
benchmark reports: it exits 0 whether or not the goal is met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import random
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _benchlib import (  # first: it puts the checkout on sys.path if router is not installed
    ChildServer,
    LagMonitor,
    close_litellm_clients,
    latency_summary,
    litellm_model_list,
    load_litellm,
    machine_facts,
    open_loop,
    poisson_arrivals,
    quantile,
    raise_keyboard_interrupt,
    router_config,
    spread,
    write_json,
)
from aiohttp import web

import router
from router._catalogue import text_tokens

SCRIPT = Path(__file__).resolve()
DEPLOYMENTS = ("s1", "s2")
GROUP = "tail"
API_KEY = "sk-sim-hedge"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say hello in one word."}]
ATTEMPT_TIMEOUT_S = 2.0
DEADLINE_S = 5.0
MAX_ATTEMPTS = 3
PRICE = (1e-7, 4e-7)
MODES = ("off", "hedge p95", "hedge fixed", "litellm")
HEDGED_MODES = ("hedge p95", "hedge fixed")
GOAL_P99_CUT = 0.70
GOAL_MAX_EXTRA = 0.10
# A block during which the client's event loop ran this late in all (ms) is not "clean".
CLEAN_LATE_MS = 100.0


@dataclass(frozen=True)
class Tail:
    """The latency distribution both servers draw from."""

    median_ms: float
    sigma: float
    straggler_rate: float
    straggler_factor: float

    def argv(self) -> list[str]:
        """The same distribution as command-line options of ``--serve``."""
        return [
            "--median-ms",
            str(self.median_ms),
            "--sigma",
            str(self.sigma),
            "--straggler-rate",
            str(self.straggler_rate),
            "--straggler-factor",
            str(self.straggler_factor),
        ]


@dataclass(frozen=True)
class Settings:
    """How much to run (see `parse_args`)."""

    rounds: int
    block: float
    rate: float
    warmup: int
    seed: int
    fixed_delay: float
    tail: Tail


# --- the straggler server (runs in its own process) -----------------------------------------


class StragglerServer:
    """One deployment: answers every chat completion after a draw from `Tail`."""

    def __init__(self, name: str, tail: Tail) -> None:
        self.name = name
        self.tail = tail
        self.rng = random.Random()
        self.requests = 0
        self.ok = 0
        self.cancelled = 0
        self.seq = 0

    def reset(self, seed: int) -> None:
        """Zero the counters and restart the draws from `seed`."""
        self.rng.seed(f"{seed}:{self.name}")
        self.requests = self.ok = self.cancelled = 0

    def draw(self) -> float:
        """Seconds this request will take."""
        tail = self.tail
        ms = self.rng.lognormvariate(math.log(tail.median_ms), tail.sigma)
        if self.rng.random() < tail.straggler_rate:
            ms *= tail.straggler_factor
        return ms / 1000.0

    async def chat(self, request: web.Request) -> web.Response:
        """``POST /v1/chat/completions``: a fixed answer, late by one draw."""
        self.requests += 1
        self.seq += 1
        delay = self.draw()
        body = await request.json()
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # The client gave up (a hedge won elsewhere): the connection is gone.
            self.cancelled += 1
            raise
        self.ok += 1
        reply = f"Hello from {self.name}."
        prompt = text_tokens(sum(len(str(m.get("content", ""))) for m in body.get("messages", [])))
        return web.json_response(
            {
                "id": f"chatcmpl-{self.name}-{self.seq}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(body.get("model", "sim")),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": 4,
                    "total_tokens": prompt + 4,
                },
            }
        )


async def serve(ports: Sequence[int], tail: Tail, seed: int) -> None:
    """Run one `StragglerServer` per port until SIGTERM/SIGINT.

    Every port also answers ``GET /_stats`` (all servers' counters) and ``POST /_reset``
    (``{"seed": n}``: zero counters, reseed draws), so one port controls them all.
    """
    servers = {name: StragglerServer(name, tail) for name in DEPLOYMENTS}
    for server in servers.values():
        server.reset(seed)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                n: {"requests": s.requests, "ok": s.ok, "cancelled": s.cancelled}
                for n, s in servers.items()
            }
        )

    async def reset(request: web.Request) -> web.Response:
        body = await request.json()
        for server in servers.values():
            server.reset(int(body.get("seed", seed)))
        return web.json_response({"reset": True})

    runners: list[web.AppRunner] = []
    for name, port in zip(DEPLOYMENTS, ports, strict=True):
        app = web.Application()
        app.router.add_post("/v1/chat/completions", servers[name].chat)
        app.router.add_get("/_stats", stats)
        app.router.add_post("/_reset", reset)
        # handler_cancellation: a hedge loser's handler ends when the client hangs up.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def straggler_servers(tail: Tail, seed: int) -> ChildServer:
    """This script in ``--serve`` mode, on two free ports, in its own process."""

    def argv(ports: Sequence[int]) -> list[str]:
        return [
            sys.executable,
            str(SCRIPT),
            "--serve",
            ",".join(str(p) for p in ports),
            "--seed",
            str(seed),
            *tail.argv(),
        ]

    return ChildServer("the straggler servers", argv, len(DEPLOYMENTS), "/_stats")


# --- the client side ------------------------------------------------------------------------


def hedge_config(urls: Mapping[str, str], hedge: bool, delay: float | str) -> dict[str, Any]:
    """Our router over the two deployments; only the hedge settings differ between modes."""
    settings = {
        "deadline": DEADLINE_S,
        "max_attempts": MAX_ATTEMPTS,
        "timeout": ATTEMPT_TIMEOUT_S,
        "strategy": "weighted",
        "hedge": hedge,
        "hedge_delay": delay,
    }
    prices = dict.fromkeys(DEPLOYMENTS, PRICE)
    return router_config(
        urls, settings, prices, group=GROUP, timeout=ATTEMPT_TIMEOUT_S, api_key=API_KEY
    )


def build_modes(
    litellm: Any, urls: Mapping[str, str], s: Settings
) -> tuple[dict[str, Callable[[], Awaitable[Any]]], dict[str, Any]]:
    """One zero-argument call per mode, and each mode's configuration for the report."""
    configs: dict[str, Any] = {
        "off": hedge_config(urls, False, "p95"),
        "hedge p95": hedge_config(urls, True, "p95"),
        "hedge fixed": hedge_config(urls, True, s.fixed_delay),
    }
    calls: dict[str, Callable[[], Awaitable[Any]]] = {}
    for mode, config in configs.items():
        ours = router.Router(config, seed=s.seed)

        async def call(ours: router.Router = ours) -> Any:
            return await ours.acompletion(GROUP, MESSAGES)

        calls[mode] = call
    model_list = litellm_model_list(
        urls, None, group=GROUP, timeout=ATTEMPT_TIMEOUT_S, api_key=API_KEY
    )
    kwargs = {
        "num_retries": MAX_ATTEMPTS - 1,
        "timeout": ATTEMPT_TIMEOUT_S,
        "routing_strategy": "simple-shuffle",
    }
    theirs = litellm.Router(model_list=model_list, **kwargs)

    async def litellm_call() -> Any:
        return await theirs.acompletion(model=GROUP, messages=MESSAGES)

    calls["litellm"] = litellm_call
    shown = {m: c["router"] for m, c in configs.items()}
    shown["litellm"] = {**kwargs, "model_list": f"{len(DEPLOYMENTS)} deployments in '{GROUP}'"}
    return calls, shown


class Servers:
    """The straggler servers' control endpoints, from the benchmark's loop."""

    def __init__(self, child: ChildServer, session: aiohttp.ClientSession) -> None:
        self._root = child.url(0)
        self._session = session
        self.urls = {
            name: f"http://127.0.0.1:{port}/v1"
            for name, port in zip(DEPLOYMENTS, child.ports, strict=True)
        }

    async def reset(self, seed: int) -> None:
        """Zero the counters and reseed every server's draws."""
        async with self._session.post(f"{self._root}/_reset", json={"seed": seed}) as r:
            r.raise_for_status()

    async def requests(self) -> int:
        """Chat requests received by both servers since the last reset."""
        async with self._session.get(f"{self._root}/_stats") as r:
            stats = await r.json()
        return sum(int(v["requests"]) for v in stats.values())


@dataclass(frozen=True, slots=True)
class Result:
    """One client request: latency from its scheduled arrival, and what the router did."""

    latency: float
    ok: bool
    hedged: bool


async def run_block(call: Callable[[], Awaitable[Any]], arrivals: Sequence[float]) -> list[Result]:
    """One open-loop block of `arrivals` through `call`."""
    loop = asyncio.get_running_loop()

    async def fire(index: int, due: float) -> Result:
        try:
            response = await call()
        except Exception:
            return Result(loop.time() - due, False, False)
        decision = router.get_decision(response)
        return Result(loop.time() - due, True, bool(decision and decision.hedged))

    return await open_loop(arrivals, fire)


async def measure(litellm: Any, child: ChildServer, s: Settings) -> dict[str, Any]:
    """Warm up every mode, then interleaved rounds; pooled and per-round figures."""
    rng = random.Random(s.seed)
    per_mode: dict[str, list[Result]] = {m: [] for m in MODES}
    extra: dict[str, list[int]] = {m: [] for m in MODES}
    round_p99: dict[str, list[float]] = {m: [] for m in MODES}
    stalls: list[dict[str, Any]] = []
    cpu: dict[str, float] = dict.fromkeys(MODES, 0.0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        servers = Servers(child, session)
        calls, configs = build_modes(litellm, servers.urls, s)
        for mode in MODES:
            for start in range(0, s.warmup, 8):
                await asyncio.gather(*(calls[mode]() for _ in range(min(8, s.warmup - start))))
        gc.collect()
        # The imports and warmed-up routers are long-lived: keep full collections off them.
        gc.freeze()
        for index in range(s.rounds):
            arrivals = poisson_arrivals(s.rate, s.block, random.Random(f"{s.seed}:{index}"))
            order = list(MODES)
            rng.shuffle(order)
            for mode in order:
                gc.collect()
                await servers.reset(s.seed * 1000 + index)
                monitor = LagMonitor()
                monitor.start()
                cpu_before = time.process_time()
                results = await run_block(calls[mode], arrivals)
                cpu[mode] += time.process_time() - cpu_before
                stall = await monitor.stop()
                stalls.append({"round": index, "mode": mode, **stall})
                received = await servers.requests()
                per_mode[mode].extend(results)
                extra[mode].append(received - len(results))
                round_p99[mode].append(quantile([r.latency for r in results], 0.99) * 1e3)
            print(f"round {index + 1}/{s.rounds} done", file=sys.stderr, flush=True)
        gc.unfreeze()
    await close_litellm_clients(litellm)
    figures: dict[str, Any] = {}
    off_p99 = quantile([r.latency for r in per_mode["off"]], 0.99) * 1e3
    late_ms = {(x["round"], x["mode"]): float(x["total_ms"]) for x in stalls}
    for mode in MODES:
        results = per_mode[mode]
        n = len(results)
        summary = latency_summary([r.latency for r in results])
        ratios = [a / b for a, b in zip(round_p99[mode], round_p99["off"], strict=True)]
        # Rounds in which neither this mode's block nor off's saw the client loop run late
        # by more than CLEAN_LATE_MS in all: the comparison a quiet machine would give.
        clean = [
            ratio
            for index, ratio in enumerate(ratios)
            if late_ms[(index, mode)] < CLEAN_LATE_MS and late_ms[(index, "off")] < CLEAN_LATE_MS
        ]
        figures[mode] = {
            "requests": n,
            "success": sum(1 for r in results if r.ok) / n,
            "latency_ms": summary,
            "extra_requests": sum(extra[mode]) / n,
            "hedged_calls": sum(1 for r in results if r.hedged) / n,
            # The client's own CPU per request (the servers run in another process): what a
            # mode costs the caller's machine, independent of how busy the machine was.
            "client_cpu_ms_per_request": cpu[mode] / n * 1e3,
            "p99_vs_off": summary["p99"] / off_p99,
            "p99_cut": 1.0 - summary["p99"] / off_p99,
            "round_p99_ms": round_p99[mode],
            "round_p99_vs_off": spread(ratios),
            "clean_rounds": len(clean),
            "clean_round_p99_vs_off": statistics.median(clean) if clean else float("nan"),
        }
    goals = []
    for mode in HEDGED_MODES:
        f = figures[mode]
        # Judged per round (paired with `off` of the same round, as drift is shared within a
        # round) and summarised by the median over rounds; the pooled cut is reported beside it.
        cut = 1.0 - f["round_p99_vs_off"]["median"]
        goals.append(
            {
                "mode": mode,
                "p99_cut": cut,
                "p99_cut_pooled": f["p99_cut"],
                "extra_requests": f["extra_requests"],
                "pass": cut >= GOAL_P99_CUT and f["extra_requests"] <= GOAL_MAX_EXTRA,
            }
        )
    return {"modes": figures, "goals": goals, "configs": configs, "client_stalls": stalls}


# --- report ---------------------------------------------------------------------------------


def report(results: Mapping[str, Any]) -> str:
    """The human-readable table."""
    m, s = results["machine"], results["settings"]
    t = s["tail"]
    lines = [
        "router stragglers: hedging on vs off (same servers, same seeded arrivals, "
        "interleaved rounds)",
        f"python {m['python']} | litellm {m['litellm']} | router {m['router']} | "
        f"{m['cpu_count']} CPUs ({m['cpus_usable']} usable) | load at start "
        f"{m['load_average_at_start']}",
        f"servers: 2 deployments, latency lognormal median {t['median_ms']:g} ms sigma "
        f"{t['sigma']:g}, {t['straggler_rate']:.0%} of calls x{t['straggler_factor']:g}",
        f"load: open loop, Poisson {s['rate']:g} req/s, {s['rounds']} rounds x {s['block']:g} s "
        f"per mode (seed {s['seed']}); fixed hedge delay {s['fixed_delay'] * 1e3:g} ms",
        "",
        f"  {'mode':<14}{'p50':>9}{'p95':>9}{'p99':>9}{'p99.9':>9}{'extra req':>11}"
        f"{'hedged':>9}{'CPU/req':>9}{'p99 vs off':>12}   per-round p99 ratio: median (min-max)"
        "; clean rounds",
    ]
    for mode in MODES:
        f = results["modes"][mode]
        lat = f["latency_ms"]
        r = f["round_p99_vs_off"]
        rounds = (
            "(baseline)"
            if mode == "off"
            else f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f}); "
            f"{f['clean_round_p99_vs_off']:.3f} (n={f['clean_rounds']})"
        )
        lines.append(
            f"  {mode:<14}{lat['p50']:>7.1f}ms{lat['p95']:>7.1f}ms{lat['p99']:>7.1f}ms"
            f"{lat['p999']:>7.1f}ms{f['extra_requests']:>11.1%}{f['hedged_calls']:>9.1%}"
            f"{f['client_cpu_ms_per_request']:>7.2f}ms{f['p99_vs_off']:>12.3f}   {rounds}"
        )
    lines += [
        "",
        f"  goal: p99 cut >= {GOAL_P99_CUT:.0%} with <= {GOAL_MAX_EXTRA:.0%} extra requests "
        "(The Tail at Scale: 1,800 -> 74 ms at +2%)",
    ]
    for g in results["goals"]:
        lines.append(
            f"    {g['mode']:<12} p99 cut {g['p99_cut']:6.1%} (median over rounds; pooled "
            f"{g['p99_cut_pooled']:6.1%}), extra {g['extra_requests']:5.1%}  "
            f"{'PASS' if g['pass'] else 'MISS'}"
        )
    late = [x for x in results["client_stalls"] if x["total_ms"] >= CLEAN_LATE_MS]
    if late:
        blocks = ", ".join(f"round {x['round'] + 1} {x['mode']}" for x in late)
        lines.append(
            f"  client event loop late >= {CLEAN_LATE_MS:g} ms in all during: {blocks} (a busy "
            "machine: these blocks' tails are partly the client's; rounds are compared by "
            "median, and 'clean rounds' leaves them out)"
        )
    litellm_p99 = results["modes"]["litellm"]["latency_ms"]["p99"]
    lines += [
        f"  LiteLLM Router (no hedging) p99: {litellm_p99:.1f} ms",
        "",
        f"configurations: {json.dumps(results['configs'], default=str)}",
        f"run took {results['runtime_s']:.0f} s",
    ]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Settings, Path | None]:
    """Command-line settings; `--quick` lowers the defaults, explicit values still win."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (8)")
    parser.add_argument("--block", type=float, help="seconds of load per mode per round (8)")
    parser.add_argument("--rate", type=float, help="arrivals per second (50)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per mode (100)")
    parser.add_argument("--seed", type=int, default=0, help="arrivals, draws, order (0)")
    parser.add_argument(
        "--fixed-delay",
        type=float,
        help="seconds, the fixed-delay mode (default 2.5 x the median: above the body of the "
        "distribution as the client sees it, well below the stragglers)",
    )
    parser.add_argument("--median-ms", type=float, default=20.0)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--straggler-rate", type=float, default=0.05)
    parser.add_argument("--straggler-factor", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="a few short rounds (smoke use)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    parser.add_argument("--serve", metavar="PORT,PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    settings = Settings(
        rounds=args.rounds or (2 if quick else 8),
        block=args.block or (1.5 if quick else 8.0),
        rate=args.rate or (30.0 if quick else 50.0),
        warmup=args.warmup or (16 if quick else 100),
        seed=args.seed,
        fixed_delay=args.fixed_delay or 2.5 * args.median_ms / 1000.0,
        tail=Tail(args.median_ms, args.sigma, args.straggler_rate, args.straggler_factor),
    )
    if settings.rounds < 1 or settings.block <= 0 or settings.rate <= 0 or settings.warmup < 1:
        parser.error("--rounds and --warmup must be at least 1, --block and --rate > 0")
    return args, settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 whether or not the goal is met."""
    args, settings, json_path = parse_args(argv)
    if args.serve:
        ports = [int(p) for p in args.serve.split(",")]
        asyncio.run(serve(ports, settings.tail, settings.seed))
        return 0
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    started = time.perf_counter()
    child = straggler_servers(settings.tail, settings.seed)
    try:
        with child.running():
            litellm = load_litellm()
            results: dict[str, Any] = {"machine": machine_facts()}
            results.update(asyncio.run(measure(litellm, child, settings)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    results["settings"] = {
        "rounds": settings.rounds,
        "block": settings.block,
        "rate": settings.rate,
        "warmup": settings.warmup,
        "seed": settings.seed,
        "fixed_delay": settings.fixed_delay,
        "tail": {
            "median_ms": settings.tail.median_ms,
            "sigma": settings.tail.sigma,
            "straggler_rate": settings.tail.straggler_rate,
            "straggler_factor": settings.tail.straggler_factor,
        },
    }
    results["runtime_s"] = time.perf_counter() - started
    print(report(results))
    write_json(json_path, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
