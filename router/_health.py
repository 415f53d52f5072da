"""Health of one deployment: peak-EWMA latency, error rate, 429 pressure, in-flight, a score.

- **Latency** is a peak EWMA (Finagle, Linkerd): a sample above the average replaces it at once,
  a sample below decays into it with weight ``exp(-Δt / decay)`` (decay 10 s), so a deployment
  that turns slow is seen at once and one that recovers is trusted back gradually. Streams keep
  a second EWMA for time to first token.
- **Error rate** is the failure share of the last 20 recorded results (successes and failures;
  rate limits and caller errors are not recorded).
- **429 pressure**: ``rate_limited_streak`` counts 429s since the last success; at the group's
  ``rate_limit_pause_after`` (2) the engine pauses the deployment until its Retry-After.
- **In-flight**: attempts started and not yet ended.
- **p95** (the hedge delay ``"p95"``): over the last 128 attempts that *completed*. A timeout
  or an attempt cancelled because a hedge won feeds the EWMA (slowness is information) but is
  not a sample: its latency is unknown, only longer than its elapsed time. Counted at its
  elapsed time it pulled the estimate up after every hedge (the loser's elapsed is the delay
  plus the winner's time), so the delay crept into the slow mode it was meant to cut
  (scripts/bench_hedge.py: p99 492 ms with the creep, see the README for the figures after).
- **Score** in [0, 1]: ``(1 − error rate) × breaker factor`` (closed 1, half-open 0.5, open 0),
  and 0 while paused by a 429.
"""

from __future__ import annotations

import math
from collections import deque

_ERROR_WINDOW = 20
_SAMPLES = 128
_P95_MIN_SAMPLES = 10
_MEDIAN_CAP = 2.0


class Health:
    """Running health figures of one deployment; times on the engine clock's scale."""

    __slots__ = (
        "_errors",
        "_failures",
        "_hedge_delay",
        "_p95",
        "_p95_stale",
        "_samples",
        "decay",
        "in_flight",
        "latency",
        "paused_until",
        "paused_why",
        "rate_limited_streak",
        "ttft",
        "updated",
    )

    def __init__(self, decay: float = 10.0) -> None:
        self.decay = decay
        self.latency: float | None = None
        self.ttft: float | None = None
        self.updated = 0.0
        self.in_flight = 0
        self.paused_until = 0.0
        self.paused_why = ""
        self.rate_limited_streak = 0
        self._errors: deque[bool] = deque()
        self._failures = 0
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._p95: float | None = None
        self._hedge_delay: float | None = None
        self._p95_stale = 0

    def observe_latency(
        self, seconds: float, now: float, *, first_chunk: bool = False, completed: bool = True
    ) -> None:
        """Feed one latency: a completed attempt, or (``completed=False``) one that timed out
        or lost a hedge race, which moves the EWMA but is not a p95 sample."""
        if first_chunk:
            self.ttft = self._peak_ewma(self.ttft, seconds, now)
        else:
            self.latency = self._peak_ewma(self.latency, seconds, now)
        self.updated = now
        if completed:
            self._samples.append(seconds)
            self._p95_stale += 1

    def _peak_ewma(self, current: float | None, sample: float, now: float) -> float:
        if current is None or sample > current:
            return sample
        weight = math.exp(-max(0.0, now - self.updated) / self.decay) if self.decay > 0 else 0.0
        return current * weight + sample * (1.0 - weight)

    def record(self, success: bool) -> None:
        """Count one success or failure in the sliding error window."""
        errors = self._errors
        if len(errors) >= _ERROR_WINDOW and errors.popleft():
            self._failures -= 1
        failed = not success
        errors.append(failed)
        if failed:
            self._failures += 1
        else:
            self.rate_limited_streak = 0

    @property
    def error_rate(self) -> float:
        return self._failures / len(self._errors) if self._errors else 0.0

    @property
    def calls(self) -> int:
        """Results in the error window (at most 20)."""
        return len(self._errors)

    def pause(self, until: float, why: str) -> None:
        """Skip the deployment until `until` (a 429's Retry-After)."""
        if until > self.paused_until:
            self.paused_until = until
            self.paused_why = why

    def paused(self, now: float) -> bool:
        return now < self.paused_until

    def p95(self) -> float | None:
        """95th percentile of recent completed attempts' latency, once there are at least 10."""
        if len(self._samples) < _P95_MIN_SAMPLES:
            return None
        if self._p95 is None or self._p95_stale >= 16:
            ordered = sorted(self._samples)
            n = len(ordered)
            self._p95 = p95 = ordered[min(n - 1, math.ceil(0.95 * n) - 1)]
            self._hedge_delay = min(p95, _MEDIAN_CAP * ordered[(n - 1) // 2])
            self._p95_stale = 0
        return self._p95

    def hedge_delay(self) -> float | None:
        """The ``"p95"`` hedge delay: the p95, at most twice the median (None until 10 samples).

        The cap keeps a slow mode from switching hedging off. When about 5% or more of calls
        are slow, the p95 of 128 samples lands in the slow mode whenever the window happens to
        hold a few more of them, the slow calls then complete unhedged and become samples, and
        the estimate stays there: bistable (scripts/bench_hedge.py, 5% of calls 10x slower:
        per-round p99 cuts from 12% to 77% in one run). The median is not moved by a slow
        minority, and twice it is above the body of any distribution the p95 rule suits.
        """
        if self.p95() is None:
            return None
        return self._hedge_delay

    def score(self, breaker_factor: float, now: float) -> float:
        """The health score in [0, 1] (see the module docstring)."""
        if self.paused(now):
            return 0.0
        return (1.0 - self.error_rate) * breaker_factor
