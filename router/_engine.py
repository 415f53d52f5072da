"""The engine: a routed call over a group's deployments, start to record.

`Engine.complete` and `Engine.stream` start a call (its deadline, breaker policy and
bookkeeping, router._call) and run its attempts (router._attempts: failover, breakers, the retry
budget, hedges); a stream is handed over as a `RoutedStream` (router._stream) once its first
chunk arrived. Where the call leaves the router, `deliver` and `failed` attach the final record
and report it to the observer, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import litellm

from router._attempts import AttemptLoop
from router._breaker import BreakerPolicy
from router._budget import RetryBudget
from router._call import NO_CONTEXT, Call, CallContext
from router._choose import Chooser
from router._decision import CallOutcome, Decision, ResponseInfo, get_decision
from router._embeddings import check_dimensions
from router._errors import Outcome, classify
from router._fields import field
from router._select import Selector
from router._slo import Objectives
from router._stream import RoutedStream, close_quietly, fire_and_forget_close

if TYPE_CHECKING:
    from router._backend import Transport
    from router._catalogue import Catalogue
    from router._clock import Clock
    from router._config import Deployment, RouterSettings
    from router._observe import Observer
    from router._state import StateStore

__all__ = ["Engine"]


class Engine(AttemptLoop):
    """Runs calls over a group's deployments (see the module docstring for the rules).

    `complete` returns the response with its decision; `stream` a `RoutedStream` that carries
    its own. Neither attaches the record to the response nor reports the call: that happens
    once, where the call leaves the router (`deliver`, `failed`), after any escalation has
    composed the final record. Failures raise with the call's record attached.
    """

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
        self.capture_content = observer is not None and observer.capture_content
        self.transport = transport
        self.catalogue = catalogue
        self.clock = clock
        self.state = state
        self.rng = rng
        self.budget = budget
        self.selector = Selector(catalogue, state, rng)
        self.chooser = Chooser(self.selector, state, rng)
        self.objectives = Objectives(self.selector, state)
        self._policies: dict[int, tuple[RouterSettings, BreakerPolicy]] = {}
        self._refused: dict[str, float] = {}
        # Deployments priced in providers.toml (their response_cost is the router's price).
        self._priced: set[str] = set()
        self._priced_seen: Sequence[Deployment] = ()
        """The deployments `_priced` was last brought up to date with."""

    # -- entry points ------------------------------------------------------------------------

    def complete(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
        context: CallContext = NO_CONTEXT,
    ) -> Coroutine[Any, Any, tuple[Any, Decision]]:
        """One non-streaming call (await it): the litellm response and the call's record."""
        # A plain function handing back `_once`'s coroutine, and an attempt that hands back
        # the transport's: two coroutine frames fewer on every call, same awaiting semantics.
        transport = self.transport

        def attempt(deployment: Deployment, timeout: float) -> Awaitable[Any]:
            return transport.complete(deployment, request, timeout)

        return self._once(group, deployments, settings, deadline, context, attempt)

    async def _once(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        deadline: float | None,
        context: CallContext,
        attempt: Callable[[Deployment, float], Awaitable[Any]],
    ) -> tuple[Any, Decision]:
        call = self._start(group, settings, deadline, stream=False, context=context)
        if deployments is not self._priced_seen:  # the routes' tuples are cached: once each
            for deployment in deployments:
                if deployment.input_cost_per_token is not None or (
                    deployment.output_cost_per_token is not None
                ):
                    self._priced.add(deployment.name)
            self._priced_seen = deployments
        try:
            result = await self._run(call, deployments, attempt, first_chunk=False, discard=None)
        except BaseException as exc:
            self._record_failure(call, exc)
            raise
        response = result.value
        cost = call.attempts[result.index].cost_usd
        decision = call.decision(
            self.clock.now(),
            CallOutcome.SUCCESS,
            result.deployment.name,
            cost,
            result.info if result.info is not None else ResponseInfo.of(response),
        )
        return response, decision

    async def embed(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
        context: CallContext = NO_CONTEXT,
    ) -> tuple[Any, Decision]:
        """One embedding call (router._embeddings): the loop of `complete`, `transport.embed`
        per attempt; a response whose vectors miss the declared size is a failed attempt."""
        embed = getattr(self.transport, "embed", None)
        if embed is None:
            raise TypeError(f"router: transport {type(self.transport).__name__} cannot embed")

        async def attempt(deployment: Deployment, timeout: float) -> Any:
            response = await embed(deployment, request, timeout)
            check_dimensions(deployment, response)
            return response

        return await self._once(group, deployments, settings, deadline, context, attempt)

    async def stream(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: Mapping[str, Any],
        deadline: float | None = None,
        context: CallContext = NO_CONTEXT,
    ) -> RoutedStream:
        """One streaming call: fails over freely until a first chunk arrives, then commits."""
        call = self._start(group, settings, deadline, stream=True, context=context)
        transport = self.transport

        async def attempt(deployment: Deployment, timeout: float) -> tuple[Any, Any]:
            iterator = (await transport.stream(deployment, request, timeout)).__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                await close_quietly(iterator)
                raise litellm.APIConnectionError(
                    "stream ended before its first chunk",
                    llm_provider="router",
                    model=deployment.model,
                ) from None
            except BaseException:
                await close_quietly(iterator)
                raise
            return iterator, first

        def discard(value: tuple[Any, Any]) -> None:
            fire_and_forget_close(value[0])

        try:
            result = await self._run(call, deployments, attempt, first_chunk=True, discard=discard)
        except BaseException as exc:
            self._record_failure(call, exc)
            raise
        assert result.value is not None
        iterator, first = result.value
        return RoutedStream(
            self, call, result.deployment, iterator, first, result.index, request.get("messages")
        )

    # -- where a call leaves the router ------------------------------------------------------

    def deliver(self, response: Any, decision: Decision, messages: Any = None) -> Any:
        """Attach the final record to `response` and report the call; returns `response`."""
        hidden = field(response, "_hidden_params")
        if isinstance(hidden, dict):
            hidden["router_decision"] = decision
            # What litellm users read: the deployment, and the router's price (providers.toml)
            # where the serving deployment sets one (router._catalogue's, as in the record).
            served = decision.deployment
            if served is not None:
                hidden["model_id"] = served
                if served in self._priced:
                    attempts = decision.attempts
                    won = attempts[-1] if attempts and attempts[-1].deployment == served else None
                    if won is None:
                        won = next((a for a in reversed(attempts) if a.deployment == served), None)
                    if won is not None:
                        hidden["response_cost"] = won.cost_usd
        self.notify(decision, None, messages=messages, output=response)
        return response

    def failed(self, exc: BaseException) -> None:
        """Report a call that raised `exc` (whose record the engine or escalation attached)."""
        decision = get_decision(exc)
        if decision is not None:
            self.notify(decision, exc)

    def notify(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        """Tell the observer a logical call ended."""
        if self.observer is None:
            return
        if self.capture_content:
            self.observer.call_finished(decision, error, messages=messages, output=output)
        else:
            self.observer.call_finished(decision, error)

    def _record_failure(self, call: Call, exc: BaseException) -> None:
        """Give an exception the engine did not raise itself (cancelled, a bug) a record too."""
        if get_decision(exc) is None:
            outcome = (
                CallOutcome.CANCELLED
                if isinstance(exc, asyncio.CancelledError)
                else CallOutcome.ERROR
            )
            with contextlib.suppress(AttributeError):  # exceptions with __slots__
                exc.router_decision = call.decision(  # type: ignore[attr-defined]
                    self.clock.now(), outcome, None, 0.0
                )

    def _start(
        self,
        group: str,
        settings: RouterSettings,
        deadline: float | None,
        stream: bool,
        context: CallContext,
    ) -> Call:
        limit = settings.deadline if deadline is None else min(deadline, settings.deadline)
        return Call(
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
