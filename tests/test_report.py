"""`router report`: the seed's metrics from a JSONL record file, as tables and as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from router import Router, get_decision
from router._decision import Decision
from router.cli import COMMANDS, main
from router.testing import FakeBackend, FakeClock, fail, ok

REPO = Path(__file__).resolve().parent.parent


def call(
    outcome: str,
    *,
    route: str | None,
    step: str | None,
    group: str,
    deployment: str | None,
    cost: float,
    latency: float,
    escalations: Sequence[tuple[str, str | None, str, float]] = (),
    failovers: int = 0,
    hedged: bool = False,
) -> dict[str, Any]:
    """A call line as router._records writes it (escalations: (from, to, trigger, cost))."""
    return {
        "type": "call", "ts": 1.7e9, "group": group, "route": route, "step": step, "job": None,
        "deployment": deployment, "outcome": outcome, "cost_usd": cost, "latency_s": latency,
        "attempts": 1 + failovers, "failovers": failovers, "hedged": hedged,
        "escalations": [
            {"from": f, "to": t, "trigger": trig, "detail": "d", "cost_usd": c}
            for f, t, trig, c in escalations
        ],
        "reason": "r", "error": None, "input_tokens": 10, "output_tokens": 5,
    }  # fmt: skip


def job(outcome: str, cost: float, latency: float, escalations: int) -> dict[str, Any]:
    return {
        "type": "job", "ts": 1.7e9, "id": f"j-{outcome}-{cost}", "name": "j", "outcome": outcome,
        "cost_usd": cost, "latency_s": latency, "escalations": escalations, "reviews": 0,
        "failures": 0, "why": None, "steps": [],
    }  # fmt: skip


# Costs and latencies are exact binary fractions, so every figure below is exact.
CALLS = [
    call("success", route="refunds", step="triage", group="strong", deployment="big",
         cost=0.5, latency=1.0, failovers=1),
    call("success", route="default", step="triage", group="strong", deployment="big",
         cost=0.25, latency=2.0, escalations=[("cheap", "strong", "empty", 0.125)]),
    call("needs_review", route="default", step="answer", group="strong", deployment="big",
         cost=0.75, latency=4.0,
         escalations=[("cheap", "strong", "schema", 0.125), ("strong", None, "schema", 0.25)]),
    call("failed", route=None, step=None, group="cheap", deployment=None, cost=0.0,
         latency=0.5, failovers=2),
    call("success", route="default", step="answer", group="cheap", deployment="small",
         cost=0.125, latency=3.0, hedged=True),
    # A stream the caller closed early: neither a success nor a failure.
    call("closed_early", route="default", step="answer", group="cheap", deployment="small",
         cost=0.0, latency=0.25),
]  # fmt: skip
JOBS = [
    job("success", 0.75, 3.0, 1),
    job("needs_review", 0.875, 7.0, 2),
    job("failed", 0.5, 2.0, 0),
    job("success", 0.125, 0.5, 0),
]


def write_records(path: Path) -> str:
    lines = [json.dumps(c) for c in CALLS[:3]]
    lines += ["", "   ", json.dumps({"type": "transition", "deployment": "big"})]
    lines += [json.dumps(c) for c in CALLS[3:]] + [json.dumps(j) for j in JOBS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def records(tmp_path: Path) -> str:
    return write_records(tmp_path / "records.jsonl")


def report_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["report", *args, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    result: dict[str, Any] = json.loads(out)
    return result


# --- the figures, from the JSON ------------------------------------------------------------


def test_json_overall_figures(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = report_json(capsys, records)
    assert report["source"] == records
    assert report["records"] == {"calls": 6, "jobs": 4, "unknown": 1}
    assert report["overall"] == {
        "calls": 6,
        "success": 3,
        "failed": 1,  # closed_early and needs_review are not failures
        "needs_review": 1,
        "escalated": 2,
        "success_rate": 3 / 6,
        "failure_rate": 1 / 6,
        "escalation_rate": 2 / 6,
        "review_rate": 1 / 6,
        "cost_usd": 1.625,
        "cost_per_call_usd": 1.625 / 6,
        # Nearest rank over [0.25, 0.5, 1, 2, 3, 4].
        "latency_p50_s": 1.0,
        "latency_p95_s": 4.0,
        "latency_p99_s": 4.0,
        "failovers": 3,
        "hedged": 1,
        "hedged_rate": 1 / 6,
    }


def test_json_jobs_cost_per_completed_job_counts_every_job(
    records: str, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = report_json(capsys, records)["jobs"]
    assert jobs == {
        "jobs": 4,
        "success": 2,
        "failed": 1,
        "needs_review": 1,
        "task_success_rate": 0.5,
        "failure_rate": 0.25,
        "review_rate": 0.25,
        "cost_usd": 2.25,
        # All four jobs' cost over the two that succeeded (not 0.875 / 2).
        "cost_per_completed_job_usd": 1.125,
        "latency_mean_s": 3.125,
        "escalations": 3,
        "escalations_per_job": 0.75,
    }


def test_json_per_route_and_per_step_rows(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    by = report_json(capsys, records)["by"]
    assert list(by) == ["route", "step"]
    assert [(r["name"], r["calls"]) for r in by["route"]] == [
        ("default", 4), ("(explicit group)", 1), ("refunds", 1),
    ]  # fmt: skip
    default = by["route"][0]
    assert default["success_rate"] == 0.5
    assert default["failure_rate"] == 0.0
    assert default["escalation_rate"] == 0.5
    assert default["review_rate"] == 0.25
    assert default["cost_usd"] == 1.125
    assert default["cost_per_call_usd"] == 1.125 / 4
    assert (default["latency_p50_s"], default["latency_p95_s"]) == (2.0, 4.0)
    explicit = by["route"][1]
    assert (explicit["failure_rate"], explicit["success_rate"]) == (1.0, 0.0)
    assert [(r["name"], r["calls"]) for r in by["step"]] == [
        ("answer", 3), ("triage", 2), ("(none)", 1),
    ]  # fmt: skip
    answer, triage = by["step"][0], by["step"][1]
    assert (answer["success_rate"], answer["review_rate"], answer["escalation_rate"]) == (
        1 / 3, 1 / 3, 1 / 3,
    )  # fmt: skip
    assert (answer["latency_p50_s"], answer["latency_p95_s"]) == (3.0, 4.0)
    assert answer["cost_usd"] == 0.875
    assert (triage["success_rate"], triage["escalation_rate"], triage["cost_usd"]) == (
        1.0, 0.5, 0.75,
    )  # fmt: skip
    assert (triage["latency_p50_s"], triage["latency_p95_s"]) == (1.0, 2.0)


def test_json_escalation_triggers(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    escalations = report_json(capsys, records)["escalations"]
    assert escalations == {
        "calls": 2,
        "total": 3,
        "triggers": [
            {
                "trigger": "schema",
                "count": 2,
                "cost_usd": 0.375,
                "paths": [
                    {"from": "cheap", "to": "strong", "count": 1},
                    {"from": "strong", "to": None, "count": 1},  # exhausted: human review
                ],
            },
            {
                "trigger": "empty",
                "count": 1,
                "cost_usd": 0.125,
                "paths": [{"from": "cheap", "to": "strong", "count": 1}],
            },
        ],
    }


def test_by_group_and_deployment(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    by = report_json(capsys, records, "--by", "group", "--by", "deployment", "group")["by"]
    assert list(by) == ["group", "deployment"]
    assert [(r["name"], r["calls"]) for r in by["group"]] == [("cheap", 3), ("strong", 3)]
    assert [(r["name"], r["calls"]) for r in by["deployment"]] == [
        ("big", 3), ("small", 2), ("(none)", 1),
    ]  # fmt: skip
    assert by["deployment"][2]["failure_rate"] == 1.0


def test_an_empty_file_reports_nothing_to_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    report = report_json(capsys, str(path))
    assert report["overall"]["calls"] == 0
    assert report["overall"]["success_rate"] is None
    assert report["overall"]["latency_p50_s"] is None
    assert report["jobs"]["cost_per_completed_job_usd"] is None
    assert report["by"] == {"route": [], "step": []}
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: 0 call(s), 0 job(s)\n")
    assert "jobs: none" in out


# --- the same figures, as text -------------------------------------------------------------


def table(out: str, title: str) -> list[list[str]]:
    """The rows (split into cells on runs of 2+ spaces) of the plain table titled `title`."""
    lines = out.splitlines()
    start = lines.index(title) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows.append([cell for cell in line.strip().split("  ") if cell.strip()])
        rows[-1] = [cell.strip() for cell in rows[-1]]
    return rows


def test_text_report(records: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", records]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == (
        f"{records}: 6 call(s), 4 job(s); 1 line(s) of unknown type ignored"
    )
    assert table(out, "calls") == [
        ["calls", "success", "failure", "escalation", "review", "cost $", "$/call", "p50 s",
         "p95 s", "p99 s", "failovers", "hedged"],
        ["6", "50.0%", "16.7%", "33.3%", "16.7%", "1.625000", "0.270833", "1.000", "4.000",
         "4.000", "3", "16.7%"],
    ]  # fmt: skip
    assert table(out, "jobs") == [
        ["jobs", "task success", "failed", "needs review", "cost $", "$/completed job",
         "mean s", "escalations/job"],
        ["4", "50.0%", "1", "1", "2.250000", "1.125000", "3.125", "0.75"],
        ["$/completed job = cost of all jobs / successful jobs (failed and review jobs are"
         " paid for too)"],
    ]  # fmt: skip
    assert table(out, "by route") == [
        ["route", "calls", "success", "failure", "escalation", "review", "cost $", "$/call",
         "p50 s", "p95 s"],
        ["default", "4", "50.0%", "0.0%", "50.0%", "25.0%", "1.125000", "0.281250", "2.000",
         "4.000"],
        ["(explicit group)", "1", "0.0%", "100.0%", "0.0%", "0.0%", "0.000000", "0.000000",
         "0.500", "0.500"],
        ["refunds", "1", "100.0%", "0.0%", "0.0%", "0.0%", "0.500000", "0.500000", "1.000",
         "1.000"],
    ]  # fmt: skip
    steps = table(out, "by step")
    assert [row[:2] for row in steps] == [
        ["step", "calls"], ["answer", "3"], ["triage", "2"], ["(none)", "1"],
    ]  # fmt: skip
    assert steps[1][2:6] == ["33.3%", "0.0%", "33.3%", "33.3%"]
    assert table(out, "escalation triggers: 3 escalation(s) on 2 call(s)") == [
        ["trigger", "count", "rejected $", "from -> to"],
        ["schema", "2", "0.375000", "cheap -> strong (1), strong -> review (1)"],
        ["empty", "1", "0.125000", "cheap -> strong (1)"],
    ]
    # Columns are aligned: each value starts where its header does.
    lines = out.splitlines()
    at = lines.index("by route") + 1
    header, first = lines[at], lines[at + 1]
    assert first.index("0.281250") == header.index("$/call")


def test_rich_tables_on_a_terminal(
    records: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["report", records]) == 0
    out = capsys.readouterr().out
    assert "┃" in out or "│" in out
    for text in ("by route", "(explicit group)", "refunds", "50.0%", "1.125000",
                 "cheap -> strong (1), strong -> review (1)", "paid for too"):  # fmt: skip
        assert text in out


# --- errors --------------------------------------------------------------------------------


def test_a_malformed_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(CALLS[0]) + "\n\n" + '{"type": "call", "outc\n', encoding="utf-8")
    assert main(["report", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}: line 3: not valid JSON (")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[1, 2]", "a record must be a JSON object, not list"),
        ('{"type": "call", "cost_usd": 1}', "call record has no 'outcome'"),
        ('{"type": "job", "outcome": "success", "cost_usd": "lots"}',
         "'cost_usd' should be a number, not \"lots\""),
        ('{"type": "call", "outcome": "success", "escalations": [{"to": "x"}]}',
         "an escalation without a 'trigger'"),
    ],
)  # fmt: skip
def test_records_of_the_wrong_shape_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, problem: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(JOBS[0]) + "\n" + line + "\n", encoding="utf-8")
    assert main(["report", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: line 2: {problem}\n"


def test_a_line_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"type": "x"}\n\xff\xfe\n')
    assert main(["report", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: line 2: not UTF-8 text\n"


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["report", str(missing)]) == 1
    assert capsys.readouterr().err == f"{missing}: file not found\n"
    assert main(["report", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert "report" in [c.name for c in COMMANDS]
    assert main(["report"]) == 2
    assert main(["report", "x.jsonl", "--by", "tenant"]) == 2
    assert main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--by" in out and "deployment" in out and "--json" in out


def test_report_does_not_import_litellm(records: str) -> None:
    code = (
        "import sys; from router.cli import main; "
        f"rc = main(['report', {records!r}]); "
        "assert 'litellm' not in sys.modules, 'litellm was imported'; "
        "raise SystemExit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6 call(s), 4 job(s)" in result.stdout


def test_subprocess_malformed_line_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(CALLS[0]) + "\nnot json\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-m", "router.cli", "report", str(path)],
                            capture_output=True, text=True, env=env, timeout=60,
                            check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}: line 2: not valid JSON")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


# --- end to end: records the router itself wrote --------------------------------------------

USER_REFUND = [{"role": "user", "content": "I want a refund for my order."}]
USER_HELLO = [{"role": "user", "content": "Hello, where is my parcel?"}]


def e2e_config(path: Path) -> dict[str, Any]:
    return {
        "router": {"strategy": "cost", "deadline": 30.0, "record_file": str(path)},
        "deployments": [
            {"name": "small", "model": "openai/small", "groups": ["cheap"],
             "input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7},
            {"name": "big", "model": "openai/big", "groups": ["strong"],
             "input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5},
        ],
        "groups": {"cheap": {"escalate_to": "strong", "escalate_on": ["empty"]}},
        "routes": [
            {"name": "refunds", "when": {"keywords": ["refund"]}, "group": "strong"},
            {"name": "default", "group": "cheap"},
        ],
    }  # fmt: skip


async def make_records(path: Path) -> tuple[list[Decision], list[Any]]:
    """Three jobs and one loose call through a real Router; their decisions and job records."""
    clock = FakeClock()
    backend = FakeBackend(clock)
    router = Router(e2e_config(path), backend=backend, clock=clock, seed=0, telemetry=False)
    decisions: list[Decision] = []
    jobs = []

    async def send(model: str, messages: Any, step: str | None) -> None:
        metadata: dict[str, Any] = {} if step is None else {"metadata": {"step": step}}
        try:
            response = await router.acompletion(model, messages, **metadata)
        except Exception as exc:
            decision = get_decision(exc)
            assert decision is not None
            decisions.append(decision)
            raise
        decision = get_decision(response)
        assert decision is not None
        decisions.append(decision)

    # A success: a refund goes to strong by rule; an empty cheap answer escalates once.
    backend.script("big", ok("refund approved", latency=0.5), ok("it is on its way", latency=1.0))
    backend.script("small", ok("", latency=0.25))
    async with router.job("ticket-1") as first:
        await send("auto", USER_REFUND, "triage")
        await send("auto", USER_HELLO, "answer")
    jobs.append(first.record)
    # Needs review: cheap and strong both answer empty.
    backend.script("small", ok("", latency=0.25))
    backend.script("big", ok("", latency=0.75))
    async with router.job("ticket-2") as second:
        await send("auto", USER_HELLO, "answer")
    jobs.append(second.record)
    # Failed: every attempt at cheap answers 503.
    backend.script("small", fail(503, latency=0.125), fail(503, latency=0.125),
                   fail(503, latency=0.125))  # fmt: skip
    async with router.job("ticket-3") as third:
        try:
            await send("auto", USER_HELLO, "triage")
        except Exception:
            third.fail("no answer")
    jobs.append(third.record)
    # Outside any job, naming the group: no route, no step.
    backend.script("small", ok("hi", latency=0.2))
    await send("cheap", USER_HELLO, None)
    return decisions, jobs


async def test_end_to_end_report_agrees_with_the_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "records.jsonl"
    decisions, jobs = await make_records(path)
    assert [d.outcome for d in decisions] == ["success", "success", "needs_review", "failed",
                                              "success"]  # fmt: skip
    report = report_json(capsys, str(path))
    n = len(decisions)
    assert report["records"] == {"calls": n, "jobs": 3, "unknown": 0}
    overall = report["overall"]
    assert overall["calls"] == n
    assert overall["success_rate"] == sum(d.outcome == "success" for d in decisions) / n
    assert overall["failure_rate"] == 1 / n
    assert overall["review_rate"] == sum(d.needs_review for d in decisions) / n
    assert overall["escalation_rate"] == sum(bool(d.escalations) for d in decisions) / n == 2 / n
    assert overall["cost_usd"] == pytest.approx(sum(d.cost_usd for d in decisions))
    assert overall["failovers"] == sum(d.failovers for d in decisions)
    latencies = sorted(d.elapsed_s for d in decisions)
    assert overall["latency_p50_s"] == pytest.approx(latencies[2])
    assert overall["latency_p99_s"] == pytest.approx(latencies[-1])

    summary = report["jobs"]
    assert [j.outcome for j in jobs] == ["success", "needs_review", "failed"]
    assert (summary["jobs"], summary["success"], summary["failed"], summary["needs_review"]) == (
        3, 1, 1, 1,
    )  # fmt: skip
    total = sum(j.cost_usd for j in jobs)
    assert summary["cost_usd"] == pytest.approx(total)
    assert summary["cost_per_completed_job_usd"] == pytest.approx(total / 1)
    assert summary["escalations_per_job"] == pytest.approx(sum(j.escalations for j in jobs) / 3)

    routes = {row["name"]: row for row in report["by"]["route"]}
    assert {name: row["calls"] for name, row in routes.items()} == {
        "default": 3, "refunds": 1, "(explicit group)": 1,
    }  # fmt: skip
    assert routes["refunds"]["cost_usd"] == pytest.approx(decisions[0].cost_usd)
    default = [d for d in decisions if d.route == "default"]
    assert routes["default"]["cost_usd"] == pytest.approx(sum(d.cost_usd for d in default))
    assert routes["default"]["escalation_rate"] == 2 / 3
    assert routes["default"]["review_rate"] == 1 / 3
    steps = {row["name"]: row["calls"] for row in report["by"]["step"]}
    assert steps == {"triage": 2, "answer": 2, "(none)": 1}
    triggers = report["escalations"]["triggers"]
    assert [(t["trigger"], t["count"]) for t in triggers] == [("empty", 3)]
    assert triggers[0]["paths"] == [
        {"from": "cheap", "to": "strong", "count": 2},
        {"from": "strong", "to": None, "count": 1},
    ]
    # And the text tables say the same.
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{path}: 5 call(s), 3 job(s)"
    assert table(out, "calls")[1][:5] == ["5", "60.0%", "20.0%", "40.0%", "20.0%"]
