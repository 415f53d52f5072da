"""Sync calls go through litellm's *sync* API, in worker threads the engine awaits.

`router.completion` (sync) runs the async engine on the router's background loop
(router._sync), but each attempt it makes calls `litellm.completion`, not `litellm.acompletion`,
in a worker thread. litellm then sees what it would see without the router, a sync call:

- it fires the events of a sync call, exactly: plain functions in ``litellm.success_callback``
  / ``failure_callback`` and `CustomLogger.log_success_event`, run by litellm's own logging
  threads; an async call fires the async ones. Running the async path for a sync call fired
  only the async events, and sync callbacks never ran;
- its async logging worker (``GLOBAL_LOGGING_WORKER``, bound to one event loop at a time) is
  never used from the router's loop. Used from both the router's loop (sync calls) and the
  caller's (async calls), it was moved from loop to loop: each move left the other loop's
  worker task pending on a queue nobody fed ("Task was destroyed but it is pending!" when it
  was collected) and re-queued coroutines a task on the old loop still held ("cannot reuse
  already awaited coroutine").

The engine's deadline still holds: an attempt is awaited under its timeout scope, and a thread
whose attempt was abandoned (deadline, hedge lost) finishes on its own within litellm's
timeout, its result dropped. Worker threads are daemons: an attempt still out at exit does not
hold the interpreter (litellm bounds it by its timeout anyway). A sync stream is read chunk by
chunk in the same threads, so it can be iterated from any event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_SYNC: contextvars.ContextVar[bool] = contextvars.ContextVar("router_sync_call", default=False)
_IDLE_S = 30.0
"""A worker thread with nothing to do for this long exits."""


def sync_call() -> bool:
    """True inside a call that came in through the sync API (`Router.completion`)."""
    return _SYNC.get()


def mark_sync() -> contextvars.Token[bool]:
    """Mark the current context as a sync call (reset with the returned token)."""
    return _SYNC.set(True)


def unmark_sync(token: contextvars.Token[bool]) -> None:
    _SYNC.reset(token)


class _DaemonPool:
    """An unbounded pool of daemon threads: idle ones are reused, more start when all are busy.

    Unbounded on purpose: a sync caller is already a thread waiting, and a bounded pool would
    queue attempts behind hung ones (a queued attempt's wait would eat its deadline).
    """

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._count = 0

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            start = self._idle == 0
            if start:
                self._count += 1
            else:
                self._idle -= 1
        self._work.put((future, fn))
        if start:
            threading.Thread(
                target=self._serve, name=f"router-sync-call-{self._count}", daemon=True
            ).start()
        return future

    def _serve(self) -> None:
        while True:
            try:
                future, fn = self._work.get(timeout=_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0 and self._work.empty():
                        self._idle -= 1
                        self._count -= 1
                        return
                continue
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)
            del future, fn
            with self._lock:
                self._idle += 1


_pool = _DaemonPool()


async def in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a worker thread with this context; await its result."""
    context = contextvars.copy_context()
    return await asyncio.wrap_future(_pool.submit(lambda: context.run(fn, *args, **kwargs)))


_END = object()


def _next_or_end(iterator: Iterator[Any], lock: threading.Lock) -> Any:
    with lock:
        return next(iterator, _END)


def _close(stream: Any, lock: threading.Lock) -> None:
    with lock:  # after a read in flight: never close a stream another thread is reading
        close = getattr(stream, "close", None)
        if close is not None:
            close()


class ThreadedStream:
    """An async iterator over litellm's sync `CustomStreamWrapper`, read in worker threads.

    Not bound to any event loop. Attributes it does not have are the wrapper's (``model``,
    ``_hidden_params``, ``completion_stream``, ``response_uptil_now``, ...).
    """

    def __init__(self, stream: Any) -> None:
        self._wrapper = stream
        self._iterator: Iterator[Any] = iter(stream)
        self._lock = threading.Lock()
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_wrapper", "_iterator", "_lock", "_closed"):
            raise AttributeError(name)
        return getattr(self._wrapper, name)

    def __aiter__(self) -> ThreadedStream:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        chunk = await in_thread(_next_or_end, self._iterator, self._lock)
        if chunk is _END:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Close the provider stream once any read in flight returns (without waiting)."""
        if not self._closed:
            self._closed = True
            _pool.submit(lambda: _close(self._wrapper, self._lock))
