"""The attempt loop: failover under one deadline, breakers, a retry budget, hedges.

`AttemptLoop` is the half of `router._engine.Engine` that runs one call's attempts; the engine
starts calls, and the call's record and reason live in router._call.

One call has one deadline (`deadline` seconds) covering every attempt, failover, backoff, hedge
and the stream. Each attempt runs under ``min(deployment timeout, time left)``. Attempts are
bounded by `max_attempts` (failovers and hedges included) and, across calls, by the retry
budget (router._budget). Failover to another deployment is immediate; a retry of a deployment
already tried waits a full-jitter backoff ``U(0, min(backoff_max, backoff_base * 2**(n-1)))``
for its n-th retry, and never sleeps past the deadline.

Before a call, deployments that may not be tried are skipped with a reason: breaker open,
half-open with its probe out, paused by a 429. The group's strategy ranks the rest
(router._select). After a failed attempt, by its `Outcome`:

- failure (timeout, connection, 5xx): counted by health and breaker; try the next candidate;
- rate_limited (429): try the next; once `rate_limit_pause_after` 429s arrive in a row (no
  success between), pause the deployment for everyone until Retry-After (default 1 s) or,
  sooner, the breaker's open period, then let one probe through (router._limits `pause_for`);
- misconfigured (401/403/404/402): open its breaker for `misconfigured_open`, log an error;
- context_window: try only candidates with a larger known window, else raise the error;
- caller_error: raise at once, as is (it would fail anywhere).

With ``hedge = true`` a second attempt goes to the next candidate when the first has not
answered after `hedge_delay` (or the first's observed p95); the first success wins and the other
is cancelled; a hedge is paid from the retry budget. Streams race to the first chunk.

When the attempts are used up, the last provider error is raised; when the deadline ran out,
`DeadlineExceeded`; when the retry budget is spent (and the one reserved attempt on a clean
candidate, router._choose rule 4, is used or there is none), the last error with a note; when
no candidate is left, `NoDeploymentAvailable` listing each and why (or, with
``wait_for_recovery``, a wait for the soonest recovery if it comes before the deadline). Those
errors and their reasons are composed in router._explain; when a race starts, router._hedge.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import litellm

from router._breaker import Admission, State, Transition
from router._budget import RetryBudget
from router._call import Call
from router._catalogue import tokens_cost
from router._choose import Chooser, transient
from router._config import ConfigError
from router._decision import AttemptRecord, CallOutcome, Candidate, ResponseInfo, Skip
from router._errors import Outcome, attach, describe, retry_after_of, status_code_of
from router._explain import MIN_ATTEMPT_S, deadline_exceeded, exhausted, no_deployment, unavailable
from router._hedge import hedged, race_delay, rescued
from router._limits import pause_for
from router._select import Selector
from router._slo import Objectives, objective_of

if TYPE_CHECKING:
    from router._catalogue import Catalogue
    from router._clock import Clock
    from router._config import Deployment
    from router._observe import Observer
    from router._state import DeploymentState, StateStore

__all__ = ["AttemptLoop", "Result"]

log = logging.getLogger("router")

T = TypeVar("T")

RATE_LIMIT_DEFAULT_PAUSE_S = 1.0
"""Pause after a 429 that carries no Retry-After header."""


class Result(Generic[T]):
    """How one attempt ended (the engine's internal currency between attempt and loop)."""

    __slots__ = ("deployment", "exc", "index", "info", "outcome", "value")

    def __init__(
        self,
        deployment: Deployment,
        outcome: Outcome,
        value: T | None = None,
        exc: BaseException | None = None,
        index: int = -1,
        info: ResponseInfo | None = None,
    ) -> None:
        self.deployment = deployment
        self.outcome = outcome
        self.value = value
        self.exc = exc
        self.index = index
        self.info = info
        """What a full response said about itself (read once, for its cost and its record)."""


class AttemptLoop:
    """The attempt loop, over the collaborators `router._engine.Engine` sets up."""

    clock: Clock
    state: StateStore
    rng: random.Random
    budget: RetryBudget
    selector: Selector
    chooser: Chooser
    objectives: Objectives
    catalogue: Catalogue
    classify: Callable[[BaseException], Outcome]
    observer: Observer | None
    _refused: dict[str, float]
    """Deployments whose breaker a refused key (401) opened, and until when: while it stays
    open, a call that finds every candidate so is told 401, like one that got the 401s."""

    # -- the loop ----------------------------------------------------------------------------

    async def _run(
        self,
        call: Call,
        deployments: Sequence[Deployment],
        attempt: Callable[[Deployment, float], Awaitable[T]],
        first_chunk: bool,
        discard: Callable[[T], None] | None,
    ) -> Result[T]:
        clock = self.clock
        settings = call.settings
        now = clock.now()
        self.budget.deposit(now)
        call.peers = deployments
        ranked = self._eligible(call, deployments, now)
        tries: dict[str, int] = {}
        last: Result[T] | None = None
        failures: dict[str, str] = {}

        while True:
            now = clock.now()
            made = len(call.attempts)
            # Retry budget spent: only the call's reserved attempt (a clean candidate) is left.
            spent = made > 0 and self.budget.available(now) < 1.0
            options = self.chooser.order(
                ranked,
                tries,
                settings,
                made=made,
                left=call.deadline_at - now,
                first_chunk=first_chunk,
                now=now,
                failed=None if last is None else last.deployment,
                fast_failure=last is not None
                and last.outcome is Outcome.FAILURE
                and not isinstance(last.exc, litellm.Timeout)
                and transient(last.exc),
                reserved_used=call.reserved_used,
                budget_spent=spent,
            )
            pick = self._admit_first(call, options, ranked, now)
            if pick is None and ranked:
                if made >= settings.max_attempts and last is not None:
                    raise exhausted(call, last, clock.now())
                if spent and last is not None and last.exc is not None:
                    call.notes.append(self.budget.describe(now))
                    decision = call.decision(now, CallOutcome.BUDGET_EXHAUSTED, None, 0.0)
                    raise attach(last.exc, decision)
                if options:
                    continue  # those chosen were tripped or paused meanwhile: choose again
                call.notes.append("no candidate is expected to finish before the deadline")
                raise deadline_exceeded(call, last, clock.now())
            if pick is None:
                if settings.wait_for_recovery and await self._wait_for_recovery(
                    call, deployments, ranked, now
                ):
                    ranked = self._eligible(call, deployments, clock.now(), again=True)
                    continue
                raise no_deployment(call, failures, last, clock.now(), self.state, self._refused)
            deployment, probe, delay = pick
            if made >= settings.max_attempts or spent:
                # Not charged to the budget: at most one per call, and only on a deployment
                # with a clean record (one failure there and it is no longer clean).
                call.reserved_used = True
                why = "attempts used up" if made >= settings.max_attempts else "budget spent"
                call.notes.append(f"reserved attempt on {deployment.name}, clean ({why})")
            elif made and not self.budget.withdraw(now):
                self._release(deployment, probe)
                assert last is not None and last.exc is not None
                call.notes.append(self.budget.describe(now))
                raise attach(last.exc, call.decision(now, CallOutcome.BUDGET_EXHAUSTED, None, 0.0))
            n = tries.get(deployment.name, 0)
            if delay > 0.0:
                if now + delay + MIN_ATTEMPT_S >= call.deadline_at:
                    self._release(deployment, probe)
                    raise deadline_exceeded(call, last, clock.now())
                await clock.sleep(delay)
                now = clock.now()
                if not probe:
                    # Admitted before the backoff: another call may have tripped it meanwhile.
                    probe_now = self._admit(call, deployment, now)
                    if probe_now is None:
                        state = self.state.get(deployment.name)
                        why = unavailable(state, now) or "unavailable"
                        call.skipped.append(Skip(deployment.name, why))
                        if deployment in ranked:
                            ranked.remove(deployment)
                        continue
                    probe = probe_now
            timeout = self._timeout(call, deployment, first_chunk, now)
            if timeout < MIN_ATTEMPT_S:
                self._release(deployment, probe)
                raise deadline_exceeded(call, last, clock.now())
            tries[deployment.name] = n + 1
            race = race_delay(self, call, deployment, ranked, first_chunk)
            if race is not None:
                delay, rescue = race
                result = await (rescued if rescue else hedged)(
                    self, call, deployment, probe, timeout, ranked, tries, attempt, first_chunk,
                    discard, delay,
                )  # fmt: skip
            else:
                result = await self._attempt(call, deployment, probe, timeout, attempt, first_chunk)
            if result.outcome is Outcome.SUCCESS:
                return result
            last = result
            exc = result.exc
            assert exc is not None
            failures[result.deployment.name] = (
                f"failed: {describe(exc)}" if result.index >= 0 else f"misconfigured: {exc}"
            )
            outcome = result.outcome
            if outcome is Outcome.CALLER_ERROR:
                raise attach(exc, call.decision(clock.now(), CallOutcome.CALLER_ERROR, None, 0.0))
            if outcome is Outcome.NOT_PROVIDER:  # a caller's argument or a bug: raised as is
                raise attach(exc, call.decision(clock.now(), CallOutcome.ERROR, None, 0.0))
            if outcome is Outcome.CONTEXT_WINDOW:
                ranked = self._larger_windows(call, result.deployment, ranked)
                if not ranked:
                    raise attach(
                        exc, call.decision(clock.now(), CallOutcome.CALLER_ERROR, None, 0.0)
                    )
            elif outcome in (Outcome.RATE_LIMITED, Outcome.MISCONFIGURED):
                ranked = [d for d in ranked if d is not result.deployment]

    def _timeout(self, call: Call, deployment: Deployment, first_chunk: bool, now: float) -> float:
        settings = call.settings
        timeout = min(deployment.timeout or settings.timeout, call.deadline_at - now)
        if first_chunk and settings.first_chunk_timeout is not None:
            timeout = min(timeout, settings.first_chunk_timeout)
        return timeout

    def _eligible(
        self, call: Call, deployments: Sequence[Deployment], now: float, again: bool = False
    ) -> list[Deployment]:
        """Drop what may not be tried now (with a reason), rank the rest by the strategy."""
        eligible: list[Deployment] = []
        skipped = [] if again else call.skipped
        for deployment in deployments:
            state = self.state.get(deployment.name)
            why = unavailable(state, now)
            if why is None:
                eligible.append(deployment)
            else:
                skipped.append(Skip(deployment.name, why))
        if again:
            call.skipped = skipped
        if len(eligible) == 1:  # nothing to rank (Selector.rank's key is 0.0 then)
            call.candidates = (Candidate(eligible[0].name, 0.0),)
            return eligible
        settings = call.settings
        ranked = self.selector.rank(
            settings.strategy, eligible, now, settings.weights, first_chunk=call.stream
        )
        order = [d for d, _ in ranked]
        objective = objective_of(settings)
        if objective is not None:
            # Opt-in latency objectives (router._slo): the expected to meet them first.
            order, call.slo_probe = self.objectives.order(
                order, objective, call.stream, now, call.notes
            )
            keys = {d.name: key for d, key in ranked}
            call.candidates = tuple(Candidate(d.name, keys[d.name]) for d in order)
            return order
        call.candidates = tuple(Candidate(d.name, key) for d, key in ranked)
        return order

    def _admit_first(
        self,
        call: Call,
        options: Sequence[tuple[Deployment, float]],
        ranked: list[Deployment],
        now: float,
    ) -> tuple[Deployment, bool, float] | None:
        """The first of `options` (router._choose) its breaker admits now, with its backoff."""
        for deployment, delay in options:
            if deployment not in ranked:
                continue
            probe = self._admit(call, deployment, now)
            if probe is not None:
                return deployment, probe, delay
            # Tripped or paused since the call began (another call saw it): skip it now.
            state = self.state.get(deployment.name)
            call.skipped.append(Skip(deployment.name, unavailable(state, now) or "unavailable"))
            ranked.remove(deployment)
        return None

    def _admit(self, call: Call, deployment: Deployment, now: float) -> bool | None:
        """None if the deployment may not be tried now; else whether the attempt is a probe."""
        state = self.state.get(deployment.name)
        health = state.health
        if health.paused(now):
            return None  # checked first, so a probe slot is never taken and then abandoned
        admission, transition = state.breaker.admit(now)
        if transition is not None:
            self._emit(call, transition)
        if admission is Admission.DENY:
            return None
        if health.rate_limit_pauses:  # a 429 pause ended, no success since: one probe
            health.rate_limit_probe(now, deployment.timeout or call.settings.timeout)
        return admission is Admission.PROBE

    def _release(self, deployment: Deployment, probe: bool) -> None:
        state = self.state.get(deployment.name)
        if probe:
            state.breaker.release()
        if state.health.rate_limit_pauses:
            state.health.end_rate_limit_probe()

    async def _attempt(
        self,
        call: Call,
        deployment: Deployment,
        probe: bool,
        timeout: float,
        attempt: Callable[[Deployment, float], Awaitable[T]],
        first_chunk: bool,
        hedge: bool = False,
    ) -> Result[T]:
        clock = self.clock
        state = self.state.get(deployment.name)
        health = state.health
        health.in_flight += 1
        started = clock.now()
        track = health.track(first_chunk)
        token = track.begin(started)
        try:
            async with clock.timeout(timeout):
                value = await attempt(deployment, timeout)
        except asyncio.CancelledError:
            self._release(deployment, probe)
            call.attempts.append(
                AttemptRecord(
                    number=len(call.attempts) + 1,
                    deployment=deployment.name,
                    model=deployment.model,
                    outcome=Outcome.CANCELLED,
                    latency_s=clock.now() - started,
                    timeout_s=timeout,
                    hedge=hedge,
                    probe=probe,
                    started_s=started - call.started,
                )
            )
            raise
        except ConfigError as exc:
            # A missing env var for this deployment's key: not an attempt, a skip.
            self._release(deployment, probe)
            call.skipped.append(Skip(deployment.name, f"misconfigured: {exc}"))
            log.error("router.deployment_misconfigured: %s", exc)
            return Result(deployment, Outcome.MISCONFIGURED, exc=exc)
        except Exception as raw:
            return self._failed(
                call,
                state,
                deployment,
                probe,
                timeout,
                started,
                hedge,
                _as_timeout(raw, deployment, timeout),
                first_chunk,
            )
        finally:
            health.in_flight -= 1
            track.end(token)
            if health.rate_limit_pauses:  # a rate-limit probe's hold ends with its attempt
                health.end_rate_limit_probe()
        now = clock.now()
        latency = now - started
        health.observe_latency(latency, now, first_chunk=first_chunk)
        health.record(True)
        transition = state.breaker.record(True, now, call.policy, probe=probe)
        if transition is not None:
            self._emit(call, transition)
        # A full response knows its cost now; a stream's is added when it ends.
        if first_chunk:
            info = None
            cost = 0.0
        else:
            info = ResponseInfo.of(value)
            cost = tokens_cost(self.catalogue, deployment, info.input_tokens, info.output_tokens)
        call.attempts.append(
            AttemptRecord(
                number=len(call.attempts) + 1,
                deployment=deployment.name,
                model=deployment.model,
                outcome=Outcome.SUCCESS,
                latency_s=latency,
                timeout_s=timeout,
                first_chunk_s=latency if first_chunk else None,
                hedge=hedge,
                probe=probe,
                started_s=started - call.started,
                cost_usd=cost,
            )
        )
        return Result(deployment, Outcome.SUCCESS, value, index=len(call.attempts) - 1, info=info)

    def _failed(
        self,
        call: Call,
        state: DeploymentState,
        deployment: Deployment,
        probe: bool,
        timeout: float,
        started: float,
        hedge: bool,
        exc: Exception,
        first_chunk: bool = False,
    ) -> Result[Any]:
        now = self.clock.now()
        latency = now - started
        outcome = self.classify(exc)
        label = describe(exc)
        call.attempts.append(
            AttemptRecord(
                number=len(call.attempts) + 1,
                deployment=deployment.name,
                model=deployment.model,
                outcome=outcome,
                latency_s=latency,
                timeout_s=timeout,
                error=label,
                hedge=hedge,
                probe=probe,
                started_s=started - call.started,
            )
        )
        breaker = state.breaker
        transition: Transition | None = None
        if outcome is Outcome.FAILURE:
            state.health.record(False)
            if isinstance(exc, litellm.Timeout):
                # Slowness is information (for the EWMA), not a latency sample.
                state.health.observe_latency(latency, now, first_chunk=first_chunk, completed=False)
            transition = breaker.record(False, now, call.policy, probe=probe, why=label)
        elif outcome is Outcome.RATE_LIMITED:
            self._release(deployment, probe)
            health = state.health
            health.rate_limited_streak += 1
            pause = retry_after_of(exc)
            pause = RATE_LIMIT_DEFAULT_PAUSE_S if pause is None else pause
            if health.rate_limited_streak >= call.settings.rate_limit_pause_after:
                health.rate_limit_pauses += 1
                period = breaker.open_duration(health.rate_limit_pauses, None, call.policy)
                seconds, why = pause_for(pause, period)
                health.limited_until = now + pause
                health.pause(now + seconds, why)
                self.state.on_pause(deployment.name, seconds, why)
            else:
                if call.retry_after is None:
                    call.retry_after = {}
                call.retry_after[deployment.name] = now + pause
        elif outcome is Outcome.MISCONFIGURED:
            transition = breaker.force_open(
                now, call.settings.misconfigured_open, f"misconfigured: {label}"
            )
            if status_code_of(exc) == 401:
                self._refused[deployment.name] = breaker.open_until
            log.error(
                "router.deployment_misconfigured: %s answered %s; breaker open for %g s",
                deployment.name,
                label,
                call.settings.misconfigured_open,
            )
        else:
            self._release(deployment, probe)
        if transition is not None:
            self._emit(call, transition)
        return Result(deployment, outcome, exc=exc, index=len(call.attempts) - 1)

    async def _wait_for_recovery(
        self, call: Call, deployments: Sequence[Deployment], ranked: list[Deployment], now: float
    ) -> bool:
        """Sleep until the soonest pause or open period ends, if that is before the deadline."""
        soonest: float | None = None
        for deployment in deployments:
            state = self.state.get(deployment.name)
            times = []
            if state.health.paused(now):
                times.append(state.health.paused_until)
            if state.breaker.state is State.OPEN and state.breaker.open_until > now:
                times.append(max(state.breaker.open_until, state.health.paused_until))
            if call.retry_after is not None:
                until = call.retry_after.get(deployment.name, 0.0)
                if until > now:
                    times.append(until)
            for at in times:
                if soonest is None or at < soonest:
                    soonest = at
        if soonest is None or soonest + MIN_ATTEMPT_S >= call.deadline_at:
            return False
        call.notes.append(f"waited {soonest - now:.2f} s for the soonest recovery")
        await self.clock.sleep(soonest - now)
        return True

    def _larger_windows(
        self, call: Call, failed: Deployment, ranked: list[Deployment]
    ) -> list[Deployment]:
        window = self.catalogue.context_window(failed)
        kept: list[Deployment] = []
        for deployment in ranked:
            if deployment is failed:
                continue
            other = self.catalogue.context_window(deployment)
            if other is not None and (window is None or other > window):
                kept.append(deployment)
            else:
                call.skipped.append(
                    Skip(
                        deployment.name,
                        f"context window {other or 'unknown'} not larger than {failed.name}'s "
                        f"{window or 'unknown'}",
                    )
                )
        return kept

    def _emit(self, call: Call, transition: Transition) -> None:
        if transition.after is State.CLOSED:
            # Recovered: the failures of the outage no longer say anything about it.
            self.state.get(transition.deployment).health.forget_errors()
        call.events.append(transition)
        self.state.on_transition(transition)
        if self.observer is not None:
            self.observer.transition(transition)
        if transition.after is State.OPEN:
            log.warning(
                "router.breaker_opened: %s for %.1f s: %s",
                transition.deployment,
                transition.open_for or 0.0,
                transition.reason,
            )
        elif transition.after is State.CLOSED:
            log.info("router.breaker_closed: %s: %s", transition.deployment, transition.reason)
        else:
            log.info("router.breaker_half_open: %s: %s", transition.deployment, transition.reason)


def _as_timeout(exc: Exception, deployment: Deployment, timeout: float) -> Exception:
    """Our own timeout scope fired: report it as litellm's `Timeout`, like litellm would."""
    if isinstance(exc, TimeoutError) and not isinstance(exc, litellm.Timeout):
        converted: Exception = litellm.Timeout(
            f"attempt timed out after {timeout:.3g} s",
            model=deployment.model,
            llm_provider="router",
        )
        converted.__cause__ = exc
        return converted
    return exc
