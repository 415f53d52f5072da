"""`RoutedStream`: the committed stream of a routed call, from its first chunk to its end.

The engine races attempts to a first chunk (router._engine); the winner's iterator is wrapped
here. After the first chunk the stream is committed: a failure, a stall past the call's
deadline or an end without any ``finish_reason`` raises `StreamInterrupted`; it never ends as
if complete. The stream is where a streamed call leaves the router, so it records the final
decision and tells the observer when it ends (exhausted, interrupted or closed early).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from router._catalogue import usage_cost
from router._clock import SystemClock
from router._decision import CallOutcome, Decision, ResponseInfo
from router._errors import Outcome, StreamInterrupted, attach, describe
from router._fields import field

if TYPE_CHECKING:
    from router._call import Call
    from router._config import Deployment
    from router._engine import Engine

__all__ = ["RoutedStream", "close_quietly", "fire_and_forget_close"]

log = logging.getLogger("router")


async def close_quietly(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream may fail again; the first error matters
            log.debug("router: closing a failed stream raised", exc_info=True)


_closing: set[asyncio.Task[None]] = set()


def fire_and_forget_close(iterator: Any) -> None:
    if getattr(iterator, "aclose", None) is None:
        return
    try:
        task = asyncio.get_running_loop().create_task(close_quietly(iterator))
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

    Like litellm's `CustomStreamWrapper`, which it wraps: ``async with`` closes it, and the
    wrapper's attributes (``model``, ``_hidden_params`` with ``model_id`` the deployment's name,
    ``completion_stream``, ``response_uptil_now``, ``custom_llm_provider``, ...) read through
    to the stream of the deployment that won.
    """

    def __init__(
        self,
        engine: Engine,
        call: Call,
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
            engine.clock.now(), CallOutcome.STREAMING, deployment.name, 0.0
        )

    def __aiter__(self) -> RoutedStream:
        return self

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class does not define: the winning stream's attributes.
        if name.startswith("__") or name == "_iterator":
            raise AttributeError(name)
        return getattr(self._iterator, name)

    async def __aenter__(self) -> RoutedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
        # The whole stream's time is a sample of the deployment's call latency: a stream
        # that drips its chunks is slow even when its first chunk was on time.
        attempt = call.attempts[self._index]
        total = engine.clock.now() - call.started - attempt.started_s
        engine.state.get(self._deployment.name).health.calls_track.observe(
            total, now=engine.clock.now()
        )
        usage = self._usage
        cost = usage_cost(engine.catalogue, self._deployment, usage)
        if cost:
            call.attempts[self._index] = replace(call.attempts[self._index], cost_usd=cost)
            hidden = getattr(self._iterator, "_hidden_params", None)
            deployment = self._deployment
            priced = deployment.input_cost_per_token is not None or (
                deployment.output_cost_per_token is not None
            )
            if isinstance(hidden, dict) and priced:
                hidden["response_cost"] = cost
        info = ResponseInfo(
            id=self._id,
            model=self._model,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            finish_reasons=tuple(self._reasons),
        )
        self.decision = call.decision(
            engine.clock.now(), CallOutcome.SUCCESS, self._deployment.name, cost, info
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
        transition = state.breaker.record(False, now, call.policy, why="stream interrupted")
        if transition is not None:
            engine._emit(call, transition)
        exc = StreamInterrupted(call.group, self._deployment.name, why, self._chunks)
        exc.__cause__ = cause
        self.decision = call.decision(now, CallOutcome.STREAM_INTERRUPTED, None, 0.0)
        fire_and_forget_close(self._iterator)
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
                engine.clock.now(), CallOutcome.CLOSED_EARLY, self._deployment.name, 0.0
            )
            if engine.observer is not None:
                engine.observer.call_finished(self.decision, None)
        await close_quietly(self._iterator)
