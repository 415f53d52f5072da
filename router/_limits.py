"""RPM/TPM limits per deployment, checked where each attempt is sent (`LimitedBackend`).

`FleetLimits` counts a sliding window of 60 one-second buckets per deployment. A state store
with the `ReservingStore` capability (the Redis store) counts it fleet-wide: one reservation
per attempt in one script round trip, tokens added after the response; while it cannot (no
Redis, or Redis unreachable) the window is this process's, against the limit divided by the
processes last seen. The memory store has no such capability: the window is the process's.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from router._catalogue import text_tokens

if TYPE_CHECKING:
    from router._backend import Transport
    from router._catalogue import Catalogue
    from router._clock import Clock
    from router._config import Deployment
    from router._state import StateStore

__all__ = ["WINDOW_S", "FleetLimits", "LimitedBackend", "ReservingStore", "pause_for"]

WINDOW_S: Final = 60
"""Rate-limit window: RPM and TPM are counted over the last 60 one-second buckets."""


@runtime_checkable
class ReservingStore(Protocol):
    """A state store that counts rate-limit windows across processes."""

    @property
    def peers(self) -> int:
        """Router processes last seen sharing the store (>= 1)."""

    @property
    def connected(self) -> bool:
        """Whether the shared window is reachable now."""

    async def reserve(self, name: str, rpm: int | None, tpm: int | None) -> tuple[int, ...] | None:
        """One request: (admitted, requests, tokens used, wait ms); None if unreachable."""

    def add_tokens(self, name: str, tokens: int, rpm: int | None, tpm: int | None) -> None:
        """Count a response's tokens in the shared window (in the background)."""


def pause_for(retry_after: float, period: float) -> tuple[float, str]:
    """How long a deployment that keeps answering 429 is skipped, and the reason shown.

    A Retry-After is an upper bound, not a promise: a provider's key-wide limit may be lifted
    well before the time it announced (its window rolls, a quota resets, an operator raises
    it), and a pause taken at its word keeps a cheap deployment out long after. So the pause
    lasts the sooner of the Retry-After and `period`, the breaker's open period for the same
    number of pauses in a row (`Breaker.open_duration`: 1 s plus 0-10 % jitter on the
    defaults, doubling up to ``breaker_open_max`` if that is raised), and then one probe call
    goes through (`Health.rate_limit_probe`); a 429 on it pauses again. The cost is the
    breaker's own: one rejected call per period per deployment while the limit lasts (a 429
    costs milliseconds and no tokens), against a recovered deployment waiting up to a period.
    A Retry-After shorter than the period is honoured as given."""
    if retry_after <= period:
        return retry_after, f"rate-limited for {retry_after:g} s"
    return period, f"rate-limited for {retry_after:g} s (Retry-After; probed after {period:.2f} s)"


def _limit_reason(rpm: int | None, tpm: int | None, requests: int, used: int, fleet: bool) -> str:
    scope = "fleet " if fleet else ""
    if rpm is not None and requests >= rpm:
        return f"{scope}rpm limit {rpm} reached"
    if tpm is not None and used >= tpm:
        return f"{scope}tpm limit {tpm} reached"
    return f"{scope}rate limit reached"


class _Window:
    """The same sliding window as the Redis script, in this process: one-second buckets."""

    __slots__ = ("requests", "tokens")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.tokens: dict[int, int] = {}

    @staticmethod
    def _prune(buckets: dict[int, int], sec: int) -> int:
        for s in [s for s in buckets if s <= sec - WINDOW_S]:
            del buckets[s]
        return sum(buckets.values())

    @staticmethod
    def _wait(buckets: dict[int, int], total: int, limit: int, now: float) -> float:
        for s in sorted(buckets):
            total -= buckets[s]
            if total < limit:
                return max(0.0, s + WINDOW_S - now)
        return float(WINDOW_S)

    def check(
        self, now: float, rpm: int | None, tpm: int | None, want: int, tokens: int
    ) -> tuple[int, int, int, int]:
        """(admitted, requests, tokens, wait ms), as the Redis script answers."""
        sec = math.floor(now)
        requests = self._prune(self.requests, sec)
        used = self._prune(self.tokens, sec)
        admitted = 1
        if want:
            if (rpm is not None and requests + want > rpm) or (tpm is not None and used >= tpm):
                admitted = 0
            else:
                self.requests[sec] = self.requests.get(sec, 0) + want
                requests += want
        if tokens:
            self.tokens[sec] = self.tokens.get(sec, 0) + tokens
            used += tokens
        wait = 0.0
        if rpm is not None and requests >= rpm:
            wait = max(wait, self._wait(self.requests, requests, rpm, now))
        if tpm is not None and used >= tpm:
            wait = max(wait, self._wait(self.tokens, used, tpm, now))
        return admitted, requests, used, math.ceil(wait * 1000)


