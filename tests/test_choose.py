"""The next-attempt rules of router._choose: retry or fail over, deadline fit, reserved attempts."""

from __future__ import annotations

import random
from typing import Any

from router._breaker import State
from router._choose import Chooser
from router._config import Config, Deployment, RouterSettings
from router._select import Selector
from router._state import MemoryState
from router.testing import FakeBackend, FakeClock

PRICES = {"a": 1e-7, "b": 2.5e-7, "c": 5e-7}


def setup(**router: Any) -> tuple[Chooser, list[Deployment], MemoryState, RouterSettings]:
    config = Config.from_dict(
        {
            "router": router,
            "deployments": [
                {
                    "name": n,
                    "model": f"openai/{n}",
                    "groups": ["g"],
                    "input_cost_per_token": p,
                    "output_cost_per_token": p,
                }
                for n, p in PRICES.items()
            ],
        }
    )
    state = MemoryState()
    rng = random.Random(0)
    selector = Selector(FakeBackend(FakeClock()), state, rng)
    chooser = Chooser(selector, state, rng)
    return chooser, config.deployments_in("g"), state, config.settings_for("g")


def names(options: list[tuple[Deployment, float]]) -> list[str]:
    return [d.name for d, _ in options]


def after_b_failed_fast(
    chooser: Chooser, ranked: list[Deployment], settings: RouterSettings
) -> list[tuple[Deployment, float]]:
    """The order of the next attempt after one fast failure on b (a is out of the running)."""
    return chooser.order(
        ranked[1:],
        {"b": 1},
        settings,
        made=1,
        left=10.0,
        first_chunk=False,
        now=0.0,
        failed=ranked[1],
        fast_failure=True,
    )


def errors(state: MemoryState, name: str, failures: int, calls: int = 20) -> None:
    health = state.get(name).health
    for i in range(calls):
        health.record(i >= failures)


def test_a_transient_failure_on_a_mostly_healthy_cheap_deployment_retries_it() -> None:
    chooser, ranked, state, settings = setup()
    errors(state, "b", 1)  # 5% errors: one more try at its price beats c's
    options = after_b_failed_fast(chooser, ranked, settings)
    assert names(options)[0] == "b"
    backoff = options[0][1]
    assert 0.0 <= backoff <= settings.backoff_base


def test_a_failure_that_continues_a_streak_fails_over_instead_of_retrying() -> None:
    # b's record is clean but its last two results (across calls) were both failures: it is
    # going down (an outage starting), not erring at random; one more try would be wasted.
    chooser, ranked, state, settings = setup()
    errors(state, "b", 0)
    breaker = state.get("b").breaker
    for _ in range(2):
        state.get("b").health.record(False)
        breaker.record(False, 0.0)
    options = after_b_failed_fast(chooser, ranked, settings)
    assert names(options)[0] == "c"


def test_a_deployment_failing_half_its_calls_is_left_at_once() -> None:
    chooser, ranked, state, settings = setup()
    errors(state, "b", 10)  # 50%: 2.5/0.5 = 5 > c's 5/1... ties and worse fail over
    errors(state, "a", 18)
    options = after_b_failed_fast(chooser, ranked, settings)
    assert names(options)[0] == "c"


def test_a_timeout_is_never_retried_on_the_same_deployment_first() -> None:
    chooser, ranked, _state, settings = setup()
    options = chooser.order(
        ranked,
        {"a": 1},
        settings,
        made=1,
        left=10.0,
        first_chunk=False,
        now=0.0,
        failed=ranked[0],
        fast_failure=False,
    )
    assert names(options)[0] == "b"


def test_no_attempt_is_started_that_is_expected_to_end_past_the_deadline() -> None:
    chooser, ranked, state, settings = setup()
    for _ in range(20):
        state.get("a").health.observe_latency(0.5, 0.0)
        state.get("b").health.observe_latency(0.05, 0.0)
    options = chooser.order(ranked, {}, settings, made=0, left=0.2, first_chunk=False, now=0.0)
    assert names(options) == ["b", "c"]  # a takes 0.5 s, 0.2 s are left; c is unknown
    assert (
        chooser.order(ranked[:1], {}, settings, made=0, left=0.2, first_chunk=False, now=0.0) == []
    )


def test_the_last_attempt_goes_to_the_healthiest_candidate() -> None:
    chooser, ranked, state, settings = setup(max_attempts=3)
    errors(state, "b", 4)
    state.get("a").breaker.state = State.HALF_OPEN
    options = chooser.order(
        ranked, {"x": 1}, settings, made=2, left=10.0, first_chunk=False, now=0.0
    )
    assert names(options)[0] == "c"  # a is half-open, b is flaky: c is the healthiest
    ranked_only = chooser.order(ranked, {}, settings, made=1, left=10.0, first_chunk=False, now=0.0)
    assert names(ranked_only)[0] == "a"  # with attempts to spare, rank decides


