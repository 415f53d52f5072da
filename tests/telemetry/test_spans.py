"""The span tree of a routed call, built from its decision record (in-memory exporter)."""

from __future__ import annotations

import json
import logging

import litellm
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from router import NoDeploymentAvailable, Router, StreamInterrupted, get_decision
from router._sim import Fleet
from router.telemetry import Telemetry
from router.testing import fail, ok

from .conftest import MSG, Fake, Otel, attrs_of, call_span, children, make_fake, make_otel

REQUIRED_GENAI = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")


async def test_success_is_one_call_span_with_one_attempt_child(fake: Fake, otel: Otel) -> None:
    response = await fake.router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None
    spans = otel.spans()
    assert len(spans) == 2
    call = call_span(spans)
    (attempt,) = children(spans, call)
    assert call.parent is None and call.kind is SpanKind.INTERNAL
    assert attempt.name == "chat gpt-a" and attempt.kind is SpanKind.CLIENT
    assert attempt.context is not None and call.context is not None
    assert attempt.context.trace_id == call.context.trace_id

    a = attrs_of(call)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["router.route.reason"] == decision.reason
    assert a["router.group"] == "chat" and a["router.strategy"] == "ordered"
    assert a["router.outcome"] == "success" and a["router.deployment"] == "a"
    assert a["router.candidates"] == ("a", "b", "c")
    assert a["router.candidates.scores"] == tuple(float(c.score) for c in decision.candidates)
    assert a["router.attempts"] == 1
    # Flags and counts that are false or zero are left out (absent means false or zero).
    assert "router.failovers" not in a and "router.hedged" not in a
    assert "router.breaker.involved" not in a
    assert a["router.cost_usd"] == pytest.approx(decision.cost_usd) and decision.cost_usd > 0
    assert a["router.deadline.left_s"] == pytest.approx(30.0 - decision.elapsed_s)
    assert a["gen_ai.response.model"] == "openai/gpt-a"
    assert a["gen_ai.response.id"].startswith("chatcmpl-fake-")
    # Token usage is on the serving attempt only (GenAI backends sum it over a trace's spans).
    assert "gen_ai.usage.input_tokens" not in a and "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert call.status.status_code is StatusCode.UNSET

    b = attrs_of(attempt)
    for key in REQUIRED_GENAI:
        assert key in b
    assert b["gen_ai.request.model"] == "gpt-a"
    assert b["router.route.reason"] == decision.reason
    assert b["router.deployment"] == "a" and b["router.outcome"] == "success"
    assert b["router.attempt"] == 1 and "router.hedge" not in b
    assert b["router.breaker.state"] == "closed"
    assert b["router.cost_usd"] == pytest.approx(decision.cost_usd)
    assert b["gen_ai.usage.input_tokens"] >= 1 and b["gen_ai.usage.output_tokens"] == 5
    assert b["gen_ai.response.model"] == "openai/gpt-a" and "gen_ai.response.id" not in b

    # Timestamps: the call span starts at the decision's wall-clock start and lasts elapsed_s.
    assert call.start_time == int(decision.started_at * 1e9)
    assert call.end_time is not None
    assert call.end_time - call.start_time == int(decision.elapsed_s * 1e9)


