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
from types import TracebackType
from typing import TYPE_CHECKING, Any

from router._decision import CallOutcome, JobRecord, StepRecord, outcome_ok
from router._observe import BaseObserver, default_observer

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision
    from router._observe import JobSpan, Observer

__all__ = ["Job", "JobAccounting", "JobRecord", "StepRecord", "current_job", "job"]

_current: contextvars.ContextVar[Job | None] = contextvars.ContextVar("router_job", default=None)


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
        self._span: JobSpan | None = None

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
        observer = self._observer if self._observer is not None else default_observer()
        if observer is not None:
            self._span = observer.job_started(self)
        return self

    def _close(self, error: BaseException | None) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        reviews = sum(1 for s in self.steps if s.outcome == CallOutcome.NEEDS_REVIEW)
        failures = sum(1 for s in self.steps if not outcome_ok(s.outcome)) - reviews
        if error is not None or self._failed is not None:
            outcome = CallOutcome.FAILED
            why = self._failed or f"{type(error).__name__}: {error}"
        elif reviews or self._review is not None:
            outcome = CallOutcome.NEEDS_REVIEW
            why = self._review or f"{reviews} call(s) need review"
        else:
            outcome, why = CallOutcome.SUCCESS, None
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
        for observer in self.observers:
            observer.job_finished(self.record)
        if self._span is not None:
            self._span.end(self.record, error)

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


class JobAccounting(BaseObserver):
    """Adds every finished call to the job it ran in (a contextvar read when there is none)."""

    def __init__(self, outer: Observer | None = None) -> None:
        self.outer = outer

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        job = _current.get()
        if job is not None:
            job.add(decision, self.outer)

    def transition(self, transition: Transition) -> None:
        return None