def test_one_reserved_attempt_past_max_attempts_for_a_clean_untried_candidate() -> None:
    chooser, ranked, state, settings = setup(max_attempts=2)
    errors(state, "a", 5)
    errors(state, "b", 5)
    tries = {"a": 1, "b": 1}
    options = chooser.order(ranked, tries, settings, made=2, left=10.0, first_chunk=False, now=0.0)
    assert names(options) == ["c"]
    spent = chooser.order(
        ranked, tries, settings, made=3, left=10.0, first_chunk=False, now=0.0, reserved_used=True
    )
    assert spent == []
    errors(state, "c", 1)  # c is not clean: no reserved attempt
    assert (
        chooser.order(ranked, tries, settings, made=2, left=10.0, first_chunk=False, now=0.0) == []
    )


def test_a_spent_budget_leaves_only_the_reserved_attempt_on_a_clean_candidate() -> None:
    chooser, ranked, state, settings = setup(max_attempts=3)
    errors(state, "b", 1)
    tried = {"a": 1}

    def order(**kw: Any) -> list[tuple[Deployment, float]]:
        return chooser.order(
            ranked, tried, settings, made=1, left=10.0, first_chunk=False, now=0.0, **kw
        )

    assert names(order(budget_spent=True)) == ["c"]  # not a again, not b (a failure): c
    assert order(budget_spent=True, reserved_used=True) == []
    assert names(order())[0] == "b"  # with budget left, rank decides as before


# --- through the engine: the property and the rules end to end (fake clock and backend) -------

import asyncio  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from router import DeadlineExceeded, Router, get_decision  # noqa: E402
from router._decision import Decision  # noqa: E402
from router.testing import Step, fail, hang, ok  # noqa: E402

MSG = [{"role": "user", "content": "hi"}]
NAMES = ("a", "b", "c", "d")


def engine_config(max_attempts: int, deadline: float = 10.0) -> dict[str, Any]:
    return {
        "router": {"max_attempts": max_attempts, "deadline": deadline},
        "deployments": [
            {
                "name": n,
                "model": f"openai/{n}",
                "input_cost_per_token": (i + 1) * 1e-7,
                "output_cost_per_token": (i + 1) * 1e-7,
                "timeout": 2.0,
                "groups": ["chat"],
            }
            for i, n in enumerate(NAMES)
        ],
    }


