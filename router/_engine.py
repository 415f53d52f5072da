"""The attempt loop: failover under one deadline, bounded attempts, jittered retries.

One call has one deadline (`deadline` seconds) covering every attempt, failover, backoff and the
stream. Each attempt runs under ``min(deployment timeout, time left)``. Attempts are bounded by
`max_attempts` (failovers included). Failover to another deployment is immediate; a retry of a
deployment already tried waits a full-jitter backoff ``U(0, min(backoff_max,
backoff_base * 2**(n-1)))`` for its n-th retry, and never sleeps past the deadline.

What happens after a failed attempt depends on its `Outcome`:

- failure (timeout, connection, 5xx): try the next candidate;
- rate_limited (429): pause the deployment until Retry-After (default 1 s), try the next;
- misconfigured (401/403/404/402): pause it for `MISCONFIGURED_PAUSE_S`, log an error, try next;
- context_window: try only candidates with a larger known window, else raise the error;
- caller_error: raise at once, as is (it would fail anywhere).

When the attempts are used up, the last provider error is raised; when the deadline ran out,
`DeadlineExceeded`; when no candidate is left, `NoDeploymentAvailable` listing each and why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import litellm

from router._config import ConfigError
from router._decision import AttemptRecord, Decision, Skip
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

if TYPE_CHECKING:
    from router._backend import Backend
    from router._clock import Clock
    from router._config import Deployment, RouterSettings
    from router._select import Selector
    from router._state import StateStore

log = logging.getLogger("router")

T = TypeVar("T")

RATE_LIMIT_DEFAULT_PAUSE_S = 1.0
"""Pause after a 429 that carries no Retry-After header."""
MISCONFIGURED_PAUSE_S = 300.0
"""Pause after 401/403/404/402: a wrong key or model name does not fix itself in seconds."""
_MIN_ATTEMPT_S = 0.001
"""Below this much time left, no attempt is started (it could not finish)."""


class _Call:
    """Mutable bookkeeping of one call; frozen into a `Decision` when the call ends."""

    __slots__ = (
        "attempts",
        "candidates",
        "deadline",
        "deadline_at",
        "group",
        "skipped",
        "started",
        "strategy",
        "stream",
    )

    def __init__(
        self, group: str, strategy: str, deadline: float, started: float, stream: bool
    ) -> None:
        self.group = group
        self.strategy = strategy
        self.deadline = deadline
        self.started = started
        self.deadline_at = started + deadline
        self.stream = stream
        self.candidates: tuple[str, ...] = ()
        self.skipped: list[Skip] = []
        self.attempts: list[AttemptRecord] = []

    def decision(
        self,
        now: float,
        outcome: str,
        deployment: str | None,
        cost: float,
        reason: str | None = None,
    ) -> Decision:
        return Decision(
            group=self.group,
            strategy=self.strategy,
            candidates=self.candidates,
            skipped=tuple(self.skipped),
            attempts=tuple(self.attempts),
            deployment=deployment,
            outcome=outcome,
            reason=reason or self.reason(outcome, deployment),
            cost_usd=cost,
            elapsed_s=now - self.started,
            deadline_s=self.deadline,
            stream=self.stream,
        )

    def reason(self, outcome: str, deployment: str | None) -> str:
        failed = [a for a in self.attempts if a.outcome != Outcome.SUCCESS]
        if deployment is not None:
            first = self.candidates[0] if self.candidates else deployment
            if not failed:
                why = "first by cost" if deployment == first else "first available by cost"
                text = f"served by {deployment} ({why})"
            else:
                trail = ", ".join(f"{a.deployment} {a.error}" for a in failed)
                text = f"served by {deployment} after {len(failed)} failed attempt(s): {trail}"
        else:
            trail = ", ".join(f"{a.deployment} {a.error}" for a in failed) or "no attempt"
            text = f"{outcome.replace('_', ' ')} after {len(self.attempts)} attempt(s): {trail}"
        if self.skipped:
            text += "; " + "; ".join(f"{s.deployment} skipped: {s.why}" for s in self.skipped)
        return text


def _usage_cost(backend: Backend, deployment: Deployment, usage: Any) -> float:
    if usage is None:
        return 0.0
    prompt = getattr(usage, "prompt_tokens", None) or 0
    completion = getattr(usage, "completion_tokens", None) or 0
    return backend.cost(deployment, int(prompt), int(completion))


class Engine:
    """Runs calls over a group's deployments (see the module docstring for the rules)."""

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        state: StateStore,
        selector: Selector,
        rng: random.Random,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.state = state
        self.selector = selector
        self.rng = rng

    async def complete(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
    ) -> Any:
        """One non-streaming call: returns the litellm response with its decision attached."""
        call = self._start(group, settings, deadline, stream=False)
        backend = self.backend

        async def attempt(deployment: Deployment, timeout: float) -> Any:
            return await backend.complete(deployment, request, timeout)

        deployment, response, records_at = await self._run(
            call, deployments, settings, attempt, first_chunk=False
        )
        cost = _usage_cost(backend, deployment, getattr(response, "usage", None))
        now = self.clock.now()
        _set_cost(call, records_at, cost)
        decision = call.decision(now, "success", deployment.name, cost)
        hidden = getattr(response, "_hidden_params", None)
        if isinstance(hidden, dict):
            hidden["router_decision"] = decision
        return response

    async def stream(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
    ) -> RoutedStream:
        """One streaming call: fails over freely until a first chunk arrives, then commits."""
        call = self._start(group, settings, deadline, stream=True)
        backend = self.backend

        async def attempt(deployment: Deployment, timeout: float) -> tuple[Any, Any]:
            iterator = await backend.stream(deployment, request, timeout)
            iterator = iterator.__aiter__()
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

        deployment, (iterator, first), index = await self._run(
            call, deployments, settings, attempt, first_chunk=True
        )
        return RoutedStream(self, call, deployment, iterator, first, index)

    def _start(
        self, group: str, settings: RouterSettings, deadline: float | None, stream: bool
    ) -> _Call:
        limit = settings.deadline if deadline is None else min(deadline, settings.deadline)
        return _Call(group, self.selector.name, limit, self.clock.now(), stream)

    async def _run(
        self,
        call: _Call,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        attempt: Callable[[Deployment, float], Awaitable[T]],
        first_chunk: bool,
    ) -> tuple[Deployment, T, int]:
        clock = self.clock
        ranked = self.selector.rank(call.group, deployments)
        call.candidates = tuple(d.name for d in ranked)
        now = clock.now()
        available: list[Deployment] = []
        for candidate in ranked:
            why = self.state.unavailable(candidate.name, now)
            if why is None:
                available.append(candidate)
            else:
                call.skipped.append(Skip(candidate.name, why))
        tries: dict[str, int] = {}
        last_exc: BaseException | None = None
        failures: dict[str, str] = {}

        while True:
            deployment = _pick(available, tries)
            if deployment is None:
                raise self._no_deployment(call, failures, last_exc)
            if len(call.attempts) >= settings.max_attempts and last_exc is not None:
                raise self._exhausted(call, last_exc)
            now = clock.now()
            n = tries.get(deployment.name, 0)
            if n:
                delay = self.rng.uniform(
                    0.0, min(settings.backoff_max, settings.backoff_base * 2 ** (n - 1))
                )
                if now + delay + _MIN_ATTEMPT_S >= call.deadline_at:
                    raise self._deadline(call, last_exc)
                await clock.sleep(delay)
                now = clock.now()
            left = call.deadline_at - now
            if left < _MIN_ATTEMPT_S:
                raise self._deadline(call, last_exc)
            timeout = min(deployment.timeout or settings.timeout, left)
            if first_chunk and settings.first_chunk_timeout is not None:
                timeout = min(timeout, settings.first_chunk_timeout)
            tries[deployment.name] = n + 1
            started = now
            try:
                async with clock.timeout(timeout):
                    result = await attempt(deployment, timeout)
            except asyncio.CancelledError:
                raise
            except ConfigError as exc:
                # A missing env var for this deployment's key: not an attempt, a skip.
                available.remove(deployment)
                tries.pop(deployment.name, None)
                why = f"misconfigured: {exc}"
                call.skipped.append(Skip(deployment.name, why))
                failures[deployment.name] = why
                log.error("router.deployment_misconfigured: %s", exc)
                continue
            except Exception as raw:
                err = _as_timeout(raw, deployment, timeout)
                now = clock.now()
                outcome = classify(err)
                label = describe(err)
                call.attempts.append(
                    AttemptRecord(
                        number=len(call.attempts) + 1,
                        deployment=deployment.name,
                        model=deployment.model,
                        outcome=outcome,
                        latency_s=now - started,
                        timeout_s=timeout,
                        error=label,
                    )
                )
                failures[deployment.name] = f"failed: {label}"
                last_exc = err
                if outcome is Outcome.CALLER_ERROR:
                    raise attach(err, call.decision(now, "caller_error", None, 0.0)) from None
                if outcome is Outcome.CONTEXT_WINDOW:
                    available = self._larger_windows(call, deployment, available)
                    if not available:
                        raise attach(err, call.decision(now, "caller_error", None, 0.0)) from None
                elif outcome is Outcome.RATE_LIMITED:
                    pause = retry_after_of(err)
                    pause = RATE_LIMIT_DEFAULT_PAUSE_S if pause is None else pause
                    self.state.pause(deployment.name, now + pause, f"rate-limited for {pause:g} s")
                    available.remove(deployment)
                elif outcome is Outcome.MISCONFIGURED:
                    self.state.pause(
                        deployment.name, now + MISCONFIGURED_PAUSE_S, f"misconfigured ({label})"
                    )
                    available.remove(deployment)
                    log.error(
                        "router.deployment_misconfigured: %s answered %s; paused for %g s",
                        deployment.name,
                        label,
                        MISCONFIGURED_PAUSE_S,
                    )
                continue
            now = clock.now()
            call.attempts.append(
                AttemptRecord(
                    number=len(call.attempts) + 1,
                    deployment=deployment.name,
                    model=deployment.model,
                    outcome=Outcome.SUCCESS,
                    latency_s=now - started,
                    timeout_s=timeout,
                    first_chunk_s=(now - started) if first_chunk else None,
                )
            )
            return deployment, result, len(call.attempts) - 1

    def _larger_windows(
        self, call: _Call, failed: Deployment, available: list[Deployment]
    ) -> list[Deployment]:
        window = self.backend.context_window(failed)
        kept: list[Deployment] = []
        for deployment in available:
            if deployment is failed:
                continue
            other = self.backend.context_window(deployment)
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

    def _exhausted(self, call: _Call, last_exc: BaseException) -> BaseException:
        now = self.clock.now()
        if call.deadline_at - now < _MIN_ATTEMPT_S:
            return self._deadline(call, last_exc)
        return attach(last_exc, call.decision(now, "failed", None, 0.0))

    def _deadline(self, call: _Call, last_exc: BaseException | None) -> BaseException:
        decision = call.decision(self.clock.now(), "deadline_exceeded", None, 0.0)
        trail = ", ".join(f"{a.deployment} {a.error}" for a in call.attempts)
        exc = DeadlineExceeded(call.group, call.deadline, trail)
        exc.__cause__ = last_exc
        return attach(exc, decision)

    def _no_deployment(
        self, call: _Call, failures: Mapping[str, str], last_exc: BaseException | None
    ) -> BaseException:
        reasons: dict[str, str] = {}
        for skip in call.skipped:
            reasons.setdefault(skip.deployment, skip.why)
        reasons.update(failures)
        decision = call.decision(self.clock.now(), "no_deployment", None, 0.0)
        exc = NoDeploymentAvailable(call.group, reasons)
        exc.__cause__ = last_exc
        return attach(exc, decision)


