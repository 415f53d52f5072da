"""The attempt loop with the fake backend and fake clock: deadlines, bounds, failover rules."""

from __future__ import annotations

from typing import Any

import litellm
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import (
    DeadlineExceeded,
    NoDeploymentAvailable,
    Router,
    StreamInterrupted,
    get_decision,
)
from router.testing import FakeBackend, FakeClock, Step, fail, hang, ok

MSG = [{"role": "user", "content": "hello there"}]


def config(deadline: float = 10.0, max_attempts: int = 3, **extra: Any) -> dict[str, Any]:
    deployments = [
        {
            "name": "a",
            "model": "openai/a",
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 2e-6,
            "timeout": 2.0,
            "groups": ["chat"],
        },
        {
            "name": "b",
            "model": "openai/b",
            "input_cost_per_token": 2e-6,
            "output_cost_per_token": 4e-6,
            "timeout": 2.0,
            "groups": ["chat"],
        },
        {
            "name": "c",
            "model": "openai/c",
            "input_cost_per_token": 3e-6,
            "output_cost_per_token": 6e-6,
            "timeout": 2.0,
            "groups": ["chat"],
        },
    ]
    for d in deployments:
        d.update(extra.get(str(d["name"]), {}))
    return {
        "router": {"deadline": deadline, "max_attempts": max_attempts, "strategy": "cost"},
        "deployments": deployments,
    }


def make(cfg: dict[str, Any] | None = None) -> tuple[Router, FakeBackend, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(clock)
    return Router(cfg or config(), backend=backend, clock=clock, seed=1), backend, clock


async def test_cheapest_first_and_decision_on_response() -> None:
    router, backend, _ = make()
    response = await router.acompletion("chat", MSG)
    assert isinstance(response, litellm.ModelResponse)
    decision = get_decision(response)
    assert decision is not None
    assert decision.deployment == "a"
    assert decision.candidate_names == ("a", "b", "c")
    assert [a.outcome for a in decision.attempts] == ["success"]
    usage = response.usage
    assert decision.cost_usd == pytest.approx(
        usage.prompt_tokens * 1e-6 + usage.completion_tokens * 2e-6
    )
    assert decision.cost_usd > 0
    assert "served by a" in decision.reason
    assert backend.calls_to("b") == 0


async def test_failover_on_503_is_immediate_and_recorded() -> None:
    router, backend, clock = make()
    backend.script("a", fail(503, latency=0.1))
    response = await router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None and decision.deployment == "b"
    assert decision.failovers == 1
    assert decision.attempts[0].error == "ServiceUnavailableError 503"
    assert "after 1 failed attempt(s): a ServiceUnavailableError 503" in decision.reason
    assert clock.sleeps == [0.1, 0.0]  # fake latencies only: no backoff between deployments


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, litellm.BadRequestError),
        (422, litellm.UnprocessableEntityError),
        ("content_policy", litellm.ContentPolicyViolationError),
    ],
)
async def test_caller_errors_are_not_failed_over(status: int | str, cls: type[Exception]) -> None:
    router, backend, _ = make()
    backend.script("a", fail(status))
    with pytest.raises(cls) as info:
        await router.acompletion("chat", MSG)
    assert backend.calls_to("b") == 0
    decision = get_decision(info.value)
    assert decision is not None and decision.outcome == "caller_error"


async def test_context_window_error_moves_to_a_larger_window() -> None:
    cfg = config(
        a={"max_context_tokens": 1000},
        b={"max_context_tokens": 500},
        c={"max_context_tokens": 8000},
    )
    router, backend, _ = make(cfg)
    backend.script("a", fail("context"))
    response = await router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None and decision.deployment == "c"
    assert backend.calls_to("b") == 0
    assert any(s.deployment == "b" and "not larger" in s.why for s in decision.skipped)


async def test_context_window_error_without_a_larger_window_is_raised() -> None:
    cfg = config(
        a={"max_context_tokens": 8000},
        b={"max_context_tokens": 500},
        c={"max_context_tokens": 8000},
    )
    router, backend, _ = make(cfg)
    backend.script("a", fail("context"))
    with pytest.raises(litellm.ContextWindowExceededError):
        await router.acompletion("chat", MSG)
    assert backend.calls_to("b") == backend.calls_to("c") == 0


async def test_one_429_fails_the_call_over_but_keeps_the_deployment_in_service() -> None:
    router, backend, _ = make()
    backend.script("a", fail(429, retry_after=5))
    first = get_decision(await router.acompletion("chat", MSG))
    assert first is not None and first.deployment == "b"
    assert [a.outcome for a in first.attempts] == ["rate_limited", "success"]
    second = get_decision(await router.acompletion("chat", MSG))
    assert second is not None and second.deployment == "a" and not second.skipped


