"""The rescue race without a task (router._hedge.rescued): the primary attempt runs in the
caller's own task, and the race starts only when it outlives its hung threshold.

Real clock, real event loop: every deployment has a 5 ms latency history, so an attempt is
presumed hung after ~55 ms (router._health: max(4 x p99, p99 + 50 ms)). The behaviours are
far from that threshold on either side (at once, 150 ms, never), so the outcome does not
depend on the machine's load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import litellm

from router import Router
from router._catalogue import configured_cost
from router._clock import SystemClock
from router._decision import get_decision
from router._errors import Outcome
from router._state import MemoryState

MSG = [{"role": "user", "content": "hi"}]


def answer(name: str) -> Any:
    return litellm.ModelResponse(
        model=name,
        choices=[{"index": 0, "finish_reason": "stop", "message": {"content": f"from {name}"}}],
        usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    )


async def at_once(name: str) -> Any:
    return answer(name)


def after(seconds: float) -> Callable[[str], Awaitable[Any]]:
    async def slow(name: str) -> Any:
        await asyncio.sleep(seconds)
        return answer(name)

    return slow


async def never(name: str) -> Any:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


class Scripted:
    """A backend whose deployments behave as scripted; it records each attempt's task and
    which attempts were cancelled."""

    def __init__(self, behaviours: Mapping[str, Callable[[str], Awaitable[Any]]]) -> None:
        self.behaviours = behaviours
        self.calls: list[str] = []
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.cancelled: list[str] = []

    async def complete(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        self.calls.append(deployment.name)
        self.tasks.append(asyncio.current_task())
        try:
            return await self.behaviours[deployment.name](deployment.name)
        except asyncio.CancelledError:
            self.cancelled.append(deployment.name)
            raise

    async def stream(self, deployment: Any, request: Mapping[str, Any], timeout: float) -> Any:
        raise NotImplementedError

    def price(self, deployment: Any, prompt_tokens: int, completion_tokens: int) -> float | None:
        return configured_cost(deployment, prompt_tokens, completion_tokens)

    def context_window(self, deployment: Any) -> int | None:
        return None

    def count_tokens(self, deployment: Any, messages: Any) -> int:
        return 1


def routed(
    backend: Scripted,
    names: tuple[str, ...] = ("a", "b"),
    history: float = 0.005,
    retry_budget_ratio: float = 0.2,
    **own: float,
) -> tuple[Router, MemoryState]:
    """A router over `names` in that order, each with 20 latencies of `history` seconds (or
    its own, by name); `retry_budget_ratio` 0 spends the budget (its floor too)."""
    state = MemoryState()
    for name in names:
        for _ in range(20):
            state.get(name).health.observe_latency(own.get(name, history), 0.0)
    budget: dict[str, Any] = {}
    if retry_budget_ratio == 0.0:
        budget = {"retry_budget_ratio": 0.0, "retry_budget_floor": 0}
    config = {
        "router": {"strategy": "ordered", "deadline": 10.0, **budget},
        "deployments": [
            {"name": n, "model": f"openai/{n}", "timeout": 5.0, "groups": ["chat"]} for n in names
        ],
    }
    router = Router(config, backend=backend, clock=SystemClock(), state=state, seed=0)
    return router, state


async def cancel(call: asyncio.Future[Any]) -> None:
    """Cancel a call in flight; it must end cancelled."""
    call.cancel()
    try:
        await call
    except asyncio.CancelledError:
        return
    raise AssertionError("the call was not cancelled")


async def test_an_attempt_that_answers_in_time_runs_in_the_callers_own_task() -> None:
    backend = Scripted({"a": at_once, "b": at_once})
    router, _ = routed(backend)
    caller = asyncio.current_task()
    for _ in range(5):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "a"
    # A rescue could have started (two deployments, a hung threshold), yet no task was made.
    assert backend.tasks == [caller] * 5
    assert backend.calls == ["a"] * 5


async def test_a_primary_that_answers_after_the_rescue_started_still_wins() -> None:
    # b's own history (100 ms) puts its threshold at 400 ms: when a answers at 150 ms, the
    # rescue on b (started at ~55 ms) is only slower, not hung.
    backend = Scripted({"a": after(0.15), "b": after(1.0)})
    router, state = routed(backend, b=0.1)
    caller = asyncio.current_task()
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "a"
    assert backend.calls == ["a", "b"]  # the rescue on b started at a's hung threshold
    assert backend.tasks[0] is caller and backend.tasks[1] is not caller
    # b only lost the race: it is left to answer in the background, not cancelled, and a's
    # slow answer is not a failure of a.
    assert [a.deployment for a in decision.attempts] == ["a", "b"]
    assert decision.attempts[1].outcome is Outcome.CANCELLED
    assert backend.cancelled == []
    assert state.get("a").health.error_rate == 0.0


async def test_a_rescuer_that_wins_interrupts_the_primary_which_counts_as_hung() -> None:
    backend = Scripted({"a": never, "b": at_once})
    router, state = routed(backend)
    loop = asyncio.get_running_loop()
    started = loop.time()
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert loop.time() - started < 2.0  # rescued at the threshold, not a's 5 s timeout
    assert backend.calls == ["a", "b"]
    assert backend.cancelled == ["a"]  # the primary is stopped, not left hanging
    assert state.get("a").health.error_rate > 0.0  # past its threshold: a failure of a
    assert state.get("b").health.error_rate == 0.0


async def test_a_primary_that_fails_during_the_race_leaves_it_to_the_rescuer() -> None:
    async def fails_late(name: str) -> Any:
        await asyncio.sleep(0.15)
        raise litellm.ServiceUnavailableError("down", llm_provider="openai", model=name)

    backend = Scripted({"a": fails_late, "b": after(0.3)})
    router, _ = routed(backend)
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert backend.calls == ["a", "b"]
    assert backend.cancelled == []


async def test_a_caller_cancelled_during_the_race_cancels_every_attempt() -> None:
    backend = Scripted({"a": never, "b": never, "c": never})
    router, _ = routed(backend, ("a", "b", "c"))
    call = asyncio.ensure_future(router.acompletion("chat", MSG))
    while len(backend.calls) < 2:  # the primary, then its rescue at the threshold
        await asyncio.sleep(0.01)
    await cancel(call)
    await asyncio.sleep(0)
    assert sorted(backend.cancelled) == sorted(backend.calls)
    caller = asyncio.current_task()
    assert caller is not None and caller.cancelling() == 0


async def test_a_caller_cancelled_before_any_race_leaves_nothing_behind() -> None:
    backend = Scripted({"a": never, "b": never})
    router, _ = routed(backend)
    call = asyncio.ensure_future(router.acompletion("chat", MSG))
    while not backend.calls:
        await asyncio.sleep(0)
    await cancel(call)
    await asyncio.sleep(0.15)  # past a's threshold: no rescue may start for a call that is gone
    assert backend.calls == ["a"]
    assert backend.cancelled == ["a"]


async def test_a_cold_primary_rescued_at_its_peers_threshold_counts_as_hung() -> None:
    """a has no history of its own (a cold deployment): its hung threshold is borrowed from
    b's (router._hedge.hung_after), and when the rescue on b wins, a counts as a failure as
    a warm primary would, so a cold deployment that hangs is demoted too."""
    backend = Scripted({"a": never, "b": at_once})
    router, state = routed(backend, ("a", "b"))
    state.get("a").health.calls_track = type(state.get("a").health.calls_track)()  # cold again
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "b"
    assert backend.calls == ["a", "b"]
    assert backend.cancelled == ["a"]
    assert state.get("a").health.error_rate > 0.0


async def test_a_spent_budget_rescues_a_hung_attempt_with_the_reserved_attempt() -> None:
    # No retry budget at all (a young router's, spent by a hang from the start): the rescue
    # of a hung primary is the call's one reserved attempt on a clean candidate, started at
    # the hung threshold, instead of that same attempt after the primary's 5 s timeout.
    backend = Scripted({"a": never, "b": at_once, "c": at_once})
    router, _ = routed(backend, names=("a", "b", "c"), retry_budget_ratio=0.0)
    decision = get_decision(await asyncio.wait_for(router.acompletion("chat", MSG), 3.0))
    assert decision is not None and decision.deployment == "b"
    assert [a.deployment for a in decision.attempts] == ["b", "a"]
    assert decision.attempts[0].hedge  # raced beside a, not after its timeout
    assert decision.attempts[1].outcome is Outcome.CANCELLED  # a: presumed hung, interrupted
    assert any("reserved attempt on b" in note for note in decision.notes)
    assert backend.calls == ["a", "b"]  # one reserved attempt, not one per candidate
