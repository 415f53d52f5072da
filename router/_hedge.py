"""Hedging: race a call's first attempt against a delayed second one; the first success wins.

With ``hedge = true`` the attempt loop (router._attempts) hands each attempt here: after
`hedge_delay` (or the first's observed p95) without an answer, the next candidate starts too; a
racer that fails while another is out is replaced by the next candidate at once (bounded by
`max_attempts` and the retry budget); the first success wins, the others are cancelled and
their slowness counts against them (`lost`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from router._errors import Outcome

if TYPE_CHECKING:
    from router._attempts import AttemptLoop, Result
    from router._call import Call
    from router._config import Deployment

__all__ = ["HEDGE_FALLBACK_DELAY_S", "cancel_all", "hedge_target", "hedged", "lost"]

T = TypeVar("T")

HEDGE_FALLBACK_DELAY_S = 0.5
"""Hedge delay with ``hedge_delay = "p95"`` before the first candidate has 10 samples."""


async def hedged(
    loop: AttemptLoop,
    call: Call,
    primary: Deployment,
    probe: bool,
    timeout: float,
    ranked: list[Deployment],
    tries: dict[str, int],
    attempt: Callable[[Deployment, float], Awaitable[T]],
    first_chunk: bool,
    discard: Callable[[T], None] | None,
) -> Result[T]:
    """Race the primary attempt against one delayed hedge; the first success wins."""
    clock = loop.clock
    first_started = clock.now()
    first = asyncio.ensure_future(
        loop._attempt(call, primary, probe, timeout, attempt, first_chunk)
    )
    settings = call.settings
    delay: float
    if isinstance(settings.hedge_delay, float):
        delay = settings.hedge_delay
    else:
        delay = loop.state.get(primary.name).health.hedge_delay() or HEDGE_FALLBACK_DELAY_S
    now = clock.now()
    try:
        done, _ = await asyncio.wait({first}, timeout=min(delay, call.deadline_at - now))
    except asyncio.CancelledError:
        first.cancel()
        raise
    if done:
        return first.result()
    now = clock.now()
    target = hedge_target(loop, call, ranked, tries, now)
    if target is None:
        return await first
    hedge_to, hedge_probe = target
    if not loop.budget.withdraw(now):
        loop._release(hedge_to, hedge_probe)
        call.notes.append(f"no hedge: {loop.budget.describe(now)}")
        return await first

    def racer(deployment: Deployment, probe: bool, now: float) -> asyncio.Future[Result[T]]:
        tries[deployment.name] = tries.get(deployment.name, 0) + 1
        timeout = loop._timeout(call, deployment, first_chunk, now)
        return asyncio.ensure_future(
            loop._attempt(call, deployment, probe, timeout, attempt, first_chunk, hedge=True)
        )

    racers: dict[asyncio.Future[Result[T]], tuple[Deployment, bool, float]] = {
        first: (primary, probe, first_started)
    }
    pending: set[asyncio.Future[Result[T]]] = {first, racer(hedge_to, hedge_probe, now)}
    racers[next(iter(pending - {first}))] = (hedge_to, hedge_probe, now)
    done_set: set[asyncio.Future[Result[T]]]
    failed: list[Result[T]] = []
    try:
        while pending:
            done_set, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner: Result[T] | None = None
            for task in done_set:
                result = task.result()
                if result.outcome is Outcome.SUCCESS:
                    if winner is None:
                        winner = result
                    elif discard is not None and result.value is not None:
                        discard(result.value)  # both won at once: close the spare stream
                elif result.outcome is Outcome.CALLER_ERROR:
                    winner = winner or result  # it would fail anywhere: stop racing
                else:
                    failed.append(result)
            if winner is not None:
                await cancel_all(pending)
                now = clock.now()
                for task in pending:  # the losers: slower than a hedge, and that counts
                    loser, was_probe, started = racers[task]
                    lost(loop, call, loser, was_probe, now - started)
                return winner
            if failed and pending:
                # A racer failed while another is still out: start the next candidate now
                # instead of waiting on the slow one (bounded by attempts and budget).
                now = clock.now()
                made = len(call.attempts)
                nxt = hedge_target(loop, call, ranked, tries, now)
                if nxt is not None and (
                    made >= call.settings.max_attempts or not loop.budget.withdraw(now)
                ):
                    loop._release(*nxt)
                    nxt = None
                if nxt is not None:
                    task = racer(nxt[0], nxt[1], now)
                    racers[task] = (nxt[0], nxt[1], now)
                    pending.add(task)
    except asyncio.CancelledError:
        await cancel_all(pending)
        raise
    return failed[-1]


def lost(
    loop: AttemptLoop, call: Call, deployment: Deployment, probe: bool, elapsed: float
) -> None:
    """A racer cancelled because another won: slowness is evidence against it.

    Its time so far feeds the latency EWMA and it counts as a failure, so a deployment
    that hangs stops getting first attempts (and a probe that lost re-opens the breaker)
    instead of being hedged around forever.
    """
    now = loop.clock.now()
    state = loop.state.get(deployment.name)
    state.health.observe_latency(elapsed, now, completed=False)
    state.health.record(False)
    transition = state.breaker.record(
        False, now, call.policy, probe=probe, why=f"lost to a hedge after {elapsed:.2f} s"
    )
    if transition is not None:
        loop._emit(call, transition)


def hedge_target(
    loop: AttemptLoop, call: Call, ranked: list[Deployment], tries: Mapping[str, int], now: float
) -> tuple[Deployment, bool] | None:
    for deployment in ranked:
        if tries.get(deployment.name):
            continue
        probe = loop._admit(call, deployment, now)
        if probe is not None:
            return deployment, probe
    return None


async def cancel_all(pending: set[asyncio.Future[Any]]) -> None:
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
