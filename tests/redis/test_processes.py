"""Three router processes share breaker state through a real Redis (the issue's acceptance).

One module-scoped cluster: the simulated fleet (a, b, c; threaded, in this process), a Redis
server of its own (killed and restarted by the last test) and three worker processes
(tests/redis/worker.py) calling group ``chat`` in a loop with the ``ordered`` strategy, so
every worker prefers ``a``. Only worker 0 can trip a breaker (3 consecutive failures); workers
1 and 2 are configured never to trip on their own evidence, so when they stop sending to ``a``
it is because worker 0's trip reached them. Times are wall-clock seconds reported by the
workers (one host). The retry budget is opened wide so that failovers never run out of budget:
every call must succeed, and any failed call is a test failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from _redis_server import RedisServer, start_server

from router._sim import Behavior, Fleet

ROOT = Path(__file__).resolve().parents[2]
PROPAGATION_S = 1.0
"""The issue's bound: a trip in one process is avoided by the others within a second."""
T = TypeVar("T")


@dataclass
class Worker:
    """One worker process and everything it reported so far."""

    name: str
    process: subprocess.Popen[str]
    calls: list[dict[str, Any]] = field(default_factory=list)
    status: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a library's stray print
            kind = record.get("kind")
            if kind == "call":
                self.calls.append(record)
            elif kind == "status":
                self.status.append(record)
            elif kind == "ready":
                self.ready.set()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())

    def start_readers(self) -> None:
        for target in (self._read_stdout, self._read_stderr):
            threading.Thread(target=target, daemon=True).start()

    def ask_to_stop(self) -> None:
        """Close its stdin: it ends its loop (and litellm's exit hooks) on its own."""
        if self.process.poll() is None and self.process.stdin is not None:
            self.process.stdin.close()

    def stop(self) -> None:
        self.ask_to_stop()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    # -- queries over the reports --------------------------------------------------------

    def calls_since(self, since: float) -> list[dict[str, Any]]:
        return [c for c in list(self.calls) if c["t0"] >= since]

    def attempts_on(self, deployment: str, since: float) -> list[dict[str, Any]]:
        return [
            a
            for c in list(self.calls)
            for a in c["attempts"]
            if a["d"] == deployment and a["t"] >= since
        ]

    def event(self, deployment: str, after: str, since: float) -> float | None:
        for call in list(self.calls):
            for e in call["events"]:
                if e["d"] == deployment and e["after"] == after and e["t"] >= since:
                    return float(e["t"])
        return None

    def served_by(self, deployment: str, since: float) -> bool:
        return any(c["ok"] and c["served"] == deployment for c in self.calls_since(since))

    def failed_since(self, since: float) -> list[dict[str, Any]]:
        return [c for c in self.calls_since(since) if not c["ok"]]

    def first_status(self, since: float, test: Callable[[dict[str, Any]], bool]) -> float | None:
        for s in list(self.status):
            if s["t"] >= since and test(s):
                return float(s["t"])
        return None

    def log_count(self, text: str) -> int:
        return sum(text in line for line in list(self.log))


@dataclass
class Cluster:
    fleet: Fleet
    server: RedisServer
    workers: list[Worker]
    prefix: str


def wait_for(get: Callable[[], T | None], timeout: float, what: str) -> T:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = get()
        if value is not None and value is not False:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def worker_config(fleet: Fleet, url: str, prefix: str, *, can_trip: bool) -> dict[str, Any]:
    never = 1_000_000
    return {
        "router": {
            "deadline": 5.0,
            "max_attempts": 3,
            "strategy": "ordered",
            "retry_budget_ratio": 1.0,
            "retry_budget_floor": 1000,
            "breaker_consecutive_failures": 3 if can_trip else never,
            "breaker_min_calls": 10 if can_trip else never,
            "breaker_open_base": 1.0,
            "breaker_open_max": 1.0,
        },
        "deployments": [
            {
                "name": p.name,
                "model": f"openai/sim-{p.name}",
                "api_base": p.base_url,
                "api_key": "sk-sim-test",
                "timeout": 1.0,
                "groups": ["chat"],
            }
            for p in fleet
        ],
        "state": {
            "backend": "redis",
            "url": url,
            "key_prefix": prefix,
            "probe_grace": 1.0,
            "reconnect_max": 0.5,
            "reconcile_interval": 1.0,
        },
    }


def spawn(name: str, config: dict[str, Any]) -> Worker:
    spec = {"name": name, "config": config, "interval": 0.02}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.redis.worker", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = Worker(name, process)
    worker.start_readers()
    return worker


@pytest.fixture(scope="module")
def cluster(redis_binary: str) -> Iterator[Cluster]:
    server = start_server()
    prefix = "procs:"
    workers: list[Worker] = []
    try:
        fleet_ = Fleet({n: Behavior(latency_ms=2.0) for n in ("a", "b", "c")}, seed=1)
        with fleet_.threaded() as fleet:
            for i in range(3):
                config = worker_config(fleet, server.url, prefix, can_trip=i == 0)
                workers.append(spawn(f"w{i}", config))
            for worker in workers:
                if not worker.ready.wait(60):
                    raise AssertionError(f"{worker.name} never got ready: {worker.log[-5:]}")
            yield Cluster(fleet, server, workers, prefix)
    finally:
        for worker in workers:  # all at once: each takes a moment to exit
            worker.ask_to_stop()
        for worker in workers:
            worker.stop()
        server.close()


def all_serving_from_a(cluster: Cluster, since: float) -> None:
    wait_for(
        lambda: all(w.served_by("a", since) for w in cluster.workers),
        10,
        "every worker served by a",
    )


