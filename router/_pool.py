"""Provider or tool routing: the engine over any pool of interchangeable async callables.

`Pool` gives two search APIs, two retrievers or two of anything the same health tracking,
breakers, strategies, retry budget, hedging and one deadline per call that LLM deployments
get::

    pool = Pool({"bing": bing, "brave": brave}, strategy="cost",
                costs={"bing": 0.003, "brave": 0.001}, deadline=5.0, timeout=2.0)
    hits = await pool.call("llm routing", k=3)          # brave's answer, or bing's on failover

Each callable becomes a `Deployment` named after its key (model ``tool/<name>``) and runs
behind a `Backend` adapter; the `Engine` is the very one `Router` uses, so every rule in
router._engine holds here too. What differs is only what an error means (see `Pool`).
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypedDict, TypeVar, overload

from pydantic import ValidationError

from router._budget import RetryBudget
from router._clock import Clock, SystemClock
from router._config import BalancedWeights, ConfigError, Deployment, RouterSettings, Strategy
from router._decision import Decision
from router._engine import Engine
from router._errors import Outcome, classify, status_code_of
from router._jobs import JobAccounting
from router._state import DeploymentHealth, MemoryState, StateStore, snapshot_of
from router._sync import run_sync

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Pool", "PoolSettings", "Routed"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class PoolSettings(TypedDict, total=False):
    """The `RouterSettings` a `Pool` takes as keywords (see `RouterSettings` for each).

    ``strategy`` is a parameter of its own, ``weights`` there means per-tool weights (the
    balanced blend is ``balanced_weights`` here) and ``first_chunk_timeout`` is left out:
    tools do not stream.
    """

    deadline: float
    max_attempts: int
    timeout: float
    backoff_base: float
    backoff_max: float
    balanced_weights: BalancedWeights | Mapping[str, float]
    breaker_failure_rate: float
    breaker_window: int
    breaker_min_calls: int
    breaker_consecutive_failures: int
    breaker_open_base: float
    breaker_open_max: float
    misconfigured_open: float
    hedge: bool
    hedge_delay: float | Literal["p95"]
    retry_budget_ratio: float
    retry_budget_window: float
    retry_budget_floor: int
    wait_for_recovery: bool
    rate_limit_pause_after: int
    latency_slo: float
    slo_percentile: float


# PoolSettings key -> RouterSettings field, where they differ.
_RENAMED = {"balanced_weights": "weights"}


@dataclass(frozen=True, slots=True)
class Routed(Generic[R_co]):
    """A tool's result with the decision record of the call that produced it."""

    value: R_co
    """What the callable that served the call returned."""
    decision: Decision
    """Why the call went where it went (the same record LLM calls carry)."""

    @property
    def served_by(self) -> str:
        """Name of the callable that served the call."""
        name = self.decision.deployment
        assert name is not None  # a Routed exists only for a served call
        return name

    @property
    def cost_usd(self) -> float:
        """The per-call price (``costs``) of the callable that served; 0.0 when unpriced."""
        return self.decision.cost_usd


class _Usage:
    """The usage a tool reply reports: no tokens (a tool is priced per call, not per token).

    It is not None so that the engine asks `_ToolBackend.price` for the served call's cost and
    records it on the attempt and the decision, exactly as for an LLM response.
    """

    __slots__ = ()
    prompt_tokens = 0
    completion_tokens = 0


_PER_CALL = _Usage()


class _Reply:
    """A tool's value boxed with a zero-token usage, as the engine reads a response."""

    __slots__ = ("value",)

    usage = _PER_CALL

    def __init__(self, value: Any) -> None:
        self.value = value


class _ToolBackend:
    """The `Backend` protocol over a mapping of callables: one call is one attempt."""

    def __init__(self, tools: Mapping[str, Callable[..., Any]], costs: Mapping[str, float]) -> None:
        self._tools = dict(tools)
        self._costs = dict(costs)
        # Decided once: coroutine functions are awaited on the loop, the rest run in a thread
        # so a blocking client cannot stall the loop (and the engine's timeout stays live).
        self._is_async = {name: _is_async(fn) for name, fn in self._tools.items()}

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        # `timeout` is enforced by the engine's timeout scope around this await; the callable's
        # own signature is the caller's, so it is not passed on.
        name = deployment.name
        fn = self._tools[name]
        args, kwargs = request["args"], request["kwargs"]
        if self._is_async[name]:
            value = await fn(*args, **kwargs)
        else:
            # A cancelled (timed-out) thread cannot be stopped: it runs to its end unobserved.
            value = await asyncio.to_thread(fn, *args, **kwargs)
            if inspect.isawaitable(value):  # e.g. a lambda or decorator returning a coroutine
                value = await value
        return _Reply(value)

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        raise NotImplementedError("a Pool does not stream")

    def price(
        self, deployment: Deployment, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        # Per call, whatever the tokens; None (no price given) ranks last, as an unpriced LLM
        # deployment, and a tool declared free (0.0) ranks first.
        return self._costs.get(deployment.name)

    def context_window(self, deployment: Deployment) -> int | None:
        return None

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        return 0


def _is_async(fn: Callable[..., Any]) -> bool:
    # An object with ``async def __call__`` is not a coroutine function itself, in 3.11.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  (the bound __call__, not callable())
    )


