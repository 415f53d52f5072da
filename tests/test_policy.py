"""Model routing with the fake backend: rules, classifiers, context size (escalation and jobs:
tests/test_escalation.py, tests/test_jobs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from router import Router, get_decision
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