def is_degraded(status: dict[str, Any]) -> bool:
    return bool(status["degraded"])


def is_connected(status: dict[str, Any]) -> bool:
    return not status["degraded"]


def assert_no_failed_calls(cluster: Cluster, since: float) -> None:
    for worker in cluster.workers:
        failed = worker.failed_since(since)
        assert not failed, f"{worker.name}: {len(failed)} failed call(s), first: {failed[0]}"


def test_a_trip_in_one_process_is_avoided_by_the_others_within_a_second(
    cluster: Cluster,
) -> None:
    w0, w1, w2 = cluster.workers
    start = time.time()
    all_serving_from_a(cluster, start)
    cluster.fleet["a"].set(outage="503")
    outage = time.time()
    trip = wait_for(lambda: w0.event("a", "open", outage), 10, "worker 0 to trip a")
    # Watch two seconds past the trip: the others must have stopped sending to a after one.
    time.sleep(max(0.0, trip + 2 * PROPAGATION_S - time.time()))
    for worker in (w1, w2):
        late = worker.attempts_on("a", trip + PROPAGATION_S)
        assert not late, f"{worker.name} still sent {len(late)} attempt(s) to a: {late[:2]}"
        after = [c for c in worker.calls_since(trip + PROPAGATION_S) if c["t0"] < trip + 2]
        assert len(after) >= 3, f"{worker.name} made too few calls to judge: {len(after)}"
        assert all(c["served"] == "b" for c in after)
        # It learned it from worker 0 (its own breaker cannot trip), and how fast:
        seen = worker.first_status(trip, lambda s: s["states"].get("a") == "open")
        assert seen is not None and seen - trip <= PROPAGATION_S
        peer = [s["peer"].get("a") for s in worker.status if s["t"] >= trip and s["peer"]]
        assert peer and peer[-1] is not None
    assert_no_failed_calls(cluster, start)


def ensure_tripped(cluster: Cluster) -> None:
    w0 = cluster.workers[0]
    if w0.status and w0.status[-1]["states"].get("a") in ("open", "half_open"):
        return
    cluster.fleet["a"].set(outage="503")
    since = time.time()
    wait_for(lambda: w0.event("a", "open", since), 10, "worker 0 to trip a")


def test_recovery_propagates_to_the_other_processes(cluster: Cluster) -> None:
    w0, w1, w2 = cluster.workers
    start = time.time()
    ensure_tripped(cluster)
    cluster.fleet["a"].set(outage=None)
    fixed = time.time()
    # Worker 0's breaker (open 1 s at most) lets a probe through, which closes it.
    closed = wait_for(lambda: w0.event("a", "closed", fixed), 10, "worker 0 to close a")
    for worker in (w1, w2):

        def first_success(w: Worker = worker) -> dict[str, Any] | None:
            ok = [a for a in w.attempts_on("a", fixed) if a["o"] == "success"]
            return ok[0] if ok else None

        first = wait_for(first_success, 5, f"{worker.name} to send to a again")
        assert first["t"] <= closed + PROPAGATION_S, (first, closed)
        # Closed by worker 0's word, not by a probe of its own.
        assert not first["probe"]
    assert_no_failed_calls(cluster, start)


def test_redis_killed_mid_run_fails_no_call_and_sharing_resumes(cluster: Cluster) -> None:
    w0, w1, w2 = cluster.workers
    start = time.time()
    cluster.fleet["a"].set(outage=None)
    all_serving_from_a(cluster, start)
    cluster.server.kill()
    killed = time.time()
    for worker in cluster.workers:
        wait_for(
            lambda w=worker: w.first_status(killed, is_degraded),  # type: ignore[misc]
            5,
            f"{worker.name} to report degraded",
        )
    # With Redis gone, worker 0 trips a on its own; the others cannot hear of it, so they keep
    # trying a (and failing over to b): local state only, and no call fails.
    cluster.fleet["a"].set(outage="503")
    outage = time.time()
    trip = wait_for(lambda: w0.event("a", "open", outage), 10, "worker 0 to trip a")
    time.sleep(0.5)
    for worker in (w1, w2):
        assert worker.attempts_on("a", trip + 0.2), f"{worker.name} heard of a trip without Redis"
    cluster.server.start()  # same port, empty: nothing survived
    restarted = time.time()
    back = {
        worker.name: wait_for(
            lambda w=worker: w.first_status(restarted, is_connected),  # type: ignore[misc]
            10,
            f"{worker.name} to reconnect",
        )
        for worker in cluster.workers
    }
    # Worker 0 republishes its open breaker on reconnect: the others stop sending to a.
    settle = max(back.values()) + 2 * PROPAGATION_S
    time.sleep(max(0.0, settle - time.time()))
    for worker in (w1, w2):
        late = worker.attempts_on("a", max(back[worker.name], back["w0"]) + PROPAGATION_S)
        assert not late, f"{worker.name} still sent to a after Redis came back: {late[:2]}"
    cluster.fleet["a"].set(outage=None)
    fixed = time.time()
    for worker in cluster.workers:
        wait_for(
            lambda w=worker: w.served_by("a", fixed),  # type: ignore[misc]
            10,
            f"{worker.name} back on a",
        )
    assert_no_failed_calls(cluster, start)
    for worker in cluster.workers:
        # One warning for the outage, not one per call; one line when it is over.
        assert worker.log_count("router.state_degraded") == 1, worker.log[-10:]
        assert worker.log_count("router.state_recovered") == 1, worker.log[-10:]
