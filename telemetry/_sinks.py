"""Where finished spans go: through the OpenTelemetry API, or straight to the SDK's processors.

`SpanWriter` (telemetry._spans) builds a call's spans from its decision record and hands each
one here, complete. `_ApiSpans` starts and ends it through the API (any tracer); `_DirectSpans`
is the fast path for an SDK `TracerProvider`, used only where it is exactly equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

__all__ = ["_ApiSpans", "_DirectSpans", "_Event"]

_Event = tuple[str, "Mapping[str, AttributeValue]", int]


class _ApiSpans:
    """Spans through the OpenTelemetry API: any tracer, any processors, the SDK's checks."""

    __slots__ = ("tracer",)

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start(
        self,
        name: str,
        context: otel_context.Context,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        start: int,
    ) -> tuple[Any, trace.SpanContext, bool]:
        span = self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=start
        )
        return span, span.get_span_context(), span.is_recording()

    def child_of(
        self, span: trace.SpanContext, parent: otel_context.Context
    ) -> otel_context.Context:
        """What `start` takes as the parent of a child of the span `span` (started in the
        context `parent`): that context with the span current."""
        return trace.set_span_in_context(trace.NonRecordingSpan(span), parent)

    def end(
        self,
        handle: Any,
        end: int,
        events: Sequence[_Event],
        status: Status | None,
        late: Mapping[str, AttributeValue] | None,
    ) -> None:
        span: trace.Span = handle
        if late:
            span.set_attributes(late)
        for name, attributes, at in events:
            span.add_event(name, attributes, timestamp=at)
        if status is not None:
            span.set_status(status)
        span.end(end_time=end)


class _DirectSpans:
    """Finished spans handed straight to an SDK `TracerProvider`'s processors.

    The API path costs about 20-40 µs per span, most of it the SDK re-validating every
    attribute and building a mutable span (with a lock) that this writer only fills and ends.
    Spans here are written after the fact from a frozen record, their attributes built by this
    module with valid types only, so this path does what `Tracer.start_span` and `Span.end`
    do that matters for a span written in one go: the tracer's sampler decides (with the
    parent context and the attributes, as at start), ids come from the provider's id
    generator, trace flags (sampled, random trace id) are set as the SDK sets them, and the
    finished `ReadableSpan` (resource, instrumentation scope) goes to the processors'
    ``on_end``.

    Used only when that is exactly equivalent (`for_tracer`): an SDK tracer that is enabled,
    default attribute length limits, count limits above what a call writes, the SDK's
    internal metrics off, and only the SDK's `BatchSpanProcessor` / `SimpleSpanProcessor`,
    whose ``on_start`` does nothing. Anything else (a custom processor that enriches spans at
    start, another SDK, truncation limits) takes the API path, `_ApiSpans`.
    tests/telemetry/test_direct_spans.py checks both paths write the same spans.
    """

    __slots__ = (
        "_event",
        "_flags",
        "_ids",
        "_known",
        "_processor",
        "_random",
        "_readable",
        "_sampled",
        "_span_context",
        "_static",
        "_tracer",
        "_unsampled",
        "info",
        "resource",
        "sampler",
        "scope",
    )

    def __init__(self, tracer: Any) -> None:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace import TraceFlags

        self._known = (BatchSpanProcessor, SimpleSpanProcessor)
        self._tracer = tracer
        self._processor = tracer.span_processor
        self.sampler = tracer.sampler
        self._ids = tracer.id_generator
        self.resource = tracer.resource
        self.info = tracer.instrumentation_info
        self.scope = tracer._instrumentation_scope
        self._readable = ReadableSpan
        self._event = Event
        self._span_context = trace.SpanContext
        random_flag = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
        self._random = random_flag
        self._sampled = int(TraceFlags.SAMPLED)
        self._unsampled = int(TraceFlags.DEFAULT)
        self._flags: dict[int, TraceFlags] = {}
        self._static = _static_decisions(self.sampler)

    @classmethod
    def for_tracer(cls, tracer: trace.Tracer) -> _DirectSpans | None:
        """The direct path for `tracer`, or None when it would not be equivalent."""
        try:
            import os

            from opentelemetry.sdk import trace as sdk_trace
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

            if type(tracer) is not sdk_trace.Tracer or not tracer._is_enabled():
                return None
            if os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").lower() == "true":
                return None  # the SDK counts started/ended spans then; let it
            limits = tracer._span_limits
            if (
                limits.max_span_attribute_length is not None
                or limits.max_attribute_length is not None
                or (limits.max_span_attributes or 0) < _MIN_LIMIT
                or (limits.max_events or 0) < _MIN_LIMIT
                or (limits.max_event_attributes or 0) < _MIN_LIMIT
            ):
                return None
            multi = tracer.span_processor
            if type(multi) not in (
                sdk_trace.SynchronousMultiSpanProcessor,
                sdk_trace.ConcurrentMultiSpanProcessor,
            ):
                return None
            known = (BatchSpanProcessor, SimpleSpanProcessor)
            if not all(type(p) in known for p in multi._span_processors):
                return None
            return cls(tracer)
        except (AttributeError, ImportError, TypeError):  # another SDK version: the API path
            return None

    def usable(self) -> bool:
        """Still equivalent (processors and tracer config can change after setup)."""
        known = self._known
        return self._tracer._is_enabled() and all(
            type(p) in known for p in self._processor._span_processors
        )

    def child_of(
        self, span: trace.SpanContext, parent: otel_context.Context
    ) -> otel_context.Context | trace.SpanContext:
        """What `start` takes as the parent of a child of `span`: with a fixed sampler (which
        reads nothing but the parent's span context) the span context itself, skipping the
        context built and searched per child; with any other sampler (it is handed the parent
        context) that context, as `_ApiSpans.child_of` builds it."""
        if self._static is not None:
            return span
        return trace.set_span_in_context(trace.NonRecordingSpan(span), parent)

    def start(
        self,
        name: str,
        context: otel_context.Context | trace.SpanContext,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        start: int,
    ) -> tuple[Any, trace.SpanContext, bool]:
        if isinstance(context, trace.SpanContext):  # a parent span's context (`child_of`)
            found = context
        else:
            found = trace.get_current_span(context).get_span_context()
        ids = self._ids
        parent: trace.SpanContext | None = None
        if found.is_valid:
            parent = found
            trace_id = found.trace_id
            random_id = bool(found.trace_flags & self._random)
        else:
            trace_id = ids.generate_trace_id()
            random_id = bool(self._random) and ids.is_trace_id_random()
        static = self._static
        if static is not None:
            # The SDK's default sampler (or another made only of ALWAYS_ON/ALWAYS_OFF): its
            # decision is the parent's case looked up, the parent's trace state kept, and
            # the attributes are ours as they are (`_static_decisions`).
            if parent is None:
                sampled = static[0]
                trace_state = None
            else:
                case = (1 if parent.is_remote else 3) + (0 if parent.trace_flags.sampled else 1)
                sampled = static[case]
                trace_state = parent.trace_state
            recording = sampled
            final: dict[str, AttributeValue] = attributes
        else:
            result = self.sampler.should_sample(
                context,  # a Context here (`child_of` passes a span context only when static)
                trace_id,
                name,
                kind,
                attributes,
                (),
            )
            decision = result.decision
            sampled = decision.is_sampled()
            recording = decision.is_recording()
            trace_state = result.trace_state
            final = dict(result.attributes) if result.attributes is not None else {}
        flags = self._sampled if sampled else self._unsampled
        if random_id:
            flags |= self._random
        trace_flags = self._flags.get(flags)
        if trace_flags is None:
            trace_flags = self._flags[flags] = trace.TraceFlags(flags)
        span_context = self._span_context(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace_flags,
            trace_state=trace_state,
        )
        if not recording:
            return None, span_context, False
        return (name, kind, parent, final, start, span_context), span_context, True

    def end(
        self,
        handle: Any,
        end: int,
        events: Sequence[_Event],
        status: Status | None,
        late: Mapping[str, AttributeValue] | None,
    ) -> None:
        if handle is None:
            return
        name, kind, parent, attributes, start, span_context = handle
        if late:
            attributes.update(late)
        event = self._event
        self._processor.on_end(
            self._readable(
                name=name,
                context=span_context,
                parent=parent,
                resource=self.resource,
                attributes=attributes,
                events=tuple(event(n, a, t) for n, a, t in events) if events else (),
                links=(),
                kind=kind,
                instrumentation_info=self.info,
                status=status if status is not None else _UNSET,
                start_time=start,
                end_time=end,
                instrumentation_scope=self.scope,
            )
        )


