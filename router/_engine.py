"""The attempt loop: failover under one deadline, breakers, a retry budget, hedges.

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
  success between), pause the deployment for everyone until Retry-After (default 1 s);
- misconfigured (401/403/404/402): open its breaker for `misconfigured_open`, log an error;
- context_window: try only candidates with a larger known window, else raise the error;
- caller_error: raise at once, as is (it would fail anywhere).

With ``hedge = true`` a second attempt goes to the next candidate when the first has not
answered after `hedge_delay` (or the first's observed p95); the first success wins and the other
is cancelled; a hedge is paid from the retry budget. Streams race to the first chunk.

When the attempts are used up, the last provider error is raised; when the deadline ran out,
`DeadlineExceeded`; when the retry budget is spent, the last error with a note saying so; when
no candidate is left, `NoDeploymentAvailable` listing each and why (or, with
``wait_for_recovery``, a wait for the soonest recovery if it comes before the deadline).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import litellm

from router._breaker import Admission, BreakerPolicy, State, Transition
from router._budget import RetryBudget
from router._clock import SystemClock
from router._config import ConfigError
from router._decision import (
    AttemptRecord,
    Candidate,
    Decision,
    Escalation,
    ResponseInfo,
    Skip,
    get_decision,
)
from router._errors import (
    DeadlineExceeded,
    NoDeploymentAvailable,
    Outcome,
    StreamInterrupted,
    attach,
    classify,
    describe,
    retry_after_of,
)
from router._fields import field
from router._select import REASONS, Selector

if TYPE_CHECKING:
    from router._backend import Transport
    from router._catalogue import Catalogue
    from router._clock import Clock
    from router._config import Deployment, RouterSettings
    from router._observe import Observer
    from router._state import DeploymentState, StateStore

log = logging.getLogger("router")

T = TypeVar("T")

RATE_LIMIT_DEFAULT_PAUSE_S = 1.0
"""Pause after a 429 that carries no Retry-After header."""
HEDGE_FALLBACK_DELAY_S = 0.5
"""Hedge delay with ``hedge_delay = "p95"`` before the first candidate has 10 samples."""
_MIN_ATTEMPT_S = 0.001
"""Below this much time left, no attempt is started (it could not finish)."""
_CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the layers above the engine decided before this call (route, job, escalation)."""

    route: str | None = None
    reason: str | None = None
    """The policy's sentence, put before the engine's in the decision's reason."""
    skipped: tuple[Skip, ...] = ()
    job: str | None = None
    step: str | None = None
    escalations: tuple[Escalation, ...] = ()
    prior_attempts: tuple[AttemptRecord, ...] = ()
    """Attempts of earlier escalation levels, kept in this call's record."""
    prior_cost: float = 0.0
    notify: bool = True
    """Tell the observer when the call ends (False while an escalation may follow)."""
    started: float | None = None
    wall: float | None = None
    """Clock and wall time of the logical call's start (escalations keep the first's)."""


_NO_CONTEXT = CallContext()


