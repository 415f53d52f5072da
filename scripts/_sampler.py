"""A sampling profiler for a server process: where its main thread's time goes, under load.

    python scripts/_sampler.py --out gw.json -m router._serve --config ... --port ...

Runs the module like ``python -m`` and, from a daemon thread, reads the main thread's Python
stack every ``--interval`` seconds (``sys._current_frames``). Each sample weighs the main
thread's CPU time since the previous one (its own CPU clock), so waiting in epoll weighs
nothing and a sample taken where a syscall let go of the GIL weighs only the little CPU before
it. SIGUSR1 starts the count afresh (the benchmark sends it after its warm-up, so imports and
first calls are left out). When the module returns (the server drained on SIGTERM) it writes, as
JSON: the CPU seconds sampled, and per package (router's gateway, router, litellm, the provider
SDK, HTTP, the ASGI server and framework, asyncio, pydantic, other) and per function its own
share of that CPU, per function its inclusive share, and the time spent in garbage collection
by generation (``gc.callbacks``).

Unlike cProfile it does not slow every call down; the switch interval is lowered to a tenth of
a millisecond so that the main thread lets go of the GIL often enough to be sampled.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import runpy
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

_PARTS = (
    ("/router/_serve/", "gateway"),
    ("/router/", "router"),
    ("/telemetry/", "router"),
    ("/litellm/", "litellm"),
    ("/openai/", "provider SDK"),
    ("/httpx/", "HTTP client"),
    ("/httpcore/", "HTTP client"),
    ("/aiohttp/", "HTTP client"),
    ("/uvicorn/", "uvicorn"),
    ("/starlette/", "starlette"),
    ("/anyio/", "anyio"),
    ("/asyncio/", "asyncio"),
    ("/pydantic", "pydantic"),
)


def part(filename: str) -> str:
    for needle, name in _PARTS:
        if needle in filename:
            return name
    return "other"


class Sampler:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.main = threading.main_thread().ident
        self.clock = time.pthread_getcpuclockid(self.main or 0)
        self._stop = threading.Event()
        self.reset()

    def reset(self, *_: Any) -> None:
        self.samples = 0
        self.cpu = 0.0
        self.own: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.inclusive: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.parts: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.gc_s = [0.0, 0.0, 0.0]
        self.gc_runs = [0, 0, 0]
        self._last = time.clock_gettime(self.clock)
        self._gc_started = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """`gc.callbacks`: the time of each collection, by generation."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            generation = info["generation"]
            self.gc_s[generation] += time.perf_counter() - self._gc_started
            self.gc_runs[generation] += 1

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="sampler").start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.main or 0)
            if frame is not None:
                self._take(frame)

    def _take(self, frame: FrameType) -> None:
        now = time.clock_gettime(self.clock)
        weight, self._last = now - self._last, now
        if weight <= 0:
            return
        self.samples += 1
        self.cpu += weight
        top = f"{frame.f_code.co_filename}:{frame.f_code.co_name}"
        self.own[top] += weight
        self.parts[part(frame.f_code.co_filename)] += weight
        seen: set[str] = set()
        f: FrameType | None = frame
        while f is not None:
            name = f"{f.f_code.co_filename}:{f.f_code.co_name}"
            if name not in seen:
                seen.add(name)
                self.inclusive[name] += weight
            f = f.f_back

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        total = self.cpu or 1.0

        def shares(weights: dict[str, float], n: int) -> list[tuple[str, float]]:
            top = sorted(weights.items(), key=lambda kv: -kv[1])[:n]
            return [(k, round(v / total, 4)) for k, v in top]

        return {
            "samples": self.samples,
            "cpu_s": round(self.cpu, 3),
            "gc_s_by_generation": [round(x, 4) for x in self.gc_s],
            "gc_runs_by_generation": self.gc_runs,
            "parts": shares(self.parts, 20),
            "own": shares(self.own, 60),
            "inclusive": shares(self.inclusive, 80),
        }


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--interval", type=float, default=0.0005)
    p.add_argument("-m", dest="module", required=True)
    a, rest = p.parse_known_args()
    sys.argv = [a.module, *rest]
    sys.setswitchinterval(0.0001)
    sampler = Sampler(a.interval)
    signal.signal(signal.SIGUSR1, sampler.reset)
    gc.callbacks.append(sampler.on_gc)
    sampler.start()
    started = time.perf_counter()
    try:
        runpy.run_module(a.module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        result = sampler.stop()
        result["seconds"] = round(time.perf_counter() - started, 1)
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
