"""Spans from a decision record: one span for the routed call, one child per attempt and hedge.

Spans are built after the fact, when the engine reports a finished call, from the frozen
`Decision`: the call started at ``decision.started_at`` (wall clock) and lasted
``decision.elapsed_s``; each attempt started ``started_s`` after the call and lasted
``latency_s``. Explicit start and end times put them on the timeline where they happened, and
building them late keeps the engine's hot path free of telemetry.

The parent is the caller's current OpenTelemetry context (the engine reports in the caller's
task), so a span the application (or a job) opened around the call is its parent.

Names and attributes follow the GenAI semantic conventions (``chat {group}`` for the call,
``chat {model}`` for an attempt; ``gen_ai.*`` attributes), plus ``router.*`` attributes that
carry the routing story; ``router.route.reason`` (the decision's sentence) is on every span so
a search by reason finds the call from any of its spans. Prompt and completion content are
recorded only when content capture is on. Nothing here reads a deployment's config, so no key
can reach a span.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from router.telemetry._sinks import _ApiSpans, _DirectSpans, _Event

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from router._breaker import Transition
    from router._decision import AttemptRecord, Decision, ResponseInfo

# GenAI semantic-convention attribute keys (https://opentelemetry.io/docs/specs/semconv/gen-ai/).
OPERATION: Final = "gen_ai.operation.name"
PROVIDER: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"
CHAT: Final = "chat"

# Router attribute keys.
REASON: Final = "router.route.reason"
GROUP: Final = "router.group"
STRATEGY: Final = "router.strategy"
OUTCOME: Final = "router.outcome"
DEPLOYMENT: Final = "router.deployment"


# litellm provider prefixes -> gen_ai.provider.name well-known values (others pass through).
_PROVIDERS: Final[Mapping[str, str]] = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
# Bare model names (no "provider/" prefix): litellm infers the provider; the common families.
_FAMILIES: Final = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("claude", "anthropic"),
    ("gemini", "gcp.gemini"),
    ("mistral", "mistral_ai"),
    ("command", "cohere"),
)
_MAX_MODELS: Final = 4096
"""Bound on the per-model name cache (model strings come from config, but raw pass-through
model strings come from callers)."""


class ModelNames:
    """Provider, request model and span name of a litellm model string, computed once each."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, str, str]] = {}

    def __call__(self, model: str) -> tuple[str, str, str]:
        """``(gen_ai.provider.name, gen_ai.request.model, span name)`` of `model`."""
        found = self._cache.get(model)
        if found is not None:
            return found
        prefix, slash, rest = model.partition("/")
        if slash:
            provider, request_model = _PROVIDERS.get(prefix, prefix), rest
        else:
            provider, request_model = "unknown", model
            for start, family in _FAMILIES:
                if model.startswith(start):
                    provider = family
                    break
        found = (provider, request_model, f"{CHAT} {request_model}")
        if len(self._cache) < _MAX_MODELS:
            self._cache[model] = found
        return found


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _error_class(label: str | None) -> str:
    # AttemptRecord.error is "ClassName status (cause)": the class is a low-cardinality type.
    return label.split(" ", 1)[0] if label else "error"


def safe_label(exc: BaseException) -> str:
    """Class name and status of an error, never its message (a provider's text may echo a
    key or the prompt)."""
    from router._errors import describe  # loaded by the engine already; keeps import light

    return describe(exc)


def exception_attributes(exc: BaseException) -> dict[str, AttributeValue]:
    """The semantic-convention ``exception`` event, without the exception's message.

    The stack trace is the code path only (file, line, function): no source lines, which may
    hold literals, and the final ``Type: message`` line carries the secret-free label instead
    of the message.
    """
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}"
    label = safe_label(exc)
    frames = "".join(
        f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
        for frame in traceback.StackSummary.extract(
            traceback.walk_tb(exc.__traceback__), lookup_lines=False
        )
    )
    return {
        "exception.type": name,
        "exception.message": label,
        "exception.stacktrace": f"Traceback (most recent call last):\n{frames}{name}: {label}",
        "exception.escaped": True,
    }


