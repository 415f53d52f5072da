"""Tool routing: `Pool` runs any async (or sync) callables through the real engine."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import litellm
import pytest

from router import DeadlineExceeded, NoDeploymentAvailable, RouterSettings, get_decision
from router._config import ConfigError
from router._pool import Pool, PoolSettings, Routed
from router.testing import FakeClock, error

Raise = Callable[[], BaseException]


class Tool:
    """A scripted async tool: records its calls, may take (fake) time, may raise."""

    def __init__(
        self,
        name: str,
        clock: FakeClock | None = None,
        *,
        fails: Raise | None = None,
        latency: float = 0.0,
    ) -> None:
        self.name = name
        self.clock = clock
        self.fails = fails
        self.latency = latency
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        if self.latency and self.clock is not None:
            self.clock.advance(self.latency)
        if self.fails is not None:
            raise self.fails()  # a fresh exception each call: the router adds notes to it
        return f"{self.name}:{args[0] if args else ''}"


def tools(clock: FakeClock, *names: str) -> dict[str, Tool]:
    return {name: Tool(name, clock) for name in names}


def pool(named: dict[str, Tool], clock: FakeClock, **kwargs: Any) -> Pool[..., str]:
    kwargs.setdefault("strategy", "ordered")
    kwargs.setdefault("seed", 1)
    made: Pool[..., str] = Pool(named, clock=clock, **kwargs)
    return made


# -- calls and decisions -------------------------------------------------------------------


async def test_call_passes_arguments_and_returns_the_result() -> None:
    clock = FakeClock()
    named = tools(clock, "bing", "brave")
    p = pool(named, clock)
    assert await p.call("llm routing", k=3) == "bing:llm routing"
    assert named["bing"].calls == [(("llm routing",), {"k": 3})]
    assert named["brave"].calls == []


async def test_call_routed_carries_the_decision() -> None:
    clock = FakeClock()
    p = pool(tools(clock, "bing", "brave"), clock, name="search")
    routed = await p.call_routed("q")
    assert isinstance(routed, Routed)
    assert routed.value == "bing:q"
    assert routed.served_by == "bing"
    decision = routed.decision
    assert decision.group == "search"
    assert decision.deployment == "bing"
    assert decision.outcome == "success"
    assert decision.candidate_names == ("bing", "brave")
    assert decision.attempts[0].model == "tool/bing"
    assert "served by bing (first in priority order)" in decision.reason
    assert routed.cost_usd == 0.0  # no costs given


async def test_the_documented_example() -> None:
    async def bing(query: str, k: int = 5) -> list[str]:
        return [f"bing {query}"] * k

    async def brave(query: str, k: int = 5) -> list[str]:
        return [f"brave {query}"] * k

    search = Pool(
        {"bing": bing, "brave": brave},
        strategy="cost",
        deadline=5.0,
        timeout=2.0,
        max_attempts=3,
        costs={"bing": 0.003, "brave": 0.001},
        weights={"bing": 2.0},
        caller_errors=(ValueError, TypeError),
        clock=FakeClock(),
    )
    hits: list[str] = await search.call("llm routing", k=3)  # typed: mypy infers list[str]
    assert hits == ["brave llm routing"] * 3
    routed = await search.call_routed("llm routing", k=1)
    assert (routed.value, routed.served_by, routed.cost_usd) == (
        ["brave llm routing"],
        "brave",
        0.001,
    )


# -- failover and errors -------------------------------------------------------------------


async def test_failover_from_a_failing_tool_to_the_other() -> None:
    clock = FakeClock()
    named = tools(clock, "bing", "brave")
    named["bing"].fails = lambda: ConnectionError("refused")
    routed = await pool(named, clock).call_routed("q")
    assert routed.value == "brave:q"
    decision = routed.decision
    assert [a.outcome for a in decision.attempts] == ["failure", "success"]
    assert decision.attempts[0].error == "ConnectionError"
    assert decision.failovers == 1
    assert "after 1 failed attempt(s): bing ConnectionError" in decision.reason


async def test_an_unlisted_exception_is_a_failure_of_the_tool() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: KeyError("results")  # e.g. the API changed its JSON shape
    p = pool(named, clock)
    assert await p.call("q") == "b:q"
    assert p.health()[0].error_rate == 1.0


async def test_when_every_tool_fails_the_last_own_exception_is_raised() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: ConnectionError("a down")
    named["b"].fails = lambda: RuntimeError("b broke")
    with pytest.raises(RuntimeError, match="b broke") as info:
        await pool(named, clock, max_attempts=2).call("q")
    decision = get_decision(info.value)
    assert decision is not None
    assert decision.outcome == "failed"
    assert [a.deployment for a in decision.attempts] == ["a", "b"]
    assert info.value.router_decision is decision  # type: ignore[attr-defined]


async def test_caller_errors_are_raised_at_once_and_do_not_hurt_health() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: ValueError("empty query")
    p = pool(named, clock, caller_errors=(ValueError, TypeError))
    for _ in range(8):  # more than the breaker's 5 consecutive failures
        with pytest.raises(ValueError, match="empty query") as info:
            await p.call("")
    decision = get_decision(info.value)
    assert decision is not None and decision.outcome == "caller_error"
    assert named["b"].calls == []
    a = p.health()[0]
    assert (a.deployment, a.state, a.calls, a.error_rate, a.trips) == ("a", "closed", 0, 0.0, 0)


async def test_a_timeout_fails_over_and_surfaces_as_litellm_timeout() -> None:
    # The fake clock's timeout scope is a no-op: the tool itself takes the time and times out.
    clock = FakeClock()
    named = tools(clock, "slow", "fast")
    named["slow"].latency = 2.0
    named["slow"].fails = lambda: TimeoutError()
    routed = await pool(named, clock, timeout=2.0).call_routed("q")
    assert routed.value == "fast:q"
    first = routed.decision.attempts[0]
    assert (first.outcome, first.error, first.latency_s) == ("failure", "Timeout 408", 2.0)

    only = {"slow": named["slow"]}
    with pytest.raises(litellm.Timeout) as info:
        await pool(only, clock, timeout=2.0, max_attempts=1).call("q")
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_http_status_errors_mean_what_they_mean_for_llm_providers() -> None:
    class ApiError(Exception):
        def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
            super().__init__(f"HTTP {status_code}")
            self.status_code = status_code
            self.headers = headers or {}

    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: ApiError(429, {"retry-after": "7"})
    p = pool(named, clock)
    assert await p.call("q") == "b:q"
    assert await p.call("q") == "b:q"  # the second 429 in a row pauses a
    skipped = (await p.call_routed("q")).decision.skipped
    assert skipped[0].deployment == "a" and "rate-limited for 7 s" in skipped[0].why
    assert p.health()[0].error_rate == 0.0  # a 429 is not a failure of the tool

    named["b"].fails = lambda: ApiError(400)
    before = p.health()[1]
    with pytest.raises(ApiError):
        await p.call("q")
    after = p.health()[1]
    assert (after.calls, after.error_rate) == (before.calls, 0.0)  # a 400 is the caller's


async def test_litellm_errors_from_a_tool_are_classified_as_usual() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: error(503)
    assert await pool(named, clock).call("q") == "b:q"
    named["a"].fails = lambda: error(400)
    with pytest.raises(litellm.BadRequestError):
        await pool(named, clock).call("q")


# -- breaker -------------------------------------------------------------------------------


async def test_breaker_opens_after_5_failures_then_probes_and_recovers() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: ConnectionError("refused")
    p = pool(
        named,
        clock,
        max_attempts=2,
        retry_budget_floor=100,
        breaker_open_base=30.0,
        breaker_open_max=300.0,
    )

    for _ in range(4):
        assert await p.call("q") == "b:q"
    assert p.health()[0].state == "closed"
    fifth = (await p.call_routed("q")).decision
    assert [(e.deployment, e.after.value) for e in fifth.events] == [("a", "open")]
    assert "5 consecutive failures" in fifth.events[0].reason
    assert p.health()[0].state == "open"

    # While open, `a` is skipped without an attempt.
    skipped = (await p.call_routed("q")).decision
    assert [a.deployment for a in skipped.attempts] == ["b"]
    assert len(skipped.skipped) == 1 and skipped.skipped[0].deployment == "a"
    assert skipped.skipped[0].why.startswith("breaker open")
    assert len(named["a"].calls) == 5

    # After the open period (30 s + up to 10% jitter) one probe goes; it fails: open again,
    # for twice as long.
    clock.advance(34)
    failed_probe = (await p.call_routed("q")).decision
    assert failed_probe.attempts[0].probe and failed_probe.attempts[0].outcome == "failure"
    assert [e.after.value for e in failed_probe.events] == ["half_open", "open"]
    open_for = p.health()[0].open_for_s
    assert open_for is not None and 60 <= open_for <= 66

    # It recovers; the next probe succeeds and closes the breaker.
    named["a"].fails = None
    clock.advance(67)
    recovered = (await p.call_routed("q")).decision
    assert recovered.deployment == "a" and recovered.attempts[0].probe
    assert [e.after.value for e in recovered.events] == ["half_open", "closed"]
    a = p.health()[0]
    assert (a.state, a.trips) == ("closed", 0)


async def test_a_lone_tool_with_an_open_breaker_gives_no_deployment_available() -> None:
    clock = FakeClock()
    named = tools(clock, "only")
    named["only"].fails = lambda: ConnectionError("refused")
    p = pool(named, clock, max_attempts=1)
    for _ in range(4):
        with pytest.raises(ConnectionError):
            await p.call("q")
    # The 5th failure trips the breaker; the engine then finds no candidate left before it
    # checks the attempt count, so this call already says NoDeploymentAvailable.
    with pytest.raises((ConnectionError, NoDeploymentAvailable)):
        await p.call("q")
    with pytest.raises(NoDeploymentAvailable) as info:
        await p.call("q")
    assert info.value.reasons["only"].startswith("breaker open")
    assert len(named["only"].calls) == 5


# -- strategies and cost -------------------------------------------------------------------


async def test_cost_strategy_tries_the_cheapest_first_and_records_its_price() -> None:
    clock = FakeClock()
    named = tools(clock, "bing", "brave")
    p = pool(named, clock, strategy="cost", costs={"bing": 0.003, "brave": 0.001})
    routed = await p.call_routed("q")
    assert routed.served_by == "brave"
    assert routed.decision.candidate_names == ("brave", "bing")
    assert routed.cost_usd == pytest.approx(0.001)
    assert routed.decision.attempts[0].cost_usd == pytest.approx(0.001)
    assert "cheapest healthy" in routed.decision.reason

    named["brave"].fails = lambda: ConnectionError("down")
    failed_over = await p.call_routed("q")
    assert failed_over.served_by == "bing"
    assert failed_over.cost_usd == pytest.approx(0.003)


async def test_a_free_tool_ranks_first_and_an_unpriced_one_last() -> None:
    clock = FakeClock()
    p = pool(
        tools(clock, "unpriced", "paid", "free"),
        clock,
        strategy="cost",
        costs={"paid": 0.01, "free": 0.0},
    )
    routed = await p.call_routed("q")
    assert routed.decision.candidate_names == ("free", "paid", "unpriced")
    assert routed.cost_usd == 0.0


async def test_weighted_strategy_picks_in_proportion_to_weights() -> None:
    clock = FakeClock()
    p = pool(tools(clock, "a", "b"), clock, strategy="weighted", weights={"a": 3.0}, seed=7)
    served = [await p.call("q") for _ in range(400)]
    share = served.count("a:q") / len(served)
    assert 0.65 < share < 0.85  # 3:1 is 0.75

    never = pool(tools(clock, "a", "b"), clock, strategy="weighted", weights={"a": 0.0})
    assert {await never.call("q") for _ in range(20)} == {"b:q"}


# -- sync callables and sync calls ---------------------------------------------------------


async def test_sync_callables_run_in_a_thread() -> None:
    clock = FakeClock()
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def blocking(query: str, k: int = 5) -> list[str]:
        seen.append(threading.get_ident())
        return [query] * k

    def broken(query: str, k: int = 5) -> list[str]:
        raise OSError("socket closed")

    p: Pool[..., list[str]] = Pool(
        {"broken": broken, "blocking": blocking}, strategy="ordered", clock=clock
    )
    routed = await p.call_routed("q", k=2)
    assert routed.value == ["q", "q"]
    assert routed.decision.attempts[0].error == "OSError"
    assert seen and seen[0] != loop_thread


async def test_a_sync_callable_returning_a_coroutine_is_awaited() -> None:
    async def search(query: str) -> str:
        return f"found {query}"

    p = Pool({"lazy": lambda query: search(query)}, clock=FakeClock())
    assert await p.call("x") == "found x"


def test_call_sync_from_sync_code() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b")
    named["a"].fails = lambda: ConnectionError("refused")
    p = pool(named, clock)
    assert p.call_sync("q") == "b:q"
    assert p.call_routed_sync("q").decision.failovers == 1
    with pytest.raises(ConnectionError):
        pool({"a": named["a"]}, clock, max_attempts=1).call_sync("q")


# -- real clock: timeouts and the deadline are enforced -------------------------------------


async def test_real_timeout_cancels_a_hung_tool_and_fails_over() -> None:
    cancelled: list[str] = []

    async def hung(query: str) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(query)
            raise
        return "late"

    async def quick(query: str) -> str:
        return "quick"

    p = Pool({"hung": hung, "quick": quick}, strategy="ordered", timeout=0.2, deadline=5.0)
    started = time.monotonic()
    routed = await p.call_routed("q")
    assert routed.value == "quick"
    assert time.monotonic() - started < 5
    assert cancelled == ["q"]
    assert routed.decision.attempts[0].error == "Timeout 408"


async def test_real_deadline_covers_every_attempt() -> None:
    async def hung(query: str) -> str:
        await asyncio.sleep(10)
        return "late"

    p = Pool({"a": hung, "b": hung}, strategy="ordered", timeout=0.2, deadline=0.5, max_attempts=10)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        await p.call("q")
    assert time.monotonic() - started < 5
    decision = get_decision(info.value)
    assert decision is not None and decision.outcome == "deadline_exceeded"
    assert [a.deployment for a in decision.attempts][:2] == ["a", "b"]


async def test_hedge_races_a_slow_tool() -> None:
    async def slow(query: str) -> str:
        await asyncio.sleep(10)
        return "slow"

    async def fast(query: str) -> str:
        return "fast"

    p = Pool({"slow": slow, "fast": fast}, strategy="ordered", hedge=True, hedge_delay=0.05)
    routed = await p.call_routed("q")
    assert routed.value == "fast"
    assert routed.decision.hedged
    assert "its hedge beat slow" in routed.decision.reason


# -- health --------------------------------------------------------------------------------


async def test_health_lists_every_tool_in_pool_order() -> None:
    clock = FakeClock()
    named = tools(clock, "a", "b", "c")
    named["a"].fails = lambda: ConnectionError("refused")
    named["b"].latency = 0.25
    p = pool(named, clock)
    await p.call("q")
    health = p.health()
    assert [h.deployment for h in health] == ["a", "b", "c"]
    assert (health[0].error_rate, health[0].calls, health[0].state) == (1.0, 1, "closed")
    assert health[1].latency_ms == pytest.approx(250.0)
    assert (health[2].calls, health[2].latency_ms) == (0, None)


# -- construction --------------------------------------------------------------------------


def test_an_unknown_keyword_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"'dedline'.*did you mean 'deadline'"):
        Pool({"a": Tool("a")}, dedline=5.0)  # type: ignore[call-overload]


def test_invalid_settings_are_reported_together() -> None:
    fastest: Any = "fastest"  # wrong on purpose: a type checker would refuse it
    with pytest.raises(ConfigError) as info:
        Pool(
            {"a": Tool("a")},
            strategy=fastest,
            deadline=-1.0,
            balanced_weights={"cost": -1.0},
        )
    text = str(info.value)
    assert "Pool: deadline: input should be greater than 0 (got -1.0)" in text
    assert "Pool: strategy:" in text and "'fastest'" in text
    assert "Pool: balanced_weights.cost:" in text


def test_invalid_tools_costs_and_weights() -> None:
    with pytest.raises(ConfigError) as info:
        Pool({"bing": Tool("bing")}, costs={"bingg": 0.1}, weights={"bing": -2.0})
    assert info.value.problems == [
        "Pool: costs: no tool named 'bingg' (did you mean 'bing'?)",
        "Pool: weights.bing: must be a number >= 0 (got -2.0)",
    ]
    with pytest.raises(ConfigError, match="at least one callable"):
        Pool({})
    url: Any = "https://api.example"  # wrong on purpose, as are the caller_errors below
    with pytest.raises(TypeError, match="not callable"):
        Pool({"a": url})
    errors: Any = (ValueError, "KeyError")
    with pytest.raises(TypeError, match="caller_errors"):
        Pool({"a": Tool("a")}, caller_errors=errors)


def test_settings_reach_the_engine() -> None:
    p = Pool({"a": Tool("a")}, strategy="latency", deadline=5.0, timeout=2.0, max_attempts=4)
    assert (p.settings.strategy, p.settings.deadline, p.settings.timeout) == (
        "latency",
        5.0,
        2.0,
    )
    assert p.settings.max_attempts == 4
    assert p.deployments[0].model == "tool/a"


def test_pool_settings_track_router_settings() -> None:
    # PoolSettings spells out RouterSettings for type checkers; a new field must be added there.
    # Model routing (rules, escalation, context, records) is for LLM calls, not tools.
    llm_only = {
        "strategy",
        "weights",
        "first_chunk_timeout",
        "first_chunk_slo",
        "escalate_to",
        "escalate_on",
        "min_logprob",
        "min_confidence",
        "max_escalations",
        "escalation_cost_cap",
        "on_exhausted",
        "long_context",
        "auto_model",
        "record_file",
    }
    expected = set(RouterSettings.model_fields) - llm_only
    assert set(PoolSettings.__optional_keys__) == expected | {"balanced_weights"}
