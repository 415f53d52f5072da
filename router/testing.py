"""Test helpers shipped with the library: a fake clock, a scripted fake backend, litellm errors.

Use them to test your own routing configs without a network and without sleeping::

    from router import Router
    from router.testing import FakeBackend, FakeClock, ok, fail

    clock = FakeClock()
    backend = FakeBackend(clock)
    backend.script("alpha", fail(503))          # alpha answers 503 once, then the default
    backend.script("beta", ok("hi", latency=0.2))
    router = Router(config, backend=backend, clock=clock)

The fake honours the attempt timeout the engine passes, like litellm does: a step whose
latency exceeds it advances the clock by the timeout and raises `litellm.Timeout`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router._catalogue import configured_cost, estimate_tokens
from router._clock import no_timeout
from router._observe import BaseObserver, Fanout

if TYPE_CHECKING:
    from router._config import Deployment
    from router._decision import Decision
    from router._router import Router


class FakeClock:
    """A monotonic clock that only moves when told to (or when something sleeps on it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        # The fake backend honours timeouts itself by advancing this clock.
        return no_timeout()


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted answer of a fake deployment."""

    latency: float = 0.0
    error: BaseException | None = None
    content: str = "ok"
    prompt_tokens: int | None = None
    completion_tokens: int = 5
    chunks: int = 3
    cut_after: int | None = None
    """Streams: raise a connection error after this many chunks."""
    finish: bool = True
    """Streams: send a final chunk with finish_reason (False = end silently, truncated)."""
    chunk_latency: float = 0.0
    finish_reason: str = "stop"


def ok(content: str = "ok", *, latency: float = 0.0, **kwargs: Any) -> Step:
    """A successful answer after `latency` seconds."""
    return Step(latency=latency, content=content, **kwargs)


def fail(status: int | str, *, latency: float = 0.0, retry_after: float | None = None) -> Step:
    """A failed answer: a litellm exception for `status` (see `error`)."""
    return Step(latency=latency, error=error(status, retry_after=retry_after))


def hang() -> Step:
    """An answer that never comes (until the attempt's timeout)."""
    return Step(latency=float("inf"))


def error(
    status: int | str,
    *,
    retry_after: float | None = None,
    model: str = "fake",
    provider: str = "fake",
) -> BaseException:
    """The litellm exception a provider failure of this kind surfaces as.

    `status` is an HTTP status, or one of ``"connection"``, ``"timeout"``, ``"context"``,
    ``"content_policy"``.
    """
    import httpx
    import litellm

    request = httpx.Request("POST", "http://fake/v1/chat/completions")

    def response(code: int, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.Response(code, headers=dict(headers or {}), request=request)

    msg = f"fake {status}"
    exc: BaseException
    kw = {"llm_provider": provider, "model": model}
    if status == "connection":
        exc = litellm.APIConnectionError(msg, **kw)
    elif status in ("timeout", 408):
        exc = litellm.Timeout(msg, **kw)
    elif status == "context":
        exc = litellm.ContextWindowExceededError(msg, response=response(400), **kw)
    elif status == "content_policy":
        exc = litellm.ContentPolicyViolationError(msg, response=response(400), **kw)
    elif status == 429:
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        exc = litellm.RateLimitError(msg, response=response(429, headers), **kw)
    else:
        exc = _status_error(status, msg, response, kw)
    return exc


def _status_error(status: int | str, msg: str, response: Any, kw: Mapping[str, str]) -> Any:
    import litellm

    classes: dict[int, Any] = {
        400: litellm.BadRequestError,
        401: litellm.AuthenticationError,
        403: litellm.PermissionDeniedError,
        404: litellm.NotFoundError,
        422: litellm.UnprocessableEntityError,
        500: litellm.InternalServerError,
        502: litellm.BadGatewayError,
        503: litellm.ServiceUnavailableError,
    }
    if not isinstance(status, int) or status not in classes:
        raise ValueError(f"no fake error for {status!r}")
    return classes[status](msg, response=response(status), **kw)


@dataclass
class FakeCall:
    """One call the fake backend received."""

    deployment: str
    timeout: float
    request: Mapping[str, Any]
    stream: bool
    started: float


@dataclass
class _Script:
    steps: deque[Step] = field(default_factory=deque)
    default: Step = field(default_factory=Step)


class FakeBackend:
    """A scripted backend: each deployment answers its queued `Step`s, then its default."""

    def __init__(self, clock: FakeClock, *, default: Step | None = None) -> None:
        self.clock = clock
        self.calls: list[FakeCall] = []
        self._scripts: dict[str, _Script] = {}
        self._default = default or Step()
        self._ids = itertools.count(1)

    def script(self, deployment: str, *steps: Step, default: Step | None = None) -> None:
        """Queue `steps` for `deployment`; `default` answers once they are used up."""
        entry = self._scripts.setdefault(deployment, _Script(default=self._default))
        entry.steps.extend(steps)
        if default is not None:
            entry.default = default

    def calls_to(self, deployment: str) -> int:
        """How many calls `deployment` received."""
        return sum(1 for call in self.calls if call.deployment == deployment)

    def _next(self, deployment: str) -> Step:
        entry = self._scripts.get(deployment)
        if entry is None:
            return self._default
        return entry.steps.popleft() if entry.steps else entry.default

    async def _wait(self, step: Step, timeout: float, deployment: Deployment) -> None:
        import litellm

        if step.latency > timeout:
            await self.clock.sleep(timeout)
            raise litellm.Timeout(
                f"fake: no answer within {timeout:g} s", model=deployment.model, llm_provider="fake"
            )
        await self.clock.sleep(step.latency)

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        import litellm

        self.calls.append(FakeCall(deployment.name, timeout, request, False, self.clock.now()))
        step = self._next(deployment.name)
        await self._wait(step, timeout, deployment)
        if step.error is not None:
            raise step.error
        prompt = step.prompt_tokens or estimate_tokens(request.get("messages"))
        return litellm.ModelResponse(
            id=f"chatcmpl-fake-{next(self._ids)}",
            model=deployment.model,
            choices=[
                {
                    "index": 0,
                    "finish_reason": step.finish_reason,
                    "message": {"role": "assistant", "content": step.content},
                }
            ],
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": step.completion_tokens,
                "total_tokens": prompt + step.completion_tokens,
            },
        )

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        self.calls.append(FakeCall(deployment.name, timeout, request, True, self.clock.now()))
        step = self._next(deployment.name)
        await self._wait(step, timeout, deployment)
        if step.error is not None:
            raise step.error
        return self._chunks(step, deployment)

    async def _chunks(self, step: Step, deployment: Deployment) -> AsyncIterator[Any]:
        import litellm

        words = _split(step.content, step.chunks)
        ident = f"chatcmpl-fake-{next(self._ids)}"
        for i, part in enumerate(words):
            if step.cut_after is not None and i >= step.cut_after:
                raise litellm.APIConnectionError(
                    "fake: connection reset mid-stream", llm_provider="fake", model=deployment.model
                )
            if i:
                await self.clock.sleep(step.chunk_latency)
            yield litellm.ModelResponseStream(
                id=ident,
                model=deployment.model,
                choices=[{"index": 0, "delta": {"role": "assistant", "content": part}}],
            )
        if step.cut_after is not None and step.cut_after >= len(words):
            raise litellm.APIConnectionError(
                "fake: connection reset mid-stream", llm_provider="fake", model=deployment.model
            )
        if step.finish:
            yield litellm.ModelResponseStream(
                id=ident,
                model=deployment.model,
                choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
            )

    async def embed(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        """An embedding answer: per input, the deterministic vector of its deployment's vector
        space (`router._embeddings.simulated_vector`; ``dimensions`` from the deployment or the
        request, else 8). Scripted steps apply as for chat (latency, errors)."""
        import litellm

        from router._embeddings import simulated_vector, vector_space

        self.calls.append(FakeCall(deployment.name, timeout, request, False, self.clock.now()))
        step = self._next(deployment.name)
        await self._wait(step, timeout, deployment)
        if step.error is not None:
            raise step.error
        raw = request.get("input")
        texts = [raw] if isinstance(raw, str) else list(raw or [])
        dims = request.get("dimensions") or deployment.dimensions or 8
        space = vector_space(deployment)
        tokens = sum(estimate_tokens([{"content": str(t)}]) for t in texts)
        return litellm.EmbeddingResponse(
            model=deployment.model,
            data=[
                {"object": "embedding", "index": i, "embedding": simulated_vector(space, t, dims)}
                for i, t in enumerate(map(str, texts))
            ],
            usage=litellm.Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens),
        )

    def price(
        self, deployment: Deployment, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        return configured_cost(deployment, prompt_tokens, completion_tokens)

    def context_window(self, deployment: Deployment) -> int | None:
        return deployment.max_context_tokens

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        return estimate_tokens(messages)


def _split(text: str, parts: int) -> list[str]:
    parts = max(1, parts)
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class _Captured(BaseObserver):
    def __init__(self, into: list[Decision]) -> None:
        self.into = into

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        self.into.append(decision)


@contextmanager
def capture_decisions(router: Router | None = None) -> Iterator[list[Decision]]:
    """Collect the decision record of every call `router` finishes inside the block.

    ``with capture_decisions(router) as decisions: ...`` (like structlog's ``capture_logs``):
    the list fills as calls end (a stream's when it ends), failed calls included, in order.
    Without a router, the default router's (`router.default_router()`). The router's own
    observers still get every call; the capture is removed when the block ends.
    """
    if router is None:
        from router._default import default_router

        router = default_router()
    engine = router.engine
    decisions: list[Decision] = []
    before = engine.observer
    capture = _Captured(decisions)
    engine.observer = capture if before is None else Fanout([before, capture])
    try:
        yield decisions
    finally:
        engine.observer = before
