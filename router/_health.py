"""Health of one deployment: peak-EWMA latency, error rate, 429 pressure, in-flight, a score.

- **Latency** is a peak EWMA (Finagle, Linkerd): a sample above the average replaces it at once,
  a sample below decays into it with weight ``exp(-Δt / decay)`` (decay 10 s), so a deployment
  that turns slow is seen at once and one that recovers is trusted back gradually. Streams keep
  a second EWMA for time to first token.
- **Error rate** is the failure share of the last 20 recorded results (successes and failures;
  rate limits and caller errors are not recorded).
- **429 pressure**: ``rate_limited_streak`` counts 429s since the last success; at the group's
  ``rate_limit_pause_after`` (2) the engine pauses the deployment until its Retry-After or,
  sooner, the breaker's open period; then one probe (`Health.rate_limit_probe`).
- **In-flight**: attempts started and not yet ended.
- **p95** (the hedge delay ``"p95"``): over the last 128 attempts that *completed*. A timeout
  or an attempt cancelled because a hedge won feeds the EWMA (slowness is information) but is
  not a sample: its latency is unknown, only longer than its elapsed time. Counted at its
  elapsed time it pulled the estimate up after every hedge (the loser's elapsed is the delay
  plus the winner's time), so the delay crept into the slow mode it was meant to cut
  (scripts/bench_hedge.py: p99 492 ms with the creep, see the README for the figures after).
- **Score** in [0, 1]: ``(1 − error rate) × breaker factor`` (closed 1, half-open 0.5, open 0),
  and 0 while paused by a 429.
- **Slowness** (`LatencyTrack`, one for whole calls and one for streams' first chunk): the
  median of the last 5 completed latencies over the deployment's own long-run *typical*
  latency (a geometric mean that moves 1/200 of the way per sample after the first 20, so a
  brownout takes hundreds of calls to become the new normal, and a degraded deployment, which
  gets few calls, hardly moves it). ``slowness() >= 3`` means degraded (router._select).
  The median of five reacts after three slow calls and recovers after three fast ones,
  where a 10 s peak-EWMA took tens of seconds to come down after a brownout ended.
- **Hung** (`LatencyTrack.hung_after`): an attempt still running after
  ``max(4 × p99, p99 + 50 ms)`` of the deployment's recent completed latencies is presumed
  hung: the engine starts a rescue attempt elsewhere, and a racer that loses after that long
  counts as a failure, while one that loses sooner (a slower but healthy deployment) does not.
  The 50 ms keeps a busy client's own scheduling stalls from reading as hangs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

_ERROR_WINDOW = 20
_SAMPLES = 128
_P95_MIN_SAMPLES = 10
_MEDIAN_CAP = 2.0
_RECENT = 5
_BASELINE_WARM = 20
_BASELINE_WEIGHT = 1.0 / 200.0
_TRACK_SAMPLES = 64
_HUNG_FACTOR = 4.0
_HUNG_EXTRA_S = 0.05
SLOW_FACTOR = 3.0
"""A deployment whose recent latency is this many times its own typical latency is degraded."""


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile of `ordered` (sorted, not empty) by nearest rank: its
    ``ceil(q * n)``-th smallest value."""
    return ordered[max(0, math.ceil(q * len(ordered) - 1e-9) - 1)]


