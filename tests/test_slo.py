"""Explicit latency objectives per group (router._slo): the config keys, the expected
percentile, the order (cheapest expected to meet, else the fastest expected), the probes and
the reason; then through the engine on the fake clock and backend, and a probe's race on the
real clock (far from the thresholds on either side).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest

from router import Router
from router._config import BalancedWeights, Config, ConfigError, Deployment
from router._decision import Decision, get_decision
from router._loading import load_config
from router._select import Selector
from router._slo import PROBE_INTERVAL_S, Objective, Objectives, objective_of
from router._state import MemoryState
from router.testing import FakeBackend, FakeClock, ok

MSG = [{"role": "user", "content": "hi"}]
PRICES = {"a": 1e-7, "b": 2e-7, "c": 5e-7}
ABC = ["a", "b", "c"]


def deployments_config(prices: dict[str, float], **router: Any) -> dict[str, Any]:
    return {
        "router": router,
        "deployments": [
            {
                "name": name,
                "model": f"openai/{name}",
                "groups": ["chat"],
                "input_cost_per_token": price,
                "output_cost_per_token": price,
                "timeout": 5.0,
            }
            for name, price in prices.items()
        ],
    }


def setup(
    prices: dict[str, float] = PRICES,
) -> tuple[Objectives, Selector, list[Deployment], MemoryState]:
    config = Config.from_dict(deployments_config(prices))
    state = MemoryState()
    selector = Selector(FakeBackend(FakeClock()), state, random.Random(0))
    return Objectives(selector, state), selector, config.deployments_in("chat"), state


def feed(state: MemoryState, name: str, seconds: float, n: int, at: float = 0.0, **kw: Any) -> None:
    for i in range(n):
        state.get(name).health.observe_latency(seconds, at + i * 0.001, **kw)


def ordered(
    objectives: Objectives,
    selector: Selector,
    deployments: list[Deployment],
    objective: Objective,
    now: float,
    stream: bool = False,
) -> tuple[list[str], list[str], str | None]:
    ranked = [d for d, _ in selector.rank("cost", deployments, now, BalancedWeights(), stream)]
    notes: list[str] = []
    order, probe = objectives.order(ranked, objective, stream, now, notes)
    return [d.name for d in order], notes, None if probe is None else probe.name


# --- the settings ---------------------------------------------------------------------------


def test_objectives_are_off_by_default_and_inherit_from_router_to_group() -> None:
    config = Config.from_dict(
        {
            **deployments_config(PRICES, latency_slo=0.5),
            "groups": {"chat": {"first_chunk_slo": 0.2, "slo_percentile": 0.99}},
        }
    )
    assert objective_of(Config.from_dict(deployments_config(PRICES)).settings_for("chat")) is None
    objective = objective_of(config.settings_for("chat"))
    assert objective == Objective(percentile=0.99, latency=0.5, first_chunk=0.2)
    assert objective_of(config.settings_for("a")) == Objective(0.95, 0.5, None)


def test_the_percentile_sets_the_window_and_the_label() -> None:
    assert (Objective(0.95).window, Objective(0.95).label) == (20, "p95")
    assert (Objective(0.9).window, Objective(0.5).window) == (20, 20)
    assert (Objective(0.98).window, Objective(0.99).window) == (50, 64)
    assert Objective(0.99).label == "p99"


TOML = """
[[deployments]]
name = "a"
model = "openai/a"
groups = ["chat"]

