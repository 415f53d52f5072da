"""Added cost per call of telemetry (spans, decision logs, metrics) versus telemetry off.

    python scripts/bench_telemetry.py                  # defaults: about a minute on 2 cores
    python scripts/bench_telemetry.py --quick          # a few rounds, for smoke use
    python scripts/bench_telemetry.py --json out.json  # also write every figure as JSON

What is measured
----------------
In-process, no network: the router is given a backend whose ``complete`` returns one prebuilt
``litellm.ModelResponse`` at once, so a call costs only the router's own work and, when on,
the telemetry built from its decision record. Modes, each its own `Router` over the same
backend and config:

- ``off``: telemetry off the way production has it off (no ``[telemetry]``, no
  ``OTEL_EXPORTER_OTLP_ENDPOINT``: no observer, the SDK never imported). The baseline.
- ``tracing+logs``: the OpenTelemetry SDK ``TracerProvider`` with a ``BatchSpanProcessor``
  feeding an exporter that drops every batch (serialising and sending are the exporter's, on
  the processor's thread), and the JSON decision log written to ``/dev/null``. Each block of
  calls ends with a flush inside its timing, so work the processor's thread still had queued
  is charged to the calls that made it.
- ``all``: the same plus metrics on an SDK ``MeterProvider`` (an in-memory reader that is
  never collected during the run).
- ``tracing+logs/sync``: the same spans through a ``SimpleSpanProcessor`` (no batch thread),
  to separate the cost of building spans from the GIL contention of the SDK's batch thread,
  which a tight in-process loop like this one (no I/O wait) makes as bad as it gets.
- ``direct``: awaiting the backend's ``complete`` alone, to show the router's own cost.

- ``tracing/sync``: spans only (synchronous processor, no decision log), and ``logs``: the
  decision log only (no tracer): the two halves of ``tracing+logs/sync``.

The batch processor's queue holds every span a block makes (its default 2,048 would drop
spans here: in this loop with no I/O wait its thread is starved of the GIL, so the figure
would leave out the dropped spans' work); the block's closing flush exports what is left
inside the block's timing. Spans that still did not reach the exporter are reported.

Three scenarios: ``served-one`` (a one-deployment group, one attempt: a call span and one
attempt span), ``served`` (the same on a two-deployment group: its ranking and rescue rules
run) and ``failover`` (two deployments; the first raises a prebuilt 503 at once, the second
serves: three spans).

Why interleaved rounds
----------------------
Absolute timings drift on a shared 2-core machine by more than the figure being measured. Each
round runs every mode once, in a freshly shuffled (seeded) order, and the *added* cost of a
mode is taken within the round (its µs per call minus ``off``'s in the same round), then
summarised over rounds: median, interquartile range, min-max. The baseline is always measured
in the same run. After warm-up the long-lived heap is frozen out of the garbage collector and
a collection runs between blocks, so one mode's garbage is not collected on another's clock.

The goal printed beside the figures is the project's: tracing and logging on add at most
0.1 ms per call; with telemetry off, no measurable cost (the engine holds no observer). A
benchmark reports; it exits 0 whether or not the goal is met.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# Before anything can import litellm: keep its import off the network (bundled price map).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The baseline must be "off" as production has it: no OTLP variables from the shell.
for _name in [n for n in os.environ if n.startswith("OTEL_")]:
    del os.environ[_name]

try:
    import router
    from router import telemetry
except ImportError:
    # Run from a checkout without `pip install -e .`: the packages sit next to scripts/.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import router
    from router import telemetry

Call = Callable[[], Awaitable[Any]]

GROUP = "bench"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say hello in one word."}]
GOAL_ADDED_US = 100.0
GOAL_OWN_OFF_US = 25.0
GOAL_OWN_ON_US = 80.0
"""Issue 14: the router's own work per call (mode - direct) with telemetry off, and with
tracing + logs on (served scenario, median over rounds)."""
MODES = ("off", "tracing+logs", "all", "tracing+logs/sync", "tracing/sync", "logs")
SCENARIOS = ("served-one", "served", "failover")
"""``served-one``: a one-deployment group (the group bench_overhead's in-process figure uses);
``served`` and ``failover``: the two-deployment group."""
GOAL_SCENARIOS = ("served-one", "served")


@dataclass(frozen=True)
class Settings:
    """How much to measure (see `parse_args` for the defaults and `--quick`)."""

    rounds: int
    calls: int
    warmup: int
    seed: int
    parts: bool = False


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import InstantBackend, spread  # noqa: E402  (the scripts folder, after sys.path)

# --- statistics -------------------------------------------------------------------------------


# quantile and spread come from _benchlib (shared by every benchmark).


# --- the in-process router --------------------------------------------------------------------


def prebuilt(litellm: Any) -> tuple[Any, BaseException]:
    """The answer and the 503 the backend gives, shaped like a provider's."""
    import httpx

    response = litellm.ModelResponse(
        id="chatcmpl-bench",
        model="sim-bench",
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello."},
                "finish_reason": "stop",
            }
        ],
        usage=litellm.Usage(prompt_tokens=6, completion_tokens=4, total_tokens=10),
    )
    request = httpx.Request("POST", "http://unused.invalid/v1/chat/completions")
    error = litellm.ServiceUnavailableError(
        "simulated outage",
        llm_provider="openai",
        model="sim-a",
        response=httpx.Response(503, request=request),
    )
    return response, error


