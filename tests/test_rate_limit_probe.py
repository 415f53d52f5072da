"""A 429 pause takes Retry-After as an upper bound: one probe after the breaker's open period.

Fake clock and backend: a key-wide limit that the provider lifts before the Retry-After it
announced, a Retry-After shorter than the period (honoured as given), and many callers at the
moment a pause ends (exactly one goes through).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from router import Router, get_decision
from router.testing import FakeBackend, FakeClock, error

MSG = [{"role": "user", "content": "hello there"}]


def config(**router: Any) -> dict[str, Any]:
    deployments = [
        {
            "name": name,
            "model": f"openai/{name}",
            "input_cost_per_token": price,
            "output_cost_per_token": 2 * price,
            "timeout": 2.0,
            "groups": ["chat"],
        }
        for name, price in (("a", 1e-6), ("b", 2e-6), ("c", 3e-6))
    ]
    return {"router": {"strategy": "cost", "deadline": 10.0, **router}, "deployments": deployments}


class KeyLimit(FakeBackend):
    """`limited` answers 429 with `retry_after` from `start` until `lift` (engine clock)."""

    def __init__(
        self, clock: FakeClock, limited: str, start: float, lift: float, retry_after: float
    ) -> None:
        super().__init__(clock)
        self.limited, self.start, self.lift, self.retry_after = limited, start, lift, retry_after
        self.latency = 0.0
        """Seconds each call to `limited` takes."""
        self.rejected = 0

    async def complete(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        if deployment.name == self.limited and self.start <= self.clock.now() < self.lift:
            self.calls.append(type(self.calls[0])(deployment.name, timeout, request, False, 0.0))
            await self.clock.sleep(self.latency)
            self.rejected += 1
            raise error(429, retry_after=self.retry_after)
        return await super().complete(deployment, request, timeout)


def make(
    limited_for: float, retry_after: float, **router: Any
) -> tuple[Router, KeyLimit, FakeClock]:
    clock = FakeClock()
    backend = KeyLimit(clock, "a", clock.now() + 1.0, clock.now() + 1.0 + limited_for, retry_after)
    return Router(config(**router), backend=backend, clock=clock, seed=1), backend, clock


async def paused_at_start() -> tuple[Router, KeyLimit, FakeClock]:
    """A router whose `a` was just paused by two 429s (Retry-After 30 s) of a 10 s limit."""
    router, backend, clock = make(limited_for=10.0, retry_after=30.0)
    await served_by(router)
    clock.t = backend.start
    await served_by(router)
    await served_by(router)
    return router, backend, clock


def health_of(router: Router, name: str) -> Any:
    return next(h for h in router.health() if h.deployment == name)


async def served_by(router: Router) -> str:
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment is not None
    return decision.deployment


async def test_a_limit_lifted_before_its_retry_after_is_back_within_a_period() -> None:
    # Retry-After 4 s, lifted after 1.5 s; a call every 50 ms. Taken at its word, a would be
    # out until ~4 s after the limit began; the probe after each 1 s (+ up to 10 %) period
    # finds it lifted by 1.5 + 1.1 s at the latest.
    router, backend, clock = make(limited_for=1.5, retry_after=4.0)
    await served_by(router)  # a's first call: before the limit
    t0 = backend.start
    back_at = None
    limited_calls = 0
    while clock.now() < t0 + 5.0:
        clock.advance(0.05)
        before = backend.calls_to("a")
        who = await served_by(router)
        if backend.start <= clock.now() < backend.lift:
            limited_calls += backend.calls_to("a") - before
        if who == "a" and clock.now() >= backend.lift and back_at is None:
            back_at = clock.now()
    assert back_at is not None
    assert back_at - backend.lift <= 1.1 + 0.05 + 1e-9
    # Two 429s in a row pause it; then one probe per period while the limit lasts.
    assert limited_calls <= 2 + 2


async def test_a_retry_after_shorter_than_the_period_is_honoured_as_given() -> None:
    router, backend, clock = make(limited_for=0.2, retry_after=0.5)
    await served_by(router)
    clock.t = backend.start
    assert await served_by(router) == "b"  # 429 (streak 1), failed over
    clock.advance(0.01)
    assert await served_by(router) == "b"  # 429 (streak 2): paused for its 0.5 s
    paused_at = clock.now()
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert decision.skipped[0].why.startswith("rate-limited for 0.5 s")
    clock.t = paused_at + 0.49
    calls = backend.calls_to("a")
    assert await served_by(router) == "b" and backend.calls_to("a") == calls  # not before
    clock.t = paused_at + 0.51
    assert await served_by(router) == "a"


async def test_the_reason_shows_the_retry_after_and_when_it_is_probed() -> None:
    router, _, _ = await paused_at_start()
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None
    why = decision.skipped[0].why
    assert why.startswith("rate-limited for 30 s (Retry-After; probed after 1.0")
    assert health_of(router, "a").paused_for_s == pytest.approx(1.05, abs=0.051)


@pytest.mark.parametrize("still_limited", [True, False])
async def test_when_a_pause_ends_one_caller_probes_and_the_others_fail_over(
    still_limited: bool,
) -> None:
    router, backend, clock = await paused_at_start()
    clock.advance(1.2)  # past the 1 s (+ up to 10 %) period
    if not still_limited:
        backend.lift = clock.now()
    backend.latency = 0.05  # the probe is out while the others arrive
    calls = backend.calls_to("a")
    served = await asyncio.gather(*(served_by(router) for _ in range(50)))
    assert backend.calls_to("a") == calls + 1  # one probe, not fifty
    if still_limited:
        assert "a" not in served
        paused = get_decision(await router.acompletion("chat", MSG))
        assert paused is not None and paused.skipped[0].why.startswith("rate-limited for 30 s")
    else:
        assert served.count("a") == 1
        # It answered: the hold is over at once, not after the probe's timeout.
        assert await served_by(router) == "a"


async def test_a_probe_that_answers_ends_the_pause_and_its_hold() -> None:
    router, backend, clock = await paused_at_start()
    clock.advance(1.2)
    backend.lift = clock.now()
    health = health_of(router, "a")
    assert health.paused_for_s is None
    assert await served_by(router) == "a"
    assert health_of(router, "a").paused_for_s is None
