"""Router invariants on recorded event histories, and exactly one half-open probe under load."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import litellm
import openai
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import NoDeploymentAvailable, Router, get_decision
from router._breaker import State, Transition
from router._state import MemoryState
from router.testing import FakeBackend, FakeClock, Step, fail, hang, ok

MSG = [{"role": "user", "content": "hi"}]


class Log:
    """One ordered history of provider calls and breaker transitions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []


class LoggingState(MemoryState):
    def __init__(self, log: Log) -> None:
        super().__init__(seed=0)
        self.log = log

    def on_transition(self, transition: Transition) -> None:
        self.log.events.append(("transition", transition))


class LoggingBackend(FakeBackend):
    def __init__(self, clock: FakeClock, log: Log) -> None:
        super().__init__(clock)
        self.log = log

    async def complete(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        ident = len(self.log.events)
        self.log.events.append(("call", (deployment.name, ident)))
        try:
            return await super().complete(deployment, request, timeout)
        finally:
            self.log.events.append(("end", (deployment.name, ident)))


def config(deadline: float, max_attempts: int, budget_floor: int = 100) -> dict[str, Any]:
    return {
        "router": {
            "deadline": deadline,
            "max_attempts": max_attempts,
            "strategy": "cost",
            "breaker_open_base": 2.0,
            "breaker_open_max": 8.0,
            "retry_budget_floor": budget_floor,
        },
        "deployments": [
            {
                "name": n,
                "model": f"openai/{n}",
                "input_cost_per_token": (i + 1) * 1e-6,
                "timeout": 1.0,
                "groups": ["chat"],
            }
            for i, n in enumerate("abc")
        ],
    }


def replay(log: Log) -> None:
    """No call reaches an open deployment; a half-open one has at most one probe out."""
    state: dict[str, State] = {}
    probes: dict[str, set[int]] = {}
    for kind, event in log.events:
        if kind == "transition":
            state[event.deployment] = event.after
            if event.after is not State.HALF_OPEN:
                probes[event.deployment] = set()
            continue
        name, ident = event
        out = probes.setdefault(name, set())
        if kind == "end":
            out.discard(ident)
            continue
        current = state.get(name, State.CLOSED)
        assert current is not State.OPEN, f"a call reached open deployment {name}"
        if current is State.HALF_OPEN:
            out.add(ident)
            assert len(out) == 1, f"{name} got a second probe while one was out"


step = st.one_of(
    st.builds(lambda t: ok(latency=t), st.floats(0, 0.5)),
    st.builds(
        lambda s, t: fail(s, latency=t),
        st.sampled_from([500, 503, 429, "connection", 400]),
        st.floats(0, 0.5),
    ),
    st.just(hang()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scripts=st.lists(st.lists(step, max_size=30), min_size=3, max_size=3),
    batches=st.lists(st.tuples(st.integers(1, 8), st.floats(0, 3)), min_size=1, max_size=12),
    deadline=st.floats(0.5, 4.0),
    max_attempts=st.integers(1, 4),
)
def test_invariants_hold_over_recorded_histories(
    scripts: list[list[Step]],
    batches: list[tuple[int, float]],
    deadline: float,
    max_attempts: int,
) -> None:
    log = Log()
    clock = FakeClock()
    backend = LoggingBackend(clock, log)
    for name, script in zip("abc", scripts, strict=True):
        backend.script(name, *script)
    router = Router(
        config(deadline, max_attempts, budget_floor=3),
        backend=backend,
        clock=clock,
        state=LoggingState(log),
        seed=0,
    )
    decisions = []
    calls: list[float] = []

    async def one(alone: bool) -> None:
        start = clock.now()
        calls.append(start)
        try:
            decisions.append(get_decision(await router.acompletion("chat", MSG)))
        except openai.OpenAIError as exc:  # every litellm and router error derives from it
            decisions.append(get_decision(exc))
        if alone:
            # The fake clock is shared, not a virtual-time scheduler: concurrent callers' sleeps
            # add up on it, so the deadline is checked on calls that ran alone.
            assert clock.now() - start <= deadline + 1e-9

    async def run() -> None:
        for size, gap in batches:
            await asyncio.gather(*(one(size == 1) for _ in range(size)))
            clock.advance(gap)

    asyncio.run(run())
    replay(log)
    for decision in decisions:
        assert decision is not None
        # One reserved attempt past max_attempts for a clean untried candidate (router._choose).
        assert len(decision.attempts) <= max_attempts + (max_attempts >= 2)
    # Retries (attempts after a call's first) stay within floor + 20% of calls, besides at
    # most one reserved attempt per call (on a clean candidate, not charged); checked when
    # the whole run fits inside one budget window.
    if clock.now() - calls[0] <= 9.0:
        extra = sum(max(0, len(d.attempts) - 1) for d in decisions if d is not None)
        reserved = [
            sum("reserved attempt" in n for n in d.notes) for d in decisions if d is not None
        ]
        assert max(reserved, default=0) <= 1
        assert extra - sum(reserved) <= 3 + 0.2 * len(calls)


async def test_exactly_one_probe_under_one_hundred_concurrent_callers() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    router = Router(config(10.0, 3), backend=backend, clock=clock, seed=0)
    backend.script("a", *[fail(503)] * 5)
    for _ in range(5):
        await router.acompletion("chat", MSG)  # each fails over to b; a trips on the 5th
    assert router.health()[0].state == "open"
    clock.advance(2.5)  # past the open period: a is due for its probe
    backend.script("a", ok(latency=0.2))  # the probe is slow, so the others arrive meanwhile
    before = backend.calls_to("a")
    results = await asyncio.gather(*(router.acompletion("chat", MSG) for _ in range(100)))
    assert backend.calls_to("a") - before == 1
    decisions = [get_decision(r) for r in results]
    probes = [d for d in decisions if d is not None and d.deployment == "a"]
    assert len(probes) == 1 and probes[0].attempts[0].probe
    others = [d for d in decisions if d is not None and d.deployment != "a"]
    assert len(others) == 99
    assert all("probe is in flight" in d.reason for d in others[1:])
    assert router.health()[0].state == "closed"


async def test_a_hard_down_deployment_stops_getting_traffic_after_five_failures() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    router = Router(config(10.0, 3), backend=backend, clock=clock, seed=0)
    backend.script("a", default=fail("connection"))
    for _ in range(50):
        await router.acompletion("chat", MSG)
        clock.advance(0.01)
    assert backend.calls_to("a") == 5
    opened = next(e for e in router.health() if e.deployment == "a")
    assert opened.state == "open" and opened.trips == 1


async def test_recovered_cheap_deployment_regains_its_traffic() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    router = Router(config(10.0, 3), backend=backend, clock=clock, seed=0)
    backend.script("a", *[fail(503)] * 5)
    for _ in range(5):
        await router.acompletion("chat", MSG)
    clock.advance(3.0)
    served = [
        get_decision(await router.acompletion("chat", MSG)).deployment  # type: ignore[union-attr]
        for _ in range(20)
    ]
    assert served == ["a"] * 20


async def test_budget_spent_stops_retries_and_says_so() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    cfg = config(10.0, 3)
    cfg["router"].update(
        retry_budget_floor=1,
        retry_budget_ratio=0.0,
        breaker_consecutive_failures=100,
        breaker_min_calls=100,
    )
    router = Router(cfg, backend=backend, clock=clock, seed=0)
    for name in "abc":
        backend.script(name, default=fail(503))
    try:
        await router.acompletion("chat", MSG)
    except litellm.ServiceUnavailableError as exc:
        first = get_decision(exc)
    # The floor paid one failover (to b); c, clean and untried, got the reserved attempt.
    assert first is not None and [a.deployment for a in first.attempts] == ["a", "b", "c"]
    assert any("reserved attempt on c" in n for n in first.notes)
    try:
        await router.acompletion("chat", MSG)
    except litellm.ServiceUnavailableError as exc:
        second = get_decision(exc)
        assert "retry budget spent" in str(exc.__notes__)
    # Nothing is clean any more (each failed once): the budget holds, no extra load.
    assert second is not None and len(second.attempts) == 1
    assert second.outcome == "budget_exhausted"


async def test_a_spent_budget_still_lets_a_call_reach_a_clean_deployment() -> None:
    # A young router (few calls, so a small budget) meets a provider going down: the
    # failovers of the first calls spend the budget; a call must still reach a healthy one.
    clock = FakeClock()
    backend = FakeBackend(clock)
    cfg = config(10.0, 3)
    cfg["router"].update(retry_budget_floor=0, retry_budget_ratio=0.0)
    router = Router(cfg, backend=backend, clock=clock, seed=0)
    backend.script("a", default=fail("connection"))
    served = []
    for _ in range(8):
        response = await router.acompletion("chat", MSG)
        decision = get_decision(response)
        assert decision is not None
        served.append(decision.deployment)
        assert len(decision.attempts) <= 2
        clock.advance(0.01)
    assert served == ["b"] * 8  # never a failure while b was healthy
    assert backend.calls_to("a") == 5  # a's breaker opened after five: then b first


async def test_wait_for_recovery_within_the_deadline() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    cfg = config(10.0, 4)
    cfg["router"]["wait_for_recovery"] = True
    router = Router(cfg, backend=backend, clock=clock, seed=0)
    for name in "abc":
        backend.script(name, fail(429, retry_after=2))
    start = clock.now()
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "a"
    assert any("waited 2.00 s" in note for note in decision.notes)
    assert 2.0 <= clock.now() - start <= 2.5  # the wait, then a's retry backoff U(0, 0.5)


async def test_without_wait_for_recovery_all_paused_fails_fast() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    router = Router(config(10.0, 4), backend=backend, clock=clock, seed=0)
    for name in "abc":
        backend.script(name, fail(429, retry_after=2))
    try:
        await router.acompletion("chat", MSG)
    except NoDeploymentAvailable as exc:
        assert set(exc.reasons) == {"a", "b", "c"}
    assert clock.now() == 1000.0  # no wait
