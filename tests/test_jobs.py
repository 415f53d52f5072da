"""Jobs with the fake backend: accounting, outcomes, records, classifier and pool calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import router as router_pkg
from router.testing import ok
from tests.test_escalation import escalating
from tests.test_policy import CLASSIFIED, USER, base_config, make


async def test_job_accounts_its_calls_and_records_go_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    config = escalating(["empty"])
    config["router"]["record_file"] = str(path)
    router, backend = make(config)
    backend.script("small", ok("fine"), ok(""), ok("ok"))
    async with router.job("ticket-42", customer="c1") as job:
        await router.acompletion("cheap", USER, metadata={"step": "triage"})
        await router.acompletion("cheap", USER, metadata={"step": "answer"})
    record = job.record
    assert record is not None and record.outcome == "success"
    assert [s.step for s in record.steps] == ["triage", "answer"]
    assert record.escalations == 1
    assert record.cost_usd == pytest.approx(sum(s.cost_usd for s in record.steps))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["call", "call", "job"]
    assert lines[0]["job"] == job.id and lines[1]["escalations"][0]["trigger"] == "empty"
    assert lines[2]["cost_usd"] == pytest.approx(record.cost_usd)


def test_sync_job_failed_and_review_outcomes() -> None:
    router, backend = make(escalating(["empty"], max_escalations=0))
    backend.script("small", ok(""))
    with router.job("doc-1") as job:
        router.completion("cheap", USER)
    assert job.record is not None and job.record.outcome == "needs_review"
    assert job.record.reviews == 1
    with pytest.raises(ValueError), router.job("doc-2") as failed:
        router.completion("cheap", USER)
        raise ValueError("bad document")
    assert failed.record is not None and failed.record.outcome == "failed"
    assert "bad document" in (failed.record.why or "")


def test_module_level_job_is_exported() -> None:
    with router_pkg.job("x") as job:
        assert router_pkg.current_job() is job
    assert router_pkg.current_job() is None


async def test_llm_classifier_asks_for_logprobs_and_is_accounted_in_the_job() -> None:
    config = base_config(
        **CLASSIFIED,
        classifiers={
            "kind": {
                "kind": "llm",
                "group": "cheap",
                "labels": ["billing", "shipping"],
                "min_confidence": 0.5,
            }
        },
    )
    router, backend = make(config)
    backend.script("small", ok("billing"), ok("answer"))
    async with router.job("t-1") as job:
        await router.acompletion("auto", USER)
    assert backend.calls[0].request["logprobs"] is True
    assert job.record is not None
    assert [(s.step, s.route) for s in job.record.steps] == [
        ("classify", "classifier:kind"),
        (None, "by-kind"),
    ]
    assert job.record.cost_usd == pytest.approx(sum(s.cost_usd for s in job.record.steps))


async def test_pool_calls_inside_a_job_are_part_of_it() -> None:
    from router import Pool

    async def search(query: str) -> str:
        return f"hits for {query}"

    pool = Pool({"search": search}, costs={"search": 0.002})
    with router_pkg.job("research") as job:
        await pool.call("llm routing")
    assert job.record is not None and len(job.record.steps) == 1
    assert job.record.cost_usd == pytest.approx(0.002)
