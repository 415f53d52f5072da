"""The one serialized form of each record: what goes into a record file and a log event.

Every writer and reader of these shapes goes through this module, so a field is named once:

- the recorder (`router._records`) writes ``{"type": "call", **call_line(decision)}`` and
  ``{"type": "job", **job_to_dict(record)}`` lines;
- `router.record_outcome` writes ``{"type": "outcome", **outcome_to_dict(record)}`` lines;
- ``router report``, ``router review`` and ``router eval`` (record files as datasets) read
  them back with `call_from_dict` / `job_from_dict` / `outcome_from_dict`, which check every
  field (a wrong value is a `SchemaError` naming it) and give typed records;
- the telemetry observer's ``router.call_*`` and ``router.job_*`` log events are the same dicts
  (`router.telemetry._observer`) with what only a log has: trace ids, the deployments tried, an
  error's status beside its class; a job's id as ``job`` and its steps counted; no ``ts``
  (structlog stamps each event).

The records are `router._decision`'s: a `CallRecord` (what a file keeps of one call: the
`Decision` summed up, plus the captured content), `JobRecord` with its `StepRecord`s,
`Escalation`, and `OutcomeRecord` (what the application said of a call or job afterwards).
``from_dict(to_dict(r)) == r`` for each (tests/test_schema.py), except a job's ``metadata``,
which is the application's own and is never written.

Readers are lenient where files written by hand (or by an older router) leave a field out: a
missing or null field reads as its default (0 for counts and costs, None for names, latencies
and token counts); only ``outcome`` is required. Outcome strings that a newer router may write
and this one does not know are kept as they are.

Spans and metrics are not serializations of these records: their names are OpenTelemetry's
GenAI semantic conventions (and ``router.*``), written straight from the `Decision` on the hot
path (`router.telemetry._spans`, `_metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from router._decision import (
    CallOutcome,
    CallRecord,
    Escalation,
    JobRecord,
    OutcomeRecord,
    StepRecord,
)

if TYPE_CHECKING:
    from router._decision import Decision

__all__ = [
    "SchemaError",
    "call_from_dict",
    "call_line",
    "call_record",
    "call_to_dict",
    "escalation_from_dict",
    "escalation_to_dict",
    "job_from_dict",
    "job_to_dict",
    "outcome_from_dict",
    "outcome_to_dict",
    "step_from_dict",
    "step_to_dict",
]


class SchemaError(ValueError):
    """A serialized record whose fields are wrong: one line saying which and why."""


# --- writing ---------------------------------------------------------------------------------


def escalation_to_dict(e: Escalation, captured: bool = False) -> dict[str, Any]:
    """An escalation's fields (``answer``, the rejected answer's text, only when `captured`:
    a log event never carries it)."""
    out: dict[str, Any] = {
        "from": e.from_group,
        "to": e.to_group,
        "trigger": e.trigger,
        "detail": e.detail,
        "cost_usd": e.cost_usd,
    }
    if captured and e.answer is not None:
        out["answer"] = e.answer
    return out


_CALL_KEYS = (
    "ts", "group", "route", "step", "job", "deployment", "outcome", "cost_usd", "latency_s",
    "attempts", "failovers", "hedged", "escalations", "reason", "error", "input_tokens",
    "output_tokens", "response_id",
)  # fmt: skip
"""A call line's fields, in order (each is the `CallRecord` field of the same name); ``prompt``
and ``output`` follow when content was captured."""


def call_line(
    d: Decision,
    error: BaseException | None = None,
    *,
    captured: bool = False,
    prompt: str | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """The call line of a decision (what `call_to_dict` writes of its `call_record`).

    Built straight from the decision, not through a `CallRecord`: the recorder and every log
    event call this, and a frozen record of 21 fields costs microseconds to build.
    """
    response = d.response
    out: dict[str, Any] = {
        "ts": d.started_at,
        "group": d.group,
        "route": d.route,
        "step": d.step,
        "job": d.job,
        "deployment": d.deployment,
        "outcome": d.outcome,
        "cost_usd": d.cost_usd,
        "latency_s": d.elapsed_s,
        "attempts": len(d.attempts),
        "failovers": d.failovers,
        "hedged": d.hedged,
        "escalations": [escalation_to_dict(e, captured) for e in d.escalations],
        "reason": d.reason,
        "error": None if error is None else type(error).__name__,
        "input_tokens": None if response is None else response.input_tokens,
        "output_tokens": None if response is None else response.output_tokens,
        "response_id": None if response is None else response.id,
    }
    if captured:
        out["prompt"] = prompt
        out["output"] = output
    return out


def call_record(
    d: Decision,
    error: BaseException | None = None,
    *,
    captured: bool = False,
    prompt: str | None = None,
    output: str | None = None,
) -> CallRecord:
    """The `CallRecord` a record file keeps of a decision (its line, read back)."""
    line = call_line(d, error, captured=captured, prompt=prompt, output=output)
    return call_from_dict(line)


def call_to_dict(c: CallRecord) -> dict[str, Any]:
    """A call line's fields (``prompt``, ``output`` and each escalation's ``answer`` only when
    content was captured)."""
    out: dict[str, Any] = {key: getattr(c, key) for key in _CALL_KEYS}
    out["escalations"] = [escalation_to_dict(e, c.captured) for e in c.escalations]
    if c.captured:
        out["prompt"] = c.prompt
        out["output"] = c.output
    return out


def step_to_dict(s: StepRecord) -> dict[str, Any]:
    return {
        "step": s.step,
        "group": s.group,
        "route": s.route,
        "deployment": s.deployment,
        "outcome": s.outcome,
        "cost_usd": s.cost_usd,
        "latency_s": s.latency_s,
        "escalations": s.escalations,
        "reason": s.reason,
    }


def job_to_dict(r: JobRecord) -> dict[str, Any]:
    """A job line's fields (not ``metadata``: the application's own, never written)."""
    return {
        "ts": r.started_at,
        "id": r.id,
        "name": r.name,
        "outcome": r.outcome,
        "cost_usd": r.cost_usd,
        "latency_s": r.latency_s,
        "escalations": r.escalations,
        "reviews": r.reviews,
        "failures": r.failures,
        "why": r.why,
        "steps": [step_to_dict(s) for s in r.steps],
    }


def outcome_to_dict(r: OutcomeRecord) -> dict[str, Any]:
    """An outcome line's fields (every one written, None included: the documented shape)."""
    return {
        "ts": r.ts,
        "call": r.call,
        "job": r.job,
        "outcome": r.outcome,
        "label": r.label,
        "note": r.note,
    }