class LatencyTrack:
    """Recent and long-run latency of one kind of attempt (whole call, or first chunk)."""

    __slots__ = (
        "_log_typical",
        "_median",
        "_next",
        "_out",
        "_p99",
        "_quantile",
        "_recent",
        "_samples",
        "_stale",
        "born",
        "count",
        "seen",
    )

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._median: float | None = None
        """`recent`, computed once per new latency (it is read several times per call)."""
        self._samples: deque[float] = deque(maxlen=_TRACK_SAMPLES)
        self._log_typical = 0.0
        self._p99: float | None = None
        self._quantile: tuple[int, float, int, float] | None = None
        """`quantile`'s last answer: (count, q, window, value)."""
        self._stale = 0
        self.count = 0
        self._out: dict[int, float] = {}
        self._next = 0
        self.born: float | None = None
        """When the first completed sample came (engine clock), None before."""
        self.seen: float | None = None
        """When the latest completed sample came."""

    def begin(self, now: float) -> int:
        """An attempt starts at `now`; returns its token for `end`."""
        token = self._next
        self._next = token + 1
        self._out[token] = now
        return token

    def end(self, token: int) -> None:
        """The attempt of `token` ended (answered, failed or cancelled)."""
        self._out.pop(token, None)

    def age(self, now: float) -> float:
        """How long the oldest attempt still out has been running (0.0 when none is).

        A lower bound on the deployment's latency now, known before any slow attempt ends:
        a deployment that turned slow or hung is seen while its first slow attempt is still
        out, not after three of them came back (or timed out)."""
        out = self._out
        if not out:
            return 0.0
        # Tokens are handed out in start order and dicts keep insertion order: the first
        # entry is the oldest attempt still out.
        return max(0.0, now - next(iter(out.values())))

    def observe(self, seconds: float, *, completed: bool = True, now: float | None = None) -> None:
        """One latency: a completed attempt, or a lower bound (an attempt cut short by a hedge
        or timeout), which counts as recent evidence but not towards the baseline. `now`
        dates the first completed sample (`born`)."""
        seconds = max(seconds, 1e-6)
        recent = self._recent
        recent.append(seconds)
        n = len(recent)
        if n >= 3:
            ordered = sorted(recent)
            half = n // 2
            self._median = ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2
        if not completed:
            return
        if now is not None:
            self.seen = now
            if self.born is None:
                self.born = now
        self._samples.append(seconds)
        self._stale += 1
        self.count += 1
        log = math.log(seconds)
        if self.count <= _BASELINE_WARM:
            self._log_typical += (log - self._log_typical) / self.count
        else:
            self._log_typical += (log - self._log_typical) * _BASELINE_WEIGHT

    @property
    def typical(self) -> float | None:
        """The long-run typical latency (None before 10 completed samples)."""
        return math.exp(self._log_typical) if self.count >= _P95_MIN_SAMPLES else None

    @property
    def recent(self) -> float | None:
        """Median of the last five latencies (None before three)."""
        return self._median

    @property
    def last(self) -> float | None:
        """The latest latency (or lower bound) seen."""
        return self._recent[-1] if self._recent else None

    def blended(self, prior: float, now: float | None, decay: float) -> float:
        """The typical latency while this track is young: `prior` (its peers'), giving way to
        its own samples with time like a peak EWMA's old value, geometrically:
        ``prior^w * own^(1 - w)`` with ``w = exp(-(now - born) / decay)`` (`prior` alone
        before the first sample; `now` defaults to the latest sample's time; router._select's
        `baseline`)."""
        if self.count == 0 or self.born is None:
            return prior
        at = self.seen if now is None else now
        age = 0.0 if at is None else max(0.0, at - self.born)
        weight = math.exp(-age / decay) if decay > 0 else 0.0
        return math.exp(weight * math.log(max(prior, 1e-6)) + (1.0 - weight) * self._log_typical)

    def young(self, now: float | None, decay: float) -> bool:
        """Whether a peer's figures still weigh in (`blended`): fewer than 10 samples, or
        the first one less than three decay periods ago (the prior's weight above 5%)."""
        if self.count < _P95_MIN_SAMPLES:
            return True
        at = self.seen if now is None else now
        return self.born is not None and at is not None and at - self.born < 3.0 * decay

    def slowness(self) -> float:
        """Recent latency over the typical one (1.0 when either is not known yet)."""
        typical = self.typical
        recent = self.recent
        if typical is None or recent is None or typical <= 0:
            return 1.0
        return recent / typical

    def p99(self) -> float | None:
        """The 99th percentile of recent completed latencies (None before 10 samples)."""
        if len(self._samples) < _P95_MIN_SAMPLES:
            return None
        if self._p99 is None or self._stale >= 8:
            ordered = sorted(self._samples)
            self._p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
            self._stale = 0
        return self._p99

    def quantile(self, q: float, window: int) -> float | None:
        """The `q` quantile of the last `window` completed latencies (at most 64), None when
        there are none: the ``ceil(q * n)``-th smallest of the n kept (router._slo)."""
        n = min(window, len(self._samples))
        if n == 0:
            return None
        cached = self._quantile
        if cached is not None and cached[0] == self.count and cached[1] == q and cached[2] == n:
            return cached[3]
        samples = self._samples
        value = nearest_rank(sorted(samples[i] for i in range(len(samples) - n, len(samples))), q)
        self._quantile = (self.count, q, n, value)
        return value

    def newest(self, n: int) -> list[float]:
        """The last `n` completed latencies, oldest first."""
        samples = self._samples
        return [samples[i] for i in range(max(0, len(samples) - n), len(samples))]

    def hung_after(self) -> float | None:
        """Seconds after which an attempt is presumed hung (None before 10 samples)."""
        p99 = self.p99()
        if p99 is None:
            return None
        return max(_HUNG_FACTOR * p99, p99 + _HUNG_EXTRA_S)

    def overdue(self, now: float, p99: float | None = None) -> float:
        """The age of the oldest attempt still out if it is past the recent p99 (a request
        that long is not one of the deployment's normal ones), else 0.0. `p99` stands in for
        this track's own before it has one (a peer's: router._select)."""
        age = self.age(now)
        if age <= 0.0:
            return 0.0
        own = self.p99()
        if own is not None:
            p99 = own
        return age if p99 is not None and age > p99 else 0.0


