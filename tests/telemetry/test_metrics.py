"""Metrics from decision records (in-memory metric reader)."""

from __future__ import annotations

import time

import pytest

from router import get_decision
from router._decision import AttemptRecord, CallOutcome, Candidate, Decision, ResponseInfo
from router._errors import Outcome
from router.testing import fail, ok

from .conftest import MSG, Fake, Otel, make_fake


def _value(points: list[tuple[dict[str, object], object]], **attrs: object) -> object:
    found = [v for a, v in points if all(a.get(k) == w for k, w in attrs.items())]
    assert len(found) == 1, (attrs, points)
    return found[0]


async def test_calls_attempts_failovers_cost_tokens_and_latency(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", fail(503, latency=0.1))
    fake.backend.script("b", ok("hi", latency=0.3, prompt_tokens=7, completion_tokens=3))
    response = await fake.router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None
    await fake.router.acompletion("chat", MSG)  # a again, served at once

    m = otel.metrics()
    calls = m["router.calls"]
    assert _value(calls, **{"router.group": "chat", "router.deployment": "b"}) == 1
    assert _value(calls, **{"router.deployment": "a", "router.outcome": "success"}) == 1
    attempts = m["router.attempts"]
    assert _value(attempts, **{"router.deployment": "a", "router.outcome": "failure"}) == 1
    assert _value(attempts, **{"router.deployment": "a", "router.outcome": "success"}) == 1
    assert _value(attempts, **{"router.deployment": "b", "router.outcome": "success"}) == 1
    assert _value(m["router.failovers"], **{"router.group": "chat"}) == 1
    cost = _value(m["router.cost"], **{"router.deployment": "b"})
    assert cost == pytest.approx(7 * 1e-6 + 3 * 2e-6)
    tokens = m["router.tokens"]
    assert _value(tokens, **{"router.deployment": "b", "gen_ai.token.type": "input"}) == 7
    assert _value(tokens, **{"router.deployment": "b", "gen_ai.token.type": "output"}) == 3

    duration = _value(m["gen_ai.client.operation.duration"], **{"router.deployment": "b"})
    assert duration.count == 1  # type: ignore[attr-defined]
    assert duration.sum == pytest.approx(0.4)  # type: ignore[attr-defined]
    attempt = _value(
        m["router.attempt.duration"], **{"router.deployment": "a", "router.outcome": "failure"}
    )
    assert attempt.sum == pytest.approx(0.1)  # type: ignore[attr-defined]
    assert "gen_ai.client.operation.time_to_first_chunk" not in m  # no stream yet


async def test_failed_calls_carry_error_type(fake: Fake, otel: Otel) -> None:
    for name in "abc":
        fake.backend.script(name, fail(503))
    with pytest.raises(Exception, match="fake 503"):
        await fake.router.acompletion("chat", MSG)
    calls = otel.metrics()["router.calls"]
    assert _value(calls, **{"router.outcome": "failed"}) == 1
    (attrs,) = [a for a, _ in calls]
    assert attrs["error.type"] == "ServiceUnavailableError"
    assert attrs["router.deployment"] == ""


async def test_breaker_state_gauge_and_transitions(otel: Otel) -> None:
    fake = make_fake(otel.telemetry, breaker_consecutive_failures=1)
    fake.backend.script("a", fail(503))
    await fake.router.acompletion("chat", MSG)
    m = otel.metrics()
    assert _value(m["router.breaker.state"], **{"router.deployment": "a"}) == 2  # open
    assert _value(m["router.breaker.transitions"], **{"router.breaker.to": "open"}) == 1
    fake.clock.advance(40.0)
    await fake.router.acompletion("chat", MSG)  # the probe succeeds
    m = otel.metrics()
    assert _value(m["router.breaker.state"], **{"router.deployment": "a"}) == 0  # closed
    transitions = m["router.breaker.transitions"]
    assert _value(transitions, **{"router.breaker.to": "half_open"}) == 1
    assert _value(transitions, **{"router.breaker.to": "closed"}) == 1


async def test_time_to_first_chunk_for_streams(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", ok("one two", latency=0.25, chunks=2))
    stream = await fake.router.acompletion("chat", MSG, stream=True)
    async for _ in stream:
        pass
    m = otel.metrics()
    ttfc = _value(m["gen_ai.client.operation.time_to_first_chunk"], **{"router.deployment": "a"})
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(0.25)  # type: ignore[attr-defined]


def test_hedges_are_counted_by_the_deployment_hedged_to(otel: Otel) -> None:
    decision = Decision(
        group="chat",
        strategy="latency",
        candidates=(Candidate("a", 0.1), Candidate("b", 0.2)),
        skipped=(),
        attempts=(
            AttemptRecord(
                1, "b", "openai/gpt-b", Outcome.SUCCESS, 0.2, 5.0, hedge=True, started_s=0.5
            ),
            AttemptRecord(2, "a", "openai/gpt-a", Outcome.CANCELLED, 0.7, 5.0),
        ),
        deployment="b",
        outcome=CallOutcome.SUCCESS,
        reason="served by b: its hedge beat a",
        cost_usd=0.0,
        elapsed_s=0.7,
        deadline_s=30.0,
        started_at=time.time(),
        response=ResponseInfo(id="x", model="gpt-b", input_tokens=3, output_tokens=4),
    )
    otel.telemetry.call_finished(decision, None)
    m = otel.metrics()
    assert _value(m["router.hedges"], **{"router.deployment": "b"}) == 1
    assert _value(m["router.attempts"], **{"router.hedge": True}) == 1
    assert _value(m["router.attempts"], **{"router.outcome": "cancelled"}) == 1