failing = st.sampled_from([fail(500), fail(503), fail(502), fail("connection"), hang(), fail(429)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    healthy=st.sampled_from(NAMES),
    faults=st.lists(failing, min_size=3, max_size=3),
    max_attempts=st.integers(min_value=2, max_value=4),
)
def test_a_call_never_fails_while_a_healthy_candidate_exists_and_time_allows(
    healthy: str, faults: list[Step], max_attempts: int
) -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    state = MemoryState()
    others = [n for n in NAMES if n != healthy]
    for name, fault in zip(others, faults, strict=True):
        backend.script(name, default=fault)
        state.get(name).health.record(False)  # its history shows it failing
    backend.script(healthy, default=ok("fine"))
    for _ in range(3):
        state.get(healthy).health.record(True)
    router = Router(engine_config(max_attempts), backend=backend, clock=clock, state=state, seed=0)
    response = asyncio.run(router.acompletion("chat", MSG))
    decision = get_decision(response)
    assert decision is not None and decision.deployment == healthy


async def test_the_engine_retries_a_transient_error_on_the_cheap_deployment() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    state = MemoryState()
    for _ in range(19):
        state.get("b").health.record(True)
    backend.script("a", default=fail(503))
    backend.script("b", fail(503), ok("second try"))
    router = Router(engine_config(3), backend=backend, clock=clock, state=state, seed=0)
    state.get("a").breaker.state = State.OPEN  # a is out: b is the cheapest
    state.get("a").breaker.open_until = clock.now() + 60
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert [x.deployment for x in decision.attempts] == ["b", "b"]
    backoffs = [x for x in clock.sleeps if x > 0]
    assert len(backoffs) == 1 and backoffs[0] <= 0.025  # a short full-jitter backoff first


async def test_the_engine_starts_no_attempt_expected_to_end_past_the_deadline() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    state = MemoryState()
    for name in NAMES:
        for _ in range(20):
            state.get(name).health.observe_latency(3.0, 0.0)  # every one takes 3 s
    backend.script("a", default=ok("slow", latency=3.0))
    router = Router(engine_config(3, deadline=1.0), backend=backend, clock=clock, state=state)
    try:
        await router.acompletion("chat", MSG)
    except DeadlineExceeded as exc:
        decision = get_decision(exc)
        assert decision is not None and decision.attempts == ()
        assert "expected to finish" in decision.reason
    else:
        raise AssertionError("an attempt was started that could not finish")
    assert backend.calls == []


async def test_a_rescue_that_hangs_too_is_rescued_in_turn() -> None:
    # a and b both hang; c answers. The first attempt (a) is rescued on b once past its
    # hung_after (~55 ms from a 5 ms history), and b, hanging too, is rescued on c in turn,
    # instead of the call waiting on b until its timeout (here: past the deadline).
    history = {name: 0.005 for name in ("a", "b", "c")}
    decision, calls = await _rescued(history, hanging=("a", "b"), answering="c")
    assert decision is not None and decision.deployment == "c"
    assert calls == ["a", "b", "c"]


async def _rescued(
    history: dict[str, float],
    hanging: tuple[str, ...],
    answering: str,
    tripped: tuple[str, ...] = (),
) -> tuple[Decision | None, list[str]]:
    """One call on the real clock (short times): deployments with 20 samples at `history`'s
    latency, `hanging` ones never answer (timeout 30 s, deadline 3 s), `answering` does.
    Returns the decision and the deployments called, in order; `tripped` ones have their
    breaker open."""
    from router._clock import SystemClock

    clock = SystemClock()
    backend = FakeBackend(clock)  # type: ignore[arg-type]
    state = MemoryState()
    for name, latency in history.items():
        for _ in range(20):
            state.get(name).health.observe_latency(latency, 0.0)
    for name in hanging:
        backend.script(name, default=hang())
    backend.script(answering, default=ok(f"from {answering}"))
    config = engine_config(3, deadline=3.0)
    for d in config["deployments"]:
        d["timeout"] = 30.0
    router = Router(config, backend=backend, clock=clock, state=state, seed=0)
    for name in tripped:
        state.get(name).breaker.force_open(clock.now(), 60.0, "down")
    decision = get_decision(await router.acompletion("chat", MSG))
    return decision, [c.deployment for c in backend.calls]


def test_a_cold_deployment_that_hangs_borrows_its_peers_hung_threshold() -> None:
    # a has no latency history (a second region that rarely gets traffic); b and c have 20
    # samples each. a's attempt is raced once past the most lenient peer threshold (c's), so
    # a cold deployment that hangs is rescued instead of waited on until its timeout.
    from router._call import NO_CONTEXT
    from router._hedge import race_delay

    clock = FakeClock()
    state = MemoryState()
    for _ in range(20):
        state.get("b").health.observe_latency(0.005, clock.now())
        state.get("c").health.observe_latency(0.010, clock.now())
    router = Router(engine_config(3), backend=FakeBackend(clock), clock=clock, state=state)
    engine = router.engine
    a, b, c, d = router.config.deployments_in("chat")
    call = engine._start("chat", router.config.settings_for("chat"), None, False, NO_CONTEXT)
    c_hung = state.get("c").health.track(False).hung_after()
    b_hung = state.get("b").health.track(False).hung_after()
    assert c_hung is not None and b_hung is not None and c_hung > b_hung
    assert race_delay(engine, call, a, [a, b, c, d], first_chunk=False) == (c_hung, True)
    assert race_delay(engine, call, b, [b, c], first_chunk=False) == (b_hung, True)  # its own
    assert race_delay(engine, call, a, [a, d], first_chunk=False) is None  # nobody knows
    # Streams borrow from their peers' first-chunk history, which nobody has here.
    assert race_delay(engine, call, a, [a, b, c, d], first_chunk=True) is None


async def test_a_cold_deployment_that_hangs_is_rescued_by_a_warm_peer() -> None:
    # End to end (real clock, short times): a is the cheapest and cold, and hangs; its timeout
    # is past the deadline. Rescued after c's threshold (~60 ms), b answers; without the
    # borrowed threshold the call waited on a until the deadline.
    decision, calls = await _rescued({"b": 0.005, "c": 0.010}, hanging=("a",), answering="b")
    assert decision is not None and decision.deployment == "b"
    assert calls == ["a", "b"]


async def test_a_cold_rescue_that_hangs_is_rescued_in_turn_after_its_peers_threshold() -> None:
    # a (warm) hangs and is rescued on b, which is cold and hangs too: b is rescued in turn
    # on c once past the largest peer threshold, instead of being waited on until the deadline.
    decision, calls = await _rescued({"a": 0.005, "c": 0.010}, hanging=("a", "b"), answering="c")
    assert decision is not None and decision.deployment == "c"
    assert calls == ["a", "b", "c"]


async def test_a_cold_deployment_borrows_the_threshold_of_a_peer_whose_breaker_is_open() -> None:
    # a (warm, the cheapest) is down, its breaker open, so b (cold) takes the first attempt
    # and hangs: b is rescued once past a's threshold (~55 ms). The only deployment with a
    # history being out of the running, b was waited on until the deadline (correlated_pair
    # with both of A's regions hanging: the second region's attempts ran to their 1 s timeout).
    decision, calls = await _rescued({"a": 0.005}, hanging=("b",), answering="c", tripped=("a",))
    assert decision is not None and decision.deployment == "c"
    assert calls == ["b", "c"]