def transition_event(t: Transition) -> tuple[str, dict[str, AttributeValue]]:
    """The span event (and log event name) of a breaker transition."""
    after = t.after.value
    name = {"open": "router.breaker_opened", "closed": "router.breaker_closed"}.get(
        after, "router.breaker_half_open"
    )
    attributes: dict[str, AttributeValue] = {
        DEPLOYMENT: t.deployment,
        "router.breaker.from": t.before.value,
        "router.breaker.to": after,
        "router.breaker.reason": t.reason,
    }
    if t.open_for is not None:
        attributes["router.breaker.open_for_s"] = t.open_for
    return name, attributes


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append({"type": "text", "content": part.get("text", "")})
            elif isinstance(part, Mapping):
                parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in calls or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        function = function or getattr(call, "function", None)
        name = function.get("name") if isinstance(function, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        if function is not None and name is None:
            name = getattr(function, "name", None)
            arguments = getattr(function, "arguments", None)
        ident = call.get("id") if isinstance(call, Mapping) else getattr(call, "id", None)
        parts.append({"type": "tool_call", "id": ident, "name": name, "arguments": arguments})
    return parts


def input_messages(messages: Any) -> str:
    """OpenAI-format chat messages as the ``gen_ai.input.messages`` JSON value."""
    out: list[dict[str, Any]] = []
    for message in messages or ():
        if not isinstance(message, Mapping):
            continue
        parts = _text_parts(message.get("content"))
        parts.extend(_tool_calls(message.get("tool_calls")))
        if message.get("role") == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": message.get("content"),
                }
            ]
        out.append({"role": str(message.get("role", "user")), "parts": parts})
    return json.dumps(out, ensure_ascii=False, default=str)


def output_messages(output: Any, finish_reasons: Sequence[str]) -> str:
    """A litellm response (or a stream's accumulated text) as ``gen_ai.output.messages``."""
    out: list[dict[str, Any]] = []
    if isinstance(output, str):
        reason = finish_reasons[0] if finish_reasons else None
        out.append({"role": "assistant", "parts": _text_parts(output), "finish_reason": reason})
    else:
        for choice in getattr(output, "choices", None) or ():
            message = getattr(choice, "message", None)
            parts = _text_parts(getattr(message, "content", None))
            parts.extend(_tool_calls(getattr(message, "tool_calls", None)))
            out.append(
                {
                    "role": "assistant",
                    "parts": parts,
                    "finish_reason": getattr(choice, "finish_reason", None),
                }
            )
    return json.dumps(out, ensure_ascii=False, default=str)



