"""The system clock's deadline scopes (router._clock): asyncio.timeout's behaviour, one timer.

Real time on a real event loop, with deadlines of a few to a few tens of milliseconds: each
test checks an order or a bound, never a measured duration beyond "not before its deadline".
"""

from __future__ import annotations

import asyncio
import random

import pytest

from router._clock import SystemClock


def test_a_scope_that_outlives_its_seconds_raises_timeout_error() -> None:
    clock = SystemClock()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with clock.timeout(0.02):
                await asyncio.sleep(10)
        return loop.time() - started

    elapsed = asyncio.run(main())
    assert 0.02 <= elapsed < 5.0


def test_a_scope_that_ends_in_time_raises_nothing_and_leaves_the_task_uncancelled() -> None:
    clock = SystemClock()

    async def main() -> int:
        async with clock.timeout(0.05):
            await asyncio.sleep(0)
        await asyncio.sleep(0.08)  # past the deadline: nothing may fire any more
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert asyncio.run(main()) == 0


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    clock = SystemClock()

    async def inner(entered: asyncio.Event) -> None:
        async with clock.timeout(10.0):
            entered.set()
            await asyncio.sleep(10)

    async def main() -> None:
        entered = asyncio.Event()
        task = asyncio.ensure_future(inner(entered))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_outside_cancellation_at_the_deadline_wins_over_the_timeout() -> None:
    """Both the deadline and someone else cancel the task: asyncio.timeout lets the outside
    cancellation through (the caller asked for it), and so does this scope."""
    clock = SystemClock()

    async def inner() -> None:
        async with clock.timeout(0.01):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                # The deadline cancelled us; now the caller cancels too, before we leave.
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                raise

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.ensure_future(inner())

    asyncio.run(main())


def test_nested_scopes_each_raise_at_their_own_deadline() -> None:
    clock = SystemClock()

    async def main() -> list[str]:
        seen: list[str] = []
        with pytest.raises(TimeoutError):
            async with clock.timeout(0.06):
                with pytest.raises(TimeoutError):
                    async with clock.timeout(0.01):
                        await asyncio.sleep(10)
                seen.append("inner timed out")
                await asyncio.sleep(10)
        seen.append("outer timed out")
        return seen

    assert asyncio.run(main()) == ["inner timed out", "outer timed out"]


def test_many_scopes_in_random_order_each_fire_at_their_deadline_and_not_before() -> None:
    """Deadlines added later that come earlier re-arm the one timer; scopes that end in time
    never fire; every other one fires, none before its deadline."""
    clock = SystemClock()
    rng = random.Random(14)
    plans = [(rng.uniform(0.005, 0.08), rng.random() < 0.4) for _ in range(200)]

    async def one(seconds: float, answers: bool) -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with clock.timeout(seconds):
                # An answer comes at once (a deadline only a few ms off would make the
                # test depend on the machine's load), a hang never.
                await asyncio.sleep(0 if answers else 10)
        except TimeoutError:
            return "timeout", loop.time() - started - seconds
        return "answered", 0.0

    async def main() -> list[tuple[str, float]]:
        tasks = []
        for seconds, answers in plans:
            tasks.append(asyncio.ensure_future(one(seconds, answers)))
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    for (seconds, answers), (how, late) in zip(plans, results, strict=True):
        assert how == ("answered" if answers else "timeout"), (seconds, answers)
        assert late >= -1e-3, f"fired {-late:.4f} s before its deadline"


def test_scopes_that_end_early_do_not_pile_up() -> None:
    clock = SystemClock()

    async def main() -> int:
        for _ in range(5000):
            async with clock.timeout(60.0):
                pass
        watch = clock._watch
        assert watch is not None
        return len(watch._heap)

    assert asyncio.run(main()) <= 200


def test_one_clock_serves_one_loop_after_another() -> None:
    clock = SystemClock()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with clock.timeout(0.01):
                await asyncio.sleep(10)
        async with clock.timeout(5.0):
            await asyncio.sleep(0)

    asyncio.run(main())
    asyncio.run(main())