def config(deployments: int = 2) -> dict[str, Any]:
    """`deployments` (1 or 2) deployments, ranked a then b; breakers and the retry budget
    never interfere (the failover scenario fails over on every call, by design)."""
    return {
        "router": {
            "strategy": "ordered",
            "deadline": 30.0,
            "breaker_consecutive_failures": 1_000_000_000,
            "breaker_min_calls": 21,  # more than the window: the rate rule never trips
            "breaker_window": 20,
            "retry_budget_floor": 1_000_000_000,
        },
        "deployments": [
            {
                "name": name,
                "model": f"openai/sim-{name}",
                "api_key": "sk-bench-unused",
                "input_cost_per_token": 1e-7,
                "output_cost_per_token": 4e-7,
                "groups": [GROUP],
            }
            for name in ("a", "b")[:deployments]
        ],
    }


class _DropSpans:
    """A span exporter that accepts every batch, counts it and keeps nothing."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def observers(devnull: TextIO, queue: int = 2048) -> tuple[dict[str, Any], list[Any], _DropSpans]:
    """The observer of each mode (None: off), the providers to shut down after, and the
    exporter (to count the spans that reached it)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    tracer_provider = TracerProvider()
    # The SDK's batching (batches of 512) with a queue that holds a whole block's spans: the
    # default 2,048 drops spans in this no-I/O loop (its thread starved of the GIL), which
    # would leave their work out of the figure. Each block ends with a flush inside its
    # timing; spans that still did not reach the exporter are counted and reported.
    exporter = _DropSpans()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=max(2048, queue))  # type: ignore[arg-type]
    )
    # The same spans through the synchronous processor: no batch thread competing for the GIL,
    # which isolates the cost of building the spans from the cost of the SDK's batching.
    sync_provider = TracerProvider()
    sync_provider.add_span_processor(SimpleSpanProcessor(_DropSpans()))  # type: ignore[arg-type]
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    # Off exactly as production decides it: from the (empty) [telemetry] table and the env.
    off = telemetry.observer_for(None, {})
    assert off is None
    modes = {
        "off": off,
        "tracing+logs": telemetry.Telemetry(
            tracer_provider=tracer_provider, metrics=False, log_file=devnull, log_format="json"
        ),
        "all": telemetry.Telemetry(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            log_file=devnull,
            log_format="json",
        ),
    }
    modes["tracing+logs/sync"] = telemetry.Telemetry(
        tracer_provider=sync_provider, metrics=False, log_file=devnull, log_format="json"
    )
    modes["tracing/sync"] = telemetry.Telemetry(
        tracer_provider=sync_provider, metrics=False, logs=False
    )
    modes["logs"] = telemetry.Telemetry(
        tracer_provider=None, tracing=False, metrics=False, log_file=devnull, log_format="json"
    )
    return modes, [tracer_provider, sync_provider, meter_provider], exporter


async def _loop_seconds(call: Call, n: int, flush: Callable[[], object] | None = None) -> float:
    # One clock read per block: a per-call perf_counter() would blur figures this small. The
    # flush charges the block with the span-processor work its calls left queued.
    started = time.perf_counter()
    for _ in range(n):
        await call()
    if flush is not None:
        flush()
    return time.perf_counter() - started


