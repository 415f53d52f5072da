"""Hedging: race a call's first attempt against a delayed second one; the first success wins.

With ``hedge = true`` the attempt loop (router._attempts) hands each attempt here: after
`hedge_delay` (or the first's observed p95) without an answer, the next candidate starts too; a
racer that fails while another is out is replaced by the next candidate at once (bounded by
`max_attempts` and the retry budget); the first success wins, the others are cancelled and
their slowness counts against them (`lost`). `race_delay` says when a second attempt starts at
all: a hedge, or the rescue of a primary past its `hung_after`, with or without hedging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from router._decision import AttemptRecord
from router._errors import Outcome

if TYPE_CHECKING:
    from router._attempts import AttemptLoop, Result
    from router._call import Call
    from router._config import Deployment
    from router._health import LatencyTrack

__all__ = [
    "HEDGE_FALLBACK_DELAY_S",
    "can_win_after",
    "cancel_all",
    "hedge_target",
    "hedged",
    "hung_after",
    "lost",
    "race_delay",
    "rescued",
]

T = TypeVar("T")

HEDGE_FALLBACK_DELAY_S = 0.5
"""Hedge delay with ``hedge_delay = "p95"`` before the first candidate has 10 samples."""


def hung_after(
    loop: AttemptLoop, deployment: Deployment, peers: Sequence[Deployment], first_chunk: bool
) -> float | None:
    """Seconds after which an attempt on `deployment` is presumed hung, or None.

    Its own `LatencyTrack.hung_after` once it has 10 completed samples. Before that (a
    deployment new to this process, or one that rarely gets traffic, like a second region
    behind a cheaper first), the sooner of the most lenient (largest) `hung_after` among
    `peers` (the group's deployments, those out of the running too: a cheaper one whose
    breaker is open still knows what is normal, and is often the only one with a history
    when its outage sends traffic to the cold ones) and its `Selector.slow_after` (the age at
    which it would be judged degraded against its peers' baseline): a cold deployment that
    hangs, or is hit by a brownout before it has a history, is rescued instead of being
    waited on, and one merely slower than its peers (under 3x the slowest one's normal) is
    not raced. None when no peer has a figure either.
    """
    own = loop.state.get(deployment.name).health.track(first_chunk).hung_after()
    if own is not None:
        return own
    selector = loop.selector
    now = loop.clock.now()
    borrowed = selector.from_peers(deployment, peers, first_chunk, _hung_after)
    slow = selector.slow_after(deployment, peers, first_chunk, now)
    if borrowed is None or (slow is not None and slow < borrowed):
        return slow
    return borrowed


def _hung_after(track: LatencyTrack) -> float | None:
    return track.hung_after()


def race_delay(
    loop: AttemptLoop,
    call: Call,
    primary: Deployment,
    ranked: Sequence[Deployment],
    first_chunk: bool,
) -> tuple[float, bool] | None:
    """When to start a second attempt beside the first, or None for no race; and whether
    the race is a rescue only (the primary's own threshold: no hedge, no degraded probe), which
    `rescued` runs without a task until it starts.

    Always: once the primary is past its `hung_after` (its own, router._health, else its
    peers': `hung_after` here), a rescue attempt starts elsewhere (the primary keeps running:
    if it answers first, it wins).
    A probe of a degraded deployment, or of one missing the group's latency objective
    (router._slo), races after twice the next candidate's expected latency, so its caller
    does not wait on the slow one. With ``hedge = true``, the
    hedge delay too (seconds, or the primary's p95 capped at twice its median).
    """
    if len(ranked) < 2:
        return None  # nowhere else to go: no race can start (and none of this is needed)
    settings = call.settings
    health = loop.state.get(primary.name).health
    delay = hung_after(loop, primary, call.peers or ranked, first_chunk)
    now = loop.clock.now()
    selector = loop.selector
    rescue = True
    if primary is call.slo_probe or selector.degraded(primary, ranked, first_chunk, now):
        rescue = False
        for other in ranked:
            if other is primary:
                continue
            expected = selector.expected_latency(other, first_chunk, now, peers=ranked)
            if expected is not None:
                delay = 2.0 * expected if delay is None else min(delay, 2.0 * expected)
            break
    if settings.hedge:
        if isinstance(settings.hedge_delay, float):
            hedge = settings.hedge_delay
        else:
            hedge = health.hedge_delay() or HEDGE_FALLBACK_DELAY_S
        rival = next((d for d in ranked if d is not primary), None)
        if rival is not None:
            expected = selector.expected_latency(rival, first_chunk, now, peers=ranked)
            history = health.track(first_chunk).newest(_TAIL_SAMPLES)
            hedge = can_win_after(history, hedge, expected)
        if delay is None or hedge < delay:
            rescue = False
            delay = hedge
    return None if delay is None else (delay, rescue)


_TAIL_SAMPLES = 64
"""The primary's completed latencies `can_win_after` reads (its track keeps 64)."""


def can_win_after(history: Sequence[float], delay: float, rival: float | None) -> float:
    """The earliest time, from `delay` on, at which a hedge can win: when the primary's
    expected remaining time exceeds `rival`, what the hedge's deployment is expected to take.

    The primary's remaining time at `t` is read from its own completed latencies `history`:
    the mean of ``s - t`` over the samples ``s > t``. A hedge started then wins on average
    only if the rival answers sooner than that. Candidate times are `delay` and every
    sample above it, in order; past its slowest sample the primary is slower than anything
    it has done (its remaining time is unknown), so a hedge goes then at the latest. With
    no rival estimate or no history the hedge goes at `delay`, as before this rule.

    A tail made of slow outliers (a few calls hundreds of ms late) is hedged at `delay` as
    ever, since those outliers make the expected remaining time long; a narrow distribution
    whose p95 is a few ms short of its slowest answer is not hedged onto a rival that takes
    longer than those few ms (the hedge would only duplicate the call: ~5 % more upstream
    calls, every one of them a loss)."""
    if rival is None or not history:
        return delay
    above = sorted(s for s in history if s > delay)
    total = sum(above)
    t = delay
    for i, s in enumerate(above):
        # `above[i:]` are the samples beyond `t`: the primary has, on average, this long left.
        n = len(above) - i
        if total / n - t > rival:
            return t
        total -= s
        t = s
    return t


class _Primary(asyncio.Future[Any]):
    """The primary attempt of a rescue race, running in the caller's own task (`rescued`).

    To the race (`hedged`) it is a racer like the others: done when the caller's attempt ends,
    with its `Result`. Cancelling it, as the race does to a loser, interrupts the caller's
    attempt (the caller's task is cancelled, and `rescued` takes the race's winner instead),
    unless the caller itself is gone.
    """

    def __init__(self, caller: asyncio.Task[Any]) -> None:
        super().__init__()
        self.caller = caller
        self.interrupted = False
        self.caller_gone = False

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        if not self.caller_gone:
            self.interrupted = True
            self.caller.cancel()
        return super().cancel(msg)


async def rescued(
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
    delay: float,
) -> Result[T]:
    """The primary attempt in the caller's own task, raced only once it outlives `delay`.

    Nearly every attempt answers long before its hung threshold, so this costs one loop timer
    instead of a task, a wait and two extra loop turns per call. If the timer fires, the race
    starts then, as `hedged` runs it after its delay (in a task of its own, the primary a
    `_Primary` racer the caller completes). A rescuer that wins interrupts the primary: it is
    past its hung threshold by then, and a loser that far gone is cancelled and counts as a
    failure (`lost`).
    """
    caller = asyncio.current_task()
    assert caller is not None
    clock = loop.clock
    started = clock.now()
    cancelling = caller.cancelling()
    race: asyncio.Task[Result[T]] | None = None
    handle: _Primary | None = None

    def start_race() -> None:
        nonlocal race, handle
        handle = _Primary(caller)
        race = asyncio.ensure_future(
            hedged(
                loop, call, primary, probe, timeout, ranked, tries, attempt, first_chunk,
                discard, delay, running=(handle, started),
            )
        )  # fmt: skip

    wait = max(0.0, min(delay, call.deadline_at - started))
    timer = asyncio.get_running_loop().call_later(wait, start_race)
    try:
        result = await loop._attempt(call, primary, probe, timeout, attempt, first_chunk)
    except asyncio.CancelledError:
        timer.cancel()
        if handle is None or race is None:
            raise
        if handle.interrupted and caller.uncancel() <= cancelling:
            return await race  # a rescuer won (and interrupted the primary)
        handle.caller_gone = True
        await cancel_all({race})
        raise
    timer.cancel()
    if handle is None or race is None:
        return result
    handle.set_result(result)
    return await race


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
    delay: float | None = None,
    running: tuple[asyncio.Future[Result[T]], float] | None = None,
) -> Result[T]:
    """Race the primary attempt against one delayed second attempt (a hedge, or a rescue of a
    presumed-hung primary: `race_delay`); the first success wins.

    With `running` (the primary's racer and when it started: `rescued`), the primary is
    already running and its delay has passed: the race starts at once."""
    clock = loop.clock
    first: asyncio.Future[Result[T]]
    if running is None:
        first_started = clock.now()
        first = asyncio.ensure_future(
            loop._attempt(call, primary, probe, timeout, attempt, first_chunk)
        )
        settings = call.settings
        if delay is None:
            if isinstance(settings.hedge_delay, float):
                delay = settings.hedge_delay
            else:
                health = loop.state.get(primary.name).health
                delay = health.hedge_delay() or HEDGE_FALLBACK_DELAY_S
        now = clock.now()
        try:
            done, _ = await asyncio.wait({first}, timeout=min(delay, call.deadline_at - now))
        except asyncio.CancelledError:
            first.cancel()
            raise
        if done:
            return first.result()
    else:
        first, first_started = running
    now = clock.now()
    if running is not None:
        # A rescue of a presumed-hung primary: paid (bounded by the budget only, as a hedge
        # is), or the call's reserved attempt.
        target = _rescuer(loop, call, ranked, tries, now, first_chunk, 0)
        if target is None:
            return await first
    else:
        target = hedge_target(loop, call, ranked, tries, now)
        if target is None:
            return await first
        if not loop.budget.withdraw(now):
            loop._release(*target)
            call.notes.append(f"no hedge: {loop.budget.describe(now)}")
            return await first
    hedge_to, hedge_probe = target

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
    # Racers a rescue was started for (the first has one: the racer above).
    rescued: set[asyncio.Future[Result[T]]] = {first}
    try:
        while pending:
            due = _next_hung(loop, racers, pending, rescued, call.peers or ranked, first_chunk)
            wait = None
            if due is not None:
                wait = max(0.0, min(due[0], call.deadline_at) - clock.now())
            done_set, pending = await asyncio.wait(
                pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            if not done_set:
                # A racer is past its own hung_after too: rescue it as the first was (bounded
                # by attempts and budget), instead of waiting for its timeout.
                if due is None or clock.now() >= call.deadline_at:
                    continue
                rescued.add(due[1])
                now = clock.now()
                nxt = _rescuer(loop, call, ranked, tries, now, first_chunk, sum(tries.values()))
                if nxt is not None:
                    task = racer(nxt[0], nxt[1], now)
                    racers[task] = (nxt[0], nxt[1], now)
                    pending.add(task)
                continue
            winner: Result[T] | None = None
            for task in done_set:
                result = task.result()
                if result.outcome is Outcome.SUCCESS:
                    if winner is None:
                        winner = result
                    elif discard is not None and result.value is not None:
                        discard(result.value)  # both won at once: close the spare stream
                elif result.outcome in (Outcome.CALLER_ERROR, Outcome.NOT_PROVIDER):
                    winner = winner or result  # it would fail anywhere: stop racing
                else:
                    failed.append(result)
            if winner is not None:
                now = clock.now()
                for task in pending:  # the losers: hung, or only slower? (see `lost`)
                    loser, was_probe, started = racers[task]
                    lost(loop, call, task, loser, was_probe, started, now, first_chunk, discard)
                return winner
            if failed and pending:
                # A racer failed while another is still out: start the next candidate now
                # instead of waiting on the slow one (bounded by attempts and budget).
                now = clock.now()
                nxt = _rescuer(loop, call, ranked, tries, now, first_chunk, len(call.attempts))
                if nxt is not None:
                    task = racer(nxt[0], nxt[1], now)
                    racers[task] = (nxt[0], nxt[1], now)
                    pending.add(task)
    except asyncio.CancelledError:
        await cancel_all(pending)
        raise
    return failed[-1]


def _next_hung(
    loop: AttemptLoop,
    racers: Mapping[asyncio.Future[Result[T]], tuple[Deployment, bool, float]],
    pending: set[asyncio.Future[Result[T]]],
    rescued: set[asyncio.Future[Result[T]]],
    ranked: Sequence[Deployment],
    first_chunk: bool,
) -> tuple[float, asyncio.Future[Result[T]]] | None:
    """When the next racer not yet rescued passes its deployment's `hung_after` (a cold one's
    borrowed from its peers), and which."""
    best: tuple[float, asyncio.Future[Result[T]]] | None = None
    for task in pending:
        if task in rescued:
            continue
        deployment, _, started = racers[task]
        hung = hung_after(loop, deployment, ranked, first_chunk)
        if hung is None:
            continue
        at = started + hung
        if best is None or at < best[0]:
            best = (at, task)
    return best


_judges: set[asyncio.Task[None]] = set()


def lost(
    loop: AttemptLoop,
    call: Call,
    task: asyncio.Future[Result[Any]],
    deployment: Deployment,
    probe: bool,
    started: float,
    now: float,
    first_chunk: bool,
    discard: Callable[[Any], None] | None,
) -> None:
    """Another racer won: is this one hung, or only slower? Losing is not a failure.

    A racer already past its deployment's `hung_after` (router._health; before it has one,
    ten times its time so far) is cancelled and counts as a failure, so a hung deployment
    stops getting first attempts instead of being hedged around forever. Any other loser runs
    on in the background until that point: if it answers, its latency is a sample like any
    other (slower but healthy) and its answer is dropped; if not, it is cancelled then and
    counts as a failure. A loser never trips a breaker for being slower than its rival.
    """
    hung = loop.state.get(deployment.name).health.track(first_chunk).hung_after()
    if hung is None:
        hung = max(10.0 * (now - started), 0.05)
    give_up = started + hung
    if now >= give_up or isinstance(task, _Primary):
        # A primary in the caller's task (`rescued`) cannot run on in the background, and its
        # race only started once it was past its hung threshold (its own, or a cold one's
        # borrowed from its peers): it is interrupted and counts as hung.
        task.cancel()
        _hung(loop, call, deployment, probe, now - started, first_chunk)
        return
    # The call's record shows the loser now; its own record, if it ends, comes later.
    call.attempts.append(
        AttemptRecord(
            number=len(call.attempts) + 1,
            deployment=deployment.name,
            model=deployment.model,
            outcome=Outcome.CANCELLED,
            latency_s=now - started,
            timeout_s=0.0,
            error="lost the race, left to answer in the background",
            probe=probe,
            started_s=started - call.started,
        )
    )
    judge = asyncio.get_running_loop().create_task(
        _judge(loop, call, task, deployment, probe, started, give_up, first_chunk, discard)
    )
    _judges.add(judge)
    judge.add_done_callback(_judges.discard)


async def _judge(
    loop: AttemptLoop,
    call: Call,
    task: asyncio.Future[Result[Any]],
    deployment: Deployment,
    probe: bool,
    started: float,
    give_up: float,
    first_chunk: bool,
    discard: Callable[[Any], None] | None,
) -> None:
    left = give_up - loop.clock.now()
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, left))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        result = task.result()
        if result.outcome is Outcome.SUCCESS and discard is not None and result.value is not None:
            discard(result.value)  # it answered: a sample was taken, the answer is dropped
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    _hung(loop, call, deployment, probe, loop.clock.now() - started, first_chunk)


def _hung(
    loop: AttemptLoop,
    call: Call,
    deployment: Deployment,
    probe: bool,
    elapsed: float,
    first_chunk: bool,
) -> None:
    """A racer presumed hung: its time feeds the EWMA and it counts as a failure."""
    now = loop.clock.now()
    state = loop.state.get(deployment.name)
    state.health.observe_latency(elapsed, now, first_chunk=first_chunk, completed=False)
    state.health.record(False)
    transition = state.breaker.record(
        False, now, call.policy, probe=probe, why=f"no answer after {elapsed:.2f} s (presumed hung)"
    )
    if transition is not None:
        loop._emit(call, transition)


def _rescuer(
    loop: AttemptLoop,
    call: Call,
    ranked: list[Deployment],
    tries: Mapping[str, int],
    now: float,
    first_chunk: bool,
    made: int,
) -> tuple[Deployment, bool] | None:
    """The next racer when a racer is presumed hung or failed while another is out: the next
    candidate, if `made` attempts leave room under ``max_attempts`` and the retry budget pays;
    else the call's one reserved attempt on a clean untried candidate (router._choose rule 4,
    not charged), which the attempt loop would spend anyway once the hung attempt timed out:
    spent now, the caller does not wait for that timeout (a young router's budget, spent by a
    hang from the start, left rescues waiting up to the 1 s attempt timeout in `recovery`)."""
    settings = call.settings
    nxt = hedge_target(loop, call, ranked, tries, now)
    if nxt is None:
        return None
    if made < settings.max_attempts and loop.budget.withdraw(now):
        return nxt
    loop._release(*nxt)
    if call.reserved_used or settings.max_attempts < 2:
        return None
    reserve = loop.chooser.reserve(ranked, tries, call.deadline_at - now, first_chunk, now)
    if reserve is None:
        return None
    probe = loop._admit(call, reserve, now)
    if probe is None:
        return None
    call.reserved_used = True
    why = "attempts used up" if made >= settings.max_attempts else "budget spent"
    call.notes.append(f"reserved attempt on {reserve.name}, clean ({why}; a racer presumed hung)")
    return reserve, probe


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
