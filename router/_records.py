"""The JSONL recorder: one line per call decision and per job, for `router report`.

Enabled with ``[router] record_file = "router-records.jsonl"`` (or ``ROUTER_RECORD_FILE``).
Lines are appended and flushed one at a time, so several processes may share a file (each
line is one ``write``). Records carry no keys, and no prompt or response content unless
content capture is on (``[telemetry] capture_content = true``): then a call record also
holds ``prompt`` (the user text), ``output`` (the served answer's text) and, in each
escalation, ``answer`` (the text of the answer that failed the check: on a cascade, what the
weak model said), which ``router review`` shows and ``router eval`` reads as a dataset.

Outcomes (`router.record_outcome`) append ``{"type": "outcome", "ts", "call": response id,
"job": job id, "outcome": "correct" | "wrong" | "accepted" | "rejected", "label", "note"}``;
a call record's ``response_id`` is what an outcome's ``call`` refers to.

Line shapes (``router._schema`` writes and reads them; no other module spells them out)::

    {"type": "call", "ts": ..., "group": ..., "route": ..., "step": ..., "job": ...,
     "deployment": ..., "outcome": ..., "cost_usd": ..., "latency_s": ..., "attempts": n,
     "failovers": n, "hedged": bool, "escalations": [{"from", "to", "trigger", "detail",
     "cost_usd"}], "reason": ..., "error": ..., "input_tokens": ..., "output_tokens": ...,
     "response_id": ...}
    {"type": "outcome", "ts": ..., "call": ..., "job": ..., "outcome": ..., "label": ...,
     "note": ...}
    {"type": "job", "ts": ..., "id": ..., "name": ..., "outcome": ..., "cost_usd": ...,
     "latency_s": ..., "escalations": n, "reviews": n, "failures": n, "why": ...,
     "steps": [{"step", "group", "route", "deployment", "outcome", "cost_usd", "latency_s",
                "escalations", "reason"}]}
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from router._observe import BaseObserver
from router._schema import call_line, job_to_dict, outcome_to_dict

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision, JobRecord, OutcomeRecord


class Recorder(BaseObserver):
    """An observer that appends decision and job records to a JSONL file."""

    def __init__(self, path: str | os.PathLike[str], *, capture_content: bool = False) -> None:
        self.path = os.fspath(path)
        self.capture_content = capture_content
        """When true the engine hands this recorder the messages and output (see module)."""
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
        if self.capture_content:
            from router._learned import request_text

            prompt = request_text({"messages": messages})[0] if messages else None
            line = call_line(
                decision, error, captured=True, prompt=prompt, output=_output_text(output)
            )
        else:
            line = call_line(decision, error)
        self._write({"type": "call", **line})

    def outcome(self, record: OutcomeRecord) -> None:
        """Append an outcome line (see `router.record_outcome`)."""
        self._write({"type": "outcome", **outcome_to_dict(record)})

    def transition(self, transition: Transition) -> None:
        return None

    def job_finished(self, record: JobRecord) -> None:
        self._write({"type": "job", **job_to_dict(record)})


def _output_text(output: Any) -> str | None:
    """The served answer's text: a response's first choice, or a stream's collected text."""
    if output is None:
        return None
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(part) for part in output)
    choices = getattr(output, "choices", None) or ()
    message = getattr(choices[0], "message", None) if choices else None
    content = getattr(message, "content", None)
    return None if content is None else str(content)
