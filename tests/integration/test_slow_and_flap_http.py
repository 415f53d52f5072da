"""Slow and flapping providers on the loopback fleet, through real litellm, on the defaults.

No timing is asserted: who served which call, and that no call failed. (How fast and how
cheap is what scripts/bench_scenarios.py measures.)
"""

from __future__ import annotations

import asyncio

from router import Router, get_decision
from router._sim import Fleet

from .conftest import fleet_config

MSG = [{"role": "user", "content": "hello"}]


async def served(router: Router, n: int, gap: float = 0.0) -> list[str]:
    out = []
    for _ in range(n):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment is not None
        out.append(decision.deployment)
        if gap:
            await asyncio.sleep(gap)
    return out


async def test_a_browned_out_cheap_provider_loses_its_traffic_and_wins_it_back(
    fleet: Fleet,
) -> None:
    router = Router(fleet_config(fleet, timeout=2.0), seed=0)  # default strategy and rules
    assert set(await served(router, 15)) == {"a"}  # a's baseline: cheap and fast
    fleet["a"].set(latency_ms=300.0)  # a brownout: never an error, 150 times slower
    during = await served(router, 30)
    assert during[-20:].count("a") <= 2, during  # degraded: demoted, a probe now and then
    assert "b" in during
    fleet["a"].set(latency_ms=2.0)
    after = await served(router, 25, gap=0.1)  # probes see the recovery
    assert after[-8:] == ["a"] * 8, after
    health = {h.deployment: h for h in router.health()}
    assert health["a"].state == "closed"  # slow is degraded, not a breaker failure


async def test_a_flapping_cheap_provider_costs_no_call_and_is_back_after(fleet: Fleet) -> None:
    router = Router(fleet_config(fleet), seed=0)
    await served(router, 10)
    for _ in range(3):
        fleet["a"].set(outage="503")
        await served(router, 12, gap=0.02)  # every call succeeds (served() asserts it)
        fleet["a"].set(outage=None)
        await served(router, 12, gap=0.02)
    fleet["a"].set(outage=None)
    await asyncio.sleep(1.2)  # past the open period
    final = await served(router, 20, gap=0.05)
    assert final[-10:] == ["a"] * 10, final


async def test_a_latency_objective_moves_traffic_off_a_cheap_provider_that_misses_it(
    fleet: Fleet,
) -> None:
    # a turns 45 ms slower: too little for the default slow rule (which needs 3x and 50 ms
    # over its baseline), but over the group's 30 ms p95 objective, which b meets.
    config = fleet_config(fleet, timeout=2.0)
    config["groups"] = {"chat": {"latency_slo": 0.03, "slo_percentile": 0.95}}
    router = Router(config, seed=0)
    assert set(await served(router, 15)) == {"a"}
    fleet["a"].set(latency_ms=47.0)
    decisions = []
    for _ in range(30):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment is not None
        decisions.append(decision)
    during = [d.deployment for d in decisions]
    assert during[-20:].count("a") <= 3, during  # a probe a second at most
    assert "b" in during and "c" not in during[-20:], during  # b meets it and is cheaper than c
    assert any(d.deployment == "b" and "slo: a p95" in d.reason for d in decisions)
    fleet["a"].set(latency_ms=2.0)
    after = await served(router, 30, gap=0.1)  # its probes see the recovery
    assert after[-8:] == ["a"] * 8, after
