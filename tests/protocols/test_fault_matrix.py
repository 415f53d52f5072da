"""The fault matrix, per wire protocol, plain and streaming, through real litellm over HTTP.

Every cell names its outcome: which deployment serves the call (failover or not), or what the
caller gets raised (and when: at the call, or while reading the stream), the outcome recorded
for the broken primary's attempt, and the effect on the primary's health (error counted or
not, breaker opened or not). The README's "Provider notes" table is this matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import litellm
import pytest

from router import Router, StreamInterrupted, get_decision
from router._sim import Fleet

from .conftest import ALL, group_config

MSG = [{"role": "user", "content": "hello there"}]


@dataclass(frozen=True)
class Served:
    """The call succeeds on `by` (``"p"`` primary, ``"q"`` spare after failover)."""

    by: str
    outcome: str | None = None  # of the primary's attempt, when it failed over
    finish: str = "stop"
    counted: bool = False  # the primary's error rate went up
    opened: bool = False  # the primary's breaker is open afterwards


@dataclass(frozen=True)
class Raises:
    """The caller gets `error`; ``during_stream``: raised while reading, after a first chunk."""

    error: type[BaseException]
    during_stream: bool = False
    counted: bool = False
    spare_asked: bool = False


Expect = Served | Raises

FAILOVER = Served("q", "failure", counted=True)
INTERRUPTED = Raises(StreamInterrupted, during_stream=True, counted=True)


@dataclass(frozen=True)
class Cell:
    knobs: dict[str, Any]
    plain: Expect
    stream: Expect
    only: frozenset[str] = field(default_factory=lambda: frozenset(ALL))


CELLS: dict[str, Cell] = {
    "ok": Cell({}, Served("p"), Served("p")),
    "refused": Cell({"outage": "refused"}, FAILOVER, FAILOVER),
    "outage": Cell({"outage": "503"}, FAILOVER, FAILOVER),
    "500": Cell({"error_rate": 1.0, "error_status": 500}, FAILOVER, FAILOVER),
    "502": Cell({"error_rate": 1.0, "error_status": 502}, FAILOVER, FAILOVER),
    "503": Cell({"error_rate": 1.0, "error_status": 503}, FAILOVER, FAILOVER),
    "529-overloaded": Cell(
        {"error_rate": 1.0, "error_status": 529}, FAILOVER, FAILOVER, frozenset({"anthropic"})
    ),
    "429": Cell(
        {"rate_limit_rate": 1.0, "retry_after_s": 0.2},
        Served("q", "rate_limited"),
        Served("q", "rate_limited"),
    ),
    "hang": Cell({"hang": True}, FAILOVER, FAILOVER),
    "slow-first-token": Cell({"first_chunk_delay_ms": 150.0}, Served("p"), Served("p")),
    "cut-mid-stream": Cell({"cut_stream_after": 2}, Served("p"), INTERRUPTED),
    "cut-before-first-chunk": Cell({"cut_stream_after": 0}, Served("p"), FAILOVER),
    "in-band-error-mid-stream": Cell({"stream_error_after": 2}, Served("p"), INTERRUPTED),
    "in-band-error-first": Cell(
        {"stream_error_after": 0}, Served("p"), FAILOVER, frozenset(ALL) - {"bedrock"}
    ),
    # Bedrock's in-band error is a throttlingException frame: a rate limit, not a failure.
    "in-band-throttle-first": Cell(
        {"stream_error_after": 0},
        Served("p"),
        Served("q", "rate_limited"),
        frozenset({"bedrock"}),
    ),
    "no-finish-reason": Cell({"stream_no_finish": True}, Served("p"), INTERRUPTED),
    "malformed": Cell({"malformed": True}, FAILOVER, FAILOVER),
    "401": Cell(
        {"auth_fail": True},
        Served("q", "misconfigured", opened=True),
        Served("q", "misconfigured", opened=True),
    ),
    # Both deployments have the same window: nowhere larger to go, the caller's error.
    "context-window": Cell(
        {"context_window": 1},
        Raises(litellm.ContextWindowExceededError),
        Raises(litellm.ContextWindowExceededError),
    ),
    "content-filter": Cell(
        {"content_filter": True},
        Served("p", finish="content_filter"),
        Served("p", finish="content_filter"),
        frozenset(ALL) - {"azure"},
    ),
    "content-filter-azure": Cell(
        {"content_filter": True},
        Raises(litellm.ContentPolicyViolationError),
        Raises(litellm.ContentPolicyViolationError),
        frozenset({"azure"}),
    ),
}

CASES = [
    pytest.param(protocol, name, stream, id=f"{protocol}-{name}-{'stream' if stream else 'plain'}")
    for protocol in ALL
    for name, cell in CELLS.items()
    if protocol in cell.only
    for stream in (False, True)
]


def _router(fleet: Fleet, protocol: str, name: str) -> Router:
    timeout = 0.4 if name == "hang" else 5.0
    return Router(group_config(fleet, protocol, timeout=timeout), seed=0)


async def _call(router: Router, protocol: str, stream: bool) -> tuple[Any, str | None, int]:
    """(result, finish reason, chunks) of one call; raises what the router raises."""
    result = await router.acompletion(protocol, MSG, stream=stream)
    if not stream:
        return result, result.choices[0].finish_reason, 0
    reasons = []
    chunks = 0
    async for chunk in result:
        chunks += 1
        for choice in chunk.choices or ():
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    return result, (reasons[-1] if reasons else None), chunks


def _primary(router: Router, protocol: str) -> Any:
    return next(h for h in router.health() if h.deployment == f"{protocol}-p")


@pytest.mark.parametrize(("protocol", "name", "stream"), CASES)
async def test_fault_cell(fleet: Fleet, protocol: str, name: str, stream: bool) -> None:
    cell = CELLS[name]
    expect = cell.stream if stream else cell.plain
    fleet[f"{protocol}-p"].set(**cell.knobs)
    router = _router(fleet, protocol, name)
    spare = fleet[f"{protocol}-q"]
    if isinstance(expect, Raises):
        opened = False
        with pytest.raises(expect.error) as info:
            result = await router.acompletion(protocol, MSG, stream=stream)
            opened = True
            if stream:
                async for _ in result:
                    pass
        assert opened is expect.during_stream, "raised at the wrong point"
        decision = get_decision(info.value)
        assert decision is not None
        assert (spare.stats.requests > 0) is expect.spare_asked
        primary = _primary(router, protocol)
        assert (primary.error_rate > 0) is expect.counted
        return
    result, finish, _ = await _call(router, protocol, stream)
    decision = get_decision(result)
    assert decision is not None and decision.outcome == "success"
    assert decision.deployment == f"{protocol}-{expect.by}"
    assert finish == expect.finish
    if expect.by == "q":
        first = decision.attempts[0]
        assert first.deployment == f"{protocol}-p"
        assert first.outcome == expect.outcome
        assert first.error is not None
    else:
        assert len(decision.attempts) == 1
    primary = _primary(router, protocol)
    assert (primary.error_rate > 0) is expect.counted
    assert (primary.state == "open") is expect.opened
