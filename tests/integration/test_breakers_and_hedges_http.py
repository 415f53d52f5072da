"""Breakers and hedges through real litellm over real loopback HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from router import Router, get_decision
from router._sim import Fleet

from .conftest import fleet_config

MSG = [{"role": "user", "content": "hello"}]


def config(fleet: Fleet, **router: Any) -> dict[str, Any]:
    cfg = fleet_config(fleet)
    cfg["router"].update({"strategy": "cost", **router})
    return cfg


async def test_hard_down_provider_stops_receiving_traffic_and_recovers(fleet: Fleet) -> None:
    router = Router(config(fleet, breaker_open_base=0.3, breaker_open_max=0.3), seed=0)
    fleet["a"].set(outage="503")
    attempts_on_a = []
    for _ in range(20):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "b"
        attempts_on_a += [a for a in decision.attempts if a.deployment == "a"]
    # Five failures trip the breaker; after that only a half-open probe may reach a (on a
    # slow machine the 0.3 s open period can end within the loop).
    assert len([a for a in attempts_on_a if not a.probe]) == 5
    assert fleet["a"].stats.requests == len(attempts_on_a)
    health = {h.deployment: h for h in router.health()}
    assert health["a"].state == "open" and health["a"].trips >= 1
    fleet["a"].set(outage=None)
    await asyncio.sleep(0.45)  # past the open period (0.3 s + up to 10% jitter)
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "a"
    assert decision.attempts[0].probe
    assert [e.after.value for e in decision.events] == ["half_open", "closed"]
    served = [
        get_decision(await router.acompletion("chat", MSG)).deployment  # type: ignore[union-attr]
        for _ in range(10)
    ]
    assert served == ["a"] * 10


async def test_hedge_beats_a_slow_provider(fleet: Fleet) -> None:
    router = Router(config(fleet, hedge=True, hedge_delay=0.05), seed=0)
    fleet["a"].set(latency_ms=3000)
    response = await router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None
    assert decision.deployment == "b" and decision.hedged
    assert response.choices[0].message.content == "Hello from b."
    outcomes = {(a.deployment, a.outcome, a.hedge) for a in decision.attempts}
    assert outcomes == {("a", "cancelled", False), ("b", "success", True)}
    assert "hedge beat a" in decision.reason


async def test_hedge_races_streams_to_the_first_chunk(fleet: Fleet) -> None:
    router = Router(config(fleet, hedge=True, hedge_delay=0.05), seed=0)
    fleet["a"].set(first_chunk_delay_ms=3000)
    stream = await router.acompletion("chat", MSG, stream=True)
    text = "".join([(c.choices[0].delta.content or "") async for c in stream if c.choices])
    assert text == "Hello from b."
    assert stream.decision.deployment == "b" and stream.decision.hedged


async def test_no_hedge_when_the_first_answers_in_time(fleet: Fleet) -> None:
    router = Router(config(fleet, hedge=True, hedge_delay=1.0), seed=0)
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "a" and not decision.hedged
    assert fleet["b"].stats.requests == 0


async def test_a_hanging_provider_trips_its_breaker_even_when_hedges_win(fleet: Fleet) -> None:
    router = Router(config(fleet, hedge=True, hedge_delay=0.05, breaker_open_base=30.0), seed=0)
    fleet["a"].set(hang=True)
    for _ in range(8):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment == "b"
    # A loser is judged once it is far past what an answer takes (router._engine `_lost`):
    # a hung one counts as a failure then, so after five its breaker opens and calls stop
    # paying a doubled request for it. (Before, every lost race counted at once, which also
    # ejected steady deployments that were merely slower than their hedge.)
    await asyncio.sleep(1.0)
    assert {h.deployment: h.state for h in router.health()}["a"] == "open"
    sent = fleet["a"].stats.requests
    assert 5 <= sent <= 8
    for _ in range(3):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment in ("b", "c")
    assert fleet["a"].stats.requests == sent


async def test_a_slower_healthy_provider_that_loses_hedge_races_is_not_ejected(
    fleet: Fleet,
) -> None:
    # The case: c is steady but slower than the b it races; losing is not failing.
    cfg = config(fleet, hedge=True, hedge_delay=0.01)
    router = Router(cfg, seed=0)
    fleet["a"].set(outage="503")
    fleet["b"].set(latency_ms=80.0)
    fleet["c"].set(latency_ms=20.0)
    for _ in range(12):
        decision = get_decision(await router.acompletion("chat", MSG))
        assert decision is not None and decision.deployment in ("b", "c")
    await asyncio.sleep(0.5)  # every loser judged
    states = {h.deployment: h.state for h in router.health()}
    assert states["b"] == "closed" and states["c"] == "closed"


async def test_a_failed_hedge_starts_the_next_candidate_at_once(fleet: Fleet) -> None:
    cfg = config(fleet, hedge=True, hedge_delay=0.05)
    for deployment in cfg["deployments"]:
        deployment["timeout"] = 4.0
    router = Router(cfg, seed=0)
    fleet["a"].set(hang=True)
    fleet["b"].set(outage="503")
    started = asyncio.get_running_loop().time()
    decision = get_decision(await router.acompletion("chat", MSG))
    assert decision is not None and decision.deployment == "c"
    # c started when b failed, not after a's 4 s attempt timeout (generous slack for CI)
    assert asyncio.get_running_loop().time() - started < 3.0
