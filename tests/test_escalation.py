"""Escalation after the output with the fake backend: triggers, review, cost cap, budget."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router import NeedsReview, get_decision
from router.testing import ok
from tests.test_policy import USER, base_config, make

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


async def test_escalations_are_not_charged_to_the_retry_budget() -> None:
    router, _ = make(
        escalating(["validator:never_ok"], max_escalations=1),
        validators={"never_ok": lambda r, q: "not good enough"},
    )
    for _ in range(40):  # every call escalates: far above 20% of calls in the window
        decision = get_decision(await router.acompletion("cheap", USER))
        assert decision is not None and decision.outcome == "needs_review"
        assert [a.deployment for a in decision.attempts] == ["small", "big"]
