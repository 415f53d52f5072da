"""litellm's logging work is skipped only when nobody listens (real litellm, loopback HTTP).

With no litellm callback registered the backend makes each call inside litellm's no-logging
scope; the response is the same (``_hidden_params`` and its ``response_cost`` included). With a
callback registered, the callback gets litellm's events for every attempt: a success per served
call, a failure for an attempt that failed over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from router import Router, get_decision
from router._sim import Fleet

from .conftest import fleet_config

MSG = [{"role": "user", "content": "hello"}]
# Per call, not what the backend puts in _hidden_params for everyone alike.
_PER_CALL = {"litellm_call_id", "_response_ms", "litellm_overhead_time_ms", "router_decision"}


class Events(CustomLogger):  # type: ignore[misc]
    """Counts litellm's async success and failure events, with the cost litellm reports."""

    def __init__(self) -> None:
        super().__init__()
        self.successes: list[Any] = []
        self.failures: list[Any] = []

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.successes.append(kwargs.get("response_cost"))

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.failures.append(kwargs.get("exception"))


# litellm copies what is registered in `callbacks` into these on the first call (and skips a
# logger whose class is already there), so each test restores all of them.
_LISTS = (
    "callbacks",
    "success_callback",
    "failure_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


@pytest.fixture
def events() -> Iterator[Events]:
    """A user's callback, registered the way a user registers one, removed afterwards."""
    logger = Events()
    saved = {name: list(getattr(litellm, name)) for name in _LISTS}
    litellm.callbacks = [*saved["callbacks"], logger]  # the user's action under test
    try:
        yield logger
    finally:
        for name, value in saved.items():
            setattr(litellm, name, value)


async def _settle(events: Events, successes: int, failures: int) -> None:
    # litellm delivers async events from tasks it schedules after the call returns.
    for _ in range(200):
        if len(events.successes) >= successes and len(events.failures) >= failures:
            return
        await asyncio.sleep(0.01)


async def test_unobserved_call_returns_the_same_hidden_params(router: Router) -> None:
    backend: Any = router.transport
    assert backend.quiet.available and not backend.quiet.listening({"messages": MSG})
    routed = await router.acompletion("chat", MSG)
    decision = get_decision(routed)
    assert decision is not None and decision.deployment is not None
    deployment = router.config.deployment(decision.deployment)
    # The same call with litellm logging as usual (outside the scope), for comparison.
    raw = await litellm.acompletion(messages=MSG, **backend._kwargs(deployment), timeout=1.0)
    ours, theirs = routed._hidden_params, raw._hidden_params
    assert set(ours) - _PER_CALL == set(theirs) - _PER_CALL
    assert ours["response_cost"] == theirs["response_cost"]
    assert routed.choices[0].message.content == raw.choices[0].message.content


async def test_registered_callback_gets_every_success(router: Router, events: Events) -> None:
    assert router.transport.quiet.listening({"messages": MSG})  # type: ignore[attr-defined]
    first = await router.acompletion("chat", MSG)
    await router.acompletion("chat", MSG)
    await _settle(events, 2, 0)
    assert len(events.successes) == 2 and events.failures == []
    assert events.successes[0] == first._hidden_params["response_cost"]


async def test_registered_callback_gets_the_failed_attempt_too(
    fleet: Fleet, events: Events
) -> None:
    fleet["a"].set(error_rate=1.0, error_status=500)
    ours = Router(fleet_config(fleet), seed=0)
    response = await ours.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None and [a.deployment for a in decision.attempts] == ["a", "b"]
    await _settle(events, 1, 1)
    print("DEBUG", events.successes, events.failures)
    assert len(events.successes) == 1 and len(events.failures) == 1
