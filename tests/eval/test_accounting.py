"""Policy accounting on a four-item dataset: every expected number is worked out by hand."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from router._eval._data import Dataset
from router._eval._harness import Runner, RunResult, replay_judge
from router._eval._learn import fit_threshold
from router._eval._policies import PolicySpec, oracle_policy
from router._eval._replay import ReplayBackend

from .conftest import BINDINGS, tiny_config


def says_yes(response: Any, request: Any) -> str | None:
    content = response.choices[0].message.content
    return None if content == "yes" else f"answered {content!r}"


async def run(dataset: Dataset, spec: PolicySpec) -> RunResult:
    backend = ReplayBackend(list(dataset.items), BINDINGS)
    runner = Runner(backend, strong={"large"}, judge=replay_judge(BINDINGS))
    return await runner.run(spec, dataset.items)


def spec(name: str, model: str, config: dict[str, Any], **kwargs: Any) -> PolicySpec:
    return PolicySpec(name, name, "-", model, config, **kwargs)


async def test_always_weak(tiny: Dataset) -> None:
    r = await run(tiny, spec("always-weak", "weak", tiny_config()))
    assert r.accuracy == 0.25  # only a
    assert r.cost_usd == pytest.approx(4 * 0.001)  # four one-token answers at $0.001
    assert r.cost_per_item == pytest.approx(0.001)
    assert r.cost_per_correct == pytest.approx(0.004)  # $0.004 for one right answer
    assert (r.strong_share, r.escalation_rate, r.review_rate) == (0.0, 0.0, 0.0)


async def test_always_strong(tiny: Dataset) -> None:
    r = await run(tiny, spec("always-strong", "strong", tiny_config()))
    assert r.accuracy == 0.75  # a, b, d
    assert r.cost_per_item == pytest.approx(0.01)
    assert r.cost_per_correct == pytest.approx(0.04 / 3)
    assert r.strong_share == 1.0
    assert r.row(0.75)["quality_vs_strong"] == 1.0


async def test_rule_by_metadata(tiny: Dataset) -> None:
    routes = [
        {"name": "hard", "when": {"metadata": {"kind": "hard"}}, "group": "strong"},
        {"name": "default", "group": "weak"},
    ]
    r = await run(tiny, spec("rule", "auto", tiny_config(routes=routes)))
    # a weak (right), b strong (right), c strong (wrong), d weak (wrong)
    assert r.accuracy == 0.5
    assert r.cost_usd == pytest.approx(0.001 + 0.01 + 0.01 + 0.001)
    assert r.cost_per_correct == pytest.approx(0.022 / 2)
    assert r.strong_share == 0.5
    assert [i.route for i in r.items] == ["default", "hard", "hard", "default"]
    assert r.row(0.75)["quality_vs_strong"] == pytest.approx(0.5 / 0.75)


async def test_cascade_escalates_and_sends_to_review(tiny: Dataset) -> None:
    groups = {
        "weak": {
            "escalate_to": "strong",
            "escalate_on": ["validator:says_yes"],
            "on_exhausted": "review",
        }
    }
    policy = spec("cascade", "weak", tiny_config(groups=groups), validators={"says_yes": says_yes})
    r = await run(tiny, policy)
    by_id = {i.id: i for i in r.items}
    # a: weak "yes" passes (right, $0.001). b: weak "no" fails, strong "yes" passes (right,
    # $0.011). c: weak "no", strong "no" fails too: review (wrong, $0.011). d: weak "yes"
    # passes, though wrong ($0.001): output checks only see the text.
    assert [by_id[k].correct for k in "abcd"] == [True, True, False, False]
    assert [by_id[k].cost_usd for k in "abcd"] == pytest.approx([0.001, 0.011, 0.011, 0.001])
    assert [by_id[k].escalated for k in "abcd"] == [False, True, True, False]
    assert [by_id[k].review for k in "abcd"] == [False, False, True, False]
    assert r.accuracy == 0.5
    assert r.cost_per_item == pytest.approx(0.024 / 4)
    assert r.cost_per_correct == pytest.approx(0.012)
    assert r.strong_share == 0.5
    assert r.escalation_rate == 0.5
    assert r.review_rate == 0.25


async def test_oracle_reads_the_labels(tiny: Dataset) -> None:
    oracle = oracle_policy({it.id: it for it in tiny.items})
    config = {**oracle.config, "deployments": tiny_config()["deployments"]}
    r = await run(tiny, replace(oracle, config=config))
    # a weak, b strong, c weak (both wrong: the cheaper wrong answer), d strong
    assert [i.deployment for i in r.items] == ["small", "large", "small", "large"]
    assert r.accuracy == 0.75
    assert r.cost_usd == pytest.approx(0.022)
    assert r.strong_share == 0.5


def test_fit_threshold_by_hand() -> None:
    # Four items scored 0.9, 0.7, 0.5, 0.1 (route strong when score >= threshold).
    # weak right: F F T T; strong right: T F T T -> always-strong 3/4.
    scores = [0.9, 0.7, 0.5, 0.1]
    weak = [False, False, True, True]
    strong = [True, False, True, True]
    # Routing k items: k=0 2/4, k=1 3/4 (100% of strong), k=2 3/4, k=3 3/4, k=4 3/4.
    found = fit_threshold(scores, weak, strong, 0.95)
    assert (found.value, found.train_share, found.reached) == (0.9, 0.25, True)
    assert found.train_quality == 1.0
    # 2/4 is 66.7% of strong: a 60% target needs nothing routed.
    assert fit_threshold(scores, weak, strong, 0.6).train_share == 0.0
    # Forced items go first whatever their score: forcing item 3 changes nothing here,
    # forcing item 0 makes 100% reachable with it alone.
    forced = fit_threshold(scores, weak, strong, 0.95, forced=[True, False, False, False])
    assert forced.train_share == 0.25 and forced.value == float("inf")


def test_fit_threshold_is_not_fooled_by_an_early_crossing() -> None:
    # Accuracy along the ranking: 1/4, 2/4 (crosses 95% of 2/4 strong), 1/4, 2/4, ...
    scores = [0.9, 0.8, 0.7, 0.6]
    weak = [False, True, False, False]
    strong = [True, False, True, False]
    # k=0: 1/4; k=1: 2/4; k=2: 1/4; k=3: 2/4; k=4: 2/4 (= strong). The cheapest setting that
    # stays at the target for every costlier one is k=3, not the first crossing k=1.
    found = fit_threshold(scores, weak, strong, 1.0)
    assert found.train_share == 0.75


def test_fit_threshold_over_repeated_folds_averages_the_curves() -> None:
    weak = [False, False, True, True]
    strong = [True, False, True, True]
    scores = [0.9, 0.7, 0.5, 0.1]
    same = fit_threshold(scores, weak, strong, 0.95, repeats=[scores])
    assert (same.value, same.train_share, same.train_quality) == (0.9, 0.25, 1.0)
    # Another fold assignment scored item 1 (both models wrong) first: its curve is
    # 2/3, 2/3, 3/3, ... of strong against 2/3, 3/3, 3/3, ... The average reaches 95% at
    # k=2, where both lists' threshold (the second-ranked score) is 0.7.
    other = [0.7, 0.9, 0.5, 0.1]
    found = fit_threshold(scores, weak, strong, 0.95, repeats=[other])
    assert (found.value, found.train_share, found.train_quality) == (0.7, 0.5, 1.0)
    assert fit_threshold(scores, weak, strong, 0.8, repeats=[other]).train_share == 0.25
