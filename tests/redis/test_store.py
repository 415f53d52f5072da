"""`RedisState` and the fleet limits against a real Redis, several routers in one process.

Each `Router` here stands for one process: its own `RedisState` (its own connections and
origin id) over the session's Redis server, with a key prefix of the test's own. Routers share
one `FakeClock` and scripted `FakeBackend`s, so breaker periods are exact; only the Redis
round trips take real (short) time, waited for with `until`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _redis_server import RedisServer, free_port

from router import Router, get_decision
from router._redis_state import RedisState, SharedDeploymentHealth
from router.cli import main as cli_main
from router.testing import FakeBackend, FakeClock, fail, ok

MSG = [{"role": "user", "content": "hello"}]

Factory = Callable[..., tuple[Router, FakeBackend, RedisState]]


def config(url: str, prefix: str, *, per: dict[str, Any] | None = None, **router: Any) -> Any:
    return {
        "router": {
            "strategy": "ordered",
            "max_attempts": 3,
            "breaker_consecutive_failures": 2,
            "breaker_open_base": 30.0,
            "breaker_open_max": 300.0,
            **router,
        },
        "deployments": [
            {"name": n, "model": f"openai/{n}", "groups": ["chat"], **(per or {}).get(n, {})}
            for n in ("a", "b", "c")
        ],
        "state": {
            "backend": "redis",
            "url": url,
            "key_prefix": prefix,
            "reconnect_max": 0.2,
            "timeout": 0.2,
        },
    }


async def until(test: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not test():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or test}")
        await asyncio.sleep(0.005)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make(redis_server: RedisServer, prefix: str, clock: FakeClock) -> AsyncIterator[Factory]:
    stores: list[RedisState] = []

    def build(url: str | None = None, **kwargs: Any) -> tuple[Router, FakeBackend, RedisState]:
        backend = FakeBackend(clock)
        router = Router(
            config(url or redis_server.url, prefix, **kwargs),
            backend=backend,
            clock=clock,
            seed=len(stores),
            telemetry=False,
        )
        assert isinstance(router.state, RedisState)
        stores.append(router.state)
        return router, backend, router.state

    yield build
    for store in stores:
        await store.aclose()


async def connected(*stores: RedisState) -> None:
    for store in stores:
        assert await store.wait_connected(5.0), f"{store} never connected"


async def trip_a(router: Router, backend: FakeBackend) -> None:
    """Two failures of a (consecutive threshold 2), each call served by b."""
    backend.script("a", fail(503), fail(503))
    for _ in range(2):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "b"
    assert router.state.get("a").breaker.state.value == "open"


async def test_a_trip_reaches_a_peer_whose_calls_then_skip_the_deployment(make: Factory) -> None:
    one, backend1, store1 = make()
    two, backend2, store2 = make()
    await connected(store1, store2)
    await trip_a(one, backend1)
    await until(lambda: store2.get("a").breaker.state.value == "open", what="the peer's open")
    decision = get_decision(await two.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert backend2.calls_to("a") == 0
    assert [s.deployment for s in decision.skipped] == ["a"]
    assert decision.skipped[0].why.startswith("breaker open for 3")  # 30 s + jitter + grace
    health = {h.deployment: h for h in two.health()}
    assert isinstance(health["a"], SharedDeploymentHealth)
    assert health["a"].from_peer == store1.origin and not health["a"].degraded


async def test_recovery_closes_the_peer_and_keys_expire_with_the_open_period(
    make: Factory, clock: FakeClock, redis_server: RedisServer, prefix: str
) -> None:
    one, backend1, store1 = make()
    two, _backend2, store2 = make()
    await connected(store1, store2)
    await trip_a(one, backend1)
    await until(lambda: store2.get("a").breaker.state.value == "open")
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url)
    try:
        left = await client.pttl(f"{prefix}open:a")
        open_for = store1.get("a").breaker.open_until - clock.now()
        assert 0 < left <= open_for * 1000  # the key lives as long as the open period
        clock.advance(open_for + 0.1)
        decision = get_decision(await one.acompletion("chat", MSG))  # the probe succeeds
        assert decision is not None and decision.deployment == "a" and decision.attempts[0].probe
        await until(lambda: store2.get("a").breaker.state.value == "closed", what="peer close")
        assert await client.exists(f"{prefix}open:a") == 0
    finally:
        await client.aclose()
    decision = get_decision(await two.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "a" and not decision.attempts[0].probe


async def test_a_process_that_starts_later_learns_open_breakers_from_the_keys(
    make: Factory, clock: FakeClock
) -> None:
    one, backend1, store1 = make()
    await connected(store1)
    await trip_a(one, backend1)
    await until(lambda: ("a", "breaker") not in store1._dirty, what="the publish")
    _late, _backend3, store3 = make()
    await connected(store3)  # its first reconcile reads open:a
    breaker = store3.get("a").breaker
    assert breaker.state.value == "open"
    expected = store1.get("a").breaker.open_until + store3.probe_grace
    assert breaker.open_until == pytest.approx(expected, abs=0.05)


async def test_a_reconciliation_read_overtaken_by_a_message_is_not_applied(
    make: Factory, clock: FakeClock
) -> None:
    one, backend1, store1 = make()
    _two, _backend2, store2 = make()
    await connected(store1, store2)
    await trip_a(one, backend1)
    await until(lambda: store2.get("a").breaker.state.value == "open")
    assert store2._client is not None
    real_pipeline = store2._client.pipeline
    close = json.dumps(
        {"v": 1, "o": store1.origin, "k": "close", "d": "a", "s": 0, "r": "probe succeeded"}
    )

    def overtaken(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        execute = pipe.execute

        async def late_reply() -> Any:
            replies = await execute()  # read while a was still open...
            store2._receive(close)  # ...and the peer's close arrives before the reply
            return replies

        pipe.execute = late_reply  # type: ignore[method-assign,assignment]
        return pipe

    store2._client.pipeline = overtaken  # type: ignore[method-assign]
    try:
        await store2._reconcile()
    finally:
        store2._client.pipeline = real_pipeline  # type: ignore[method-assign]
    # The stale read (open, 30 s left) must not re-open what the newer close closed.
    assert store2.get("a").breaker.state.value == "closed"


async def test_a_429_pause_is_shared_with_its_reason(make: Factory, clock: FakeClock) -> None:
    one, backend1, store1 = make()
    two, backend2, store2 = make()
    await connected(store1, store2)
    backend1.script("a", fail(429, retry_after=5), fail(429, retry_after=5))
    for _ in range(2):  # the second 429 in a row pauses
        decision = get_decision(await one.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "b"
    await until(lambda: store2.get("a").health.paused(clock.now()), what="the peer's pause")
    decision = get_decision(await two.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b" and backend2.calls_to("a") == 0
    assert decision.skipped[0].why.startswith("peer: rate-limited for 5 s (")


async def test_an_unreachable_redis_fails_no_call_and_warns_once(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="router")
    router, backend, store = make(url=f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(5):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "a"
    await until(lambda: store.degraded, what="degraded")
    await trip_a(router, backend)  # local state still decides
    for _ in range(20):
        assert get_decision(await router.acompletion("chat", MSG)) is not None
        await asyncio.sleep(0.02)  # several reconnect attempts happen meanwhile
    warnings = [r for r in caplog.records if "router.state_degraded" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert store.outages == 1
    assert all(isinstance(h, SharedDeploymentHealth) and h.degraded for h in router.health())


async def test_a_hung_redis_counts_as_unreachable_and_calls_do_not_wait_for_it(
    make: Factory, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="router")
    router, backend, store = make(url=own_redis.url)
    await connected(store)
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # accepts nothing, answers nothing
    try:
        started = time.monotonic()
        await trip_a(router, backend)  # a transition to publish while Redis hangs
        took: list[float] = []
        while not store.degraded:
            assert time.monotonic() - started < 5, "a hung Redis was never noticed"
            t0 = time.monotonic()
            await router.acompletion("chat", MSG)
            took.append(time.monotonic() - t0)
            await asyncio.sleep(0.01)
        # A call that waited on the hung Redis would take its whole timeout (0.2 s); the median
        # keeps one slow loop turn on a busy machine from failing the test.
        assert took and statistics.median(took) < 0.1
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    await until(lambda: store.connected, 5.0, "reconnect after the hang")
    assert [r.getMessage().split(":")[0] for r in caplog.records if "state_" in r.getMessage()] == [
        "router.state_degraded",
        "router.state_recovered",
    ]


async def test_after_a_restart_own_open_breakers_are_published_again(
    make: Factory, own_redis: RedisServer, clock: FakeClock
) -> None:
    one, backend1, store1 = make(url=own_redis.url)
    _two, _backend2, store2 = make(url=own_redis.url)
    await connected(store1, store2)
    own_redis.kill()
    await until(lambda: store1.degraded and store2.degraded, what="both degraded")
    await trip_a(one, backend1)  # nobody hears of it: Redis is down
    await asyncio.sleep(0.1)
    assert store2.get("a").breaker.state.value == "closed"
    own_redis.start()  # empty: nothing survived the crash
    await until(lambda: store2.get("a").breaker.state.value == "open", 5.0, "republished open")
    assert store2._peer_open == {"a": store1.origin}


async def test_fleet_rpm_limit_holds_across_processes(make: Factory, clock: FakeClock) -> None:
    per = {"a": {"rpm": 4}}
    one, backend1, store1 = make(per=per)
    two, backend2, store2 = make(per=per)
    await connected(store1, store2)
    served = []
    for i in range(10):
        router = one if i % 2 == 0 else two
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None
        served.append(decision.deployment)
        if i == 3:  # the 4th request took the last slot: every process pauses a
            await until(lambda: store1.get("a").health.paused(clock.now()), what="pause")
            await until(lambda: store2.get("a").health.paused(clock.now()), what="peer pause")
    assert backend1.calls_to("a") + backend2.calls_to("a") == 4
    assert served == ["a"] * 4 + ["b"] * 6
    assert decision is not None
    assert decision.skipped[0].why.startswith("fleet rpm limit 4 reached (")


async def test_a_refused_reservation_is_a_429_attempt_and_fails_over(
    make: Factory, clock: FakeClock
) -> None:
    per = {"a": {"rpm": 2}}
    one, backend1, store1 = make(per=per)
    _two, _backend2, store2 = make(per=per)
    await connected(store1, store2)
    # Another process used the window up without this one hearing of it (a race).
    for _ in range(2):
        assert await store2.reserve("a", 2, None) is not None
    decision = get_decision(await one.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    first = decision.attempts[0]
    assert (first.deployment, first.error) == ("a", "RateLimitError 429")
    assert backend1.calls_to("a") == 0  # nothing was sent to the provider
    assert store1.get("a").health.paused_why == "fleet rpm limit 2 reached"


async def test_fleet_tpm_limit_pauses_once_the_tokens_are_counted(
    make: Factory, clock: FakeClock
) -> None:
    per = {"a": {"tpm": 40}}
    one, backend1, store1 = make(per=per)
    two, _backend2, store2 = make(per=per)
    await connected(store1, store2)
    backend1.script("a", default=ok(prompt_tokens=10, completion_tokens=10))
    for _ in range(2):  # 2 x 20 tokens: the window is full
        decision = get_decision(await one.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "a"
    await until(lambda: store2.get("a").health.paused(clock.now()), what="tpm pause")
    decision = get_decision(await two.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert decision.skipped[0].why.startswith("fleet tpm limit 40 reached (")


async def test_limits_without_redis_count_in_this_process(clock: FakeClock) -> None:
    backend = FakeBackend(clock)
    cfg = config("redis://unused", "x:", per={"a": {"rpm": 3}})
    del cfg["state"]
    router = Router(cfg, backend=backend, clock=clock, telemetry=False)
    served = [
        get_decision(await router.acompletion("chat", MSG)).deployment  # type: ignore[union-attr]
        for _ in range(5)
    ]
    assert served == ["a", "a", "a", "b", "b"]
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.skipped[0].why.startswith("rpm limit 3 reached (")
    clock.advance(61.0)
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "a"  # type: ignore[union-attr]


async def test_router_health_redis_shows_the_shared_view(
    make: Factory, redis_server: RedisServer, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    one, backend1, store1 = make()
    _two, _backend2, store2 = make()
    await connected(store1, store2)
    await trip_a(one, backend1)
    await until(lambda: store2.get("a").breaker.state.value == "open")
    await asyncio.sleep(1.3)  # one heartbeat: each process has reported its summary
    args = ["health", "--redis", redis_server.url, "--prefix", prefix]
    code = await asyncio.to_thread(cli_main, args)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "2 process(es) reporting" in out
    assert store1.origin in out and store2.origin in out
    line = next(x for x in out.splitlines() if x.strip().startswith("a "))
    assert "open" in line and "open:2" in line
    assert "not healthy: a (open for" in out
    code = await asyncio.to_thread(cli_main, [*args, "--json"])
    view = json.loads(capsys.readouterr().out)
    assert code == 1 and len(view["processes"]) == 2
    entry = next(d for d in view["deployments"] if d["deployment"] == "a")
    assert entry["shared_state"] == "open" and entry["opened_by"] == store1.origin


def test_the_sync_api_runs_the_store_on_its_background_loop(
    redis_server: RedisServer, prefix: str
) -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    cfg = config(redis_server.url, prefix)
    router = Router(cfg, backend=backend, clock=clock, telemetry=False)
    store = router.state
    assert isinstance(store, RedisState)
    try:
        decision = get_decision(router.completion("chat", MSG))
        assert decision is not None and decision.deployment == "a"
        end = time.monotonic() + 5
        while not store.connected:
            assert time.monotonic() < end, "the store never connected from the sync loop"
            time.sleep(0.01)
        assert store._loop is not None and store._loop.is_running()
    finally:
        from router._sync import run_sync

        run_sync(store.aclose())


async def test_processes_failing_together_trip_on_the_fleets_streak(make: Factory) -> None:
    # Threshold 4: each process sees only 2 failures, but the fleet saw 4 in a row.
    one, backend1, store1 = make(breaker_consecutive_failures=4)
    two, backend2, store2 = make(breaker_consecutive_failures=4)
    await connected(store1, store2)
    backend1.script("a", fail(503), fail(503))
    backend2.script("a", fail(503), fail(503))
    for _ in range(2):
        await one.acompletion("chat", MSG)
    await until(lambda: store2.get("a").breaker.peer_failures == 2, what="one's streak")
    await two.acompletion("chat", MSG)
    assert store2.get("a").breaker.state.value == "closed"  # 1 here + 2 in peers
    decision = get_decision(await two.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    (trip,) = decision.events
    assert trip.after.value == "open" and "(2 here, 2 in peer processes)" in trip.reason
    await until(lambda: store1.get("a").breaker.state.value == "open", what="two's open")
    assert backend1.calls_to("a") + backend2.calls_to("a") == 4


async def test_a_success_ends_a_streak_for_the_peers_too(make: Factory) -> None:
    one, backend1, store1 = make(breaker_consecutive_failures=3)
    _, _, store2 = make(breaker_consecutive_failures=3)
    await connected(store1, store2)
    backend1.script("a", fail(503), fail(503), ok("back"))
    for _ in range(2):
        await one.acompletion("chat", MSG)
    await until(lambda: store2.get("a").breaker.peer_failures == 2, what="one's streak")
    await one.acompletion("chat", MSG)  # a answers again
    await until(lambda: store2.get("a").breaker.peer_failures == 0, what="one's reset")
