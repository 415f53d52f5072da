"""Sync entry points: run the async engine on one background event loop.

A sync `completion()` submits its coroutine to a daemon thread's loop and waits. Reusing one
loop keeps litellm's pooled HTTP clients alive across calls (a fresh `asyncio.run` per call
would pay a new loop and new connections every time).

At interpreter exit the loop is stopped and its thread joined *before* the `atexit` handlers
run (litellm registers some). Left running, the daemon thread could be frozen by finalization
in the middle of one of litellm's lazy imports while holding the import lock, and the next
import on the main thread (litellm's client `__del__` does one) would deadlock the exit.
litellm's queued logging callbacks are flushed on the loop first and its pooled clients
closed there (`router._backend.drain_litellm`); any other task still pending gets up to
`_EXIT_GRACE` seconds before it is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_EXIT_GRACE = 1.0


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    loop = _loop
    if loop is not None:
        return loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="router-sync-loop", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
            _at_exit(_stop_background_loop)
        return _loop


def _at_exit(func: Any) -> None:
    # `threading._register_atexit` runs after non-daemon threads are joined but before the
    # `atexit` handlers (the hook `concurrent.futures` uses for the same reason). Fall back
    # to `atexit` where it is missing.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(func)
            return
        except RuntimeError:  # already shutting down
            pass
    import atexit

    atexit.register(func)


async def _settle(grace: float) -> None:
    from router._backend import drain_litellm

    await drain_litellm(grace)
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=grace)
    for task in still:
        task.cancel()
    if still:
        await asyncio.wait(still, timeout=grace)


def _stop_background_loop() -> None:
    """Let pending work settle, stop the loop and join its thread (idempotent)."""
    global _loop, _thread
    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = None
    if loop is None or thread is None or not thread.is_alive():
        return
    try:
        asyncio.run_coroutine_threadsafe(_settle(_EXIT_GRACE), loop).result(3 * _EXIT_GRACE)
    except BaseException:  # exit must go on whatever the tasks did
        pass
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=_EXIT_GRACE)
    if not thread.is_alive():
        loop.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the background loop and wait for its result (or exception).

    The caller's context variables travel with it (copied, as `asyncio.to_thread` does), so
    an OpenTelemetry span or a job opened around a sync call is the parent of what it records.
    """
    loop = _background_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("router: a sync call was made from the router's own loop thread")
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    holder: list[asyncio.Task[T]] = []

    def finish(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            done.cancel()
        elif (error := task.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(task.result())

    def start() -> None:
        task = loop.create_task(coro, context=context)
        holder.append(task)
        task.add_done_callback(finish)

    loop.call_soon_threadsafe(start)
    try:
        return done.result()
    except BaseException:
        # KeyboardInterrupt while waiting: cancel the call instead of leaking it.
        if holder:
            loop.call_soon_threadsafe(holder[0].cancel)
        raise


class SyncStream:
    """A sync iterator over a routed stream (see `router._stream.RoutedStream`).

    Offers what code written against litellm's `CustomStreamWrapper` uses: iteration both ways
    (``for`` and ``async for``, the latter on any event loop), ``with``, `close`, and the
    wrapper's attributes (``model``, ``_hidden_params``, ``completion_stream``,
    ``response_uptil_now``, ...) read through from the stream that won.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return run_sync(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __aiter__(self) -> SyncStream:
        return self

    async def __anext__(self) -> Any:
        # A sync call's attempts read litellm's sync stream in worker threads (router._threaded),
        # which is bound to no loop: the caller's loop can drive it directly.
        return await self._stream.__anext__()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_stream":
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> SyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stream.aclose()

    @property
    def decision(self) -> Any:
        """The decision record so far; final once the stream is exhausted."""
        return self._stream.decision

    def close(self) -> None:
        """Stop reading early and release the connection."""
        run_sync(self._stream.aclose())

    async def aclose(self) -> None:
        """Stop reading early and release the connection (from async code)."""
        await self._stream.aclose()
