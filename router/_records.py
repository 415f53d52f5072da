"""The JSONL recorder: one line per call decision and per job, for `router report`.

Enabled with ``[router] record_file = "router-records.jsonl"`` (or ``ROUTER_RECORD_FILE``).
Lines are appended and flushed one at a time, so several processes may share a file (each
line is one ``write``). Records carry no prompt or response content and no keys.

Line shapes::

    {"type": "call", "ts": ..., "group": ..., "route": ..., "step": ..., "job": ...,
     "deployment": ..., "outcome": ..., "cost_usd": ..., "latency_s": ..., "attempts": n,
     "failovers": n, "hedged": bool, "escalations": [{"from", "to", "trigger", "detail",
     "cost_usd"}], "reason": ..., "input_tokens": ..., "output_tokens": ...}
    {"type": "job", "ts": ..., "id": ..., "name": ..., "outcome": ..., "cost_usd": ...,
     "latency_s": ..., "escalations": n, "reviews": n, "failures": n, "why": ...,
     "steps": [{"step", "group", "route", "deployment", "outcome", "cost_usd", "latency_s",
                "escalations"}]}
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision
    from router._jobs import JobRecord


class Recorder:
    """An observer that appends decision and job records to a JSONL file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        response = decision.response
        self._write(
            {
                "type": "call",
                "ts": decision.started_at,
                "group": decision.group,
                "route": decision.route,
                "step": decision.step,
                "job": decision.job,
                "deployment": decision.deployment,
                "outcome": decision.outcome,
                "cost_usd": decision.cost_usd,
                "latency_s": decision.elapsed_s,
                "attempts": len(decision.attempts),
                "failovers": decision.failovers,
                "hedged": decision.hedged,
                "escalations": [
                    {
                        "from": e.from_group,
                        "to": e.to_group,
                        "trigger": e.trigger,
                        "detail": e.detail,
                        "cost_usd": e.cost_usd,
                    }
                    for e in decision.escalations
                ],
                "reason": decision.reason,
                "error": None if error is None else type(error).__name__,
                "input_tokens": None if response is None else response.input_tokens,
                "output_tokens": None if response is None else response.output_tokens,
            }
        )

    def transition(self, transition: Transition) -> None:
        return None

    def job_finished(self, record: JobRecord) -> None:
        self._write(
            {
                "type": "job",
                "ts": record.started_at,
                "id": record.id,
                "name": record.name,
                "outcome": record.outcome,
                "cost_usd": record.cost_usd,
                "latency_s": record.latency_s,
                "escalations": record.escalations,
                "reviews": record.reviews,
                "failures": record.failures,
                "why": record.why,
                "steps": [
                    {
                        "step": s.step,
                        "group": s.group,
                        "route": s.route,
                        "deployment": s.deployment,
                        "outcome": s.outcome,
                        "cost_usd": s.cost_usd,
                        "latency_s": s.latency_s,
                        "escalations": s.escalations,
                    }
                    for s in record.steps
                ],
            }
        )
