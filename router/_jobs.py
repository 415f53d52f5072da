"""Jobs: the calls of one workflow (a ticket, a document), accounted together.

``with router.job("ticket-42") as job:`` (or ``async with``) makes every routed call inside it
part of the job; ``metadata={"step": "extract"}`` on a call names its step (and selects its
route through ``when.step``). Closing the job freezes a `JobRecord`: its steps, cost, latency,
escalations and outcome (``success``; ``failed`` if the block raised or `Job.fail` was called;
``needs_review`` if a call needed review or `Job.needs_review` was called). The record goes to
the observers of the routers its calls went through (telemetry, the JSONL recorder). With
telemetry on, the job is the parent span of its calls.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from router._decision import CallOutcome, outcome_ok

if TYPE_CHECKING:
    from router._decision import Decision
    from router._observe import Observer

_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("router_job", default=None)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One call of a job."""

    step: str | None
    group: str
    route: str | None
    deployment: str | None
    outcome: str
    cost_usd: float
    latency_s: float
    escalations: int
    reason: str


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A finished job."""

    id: str
    name: str
    outcome: str
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


class Job:
    """A workflow in progress; see the module docstring."""

    def __init__(self, name: str, *, observer: Observer | None = None, **metadata: Any) -> None:
        self.name = name
        self._observer = observer
        self.id = f"{name}-{uuid.uuid4().hex[:8]}"
        self.metadata = metadata
        self.started_at = time.time()
        self._started = time.perf_counter()
        self.steps: list[StepRecord] = []
        self.observers: list[Observer] = [] if observer is None else [observer]
        self.record: JobRecord | None = None
        self._failed: str | None = None
        self._review: str | None = None
        self._token: contextvars.Token[Job | None] | None = None
        self._span: Any = None

    # -- marking ------------------------------------------------------------------------------

    def fail(self, why: str) -> None:
        """Mark the job failed (for example, a result that cannot be used)."""
        self._failed = why

    def needs_review(self, why: str) -> None:
        """Mark the job for human review."""
        self._review = why

    # -- accounting ---------------------------------------------------------------------------

    def add(self, decision: Decision, observer: Observer | None) -> None:
        """Account one call (the Router does this for every call inside the job)."""
        self.steps.append(
            StepRecord(
                step=decision.step,
                group=decision.group,
                route=decision.route,
                deployment=decision.deployment,
                outcome=decision.outcome,
                cost_usd=decision.cost_usd,
                latency_s=decision.elapsed_s,
                escalations=len(decision.escalations),
                reason=decision.reason,
            )
        )
        if observer is not None and observer not in self.observers:
            self.observers.append(observer)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.steps)

    # -- lifecycle ----------------------------------------------------------------------------

    def _open(self) -> Job:
        self._token = _current.set(self)
        observer = self._observer
        if observer is None:
            from router._default import current_observer

            observer = current_observer()
        start = getattr(observer, "job_started", None)
        if start is not None:
            self._span = start(self)
        return self

    def _close(self, error: BaseException | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        reviews = sum(1 for s in self.steps if s.outcome == CallOutcome.NEEDS_REVIEW)
        failures = sum(1 for s in self.steps if not outcome_ok(s.outcome)) - reviews
        if error is not None or self._failed is not None:
            outcome = "failed"
            why = self._failed or f"{type(error).__name__}: {error}"
        elif reviews or self._review is not None:
            outcome = "needs_review"
            why = self._review or f"{reviews} call(s) need review"
        else:
            outcome, why = "success", None
        self.record = JobRecord(
            id=self.id,
            name=self.name,
            outcome=outcome,
            steps=tuple(self.steps),
            cost_usd=self.cost_usd,
            latency_s=time.perf_counter() - self._started,
            started_at=self.started_at,
            escalations=sum(s.escalations for s in self.steps),
            reviews=reviews,
            failures=failures,
            why=why,
            metadata=dict(self.metadata),
        )
        end = getattr(self._span, "end", None)
        for observer in self.observers:
            finished = getattr(observer, "job_finished", None)
            if finished is not None:
                finished(self.record)
        if end is not None:
            end(self.record, error)

    def __enter__(self) -> Job:
        return self._open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(error)

    async def __aenter__(self) -> Job:
        return self._open()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(error)


def job(name: str, **metadata: Any) -> Job:
    """Group the calls of one workflow: ``with router.job("ticket-42") as job: ...``."""
    return Job(name, **metadata)


def current_job() -> Job | None:
    """The job the current code runs in, if any."""
    return _current.get()