def _static_decisions(sampler: Any) -> tuple[bool, bool, bool, bool, bool] | None:
    """Whether a span is sampled, per parent case, for a sampler whose decisions are fixed.

    The cases: no valid parent, remote parent sampled, remote not sampled, local sampled,
    local not sampled. Known for the SDK's `ALWAYS_ON` and `ALWAYS_OFF` and for a
    `ParentBased` (the SDK's default, ``ParentBased(ALWAYS_ON)``) whose five samplers are
    those two: each decides without looking at the span, returns the attributes it was given
    and the parent's trace state, as `_DirectSpans.start` does for them. None for any other
    sampler (a ratio, a custom one), which is asked per span.
    """
    from opentelemetry.sdk.trace import sampling

    fixed = {id(sampling.ALWAYS_ON): True, id(sampling.ALWAYS_OFF): False}
    if id(sampler) in fixed:
        return (fixed[id(sampler)],) * 5
    if type(sampler) is not sampling.ParentBased:
        return None
    try:
        parts = (
            sampler._root,
            sampler._remote_parent_sampled,
            sampler._remote_parent_not_sampled,
            sampler._local_parent_sampled,
            sampler._local_parent_not_sampled,
        )
    except AttributeError:  # another SDK version: ask the sampler per span
        return None
    if not all(id(part) in fixed for part in parts):
        return None
    root, remote_yes, remote_no, local_yes, local_no = (fixed[id(part)] for part in parts)
    return root, remote_yes, remote_no, local_yes, local_no


_MIN_LIMIT: Final = 64
"""Count limits (attributes, events, event attributes) above anything one call writes."""
_UNSET: Final = Status(StatusCode.UNSET)
