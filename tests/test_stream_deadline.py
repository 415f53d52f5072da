"""The stream deadline on the real clock: one timer per stream (`_StreamDeadline`).

Real time, short intervals: a stall past the deadline raises `StreamInterrupted`; a finished
or closed stream leaves nothing armed that could cancel its reader later; the caller's own
cancellation of a read still arrives as a cancellation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router import Router, StreamInterrupted
from router._clock import SystemClock
from router.testing import FakeBackend, Step

from .test_engine import MSG, collect, config


def make(deadline: float) -> tuple[Router, FakeBackend]:
    clock = SystemClock()
    backend = FakeBackend(clock)  # type: ignore[arg-type]  # sleeps for real on this clock
    return Router(config(deadline=deadline), backend=backend, clock=clock, seed=1), backend


async def test_a_stall_past_the_deadline_raises_at_the_deadline() -> None:
    router, backend = make(deadline=0.3)
    backend.script("a", Step(content="abcdef", chunks=3, chunk_latency=5.0))
    stream = await router.acompletion("chat", MSG, stream=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StreamInterrupted, match="deadline"):
        await collect(stream)
    assert loop.time() - started < 4.0  # never waits for the stalled chunk (generous slack)


async def test_a_finished_stream_cancels_nothing_later() -> None:
    router, backend = make(deadline=0.2)
    backend.script("a", Step(content="abc", chunks=3))
    chunks = await collect(await router.acompletion("chat", MSG, stream=True))
    assert chunks
    await asyncio.sleep(0.35)  # past the deadline: this task must not be cancelled


async def test_a_stream_closed_early_cancels_nothing_later() -> None:
    router, backend = make(deadline=0.2)
    backend.script("a", Step(content="abcdef", chunks=3, chunk_latency=0.01))
    stream = await router.acompletion("chat", MSG, stream=True)
    await stream.__anext__()
    await stream.__anext__()
    await stream.aclose()
    await asyncio.sleep(0.35)


async def test_the_callers_own_cancel_is_a_cancel_not_a_timeout() -> None:
    router, backend = make(deadline=5.0)
    backend.script("a", Step(content="abcdef", chunks=3, chunk_latency=5.0))
    stream = await router.acompletion("chat", MSG, stream=True)
    await stream.__anext__()

    async def read() -> Any:
        return await stream.__anext__()

    task = asyncio.ensure_future(read())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()