class _Call:
    """Mutable bookkeeping of one call; frozen into a `Decision` when the call ends."""

    __slots__ = (
        "attempts",
        "candidates",
        "context",
        "deadline",
        "deadline_at",
        "events",
        "group",
        "notes",
        "policy",
        "retry_after",
        "settings",
        "skipped",
        "started",
        "strategy",
        "stream",
        "wall",
    )

    def __init__(
        self,
        group: str,
        settings: RouterSettings,
        deadline: float,
        started: float,
        stream: bool,
        policy: BreakerPolicy,
        context: CallContext = _NO_CONTEXT,
    ) -> None:
        self.context = context
        self.group = group
        self.settings = settings
        self.strategy = settings.strategy
        self.policy = policy
        self.deadline = deadline
        # An escalation continues the logical call: same start, so one deadline for all levels.
        self.started = started if context.started is None else context.started
        self.deadline_at = self.started + deadline
        self.wall = time.time() if context.wall is None else context.wall
        self.stream = stream
        self.candidates: tuple[Candidate, ...] = ()
        self.skipped: list[Skip] = list(context.skipped)
        self.attempts: list[AttemptRecord] = list(context.prior_attempts)
        self.events: list[Transition] = []
        self.notes: list[str] = []
        # 429s this call got without pausing the deployment: name -> Retry-After (clock time),
        # so `wait_for_recovery` can wait for them as for a pause.
        self.retry_after: dict[str, float] | None = None

    def decision(
        self,
        now: float,
        outcome: str,
        deployment: str | None,
        cost: float,
        response: ResponseInfo | None = None,
    ) -> Decision:
        return Decision(
            group=self.group,
            strategy=self.strategy,
            candidates=self.candidates,
            skipped=tuple(self.skipped),
            attempts=tuple(self.attempts),
            deployment=deployment,
            outcome=outcome,
            reason=self.reason(outcome, deployment),
            cost_usd=cost,
            elapsed_s=now - self.started,
            deadline_s=self.deadline,
            stream=self.stream,
            events=tuple(self.events),
            notes=tuple(self.notes),
            started_at=self.wall,
            response=response,
            route=self.context.route,
            escalations=self.context.escalations,
            job=self.context.job,
            step=self.context.step,
        )

    def reason(self, outcome: str, deployment: str | None) -> str:
        failed = [a for a in self.attempts if a.outcome not in (Outcome.SUCCESS, _CANCELLED)]
        trail = ", ".join(f"{a.deployment} {a.error}" for a in failed)
        if deployment is not None:
            won = next(
                (
                    a
                    for a in self.attempts
                    if a.deployment == deployment and a.outcome == Outcome.SUCCESS
                ),
                None,
            )
            if won is not None and won.hedge:
                lost = (
                    ", ".join(a.deployment for a in self.attempts if a.outcome == _CANCELLED)
                    or "the first attempt"
                )
                text = f"served by {deployment}: its hedge beat {lost}"
            elif not failed:
                text = f"served by {deployment} ({REASONS.get(self.strategy, self.strategy)})"
            else:
                text = f"served by {deployment} after {len(failed)} failed attempt(s): {trail}"
        else:
            text = (
                f"{outcome.replace('_', ' ')} after {len(self.attempts)} attempt(s): "
                f"{trail or 'none failed'}"
            )
        if self.skipped:
            text += "; " + "; ".join(f"{s.deployment} skipped: {s.why}" for s in self.skipped)
        for event in self.events:
            text += f"; breaker {event.deployment} {event.after.value}: {event.reason}"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        context = self.context
        if context.reason is None and not context.escalations:
            return text
        parts = [context.reason] if context.reason else []
        for step in context.escalations:
            parts.append(
                f"{step.from_group} answer failed {step.trigger} ({step.detail}); "
                f"escalated to {step.to_group}"
            )
        return "; ".join([*parts, text])


class _Result(Generic[T]):
    """How one attempt ended (the engine's internal currency between attempt and loop)."""

    __slots__ = ("deployment", "exc", "index", "outcome", "value")

    def __init__(
        self,
        deployment: Deployment,
        outcome: Outcome,
        value: T | None = None,
        exc: BaseException | None = None,
        index: int = -1,
    ) -> None:
        self.deployment = deployment
        self.outcome = outcome
        self.value = value
        self.exc = exc
        self.index = index


def _usage_cost(catalogue: Catalogue, deployment: Deployment, usage: Any) -> float:
    """The served usage's price; 0.0 in the record when the catalogue does not know it."""
    if usage is None:
        return 0.0
    prompt = field(usage, "prompt_tokens") or 0
    completion = field(usage, "completion_tokens") or 0
    price = catalogue.price(deployment, int(prompt), int(completion))
    return 0.0 if price is None else price


