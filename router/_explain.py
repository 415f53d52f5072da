"""Why a call ended without an answer: the error it raises, with its record attached.

The attempt loop (router._attempts) decides *that* a call is over; this module says *why*, in
the exception the caller gets: the last provider error when the attempts are used up,
`DeadlineExceeded` (with the trail of attempts) when the time ran out, `NoDeploymentAvailable`
listing each candidate and why it is out (429 or paused, refused key, other failure) with the
soonest Retry-After. Each error carries the call's decision record (router._decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router._breaker import State
from router._decision import AttemptRecord, CallOutcome
from router._errors import DeadlineExceeded, Outcome, attach, out_of_candidates

if TYPE_CHECKING:
    from router._attempts import Result
    from router._call import Call
    from router._state import DeploymentState, StateStore

__all__ = ["MIN_ATTEMPT_S", "deadline_exceeded", "exhausted", "no_deployment", "unavailable"]

MIN_ATTEMPT_S = 0.001
"""Below this much time left, no attempt is started (it could not finish)."""


def unavailable(state: DeploymentState, now: float) -> str | None:
    """Why a deployment may not be tried now, or None."""
    health = state.health
    if health.paused(now):
        return f"{health.paused_why} ({health.paused_until - now:.1f} s left)"
    breaker = state.breaker
    if breaker.state is State.OPEN and now < breaker.open_until:
        return f"breaker open for {breaker.open_until - now:.1f} s more"
    if breaker.state is State.HALF_OPEN and breaker.probe_out:
        return "breaker half-open, its probe is in flight"
    return None


def exhausted(call: Call, last: Result[Any], now: float) -> BaseException:
    """The attempts are used up: the last provider error (or the deadline's, if none is left)."""
    if call.deadline_at - now < MIN_ATTEMPT_S:
        return deadline_exceeded(call, last, now)
    assert last.exc is not None
    return attach(last.exc, call.decision(now, CallOutcome.FAILED, None, 0.0))


def deadline_exceeded(call: Call, last: Result[Any] | None, now: float) -> BaseException:
    """`DeadlineExceeded` with the trail of attempts, caused by the last attempt's error."""
    decision = call.decision(now, CallOutcome.DEADLINE_EXCEEDED, None, 0.0)
    trail = ", ".join(f"{a.deployment} {a.error or a.outcome}" for a in call.attempts)
    exc = DeadlineExceeded(call.group, call.deadline, trail)
    exc.__cause__ = None if last is None else last.exc
    return attach(exc, decision)


def no_deployment(
    call: Call,
    failures: Mapping[str, str],
    last: Result[Any] | None,
    now: float,
    state: StateStore,
    refused: Mapping[str, float],
) -> BaseException:
    """`NoDeploymentAvailable`: each candidate and why it is out (`refused`: deployments whose
    breaker a refused key opened, and until when)."""
    reasons: dict[str, str] = {}
    for skip in call.skipped:
        reasons.setdefault(skip.deployment, skip.why)
    reasons.update(failures)
    kinds, retry_after = _out_because(call, reasons, now, state, refused)
    decision = call.decision(now, CallOutcome.NO_DEPLOYMENT, None, 0.0)
    exc = out_of_candidates(call.group, reasons, kinds, retry_after)
    exc.__cause__ = None if last is None else last.exc
    return attach(exc, decision)


def _out_because(
    call: Call,
    reasons: Mapping[str, str],
    now: float,
    store: StateStore,
    refused: Mapping[str, float],
) -> tuple[dict[str, Outcome | int], float | None]:
    """Why each candidate is out (429 or paused, 401, other) and the soonest Retry-After."""
    last: dict[str, AttemptRecord] = {}
    for record in call.attempts:
        last[record.deployment] = record
    kinds: dict[str, Outcome | int] = {}
    waits: list[float] = []
    for name in reasons:
        attempt = last.get(name)
        state = store.get(name)
        if attempt is not None and attempt.outcome is not Outcome.SUCCESS:
            if attempt.outcome == Outcome.RATE_LIMITED:
                kinds[name] = Outcome.RATE_LIMITED
                until = (call.retry_after or {}).get(name)
                if state.health.paused(now):
                    # The provider's word, though the router probes sooner (router._limits).
                    until = max(state.health.paused_until, state.health.limited_until)
                if until is not None:
                    waits.append(until - now)
                continue
            if attempt.outcome == Outcome.MISCONFIGURED and name in refused:
                kinds[name] = 401
                continue
            kinds[name] = Outcome.FAILURE
        elif state.health.paused(now):
            kinds[name] = Outcome.RATE_LIMITED
            waits.append(max(state.health.paused_until, state.health.limited_until) - now)
        elif (
            state.breaker.state is State.OPEN
            and refused.get(name, 0.0) >= state.breaker.open_until > now
        ):
            kinds[name] = 401
        else:
            kinds[name] = Outcome.FAILURE
    return kinds, (max(0.0, min(waits)) if waits else None)
