"""router._schema: one serialized form per record, written and read by the same functions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router._decision import (
    CallOutcome,
    CallRecord,
    Escalation,
    JobRecord,
    OutcomeRecord,
    StepRecord,
)
from router._report import load
from router._schema import (
    SchemaError,
    call_from_dict,
    call_line,
    call_record,
    call_to_dict,
    escalation_from_dict,
    escalation_to_dict,
    job_from_dict,
    job_to_dict,
    outcome_from_dict,
    outcome_to_dict,
    step_from_dict,
    step_to_dict,
)
from tests.test_report import make_records

names = st.text(min_size=1, max_size=12)
maybe = st.none() | names
money = st.floats(min_value=0.0, max_value=1e3, allow_nan=False)
seconds = st.floats(min_value=0.0, max_value=1e5, allow_nan=False)
counts = st.integers(min_value=0, max_value=100)
outcomes = st.sampled_from(list(CallOutcome))

escalations = st.builds(
    Escalation, from_group=names, to_group=maybe, trigger=names, detail=st.text(max_size=20),
    cost_usd=money,
)  # fmt: skip
steps = st.builds(
    StepRecord, step=maybe, group=names, route=maybe, deployment=maybe, outcome=outcomes,
    cost_usd=money, latency_s=seconds, escalations=counts, reason=st.text(max_size=40),
)  # fmt: skip
jobs = st.builds(
    JobRecord, id=names, name=names, outcome=outcomes, steps=st.tuples(steps) | st.tuples(),
    cost_usd=money, latency_s=seconds, started_at=seconds, escalations=counts, reviews=counts,
    failures=counts, why=maybe,
)  # fmt: skip

verdicts = st.builds(
    OutcomeRecord, outcome=st.sampled_from(["correct", "wrong", "accepted", "rejected"]) | names,
    ts=seconds, call=maybe, job=maybe, label=maybe, note=maybe,
)  # fmt: skip


@st.composite
def calls(draw: st.DrawFn) -> CallRecord:
    captured = draw(st.booleans())
    return CallRecord(
        ts=draw(seconds), group=draw(maybe), route=draw(maybe), step=draw(maybe),
        job=draw(maybe), deployment=draw(maybe), outcome=draw(outcomes), cost_usd=draw(money),
        latency_s=draw(st.none() | seconds), attempts=draw(counts), failovers=draw(counts),
        hedged=draw(st.booleans()), escalations=tuple(draw(st.lists(escalations, max_size=3))),
        reason=draw(st.text(max_size=40)), error=draw(maybe),
        input_tokens=draw(st.none() | counts), output_tokens=draw(st.none() | counts),
        response_id=draw(maybe), captured=captured,
        prompt=draw(maybe) if captured else None, output=draw(maybe) if captured else None,
    )  # fmt: skip


def through_json(data: dict[str, Any]) -> Any:
    """What a reader gets back from the line the recorder writes."""
    return json.loads(json.dumps(data, separators=(",", ":"), default=str))


@given(calls())
def test_call_record_round_trip(record: CallRecord) -> None:
    assert call_from_dict(through_json(call_to_dict(record))) == record


@given(jobs)
def test_job_record_round_trip(record: JobRecord) -> None:
    assert job_from_dict(through_json(job_to_dict(record))) == record


@given(steps)
def test_step_record_round_trip(record: StepRecord) -> None:
    assert step_from_dict(through_json(step_to_dict(record))) == record


@given(escalations)
def test_escalation_round_trip(record: Escalation) -> None:
    assert escalation_from_dict(through_json(escalation_to_dict(record))) == record


@given(verdicts)
def test_outcome_record_round_trip(record: OutcomeRecord) -> None:
    assert outcome_from_dict(through_json(outcome_to_dict(record))) == record


def test_record_outcome_writes_the_schemas_line(tmp_path: Path) -> None:
    import router

    path = tmp_path / "records.jsonl"
    returned = router.record_outcome("resp-1", "wrong", label="42", note="checked", path=path)
    (written,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert written == returned and written["type"] == "outcome"
    record = outcome_from_dict(written)
    assert (record.call, record.job, record.outcome) == ("resp-1", None, "wrong")
    assert (record.label, record.note) == ("42", "checked") and record.ts > 0
    assert {"type": "outcome", **outcome_to_dict(record)} == written


def test_a_jobs_metadata_is_not_written() -> None:
    record = JobRecord("j", "n", CallOutcome.SUCCESS, (), 0.0, 0.0, 0.0, 0, 0, 0,
                       metadata={"customer": "c1"})  # fmt: skip
    assert "metadata" not in job_to_dict(record)
    assert job_from_dict(job_to_dict(record)) == dataclasses.replace(record, metadata={})


def test_missing_fields_read_as_defaults_and_unknown_outcomes_are_kept() -> None:
    call = call_from_dict({"outcome": "teleported"})
    assert call.outcome == "teleported" and call.cost_usd == 0.0 and call.latency_s is None
    assert call.escalations == () and call.group is None and not call.captured
    job = job_from_dict({"outcome": "success", "steps": [{"outcome": "failed"}]})
    assert job.steps[0].outcome is CallOutcome.FAILED and job.steps[0].reason == ""


@pytest.mark.parametrize(
    ("read", "data", "problem"),
    [
        (call_from_dict, {"cost_usd": 1}, "call record has no 'outcome'"),
        (call_from_dict, {"outcome": "success", "hedged": "yes"},
         "'hedged' should be a bool, not \"yes\""),
        (call_from_dict, {"outcome": "success", "escalations": [{"to": "x"}]},
         "an escalation without a 'trigger'"),
        (job_from_dict, {"outcome": "success", "steps": [{"group": "g"}]},
         "job step has no 'outcome'"),
        (job_from_dict, {"outcome": "success", "steps": "all"},
         "'steps' should be a list, not \"all\""),
        (job_from_dict, [], "a job record must be a JSON object, not list"),
        (outcome_from_dict, {"call": "r1"}, "outcome record has no 'outcome'"),
        (outcome_from_dict, {"outcome": "wrong", "label": 3}, "'label' should be a str, not 3"),
    ],
)  # fmt: skip
def test_a_wrong_field_is_named(read: Any, data: Any, problem: str) -> None:
    with pytest.raises(SchemaError) as caught:
        read(data)
    assert str(caught.value) == problem


async def test_recorder_and_report_read_back_what_the_router_decided(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    decisions, job_records = await make_records(path)
    records = load(path)
    # Every call line reads back as the decision's own record (the error: its class name).
    assert [dataclasses.replace(c, error=None) for c in records.calls] == [
        call_record(d) for d in decisions
    ]
    assert [c.error is not None for c in records.calls] == [d.deployment is None for d in decisions]
    # Every job line reads back as the job's record, steps (and each step's reason) included.
    assert records.jobs == job_records
    assert all(s.reason for job in records.jobs for s in job.steps)


async def test_a_decisions_line_is_its_records_line(tmp_path: Path) -> None:
    decisions, _ = await make_records(tmp_path / "records.jsonl")
    for d in decisions:
        line = call_line(d)
        assert call_to_dict(call_from_dict(line)) == line
        assert list(line) == [f.name for f in dataclasses.fields(CallRecord)][: len(line)]


async def test_the_dashboards_decisions_are_call_lines(tmp_path: Path) -> None:
    from router._serve._metrics import GatewayObserver

    decisions, _ = await make_records(tmp_path / "records.jsonl")
    observer = GatewayObserver()
    errors = [None if d.deployment is not None else TimeoutError("x") for d in decisions]
    for d, error in zip(decisions, errors, strict=True):
        observer.call_finished(d, error)
    shown = observer.recent_decisions()
    assert len(shown) == len(decisions) > 1
    # Newest first; each is the decision's call line (read back by the one reader, it is the
    # decision's record, error class included), plus the deployments tried and stream.
    for entry, d, error in zip(shown, decisions[::-1], errors[::-1], strict=True):
        assert entry.pop("tried") == [a.deployment for a in d.attempts]
        assert entry.pop("stream") is d.stream
        assert entry == call_line(d, error)
        assert call_from_dict(entry) == call_record(d, error)