class SpanWriter:
    """Writes the span tree of one finished call (see the module docstring).

    Attribute sets are kept to what answers a question (the SDK validates every attribute of
    every span, about 1 µs each): flags and figures that are false or zero by default (hedge,
    hedged, probe, stream, failovers, a failed attempt's cost) are written only when they say
    something (absent means false or zero); the call's group, strategy, candidates, response
    id and finish reasons are on the call span only (its children hang under it), and token
    usage on the serving attempt only (see `_response_attributes`).

    With an SDK provider using the SDK's own processors, spans skip the API's per-span
    machinery (`_DirectSpans`); otherwise they go through the API (`_ApiSpans`).
    """

    __slots__ = ("_api", "_direct", "_names", "capture_content", "tracer")

    def __init__(self, tracer: trace.Tracer, capture_content: bool = False) -> None:
        self.tracer = tracer
        self._names = ModelNames()
        self.capture_content = capture_content
        self._api = _ApiSpans(tracer)
        self._direct = _DirectSpans.for_tracer(tracer)

    def _sink(self) -> _ApiSpans | _DirectSpans:
        direct = self._direct
        if direct is not None and direct.usable():
            return direct
        return self._api

    def write(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        breakers: Mapping[str, str],
        transition_times: Mapping[int, int],
        messages: Any = None,
        output: Any = None,
    ) -> trace.SpanContext:
        """Write the call span and its attempt spans; return the call span's context.

        `breakers` is each deployment's breaker state as last seen (for the call span);
        `transition_times` maps ``id(transition)`` to when the engine reported it (ns), so
        breaker events sit where they happened. `messages` and `output` are recorded only with
        content capture on.
        """
        d = decision
        sink = self._sink()
        parent = otel_context.get_current()
        start = _ns(d.started_at)
        end = start + max(0, _ns(d.elapsed_s))
        served = d.deployment
        response = d.response
        attempts = d.attempts

        served_attempt: AttemptRecord | None = None
        if served is not None:
            for a in attempts:
                if a.deployment == served and a.outcome == "success":
                    served_attempt = a
        reference = served_attempt or (attempts[-1] if attempts else None)

        attributes: dict[str, AttributeValue] = {
            OPERATION: CHAT,
            REQUEST_MODEL: d.group,
            REASON: d.reason,
            GROUP: d.group,
            STRATEGY: d.strategy,
            OUTCOME: d.outcome,
            "router.attempts": len(attempts),
            "router.cost_usd": d.cost_usd,
            "router.deadline.left_s": max(0.0, d.deadline_s - d.elapsed_s),
        }
        failovers = d.failovers
        if failovers:
            attributes["router.failovers"] = failovers
        if d.hedged:
            attributes["router.hedged"] = True
        if reference is not None:
            attributes[PROVIDER] = self._names(reference.model)[0]
        if served is not None:
            attributes[DEPLOYMENT] = served
        if d.stream:
            attributes["router.stream"] = True
        if d.candidates:
            attributes["router.candidates"] = tuple(c.deployment for c in d.candidates)
            attributes["router.candidates.scores"] = tuple(float(c.score) for c in d.candidates)
        if d.skipped:
            attributes["router.skipped"] = tuple(f"{s.deployment}: {s.why}" for s in d.skipped)
        if d.notes:
            attributes["router.notes"] = tuple(d.notes)
        if d.route is not None:
            attributes["router.route"] = d.route
        if d.job is not None:
            attributes["router.job.id"] = d.job
        if d.step is not None:
            attributes["router.step"] = d.step
        if d.escalations:
            attributes["router.escalations"] = tuple(
                f"{e.from_group} -> {e.to_group or 'none'}: {e.trigger} ({e.detail})"
                for e in d.escalations
            )
        if "breaker" in d.reason:
            # A flag to search by: trace UIs (Jaeger) match attribute values exactly, so "calls
            # whose reason mentions a breaker" needs its own attribute.
            attributes["router.breaker.involved"] = True
        if d.events and breakers:
            # Breakers that changed during this call, as last seen (possibly by a later call).
            changed = {t.deployment for t in d.events}
            attributes["router.breaker.states"] = tuple(
                f"{name}={breakers[name]}" for name in sorted(changed) if name in breakers
            )
        if response is not None:
            _response_attributes(attributes, response)
        status: Status | None = None
        events: list[_Event] = []
        if not d.ok or error is not None:
            attributes[ERROR_TYPE] = type(error).__name__ if error is not None else d.outcome
            description = f"{d.outcome}: {safe_label(error)}" if error is not None else d.outcome
            status = Status(StatusCode.ERROR, description)

        handle, context, recording = sink.start(
            f"{CHAT} {d.group}", parent, SpanKind.INTERNAL, attributes, start
        )
        if not recording:  # sampled out: no point building children
            sink.end(handle, end, (), None, None)
            return context

        late: dict[str, AttributeValue] | None = None
        if self.capture_content:
            late = {}
            if messages is not None:
                late[INPUT_MESSAGES] = input_messages(messages)
            if output is not None:
                finish = response.finish_reasons if response is not None else ()
                late[OUTPUT_MESSAGES] = output_messages(output, finish)

        for t in d.events:
            name, event = transition_event(t)
            at = transition_times.get(id(t), end)
            events.append((name, event, min(max(at, start), end)))
        if error is not None:
            events.append(("exception", exception_attributes(error), end))

        if attempts:
            child = sink.child_of(context, parent)
            self._attempts(sink, d, child, start, end, served_attempt, messages, output)
        sink.end(handle, end, events, status, late)
        return context

    def _attempts(
        self,
        sink: _ApiSpans | _DirectSpans,
        d: Decision,
        context: Any,
        start: int,
        end: int,
        served: AttemptRecord | None,
        messages: Any,
        output: Any,
    ) -> None:
        names = self._names
        attempts = d.attempts
        reason = d.reason
        deadline = d.deadline_s
        # The state a deployment's breaker went to last in this call, reported on that
        # deployment's last attempt (the one whose result caused it, or the probe).
        last_of: dict[str, int] = {}
        after: dict[str, str] = {}
        if d.events:
            last_of = {a.deployment: i for i, a in enumerate(attempts)}
            after = {t.deployment: t.after.value for t in d.events}
        previous: AttemptRecord | None = None
        for i, a in enumerate(attempts):
            provider, request_model, span_name = names(a.model)
            a_start = start + _ns(a.started_s)
            if a is served and d.stream:
                a_end = end  # a served stream's request lasts until its last chunk
            else:
                a_end = min(a_start + max(0, _ns(a.latency_s)), max(end, a_start))
            outcome = str(a.outcome)  # an Outcome StrEnum: export its plain value
            attributes: dict[str, AttributeValue] = {
                OPERATION: CHAT,
                PROVIDER: provider,
                REQUEST_MODEL: request_model,
                REASON: reason,
                DEPLOYMENT: a.deployment,
                OUTCOME: outcome,
                "router.attempt": a.number,
                "router.breaker.state": "half_open" if a.probe else "closed",
                "router.deadline.left_s": max(0.0, deadline - a.started_s),
            }
            if a.hedge:
                attributes["router.hedge"] = True
            if a.probe:
                attributes["router.probe"] = True
            if a.cost_usd:
                attributes["router.cost_usd"] = a.cost_usd
            if after and last_of.get(a.deployment) == i and a.deployment in after:
                attributes["router.breaker.state_after"] = after[a.deployment]
            if previous is not None and previous.error and not a.hedge:
                key = (
                    "router.retry.cause"
                    if previous.deployment == a.deployment
                    else "router.failover.cause"
                )
                attributes[key] = f"{previous.deployment} {previous.error}"
            if a.first_chunk_s is not None:
                attributes[TIME_TO_FIRST_CHUNK] = a.first_chunk_s
            if a is served and d.response is not None:
                _response_attributes(attributes, d.response, attempt=True)
            status: Status | None = None
            events: tuple[_Event, ...] = ()
            if not a.outcome.ok:
                error_type = _error_class(a.error) if a.error else outcome
                attributes[ERROR_TYPE] = error_type
                attributes["router.timeout_s"] = a.timeout_s
                label = a.error or outcome
                status = Status(StatusCode.ERROR, label)
                events = (
                    (
                        "exception",
                        {"exception.type": error_type, "exception.message": label},
                        a_end,
                    ),
                )
            late: dict[str, AttributeValue] | None = None
            if a is served and self.capture_content:
                late = {}
                if messages is not None:
                    late[INPUT_MESSAGES] = input_messages(messages)
                if output is not None:
                    finish = d.response.finish_reasons if d.response is not None else ()
                    late[OUTPUT_MESSAGES] = output_messages(output, finish)
            handle, _, _ = sink.start(span_name, context, SpanKind.CLIENT, attributes, a_start)
            sink.end(handle, a_end, events, status, late)
            if not a.hedge:
                previous = a


def _response_attributes(
    attributes: dict[str, AttributeValue], response: ResponseInfo, attempt: bool = False
) -> None:
    # Token usage goes on the serving attempt only: GenAI backends sum gen_ai.usage.* over the
    # spans of a trace, and the call span repeating it would double every count. The response
    # id and finish reasons are on the call span, where a search for them lands; both carry
    # the response model.
    if response.model:
        attributes[RESPONSE_MODEL] = response.model
    if attempt:
        if response.input_tokens is not None:
            attributes[INPUT_TOKENS] = int(response.input_tokens)
        if response.output_tokens is not None:
            attributes[OUTPUT_TOKENS] = int(response.output_tokens)
    else:
        if response.id:
            attributes[RESPONSE_ID] = response.id
        if response.finish_reasons:
            attributes[FINISH_REASONS] = tuple(response.finish_reasons)
