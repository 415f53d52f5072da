"""The observer seam: how the engine tells telemetry what happened, at near-zero cost when off.

The engine calls `call_finished` once per call with its frozen decision record (and the
exception, if the call failed), and `transition` when a breaker changes state. With telemetry
off the engine holds no observer and pays one ``is None`` test per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision
    from router._jobs import Job, JobRecord


class Observer(Protocol):
    """Receives decision records and breaker transitions (spans, metrics, logs, recorders)."""

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        """A call ended: served, failed, or (streams) closed early.

        `messages` and `output` (the request's messages, the response or a stream's text)
        are passed only to observers whose ``capture_content`` attribute is true.
        """

    def transition(self, transition: Transition) -> None:
        """A breaker changed state."""


# Optional observer methods, looked up with getattr:
#   job_started(job) -> object with end(record, error) | None   (e.g. opens the job span)
#   job_finished(record) -> None


class Fanout:
    """Several observers as one; also forwards the optional job hooks."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self.capture_content = any(getattr(o, "capture_content", False) for o in observers)

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        for observer in self.observers:
            if getattr(observer, "capture_content", False):
                observer.call_finished(decision, error, messages=messages, output=output)
            else:
                observer.call_finished(decision, error)

    def transition(self, transition: Transition) -> None:
        for observer in self.observers:
            observer.transition(transition)

    def job_started(self, job: Job) -> Any:
        spans = [
            start(job)
            for o in self.observers
            if (start := getattr(o, "job_started", None)) is not None
        ]
        return spans[0] if len(spans) == 1 else _Ends(spans) if spans else None

    def job_finished(self, record: JobRecord) -> None:
        for observer in self.observers:
            finished = getattr(observer, "job_finished", None)
            if finished is not None:
                finished(record)


class _Ends:
    def __init__(self, spans: list[Any]) -> None:
        self.spans = spans

    def end(self, record: JobRecord, error: BaseException | None) -> None:
        for span in reversed(self.spans):
            span.end(record, error)


class JobAccounting:
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
        from router._jobs import current_job

        job = current_job()
        if job is not None:
            job.add(decision, self.outer)

    def transition(self, transition: Transition) -> None:
        return None