[groups.chat]
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("latency_slo = -1", "groups.chat.latency_slo: must be a number > 0 (got -1)"),
        ("latency_slo = true", "groups.chat.latency_slo: must be a number > 0 (got true)"),
        ('first_chunk_slo = "fast"', "groups.chat.first_chunk_slo: must be a number > 0"),
        ("slo_percentile = 1.5", "slo_percentile: must be a number >= 0.5 and <= 0.99 (got 1.5)"),
        ("slo_percentile = 0.2", "slo_percentile: must be a number >= 0.5 and <= 0.99 (got 0.2)"),
        ("latency_sla = 0.3", "did you mean 'latency_slo'?"),
    ],
)
def test_a_bad_objective_names_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "providers.toml").write_text(TOML + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config("providers.toml", env={})
    [problem] = info.value.problems
    assert problem.startswith("providers.toml: ") and expected in problem


def test_objectives_are_overridden_from_the_environment_like_every_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("ROUTER_")]:
        monkeypatch.delenv(name)
    (tmp_path / "providers.toml").write_text(TOML + "latency_slo = 0.5\n", encoding="utf-8")
    env = {"ROUTER_GROUPS__CHAT__LATENCY_SLO": "0.3", "ROUTER_SLO_PERCENTILE": "0.9"}
    config = load_config("providers.toml", env=env)
    assert objective_of(config.settings_for("chat")) == Objective(0.9, 0.3, None)
    with pytest.raises(ConfigError) as info:
        load_config("providers.toml", env={"ROUTER_GROUPS__CHAT__LATENCY_SLO": "0"})
    assert "groups.chat.latency_slo (from env ROUTER_GROUPS__CHAT__LATENCY_SLO)" in str(info.value)


# --- the expected percentile and the order ----------------------------------------------------


def test_the_cheapest_expected_to_meet_goes_first_and_the_reason_says_why() -> None:
    objectives, selector, deployments, state = setup()
    feed(state, "a", 0.41, 20)  # cheap, steady, but over the objective
    feed(state, "b", 0.10, 20)
    feed(state, "c", 0.05, 20)
    objective = Objective(0.95, latency=0.30)
    order, notes, probe = ordered(objectives, selector, deployments, objective, 0.0)
    assert probe == "a"  # never probed yet: its first call as a probe
    order, notes, probe = ordered(objectives, selector, deployments, objective, 0.5)
    assert (order, probe) == (["b", "c", "a"], None)  # b, not c: the cheapest that meets
    assert notes == ["slo: a p95 0.41 s > 0.30 s"]


def test_the_percentile_is_over_the_recent_window_not_the_median() -> None:
    objectives, selector, deployments, state = setup()
    for i in range(20):  # a: mostly fast, but 3 of 20 slow (the latest too): its p95 is slow
        feed(state, "a", 0.5 if i % 7 == 5 else 0.01, 1, at=i)
    feed(state, "b", 0.05, 20)
    objective = Objective(0.95, latency=0.3)
    assert objectives.expected(deployments[0], deployments, False, objective, 30.0) == 0.5
    assert objectives.expected(deployments[0], deployments, False, Objective(0.5), 30.0) == 0.01
    objectives._next_probe["a"] = 100.0
    assert ordered(objectives, selector, deployments, objective, 30.0)[0][0] == "b"
    # With an objective at the median, a meets it again and keeps its rank.
    assert ordered(objectives, selector, deployments, Objective(0.5, latency=0.3), 30.0)[0] == ABC


def test_when_none_meets_the_fastest_expected_goes_first() -> None:
    objectives, selector, deployments, state = setup()
    feed(state, "a", 0.9, 20)
    feed(state, "b", 0.4, 20)
    feed(state, "c", 0.6, 20)
    objectives._next_probe.update(a=100.0)
    order, notes, probe = ordered(objectives, selector, deployments, Objective(0.95, 0.3), 0.0)
    assert (order, probe) == (["b", "c", "a"], None)
    assert notes == [
        "slo: none expected to meet p95 0.30 s; fastest expected first: b p95 0.40 s > 0.30 s"
    ]


def test_all_meeting_leaves_the_strategys_order_and_says_nothing() -> None:
    objectives, selector, deployments, state = setup()
    for name in PRICES:
        feed(state, name, 0.02, 20)
    assert ordered(objectives, selector, deployments, Objective(0.95, 0.3), 0.0) == (
        ["a", "b", "c"],
        [],
        None,
    )


def test_a_missing_deployment_gets_one_probe_a_second_first_in_the_order() -> None:
    objectives, selector, deployments, state = setup()
    feed(state, "a", 0.5, 20)
    feed(state, "b", 0.05, 20)
    objective = Objective(0.95, 0.3)
    probes = [
        ordered(objectives, selector, deployments, objective, 10.0 + i * 0.01) for i in range(50)
    ]
    assert [p[2] for p in probes].count("a") == 1 and probes[0][0][0] == "a"
    assert probes[0][1] == ["slo probe: a (p95 0.50 s > 0.30 s)"]
    assert all(p[0][0] == "b" for p in probes[1:])
    later = ordered(objectives, selector, deployments, objective, 10.0 + PROBE_INTERVAL_S + 0.01)
    assert later[2] == "a"