async def test_failover_attempts_are_children_in_time_order(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", fail(503, latency=0.25))
    fake.backend.script("b", fail("connection", latency=0.1))
    fake.backend.script("c", ok("hi", latency=0.2))
    response = await fake.router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None and decision.deployment == "c"
    spans = otel.spans()
    call = call_span(spans)
    attempts = children(spans, call)
    assert [s.name for s in attempts] == ["chat gpt-a", "chat claude-b", "chat gpt-c"]
    assert [attrs_of(s)["router.attempt"] for s in attempts] == [1, 2, 3]
    a, b, c = attempts
    # Each attempt starts where the previous ended (failover is immediate), on the call's clock.
    us = 1000  # ns: float seconds -> ns rounding
    assert a.start_time == call.start_time
    assert a.end_time == pytest.approx(b.start_time, abs=us)
    assert b.end_time == pytest.approx(c.start_time, abs=us)
    assert c.end_time == pytest.approx(call.end_time, abs=us)
    assert c.end_time is not None and call.start_time is not None
    assert c.end_time - call.start_time == pytest.approx(0.55e9, abs=us)

    for failed, error in ((a, "ServiceUnavailableError"), (b, "APIConnectionError")):
        attrs = attrs_of(failed)
        assert failed.status.status_code is StatusCode.ERROR
        assert attrs["error.type"] == error
        assert attrs["router.outcome"] == "failure"
        assert attrs["router.timeout_s"] == 5.0
        (event,) = failed.events
        assert event.name == "exception"
        assert attrs_of(event)["exception.type"] == error
    assert attrs_of(b)["router.failover.cause"] == "a ServiceUnavailableError 503"
    assert attrs_of(c)["router.failover.cause"] == "b APIConnectionError 500"
    assert c.status.status_code is StatusCode.UNSET
    assert attrs_of(c)["gen_ai.provider.name"] == "openai"
    assert attrs_of(b)["gen_ai.provider.name"] == "anthropic"

    attrs = attrs_of(call)
    assert attrs["router.failovers"] == 2 and attrs["router.attempts"] == 3
    assert attrs["router.deployment"] == "c"
    assert "after 2 failed attempt(s)" in attrs["router.route.reason"]
    assert call.status.status_code is StatusCode.UNSET
    for span in spans:
        assert attrs_of(span)["router.route.reason"] == decision.reason


async def test_all_failed_sets_error_status_without_message_text(fake: Fake, otel: Otel) -> None:
    for name in "abc":
        fake.backend.script(name, fail(503))
    with pytest.raises(litellm.ServiceUnavailableError) as caught:
        await fake.router.acompletion("chat", MSG)
    decision = get_decision(caught.value)
    assert decision is not None and decision.outcome == "failed"
    spans = otel.spans()
    call = call_span(spans)
    attempts = children(spans, call)
    assert len(attempts) == 3
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == "failed: ServiceUnavailableError 503"
    attrs = attrs_of(call)
    assert attrs["error.type"] == "ServiceUnavailableError"
    assert attrs["router.outcome"] == "failed" and "router.deployment" not in attrs
    (event,) = [e for e in call.events if e.name == "exception"]
    ev = attrs_of(event)
    assert ev["exception.type"] == "litellm.exceptions.ServiceUnavailableError"
    assert ev["exception.message"] == "ServiceUnavailableError 503"
    # The provider's message text ("fake 503") is not recorded anywhere, traceback included.
    assert "fake 503" not in str(ev["exception.stacktrace"])
    assert str(ev["exception.stacktrace"]).startswith("Traceback")


async def test_no_deployment_has_skips_and_no_children(otel: Otel) -> None:
    fake = make_fake(otel.telemetry, breaker_consecutive_failures=1, max_attempts=1)
    for name in "abc":
        fake.backend.script(name, fail(503))
    for _ in range(3):  # each call opens one more breaker (one attempt per call)
        with pytest.raises(litellm.ServiceUnavailableError):
            await fake.router.acompletion("chat", MSG)
    otel.exporter.clear()
    with pytest.raises(NoDeploymentAvailable):
        await fake.router.acompletion("chat", MSG)
    spans = otel.spans()
    (call,) = spans
    attrs = attrs_of(call)
    assert attrs["router.outcome"] == "no_deployment"
    assert attrs["error.type"] == "NoDeploymentAvailable"
    skipped = attrs["router.skipped"]
    assert len(skipped) == 3 and all("breaker open for" in s for s in skipped)
    assert call.status.status_code is StatusCode.ERROR
    assert "gen_ai.provider.name" not in attrs  # no attempt: no provider to name


async def test_breaker_transitions_are_span_events(otel: Otel) -> None:
    fake = make_fake(
        otel.telemetry, breaker_consecutive_failures=1, breaker_open_base=10, breaker_open_max=10
    )
    fake.backend.script("a", fail(503, latency=0.1))
    await fake.router.acompletion("chat", MSG)
    call = call_span(otel.spans())
    (event,) = call.events
    assert event.name == "router.breaker_opened"
    ev = attrs_of(event)
    assert ev["router.deployment"] == "a"
    assert ev["router.breaker.from"] == "closed" and ev["router.breaker.to"] == "open"
    assert 10.0 <= ev["router.breaker.open_for_s"] <= 11.0
    assert "ServiceUnavailableError 503" in ev["router.breaker.reason"]
    assert call.start_time is not None and call.end_time is not None
    assert call.start_time <= event.timestamp <= call.end_time
    a_span = children(otel.spans(), call)[0]
    assert attrs_of(a_span)["router.breaker.state_after"] == "open"
    assert attrs_of(call)["router.breaker.states"] == ("a=open",)
    assert attrs_of(call)["router.breaker.involved"] is True

    # Next call: a is skipped, and the span says why.
    otel.exporter.clear()
    await fake.router.acompletion("chat", MSG)
    attrs = attrs_of(call_span(otel.spans()))
    (skip,) = attrs["router.skipped"]
    assert skip.startswith("a: breaker open for")
    assert "a skipped: breaker open" in attrs["router.route.reason"]
    assert attrs["router.breaker.involved"] is True

    # After the open period: one probe, which succeeds and closes the breaker.
    fake.clock.advance(12.0)
    otel.exporter.clear()
    await fake.router.acompletion("chat", MSG)
    spans = otel.spans()
    call = call_span(spans)
    assert [e.name for e in call.events] == ["router.breaker_half_open", "router.breaker_closed"]
    (probe,) = children(spans, call)
    attrs = attrs_of(probe)
    assert attrs["router.probe"] is True and attrs["router.breaker.state"] == "half_open"
    assert attrs["router.breaker.state_after"] == "closed"


async def test_callers_current_span_is_the_parent(fake: Fake, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("job nightly-batch") as job:
        await fake.router.acompletion("chat", MSG)
    spans = otel.spans()
    call = call_span(spans)
    assert call.parent is not None
    assert call.parent.span_id == job.get_span_context().span_id
    assert call.context is not None
    assert call.context.trace_id == job.get_span_context().trace_id


async def test_caller_error_is_an_error_span_with_one_attempt(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", fail(400))
    with pytest.raises(litellm.BadRequestError):
        await fake.router.acompletion("chat", MSG)
    call = call_span(otel.spans())
    attrs = attrs_of(call)
    assert attrs["router.outcome"] == "caller_error" and attrs["router.attempts"] == 1
    assert attrs["error.type"] == "BadRequestError"
    assert call.status.status_code is StatusCode.ERROR


async def test_streaming_call_span_covers_the_whole_stream(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", fail(503, latency=0.1))
    fake.backend.script("b", ok("one two three", latency=0.2, chunks=3, chunk_latency=0.5))
    stream = await fake.router.acompletion("chat", MSG, stream=True)
    assert otel.spans() == []  # nothing is written until the stream ends
    text = "".join([(c.choices[0].delta.content or "") async for c in stream if c.choices])
    assert text == "one two three"
    decision = stream.decision
    spans = otel.spans()
    call = call_span(spans)
    a, b = children(spans, call)
    attrs = attrs_of(call)
    assert attrs["router.stream"] is True and attrs["router.outcome"] == "success"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert call.end_time is not None and call.start_time is not None
    assert call.end_time - call.start_time == int(decision.elapsed_s * 1e9)
    # The serving attempt lasts until the last chunk; its first chunk came 0.2 s in.
    assert b.end_time == call.end_time
    battrs = attrs_of(b)
    assert battrs["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.2)
    assert battrs["router.failover.cause"] == "a ServiceUnavailableError 503"
    assert a.status.status_code is StatusCode.ERROR


async def test_interrupted_stream_is_an_error(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", ok("one two three", chunks=3, cut_after=1))
    stream = await fake.router.acompletion("chat", MSG, stream=True)
    with pytest.raises(StreamInterrupted):
        async for _ in stream:
            pass
    spans = otel.spans()
    call = call_span(spans)
    (attempt,) = children(spans, call)
    assert attrs_of(call)["router.outcome"] == "stream_interrupted"
    assert call.status.status_code is StatusCode.ERROR
    assert attempt.status.status_code is StatusCode.ERROR
    assert "stream interrupted" in (attempt.status.description or "")


async def test_stream_closed_early_is_not_an_error(fake: Fake, otel: Otel) -> None:
    stream = await fake.router.acompletion("chat", MSG, stream=True)
    await stream.__anext__()
    await stream.aclose()
    call = call_span(otel.spans())
    assert attrs_of(call)["router.outcome"] == "closed_early"
    assert call.status.status_code is StatusCode.UNSET


async def test_content_is_not_recorded_unless_opted_in(fake: Fake, otel: Otel) -> None:
    secret_prompt = "my password is hunter2"
    fake.backend.script("a", ok("the answer is 42"))
    response = await fake.router.acompletion("chat", [{"role": "user", "content": secret_prompt}])
    decision = get_decision(response)
    assert decision is not None
    # Even handed the content, an observer without capture_content does not record it.
    otel.telemetry.call_finished(decision, None, messages=MSG, output=response)
    for span in otel.spans():
        text = json.dumps(attrs_of(span)) + repr(span.events)
        assert secret_prompt not in text and "42" not in text
        assert "gen_ai.input.messages" not in (span.attributes or {})
    assert secret_prompt not in otel.log.getvalue()


async def test_content_is_recorded_when_opted_in() -> None:
    otel = make_otel(capture_content=True)
    fake = make_fake(otel.telemetry)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is six times seven?"},
    ]
    response = await fake.router.acompletion("chat", messages)
    decision = get_decision(response)
    assert decision is not None
    # The engine itself hands the content over, because this observer asked for it.
    spans = otel.spans()
    for span in (call_span(spans), children(spans, call_span(spans))[0]):
        attrs = attrs_of(span)
        inputs = json.loads(str(attrs["gen_ai.input.messages"]))
        assert inputs[1] == {
            "role": "user",
            "parts": [{"type": "text", "content": "what is six times seven?"}],
        }
        outputs = json.loads(str(attrs["gen_ai.output.messages"]))
        assert outputs == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "ok"}],
                "finish_reason": "stop",
            }
        ]


async def test_sampled_out_calls_export_nothing() -> None:
    otel = make_otel(tracer_kwargs={"sampler": ALWAYS_OFF})
    fake = make_fake(otel.telemetry)
    fake.backend.script("a", fail(503))
    await fake.router.acompletion("chat", MSG)
    assert otel.spans() == []
    assert [line["event"] for line in otel.logs()] == ["router.call_completed"]


async def test_a_broken_observer_never_breaks_the_call(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(trace.Tracer):
        def start_span(self, *args: object, **kwargs: object) -> trace.Span:
            raise RuntimeError("boom")

        def start_as_current_span(self, *args: object, **kwargs: object):
            raise RuntimeError("boom")

    class Provider(trace.TracerProvider):
        def get_tracer(self, *args: object, **kwargs: object) -> trace.Tracer:
            return Exploding()

    telemetry = Telemetry(tracer_provider=Provider(), metrics=False, logs=False)
    fake = make_fake(telemetry)
    with caplog.at_level(logging.DEBUG, logger="telemetry"):
        for _ in range(2):
            response = await fake.router.acompletion("chat", MSG)
            assert response.choices[0].message.content == "ok"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # reported once, then quietly


async def test_hedge_is_a_sibling_attempt_flagged_as_hedge(fleet: Fleet, otel: Otel) -> None:
    from tests.integration.conftest import fleet_config

    config = fleet_config(fleet)
    config["router"].update({"strategy": "cost", "hedge": True, "hedge_delay": 0.05})
    router = Router(config, seed=0, observer=otel.telemetry)
    fleet["a"].set(latency_ms=3000)
    response = await router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None and decision.hedged and decision.deployment == "b"
    spans = otel.spans()
    call = call_span(spans)
    first, hedge = children(spans, call)
    fa, ha = attrs_of(first), attrs_of(hedge)
    assert fa["router.deployment"] == "a" and fa["router.outcome"] == "cancelled"
    assert "router.hedge" not in fa
    assert first.status.status_code is StatusCode.UNSET  # lost the race: not an error
    assert ha["router.deployment"] == "b" and ha["router.hedge"] is True
    assert ha["router.outcome"] == "success"
    assert ha["gen_ai.response.model"]  # the real response's model, from litellm
    assert ha["gen_ai.usage.output_tokens"] > 0
    # The hedge started after the hedge delay, while the first attempt was still out.
    assert hedge.start_time is not None and first.start_time is not None
    assert first.end_time is not None
    assert 0.04e9 <= hedge.start_time - first.start_time <= 1.0e9
    assert first.end_time >= hedge.start_time
    attrs = attrs_of(call)
    assert attrs["router.hedged"] is True
    assert "hedge beat a" in attrs["router.route.reason"]
    assert all(attrs_of(s)["router.route.reason"] == decision.reason for s in spans)


async def test_a_job_is_the_parent_span_of_its_calls(otel: Otel) -> None:
    from router._jobs import Job

    fake = make_fake(otel.telemetry)
    fake.backend.script("a", fail(503))
    async with Job("ticket-42", observer=otel.telemetry) as job:
        await fake.router.acompletion("chat", MSG, metadata={"step": "extract"})
        await fake.router.acompletion("chat", MSG, metadata={"step": "answer"})
    spans = otel.spans()
    (job_span,) = [s for s in spans if s.name == "job ticket-42"]
    calls = children(spans, job_span)
    assert [s.name for s in calls] == ["chat chat", "chat chat"]
    assert [attrs_of(c)["router.step"] for c in calls] == ["extract", "answer"]
    assert all(attrs_of(c)["router.job.id"] == job.id for c in calls)
    assert len(children(spans, calls[0])) == 2  # a failed, b served
    attrs = attrs_of(job_span)
    assert attrs["router.job.id"] == job.id and attrs["router.job.outcome"] == "success"
    assert attrs["router.job.steps"] == 2
    assert job_span.status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN  # the job's context was restored
    assert otel.logs()[-1]["event"] == "router.job_completed"
    assert otel.logs()[-1]["span_id"] == format(job_span.context.span_id, "016x")


async def test_a_failed_job_span_is_an_error(otel: Otel) -> None:
    from router._jobs import Job

    fake = make_fake(otel.telemetry)
    with pytest.raises(KeyError):
        async with Job("ticket-43", observer=otel.telemetry):
            await fake.router.acompletion("chat", MSG)
            raise KeyError("sk-should-not-appear-1234")
    (job_span,) = [s for s in otel.spans() if s.name == "job ticket-43"]
    assert job_span.status.status_code is StatusCode.ERROR
    assert job_span.status.description == "failed: KeyError"
    assert "sk-should-not-appear" not in repr([attrs_of(e) for e in job_span.events])
    event = otel.logs()[-1]
    assert event["event"] == "router.job_failed"
    assert "sk-should-not-appear" not in json.dumps(event)


def test_sync_calls_keep_the_callers_span_as_parent(otel: Otel) -> None:
    fake = make_fake(otel.telemetry)
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as parent:
        fake.router.completion("chat", MSG)  # runs on the router's background loop
    call = call_span(otel.spans())
    assert call.parent is not None
    assert call.parent.span_id == parent.get_span_context().span_id
