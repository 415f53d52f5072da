"""Shared helpers of the resilience benchmarks (``bench_chaos.py``, ``bench_scenarios.py``,
``bench_hedge.py`` and the others).

- importing this module first puts the checkout on ``sys.path`` when ``router`` is not
  installed, so every script runs from a plain checkout;

- statistics: `quantile`, `spread`, `latency_summary`;
- a server in its own process (`ChildServer`): started on free ports, polled until it answers,
  always stopped, and killed with the benchmark even if the benchmark is SIGKILLed;
- open-loop load (`poisson_arrivals`, `open_loop`): every request is its own task launched at
  its scheduled time whatever the earlier ones are doing, and its latency is measured from that
  scheduled time, so a slow system cannot slow the arrivals down or hide its queueing
  (no coordinated omission);
- litellm loading (`load_litellm`) with the project's rules: the bundled price map, the router
  imported first, no debug banner, no log noise on the measured loop;
- `machine_facts` for the report header;
- the peers' driver: the simulated fleet in its own process and its control plane
  (`sim_fleet_server`, `SimFleet`), this router's config and LiteLLM's model list over the same
  deployments (`router_config`, `litellm_model_list`, `LITELLM_STRATEGIES`), LiteLLM's global
  callback lists put back after each of its Routers (`litellm_globals_restored`), and who
  answered (`served_by`, from the simulator's reply text).

The approach to the server process follows ``scripts/bench_overhead.py``: on a 2-core machine a
server on the client's event loop would share the client's core and loop turns, so the servers
run in one separate process and the client's loop runs only client code.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

# Before anything can import litellm: keep its import off the network (bundled price map).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

try:
    import router as _router  # noqa: F401
except ImportError:
    # Run from a checkout without `pip install -e .`: the package sits next to scripts/.
    sys.path.insert(0, str(ROOT))

# Seconds to wait for a server process to answer; it imports aiohttp (and the fleet module) in
# well under a second, but a loaded 2-core CI machine is not quick.
_SERVER_START_S = 30.0

# litellm's loggers. Their output is silenced during a run: LiteLLM's cost-based routing, for
# one, logs a full traceback on every success in litellm 1.110.2, and formatting tracebacks on
# the measured loop would charge LiteLLM's Router for its own log noise.
_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


# --- statistics -----------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, interquartile range and min-max of per-round (or per-run) figures."""
    return {
        "median": statistics.median(values),
        "q25": quantile(values, 0.25),
        "q75": quantile(values, 0.75),
        "min": min(values),
        "max": max(values),
    }


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, p99.9, mean and max of latencies given in seconds, in milliseconds."""
    if not seconds:
        nan = float("nan")
        return {"p50": nan, "p95": nan, "p99": nan, "p999": nan, "mean": nan, "max": nan}
    return {
        "p50": quantile(seconds, 0.50) * 1e3,
        "p95": quantile(seconds, 0.95) * 1e3,
        "p99": quantile(seconds, 0.99) * 1e3,
        "p999": quantile(seconds, 0.999) * 1e3,
        "mean": statistics.fmean(seconds) * 1e3,
        "max": max(seconds) * 1e3,
    }


# --- a server in its own process ------------------------------------------------------------


def free_port() -> int:
    """A port that was free a moment ago (another process may take it: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the benchmark dies, even by SIGKILL."""
    # A killed benchmark (say a test timeout) must not leave a server running. Linux only;
    # elsewhere the `finally` in `ChildServer.running` is the only guard.
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def http_json(url: str, body: Mapping[str, Any] | None = None, timeout: float = 5.0) -> Any:
    """GET (or POST `body` as JSON to) `url` and decode the JSON answer; blocking."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class ChildServer:
    """A server process on `count` free ports: started, polled until ready, always stopped.

    `argv` builds the command line from the chosen ports; `ready_path` is a GET path on the
    first port that answers JSON once the server serves (any 2xx answer with
    ``ready_json=False``). A lost race for a free port (the
    child exits) is retried on other ports.
    """

    def __init__(
        self,
        name: str,
        argv: Callable[[Sequence[int]], list[str]],
        count: int,
        ready_path: str,
        *,
        ready_json: bool = True,
    ) -> None:
        self.name = name
        self.ports: list[int] = []
        self._argv = argv
        self._count = count
        self._ready_path = ready_path
        self._ready_json = ready_json
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def url(self, index: int = 0, path: str = "") -> str:
        """``http://127.0.0.1:PORT`` of the `index`-th port, plus `path`."""
        return f"http://127.0.0.1:{self.ports[index]}{path}"

    def start(self) -> None:
        """Start the process and wait until it answers; raises RuntimeError if it cannot."""
        last_error = "did not start"
        for _ in range(3):
            self.ports = _distinct_free_ports(self._count)
            # Outlives this method (read on failure, closed in stop()), so no `with` here.
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
            self._proc = subprocess.Popen(
                self._argv(self.ports),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._log,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            if self._wait_ready():
                return
            last_error = self._stderr() or f"exited with status {self._proc.returncode}"
            self.stop()
        raise RuntimeError(f"{self.name} failed to start: {last_error}")

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        give_up = time.monotonic() + _SERVER_START_S
        while time.monotonic() < give_up:
            if self._proc.poll() is not None:
                return False
            try:
                if self._ready_json:
                    http_json(self.url(0, self._ready_path), timeout=2.0)
                else:
                    with urllib.request.urlopen(self.url(0, self._ready_path), timeout=2.0):
                        pass
                return True
            except (OSError, ValueError):
                time.sleep(0.05)
        return False

    def _stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-2000:]

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[ChildServer]:
        """``with server.running():``; stops it on errors and Ctrl-C too."""
        try:
            self.start()
            yield self
        finally:
            self.stop()


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: unwind like Ctrl-C so `finally` blocks stop the server processes."""
    raise KeyboardInterrupt


# --- open-loop load -------------------------------------------------------------------------


def poisson_arrivals(rate: float, duration: float, rng: random.Random) -> list[float]:
    """Arrival offsets (seconds from the start) of a Poisson process at `rate` per second."""
    arrivals: list[float] = []
    at = rng.expovariate(rate)
    while at < duration:
        arrivals.append(at)
        at += rng.expovariate(rate)
    return arrivals


OPEN_LOOP_LEAD_S = 0.05
"""`open_loop` starts its schedule this long after it is called (time to set up its tasks)."""

Event = tuple[float, Callable[[], Awaitable[None]]]
"""(offset in seconds, action): something done to the world at a point of an open-loop run."""


async def open_loop(
    arrivals: Sequence[float],
    fire: Callable[[int, float], Coroutine[Any, Any, T]],
    events: Sequence[Event] = (),
    lead: float = OPEN_LOOP_LEAD_S,
) -> list[T]:
    """Launch ``fire(i, scheduled_loop_time)`` at each arrival, as its own task; gather all.

    Arrivals do not wait for earlier requests (open loop). ``scheduled_loop_time`` is the
    event-loop time the request was due, so `fire` can measure latency from the schedule rather
    than from whenever the loop got round to it. `events` run at their offsets on the same
    clock (fault injection). Returns the results in arrival order.
    """
    loop = asyncio.get_running_loop()
    start = loop.time() + lead

    async def at(offset: float, action: Callable[[], Awaitable[None]]) -> None:
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await action()

    scheduled = [asyncio.create_task(at(offset, action)) for offset, action in events]
    tasks: list[asyncio.Task[T]] = []
    try:
        for index, offset in enumerate(arrivals):
            due = start + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(index, due)))
        results = list(await asyncio.gather(*tasks))
        await asyncio.gather(*scheduled)
        return results
    except BaseException:
        for task in (*tasks, *scheduled):
            task.cancel()
        await asyncio.gather(*tasks, *scheduled, return_exceptions=True)
        raise


class LagMonitor:
    """Measures how late the event loop wakes up: stalls of the client itself, not the system.

    A task sleeps `interval` seconds again and again; any wake-up later than `threshold` past
    its due time is recorded. A request that is slow during a stall was slowed by the client
    process (garbage collection, a CPU-bound callback, another process on the machine), which
    every system under test suffers alike.
    """

    def __init__(self, interval: float = 0.005, threshold: float = 0.025) -> None:
        self.interval = interval
        self.threshold = threshold
        self.stalls: list[tuple[float, float]] = []
        """(loop time when the stall ended, seconds late)."""
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            late = loop.time() - due
            if late > self.threshold:
                self.stalls.append((loop.time(), late))

    def start(self) -> None:
        """Start measuring on the running loop."""
        self.stalls.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        """Stop; the stalls seen: how many, the longest and the total, in ms."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lags = [late for _, late in self.stalls]
        return {
            "stalls_over_ms": self.threshold * 1e3,
            "count": len(lags),
            "max_ms": max(lags) * 1e3 if lags else 0.0,
            "total_ms": sum(lags) * 1e3,
        }


# --- litellm and the report -----------------------------------------------------------------


def load_litellm() -> Any:
    """Import the router (which prepares litellm's environment), then litellm, quietly."""
    # The router first: importing it prepares litellm's environment (the local price map).
    importlib.import_module("router")
    import litellm

    litellm.suppress_debug_info = True
    # Cancelling a litellm call at the wrong moment (a hedge that lost, a client timeout) drops
    # an inner coroutine litellm created but had not awaited yet; Python then warns at garbage
    # collection. Nothing leaks (the request was never sent), and the warning would interleave
    # with the report.
    warnings.filterwarnings(
        "ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning
    )
    for name in _LITELLM_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return litellm


async def close_litellm_clients(litellm: Any) -> None:
    """Close litellm's cached HTTP clients on this loop, not at exit after the loop closed."""
    close = getattr(litellm, "close_litellm_async_clients", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


def machine_facts() -> dict[str, Any]:
    """What the figures depend on: interpreter, litellm, cores, and how busy the machine was."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load: list[float] = []
    with contextlib.suppress(OSError):
        load = [round(x, 2) for x in os.getloadavg()]
    return {
        "python": platform.python_version(),
        "litellm": importlib.metadata.version("litellm"),
        "router": importlib.metadata.version("router"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "platform": platform.platform(),
        "load_average_at_start": load,
    }


def write_json(path: Path | None, results: Mapping[str, Any]) -> None:
    """Write `results` to `path` as indented JSON (NaN written as null), if a path was given."""
    if path is None:
        return
    path.write_text(json.dumps(_finite(results), indent=2) + "\n")


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity; a figure that does not exist is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class InstantBackend:
    """A `router._backend.Backend` that answers at once: a prebuilt response, or (for the
    deployments in `failing`) the prebuilt `error`. Prices are the configured ones, as the real
    backend uses them when a deployment has them."""

    def __init__(
        self,
        response: Any,
        error: BaseException | None = None,
        failing: frozenset[str] = frozenset(),
    ) -> None:
        from router._catalogue import configured_cost

        self._response = response
        self._error = error
        self._failing = failing
        self._configured_cost = configured_cost

    async def complete(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        if self._error is not None and deployment.name in self._failing:
            raise self._error
        return self._response

    async def stream(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        raise NotImplementedError("the benchmarks measure non-streaming calls only")

    def price(self, deployment: Any, prompt_tokens: int, completion_tokens: int) -> float | None:
        # The configured prices, as the real catalogue (router._catalogue) reads them first:
        # imported once, not per call (an import statement per call was counted as the
        # router's own work in bench_overhead's in-process figure).
        return self._configured_cost(deployment, prompt_tokens, completion_tokens)

    def context_window(self, deployment: Any) -> int | None:
        return deployment.max_context_tokens  # type: ignore[no-any-return]

    def count_tokens(self, deployment: Any, messages: Any) -> int:
        return 8


# --- the peers' driver ----------------------------------------------------------------------

FLEET_SCRIPT = ROOT / "scripts" / "fleet.py"
SIM_API_KEY = "sk-sim-bench"
_REPLY = re.compile(r"Hello from (\w+)\.")
LITELLM_STRATEGIES = (
    "simple-shuffle",
    "latency-based-routing",
    "cost-based-routing",
    "least-busy",
    "usage-based-routing-v2",
)
"""Every routing strategy of LiteLLM's Router (1.110.2) that runs without Redis."""

Prices = Mapping[str, tuple[float, float]]
"""USD per input token and per output token, by deployment name."""


def served_by(text: str | None) -> str | None:
    """The provider that answered, from the simulator's reply text ("Hello from a.")."""
    match = _REPLY.fullmatch(text or "")
    return match[1] if match else None


def sim_fleet_server(seed: int, names: Sequence[str]) -> ChildServer:
    """``scripts/fleet.py`` with one provider per name and a control plane, in its own process."""

    def argv(ports: Sequence[int]) -> list[str]:
        command = [sys.executable, str(FLEET_SCRIPT), "--seed", str(seed)]
        for name, port in zip(names, ports[1:], strict=True):
            command += ["--provider", f"{name}:{port}"]
        return [*command, "--control", str(ports[0])]

    return ChildServer("the simulated fleet", argv, 1 + len(names), "/_sim/stats")


class SimFleet:
    """The fleet's control plane from the benchmark's event loop."""

    def __init__(
        self,
        server: ChildServer,
        session: Any,
        names: Sequence[str],
        base_knobs: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self._root = server.url(0, "/_sim")
        self._session = session
        self._base = base_knobs
        self.urls = {
            name: f"http://127.0.0.1:{port}/v1"
            for name, port in zip(names, server.ports[1:], strict=True)
        }

    async def _post(self, path: str, body: Mapping[str, Any] | None = None) -> None:
        async with self._session.post(f"{self._root}{path}", json=body or {}) as response:
            if response.status != 200:
                text = await response.text()
                raise RuntimeError(f"fleet control {path}: {response.status} {text}")

    async def apply(self, knobs: Mapping[str, Mapping[str, Any]]) -> None:
        """Set knobs on providers: ``{"a": {"outage": "503"}}``."""
        await asyncio.gather(*(self._post(f"/{n}/knobs", v) for n, v in knobs.items()))

    async def reset(self) -> None:
        """Every provider back to the healthy baseline, counters zeroed, random draws reseeded."""
        await self._post("/reset")
        await self.apply(self._base)

    async def stats(self) -> dict[str, Any]:
        """Every provider's counters."""
        async with self._session.get(f"{self._root}/stats") as response:
            result: dict[str, Any] = await response.json()
            return result

    async def known_knobs(self) -> frozenset[str]:
        """The knobs this fleet's providers have (an older fleet may lack some)."""
        first = next(iter(self.urls))
        async with self._session.get(f"{self._root}/{first}/knobs") as response:
            body = await response.json()
        knobs = body.get("knobs", body) if isinstance(body, dict) else {}
        return frozenset(knobs)


def router_config(
    urls: Mapping[str, str],
    settings: Mapping[str, Any],
    prices: Prices,
    *,
    group: str,
    timeout: float,
    api_key: str = SIM_API_KEY,
) -> dict[str, Any]:
    """This router's config: one group over the deployments of `urls`, each with `timeout` s
    per attempt and its price, ``[router]`` from `settings`."""
    return {
        "router": dict(settings),
        "deployments": [
            {
                "name": name,
                "model": f"openai/sim-{name}",
                "api_base": url,
                "api_key": api_key,
                "timeout": timeout,
                "input_cost_per_token": prices[name][0],
                "output_cost_per_token": prices[name][1],
                "groups": [group],
            }
            for name, url in urls.items()
        ],
    }


def litellm_model_list(
    urls: Mapping[str, str],
    prices: Prices | None,
    *,
    group: str,
    timeout: float,
    api_key: str = SIM_API_KEY,
) -> list[dict[str, Any]]:
    """The same deployments for LiteLLM's Router, in one model group, SDK retries off (with
    `prices`, in ``litellm_params``, and each deployment's name as its id)."""
    model_list = []
    for name, url in urls.items():
        params: dict[str, Any] = {
            "model": f"openai/sim-{name}",
            "api_base": url,
            "api_key": api_key,
            "timeout": timeout,
            "max_retries": 0,
        }
        entry: dict[str, Any] = {"model_name": group, "litellm_params": params}
        if prices is not None:
            params["input_cost_per_token"] = prices[name][0]
            params["output_cost_per_token"] = prices[name][1]
            entry["model_info"] = {"id": name}
        model_list.append(entry)
    return model_list


@contextlib.contextmanager
def litellm_globals_restored(litellm: Any) -> Iterator[None]:
    """Put litellm's global callback lists back as they were when the block ends.

    A ``litellm.Router`` appends its strategy's logging handler to ``litellm.callbacks`` (and
    others) and never removes it; left there it would run on every later litellm call, ours
    included, and slow the next systems down.
    """
    saved: dict[str, list[Any]] = {}
    for name in dir(litellm):
        if "callback" in name.lower():
            value = getattr(litellm, name, None)
            if isinstance(value, list):
                saved[name] = list(value)
    try:
        yield
    finally:
        for name, items in saved.items():
            current = getattr(litellm, name, None)
            if isinstance(current, list):
                current[:] = items
