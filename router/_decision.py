"""The decision record: the whole story of one routed call, frozen.

Spans, logs, metrics, reports and tests read this record; nothing recomputes it. Read it from a
response, a stream or an exception with `get_decision`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router._fields import field as read

if TYPE_CHECKING:
    from router._breaker import Transition


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a call on one deployment."""

    number: int
    """1-based position among the call's attempts."""
    deployment: str
    model: str
    outcome: str
    """An `Outcome` value: success, failure, rate_limited, misconfigured, context_window,
    caller_error."""
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
        return cls(
            id=read(response, "id"),
            model=read(response, "model"),
            input_tokens=read(usage, "prompt_tokens"),
            output_tokens=read(usage, "completion_tokens"),
            finish_reasons=tuple(
                str(reason) for c in choices if (reason := read(c, "finish_reason"))
            ),
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
    outcome: str
    """success, caller_error, failed, no_deployment, deadline_exceeded, stream_interrupted,
    or streaming (a stream still being read)."""
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def candidate_names(self) -> tuple[str, ...]:
        return tuple(c.deployment for c in self.candidates)

    @property
    def needs_review(self) -> bool:
        """Escalation was exhausted and the answer still failed its checks."""
        return self.outcome == "needs_review"

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
    def succeeded(self) -> bool:
        return self.outcome in ("success", "streaming")


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