class FleetLimits:
    """Per-deployment RPM/TPM limits, counted in Redis across processes when it can be.

    With a `ReservingStore` the window is the fleet's; otherwise (memory backend, or Redis not
    answering) it is this process's, against the limit divided by the processes last seen.
    """

    def __init__(self, state: StateStore, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._shared = state if isinstance(state, ReservingStore) else None
        self._local: dict[str, _Window] = {}

    def _window(self, name: str) -> _Window:
        window = self._local.get(name)
        if window is None:
            window = self._local[name] = _Window()
        return window

    def _share(self, limit: int | None) -> int | None:
        shared = self._shared
        if limit is None or shared is None:
            return limit
        return max(1, limit // max(1, shared.peers))

    async def admit(self, deployment: Deployment) -> None:
        """Reserve one request; raise a 429 (`litellm.RateLimitError`) when over the limit."""
        name, rpm, tpm = deployment.name, deployment.rpm, deployment.tpm
        shared = self._shared
        result = None if shared is None else await shared.reserve(name, rpm, tpm)
        now = self._clock.now()
        window = self._window(name)
        fleet = result is not None
        if result is None:
            result = window.check(now, self._share(rpm), self._share(tpm), 1, 0)
        elif result[0]:
            window.check(now, None, None, 1, 0)  # keep local history for an outage
        admitted, requests, used, wait_ms = result
        if wait_ms > 0:
            limit_rpm = rpm if fleet else self._share(rpm)
            limit_tpm = tpm if fleet else self._share(tpm)
            why = _limit_reason(limit_rpm, limit_tpm, requests, used, fleet=fleet)
            if not fleet and shared is not None:
                why += " (this process's share while Redis is unreachable)"
            seconds = wait_ms / 1000
            state = self._state.get(name)
            # Paused before the engine sees the 429 below, a hair longer than its Retry-After,
            # so the skip reason stays ours ("fleet rpm limit 60 reached").
            state.health.pause(now + seconds, why)
            self._state.on_pause(name, seconds, why)
        if not admitted:
            raise _over_limit(deployment, max(0, wait_ms - 1))

    def used(self, deployment: Deployment, tokens: int) -> None:
        """Count the tokens a response used (fleet-wide in the background)."""
        name = deployment.name
        if deployment.tpm is None or tokens <= 0:
            return
        now = self._clock.now()
        window = self._window(name)
        shared = self._shared
        if shared is not None and shared.connected:
            window.check(now, None, None, 0, tokens)  # local history, for an outage
            shared.add_tokens(name, tokens, deployment.rpm, deployment.tpm)
            return
        share = self._share(deployment.tpm)
        _, requests, used, wait_ms = window.check(now, None, share, 0, tokens)
        if wait_ms > 0:
            why = _limit_reason(None, share, requests, used, fleet=False)
            if shared is not None:
                why += " (this process's share while Redis is unreachable)"
            self._state.get(name).health.pause(now + wait_ms / 1000, why)
            self._state.on_pause(name, wait_ms / 1000, why)


def _over_limit(deployment: Deployment, wait_ms: int) -> BaseException:
    import litellm

    return litellm.RateLimitError(  # type: ignore[no-any-return]
        f"{deployment.name}: rate limit of the fleet reached; not sent",
        llm_provider="router",
        model=deployment.model,
        headers={"retry-after-ms": str(wait_ms)},
    )


def _tokens_of(usage: Any) -> int:
    if usage is None:
        return 0
    total = getattr(usage, "total_tokens", None)
    if isinstance(total, int) and total > 0:
        return total
    prompt = getattr(usage, "prompt_tokens", None) or 0
    completion = getattr(usage, "completion_tokens", None) or 0
    return int(prompt) + int(completion)


class LimitedBackend:
    """A `Transport` that applies ``rpm``/``tpm`` limits before each attempt it forwards.

    `catalogue` counts a stream's prompt tokens (the stream's usage may never arrive)."""

    def __init__(
        self, inner: Transport, catalogue: Catalogue, state: StateStore, clock: Clock
    ) -> None:
        self.inner = inner
        self.catalogue = catalogue
        self.limits = FleetLimits(state, clock)

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        if deployment.rpm is None and deployment.tpm is None:
            return await self.inner.complete(deployment, request, timeout)
        await self.limits.admit(deployment)
        response = await self.inner.complete(deployment, request, timeout)
        self.limits.used(deployment, _tokens_of(getattr(response, "usage", None)))
        return response

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        if deployment.rpm is None and deployment.tpm is None:
            return await self.inner.stream(deployment, request, timeout)
        await self.limits.admit(deployment)
        inner = await self.inner.stream(deployment, request, timeout)
        if deployment.tpm is None:
            return inner
        prompt = self.catalogue.count_tokens(deployment, request.get("messages"))
        return _CountingStream(inner, lambda n: self.limits.used(deployment, n), prompt)

    async def embed(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        embed = self.inner.embed  # type: ignore[attr-defined]  # router._backend.Embedder
        if deployment.rpm is None and deployment.tpm is None:
            return await embed(deployment, request, timeout)
        await self.limits.admit(deployment)
        response = await embed(deployment, request, timeout)
        self.limits.used(deployment, _tokens_of(getattr(response, "usage", None)))
        return response


class _CountingStream:
    """Passes a stream through and counts its tokens when it ends: the usage chunk if the
    provider sent one, else the prompt estimate plus ~4 characters per output token."""

    def __init__(self, inner: AsyncIterator[Any], count: Callable[[int], None], prompt: int):
        self._inner = inner
        self._count = count
        self._prompt = prompt
        self._chars = 0
        self._usage = 0
        self._counted = False

    def __aiter__(self) -> _CountingStream:
        return self

    def __getattr__(self, name: str) -> Any:
        # The wrapped litellm stream's attributes (`model`, `_hidden_params`, ...).
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    async def __anext__(self) -> Any:
        try:
            chunk = await self._inner.__anext__()
        except BaseException:
            self._finish()
            raise
        usage = _tokens_of(getattr(chunk, "usage", None))
        if usage:
            self._usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if isinstance(content, str):
                self._chars += len(content)
        return chunk

    def _finish(self) -> None:
        if not self._counted:
            self._counted = True
            self._count(self._usage or self._prompt + text_tokens(self._chars))

    async def aclose(self) -> None:
        self._finish()
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()
