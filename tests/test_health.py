"""Peak-EWMA latency, the error window, pauses, the score."""

from __future__ import annotations

import math

import pytest

from router._health import Health


def test_peak_ewma_jumps_up_and_decays_down() -> None:
    health = Health(decay=10.0)
    health.observe_latency(0.1, 0.0)
    health.observe_latency(1.0, 1.0)
    assert health.latency == 1.0  # a slow sample is taken at once
    health.observe_latency(0.1, 11.0)  # 10 s later: weight e^-1 on the old value
    assert health.latency == pytest.approx(1.0 * math.exp(-1) + 0.1 * (1 - math.exp(-1)))


def test_ttft_is_tracked_apart() -> None:
    health = Health()
    health.observe_latency(0.5, 0.0, first_chunk=True)
    assert health.ttft == 0.5 and health.latency is None


def test_error_rate_over_the_last_twenty() -> None:
    health = Health()
    for _ in range(20):
        health.record(False)
    assert health.error_rate == 1.0
    for _ in range(10):
        health.record(True)
    assert health.error_rate == 0.5 and health.calls == 20


def test_p95_needs_ten_samples() -> None:
    health = Health()
    for i in range(9):
        health.observe_latency(0.01 * (i + 1), float(i))
    assert health.p95() is None
    for i in range(11):
        health.observe_latency(1.0 if i == 10 else 0.01, 10.0 + i)
    assert health.p95() == pytest.approx(0.09)


def test_attempts_that_did_not_complete_move_the_ewma_but_not_the_p95() -> None:
    # A hedge loser's elapsed time (the delay plus the winner's time) is not its latency;
    # counted as a sample it pulled the p95, hence the next delay, upward after every hedge.
    health = Health()
    for i in range(40):
        health.observe_latency(0.02, float(i))
    before = health.p95()
    for i in range(10):
        health.observe_latency(0.07, 40.0 + i, completed=False)
    assert health.p95() == before == pytest.approx(0.02)
    assert health.latency == pytest.approx(0.07)  # the peak EWMA saw the slowness


def test_the_hedge_delay_is_the_p95_capped_at_twice_the_median() -> None:
    health = Health()
    assert health.hedge_delay() is None
    for i in range(100):  # a smooth body: the p95 is below twice the median
        health.observe_latency(0.010 + 0.0001 * i, float(i))
    assert health.hedge_delay() == health.p95() == pytest.approx(0.0194)
    slow = Health()
    for i in range(100):  # 8% ten times slower: the p95 sits in the slow mode
        slow.observe_latency(0.2 if i % 14 == 0 else 0.02, float(i))
    assert slow.p95() == pytest.approx(0.2)
    assert slow.hedge_delay() == pytest.approx(0.04)


@pytest.mark.parametrize(
    ("failures", "factor", "paused", "expected"),
    [
        (0, 1.0, False, 1.0),
        (5, 1.0, False, 0.5),
        (0, 0.5, False, 0.5),
        (0, 0.0, False, 0.0),
        (0, 1.0, True, 0.0),
    ],
)
def test_score(failures: int, factor: float, paused: bool, expected: float) -> None:
    health = Health()
    for i in range(10):
        health.record(i >= failures)
    if paused:
        health.pause(5.0, "rate-limited for 5 s")
    assert health.score(factor, 1.0) == pytest.approx(expected)
