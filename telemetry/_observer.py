"""`Telemetry`: the engine's observer that turns decision records into spans, metrics and logs.

The engine calls `call_finished` once per call (in the caller's task, so the caller's
OpenTelemetry context is current) and `transition` for each breaker change. Both are guarded:
a telemetry failure is reported once through the standard ``logging`` module and never reaches
the caller's call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TextIO

from opentelemetry import trace

from router._observe import BaseObserver
from router._schema import call_line, job_to_dict
from router.telemetry._logs import make_logger
from router.telemetry._metrics import Instruments, instruments_for
from router.telemetry._spans import SpanWriter, exception_attributes, safe_label, transition_event

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import SpanContext, TracerProvider

    from router._breaker import Transition
    from router._decision import Decision, JobRecord
    from router._jobs import Job

_log = logging.getLogger("telemetry")

_MAX_PENDING_TRANSITIONS = 4096
"""Bound on transitions waiting for their call to finish (a stream abandoned unread never
finishes; its transitions must not be kept forever)."""


def _ids(context: SpanContext | None) -> dict[str, str]:
    if context is None or not context.is_valid:
        return {}
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


class Telemetry(BaseObserver):
    """Spans, metrics and structlog events from the router's decision records.

    - `tracer_provider` / `meter_provider`: where spans and metrics go; None means the global
      providers (the application's, or OpenTelemetry's no-op ones if none is installed).
    - `tracing`, `metrics`, `logs`: switch each signal off.
    - `log_file`: where decision events are written (default: stderr); `log_format`
      ``"auto"`` (JSON unless `log_file` is a terminal), ``"json"`` or ``"console"``;
      `log_level` the least severe level written.
    - `capture_content`: record prompts and completions on spans when the engine passes them
      (``gen_ai.input.messages`` / ``gen_ai.output.messages``); off by default.
    - `owned`: providers this object created and may shut down (never the application's).
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        tracing: bool = True,
        metrics: bool = True,
        logs: bool = True,
        log_file: TextIO | None = None,
        log_format: Literal["auto", "json", "console"] = "auto",
        log_level: str = "info",
        capture_content: bool = False,
        owned: Sequence[Any] = (),
    ) -> None:
        from opentelemetry import metrics as otel_metrics

        self.tracer_provider = tracer_provider or trace.get_tracer_provider()
        self.meter_provider = meter_provider or otel_metrics.get_meter_provider()
        self.capture_content = capture_content
        self._spans: SpanWriter | None = None
        if tracing:
            tracer = self.tracer_provider.get_tracer("router", schema_url=None)
            self._spans = SpanWriter(tracer, capture_content)
        self._metrics: Instruments | None = (
            instruments_for(self.meter_provider) if metrics else None
        )
        self._logger: Any = make_logger(log_file, log_format, log_level) if logs else None
        self._owned = tuple(owned)
        self._times: dict[int, int] = {}
        """``id(transition)`` -> when it was reported (epoch ns), until its call finishes."""
        self._breakers: dict[str, str] = self._metrics.breakers if self._metrics is not None else {}
        self._failed_once = False

    # -- Observer ----------------------------------------------------------------------------

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        """A call ended: write its spans, record its metrics, log its decision event.

        `messages` (the request's chat messages) and `output` (the litellm response, or a
        stream's text) are recorded only with `capture_content`; the engine does not pass them
        today (see the package README).
        """
        try:
            self._call_finished(decision, error, messages, output)
        except Exception:  # telemetry must never break the call it observes
            self._report_failure()

    def transition(self, transition: Transition) -> None:
        """A breaker changed state: remember when (for the span event), count it, log it."""
        try:
            self._transition(transition)
        except Exception:
            self._report_failure()

    # -- jobs (optional observer hooks, see router._observe) --------------------------------------

    def job_started(self, job: Job) -> _JobSpan | None:
        """A job opened: start its span and make it current, so the job's calls are its
        children. Returns the handle the job ends it with (None if tracing is off)."""
        if self._spans is None:
            return None
        try:
            return _JobSpan(self._spans.tracer, job)
        except Exception:
            self._report_failure()
            return None

    def job_finished(self, record: JobRecord) -> None:
        """A job closed: one ``router.job_completed`` / ``router.job_failed`` event."""
        logger = self._logger
        if logger is None:
            return
        try:
            # The job line of a record file (router._schema), as a log event: the job's id as
            # ``job`` (as its calls' events name it), its steps counted, no ``ts`` (structlog
            # stamps the event).
            fields = job_to_dict(record)
            del fields["ts"]
            fields["job"] = fields.pop("id")
            fields["steps"] = len(record.steps)
            fields["latency_s"] = round(record.latency_s, 6)
            if record.why is None:
                del fields["why"]
            fields.update(_ids(trace.get_current_span().get_span_context()))
            if record.outcome == "success":
                logger.info("router.job_completed", **fields)
            else:
                logger.warning(f"router.job_{record.outcome}", **fields)
        except Exception:
            self._report_failure()

    # -- lifecycle -----------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is buffered now (spans, then metrics); True if everything was flushed."""
        ok = True
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                ok = bool(flush(timeout_millis)) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and shut down the providers this object created (never the application's)."""
        for provider in self._owned:
            provider.shutdown()
        self._owned = ()

    # -- internals -----------------------------------------------------------------------------

    def _call_finished(
        self, d: Decision, error: BaseException | None, messages: Any, output: Any
    ) -> None:
        times: dict[int, int] = {}
        if d.events:
            pending = self._times
            for t in d.events:
                at = pending.pop(id(t), None)
                if at is not None:
                    times[id(t)] = at
        context: SpanContext | None = None
        if self._spans is not None:
            context = self._spans.write(
                d,
                error,
                breakers=self._breakers,
                transition_times=times,
                messages=messages,
                output=output,
            )
        failed = error is not None or not d.ok
        error_type = type(error).__name__ if error is not None else (d.outcome if failed else None)
        if self._metrics is not None:
            self._metrics.record(d, error_type)
        logger = self._logger
        if logger is None:
            return
        # The call line of a record file (router._schema), as a log event, plus what only a
        # log has: the deployments tried, whether it streamed, the trace ids; no ``ts``
        # (structlog stamps the event).
        fields = call_line(d, error)
        del fields["ts"]
        fields["latency_s"] = round(d.elapsed_s, 6)
        fields["tried"] = [a.deployment for a in d.attempts]
        fields["stream"] = d.stream
        fields.update(_ids(context))
        if failed:
            if error is not None:
                fields["error"] = safe_label(error)
            fields["error_type"] = error_type
            logger.warning("router.call_failed", **fields)
        else:
            logger.info("router.call_completed", **fields)

    def _transition(self, t: Transition) -> None:
        pending = self._times
        if len(pending) >= _MAX_PENDING_TRANSITIONS:
            pending.clear()  # only their span-event timestamps are lost, never the events
        pending[id(t)] = time.time_ns()
        if self._metrics is not None:
            self._metrics.transition(t)
        else:
            self._breakers[t.deployment] = t.after.value
        logger = self._logger
        if logger is None:
            return
        name, _ = transition_event(t)
        fields: dict[str, Any] = {
            "deployment": t.deployment,
            "from": t.before.value,
            "to": t.after.value,
            "why": t.reason,
            # The call's own span does not exist yet (it is written when the call ends): these
            # ids are the caller's current span, in the same trace as the call's span.
            **_ids(trace.get_current_span().get_span_context()),
        }
        if t.open_for is not None:
            fields["open_for_s"] = round(t.open_for, 3)
        if t.after.value == "open":
            logger.warning(name, **fields)
        else:
            logger.info(name, **fields)

    def _report_failure(self) -> None:
        if not self._failed_once:
            self._failed_once = True
            _log.warning("telemetry: recording a router call failed", exc_info=True)
        else:
            _log.debug("telemetry: recording a router call failed", exc_info=True)


class _JobSpan:
    """The span of one job, current in the job's context until the job ends."""

    __slots__ = ("_span", "_token")

    def __init__(self, tracer: trace.Tracer, job: Job) -> None:
        from opentelemetry import context as otel_context

        attributes: dict[str, Any] = {"router.job.id": job.id, "router.job.name": job.name}
        self._span = tracer.start_span(
            f"job {job.name}",
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=int(job.started_at * 1e9),
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def end(self, record: JobRecord, error: BaseException | None) -> None:
        """Close the span with the job's figures; restore the context it replaced."""
        from opentelemetry import context as otel_context

        span = self._span
        try:
            otel_context.detach(self._token)
        except Exception:  # ended from another context: the span still ends
            _log.debug("telemetry: job context detach failed", exc_info=True)
        span.set_attributes(
            {
                "router.job.outcome": record.outcome,
                "router.job.steps": len(record.steps),
                "router.job.cost_usd": record.cost_usd,
                "router.job.escalations": record.escalations,
                "router.job.reviews": record.reviews,
                "router.job.failures": record.failures,
            }
        )
        if record.outcome != "success":
            # Why, but not an exception's message: that text is the application's, unvetted.
            why = type(error).__name__ if error is not None else (record.why or record.outcome)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{record.outcome}: {why}"))
            if error is not None:
                span.add_event("exception", exception_attributes(error))
        span.end()
