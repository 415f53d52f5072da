"""The runnable examples: each runs in-process against its own fleet and ends as designed.

Each example's ``main`` checks every job's path itself and returns 1 if one strayed; these
tests also read the JSONL records and the printed metrics, so a silent change of what the
example demonstrates (no escalation, no breaker, no review package) fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from examples.document_intake import run as document_intake
from examples.research_agent import run as research_agent
from examples.support_agent import run as support_agent

ROOT = Path(__file__).resolve().parents[1]


def records(path: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(call lines, job lines by job name) of a records file."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    calls = [line for line in lines if line["type"] == "call"]
    jobs = {line["name"]: line for line in lines if line["type"] == "job"}
    return calls, jobs


def calls_of(calls: list[dict[str, Any]], jobs: dict[str, Any], name: str) -> list[Any]:
    return [c for c in calls if c["job"] == jobs[name]["id"]]


def test_support_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "support.jsonl"
    assert support_agent.main(["--records", str(path)]) == 0
    out = capsys.readouterr().out
    assert "all 10 jobs ended as designed" in out
    assert "human-review rate       20%" in out
    calls, jobs = records(path)
    assert len(jobs) == 10 and len(calls) == 10
    # The $240 refund: routed to the strong model by the classifier, held for approval.
    refund = jobs["ticket-T-107"]
    assert refund["outcome"] == "needs_review" and refund["reviews"] == 1
    (call,) = calls_of(calls, jobs, "ticket-T-107")
    assert (call["route"], call["group"], call["deployment"]) == (
        "ticket-kind",
        "strong",
        "support-pro",
    )
    assert call["escalations"][0]["trigger"] == "validator:approval"
    assert call["escalations"][0]["to"] is None
    approvals = path.with_name("support-approvals.jsonl")
    packages = [json.loads(line) for line in approvals.read_text().splitlines()]
    assert [p["ticket"] for p in packages] == ["T-107", "T-108"]
    assert packages[0]["action"] == "ACTION: refund $240.00"
    assert "exceeds the $50.00 auto-approve limit" in packages[0]["why_review"]
    # The small model's weak answers went up, each for its own reason.
    triggers = {
        name: [e["trigger"] for c in calls_of(calls, jobs, name) for e in c["escalations"]]
        for name in ("ticket-T-103", "ticket-T-104", "ticket-T-105")
    }
    assert triggers == {
        "ticket-T-103": ["low_confidence"],
        "ticket-T-104": ["refusal"],
        "ticket-T-105": ["length"],
    }
    assert calls_of(calls, jobs, "ticket-T-109")[0]["route"] == "long-history"
    assert calls_of(calls, jobs, "ticket-T-101")[0]["deployment"] == "support-mini"


def test_document_intake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "intake.jsonl"
    assert document_intake.main(["--records", str(path)]) == 0
    out = capsys.readouterr().out
    assert "all 9 jobs ended as designed" in out
    calls, jobs = records(path)
    assert {name: job["outcome"] for name, job in jobs.items()} == {
        **{f"doc-INV-00{i}": "success" for i in (1, 2, 3, 4, 5, 6, 8)},
        "doc-INV-007": "needs_review",
        "doc-DN-009": "failed",
    }

    def extraction(name: str) -> dict[str, Any]:
        (call,) = [c for c in calls_of(calls, jobs, name) if c["step"] == "extract"]
        return call  # type: ignore[no-any-return]

    # Wrong totals from the cheap model: escalated on the totals validator, fixed upstairs.
    wrong = extraction("doc-INV-005")
    assert [(e["from"], e["to"], e["trigger"]) for e in wrong["escalations"]] == [
        ("extract-cheap", "extract-strong", "validator:totals")
    ]
    assert wrong["deployment"] == "extract-pro" and wrong["outcome"] == "success"
    assert extraction("doc-INV-003")["escalations"][0]["trigger"] == "invalid_json"
    assert extraction("doc-INV-004")["escalations"][0]["trigger"] == "schema"
    # An invoice that does not add up on any model: both answers paid for, then a human.
    bad = extraction("doc-INV-007")
    assert [e["to"] for e in bad["escalations"]] == ["extract-strong", None]
    assert bad["outcome"] == "needs_review"
    assert extraction("doc-INV-006")["route"] == "scanned"
    assert extraction("doc-INV-001")["deployment"] == "extract-mini"
    assert [c["step"] for c in calls_of(calls, jobs, "doc-DN-009")] == ["classify"]


def test_research_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "research.jsonl"
    assert research_agent.main(["--records", str(path)]) == 0
    out = capsys.readouterr().out
    assert "all 6 jobs ended as designed" in out
    # Both search tools served, and the failing one's breaker opened, then closed again.
    assert "fastsearch 9 call(s), deepsearch 6 call(s)" in out
    assert "Q4: fastsearch open (3 consecutive failures" in out
    assert "Q6: fastsearch closed (probe succeeded)" in out
    calls, jobs = records(path)
    assert all(job["outcome"] == "success" for job in jobs.values()) and len(jobs) == 6
    synthesis = [c for c in calls if c["step"] == "synthesize"]
    assert len(synthesis) == 3
    assert {(c["route"], c["group"], c["deployment"]) for c in synthesis} == {
        ("synthesis", "deep", "research-pro")
    }
    answers = [c for c in calls if c["step"] == "answer"]
    assert {c["group"] for c in answers} == {"fast"} and len(answers) == 3
    plans = {c["job"]: c for c in calls if c["step"] == "plan"}
    hard = plans[jobs["question-Q2"]["id"]]
    assert hard["group"] == "deep" and "classifier difficulty said 'hard'" in hard["reason"]
    escalated = plans[jobs["question-Q6"]["id"]]
    assert [e["trigger"] for e in escalated["escalations"]] == ["schema"]


def test_one_command_runs_it(tmp_path: Path) -> None:
    # `python examples/<name>/run.py` must find the `examples` package without installing it
    # (the three share that header; one is run as a script, as it is slow: a fresh litellm).
    path = tmp_path / "records.jsonl"
    script = ROOT / "examples" / "document_intake" / "run.py"
    result = subprocess.run(
        [sys.executable, str(script), "--records", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 9 jobs ended as designed" in result.stdout
    assert str(path) in result.stdout and path.stat().st_size > 0
