"""Model routing with the fake backend: rules, classifiers, context size, escalation, jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import router as router_pkg
from router import NeedsReview, Router, get_decision
from router.testing import FakeBackend, FakeClock, ok

USER = [{"role": "user", "content": "Where is my package? It has not arrived."}]


def base_config(**extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "router": {"strategy": "cost", "deadline": 30.0},
        "deployments": [
            {
                "name": "small",
                "model": "openai/small",
                "groups": ["cheap"],
                "input_cost_per_token": 1e-7,
                "output_cost_per_token": 1e-7,
            },
            {
                "name": "big",
                "model": "openai/big",
                "groups": ["strong"],
                "input_cost_per_token": 1e-5,
                "output_cost_per_token": 1e-5,
            },
            {
                "name": "huge",
                "model": "openai/huge",
                "groups": ["long"],
                "input_cost_per_token": 2e-5,
                "output_cost_per_token": 2e-5,
                "max_context_tokens": 200_000,
            },
        ],
    }
    config.update(extra)
    return config


def make(config: dict[str, Any], **kwargs: Any) -> tuple[Router, FakeBackend]:
    clock = FakeClock()
    backend = FakeBackend(clock)
    return Router(config, backend=backend, clock=clock, seed=0, telemetry=False, **kwargs), backend


ROUTES = [
    {"name": "refunds", "when": {"keywords": ["refund", "chargeback"]}, "group": "strong"},
    {"name": "vip", "when": {"tags": ["vip"]}, "group": "strong"},
    {
        "name": "extract-step",
        "when": {"step": "extract", "has_response_format": True},
        "group": "strong",
    },
    {"name": "tools", "when": {"has_tools": True}, "group": "strong"},
    {
        "name": "enterprise",
        "when": {"metadata": {"tier": ["enterprise", "gold"]}},
        "group": "strong",
    },
    {"name": "order-ids", "when": {"regex": r"\bORD-\d{4}\b"}, "group": "strong"},
    {"name": "long", "when": {"min_prompt_tokens": 300}, "group": "long"},
    {"name": "default", "group": "cheap"},
]


@pytest.mark.parametrize(
    ("text", "kwargs", "route", "group", "why"),
    [
        ("I want a refund now", {}, "refunds", "strong", "keyword 'refund'"),
        ("hello", {"metadata": {"tags": ["vip"]}}, "vip", "strong", "tag vip"),
        (
            "fields please",
            {"metadata": {"step": "extract"}, "response_format": {"type": "json_object"}},
            "extract-step",
            "strong",
            "step=extract, response_format",
        ),
        ("fields please", {"metadata": {"step": "extract"}}, "default", "cheap", "default"),
        (
            "look it up",
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools",
            "strong",
            "tools",
        ),
        ("hi", {"metadata": {"tier": "gold"}}, "enterprise", "strong", "tier=gold"),
        ("status of ORD-1234?", {}, "order-ids", "strong", "regex"),
        ("word " * 400, {}, "long", "long", "prompt tokens"),
        ("where is my parcel", {}, "default", "cheap", "default"),
    ],
)
async def test_rules_first_match_wins(
    text: str, kwargs: dict[str, Any], route: str, group: str, why: str
) -> None:
    router, _ = make(base_config(routes=ROUTES))
    response = await router.acompletion("auto", [{"role": "user", "content": text}], **kwargs)
    decision = get_decision(response)
    assert decision is not None
    assert (decision.route, decision.group) == (route, group)
    assert f"route '{route}'" in decision.reason and why in decision.reason


async def test_explicit_group_bypasses_rules() -> None:
    router, _ = make(base_config(routes=ROUTES))
    decision = get_decision(
        await router.acompletion("cheap", [{"role": "user", "content": "refund"}])
    )
    assert decision is not None and decision.group == "cheap" and decision.route is None


CLASSIFIED = {
    "routes": [
        {
            "name": "by-kind",
            "classifier": "kind",
            "classes": {"billing": "strong", "shipping": "cheap"},
        },
        {"name": "default", "group": "cheap"},
    ],
}


@pytest.mark.parametrize(
    ("classifier", "text", "group", "why"),
    [
        (
            {
                "kind": "keywords",
                "labels": {"billing": ["invoice", "charge"], "shipping": ["package", "delivery"]},
            },
            "my invoice shows a double charge",
            "strong",
            "classifier kind said 'billing'",
        ),
        (
            {"kind": "regex", "labels": {"billing": [r"(?i)invoice"], "shipping": ["pkg"]}},
            "Invoice 42",
            "strong",
            "said 'billing'",
        ),
        (
            {"kind": "keywords", "labels": {"billing": ["invoice"]}},
            "hello there",
            "cheap",
            "was not sure; fell through",
        ),
        (
            {"kind": "python", "callable": "raises"},
            "x",
            "cheap",
            "failed (RuntimeError: model offline); fell through",
        ),
        (
            {"kind": "python", "callable": "unsure", "min_confidence": 0.8},
            "x",
            "cheap",
            "confidence 0.40 < 0.80; fell through",
        ),
        ({"kind": "python", "callable": "other"}, "x", "cheap", "label 'other' has no group"),
        ({"kind": "python", "callable": "asyncsure"}, "x", "strong", "(confidence 0.95)"),
    ],
)
async def test_classifier_first_and_its_fallbacks(
    classifier: dict[str, Any], text: str, group: str, why: str
) -> None:
    async def asyncsure(request: Any) -> tuple[str, float]:
        return "billing", 0.95

    def raises(request: Any) -> str:
        raise RuntimeError("model offline")

    classifiers = {
        "raises": raises,
        "unsure": lambda r: ("billing", 0.4),
        "other": lambda r: "other",
        "asyncsure": asyncsure,
    }
    router, _ = make(
        base_config(**CLASSIFIED, classifiers={"kind": classifier}), classifiers=classifiers
    )
    decision = get_decision(await router.acompletion("auto", [{"role": "user", "content": text}]))
    assert decision is not None and decision.group == group
    assert why in decision.reason


async def test_llm_classifier_uses_a_cheap_group() -> None:
    config = base_config(
        **CLASSIFIED,
        classifiers={"kind": {"kind": "llm", "group": "cheap", "labels": ["billing", "shipping"]}},
    )
    router, backend = make(config)
    backend.script("small", ok("Billing."), ok("hello"))
    decision = get_decision(await router.acompletion("auto", USER))
    assert decision is not None and decision.group == "strong"
    assert backend.calls[0].request["max_tokens"] == 8  # the classifier's short call
    backend.script("small", ok("I think it is about the weather"), ok("hi"))
    decision = get_decision(await router.acompletion("auto", USER))
    assert decision is not None and decision.group == "cheap"
    assert "was not sure" in decision.reason


async def test_context_too_large_goes_to_a_group_that_fits() -> None:
    config = base_config()
    config["deployments"][0]["max_context_tokens"] = 1000
    config["groups"] = {"cheap": {"long_context": "long"}}
    router, _ = make(config)
    long = [{"role": "user", "content": "lorem ipsum " * 800}]
    decision = get_decision(await router.acompletion("cheap", long, max_tokens=100))
    assert decision is not None and decision.deployment == "huge"
    assert (
        "exceed every window in 'cheap'" in decision.reason and "sent to 'long'" in decision.reason
    )
    short = get_decision(await router.acompletion("cheap", USER))
    assert short is not None and short.deployment == "small"


async def test_context_skips_only_the_small_deployments() -> None:
    config = base_config()
    config["deployments"][1]["groups"] = ["cheap"]
    config["deployments"][0]["max_context_tokens"] = 500
    config["deployments"][1]["max_context_tokens"] = 100_000
    router, _ = make(config)
    long = [{"role": "user", "content": "lorem ipsum " * 400}]
    decision = get_decision(await router.acompletion("cheap", long))
    assert decision is not None and decision.deployment == "big"
    assert decision.skipped[0].deployment == "small"
    assert "context window 500 <" in decision.skipped[0].why


# -- escalation ------------------------------------------------------------------------------

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "invoice",
        "schema": {
            "type": "object",
            "required": ["total", "vendor"],
            "properties": {"total": {"type": "number"}, "vendor": {"type": "string"}},
        },
    },
}


def escalating(triggers: list[str], **group: Any) -> dict[str, Any]:
    return base_config(
        groups={"cheap": {"escalate_to": "strong", "escalate_on": triggers, **group}}
    )


@pytest.mark.parametrize(
    ("triggers", "first", "kwargs", "trigger", "detail"),
    [
        (
            ["schema"],
            ok('{"total": 12.5}'),
            {"response_format": SCHEMA},
            "schema",
            "'vendor' is a required property",
        ),
        (
            ["invalid_json"],
            ok("total is 12"),
            {"response_format": {"type": "json_object"}},
            "invalid_json",
            "not JSON",
        ),
        (["length"], ok("The total is", finish_reason="length"), {}, "length", "max_tokens"),
        (["empty"], ok(""), {}, "empty", "no content"),
        (["refusal"], ok("I'm sorry, but I can't help with that."), {}, "refusal", "refused"),
        (
            ["validator:totals"],
            ok('{"lines": [5, 5], "total": 12}'),
            {},
            "validator:totals",
            "lines sum to 10, total says 12",
        ),
        (
            ["low_confidence"],
            ok('{"label": "x", "confidence": 0.3}'),
            {},
            "low_confidence",
            "confidence 0.30 < 0.60",
        ),
    ],
)
async def test_each_trigger_escalates(
    triggers: list[str], first: Any, kwargs: dict[str, Any], trigger: str, detail: str
) -> None:
    def totals(response: Any, request: Any) -> str | None:
        doc = json.loads(response.choices[0].message.content)
        if sum(doc["lines"]) != doc["total"]:
            return f"lines sum to {sum(doc['lines'])}, total says {doc['total']}"
        return None

    router, backend = make(escalating(triggers, min_confidence=0.6), validators={"totals": totals})
    backend.script("small", first)
    good = '{"total": 12.5, "vendor": "ACME", "lines": [6, 6.5], "confidence": 0.9}'
    backend.script("big", ok(good))
    response = await router.acompletion("cheap", USER, **kwargs)
    decision = get_decision(response)
    assert decision is not None
    assert decision.deployment == "big" and decision.outcome == "success"
    assert [(e.from_group, e.to_group, e.trigger) for e in decision.escalations] == [
        ("cheap", "strong", trigger)
    ]
    assert detail in decision.escalations[0].detail
    assert decision.escalations[0].cost_usd > 0
    assert decision.cost_usd > decision.escalations[0].cost_usd  # both answers are paid
    assert [a.deployment for a in decision.attempts] == ["small", "big"]
    assert f"cheap answer failed {trigger}" in decision.reason
    assert response.choices[0].message.content == good


async def test_a_passing_answer_does_not_escalate() -> None:
    router, backend = make(escalating(["schema"]))
    backend.script("small", ok('{"total": 1, "vendor": "A"}'))
    decision = get_decision(await router.acompletion("cheap", USER, response_format=SCHEMA))
    assert decision is not None and decision.deployment == "small" and not decision.escalations
    assert backend.calls_to("big") == 0


async def test_exhausted_escalation_needs_review() -> None:
    router, backend = make(escalating(["schema"]))
    backend.script("small", ok("{}"))
    backend.script("big", ok('{"total": 3}'))
    response = await router.acompletion("cheap", USER, response_format=SCHEMA)
    decision = get_decision(response)
    assert decision is not None and decision.outcome == "needs_review" and decision.needs_review
    assert [e.to_group for e in decision.escalations] == ["strong", None]
    assert "needs human review" in decision.reason


async def test_exhausted_escalation_can_raise() -> None:
    router, backend = make(escalating(["schema"], on_exhausted="raise", max_escalations=0))
    backend.script("small", ok("{}"))
    with pytest.raises(NeedsReview) as info:
        await router.acompletion("cheap", USER, response_format=SCHEMA)
    assert info.value.trigger == "schema" and backend.calls_to("big") == 0
    assert get_decision(info.value).outcome == "needs_review"  # type: ignore[union-attr]


async def test_escalation_cost_cap() -> None:
    router, backend = make(escalating(["empty"], escalation_cost_cap=1e-9))
    backend.script("small", ok(""))
    decision = get_decision(await router.acompletion("cheap", USER))
    assert decision is not None and decision.outcome == "needs_review"
    assert "cost cap" in decision.escalations[0].detail and backend.calls_to("big") == 0


# -- jobs and records ------------------------------------------------------------------------


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


async def test_an_escalated_answer_also_meets_the_target_groups_checks() -> None:
    config = base_config(
        groups={
            "cheap": {"escalate_to": "strong", "escalate_on": ["refusal"]},
            "strong": {"escalate_on": ["validator:approval"]},
        }
    )
    router, backend = make(config, validators={"approval": lambda r, q: "needs a human"})
    backend.script("small", ok("I can't help with that."))
    decision = get_decision(await router.acompletion("cheap", USER))
    assert decision is not None and decision.outcome == "needs_review"
    assert [(e.trigger, e.to_group) for e in decision.escalations] == [
        ("refusal", "strong"),
        ("validator:approval", None),
    ]


async def test_pool_calls_inside_a_job_are_part_of_it() -> None:
    from router import Pool

    async def search(query: str) -> str:
        return f"hits for {query}"

    pool = Pool({"search": search}, costs={"search": 0.002})
    with router_pkg.job("research") as job:
        await pool.call("llm routing")
    assert job.record is not None and len(job.record.steps) == 1
    assert job.record.cost_usd == pytest.approx(0.002)


async def test_escalations_are_not_charged_to_the_retry_budget() -> None:
    router, _ = make(
        escalating(["validator:never_ok"], max_escalations=1),
        validators={"never_ok": lambda r, q: "not good enough"},
    )
    for _ in range(40):  # every call escalates: far above 20% of calls in the window
        decision = get_decision(await router.acompletion("cheap", USER))
        assert decision is not None and decision.outcome == "needs_review"
        assert [a.deployment for a in decision.attempts] == ["small", "big"]