# --- reading ---------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_KINDS: dict[str, Callable[[object], bool]] = {
    "str": lambda v: isinstance(v, str),
    "number": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
}

# Each record's fields in the order they are checked: name -> (kind, required).
_CALL: dict[str, tuple[str, bool]] = {
    "outcome": ("str", True),
    "route": ("str", False),
    "step": ("str", False),
    "group": ("str", False),
    "deployment": ("str", False),
    "cost_usd": ("number", False),
    "latency_s": ("number", False),
    "failovers": ("number", False),
    "hedged": ("bool", False),
    "escalations": ("list", False),
    "ts": ("number", False),
    "job": ("str", False),
    "attempts": ("number", False),
    "reason": ("str", False),
    "error": ("str", False),
    "input_tokens": ("number", False),
    "output_tokens": ("number", False),
    "response_id": ("str", False),
    "prompt": ("str", False),
    "output": ("str", False),
}
_JOB: dict[str, tuple[str, bool]] = {
    "outcome": ("str", True),
    "cost_usd": ("number", False),
    "latency_s": ("number", False),
    "escalations": ("number", False),
    "ts": ("number", False),
    "id": ("str", False),
    "name": ("str", False),
    "reviews": ("number", False),
    "failures": ("number", False),
    "why": ("str", False),
    "steps": ("list", False),
}
_STEP: dict[str, tuple[str, bool]] = {
    "outcome": ("str", True),
    "step": ("str", False),
    "group": ("str", False),
    "route": ("str", False),
    "deployment": ("str", False),
    "cost_usd": ("number", False),
    "latency_s": ("number", False),
    "escalations": ("number", False),
    "reason": ("str", False),
}
_OUTCOME: dict[str, tuple[str, bool]] = {
    "outcome": ("str", True),
    "ts": ("number", False),
    "call": ("str", False),
    "job": ("str", False),
    "label": ("str", False),
    "note": ("str", False),
}
_ESCALATION: dict[str, tuple[str, bool]] = {
    "trigger": ("str", True),
    "from": ("str", False),
    "to": ("str", False),
    "detail": ("str", False),
    "cost_usd": ("number", False),
    "answer": ("str", False),
}


