"""The observer seam: how the engine tells telemetry what happened, at near-zero cost when off.

The engine calls `call_finished` once per call with its frozen decision record (and the
exception, if the call failed), and `transition` when a breaker changes state; a job calls
`job_started` when it opens (which may return a span-like object whose ``end(record, error)``
runs when the job closes) and `job_finished` with its record. With telemetry off the engine
holds no observer and pays one ``is None`` test per call.

Write an observer by subclassing `BaseObserver` (every method a no-op) and overriding what you
need. A job opened with the module-level `router.job` reports to the default observer: the one
the default router was built with (`set_default_observer`, called by router._default), never
looked up from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision, JobRecord
    from router._jobs import Job

__all__ = [
    "BaseObserver",
    "Fanout",
    "JobSpan",
    "Observer",
    "default_observer",
    "set_default_observer",
]


class JobSpan(Protocol):
    """What `Observer.job_started` may return: ended with the job's record."""

    def end(self, record: JobRecord, error: BaseException | None) -> None: ...


class Observer(Protocol):
    """Receives decision records, breaker transitions and jobs (spans, metrics, logs, records)."""

    capture_content: bool
    """Pass the call's messages and output to `call_finished` (content capture is on)."""

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
        are passed only to observers whose ``capture_content`` is true.
        """

    def transition(self, transition: Transition) -> None:
        """A breaker changed state."""

    def job_started(self, job: Job) -> JobSpan | None:
        """A job opened; what is returned is ended when it closes (e.g. the job's span)."""

    def job_finished(self, record: JobRecord) -> None:
        """A job closed with this record."""


class BaseObserver:
    """An observer that does nothing: subclass it and override what you need."""

    capture_content: bool = False

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        return None

    def transition(self, transition: Transition) -> None:
        return None

    def job_started(self, job: Job) -> JobSpan | None:
        return None

    def job_finished(self, record: JobRecord) -> None:
        return None


class Fanout(BaseObserver):
    """Several observers as one."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self.capture_content = any(o.capture_content for o in observers)

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        for observer in self.observers:
            if observer.capture_content:
                observer.call_finished(decision, error, messages=messages, output=output)
            else:
                observer.call_finished(decision, error)

    def transition(self, transition: Transition) -> None:
        for observer in self.observers:
            observer.transition(transition)

    def job_started(self, job: Job) -> JobSpan | None:
        spans = [span for o in self.observers if (span := o.job_started(job)) is not None]
        return spans[0] if len(spans) == 1 else _Ends(spans) if spans else None

    def job_finished(self, record: JobRecord) -> None:
        for observer in self.observers:
            observer.job_finished(record)


class _Ends:
    def __init__(self, spans: list[JobSpan]) -> None:
        self.spans = spans

    def end(self, record: JobRecord, error: BaseException | None) -> None:
        for span in reversed(self.spans):
            span.end(record, error)


_default: Observer | None = None


def set_default_observer(observer: Observer | None) -> None:
    """The observer jobs opened without a router report to (set with the default router)."""
    global _default
    _default = observer


def default_observer() -> Observer | None:
    """The observer set by `set_default_observer` (None until the default router is built)."""
    return _default
