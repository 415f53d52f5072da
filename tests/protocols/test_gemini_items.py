"""Issue 12 items 1-3: Gemini's rate limits and stream ends, through real litellm over HTTP.

1. A 429 before a stream's first chunk comes out of litellm as `MidStreamFallbackError`; it is
   a rate limit (no error counted, the deployment paused) and a caller sees the 429 itself.
2. A stream whose body ends after its first chunk without ``finishReason`` raises, although
   litellm stamps ``finish_reason="stop"`` on Gemini chunks.
3. The ``google.rpc.RetryInfo`` ``retryDelay`` of the error body is the pause.
"""

from __future__ import annotations

import litellm
import pytest

from router import Router, StreamInterrupted, get_decision
from router._sim import Fleet

from .conftest import group_config

MSG = [{"role": "user", "content": "hello there"}]


def _health(router: Router, name: str) -> object:
    return next(h for h in router.health() if h.deployment == name)


async def test_429_before_the_first_chunk_is_a_rate_limit(fleet: Fleet) -> None:
    fleet["gemini-p"].set(rate_limit_rate=1.0, retry_after_s=30)
    router = Router(group_config(fleet, "gemini"), seed=0)
    for _ in range(2):  # rate_limit_pause_after = 2: the second 429 in a row pauses it
        stream = await router.acompletion("gemini", MSG, stream=True)
        [chunk async for chunk in stream]
        first = stream.decision.attempts[0]
        assert first.deployment == "gemini-p"
        assert (first.outcome, first.error) == ("rate_limited", "RateLimitError 429")
    primary = _health(router, "gemini-p")
    assert primary.error_rate == 0.0  # type: ignore[attr-defined]
    assert primary.state == "closed"  # type: ignore[attr-defined]
    # Paused: for the breaker's 1 s (+ up to 10 %) period, then a probe, as the 30 s
    # Retry-After is an upper bound (router._limits.pause_for).
    paused = primary.paused_for_s  # type: ignore[attr-defined]
    assert paused is not None and 0.5 < paused <= 1.1


async def test_429_before_the_first_chunk_reaches_a_pass_through_caller_as_a_429(
    fleet: Fleet,
) -> None:
    fleet["gemini-p"].set(rate_limit_rate=1.0, retry_after_s=30)
    router = Router(group_config(fleet, "gemini"), seed=0)
    provider = fleet["gemini-p"]
    with pytest.raises(litellm.RateLimitError) as info:
        stream = await router.acompletion(
            "gemini/gemini-2.0-flash",
            MSG,
            stream=True,
            api_base=provider.base_url,
            api_key="sk-sim-gemini",
        )
        [chunk async for chunk in stream]
    assert not isinstance(info.value, litellm.exceptions.MidStreamFallbackError)
    decision = get_decision(info.value)
    assert decision is not None
    assert [a.outcome for a in decision.attempts] == ["rate_limited"]
    assert decision.attempts[0].error == "RateLimitError 429"


async def test_stream_without_finish_reason_after_its_first_chunk_raises(fleet: Fleet) -> None:
    fleet["gemini-p"].set(stream_no_finish=True, stream_chunks=3)
    router = Router(group_config(fleet, "gemini"), seed=0)
    stream = await router.acompletion("gemini", MSG, stream=True)
    received = []
    with pytest.raises(StreamInterrupted) as info:
        async for chunk in stream:
            received.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == "Hello from gemini-p."  # every content chunk came, then no finish
    assert info.value.deployment == "gemini-p"
    assert stream.decision.outcome == "stream_interrupted"
    assert _health(router, "gemini-p").error_rate > 0  # type: ignore[attr-defined]


def test_sync_stream_without_finish_reason_raises(threaded_router: Router, fleet: Fleet) -> None:
    fleet["gemini-p"].set(stream_no_finish=True)
    stream = threaded_router.completion("gemini", MSG, stream=True)
    with pytest.raises(StreamInterrupted):
        for _ in stream:
            pass


@pytest.mark.parametrize("delay", [7.0, 12.5])
async def test_retry_delay_in_the_error_body_is_the_pause(fleet: Fleet, delay: float) -> None:
    fleet["gemini-p"].set(rate_limit_rate=1.0, retry_after_s=delay)
    router = Router(group_config(fleet, "gemini"), seed=0)
    for _ in range(2):
        response = await router.acompletion("gemini", MSG)
        assert get_decision(response).deployment == "gemini-q"  # type: ignore[union-attr]
    paused = _health(router, "gemini-p").paused_for_s  # type: ignore[attr-defined]
    # Skipped until its probe after the breaker's 1 s period (the Retry-After is an upper
    # bound); the reason gives the body's retryDelay, not the 1 s default.
    assert paused is not None and 0.5 < paused <= 1.1
    third = await router.acompletion("gemini", MSG)
    decision = get_decision(third)
    assert decision is not None and decision.deployment == "gemini-q"
    assert decision.skipped[0].deployment == "gemini-p"
    assert decision.skipped[0].why.startswith(f"rate-limited for {delay:g} s (Retry-After")


@pytest.fixture
def threaded_router(fleet: Fleet) -> Router:
    return Router(group_config(fleet, "gemini"), seed=0)