def test_a_dearer_deployment_that_misses_is_not_probed() -> None:
    objectives, selector, deployments, state = setup()
    feed(state, "a", 0.05, 20)
    feed(state, "b", 0.05, 20)
    feed(state, "c", 0.9, 20)  # misses, but a meets and is cheaper: its recovery changes nothing
    for i in range(30):
        order, notes, probe = ordered(
            objectives, selector, deployments, Objective(0.95, 0.3), i * 0.5
        )
        assert (order, notes, probe) == (["a", "b", "c"], [], None)


def test_a_probe_within_the_objective_makes_the_next_call_a_probe_and_recovery_follows() -> None:
    objectives, selector, deployments, state = setup()
    feed(state, "a", 0.5, 20)
    feed(state, "b", 0.05, 20)
    objective = Objective(0.95, 0.3)
    assert ordered(objectives, selector, deployments, objective, 10.0)[2] == "a"
    # Recovered: each probe answers fast, so each next call is a probe too, and once its fast
    # answers are 19 of the last 20, a meets the objective outright.
    firsts = []
    for i in range(25):
        feed(state, "a", 0.01, 1, at=10.1 + i * 0.01)
        firsts.append(ordered(objectives, selector, deployments, objective, 10.1 + i * 0.01))
    assert all(f[0][0] == "a" for f in firsts)
    assert [f[2] for f in firsts[:18]] == ["a"] * 18
    assert firsts[-1] == (["a", "b", "c"], [], None)


def test_a_young_deployment_is_judged_by_its_peers_baseline() -> None:
    objectives, selector, deployments, state = setup({"a": 1e-7, "a2": 1e-7, "b": 2e-7})
    feed(state, "a", 0.01, 40)  # a's typical: 10 ms
    feed(state, "a", 0.5, 20, at=5.0)  # now slow
    feed(state, "b", 0.02, 40)
    objectives._next_probe["a"] = 100.0
    a2 = deployments[1]
    # a2 has no sample: its expected is its baseline, a's long-run typical (the most lenient
    # peer's), not a's brownout: it meets the objective and takes a's traffic, not dearer b.
    expected = objectives.expected(a2, deployments, False, Objective(0.95, 0.3), 6.0)
    assert expected is not None and expected < 0.05
    assert ordered(objectives, selector, deployments, Objective(0.95, 0.3), 6.0)[0] == [
        "a2",
        "b",
        "a",
    ]


def test_nothing_known_at_all_counts_as_meeting_so_new_deployments_are_tried() -> None:
    objectives, selector, deployments, _ = setup()
    assert (
        objectives.expected(deployments[0], deployments, False, Objective(0.95, 0.3), 0.0) is None
    )
    assert ordered(objectives, selector, deployments, Objective(0.95, 0.3), 0.0)[0] == ABC


def test_an_attempt_still_out_past_the_percentile_counts_as_a_sample_of_its_age() -> None:
    objectives, selector, deployments, state = setup()
    feed(state, "a", 0.01, 64)
    feed(state, "b", 0.05, 64)
    objective = Objective(0.99, 0.3)  # the largest of the last 64
    track = state.get("a").health.track(False)
    track.begin(100.0)
    expected = objectives.expected(deployments[0], deployments, False, objective, 100.2)
    assert expected == pytest.approx(0.2)
    objectives._next_probe["a"] = 1000.0
    assert ordered(objectives, selector, deployments, objective, 100.2)[0][0] == "a"
    order, notes, _ = ordered(objectives, selector, deployments, objective, 100.5)
    assert order[0] == "b" and notes == ["slo: a p99 0.50 s > 0.30 s"]


