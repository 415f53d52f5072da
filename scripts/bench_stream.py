"""Streaming: the router's added cost per chunk, and many concurrent streams in one process.

    python scripts/bench_stream.py                  # all sections (~2-4 minutes on 2 cores)
    python scripts/bench_stream.py --quick          # a few rounds, for smoke use
    python scripts/bench_stream.py --json out.json  # also write every figure as JSON

What is measured
----------------
1. **In-process, per chunk** (no network): a backend whose ``stream`` yields prebuilt
   ``ModelResponseStream`` chunks at once. Reading a stream of `--chunks` chunks through
   ``router.acompletion(..., stream=True)`` vs iterating the backend's stream directly; the
   difference over the chunk count is the router's own cost per chunk: its `RoutedStream`
   wrapper (deadline check, usage and finish-reason tracking) and the end-of-stream checks,
   with the per-call cost taken out by measuring two stream lengths (the slope). With
   telemetry off, and on (tracing + JSON decision logs, the SDK's batch processor).
2. **Over HTTP, per chunk**: the simulated provider (its own process) streams 5 or 50 chunks
   with no delay; process CPU per stream through raw ``litellm.acompletion(stream=True)`` and
   through the router, interleaved rounds. Per-chunk cost is the slope between the two lengths;
   the router's added per chunk is its slope minus raw's in the same round.
3. **1,000 concurrent streams** (``--streams``) through one process, raw litellm vs the router,
   each stream `--chunks` chunks `--chunk-ms` apart: wall time, streams completed, errors,
   p50/p99 time to the last chunk, and the process RSS at the peak.

A benchmark reports; it exits 0 whether or not the goal is met (≤ 10 µs per chunk over raw
litellm's stream).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _benchlib import (
    InstantBackend,
    http_json,
    latency_summary,
    load_litellm,
    machine_facts,
    raise_keyboard_interrupt,
    spread,
    write_json,
)
from bench_memory import rss_bytes
from bench_overhead import (
    MESSAGES,
    PROVIDER,
    TIMEOUT_S,
    Provider,
    raw_params,
    router_config,
)

GOAL_PER_CHUNK_US = 10.0
Call = Callable[[], Awaitable[Any]]


# --- 1. in-process --------------------------------------------------------------------------


def prebuilt_chunks(litellm: Any, n: int) -> list[Any]:
    """`n` content chunks, then one with finish_reason and usage, like a provider's stream."""
    from litellm.types.utils import ModelResponseStream

    chunks = [
        ModelResponseStream(
            id="chatcmpl-bench",
            model="sim-bench",
            choices=[{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}],
        )
        for i in range(n)
    ]
    last = ModelResponseStream(
        id="chatcmpl-bench",
        model="sim-bench",
        choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
    )
    last.usage = litellm.Usage(prompt_tokens=6, completion_tokens=n, total_tokens=6 + n)
    return [*chunks, last]