async def test_429s_in_a_row_pause_the_deployment_until_retry_after() -> None:
    router, backend, clock = make()
    backend.script("a", fail(429, retry_after=5), fail(503), fail(429, retry_after=5))
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "b"  # type: ignore[union-attr]
    # A failure between the two 429s does not break the streak; the second 429 pauses.
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "b"  # type: ignore[union-attr]
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "b"  # type: ignore[union-attr]
    assert backend.calls_to("a") == 3
    paused = get_decision(await router.acompletion("chat", MSG))
    assert paused is not None and paused.deployment == "b"
    assert backend.calls_to("a") == 3
    assert paused.skipped[0].deployment == "a"
    assert "rate-limited for 5 s" in paused.skipped[0].why
    assert "a skipped: rate-limited" in paused.reason
    clock.advance(5.1)
    back = get_decision(await router.acompletion("chat", MSG))
    assert back is not None and back.deployment == "a"


async def test_a_success_between_429s_breaks_the_streak() -> None:
    router, backend, _ = make()
    backend.script("a", fail(429), ok(), fail(429), ok(), fail(429))
    for _ in range(6):
        await router.acompletion("chat", MSG)
    assert backend.calls_to("a") == 6  # never paused


async def test_rate_limit_pause_after_1_pauses_on_the_first_429() -> None:
    cfg = config()
    cfg["router"]["rate_limit_pause_after"] = 1
    router, backend, _ = make(cfg)
    backend.script("a", fail(429, retry_after=5))
    await router.acompletion("chat", MSG)
    second = get_decision(await router.acompletion("chat", MSG))
    assert second is not None and second.deployment == "b"
    assert "rate-limited for 5 s" in second.skipped[0].why
    assert backend.calls_to("a") == 1


async def test_auth_error_pauses_the_deployment_for_long() -> None:
    router, backend, clock = make()
    backend.script("a", fail(401))
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "b"  # type: ignore[union-attr]
    clock.advance(60)
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "b"  # type: ignore[union-attr]
    assert backend.calls_to("a") == 1


async def test_all_rate_limited_fails_fast_listing_every_candidate() -> None:
    router, backend, clock = make()
    for name in "abc":
        backend.script(name, default=fail(429, retry_after=30))
    for _ in range(2):  # two 429s in a row from each pause all three
        with pytest.raises(NoDeploymentAvailable):
            await router.acompletion("chat", MSG)
    started = clock.now()
    with pytest.raises(NoDeploymentAvailable) as info:
        await router.acompletion("chat", MSG)
    assert clock.now() == started  # no attempt, no wait
    assert set(info.value.reasons) == {"a", "b", "c"}
    assert all("rate-limited" in why for why in info.value.reasons.values())
    assert isinstance(info.value, litellm.ServiceUnavailableError)


async def test_attempts_exhausted_raise_the_last_litellm_error() -> None:
    router, backend, _ = make()
    for name in "abc":
        backend.script(name, default=fail(503))
    with pytest.raises(litellm.ServiceUnavailableError) as info:
        await router.acompletion("chat", MSG)
    decision = get_decision(info.value)
    assert decision is not None and len(decision.attempts) == 3
    assert [a.deployment for a in decision.attempts] == ["a", "b", "c"]


async def test_retry_of_the_same_deployment_backs_off_with_full_jitter() -> None:
    cfg = config(max_attempts=4)
    cfg["deployments"] = cfg["deployments"][:2]
    router, backend, clock = make(cfg)
    backend.script("a", default=fail(503))
    backend.script("b", default=fail(503))
    with pytest.raises(litellm.ServiceUnavailableError):
        await router.acompletion("chat", MSG)
    # attempts a, b, a(retry 1), b(retry 1): two backoffs, each within U(0, 0.5)
    backoffs = [s for s in clock.sleeps if s > 0]
    assert len(backoffs) == 2 and all(0 < s <= 0.5 for s in backoffs)
    assert [c.deployment for c in backend.calls] == ["a", "b", "a", "b"]


async def test_hanging_deployments_end_exactly_at_the_deadline() -> None:
    router, backend, clock = make(config(deadline=5.0))
    for name in "abc":
        backend.script(name, default=hang())
    start = clock.now()
    with pytest.raises(DeadlineExceeded) as info:
        await router.acompletion("chat", MSG)
    assert clock.now() - start == pytest.approx(5.0)
    assert [c.timeout for c in backend.calls] == [2.0, 2.0, pytest.approx(1.0)]
    assert isinstance(info.value, litellm.Timeout)


async def test_caller_timeout_caps_the_deadline() -> None:
    router, backend, clock = make()
    backend.script("a", default=hang())
    backend.script("b", default=hang())
    start = clock.now()
    with pytest.raises(DeadlineExceeded):
        await router.acompletion("chat", MSG, timeout=3.0, num_retries=5)
    assert clock.now() - start == pytest.approx(3.0)
    assert "num_retries" not in backend.calls[0].request


