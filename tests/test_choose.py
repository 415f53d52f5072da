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


def errors(state: MemoryState, name: str, failures: int, calls: int = 20) -> None:
    health = state.get(name).health
    for i in range(calls):
        health.record(i >= failures)


def test_a_transient_failure_on_a_mostly_healthy_cheap_deployment_retries_it() -> None:
    chooser, ranked, state, settings = setup()
    errors(state, "b", 1)  # 5% errors: one more try at its price beats c's
    options = chooser.order(
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
    assert names(options)[0] == "b"
    backoff = options[0][1]
    assert 0.0 <= backoff <= settings.backoff_base


def test_a_deployment_failing_half_its_calls_is_left_at_once() -> None:
    chooser, ranked, state, settings = setup()
    errors(state, "b", 10)  # 50%: 2.5/0.5 = 5 > c's 5/1... ties and worse fail over
    errors(state, "a", 18)
    options = chooser.order(
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