class ChunkBackend(InstantBackend):
    """Streams the prebuilt chunks of the requested length at once."""

    def __init__(self, litellm: Any, lengths: Sequence[int]) -> None:
        super().__init__(None)
        self.by_length = {n: prebuilt_chunks(litellm, n) for n in lengths}
        self.length = lengths[0]

    async def stream(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        return _iterate(self.by_length[self.length])


async def _iterate(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


async def _block_us(call: Call, n: int, flush: Callable[[], object] | None) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    if flush is not None:
        flush()
    return (time.perf_counter() - started) / n * 1e6


async def in_process(litellm: Any, settings: argparse.Namespace) -> dict[str, Any]:
    """µs per chunk the router adds over iterating the backend's stream, telemetry off and on."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import router
    from router import telemetry

    short, long_ = 2, settings.chunks_long
    backend = ChunkBackend(litellm, (short, long_))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    devnull = open(os.devnull, "w")  # noqa: SIM115  (lives for the run)
    on = telemetry.Telemetry(
        tracer_provider=provider, metrics=False, log_file=devnull, log_format="json"
    )
    routers = {
        "off": router.Router(router_config("http://unused.invalid/v1"), backend=backend),
        "tracing+logs": router.Router(
            router_config("http://unused.invalid/v1"), backend=backend, observer=on
        ),
    }
    deployment = routers["off"].config.deployment("sim")
    request = {"messages": MESSAGES}

    async def direct() -> None:
        async for _ in await backend.stream(deployment, request, TIMEOUT_S):
            pass

    def routed(r: Any) -> Call:
        async def call() -> None:
            async for _ in await r.acompletion(PROVIDER, MESSAGES, stream=True):
                pass

        return call

    calls: dict[str, Call] = {"direct": direct, **{k: routed(r) for k, r in routers.items()}}

    def flush() -> None:
        provider.force_flush()
        exporter.clear()

    rng = random.Random(settings.seed)
    us: dict[tuple[str, int], list[float]] = {(m, n): [] for m in calls for n in (short, long_)}
    for n in (short, long_):
        backend.length = n
        for call in calls.values():
            await _block_us(call, 50, None)
    gc.collect()
    for _ in range(settings.rounds):
        for n in rng.sample([short, long_], 2):
            backend.length = n
            for mode in rng.sample(list(calls), len(calls)):
                gc.collect()
                block = await _block_us(
                    calls[mode], settings.inproc_calls, flush if mode == "tracing+logs" else None
                )
                us[(mode, n)].append(block)
    span = long_ - short
    result: dict[str, Any] = {"chunks": [short + 1, long_ + 1], "modes": {}}
    direct_slope = [
        (b - a) / span for a, b in zip(us[("direct", short)], us[("direct", long_)], strict=True)
    ]
    for mode in ("off", "tracing+logs"):
        slope = [(b - a) / span for a, b in zip(us[(mode, short)], us[(mode, long_)], strict=True)]
        added = [s - d for s, d in zip(slope, direct_slope, strict=True)]
        per_call = [r - d for r, d in zip(us[(mode, short)], us[("direct", short)], strict=True)]
        result["modes"][mode] = {
            "added_per_chunk_us": spread(added),
            "added_per_call_us": spread(per_call),
        }
    result["direct_per_chunk_us"] = statistics.median(direct_slope)
    provider.shutdown()
    devnull.close()
    return result


# --- 2. over HTTP ---------------------------------------------------------------------------


def http_calls(litellm: Any, base_url: str) -> dict[str, Call]:
    """Raw litellm and the router, each reading a whole stream from the provider."""
    import router

    params = raw_params(base_url, 60.0)
    config = router_config(base_url)
    config["router"]["deadline"] = 60.0
    config["deployments"][0]["timeout"] = 60.0
    ours = router.Router(config, telemetry=False)
    acompletion = litellm.acompletion

    async def raw() -> None:
        async for _ in await acompletion(messages=MESSAGES, stream=True, **params):
            pass

    async def routed() -> None:
        async for _ in await ours.acompletion(PROVIDER, MESSAGES, stream=True):
            pass

    return {"raw": raw, "router": routed}


async def over_http(
    litellm: Any, provider: Provider, settings: argparse.Namespace
) -> dict[str, Any]:
    """CPU per stream at two lengths; per-chunk slope of each, router minus raw per round."""
    calls = http_calls(litellm, provider.base_url)
    short, long_ = 5, 50
    knobs = provider.url(0, "/_sim/knobs")
    rng = random.Random(settings.seed)
    cpu: dict[tuple[str, int], list[float]] = {(m, n): [] for m in calls for n in (short, long_)}
    for n in (short, long_):
        http_json(knobs, {"stream_chunks": n, "chunk_delay_ms": 0})
        for call in calls.values():
            for _ in range(10):
                await call()
    for _ in range(settings.rounds):
        for n in rng.sample([short, long_], 2):
            http_json(knobs, {"stream_chunks": n, "chunk_delay_ms": 0})
            for mode in rng.sample(list(calls), 2):
                gc.collect()
                started = time.process_time()
                for _ in range(settings.http_calls):
                    await calls[mode]()
                cpu[(mode, n)].append((time.process_time() - started) / settings.http_calls * 1e6)
    span = long_ - short
    slope = {
        m: [(b - a) / span for a, b in zip(cpu[(m, short)], cpu[(m, long_)], strict=True)]
        for m in calls
    }
    added = [r - b for r, b in zip(slope["router"], slope["raw"], strict=True)]
    return {
        "chunk_counts": [short, long_],
        "per_chunk_us": {m: spread(v) for m, v in slope.items()},
        "router_added_per_chunk_us": spread(added),
        "cpu_per_stream_us": {f"{m}@{n}": statistics.median(v) for (m, n), v in cpu.items()},
    }


# --- 3. many concurrent streams -------------------------------------------------------------


async def concurrent_streams(
    litellm: Any, provider: Provider, settings: argparse.Namespace
) -> dict[str, Any]:
    """`--streams` streams at once per mode (raw first, then the router, then raw again)."""
    calls = http_calls(litellm, provider.base_url)
    http_json(
        provider.url(0, "/_sim/knobs"),
        {"stream_chunks": settings.chunks, "chunk_delay_ms": settings.chunk_ms},
    )
    out: dict[str, Any] = {}
    for mode in ("raw", "router"):
        call = calls[mode]
        gc.collect()
        before = rss_bytes()
        peak = before
        durations: list[float] = []
        errors: list[str] = []

        async def one(
            call: Call = call, durations: list[float] = durations, errors: list[str] = errors
        ) -> None:
            began = time.perf_counter()
            try:
                await call()
            except Exception as exc:  # counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            durations.append(time.perf_counter() - began)

        started = time.perf_counter()
        tasks = [asyncio.ensure_future(one()) for _ in range(settings.streams)]
        while not all(t.done() for t in tasks):
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - started
        out[mode] = {
            "streams": settings.streams,
            "completed": len(durations),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "wall_s": wall,
            "time_to_last_chunk_ms": latency_summary(durations),
            "rss_before_mb": before / 1e6,
            "rss_peak_mb": peak / 1e6,
        }
    return out


# --- report ---------------------------------------------------------------------------------


def _r(s: Mapping[str, float], unit: str = "µs") -> str:
    return (
        f"{s['median']:+.2f} {unit} (IQR {s['q25']:+.2f}..{s['q75']:+.2f}, "
        f"min-max {s['min']:+.2f}..{s['max']:+.2f})"
    )


def report(results: Mapping[str, Any], settings: argparse.Namespace) -> str:
    """The human-readable tables."""
    m = results["machine"]
    ip, http = results["in_process"], results["http"]
    lines = [
        "router: streaming cost per chunk, and concurrent streams (same run, interleaved rounds)",
        f"python {m['python']} | litellm {m['litellm']} | {m['cpu_count']} CPUs | "
        f"load average at start {m['load_average_at_start']}",
        "",
        f"In-process ({settings.rounds} rounds x {settings.inproc_calls} streams; "
        f"{ip['chunks'][0]} and {ip['chunks'][1]} chunks per stream)",
        f"  iterating the backend's stream alone: {ip['direct_per_chunk_us']:.2f} µs per chunk",
    ]
    for mode, f in ip["modes"].items():
        lines.append(
            f"  router, telemetry {mode:<13} added per chunk {_r(f['added_per_chunk_us'])}"
        )
        lines.append(f"  {'':<32}added per stream {_r(f['added_per_call_us'])}")
    lines += [
        "",
        f"Over HTTP ({settings.rounds} rounds x {settings.http_calls} streams of "
        f"{http['chunk_counts'][0]} and {http['chunk_counts'][1]} chunks; process CPU)",
    ]
    for mode, s in http["per_chunk_us"].items():
        lines.append(f"  {mode:<7} CPU per chunk {_r(s)}")
    added = http["router_added_per_chunk_us"]
    verdict = "PASS" if added["median"] <= GOAL_PER_CHUNK_US else "MISS"
    lines.append(
        f"  router added per chunk over raw litellm {_r(added)}; goal <= "
        f"{GOAL_PER_CHUNK_US:g} µs: {verdict}"
    )
    if results.get("concurrent"):
        lines += [
            "",
            f"{settings.streams} concurrent streams, {settings.chunks} chunks "
            f"{settings.chunk_ms:g} ms apart, one process",
        ]
        for mode, f in results["concurrent"].items():
            t = f["time_to_last_chunk_ms"]
            lines.append(
                f"  {mode:<7} {f['completed']}/{f['streams']} completed, {f['errors']} errors, "
                f"wall {f['wall_s']:.1f} s, to last chunk p50 {t['p50']:.0f} ms p99 "
                f"{t['p99']:.0f} ms, RSS {f['rss_before_mb']:.0f} -> {f['rss_peak_mb']:.0f} MB"
            )
            if f["first_error"]:
                lines.append(f"          first error: {f['first_error']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (12)")
    parser.add_argument("--inproc-calls", type=int, help="in-process streams per block (300)")
    parser.add_argument("--chunks-long", type=int, default=100, help="long in-process stream")
    parser.add_argument("--http-calls", type=int, help="streams per HTTP block (30)")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (1000)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per concurrent stream")
    parser.add_argument("--chunk-ms", type=float, default=10.0, help="delay between chunks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few small rounds (smoke use)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 12)
    args.inproc_calls = args.inproc_calls or (30 if args.quick else 300)
    args.http_calls = args.http_calls or (5 if args.quick else 30)
    return args


async def measure(litellm: Any, provider: Provider, settings: argparse.Namespace) -> Any:
    results: dict[str, Any] = {"in_process": await in_process(litellm, settings)}
    results["http"] = await over_http(litellm, provider, settings)
    if settings.streams > 0:
        results["concurrent"] = await concurrent_streams(litellm, provider, settings)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 unless it crashed."""
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    provider = Provider()
    try:
        with provider.running():
            litellm = load_litellm()
            results: dict[str, Any] = {"machine": machine_facts()}
            results.update(asyncio.run(measure(litellm, provider, settings)))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(report(results, settings))
    write_json(settings.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