async def test_unknown_model_goes_straight_through_as_one_deployment() -> None:
    router, backend, _ = make()
    response = await router.acompletion("openai/gpt-4o-mini", MSG, temperature=0.2)
    decision = get_decision(response)
    assert decision is not None and decision.deployment == "openai/gpt-4o-mini"
    assert backend.calls[0].request["temperature"] == 0.2


async def test_deployment_name_is_a_one_deployment_group() -> None:
    router, backend, _ = make()
    backend.script("c", default=fail(503))
    with pytest.raises(litellm.ServiceUnavailableError):
        await router.acompletion("c", MSG)
    assert backend.calls_to("a") == backend.calls_to("b") == 0
    assert backend.calls_to("c") == 3  # retried on itself, with backoff


# -- streaming -------------------------------------------------------------------------------


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


async def test_stream_fails_over_before_the_first_chunk() -> None:
    router, backend, _ = make()
    backend.script("a", fail(502))
    stream = await router.acompletion("chat", MSG, stream=True)
    chunks = await collect(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "ok"
    assert stream.decision.deployment == "b"
    assert stream.decision.outcome == "success"


async def test_stream_cut_after_first_chunk_raises_and_does_not_fail_over() -> None:
    router, backend, _ = make()
    backend.script("a", Step(content="hello world", chunks=3, cut_after=1))
    stream = await router.acompletion("chat", MSG, stream=True)
    with pytest.raises(StreamInterrupted) as info:
        await collect(stream)
    assert isinstance(info.value, litellm.APIConnectionError)
    assert backend.calls_to("b") == 0
    assert get_decision(info.value).outcome == "stream_interrupted"  # type: ignore[union-attr]


async def test_stream_ending_without_finish_reason_raises() -> None:
    router, backend, _ = make()
    backend.script("a", Step(content="hello", finish=False))
    stream = await router.acompletion("chat", MSG, stream=True)
    with pytest.raises(StreamInterrupted, match="without a finish_reason"):
        await collect(stream)


async def test_stream_stalling_past_the_deadline_raises() -> None:
    router, backend, _ = make(config(deadline=3.0))
    backend.script("a", Step(content="abcdef", chunks=3, chunk_latency=2.0))
    stream = await router.acompletion("chat", MSG, stream=True)
    # The fake clock does not enforce timeouts itself; the stream checks time left per chunk.
    with pytest.raises(StreamInterrupted, match="deadline"):
        await collect(stream)


# -- invariants over random scripts ----------------------------------------------------------

step_strategy = st.one_of(
    st.builds(lambda t: ok(latency=t), st.floats(0, 3)),
    st.builds(
        lambda s, t: fail(s, latency=t),
        st.sampled_from([500, 502, 503, 429, 401, "connection", "timeout"]),
        st.floats(0, 3),
    ),
    st.just(hang()),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scripts=st.lists(st.lists(step_strategy, max_size=4), min_size=3, max_size=3),
    deadline=st.floats(0.5, 8.0),
    max_attempts=st.integers(1, 5),
)
def test_deadline_and_attempt_bounds_hold_for_any_script(
    scripts: list[list[Step]], deadline: float, max_attempts: int
) -> None:
    import asyncio

    router, backend, clock = make(config(deadline=deadline, max_attempts=max_attempts))
    for name, script in zip("abc", scripts, strict=True):
        backend.script(name, *script)
    start = clock.now()
    try:
        asyncio.run(router.acompletion("chat", MSG))
    except openai.OpenAIError:  # every litellm and router error derives from it
        pass
    assert clock.now() - start <= deadline + 1e-9
    # One reserved attempt past max_attempts goes to a clean untried candidate (router._choose).
    assert len(backend.calls) <= max_attempts + (max_attempts >= 2)
    for call in backend.calls:
        assert call.timeout <= start + deadline - call.started + 1e-9


async def test_capture_decisions_collects_every_finished_call_in_order() -> None:
    from router import BaseObserver, Router
    from router.testing import FakeBackend, FakeClock, capture_decisions, fail, ok

    class Counting(BaseObserver):  # only what it needs: the base class does the rest
        calls = 0

        def call_finished(self, decision: Any, error: Any, **content: Any) -> None:
            Counting.calls += 1

    clock = FakeClock()
    backend = FakeBackend(clock)
    config = {
        "deployments": [
            {"name": n, "model": f"openai/{n}", "groups": ["chat"]} for n in ("a", "b")
        ],
        "router": {"strategy": "ordered"},
    }
    router = Router(config, backend=backend, clock=clock, observer=Counting(), telemetry=False)
    backend.script("a", fail(503), ok("hi"))
    with capture_decisions(router) as decisions:
        await router.acompletion("chat", [{"role": "user", "content": "x"}])
        await router.acompletion("chat", [{"role": "user", "content": "y"}])
    await router.acompletion("chat", [{"role": "user", "content": "z"}])
    assert [d.deployment for d in decisions] == ["b", "a"]
    assert decisions[0].failovers == 1 and all(d.ok for d in decisions)
    assert Counting.calls == 3  # the router's own observer kept getting every call