def _check(data: object, fields: Mapping[str, tuple[str, bool]], what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise SchemaError(f"a {what} must be a JSON object, not {type(data).__name__}")
    for name, (kind, required) in fields.items():
        value = data.get(name)
        if value is None:
            if required:
                raise SchemaError(f"{what} has no {name!r}")
            continue
        if not _KINDS[kind](value):
            raise SchemaError(f"{name!r} should be a {kind}, not {json.dumps(value)[:40]}")
    return data


def _outcome(value: str) -> CallOutcome:
    try:
        return CallOutcome(value)
    except ValueError:  # a newer router's outcome: kept as the string it is
        return cast(CallOutcome, value)


def escalation_from_dict(data: object) -> Escalation:
    if not isinstance(data, Mapping) or not isinstance(data.get("trigger"), str):
        raise SchemaError("an escalation without a 'trigger'")
    d = _check(data, _ESCALATION, "escalation")
    return Escalation(
        from_group=d.get("from") or "",
        to_group=d.get("to"),
        trigger=d["trigger"],
        detail=d.get("detail") or "",
        cost_usd=d.get("cost_usd") or 0.0,
        answer=d.get("answer"),
    )


def call_from_dict(data: object) -> CallRecord:
    """A call line's record; `SchemaError` if a field is wrong (see the module docstring)."""
    d = _check(data, _CALL, "call record")
    escalations = tuple(escalation_from_dict(e) for e in d.get("escalations") or ())
    return CallRecord(
        ts=d.get("ts") or 0.0,
        group=d.get("group"),
        route=d.get("route"),
        step=d.get("step"),
        job=d.get("job"),
        deployment=d.get("deployment"),
        outcome=_outcome(d["outcome"]),
        cost_usd=d.get("cost_usd") or 0.0,
        latency_s=d.get("latency_s"),
        attempts=int(d.get("attempts") or 0),
        failovers=int(d.get("failovers") or 0),
        hedged=bool(d.get("hedged")),
        escalations=escalations,
        reason=d.get("reason") or "",
        error=d.get("error"),
        input_tokens=d.get("input_tokens"),
        output_tokens=d.get("output_tokens"),
        response_id=d.get("response_id"),
        captured="prompt" in d or "output" in d,
        prompt=d.get("prompt"),
        output=d.get("output"),
    )


def step_from_dict(data: object) -> StepRecord:
    d = _check(data, _STEP, "job step")
    return StepRecord(
        step=d.get("step"),
        group=d.get("group") or "",
        route=d.get("route"),
        deployment=d.get("deployment"),
        outcome=_outcome(d["outcome"]),
        cost_usd=d.get("cost_usd") or 0.0,
        latency_s=d.get("latency_s") or 0.0,
        escalations=int(d.get("escalations") or 0),
        reason=d.get("reason") or "",
    )


def job_from_dict(data: object) -> JobRecord:
    """A job line's record; `SchemaError` if a field is wrong (see the module docstring)."""
    d = _check(data, _JOB, "job record")
    return JobRecord(
        id=d.get("id") or "",
        name=d.get("name") or "",
        outcome=_outcome(d["outcome"]),
        steps=tuple(step_from_dict(s) for s in d.get("steps") or ()),
        cost_usd=d.get("cost_usd") or 0.0,
        latency_s=d.get("latency_s") or 0.0,
        started_at=d.get("ts") or 0.0,
        escalations=int(d.get("escalations") or 0),
        reviews=int(d.get("reviews") or 0),
        failures=int(d.get("failures") or 0),
        why=d.get("why"),
    )


def outcome_from_dict(data: object) -> OutcomeRecord:
    """An outcome line's record; `SchemaError` if a field is wrong (an outcome string this
    router does not know is kept: the reader decides what it means)."""
    d = _check(data, _OUTCOME, "outcome record")
    return OutcomeRecord(
        outcome=d["outcome"],
        ts=d.get("ts") or 0.0,
        call=d.get("call"),
        job=d.get("job"),
        label=d.get("label"),
        note=d.get("note"),
    )
