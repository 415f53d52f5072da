"""Strategy tables: given prices, latencies, load and health, the expected ranking."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from router._config import BalancedWeights, Config
from router._select import Selector
from router._state import MemoryState
from router.testing import FakeBackend, FakeClock


def setup(specs: dict[str, dict[str, Any]], seed: int = 0) -> tuple[Selector, Config, MemoryState]:
    deployments = []
    for name, spec in specs.items():
        entry: dict[str, Any] = {"name": name, "model": f"openai/{name}", "groups": ["g"]}
        if "price" in spec:
            entry["input_cost_per_token"] = entry["output_cost_per_token"] = spec["price"]
        if "weight" in spec:
            entry["weight"] = spec["weight"]
        deployments.append(entry)
    config = Config.from_dict({"deployments": deployments})
    state = MemoryState()
    for name, spec in specs.items():
        health = state.get(name).health
        if "latency" in spec:
            health.observe_latency(spec["latency"], 0.0)
        health.in_flight = spec.get("in_flight", 0)
        for _ in range(spec.get("failures", 0)):
            health.record(False)
        for _ in range(spec.get("successes", 0)):
            health.record(True)
    return Selector(FakeBackend(FakeClock()), state, random.Random(seed)), config, state


def order(
    strategy: str, specs: dict[str, dict[str, Any]], weights: BalancedWeights | None = None
) -> list[str]:
    selector, config, _ = setup(specs)
    ranked = selector.rank(strategy, config.deployments_in("g"), 1.0, weights or BalancedWeights())
    return [d.name for d, _ in ranked]


COST = {"a": {"price": 3e-6}, "b": {"price": 1e-6}, "c": {"price": 2e-6}, "d": {}}


@pytest.mark.parametrize(
    ("strategy", "specs", "expected"),
    [
        ("cost", COST, ["b", "c", "a", "d"]),  # unknown price last
        ("ordered", COST, ["a", "b", "c", "d"]),
        ("latency", {"a": {"latency": 0.3}, "b": {"latency": 0.1}}, ["b", "a"]),
        # b is faster but has 4 calls in flight: 0.1 * 5 > 0.3 * 1
        ("latency", {"a": {"latency": 0.3}, "b": {"latency": 0.1, "in_flight": 4}}, ["a", "b"]),
        # balanced: same latency and health, so price decides
        (
            "balanced",
            {"a": {"price": 2e-6, "latency": 0.1}, "b": {"price": 1e-6, "latency": 0.1}},
            ["b", "a"],
        ),
        # cheap but slow and failing loses to a healthy fast one
        (
            "balanced",
            {
                "a": {"price": 1e-6, "latency": 2.0, "failures": 8, "successes": 2},
                "b": {"price": 1.5e-6, "latency": 0.1, "successes": 10},
            },
            ["b", "a"],
        ),
    ],
)
def test_strategy_table(
    strategy: str, specs: dict[str, dict[str, Any]], expected: list[str]
) -> None:
    assert order(strategy, specs) == expected


def test_balanced_weights_come_from_config() -> None:
    specs = {"a": {"price": 1e-6, "latency": 1.0}, "b": {"price": 2e-6, "latency": 0.1}}
    assert order("balanced", specs, BalancedWeights(cost=1.0, latency=0.0, health=0.0))[0] == "a"
    assert order("balanced", specs, BalancedWeights(cost=0.0, latency=1.0, health=0.0))[0] == "b"


def test_latency_strategy_explores_a_deployment_without_samples() -> None:
    assert set(order("latency", {"a": {"latency": 0.5}, "b": {}})) == {"a", "b"}
    selector, config, _ = setup({"a": {"latency": 0.5}, "b": {}})
    firsts = Counter(
        selector.rank("latency", config.deployments_in("g"), 1.0, BalancedWeights())[0][0].name
        for _ in range(50)
    )
    assert firsts["b"] > 0 and firsts["a"] > 0  # unknown gets the mean: a tie, both explored


def test_weighted_follows_weights() -> None:
    selector, config, _ = setup({"a": {"weight": 3.0}, "b": {"weight": 1.0}, "c": {"weight": 0}})
    firsts = Counter(
        selector.rank("weighted", config.deployments_in("g"), 1.0, BalancedWeights())[0][0].name
        for _ in range(4000)
    )
    assert firsts["c"] == 0
    assert 0.70 < firsts["a"] / 4000 < 0.80  # 3:1 -> 75%


def test_power_of_two_choices_spreads_load() -> None:
    specs = {n: {"latency": 0.1} for n in "abcd"}
    selector, config, _ = setup(specs)
    firsts = Counter(
        selector.rank("latency", config.deployments_in("g"), 1.0, BalancedWeights())[0][0].name
        for _ in range(2000)
    )
    assert set(firsts) == set("abcd")
