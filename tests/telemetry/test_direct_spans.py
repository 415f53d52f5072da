"""The direct span path writes exactly what the OpenTelemetry API path writes.

`telemetry._sinks._DirectSpans` hands finished spans to the SDK's processors without the API's
per-span machinery. Both observers here watch the same calls (one router, a `Fanout`), one on
each path, and every exported field is compared: names, kinds, attributes, status, events,
times, parent links, trace flags, resource and scope. Span ids differ by nature; links are
compared by position.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, TraceFlags

from router import Router
from router._observe import Fanout
from router.testing import FakeBackend, FakeClock, fail, hang, ok

from .conftest import MSG, Otel, fake_config, make_otel

APP_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
APP_SPAN = 0x00F067AA0BA902B7


def shape(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """Every exported field of each span, ids replaced by positions."""
    index = {s.context.span_id: i for i, s in enumerate(spans) if s.context is not None}
    out = []
    for s in spans:
        assert s.context is not None
        parent: Any = None
        if s.parent is not None:
            parent = "app" if s.parent.span_id == APP_SPAN else index[s.parent.span_id]
        out.append(
            (
                s.name,
                s.kind,
                dict(s.attributes or {}),
                s.status.status_code,
                s.status.description,
                [(e.name, dict(e.attributes or {}), e.timestamp) for e in s.events],
                s.start_time,
                s.end_time,
                parent,
                s.context.trace_id == APP_TRACE,
                int(s.context.trace_flags),
                s.context.is_remote,
                dict(s.resource.attributes),
                s.instrumentation_scope.name if s.instrumentation_scope else None,
                s.dropped_attributes,
                s.dropped_events,
                tuple(s.links),
            )
        )
    return out


@pytest.fixture
def pair() -> Iterator[tuple[Otel, Otel]]:
    direct, api = make_otel("direct"), make_otel("api")
    assert direct.telemetry._spans is not None and direct.telemetry._spans._direct is not None
    assert api.telemetry._spans is not None and api.telemetry._spans._direct is None
    yield direct, api
    for otel in (direct, api):
        otel.tracer_provider.shutdown()
        otel.meter_provider.shutdown()


def routed(pair: tuple[Otel, Otel], **router: Any) -> tuple[Router, FakeBackend, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(clock)
    observer = Fanout([pair[0].telemetry, pair[1].telemetry])
    return (
        Router(fake_config(**router), backend=backend, clock=clock, observer=observer),
        backend,
        clock,
    )


async def calls(router: Router, backend: FakeBackend, n: int = 1) -> None:
    for _ in range(n):
        try:
            await router.acompletion("chat", MSG)
        except Exception:  # the failing scenarios: the error span is what is compared
            pass


async def test_success_failover_errors_and_breaker_events_match(pair: tuple[Otel, Otel]) -> None:
    router, backend, _ = routed(pair)
    await calls(router, backend)  # success
    backend.script("a", fail(503))
    await calls(router, backend)  # failover, with a failover cause
    for name in "abc":
        backend.script(name, fail(503))
    await calls(router, backend)  # every attempt failed: error status and exception events
    backend.script("a", *[fail("connection")] * 6)
    await calls(router, backend, 6)  # a's breaker opens: transition events, skipped candidates
    direct, api = pair
    assert len(direct.spans()) >= 14
    assert shape(direct.spans()) == shape(api.spans())


async def test_timeouts_and_streams_match(pair: tuple[Otel, Otel]) -> None:
    # Hedges need the real clock (the fake one resolves latency at once); their spans are
    # checked on both paths by test_spans.py's fleet test, whose fixture runs each path.
    router, backend, _ = routed(pair)
    backend.script("a", hang())
    await calls(router, backend)
    backend.script("a", ok("slow", latency=1.0))
    stream = await router.acompletion("chat", MSG, stream=True)
    async for _ in stream:
        pass
    direct, api = pair
    spans = direct.spans()
    outcomes = {s.attributes.get("router.outcome") for s in spans if s.attributes}
    assert "failure" in outcomes, outcomes  # the timed-out attempt
    assert any(s.attributes and s.attributes.get("router.stream") for s in spans)
    assert shape(spans) == shape(api.spans())


async def test_an_application_parent_and_its_sampling_decision_are_respected(
    pair: tuple[Otel, Otel],
) -> None:
    router, backend, _ = routed(pair)
    for flags in (TraceFlags.SAMPLED, TraceFlags.DEFAULT):
        parent = SpanContext(APP_TRACE, APP_SPAN, is_remote=True, trace_flags=TraceFlags(flags))
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
        try:
            await calls(router, backend)
        finally:
            otel_context.detach(token)
    direct, api = pair
    spans = direct.spans()
    # The sampled parent's call is in its trace; the unsampled parent's call is not exported.
    assert len(spans) == 2 and all(s.context and s.context.trace_id == APP_TRACE for s in spans)
    assert shape(spans) == shape(api.spans())


async def test_a_sampler_that_drops_everything_drops_on_both_paths() -> None:
    direct, api = (make_otel(p, tracer_kwargs={"sampler": ALWAYS_OFF}) for p in ("direct", "api"))
    router, backend, _ = routed((direct, api))
    await calls(router, backend, 3)
    assert direct.spans() == [] and api.spans() == []


async def test_a_processor_added_later_switches_to_the_api_path(pair: tuple[Otel, Otel]) -> None:
    from .conftest import CustomProcessor

    direct, _ = pair
    router, backend, _ = routed(pair)
    await calls(router, backend)
    late = make_otel("direct")
    direct.tracer_provider.add_span_processor(CustomProcessor(late.exporter))
    await calls(router, backend)
    writer = direct.telemetry._spans
    assert writer is not None and writer._sink() is writer._api
    assert len(late.spans()) == 2  # the custom processor saw the second call's spans


@pytest.mark.parametrize(
    "sampler",
    ["default", "always_on", "parent_based_off", "mixed_parent_based", "ratio"],
)
async def test_every_sampler_decides_the_same_on_both_paths_for_every_kind_of_parent(
    sampler: str,
) -> None:
    """The direct path decides fixed samplers itself (`_static_decisions`) and asks any other
    per span; either way each parent case (none, remote or local, sampled or not) ends as on
    the API path: same spans exported, same flags, the parent's trace state kept."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        DEFAULT_ON,
        ParentBased,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import TraceState

    samplers: dict[str, Any] = {
        "default": DEFAULT_ON,
        "always_on": ALWAYS_ON,
        "parent_based_off": ParentBased(ALWAYS_OFF),
        "mixed_parent_based": ParentBased(
            ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF, local_parent_not_sampled=ALWAYS_ON
        ),
        "ratio": TraceIdRatioBased(0.5),
    }
    direct, api = (
        make_otel(p, tracer_kwargs={"sampler": samplers[sampler]}) for p in ("direct", "api")
    )
    writer = direct.telemetry._spans
    assert writer is not None and writer._direct is not None
    assert (writer._direct._static is None) == (sampler == "ratio")
    router, backend, _ = routed((direct, api))
    state = TraceState([("app", "kept")])
    for remote in (True, False):
        for flags in (TraceFlags.SAMPLED, TraceFlags.DEFAULT):
            parent = SpanContext(
                APP_TRACE, APP_SPAN, is_remote=remote, trace_flags=TraceFlags(flags),
                trace_state=state,
            )  # fmt: skip
            token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
            try:
                await calls(router, backend)
            finally:
                otel_context.detach(token)
    if sampler != "ratio":  # a ratio's root decision follows each path's own random trace id
        await calls(router, backend, 3)  # no parent
    spans = direct.spans()
    assert shape(spans) == shape(api.spans())
    assert [s.context.trace_state for s in spans if s.context] == [
        s.context.trace_state for s in api.spans() if s.context
    ]
    for otel in (direct, api):
        otel.tracer_provider.shutdown()
        otel.meter_provider.shutdown()
