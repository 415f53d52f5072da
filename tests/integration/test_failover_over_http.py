"""Through real litellm over real loopback HTTP: the fault matrix, plain and streaming."""

from __future__ import annotations

import time
from typing import Any

import litellm
import pytest

from router import DeadlineExceeded, Router, StreamInterrupted, get_decision
from router._sim import Fleet

from .conftest import fleet_config

MSG = [{"role": "user", "content": "hello"}]


def served_by(response: Any) -> str | None:
    decision = get_decision(response)
    assert decision is not None
    return decision.deployment


async def test_plain_call_returns_litellm_response_with_decision(router: Router) -> None:
    response = await router.acompletion("chat", MSG, temperature=0.1)
    assert isinstance(response, litellm.ModelResponse)
    assert response.choices[0].message.content == "Hello from a."
    decision = get_decision(response)
    assert decision is not None
    assert decision.deployment == "a" and decision.outcome == "success"
    assert decision.cost_usd > 0
    assert decision.attempts[0].latency_s > 0


async def test_async_stream_yields_litellm_chunks(router: Router, fleet: Fleet) -> None:
    stream = await router.acompletion(
        "chat", MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert all(isinstance(c, litellm.ModelResponseStream) for c in chunks)
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert text == "Hello from a."
    assert stream.decision.outcome == "success"
    assert stream.decision.cost_usd > 0
    assert fleet["a"].stats.streams == 1


@pytest.mark.parametrize(
    ("knobs", "label"),
    [
        ({"outage": "503"}, "ServiceUnavailableError 503"),
        ({"outage": "refused"}, "InternalServerError 500"),
        ({"error_rate": 1.0, "error_status": 502}, "BadGatewayError 502"),
        # A stream's malformed first event: litellm's error, unwrapped by the router's guard.
        ({"malformed": True}, ("InternalServerError 500", "APIConnectionError 500")),
        ({"auth_fail": True}, "AuthenticationError 401"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_failover_on_provider_faults(
    fleet: Fleet, router: Router, knobs: dict[str, Any], label: str | tuple[str, ...], stream: bool
) -> None:
    fleet["a"].set(**knobs)
    result = await router.acompletion("chat", MSG, stream=stream)
    if stream:
        [chunk async for chunk in result]
    decision = get_decision(result)
    assert decision is not None
    assert decision.deployment == "b"
    assert decision.attempts[0].deployment == "a"
    assert decision.attempts[0].error is not None
    assert decision.attempts[0].error.startswith(label)


@pytest.mark.parametrize("stream", [False, True])
async def test_failover_on_hang_within_the_attempt_timeout(fleet: Fleet, stream: bool) -> None:
    router = Router(fleet_config(fleet, deadline=5.0, timeout=0.5))
    fleet["a"].set(hang=True)
    started = time.monotonic()
    result = await router.acompletion("chat", MSG, stream=stream)
    if stream:
        [chunk async for chunk in result]
    assert served_by(result) == "b"
    assert get_decision(result).attempts[0].error.startswith("Timeout")  # type: ignore[union-attr]
    assert time.monotonic() - started < 5.0


async def test_slow_first_token_counts_as_a_failure(fleet: Fleet) -> None:
    config = fleet_config(fleet)
    config["router"]["first_chunk_timeout"] = 0.3
    router = Router(config)
    fleet["a"].set(first_chunk_delay_ms=2000)
    stream = await router.acompletion("chat", MSG, stream=True)
    [chunk async for chunk in stream]
    assert stream.decision.deployment == "b"


async def test_rate_limited_provider_is_skipped_until_retry_after(
    fleet: Fleet, router: Router
) -> None:
    fleet["a"].set(rate_limit_rate=1.0, retry_after_s=30)
    # Two 429s in a row (rate_limit_pause_after = 2) pause a for every caller.
    assert served_by(await router.acompletion("chat", MSG)) == "b"
    assert served_by(await router.acompletion("chat", MSG)) == "b"
    third = await router.acompletion("chat", MSG)
    decision = get_decision(third)
    assert decision is not None and decision.deployment == "b"
    assert decision.skipped[0].deployment == "a"
    assert "rate-limited for 30 s" in decision.skipped[0].why
    assert fleet["a"].stats.requests == 2


async def test_context_window_error_moves_to_a_larger_window(fleet: Fleet) -> None:
    config = fleet_config(
        fleet,
        a={"max_context_tokens": 50},
        b={"max_context_tokens": 40},
        c={"max_context_tokens": 100_000},
    )
    fleet["a"].set(context_window=50)
    router = Router(config)
    big = [{"role": "user", "content": "word " * 200}]
    assert served_by(await router.acompletion("chat", big)) == "c"
    assert fleet["b"].stats.requests == 0


async def test_bad_request_is_not_failed_over(fleet: Fleet, router: Router) -> None:
    with pytest.raises(litellm.BadRequestError):
        await router.acompletion("chat", MSG, temperature=5)  # out of range: the fleet says 400
    assert fleet["b"].stats.requests == 0


async def test_stream_cut_mid_way_raises(fleet: Fleet, router: Router) -> None:
    fleet["a"].set(cut_stream_after=2)
    stream = await router.acompletion("chat", MSG, stream=True)
    received = []
    with pytest.raises(StreamInterrupted) as info:
        async for chunk in stream:
            received.append(chunk)
    assert len(received) >= 1
    assert isinstance(info.value, litellm.APIConnectionError)
    assert fleet["b"].stats.requests == 0
    assert stream.decision.outcome == "stream_interrupted"


async def test_everything_hanging_ends_at_the_deadline(fleet: Fleet) -> None:
    router = Router(fleet_config(fleet, deadline=1.5, timeout=0.6))
    for provider in fleet:
        provider.set(hang=True)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await router.acompletion("chat", MSG)
    # correctness, not timing: never hang past the deadline (generous slack for slow CI)
    assert time.monotonic() - started < 1.5 + 2.0


async def test_everything_down_lists_every_candidate(fleet: Fleet, router: Router) -> None:
    for provider in fleet:
        provider.set(outage="503")
    with pytest.raises(litellm.ServiceUnavailableError) as info:
        await router.acompletion("chat", MSG)
    decision = get_decision(info.value)
    assert decision is not None
    assert [a.deployment for a in decision.attempts] == ["a", "b", "c"]