def _pick(available: Sequence[Deployment], tries: Mapping[str, int]) -> Deployment | None:
    """The best-ranked candidate tried the fewest times (untried ones first)."""
    best: Deployment | None = None
    best_tries = 0
    for deployment in available:
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


def _set_cost(call: _Call, index: int, cost: float) -> None:
    call.attempts[index] = replace(call.attempts[index], cost_usd=cost)


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream may fail again; the first error matters
            log.debug("router: closing a failed stream raised", exc_info=True)


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
        self._done = False
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
        choices = getattr(chunk, "choices", None)
        if choices:
            for choice in choices:
                if getattr(choice, "finish_reason", None):
                    self._finished = True
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage

    def _finish(self) -> None:
        self._done = True
        engine = self._engine
        cost = _usage_cost(engine.backend, self._deployment, self._usage)
        _set_cost(self._call, self._index, cost)
        self.decision = self._call.decision(
            engine.clock.now(), "success", self._deployment.name, cost
        )

    def _fail(self, why: str, cause: BaseException | None) -> BaseException:
        self._done = True
        call = self._call
        engine = self._engine
        now = engine.clock.now()
        attempt = call.attempts[self._index]
        call.attempts[self._index] = replace(
            attempt,
            outcome=Outcome.FAILURE,
            error=f"stream interrupted: {why}",
            latency_s=now - call.started,
        )
        exc = StreamInterrupted(call.group, self._deployment.name, why, self._chunks)
        exc.__cause__ = cause
        self.decision = call.decision(now, "stream_interrupted", None, 0.0)
        _fire_and_forget_close(self._iterator)
        return attach(exc, self.decision)

    async def aclose(self) -> None:
        """Stop reading early and release the connection."""
        self._done = True
        await _aclose(self._iterator)


def _fire_and_forget_close(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is None:
        return
    try:
        task = asyncio.get_running_loop().create_task(_aclose(iterator))
    except RuntimeError:
        return
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
