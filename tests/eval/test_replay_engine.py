"""The replay backend goes through the real engine: records and metrics come out as live.

The same config and items run twice: replayed, and live over HTTP against the simulated
fleet scripted to say the recorded answers. The routing story in the decision records
(route, deployments tried, escalations, outcome) must be the same; the replay's records and
metrics must be the ones the router's observers produce for any call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from router import get_decision
from router._eval._data import Dataset
from router._eval._harness import Runner, live_judge, replay_judge
from router._eval._policies import PolicySpec
from router._eval._replay import ITEM_KEY, PLACEHOLDER, ReplayBackend, UnknownItem
from router._eval._scorers import exact
from router._observe import BaseObserver, Fanout
from router._records import Recorder
from router._report import load, summarise
from router._sim import Behavior, Fleet, Script
from router.telemetry import Telemetry

from .conftest import BINDINGS, tiny_config

GROUPS = {
    "weak": {"escalate_to": "strong", "escalate_on": ["validator:says_yes"]},
}
ROUTES = [
    {
        "name": "hard",
        "when": {"metadata": {"kind": "hard"}, "keywords": ["question c"]},
        "group": "strong",
    },
    {"name": "default", "group": "weak"},
]


def says_yes(response: Any, request: Any) -> str | None:
    content = response.choices[0].message.content
    return None if content == "yes" else f"answered {content!r}"


def cascade_spec(config: dict[str, Any], model: str = "auto") -> PolicySpec:
    return PolicySpec("cascade", "cascade", "-", model, config, validators={"says_yes": says_yes})


async def test_the_response_is_the_recorded_answer_priced_by_litellm_tokens(
    tiny: Dataset,
) -> None:
    import litellm

    from router._config import Config

    config = Config.from_dict(tiny_config())
    small = config.deployment("small")
    backend = ReplayBackend(list(tiny.items), BINDINGS)
    messages = [{"role": "user", "content": "question b"}]
    request = {"messages": messages, "metadata": {ITEM_KEY: "b"}}
    response = await backend.complete(small, request, 1.0)
    assert response.choices[0].message.content == "no"
    assert response.model == "openai/sim-small"
    prompt = litellm.token_counter(model="openai/sim-small", messages=messages)
    assert response.usage.prompt_tokens == prompt
    assert response.usage.completion_tokens == 1
    assert backend.price(small, prompt, 1) == pytest.approx(0.001)  # prompts are free here
    chunks = [c async for c in await backend.stream(small, request, 1.0)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "no"
    with pytest.raises(UnknownItem):
        await backend.complete(small, {"messages": messages}, 1.0)
    with pytest.raises(UnknownItem):
        await backend.complete(small, {"messages": messages, "metadata": {ITEM_KEY: "z"}}, 1.0)


async def test_labels_only_items_get_a_placeholder_that_tells_nothing(tiny: Dataset) -> None:
    from dataclasses import replace

    from router._config import Config

    items = [replace(it, answers={}) for it in tiny.items]
    backend = ReplayBackend(items, BINDINGS)
    small = Config.from_dict(tiny_config()).deployment("small")
    texts = set()
    for it in items:
        request = {
            "messages": [{"role": "user", "content": it.prompt}],
            "metadata": {ITEM_KEY: it.id},
        }
        texts.add((await backend.complete(small, request, 1.0)).choices[0].message.content)
    assert texts == {PLACEHOLDER}  # right and wrong answers look the same


async def test_records_and_metrics_come_from_the_router_observers(
    tiny: Dataset, tmp_path: Path
) -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(
        meter_provider=MeterProvider(metric_readers=[reader]), tracing=False, logs=False
    )
    records = tmp_path / "records.jsonl"
    recorder = Recorder(records)

    backend = ReplayBackend(list(tiny.items), BINDINGS)
    both = Fanout([telemetry, recorder])
    runner = Runner(
        backend, strong={"large"}, judge=replay_judge(BINDINGS), observer=lambda spec: both
    )
    config = tiny_config(groups={**GROUPS, "weak": {**GROUPS["weak"], "on_exhausted": "review"}})
    result = await runner.run(cascade_spec(config, "weak"), tiny.items)
    assert [r.outcome for r in result.items] == ["success", "success", "needs_review", "success"]

    # The JSONL records, summarised by `router report`'s own code.
    report = summarise(load(records), str(records), ("route",))
    overall = report["overall"]
    assert overall["calls"] == 4
    assert overall["escalation_rate"] == 0.5
    assert overall["review_rate"] == 0.25
    assert overall["cost_usd"] == pytest.approx(result.cost_usd) == pytest.approx(0.024)
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert lines[1]["escalations"][0]["trigger"] == "validator:says_yes"
    assert lines[1]["escalations"][0]["detail"] == "answered 'no'"
    assert lines[2]["escalations"][-1]["to"] is None  # exhausted: human review

    # The OpenTelemetry metrics the router records for every call.
    metrics: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    metrics.setdefault(metric.name, []).append(
                        (dict(point.attributes or {}), getattr(point, "value", point))
                    )
    served = {
        (a.get("router.deployment"), a.get("router.outcome")): v for a, v in metrics["router.calls"]
    }
    assert served[("small", "success")] == 2
    assert served[("large", "success")] == 1
    assert served[("large", "needs_review")] == 1
    assert sum(v for _, v in metrics["router.cost"]) == pytest.approx(0.024)


def _story(decision: Any) -> tuple[Any, ...]:
    """What routing decided, without prices and timings (the fleet counts tokens its way)."""
    return (
        decision.group,
        decision.route,
        decision.deployment,
        decision.outcome,
        tuple(a.deployment for a in decision.attempts),
        tuple((e.from_group, e.to_group, e.trigger, e.detail) for e in decision.escalations),
        re.sub(r"\$[0-9.]+", "$", decision.reason),
    )


async def test_replay_and_live_tell_the_same_routing_story(tiny: Dataset) -> None:
    def scripts(model: str) -> list[Script]:
        return [
            Script(pattern=f"^{re.escape(it.prompt)}$", reply=it.answers[model])
            for it in tiny.items
        ]

    behaviors = {
        "small": Behavior(latency_ms=1.0, scripts=scripts("weak")),
        "large": Behavior(latency_ms=1.0, scripts=scripts("strong")),
    }
    stories: dict[str, list[tuple[Any, ...]]] = {"replay": [], "live": []}

    class Keep(BaseObserver):
        def __init__(self, mode: str) -> None:
            self.mode = mode

        def call_finished(self, decision: Any, error: Any, **content: Any) -> None:
            stories[self.mode].append(_story(decision))

    config = tiny_config(groups=GROUPS, routes=ROUTES)
    replay = Runner(
        ReplayBackend(list(tiny.items), BINDINGS),
        strong={"large"},
        judge=replay_judge(BINDINGS),
        observer=lambda spec: Keep("replay"),
    )
    replayed = await replay.run(cascade_spec(config), tiny.items)
    async with Fleet(behaviors, seed=1) as fleet:
        for deployment in config["deployments"]:
            deployment["api_base"] = fleet[deployment["name"]].base_url
            deployment["api_key"] = "sk-sim-test"
        live = Runner(
            None,
            strong={"large"},
            judge=live_judge(exact),
            replay=False,
            observer=lambda spec: Keep("live"),
        )
        lived = await live.run(cascade_spec(config), tiny.items)
    assert stories["replay"] == stories["live"]
    assert [r.route for r in replayed.items] == ["default", "default", "hard", "default"]
    assert replayed.escalation_rate == lived.escalation_rate == 0.25  # b: "no" -> strong
    assert replayed.strong_share == lived.strong_share == 0.5
    # Live grading is the scorer's (exact against reference "yes"): d's "yes" counts as right,
    # where the replay uses d's label (wrong). That is the only difference.
    assert [r.correct for r in replayed.items] == [True, True, False, False]
    assert [r.correct for r in lived.items] == [True, True, False, True]


async def test_a_replayed_call_is_one_decision_with_its_reason(tiny: Dataset) -> None:
    from router import Router

    backend = ReplayBackend(list(tiny.items), BINDINGS)
    router = Router(tiny_config(routes=ROUTES), backend=backend, telemetry=False)
    response = await router.acompletion(
        "auto",
        [{"role": "user", "content": "question c"}],
        metadata={"kind": "hard", ITEM_KEY: "c"},
    )
    decision = get_decision(response)
    assert decision is not None
    assert decision.route == "hard"
    assert decision.deployment == "large"
    assert decision.cost_usd == pytest.approx(0.01)
    assert "route 'hard'" in decision.reason