class Engine:
    """Runs calls over a group's deployments (see the module docstring for the rules)."""

    def __init__(
        self,
        transport: Transport,
        catalogue: Catalogue,
        clock: Clock,
        state: StateStore,
        rng: random.Random,
        budget: RetryBudget,
        classify: Callable[[BaseException], Outcome] = classify,
        observer: Observer | None = None,
    ) -> None:
        self.classify = classify
        self.observer = observer
        # Content (messages, output) goes to observers only when one asked for it.
        self.capture_content = bool(getattr(observer, "capture_content", False))
        self.transport = transport
        self.catalogue = catalogue
        self.clock = clock
        self.state = state
        self.rng = rng
        self.budget = budget
        self.selector = Selector(catalogue, state, rng)
        self._policies: dict[int, tuple[RouterSettings, BreakerPolicy]] = {}

    # -- entry points ------------------------------------------------------------------------

    async def complete(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
        context: CallContext = _NO_CONTEXT,
    ) -> Any:
        """One non-streaming call: returns the litellm response with its decision attached."""
        call = self._start(group, settings, deadline, stream=False, context=context)
        transport = self.transport

        async def attempt(deployment: Deployment, timeout: float) -> Any:
            return await transport.complete(deployment, request, timeout)

        try:
            result = await self._run(call, deployments, attempt, first_chunk=False, discard=None)
        except BaseException as exc:
            if self.observer is not None:
                self._observe_failure(call, exc)
            raise
        response = result.value
        cost = call.attempts[result.index].cost_usd + context.prior_cost
        decision = call.decision(
            self.clock.now(), "success", result.deployment.name, cost, ResponseInfo.of(response)
        )
        hidden = field(response, "_hidden_params")
        if isinstance(hidden, dict):
            hidden["router_decision"] = decision
        if self.observer is not None and context.notify:
            if self.capture_content:
                self.observer.call_finished(
                    decision, None, messages=request.get("messages"), output=response
                )
            else:
                self.observer.call_finished(decision, None)
        return response

    def notify(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        """Tell the observer a logical call ended (used by escalation, which calls quietly)."""
        if self.observer is None:
            return
        if self.capture_content:
            self.observer.call_finished(decision, error, messages=messages, output=output)
        else:
            self.observer.call_finished(decision, error)

    def _observe_failure(self, call: _Call, exc: BaseException) -> None:
        assert self.observer is not None
        decision = get_decision(exc)
        if decision is None:  # cancelled, or an error of our own making
            outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            decision = call.decision(self.clock.now(), outcome, None, 0.0)
        self.observer.call_finished(decision, exc)

    async def stream(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
        context: CallContext = _NO_CONTEXT,
    ) -> RoutedStream:
        """One streaming call: fails over freely until a first chunk arrives, then commits."""
        call = self._start(group, settings, deadline, stream=True, context=context)
        transport = self.transport

        async def attempt(deployment: Deployment, timeout: float) -> tuple[Any, Any]:
            iterator = (await transport.stream(deployment, request, timeout)).__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                await _aclose(iterator)
                raise litellm.APIConnectionError(
                    "stream ended before its first chunk",
                    llm_provider="router",
                    model=deployment.model,
                ) from None
            except BaseException:
                await _aclose(iterator)
                raise
            return iterator, first

        def discard(value: tuple[Any, Any]) -> None:
            _fire_and_forget_close(value[0])

        try:
            result = await self._run(call, deployments, attempt, first_chunk=True, discard=discard)
        except BaseException as exc:
            if self.observer is not None:
                self._observe_failure(call, exc)
            raise
        assert result.value is not None
        iterator, first = result.value
        return RoutedStream(
            self, call, result.deployment, iterator, first, result.index, request.get("messages")
        )

    def _start(
        self,
        group: str,
        settings: RouterSettings,
        deadline: float | None,
        stream: bool,
        context: CallContext,
    ) -> _Call:
        limit = settings.deadline if deadline is None else min(deadline, settings.deadline)
        return _Call(
            group, settings, limit, self.clock.now(), stream, self._policy(settings), context
        )

    def _policy(self, settings: RouterSettings) -> BreakerPolicy:
        cached = self._policies.get(id(settings))
        if cached is not None and cached[0] is settings:
            return cached[1]
        policy = BreakerPolicy(
            failure_rate=settings.breaker_failure_rate,
            window=settings.breaker_window,
            min_calls=settings.breaker_min_calls,
            consecutive=settings.breaker_consecutive_failures,
            open_base=settings.breaker_open_base,
            open_max=settings.breaker_open_max,
        )
        self._policies[id(settings)] = (settings, policy)
        return policy

    # -- the loop ----------------------------------------------------------------------------

    async def _run(
        self,
        call: _Call,
        deployments: Sequence[Deployment],
        attempt: Callable[[Deployment, float], Awaitable[T]],
        first_chunk: bool,
        discard: Callable[[T], None] | None,
    ) -> _Result[T]:
        clock = self.clock
        settings = call.settings
        now = clock.now()
        self.budget.deposit(now)
        ranked = self._eligible(call, deployments, now)
        tries: dict[str, int] = {}
        last: _Result[T] | None = None
        failures: dict[str, str] = {}

        while True:
            now = clock.now()
            pick = self._admit_next(call, ranked, tries, now)
            if pick is None:
                if settings.wait_for_recovery and await self._wait_for_recovery(
                    call, deployments, ranked, now
                ):
                    ranked = self._eligible(call, deployments, clock.now(), again=True)
                    continue
                raise self._no_deployment(call, failures, last)
            deployment, probe = pick
            # Attempts of earlier escalation levels are history: they are not this level's
            # retries, neither for max_attempts nor for the retry budget.
            made = len(call.attempts) - len(call.context.prior_attempts)
            if made >= settings.max_attempts and last is not None:
                self._release(deployment, probe)
                raise self._exhausted(call, last)
            if made and not self.budget.withdraw(now):
                self._release(deployment, probe)
                assert last is not None and last.exc is not None
                call.notes.append(self.budget.describe(now))
                raise attach(last.exc, call.decision(now, "budget_exhausted", None, 0.0))
            n = tries.get(deployment.name, 0)
            if n:
                delay = self.rng.uniform(
                    0.0, min(settings.backoff_max, settings.backoff_base * 2 ** (n - 1))
                )
                if now + delay + _MIN_ATTEMPT_S >= call.deadline_at:
                    self._release(deployment, probe)
                    raise self._deadline(call, last)
                await clock.sleep(delay)
                now = clock.now()
            timeout = self._timeout(call, deployment, first_chunk, now)
            if timeout < _MIN_ATTEMPT_S:
                self._release(deployment, probe)
                raise self._deadline(call, last)
            tries[deployment.name] = n + 1
            if settings.hedge:
                result = await self._hedged(
                    call, deployment, probe, timeout, ranked, tries, attempt, first_chunk, discard
                )
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
                raise attach(exc, call.decision(clock.now(), "caller_error", None, 0.0))
            if outcome is Outcome.CONTEXT_WINDOW:
                ranked = self._larger_windows(call, result.deployment, ranked)
                if not ranked:
                    raise attach(exc, call.decision(clock.now(), "caller_error", None, 0.0))
            elif outcome in (Outcome.RATE_LIMITED, Outcome.MISCONFIGURED):
                ranked = [d for d in ranked if d is not result.deployment]

    def _timeout(self, call: _Call, deployment: Deployment, first_chunk: bool, now: float) -> float:
        settings = call.settings
        timeout = min(deployment.timeout or settings.timeout, call.deadline_at - now)
        if first_chunk and settings.first_chunk_timeout is not None:
            timeout = min(timeout, settings.first_chunk_timeout)
        return timeout

    def _eligible(
        self, call: _Call, deployments: Sequence[Deployment], now: float, again: bool = False
    ) -> list[Deployment]:
        """Drop what may not be tried now (with a reason), rank the rest by the strategy."""
        eligible: list[Deployment] = []
        skipped = [] if again else call.skipped
        for deployment in deployments:
            state = self.state.get(deployment.name)
            why = _unavailable(state, now)
            if why is None:
                eligible.append(deployment)
            else:
                skipped.append(Skip(deployment.name, why))
        if again:
            call.skipped = skipped
        settings = call.settings
        ranked = self.selector.rank(settings.strategy, eligible, now, settings.weights)
        call.candidates = tuple(Candidate(d.name, key) for d, key in ranked)
        return [d for d, _ in ranked]

    def _admit_next(
        self, call: _Call, ranked: list[Deployment], tries: Mapping[str, int], now: float
    ) -> tuple[Deployment, bool] | None:
        """The best-ranked candidate tried the fewest times that its breaker admits now."""
        while True:
            deployment = _fewest_tries(ranked, tries)
            if deployment is None:
                return None
            probe = self._admit(call, deployment, now)
            if probe is not None:
                return deployment, probe
            # Tripped or paused since the call began (another call saw it): skip it now.
            state = self.state.get(deployment.name)
            call.skipped.append(Skip(deployment.name, _unavailable(state, now) or "unavailable"))
            ranked.remove(deployment)

    def _admit(self, call: _Call, deployment: Deployment, now: float) -> bool | None:
        """None if the deployment may not be tried now; else whether the attempt is a probe."""
        state = self.state.get(deployment.name)
        if state.health.paused(now):
            return None  # checked first, so a probe slot is never taken and then abandoned
        state.breaker.policy = call.policy
        admission, transition = state.breaker.admit(now)
        if transition is not None:
            self._emit(call, transition)
        return None if admission is Admission.DENY else admission is Admission.PROBE

    def _release(self, deployment: Deployment, probe: bool) -> None:
        if probe:
            self.state.get(deployment.name).breaker.release()

    async def _attempt(
        self,
        call: _Call,
        deployment: Deployment,
        probe: bool,
        timeout: float,
        attempt: Callable[[Deployment, float], Awaitable[T]],
        first_chunk: bool,
        hedge: bool = False,
    ) -> _Result[T]:
        clock = self.clock
        state = self.state.get(deployment.name)
        health = state.health
        health.in_flight += 1
        started = clock.now()
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
                    outcome=_CANCELLED,
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
            return _Result(deployment, Outcome.MISCONFIGURED, exc=exc)
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
            )
        finally:
            health.in_flight -= 1
        now = clock.now()
        latency = now - started
        health.observe_latency(latency, now, first_chunk=first_chunk)
        health.record(True)
        state.breaker.policy = call.policy
        transition = state.breaker.record(True, now, probe=probe)
        if transition is not None:
            self._emit(call, transition)
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
                # A full response knows its cost now; a stream's is added when it ends.
                cost_usd=0.0
                if first_chunk
                else _usage_cost(self.catalogue, deployment, field(value, "usage")),
            )
        )
        return _Result(deployment, Outcome.SUCCESS, value, index=len(call.attempts) - 1)

    def _failed(
        self,
        call: _Call,
        state: DeploymentState,
        deployment: Deployment,
        probe: bool,
        timeout: float,
        started: float,
        hedge: bool,
        exc: Exception,
    ) -> _Result[Any]:
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
        breaker.policy = call.policy
        transition: Transition | None = None
        if outcome is Outcome.FAILURE:
            state.health.record(False)
            if isinstance(exc, litellm.Timeout):
                # Slowness is information (for the EWMA), not a latency sample.
                state.health.observe_latency(latency, now, completed=False)
            transition = breaker.record(False, now, probe=probe, why=label)
        elif outcome is Outcome.RATE_LIMITED:
            self._release(deployment, probe)
            health = state.health
            health.rate_limited_streak += 1
            pause = retry_after_of(exc)
            pause = RATE_LIMIT_DEFAULT_PAUSE_S if pause is None else pause
            if health.rate_limited_streak >= call.settings.rate_limit_pause_after:
                why = f"rate-limited for {pause:g} s"
                health.pause(now + pause, why)
                self.state.on_pause(deployment.name, pause, why)
            else:
                if call.retry_after is None:
                    call.retry_after = {}
                call.retry_after[deployment.name] = now + pause
        elif outcome is Outcome.MISCONFIGURED:
            transition = breaker.force_open(
                now, call.settings.misconfigured_open, f"misconfigured: {label}"
            )
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
        return _Result(deployment, outcome, exc=exc, index=len(call.attempts) - 1)

    async def _hedged(
        self,
        call: _Call,
        primary: Deployment,
        probe: bool,
        timeout: float,
        ranked: list[Deployment],
        tries: dict[str, int],
        attempt: Callable[[Deployment, float], Awaitable[T]],
        first_chunk: bool,
        discard: Callable[[T], None] | None,
    ) -> _Result[T]:
        """Race the primary attempt against one delayed hedge; the first success wins."""
        clock = self.clock
        first_started = clock.now()
        first = asyncio.ensure_future(
            self._attempt(call, primary, probe, timeout, attempt, first_chunk)
        )
        settings = call.settings
        delay: float
        if isinstance(settings.hedge_delay, float):
            delay = settings.hedge_delay
        else:
            delay = self.state.get(primary.name).health.hedge_delay() or HEDGE_FALLBACK_DELAY_S
        now = clock.now()
        try:
            done, _ = await asyncio.wait({first}, timeout=min(delay, call.deadline_at - now))
        except asyncio.CancelledError:
            first.cancel()
            raise
        if done:
            return first.result()
        now = clock.now()
        target = self._hedge_target(call, ranked, tries, now)
        if target is None:
            return await first
        hedge_to, hedge_probe = target
        if not self.budget.withdraw(now):
            self._release(hedge_to, hedge_probe)
            call.notes.append(f"no hedge: {self.budget.describe(now)}")
            return await first

        def racer(deployment: Deployment, probe: bool, now: float) -> asyncio.Future[_Result[T]]:
            tries[deployment.name] = tries.get(deployment.name, 0) + 1
            timeout = self._timeout(call, deployment, first_chunk, now)
            return asyncio.ensure_future(
                self._attempt(call, deployment, probe, timeout, attempt, first_chunk, hedge=True)
            )

        racers: dict[asyncio.Future[_Result[T]], tuple[Deployment, bool, float]] = {
            first: (primary, probe, first_started)
        }
        pending: set[asyncio.Future[_Result[T]]] = {first, racer(hedge_to, hedge_probe, now)}
        racers[next(iter(pending - {first}))] = (hedge_to, hedge_probe, now)
        done_set: set[asyncio.Future[_Result[T]]]
        failed: list[_Result[T]] = []
        try:
            while pending:
                done_set, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                winner: _Result[T] | None = None
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
                    await _cancel(pending)
                    now = clock.now()
                    for task in pending:  # the losers: slower than a hedge, and that counts
                        loser, was_probe, started = racers[task]
                        self._lost(call, loser, was_probe, now - started)
                    return winner
                if failed and pending:
                    # A racer failed while another is still out: start the next candidate now
                    # instead of waiting on the slow one (bounded by attempts and budget).
                    now = clock.now()
                    made = len(call.attempts) - len(call.context.prior_attempts)
                    nxt = self._hedge_target(call, ranked, tries, now)
                    if nxt is not None and (
                        made >= call.settings.max_attempts or not self.budget.withdraw(now)
                    ):
                        self._release(*nxt)
                        nxt = None
                    if nxt is not None:
                        task = racer(nxt[0], nxt[1], now)
                        racers[task] = (nxt[0], nxt[1], now)
                        pending.add(task)
        except asyncio.CancelledError:
            await _cancel(pending)
            raise
        return failed[-1]

    def _lost(self, call: _Call, deployment: Deployment, probe: bool, elapsed: float) -> None:
        """A racer cancelled because another won: slowness is evidence against it.

        Its time so far feeds the latency EWMA and it counts as a failure, so a deployment
        that hangs stops getting first attempts (and a probe that lost re-opens the breaker)
        instead of being hedged around forever.
        """
        now = self.clock.now()
        state = self.state.get(deployment.name)
        state.health.observe_latency(elapsed, now, completed=False)
        state.health.record(False)
        state.breaker.policy = call.policy
        transition = state.breaker.record(
            False, now, probe=probe, why=f"lost to a hedge after {elapsed:.2f} s"
        )
        if transition is not None:
            self._emit(call, transition)

    def _hedge_target(
        self, call: _Call, ranked: list[Deployment], tries: Mapping[str, int], now: float
    ) -> tuple[Deployment, bool] | None:
        for deployment in ranked:
            if tries.get(deployment.name):
                continue
            probe = self._admit(call, deployment, now)
            if probe is not None:
                return deployment, probe
        return None

    async def _wait_for_recovery(
        self, call: _Call, deployments: Sequence[Deployment], ranked: list[Deployment], now: float
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
        if soonest is None or soonest + _MIN_ATTEMPT_S >= call.deadline_at:
            return False
        call.notes.append(f"waited {soonest - now:.2f} s for the soonest recovery")
        await self.clock.sleep(soonest - now)
        return True

    def _larger_windows(
        self, call: _Call, failed: Deployment, ranked: list[Deployment]
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

    def _emit(self, call: _Call, transition: Transition) -> None:
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

    def _exhausted(self, call: _Call, last: _Result[Any]) -> BaseException:
        now = self.clock.now()
        if call.deadline_at - now < _MIN_ATTEMPT_S:
            return self._deadline(call, last)
        assert last.exc is not None
        return attach(last.exc, call.decision(now, "failed", None, 0.0))

    def _deadline(self, call: _Call, last: _Result[Any] | None) -> BaseException:
        decision = call.decision(self.clock.now(), "deadline_exceeded", None, 0.0)
        trail = ", ".join(f"{a.deployment} {a.error or a.outcome}" for a in call.attempts)
        exc = DeadlineExceeded(call.group, call.deadline, trail)
        exc.__cause__ = None if last is None else last.exc
        return attach(exc, decision)

    def _no_deployment(
        self, call: _Call, failures: Mapping[str, str], last: _Result[Any] | None
    ) -> BaseException:
        reasons: dict[str, str] = {}
        for skip in call.skipped:
            reasons.setdefault(skip.deployment, skip.why)
        reasons.update(failures)
        decision = call.decision(self.clock.now(), "no_deployment", None, 0.0)
        exc = NoDeploymentAvailable(call.group, reasons)
        exc.__cause__ = None if last is None else last.exc
        return attach(exc, decision)


def _unavailable(state: DeploymentState, now: float) -> str | None:
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


def _fewest_tries(ranked: Sequence[Deployment], tries: Mapping[str, int]) -> Deployment | None:
    """The best-ranked candidate tried the fewest times (untried ones first)."""
    best: Deployment | None = None
    best_tries = 0
    for deployment in ranked:
        n = tries.get(deployment.name, 0)
        if n == 0:
            return deployment
        if best is None or n < best_tries:
            best, best_tries = deployment, n
    return best


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


async def _cancel(pending: set[asyncio.Future[Any]]) -> None:
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream may fail again; the first error matters
            log.debug("router: closing a failed stream raised", exc_info=True)


_closing: set[asyncio.Task[None]] = set()


def _fire_and_forget_close(iterator: Any) -> None:
    if getattr(iterator, "aclose", None) is None:
        return
    try:
        task = asyncio.get_running_loop().create_task(_aclose(iterator))
    except RuntimeError:
        return
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class _StreamDeadline:
    """The call's deadline over a stream's chunk reads: one timer for the whole stream.

    A timeout scope per chunk (``asyncio.timeout``) costs a timer, a scope object and a
    heap push and cancel for every chunk. This arms one loop timer at the deadline; if it fires
    while a read is waiting, that read's task is cancelled and the cancellation turned into
    `TimeoutError`, exactly as ``asyncio.timeout`` does (a cancellation of the task from
    anywhere else still propagates). A read started after the deadline never gets here (the
    stream checks the time left first). Used with the system clock only; other clocks keep
    their own timeout scope.
    """

    __slots__ = ("_fired_on", "_reader", "_timer")

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._fired_on: asyncio.Task[Any] | None = None

    async def read(self, iterator: Any, left: float) -> Any:
        task = asyncio.current_task()
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + left, self._fire)
        self._reader = task
        try:
            return await iterator.__anext__()
        except asyncio.CancelledError:
            if task is not None and self._fired_on is task:
                self._fired_on = None
                if task.uncancel() == 0:
                    raise TimeoutError from None
            raise
        finally:
            self._reader = None

    def _fire(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            self._fired_on = reader
            reader.cancel()

    def cancel(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


class RoutedStream:
    """An async iterator of litellm chunks from the deployment that sent the first chunk.

    After the first chunk the stream is committed: a failure, a stall past the call's deadline
    or an end without any ``finish_reason`` raises `StreamInterrupted`; it never ends as if
    complete. ``decision`` is the record so far, final once the stream is exhausted.
    """

    def __init__(
        self,
        engine: Engine,
        call: _Call,
        deployment: Deployment,
        iterator: Any,
        first: Any,
        index: int,
        messages: Any = None,
    ) -> None:
        self._engine = engine
        self._call = call
        self._deployment = deployment
        self._iterator = iterator
        self._pending: Any = first
        self._index = index
        self._chunks = 0
        self._finished = False
        self._usage: Any = None
        self._reasons: list[str] = []
        self._text: list[str] | None = [] if engine.capture_content else None
        self._messages = messages
        self._id: str | None = field(first, "id")
        self._model: str | None = field(first, "model")
        self._done = False
        self._deadline = _StreamDeadline() if type(engine.clock) is SystemClock else None
        self.decision: Decision = call.decision(
            engine.clock.now(), "streaming", deployment.name, 0.0
        )

    def __aiter__(self) -> RoutedStream:
        return self

    async def __anext__(self) -> Any:
        if self._pending is not None:
            chunk, self._pending = self._pending, None
            self._track(chunk)
            return chunk
        if self._done:
            raise StopAsyncIteration
        clock = self._engine.clock
        left = self._call.deadline_at - clock.now()
        try:
            if left <= 0:
                raise TimeoutError
            if self._deadline is not None:
                chunk = await self._deadline.read(self._iterator, left)
            else:
                async with clock.timeout(left):
                    chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            if not self._finished:
                raise self._fail("the stream ended without a finish_reason", None) from None
            self._finish()
            raise
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            why = f"deadline of {self._call.deadline:g} s reached"
            raise self._fail(why, exc) from exc
        except Exception as exc:
            raise self._fail(describe(exc), exc) from exc
        self._track(chunk)
        return chunk

    def _track(self, chunk: Any) -> None:
        self._chunks += 1
        choices = field(chunk, "choices")
        if choices:
            for choice in choices:
                if self._text is not None:
                    piece = field(field(choice, "delta"), "content")
                    if piece:
                        self._text.append(piece)
                reason = field(choice, "finish_reason")
                if reason:
                    self._finished = True
                    self._reasons.append(str(reason))
        usage = field(chunk, "usage")
        if usage is not None:
            self._usage = usage

    def _finish(self) -> None:
        self._done = True
        if self._deadline is not None:
            self._deadline.cancel()
        engine = self._engine
        call = self._call
        usage = self._usage
        cost = _usage_cost(engine.catalogue, self._deployment, usage)
        if cost:
            call.attempts[self._index] = replace(call.attempts[self._index], cost_usd=cost)
        cost += call.context.prior_cost
        info = ResponseInfo(
            id=self._id,
            model=self._model,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            finish_reasons=tuple(self._reasons),
        )
        self.decision = call.decision(
            engine.clock.now(), "success", self._deployment.name, cost, info
        )
        engine.notify(
            self.decision,
            None,
            messages=self._messages,
            output=None if self._text is None else "".join(self._text),
        )

    def _fail(self, why: str, cause: BaseException | None) -> BaseException:
        self._done = True
        if self._deadline is not None:
            self._deadline.cancel()
        call = self._call
        engine = self._engine
        now = engine.clock.now()
        attempt = call.attempts[self._index]
        call.attempts[self._index] = replace(
            attempt,
            outcome=Outcome.FAILURE,
            error=f"stream interrupted: {why}",
            latency_s=now - call.started - attempt.started_s,
        )
        state = engine.state.get(self._deployment.name)
        state.health.record(False)
        state.breaker.policy = call.policy
        transition = state.breaker.record(False, now, why="stream interrupted")
        if transition is not None:
            engine._emit(call, transition)
        exc = StreamInterrupted(call.group, self._deployment.name, why, self._chunks)
        exc.__cause__ = cause
        self.decision = call.decision(now, "stream_interrupted", None, 0.0)
        _fire_and_forget_close(self._iterator)
        attach(exc, self.decision)
        if engine.observer is not None:
            engine.observer.call_finished(self.decision, exc)
        return exc

    async def aclose(self) -> None:
        """Stop reading early and release the connection."""
        if self._deadline is not None:
            self._deadline.cancel()
        if not self._done:
            self._done = True
            engine = self._engine
            self.decision = self._call.decision(
                engine.clock.now(), "closed_early", self._deployment.name, 0.0
            )
            if engine.observer is not None:
                engine.observer.call_finished(self.decision, None)
        await _aclose(self._iterator)
