"""The clock seam: every time read, sleep and timeout of the engine goes through a `Clock`.

The system clock uses the event loop's monotonic time; `router.testing.FakeClock` advances
without sleeping so unit tests of deadlines and backoff run in microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
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
    """The real clock: `time.monotonic`, `asyncio.sleep`, `asyncio.timeout`."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)


@contextlib.asynccontextmanager
async def no_timeout() -> AsyncIterator[None]:
    """A timeout scope that never fires (used by fake clocks, whose fakes honour timeouts)."""
    yield
