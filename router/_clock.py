"""The clock seam: every time read, sleep and timeout of the engine goes through a `Clock`.

The system clock uses the event loop's monotonic time; `router.testing.FakeClock` advances
without sleeping so unit tests of deadlines and backoff run in microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol


class Clock(Protocol):
    """Monotonic time, sleep and a timeout scope."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences are meaningful)."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """A scope that raises `TimeoutError` when it outlives `seconds`."""


class SystemClock:
    """The real clock: `time.monotonic`, `asyncio.sleep`, and deadline scopes that behave as
    ``asyncio.timeout`` does, all watched by one loop timer per event loop (`_Watch`)."""

    __slots__ = ("_watch",)

    def __init__(self) -> None:
        self._watch: _Watch | None = None

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return _Deadline(self, seconds)

    def _watch_on(self, loop: asyncio.AbstractEventLoop) -> _Watch:
        # One watch per loop; a clock used on another loop (the sync API's own loop, a second
        # asyncio.run) starts a new one. Each scope keeps the watch it registered with, so a
        # switch never loses a deadline, and a watch is only ever touched on its own loop.
        watch = self._watch
        if watch is None or watch.loop is not loop:
            watch = self._watch = _Watch(loop)
        return watch


class _Watch:
    """Every open deadline scope of one event loop, watched by one loop timer.

    ``asyncio.timeout`` arms a loop timer per scope: a `TimerHandle` object pushed onto the
    loop's heap (compared by a Python ``__lt__``) and cancelled when the attempt answers, which
    nearly every attempt does long before its deadline; at a thousand calls in flight the
    loop's heap holds thousands of them. Here a scope is a ``(when, token)`` pair on this
    watch's own heap (compared in C) and an entry in a dict; one loop timer is armed at the
    earliest deadline. A scope that exits only leaves the dict (its heap entry is dropped when
    it reaches the top, or when dead entries outnumber live ones); when the timer fires, every
    scope whose deadline has come is expired and the timer is re-armed at the next one. So a
    scope still fires when its own loop timer would have.
    """

    __slots__ = ("_armed", "_heap", "_live", "_next", "_timer", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, _Deadline] = {}
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf

    def add(self, when: float, scope: _Deadline) -> int:
        """Watch `scope` until `when` (loop time); returns its token for `discard`."""
        token = self._next
        self._next = token + 1
        self._live[token] = scope
        heap = self._heap
        heapq.heappush(heap, (when, token))
        if when < self._armed:
            self._arm(when)
        elif len(heap) > 2 * len(self._live) + 64:
            # Mostly scopes that exited: keep the heap near the live count.
            live = self._live
            self._heap = heap = [entry for entry in heap if entry[1] in live]
            heapq.heapify(heap)
        return token

    def discard(self, token: int) -> None:
        """The scope of `token` exited before its deadline."""
        self._live.pop(token, None)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._fire)
        self._armed = when

    def _fire(self) -> None:
        # The loop runs a timer up to its clock resolution early: whatever was due at the
        # armed time is due now.
        due = max(self._armed, self.loop.time())
        self._timer = None
        self._armed = math.inf
        heap, live = self._heap, self._live
        while heap:
            when, token = heap[0]
            scope = live.get(token)
            if scope is None:
                heapq.heappop(heap)
                continue
            if when > due:
                self._arm(when)
                return
            heapq.heappop(heap)
            del live[token]
            scope.expire()


class _Deadline:
    """A deadline scope with ``asyncio.timeout``'s behaviour: when it outlives its seconds, the
    task is cancelled and the cancellation leaves the scope as `TimeoutError`; a cancellation
    from anywhere else still propagates as itself."""

    __slots__ = ("_cancelling", "_clock", "_expired", "_seconds", "_task", "_token", "_watch")

    def __init__(self, clock: SystemClock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._expired = False

    async def __aenter__(self) -> _Deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a timeout scope must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        watch = self._watch = self._clock._watch_on(loop)
        self._token = watch.add(loop.time() + self._seconds, self)
        return self

    def expire(self) -> None:
        """The deadline came while the scope is open: cancel its task (see `_Watch`)."""
        self._expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._expired:
            self._watch.discard(self._token)
            return
        # As asyncio.timeout: ours, unless someone else asked for a cancellation too.
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


@contextlib.asynccontextmanager
async def no_timeout() -> AsyncIterator[None]:
    """A timeout scope that never fires (used by fake clocks, whose fakes honour timeouts)."""
    yield