class Health:
    """Running health figures of one deployment; times on the engine clock's scale."""

    __slots__ = (
        "_errors",
        "_failures",
        "_hedge_delay",
        "_p95",
        "_p95_stale",
        "_probe_until",
        "_samples",
        "calls_track",
        "decay",
        "in_flight",
        "latency",
        "limited_until",
        "next_probe",
        "paused_until",
        "paused_why",
        "rate_limit_pauses",
        "rate_limited_streak",
        "ttft",
        "ttft_track",
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
        self.rate_limit_pauses = 0
        """429 pauses since the last success (router._limits `pause_for`)."""
        self._probe_until = 0.0
        """The end of a rate-limit probe's hold (`rate_limit_probe`), 0.0 when none."""
        self.limited_until = 0.0
        """When the provider's latest Retry-After ends (the pause may end sooner, with a
        probe): what a caller told to wait is told (router._explain)."""
        self._errors: deque[bool] = deque()
        self._failures = 0
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._p95: float | None = None
        self._hedge_delay: float | None = None
        self._p95_stale = 0
        self.calls_track = LatencyTrack()
        self.ttft_track = LatencyTrack()
        self.next_probe = 0.0
        """When a degraded deployment is next due a probe (router._select)."""

    def track(self, first_chunk: bool) -> LatencyTrack:
        """The latency track of whole calls, or of streams' first chunk."""
        return self.ttft_track if first_chunk else self.calls_track

    def observe_latency(
        self, seconds: float, now: float, *, first_chunk: bool = False, completed: bool = True
    ) -> None:
        """Feed one latency: a completed attempt, or (``completed=False``) one that timed out
        or lost a hedge race, which moves the EWMA but is not a p95 sample."""
        if first_chunk:
            self.ttft = self._peak_ewma(self.ttft, seconds, now)
            self.ttft_track.observe(seconds, completed=completed, now=now)
        else:
            self.latency = self._peak_ewma(self.latency, seconds, now)
            self.calls_track.observe(seconds, completed=completed, now=now)
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
            self.rate_limit_pauses = 0
            self.limited_until = 0.0
            self.end_rate_limit_probe()  # it answered: the limit is over

    def forget_errors(self) -> None:
        """Empty the error window (the breaker closed: the outage's failures are history)."""
        self._errors.clear()
        self._failures = 0

    @property
    def last_ok(self) -> bool:
        """Whether the latest recorded result was a success (False when none)."""
        return bool(self._errors) and not self._errors[-1]

    @property
    def error_rate(self) -> float:
        return self._failures / len(self._errors) if self._errors else 0.0

    @property
    def calls(self) -> int:
        """Results in the error window (at most 20)."""
        return len(self._errors)

    def pause(self, until: float, why: str) -> None:
        """Skip the deployment until `until` (a 429's Retry-After)."""
        held = self._probe_until and self.paused_until == self._probe_until
        if until > self.paused_until or held:
            # A probe's hold (`rate_limit_probe`) ends with its answer: a 429 sets a new pause.
            self.paused_until = until
            self.paused_why = why
            self._probe_until = 0.0

    def rate_limit_probe(self, now: float, hold: float) -> None:
        """A caller is admitted to a deployment whose last 429 pause has ended with no success
        since (it may still be rate-limited): it is the one probe. Everyone else skips the
        deployment until the probe answers (a success ends the hold, a 429 pauses again) or
        `hold` seconds pass, so the end of a pause lets one call through, not every caller
        waiting at that moment. No effect when no pause came since the last success."""
        if self.rate_limit_pauses and not self.paused(now):
            self.paused_until = self._probe_until = now + hold
            self.paused_why = "rate-limit probe out"

    def end_rate_limit_probe(self) -> None:
        """The probe's attempt ended without a 429 (or was never made): end its hold."""
        if self._probe_until:
            if self.paused_until == self._probe_until:
                self.paused_until = 0.0
            self._probe_until = 0.0

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
