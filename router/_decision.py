"""The decision record: the whole story of one routed call, frozen.

Spans, logs, metrics, reports and tests read this record; nothing recomputes it. Read it from a
response, a stream or an exception with `get_decision`.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from router._fields import field as read

if TYPE_CHECKING:
    from router._breaker import Transition


_Record = TypeVar("_Record", bound=type)


def _quick_init(cls: _Record) -> _Record:
    """Give a frozen, slotted dataclass an ``__init__`` that fills its slots directly.

    The ``__init__`` a frozen dataclass generates assigns each field through
    ``object.__setattr__`` (a lookup and a call per field); the slots' own descriptors make
    the same assignment for about two thirds of the cost. Same signature, defaults and
    instances, still frozen (assignment raises as before). Used on the records built for every
    call (attempt, response, candidate, decision), where it saves about 2 µs a call.
    """
    namespace: dict[str, Any] = {}
    params: list[str] = []
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields and defaults")
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        lines.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines) + "\n"
    exec(source, namespace)  # as dataclasses builds __init__: from the class's own fields
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {f.name: f.type for f in dataclasses.fields(cls)} | {"return": None}
    cls.__init__ = init  # type: ignore[misc]
    return cls


class Outcome(enum.StrEnum):
    """How an attempt ended, as far as routing is concerned."""

    SUCCESS = "success"
    FAILURE = "failure"
    RATE_LIMITED = "rate_limited"
    MISCONFIGURED = "misconfigured"
    CONTEXT_WINDOW = "context_window"
    CALLER_ERROR = "caller_error"
    NOT_PROVIDER = "not_provider"
    """Not the provider's doing (a caller's argument, a bug): raised at once, counts for
    nothing (no health, breaker, pause or retry); see `router._errors.from_provider`."""
    CANCELLED = "cancelled"
    """Not a classification: an attempt cancelled because another won (or the caller left)."""

    @property
    def ok(self) -> bool:
        """Not a failure of the attempt: it succeeded, or was cancelled unfinished."""
        return self in _ATTEMPT_OK


_ATTEMPT_OK: frozenset[str] = frozenset({Outcome.SUCCESS, Outcome.CANCELLED})


class CallOutcome(enum.StrEnum):
    """How a routed call ended (`Decision.outcome`); `ok` says whether that is a failure."""

    SUCCESS = "success"
    """Served (for a stream: read to its end)."""
    STREAMING = "streaming"
    """A stream whose first chunk arrived and which is still being read."""
    CLOSED_EARLY = "closed_early"
    """A stream the caller stopped reading before its end."""
    NEEDS_REVIEW = "needs_review"
    """Served, but the answer still failed its checks when escalation ran out."""
    CALLER_ERROR = "caller_error"
    """The request itself was refused (it would fail anywhere)."""
    FAILED = "failed"
    """Every attempt allowed failed."""
    NO_DEPLOYMENT = "no_deployment"
    """No candidate could be tried (breakers open, paused, misconfigured)."""
    DEADLINE_EXCEEDED = "deadline_exceeded"
    BUDGET_EXHAUSTED = "budget_exhausted"
    """The retry budget refused another attempt."""
    STREAM_INTERRUPTED = "stream_interrupted"
    """A committed stream broke, stalled past the deadline or ended without a finish_reason."""
    CANCELLED = "cancelled"
    """The caller cancelled the call."""
    ERROR = "error"
    """An exception the router did not expect (a bug, or a callback's)."""

    @property
    def ok(self) -> bool:
        """Not a failure: served, still streaming, or closed early by the caller.

        The one definition of a good outcome (spans, metrics, logs, jobs and reports use it).
        ``needs_review`` is not ok: the answer failed its checks.
        """
        return self in _OK


_OK: frozenset[str] = frozenset(
    {CallOutcome.SUCCESS, CallOutcome.STREAMING, CallOutcome.CLOSED_EARLY}
)


def outcome_ok(outcome: str) -> bool:
    """`CallOutcome.ok` for an outcome read back as a plain string (e.g. from JSONL)."""
    return outcome in _OK


@_quick_init
@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a call on one deployment."""

    number: int
    """1-based position among the call's attempts."""
    deployment: str
    model: str
    outcome: Outcome
    """An `Outcome`: success, failure, rate_limited, misconfigured,
    context_window, caller_error, or cancelled (another attempt won, or the caller gave up)."""
    latency_s: float
    timeout_s: float
    """The timeout this attempt ran under: min(deployment timeout, deadline left)."""
    error: str | None = None
    """Error class and status, e.g. ``ServiceUnavailableError 503`` (never message text)."""
    cost_usd: float = 0.0
    first_chunk_s: float | None = None
    """Streams: time to the first chunk."""
    hedge: bool = False
    """This attempt was a hedge, started while an earlier one was still out."""
    probe: bool = False
    """This attempt was the half-open breaker's single probe."""
    started_s: float = 0.0
    """When the attempt started, in seconds after the call started."""


@_quick_init
@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What the served response said about itself (GenAI span attributes, reports)."""

    id: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, response: Any) -> ResponseInfo:
        """Read a litellm `ModelResponse` (missing parts stay None)."""
        usage = read(response, "usage")
        choices = read(response, "choices") or ()
        if type(choices) is list and len(choices) == 1:  # most responses: no generator
            reason = read(choices[0], "finish_reason")
            reasons: tuple[str, ...] = (str(reason),) if reason else ()
        else:
            reasons = tuple(str(reason) for c in choices if (reason := read(c, "finish_reason")))
        if usage is None:
            prompt = completion = None
        else:
            prompt = read(usage, "prompt_tokens")
            completion = read(usage, "completion_tokens")
        return cls(
            id=read(response, "id"),
            model=read(response, "model"),
            input_tokens=prompt,
            output_tokens=completion,
            finish_reasons=reasons,
        )


@dataclass(frozen=True, slots=True)
class Escalation:
    """An answer that was not good enough, and where the call went next."""

    from_group: str
    to_group: str | None
    """None when escalation was exhausted (the call then needs human review)."""
    trigger: str
    detail: str
    cost_usd: float
    """What the rejected answer cost."""
    answer: str | None = None
    """The rejected answer's text: only when content capture is on (``[telemetry]
    capture_content``), for the record file (`router review` shows what the weaker model
    said); None otherwise."""


@_quick_init
@dataclass(frozen=True, slots=True)
class Candidate:
    """A deployment the strategy ranked, with its key (lower ranked first; see router._select)."""

    deployment: str
    score: float


@dataclass(frozen=True, slots=True)
class Skip:
    """A candidate that was not tried, and why."""

    deployment: str
    why: str


@_quick_init
@dataclass(frozen=True, slots=True)
class Decision:
    """Why a call went where it went, and what happened there."""

    group: str
    """The model name the caller passed (a group, a deployment name, or a raw litellm model)."""
    strategy: str
    candidates: tuple[Candidate, ...]
    """Eligible deployments in the order the strategy ranked them, with their keys."""
    skipped: tuple[Skip, ...]
    attempts: tuple[AttemptRecord, ...]
    deployment: str | None
    """The deployment that served the call, or None if it failed."""
    outcome: CallOutcome
    """A `CallOutcome` (see there for every value); `ok` says whether it is a failure."""
    reason: str
    """One human sentence: why this route, what failed over and why."""
    cost_usd: float
    elapsed_s: float
    deadline_s: float
    stream: bool = False
    events: tuple[Transition, ...] = ()
    """Breaker transitions this call caused or saw."""
    notes: tuple[str, ...] = ()
    """Anything else worth knowing: a hedge skipped, the retry budget spent, a recovery wait."""
    started_at: float = 0.0
    """Wall-clock time (epoch seconds) the call started, for spans and logs."""
    response: ResponseInfo | None = None
    """What the served response said about itself (None unless served)."""
    route: str | None = None
    """The ``[[routes]]`` entry that chose the group (None for an explicit group)."""
    escalations: tuple[Escalation, ...] = ()
    job: str | None = None
    step: str | None = None
    """The workflow job and step the call belonged to (see `router.job`)."""

    @property
    def candidate_names(self) -> tuple[str, ...]:
        return tuple(c.deployment for c in self.candidates)

    @property
    def needs_review(self) -> bool:
        """Escalation was exhausted and the answer still failed its checks."""
        return self.outcome == CallOutcome.NEEDS_REVIEW

    @property
    def hedged(self) -> bool:
        return any(a.hedge for a in self.attempts)

    @property
    def failovers(self) -> int:
        """Attempts after the first that went to a different deployment than the one before."""
        count = 0
        tried = [a for a in self.attempts if a.outcome != "cancelled" and not a.hedge]
        for before, after in itertools.pairwise(tried):
            if before.deployment != after.deployment:
                count += 1
        return count

    @property
    def ok(self) -> bool:
        """Not a failure (see `CallOutcome.ok`)."""
        return self.outcome in _OK


def get_decision(obj: object) -> Decision | None:
    """The decision record of a routed response, stream or exception (None if it has none).

    Responses carry it in ``response._hidden_params["router_decision"]``; streams as
    ``stream.decision`` (final once the stream is exhausted); exceptions as
    ``exc.router_decision``.
    """
    found = getattr(obj, "router_decision", None)
    if isinstance(found, Decision):
        return found
    found = getattr(obj, "decision", None)
    if isinstance(found, Decision):
        return found
    hidden = getattr(obj, "_hidden_params", None)
    if isinstance(hidden, dict):
        found = hidden.get("router_decision")
        if isinstance(found, Decision):
            return found
    return None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What a record file keeps of one call: its `Decision` summed up, as ``router report``
    reads it back (`router._schema`: `call_line` writes it from a decision, `call_from_dict`
    reads it, `call_record` is both at once)."""

    ts: float
    """When the call started (epoch seconds)."""
    group: str | None
    route: str | None
    step: str | None
    job: str | None
    deployment: str | None
    outcome: CallOutcome
    cost_usd: float
    latency_s: float | None
    attempts: int
    failovers: int
    hedged: bool
    escalations: tuple[Escalation, ...]
    reason: str
    error: str | None = None
    """The class name of the error the caller got (None if served)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    response_id: str | None = None
    """The served response's id: what an outcome line's ``call`` refers to."""
    captured: bool = False
    """Content capture was on: `prompt` and `output` are recorded (either may still be None)."""
    prompt: str | None = None
    output: str | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One call of a job."""

    step: str | None
    group: str
    route: str | None
    deployment: str | None
    outcome: CallOutcome
    cost_usd: float
    latency_s: float
    escalations: int
    reason: str


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A finished job."""

    id: str
    name: str
    outcome: CallOutcome
    """success, failed or needs_review."""
    steps: tuple[StepRecord, ...]
    cost_usd: float
    latency_s: float
    started_at: float
    escalations: int
    reviews: int
    failures: int
    why: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What the application (or a person) said of a call or a job afterwards: an outcome line
    of the record file (`router.record_outcome` writes it; `router._schema` serializes it)."""

    outcome: str
    """correct / wrong (the application's check) or accepted / rejected (a human's review);
    a string a newer router may write is kept as it is."""
    ts: float = 0.0
    call: str | None = None
    """The response id of the call it is about (a call line's ``response_id``)."""
    job: str | None = None
    """The job id: the outcome of the whole job when `call` is None."""
    label: str | None = None
    """The right answer or class, when known (kept for the next fit)."""
    note: str | None = None