def test_streams_are_judged_on_first_chunk_and_whole_time_plain_calls_on_latency() -> None:
    objectives, selector, deployments, state = setup()
    for name in PRICES:
        feed(state, name, 0.05, 20)  # whole calls: fast everywhere
    feed(state, "a", 0.40, 20, first_chunk=True)  # a's first chunk is slow
    feed(state, "b", 0.02, 20, first_chunk=True)
    feed(state, "c", 0.02, 20, first_chunk=True)
    objectives._next_probe["a"] = 100.0
    objective = Objective(0.95, latency=1.0, first_chunk=0.2)
    plain = ordered(objectives, selector, deployments, objective, 0.0)
    assert plain[0] == ["a", "b", "c"]  # a plain call has no first chunk
    order, notes, _ = ordered(objectives, selector, deployments, objective, 0.0, stream=True)
    assert order == ["b", "c", "a"] and notes == ["slo: a first chunk p95 0.40 s > 0.20 s"]
    only_first = Objective(0.95, first_chunk=0.2)
    assert ordered(objectives, selector, deployments, only_first, 0.0)[0] == ["a", "b", "c"]


# --- through the engine --------------------------------------------------------------------


def served(decision: Decision | None) -> str:
    assert decision is not None and decision.deployment is not None
    return decision.deployment


async def test_traffic_moves_to_the_cheapest_that_meets_then_comes_back_on_recovery() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    backend.script("a", default=ok("a", latency=0.4))
    backend.script("b", default=ok("b", latency=0.1))
    backend.script("c", default=ok("c", latency=0.05))
    state = MemoryState()
    config = deployments_config(PRICES, latency_slo=0.3, strategy="cost")
    router = Router(config, backend=backend, clock=clock, state=state, seed=0)
    for _ in range(40):  # a's history: 50 ms, until a brownout: 0.4 s
        state.get("a").health.observe_latency(0.05, clock.now())
    began = clock.now()
    decisions = [get_decision(await router.acompletion("chat", MSG)) for _ in range(40)]
    took = clock.now() - began
    who = [served(d) for d in decisions]
    assert who[0] == "a" and "c" not in who  # b is young: judged by a's long-run typical
    assert who[-10:].count("b") >= 8  # a probe a second on a, the rest on b
    reasons = [d.reason for d in decisions if d is not None]
    assert "served by b (cheapest healthy); slo: a p95 0.40 s > 0.30 s" in reasons
    probes = sum("slo probe: a (p95 0.40 s > 0.30 s)" in r for r in reasons)
    assert 1 <= probes <= took / PROBE_INTERVAL_S + 1
    moved = next(d for d in decisions if d is not None and d.deployment == "b")
    assert [c.deployment for c in moved.candidates] == ["b", "c", "a"]
    # a recovers: its next probe answers within the objective, so the calls after it are
    # probes too, until its window meets the objective again.
    backend.script("a", default=ok("a", latency=0.05))
    clock.advance(PROBE_INTERVAL_S)
    after = [get_decision(await router.acompletion("chat", MSG)) for _ in range(30)]
    assert [served(d) for d in after[-10:]] == ["a"] * 10
    last = after[-1]
    assert last is not None and last.reason == "served by a (cheapest healthy)"


async def test_without_objectives_the_same_fleet_stays_on_the_cheapest() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    backend.script("a", default=ok("a", latency=0.4))
    backend.script("b", default=ok("b", latency=0.1))
    state = MemoryState()
    router = Router(deployments_config(PRICES), backend=backend, clock=clock, state=state, seed=0)
    for _ in range(20):
        state.get("a").health.observe_latency(0.4, clock.now())
    decisions = [get_decision(await router.acompletion("chat", MSG)) for _ in range(5)]
    assert [served(d) for d in decisions] == ["a"] * 5


async def test_a_probe_of_a_missing_deployment_is_raced_so_its_caller_does_not_wait() -> None:
    # Real clock: a answers in 400 ms, b in 5 ms; the probe on a is raced against b after
    # twice b's expected latency (10 ms). The caller is served by b long before 400 ms.
    state = MemoryState()
    for _ in range(20):
        state.get("a").health.observe_latency(0.4, 0.0)
        state.get("b").health.observe_latency(0.005, 0.0)
    from tests.test_rescue import Scripted, after

    backend = Scripted({"a": after(0.4), "b": after(0.005)})
    config = deployments_config({"a": 1e-7, "b": 2e-7}, latency_slo=0.1, deadline=10.0)
    router = Router(config, backend=backend, state=state, seed=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    decision = get_decision(await router.acompletion("chat", MSG))
    took = loop.time() - started
    assert decision is not None and decision.deployment == "b"
    assert backend.calls[:2] == ["a", "b"] and "slo probe: a" in decision.reason
    assert took < 0.3
