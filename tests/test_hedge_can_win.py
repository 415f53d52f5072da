"""Hedge only when it can win (router._hedge.can_win_after): a hedge starts when the primary's
expected remaining time, read from its own completed latencies, exceeds what the rival is
expected to take; past the primary's slowest answer it starts at the latest.

The rule on numbers, then the race on the real clock (a scripted backend, histories seeded in
the state; magnitudes far apart on either side of the thresholds so load does not decide).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router import Router
from router._clock import SystemClock
from router._decision import get_decision
from router._hedge import can_win_after
from router._state import MemoryState
from tests.test_rescue import Scripted, after

MSG = [{"role": "user", "content": "hi"}]


def test_a_narrow_primary_is_not_hedged_onto_a_slower_rival() -> None:
    # Every answer 50-52 ms: at 10 ms about 41 ms remain, less than the rival's 100 ms; at
    # each sample less still; past the slowest (52 ms) it goes.
    history = [0.050 + 0.0001 * i for i in range(20)]
    assert can_win_after(history, 0.010, 0.100) == pytest.approx(max(history))
    # A rival faster than what remains: at the delay, as before.
    assert can_win_after(history, 0.010, 0.005) == 0.010


def test_a_slow_minority_is_hedged_at_the_delay() -> None:
    # 95 % at ~20 ms, 5 % at ~400 ms: at 25 ms the calls still out are mostly the slow ones.
    history = [0.020] * 60 + [0.400] * 4
    assert can_win_after(history, 0.025, 0.030) == 0.025


def test_without_a_rival_estimate_or_a_history_the_delay_stands() -> None:
    assert can_win_after([0.05] * 10, 0.01, None) == 0.01
    assert can_win_after([], 0.01, 0.1) == 0.01
    assert can_win_after([0.005] * 10, 0.01, 0.1) == 0.01  # past every sample already


@given(
    st.lists(st.floats(0.001, 2.0), min_size=1, max_size=64),
    st.floats(0.0, 1.0),
    st.floats(0.0, 2.0),
)
def test_the_hedge_goes_no_sooner_than_the_delay_nor_later_than_the_slowest_answer(
    history: list[float], delay: float, rival: float
) -> None:
    at = can_win_after(history, delay, rival)
    assert at >= delay
    assert at <= max(delay, max(history))
    # And when it waits past the delay, the primary's remaining time there was no longer
    # than the rival's.
    if at > delay:
        above = [s - delay for s in history if s > delay]
        assert sum(above) / len(above) <= rival + 1e-9


def hedging(backend: Scripted, a: float, b: float) -> Router:
    """a then b, hedge after 10 ms; 20 past latencies of `a` and of `b` seconds each."""
    state = MemoryState()
    for name, seconds in (("a", a), ("b", b)):
        for _ in range(20):
            state.get(name).health.observe_latency(seconds, 0.0)
    config = {
        "router": {"strategy": "ordered", "deadline": 10.0, "hedge": True, "hedge_delay": 0.01},
        "deployments": [
            {"name": n, "model": f"openai/{n}", "timeout": 5.0, "groups": ["chat"]} for n in "ab"
        ],
    }
    return Router(config, backend=backend, clock=SystemClock(), state=state, seed=0)


async def test_no_hedge_onto_a_rival_slower_than_what_the_primary_has_left() -> None:
    # a always takes ~100 ms, b ~400 ms: 10 ms into a call on a, ~90 ms remain, and a hedge
    # on b could only duplicate it. a answers at 30 ms, before its slowest answer (100 ms).
    backend = Scripted({"a": after(0.03), "b": after(0.4)})
    router = hedging(backend, a=0.1, b=0.4)
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "a" and not decision.hedged
    assert backend.calls == ["a"]


async def test_a_rival_that_can_win_is_hedged_at_the_delay() -> None:
    # b takes ~5 ms, less than what a has left 10 ms in (~90 ms): the hedge goes and wins.
    backend = Scripted({"a": after(0.3), "b": after(0.005)})
    router = hedging(backend, a=0.1, b=0.005)
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b" and decision.hedged
    assert backend.calls == ["a", "b"]


async def test_a_primary_past_its_slowest_answer_is_hedged_even_onto_a_slower_rival() -> None:
    # a's history is ~20 ms; this call takes 1 s: past 20 ms nothing says how long it has
    # left, so the hedge goes (b, ~60 ms, wins) instead of waiting for a's hung threshold.
    backend = Scripted({"a": after(1.0), "b": after(0.06)})
    router = hedging(backend, a=0.02, b=0.06)
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b" and decision.hedged