class _GcClock:
    """Collections and their pause time, counted by a `gc.callbacks` hook."""

    def __init__(self) -> None:
        self.count = 0
        self.pause = 0.0
        self._began = 0.0

    def __call__(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.count += 1
            self.pause += time.perf_counter() - self._began

    def snapshot(self) -> tuple[int, float]:
        return self.count, self.pause

    def since(self, before: tuple[int, float]) -> tuple[int, float]:
        return self.count - before[0], self.pause - before[1]


async def run_scenario(
    litellm: Any, scenario: str, settings: Settings, rng: random.Random, devnull: TextIO
) -> dict[str, Any]:
    """Every mode (and the direct backend call) in interleaved rounds; µs per call."""
    response, error = prebuilt(litellm)
    failing = frozenset({"a"}) if scenario == "failover" else frozenset()
    backend = InstantBackend(response, error, failing)
    spans_per_call = 3 if scenario == "failover" else 2
    modes, providers, exporter = observers(
        devnull, spans_per_call * 2 * max(settings.calls, settings.warmup)
    )
    calls: dict[str, Call] = {}
    flushes: dict[str, Callable[[], object] | None] = {"direct": None}
    routers: dict[str, Any] = {}
    for mode, observer in modes.items():
        built = router.Router(
            config(1 if scenario == "served-one" else 2),
            backend=backend,
            observer=observer,
            seed=settings.seed,
        )
        routers[mode] = built

        async def routed(r: Any = built) -> Any:
            return await r.acompletion(GROUP, MESSAGES)

        calls[mode] = routed
        flushes[mode] = None if observer is None else observer.force_flush
    deployment = routers["off"].config.deployment("a" if scenario == "served-one" else "b")
    request = {"messages": MESSAGES}

    async def direct() -> Any:
        return await backend.complete(deployment, request, 10.0)

    calls["direct"] = direct
    assert routers["off"].observer is None  # the baseline really is off
    for call in calls.values():
        await _loop_seconds(call, settings.warmup)
    gc.collect()
    gc.freeze()
    us: dict[str, list[float]] = {name: [] for name in calls}
    collections: dict[str, list[float]] = {name: [] for name in calls}
    pauses: dict[str, list[float]] = {name: [] for name in calls}
    gcs = _GcClock()
    gc.callbacks.append(gcs)
    for _ in range(settings.rounds):
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            gc.collect()
            before = gcs.snapshot()
            seconds = await _loop_seconds(calls[name], settings.calls, flushes[name])
            count, pause = gcs.since(before)
            us[name].append(seconds / settings.calls * 1e6)
            collections[name].append(count / settings.calls * 1e3)
            pauses[name].append(pause / settings.calls * 1e6)
    gc.callbacks.remove(gcs)
    gc.unfreeze()
    for provider in providers:
        provider.shutdown()
    # The batch exporter sees the spans of tracing+logs and all (the sync modes have their own).
    made = spans_per_call * 2 * (settings.warmup + settings.calls * settings.rounds)
    result: dict[str, Any] = {
        "calls_per_mode": settings.calls * settings.rounds,
        "spans_made": made,
        "spans_exported": exporter.exported,
        "us_per_call": {name: spread(values) for name, values in us.items()},
        "gc_per_1000_calls": {name: statistics.median(v) for name, v in collections.items()},
        "gc_pause_us_per_call": {name: statistics.median(v) for name, v in pauses.items()},
        "added_us": {},
    }
    for mode in MODES[1:]:
        added = [m - o for m, o in zip(us[mode], us["off"], strict=True)]
        result["added_us"][mode] = spread(added)
    result["router_own_us"] = spread([o - d for o, d in zip(us["off"], us["direct"], strict=True)])
    result["own_us"] = {
        mode: spread([m - d for m, d in zip(us[mode], us["direct"], strict=True)]) for mode in MODES
    }
    return result


# --- parts: what one call's telemetry costs, piece by piece ---------------------------------------


class _Keep(router.BaseObserver):
    """An observer that keeps the last decision it was given (to replay its telemetry)."""

    decision: Any = None
    capture_content = False

    def call_finished(self, decision: Any, error: Any, **_: Any) -> None:
        self.decision = decision


async def run_parts(litellm: Any, settings: Settings, rng: random.Random) -> dict[str, Any]:
    """Each piece of a served one-deployment call's tracing + logs, replayed on that call's
    decision record: interleaved rounds, µs per call (median, spread). The pieces are the
    observer's own steps (spans through the synchronous processor; the log event's fields,
    stamp, redaction, encoding, masking, write), so their sum is comparable with the in-situ
    ``tracing+logs/sync`` figure; the difference is what in-situ adds (cache, allocation)."""
    from router._schema import call_line
    from router.telemetry import _logs

    response, error = prebuilt(litellm)
    keep = _Keep()
    built = router.Router(
        config(1),
        backend=InstantBackend(response, error, frozenset()),
        observer=keep,
        seed=settings.seed,
    )
    await built.acompletion(GROUP, MESSAGES)
    d = keep.decision
    with open(os.devnull, "w") as devnull:
        modes, providers, _ = observers(devnull)
        sync = modes["tracing+logs/sync"]
        spans = sync._spans
        logger = sync._logger
        fields_of = telemetry._observer._ids
        context = spans.write(d, None, breakers={}, transition_times={})

        def observer_all() -> None:
            sync.call_finished(d, None)

        def span_tree() -> None:
            spans.write(d, None, breakers={}, transition_times={})

        def log_fields() -> dict[str, Any]:
            fields = call_line(d, None)
            del fields["ts"]
            fields["latency_s"] = round(d.elapsed_s, 6)
            fields["tried"] = [a.deployment for a in d.attempts]
            fields["stream"] = d.stream
            fields.update(fields_of(context))
            return fields

        stamp = _logs._Stamp()
        sample = log_fields()
        sample["event"] = "router.call_completed"
        stamped = stamp(None, "info", dict(sample))
        line = _logs._JSON.encode(stamped)

        def log_event() -> None:
            logger.info("router.call_completed", **log_fields())

        def log_stamp() -> None:
            stamp(None, "info", dict(sample))

        def log_redact() -> None:
            _logs.redact(None, "info", stamped)

        # The line encoder JsonLines uses (older trees: the shared JSONEncoder's encode).
        encode_line = getattr(_logs, "_encode_line", _logs._JSON.encode)

        def log_encode() -> None:
            encode_line(stamped)

        def log_mask() -> None:
            _logs.mask(None, "info", line)

        def log_write() -> None:
            devnull.write(line + "\n")
            devnull.flush()

        def copy_only() -> None:
            dict(sample)

        pieces: dict[str, Callable[[], object]] = {
            "observer (spans + log)": observer_all,
            "span tree (2 spans, sync)": span_tree,
            "log event": log_event,
            "  log fields (call_line +)": log_fields,
            "  stamp (+ dict copy)": log_stamp,
            "  dict copy alone": copy_only,
            "  redact": log_redact,
            "  json encode": log_encode,
            "  mask": log_mask,
            "  write + flush": log_write,
        }
        n = max(200, settings.calls)
        for piece in pieces.values():
            for _ in range(min(n, 500)):
                piece()
        gc.collect()
        gc.freeze()
        us: dict[str, list[float]] = {name: [] for name in pieces}
        for _ in range(settings.rounds):
            order = list(pieces)
            rng.shuffle(order)
            for name in order:
                piece = pieces[name]
                gc.collect()
                started = time.perf_counter()
                for _ in range(n):
                    piece()
                us[name].append((time.perf_counter() - started) / n * 1e6)
        gc.unfreeze()
        for provider in providers:
            provider.shutdown()
    return {"calls_per_piece": n * settings.rounds, "us": {k: spread(v) for k, v in us.items()}}


# --- report -----------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: interpreter, packages, cores, and how busy the machine was."""
    import importlib.metadata

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "litellm": importlib.metadata.version("litellm"),
        "opentelemetry_sdk": importlib.metadata.version("opentelemetry-sdk"),
        "structlog": importlib.metadata.version("structlog"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _fmt(s: Mapping[str, float]) -> str:
    return (
        f"{s['median']:7.1f}   IQR {s['q25']:6.1f} .. {s['q75']:6.1f}   "
        f"range {s['min']:6.1f} .. {s['max']:6.1f}"
    )


def report(results: Mapping[str, Any]) -> str:
    lines = [
        "Telemetry cost per routed call (in-process, instant backend; µs per call)",
        f"machine: {results['machine']['cpu_model']}, {results['machine']['cpu_count']} cores, "
        f"load {results['machine']['load_avg']}",
        f"rounds: {results['settings']['rounds']} x {results['settings']['calls']} calls "
        "per mode, interleaved; added = mode - off in the same round",
        "",
    ]
    for scenario in SCENARIOS:
        r = results[scenario]
        per = r["us_per_call"]
        lines.append(f"[{scenario}]")
        lines.append(f"  direct backend call     {_fmt(per['direct'])}")
        lines.append(f"  off (baseline)          {_fmt(per['off'])}")
        for mode in MODES[1:]:
            lines.append(f"  {mode:<23} {_fmt(per[mode])}")
        lines.append(f"  router's own work       {_fmt(r['router_own_us'])}   (off - direct)")
        lines.append(
            "  gc per 1000 calls / pause us per call: "
            + ", ".join(
                f"{m} {r['gc_per_1000_calls'][m]:.1f}/{r['gc_pause_us_per_call'][m]:.1f}"
                for m in ("direct", *MODES)
            )
        )
        dropped = r["spans_made"] - r["spans_exported"]
        lines.append(
            f"  spans exported (batch)  {r['spans_exported']} of {r['spans_made']}"
            + (
                f"  ({dropped} not exported: the batch figures leave their work out)"
                if dropped
                else ""
            )
        )
        for mode in MODES[1:]:
            lines.append(f"  + {mode:<21} {_fmt(r['added_us'][mode])}")
        for mode in MODES:
            lines.append(f"  own work, {mode:<18}{_fmt(r['own_us'][mode])}   (mode - direct)")
        lines.append("")
    if results.get("parts"):
        lines.append(
            f"[parts] one served call's telemetry, replayed on its decision "
            f"({results['parts']['calls_per_piece']} per piece)"
        )
        for name, figure in results["parts"]["us"].items():
            lines.append(f"  {name:<30}{_fmt(figure)}")
        lines.append("")
    goal = results["goal"]
    verdict = "PASS" if goal["pass"] else "MISS"
    lines.append(
        f"goal: tracing+logs adds <= {GOAL_ADDED_US:g} µs per call (served, median): "
        f"{goal['added_us']:.1f} µs  {verdict}"
    )
    for g in results["own_goals"]:
        lines.append(
            f"goal: router's own work, {g['mode']} <= {g['target_us']:g} µs per call "
            f"({g['scenario']}, "
            f"median of mode - direct): {g['us']:.1f} µs  {'PASS' if g['pass'] else 'MISS'}"
        )
    lines.append(
        "telemetry off: no observer is attached (the engine's one `is None` test per call); "
        "the SDK is not imported: " + ("yes" if results["sdk_not_imported_when_off"] else "NO")
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, help="interleaved rounds (15; --quick: 3)")
    parser.add_argument("--calls", type=int, help="calls per mode per round (3000; --quick: 300)")
    parser.add_argument("--warmup", type=int, help="warm-up calls per mode (1000; --quick: 100)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a few short rounds (smoke use)")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    parser.add_argument(
        "--parts", action="store_true", help="also time each piece of the telemetry of one call"
    )
    args = parser.parse_args(argv)
    rounds, calls, warmup = (3, 300, 100) if args.quick else (15, 3000, 1000)
    settings = Settings(
        rounds=args.rounds or rounds,
        calls=args.calls or calls,
        warmup=args.warmup if args.warmup is not None else warmup,
        seed=args.seed,
        parts=args.parts,
    )
    return settings, args.json


def sdk_stays_unimported_when_off() -> bool:
    """In a fresh interpreter: a router with telemetry off never imports the OTel SDK."""
    import subprocess

    code = (
        "import sys, router, telemetry\n"
        "r = router.Router({'deployments': [{'name': 'a', 'model': 'openai/x', "
        "'groups': ['g']}]})\n"
        "assert r.observer is None\n"
        "print('opentelemetry.sdk' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    return out.returncode == 0 and out.stdout.strip() == "False"


async def main_async(settings: Settings) -> dict[str, Any]:
    import logging

    import litellm

    # A starved batch thread logs one warning per dropped span; they are counted instead.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)

    litellm.suppress_debug_info = True
    rng = random.Random(settings.seed)
    results: dict[str, Any] = {"settings": settings.__dict__, "machine": machine_facts()}
    with open(os.devnull, "w") as devnull:
        for scenario in SCENARIOS:
            results[scenario] = await run_scenario(litellm, scenario, settings, rng, devnull)
    if settings.parts:
        results["parts"] = await run_parts(litellm, settings, rng)
    added = results["served"]["added_us"]["tracing+logs"]["median"]
    results["goal"] = {"added_us": added, "target_us": GOAL_ADDED_US, "pass": added <= 100.0}
    results["own_goals"] = [
        {"scenario": scenario, "mode": mode, "target_us": target,
         "us": results[scenario]["own_us"][mode]["median"],
         "pass": results[scenario]["own_us"][mode]["median"] <= target}
        for scenario in GOAL_SCENARIOS
        for mode, target in (
            ("off", GOAL_OWN_OFF_US),
            ("tracing+logs", GOAL_OWN_ON_US),
            ("tracing+logs/sync", GOAL_OWN_ON_US),
        )
    ]  # fmt: skip
    return results


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path = parse_args(argv)
    results = asyncio.run(main_async(settings))
    results["sdk_not_imported_when_off"] = sdk_stays_unimported_when_off()
    print(report(results))
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