def _from_litellm(exc: BaseException) -> bool:
    return any(cls.__module__.partition(".")[0] == "litellm" for cls in type(exc).__mro__)


def _tool_classifier(
    caller_errors: tuple[type[BaseException], ...],
) -> Callable[[BaseException], Outcome]:
    """The engine's `classify` for tools (see `Pool` for the rules)."""

    def classify_tool(exc: BaseException) -> Outcome:
        if caller_errors and isinstance(exc, caller_errors):
            return Outcome.CALLER_ERROR
        # litellm errors (a tool may call an LLM; the engine also turns its own timeout into
        # litellm.Timeout) and errors carrying an HTTP status (the openai/anthropic SDKs, many
        # HTTP clients) mean what they mean for any provider: 429 pauses, 401 blocks, ...
        if _from_litellm(exc) or status_code_of(exc) is not None:
            return classify(exc)
        # Anything else says nothing about the caller: count it against the tool, fail over.
        return Outcome.FAILURE

    return classify_tool


class Pool(Generic[P, R]):
    """Routes calls over named, interchangeable callables with the router's resilience.

    ``tools`` maps a name to a callable; every call's arguments go to the one chosen, so all
    must accept them. Coroutine functions are awaited; other callables run in a thread
    (`asyncio.to_thread`), and an awaitable they return is awaited. A timed-out or out-hedged
    coroutine is cancelled; a thread cannot be, so it runs on, unobserved, to its end.

    Keywords:

    - ``strategy``: how tools are ranked, any `RouterSettings.strategy` (default balanced);
    - ``costs``: USD per call, per tool name: ranks ``cost``/``balanced`` and is recorded as
      the call's cost (`Routed.cost_usd`, `Decision.cost_usd`); an unpriced tool costs 0.0
      and ranks as unknown (last) by cost;
    - ``weights``: per-tool weights for ``strategy="weighted"`` (default 1.0);
    - ``caller_errors``: exception types that are the caller's fault: raised at once, never
      failed over, not counted against the tool's health or breaker;
    - ``name``: the pool's name in decisions and errors (the "group");
    - ``seed``, ``clock``, ``state``: the same seams as `Router` (a store shared with a
      `Router` keys tools and deployments by name alike: keep the names apart);
    - any `PoolSettings` keyword: deadline, timeout, max_attempts, hedge, breaker_*, ...

    How an exception from a tool counts: a ``caller_errors`` type is the caller's; a litellm
    error or one carrying an HTTP ``status_code`` is classified as for an LLM provider (429:
    pause; 401/403/404: block; other 4xx: caller's; 5xx: failure); anything else is a failure
    of that tool (counted by health and breaker, then fail over).

    What `call` raises: the last tool's own exception (with ``exc.router_decision``), except
    that a timeout, the engine's or a `TimeoutError` the tool raised, surfaces as
    `litellm.Timeout`; `DeadlineExceeded` when the deadline ran out; `NoDeploymentAvailable`
    when every tool was skipped (breaker open, paused) or failed.

    Invalid settings raise `ConfigError` listing every problem; an unknown keyword raises
    `TypeError`.
    """

    @overload
    def __init__(
        self: Pool[P, R],
        tools: Mapping[str, Callable[P, Awaitable[R]]],
        *,
        strategy: Strategy = ...,
        costs: Mapping[str, float] | None = ...,
        weights: Mapping[str, float] | None = ...,
        caller_errors: tuple[type[BaseException], ...] = ...,
        name: str = ...,
        seed: int | None = ...,
        clock: Clock | None = ...,
        state: StateStore | None = ...,
        **settings: Unpack[PoolSettings],
    ) -> None: ...

    @overload
    def __init__(
        self: Pool[P, R],
        tools: Mapping[str, Callable[P, R]],
        *,
        strategy: Strategy = ...,
        costs: Mapping[str, float] | None = ...,
        weights: Mapping[str, float] | None = ...,
        caller_errors: tuple[type[BaseException], ...] = ...,
        name: str = ...,
        seed: int | None = ...,
        clock: Clock | None = ...,
        state: StateStore | None = ...,
        **settings: Unpack[PoolSettings],
    ) -> None: ...

    def __init__(
        self,
        tools: Mapping[str, Callable[..., Any]],
        *,
        strategy: Strategy = "balanced",
        costs: Mapping[str, float] | None = None,
        weights: Mapping[str, float] | None = None,
        caller_errors: tuple[type[BaseException], ...] = (),
        name: str = "pool",
        seed: int | None = None,
        clock: Clock | None = None,
        state: StateStore | None = None,
        **settings: Unpack[PoolSettings],
    ) -> None:
        costs = dict(costs or {})
        weights = dict(weights or {})
        _check_tools(tools, costs, weights, caller_errors)
        self.name = name
        self.settings: RouterSettings = _settings(strategy, dict(settings))
        self.deployments: tuple[Deployment, ...] = tuple(
            Deployment(name=tool, model=f"tool/{tool}", weight=weights.get(tool, 1.0))
            for tool in tools
        )
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.state: StateStore = state if state is not None else MemoryState(seed)
        s = self.settings
        budget = RetryBudget(s.retry_budget_ratio, s.retry_budget_window, s.retry_budget_floor)
        tool_backend = _ToolBackend(tools, costs)
        self.engine = Engine(
            tool_backend,
            tool_backend,
            self.clock,
            self.state,
            random.Random(seed),
            budget,
            classify=_tool_classifier(caller_errors),
            # Tool calls inside a `router.job` are part of the job's steps and cost.
            observer=JobAccounting(),
        )

    async def call_routed(self, *args: P.args, **kwargs: P.kwargs) -> Routed[R]:
        """Call one tool with these arguments (failing over as needed); value and decision."""
        request = {"args": args, "kwargs": kwargs}
        engine = self.engine
        try:
            reply, decision = await engine.complete(
                self.name, self.deployments, self.settings, request
            )
        except BaseException as exc:
            engine.failed(exc)  # the call leaves the pool here: report it
            raise
        engine.notify(decision, None)
        value: R = reply.value
        return Routed(value, decision)

    async def call(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call one tool with these arguments (failing over as needed) and return its result."""
        return (await self.call_routed(*args, **kwargs)).value

    def call_sync(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """`call` from sync code, on the router's background loop (not from inside it)."""
        return run_sync(self.call(*args, **kwargs))

    def call_routed_sync(self, *args: P.args, **kwargs: P.kwargs) -> Routed[R]:
        """`call_routed` from sync code, on the router's background loop."""
        return run_sync(self.call_routed(*args, **kwargs))

    def health(self) -> list[DeploymentHealth]:
        """A snapshot of every tool's health and breaker, in the pool's order."""
        now = self.clock.now()
        return [snapshot_of(self.state.get(d.name), now) for d in self.deployments]


def _check_tools(
    tools: Mapping[str, Callable[..., Any]],
    costs: Mapping[str, float],
    weights: Mapping[str, float],
    caller_errors: tuple[type[BaseException], ...],
) -> None:
    """Raise one `ConfigError` with every problem (or TypeError for a non-callable/type)."""
    if not isinstance(tools, Mapping):
        raise TypeError(f"Pool: tools must be a mapping of name to callable, not {tools!r}")
    for tool, fn in tools.items():
        if not callable(fn):
            raise TypeError(f"Pool: tools[{tool!r}] is not callable ({fn!r})")
    if not isinstance(caller_errors, tuple) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in caller_errors
    ):
        raise TypeError(
            f"Pool: caller_errors must be a tuple of exception types, not {caller_errors!r}"
        )
    problems: list[str] = []
    if not tools:
        problems.append("Pool: tools: at least one callable is required")
    for tool in tools:
        if not isinstance(tool, str) or not tool:
            problems.append(f"Pool: tools: names must be non-empty strings (got {tool!r})")
    for label, table in (("costs", costs), ("weights", weights)):
        for tool, value in table.items():
            if tool not in tools:
                hint = difflib.get_close_matches(str(tool), [str(t) for t in tools], n=1)
                did = f" (did you mean '{hint[0]}'?)" if hint else ""
                problems.append(f"Pool: {label}: no tool named {tool!r}{did}")
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                problems.append(f"Pool: {label}.{tool}: must be a number >= 0 (got {value!r})")
    if problems:
        raise ConfigError(problems)


def _settings(strategy: Strategy, given: dict[str, Any]) -> RouterSettings:
    """`RouterSettings` from `Pool` keywords: TypeError for unknown ones, else ConfigError."""
    allowed = PoolSettings.__optional_keys__
    for key in given:
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            did = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise TypeError(f"Pool() got an unexpected keyword argument '{key}'{did}")
    fields = {_RENAMED.get(k, k): v for k, v in given.items()}
    try:
        return RouterSettings(strategy=strategy, **fields)
    except ValidationError as exc:
        back = {v: k for k, v in _RENAMED.items()}
        problems = []
        for err in exc.errors(include_url=False):
            loc = [str(part) for part in err["loc"]]
            if loc:
                loc[0] = back.get(loc[0], loc[0])
            msg = err["msg"]
            problems.append(
                f"Pool: {'.'.join(loc)}: {msg[:1].lower()}{msg[1:]} (got {err['input']!r})"
            )
        raise ConfigError(problems) from None
