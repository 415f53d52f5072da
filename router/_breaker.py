"""A circuit breaker per deployment: closed, open, half-open with exactly one probe.

Rules (defaults in `BreakerPolicy`, every one configurable per group in providers.toml; the
engine passes each call's group policy to `record`, so a deployment in several groups is judged
by the rules of the group each result came from):

- **closed → open** when, over the last ``window`` (20) recorded results with at least
  ``min_calls`` (10) of them, the failure share is ``>= failure_rate`` (50%), or after
  ``consecutive`` (5) failures in a row (resilience4j/Hystrix; Envoy/Finagle for the streak).
- **open** for ``open_base · 2^(k−1)`` seconds on the k-th consecutive trip, capped at
  ``open_max``, plus 0–10% jitter, and never less than a Retry-After the provider gave.
- **half-open**: the first caller after the open period becomes the single probe; while the
  probe is out every other caller is refused (they fail over at once). A probe success closes
  the breaker (and resets the trip count); a failure re-opens it for the next, longer period.
  A probe that ends with an ignored outcome (a caller error) or is cancelled frees the slot.
- ``force_open`` opens at once for a given time (auth and unknown-model errors).
- **Fleet streaks** (a shared store only, router._redis_streaks): ``peer_failures`` are the
  failures in the current streaks of peer processes, valid until ``peers_until``; the streak
  rule counts them with this process's own, so a fleet of processes trips after about
  ``consecutive`` failures in all rather than each process after its own. ``on_streak`` hears
  every change of this process's own streak (its length, 0 when a success ends it). Both are
  unused (0 and None) with the in-process store.

Only results that say something about the provider are recorded: successes and failures.
Rate limits and caller errors are not failures of the deployment and never reach the breaker.
The breaker is a plain state machine over an injected time (`now` arguments) and random source:
it never reads a clock or sleeps, which keeps it exactly testable.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class State(enum.StrEnum):
    """Breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Trip and recovery parameters (see the module docstring for the rules)."""

    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    consecutive: int = 5
    open_base: float = 1.0
    open_max: float = 1.0
    jitter: float = 0.1


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker state change: carried by decision records, logs and spans."""

    deployment: str
    before: State
    after: State
    at: float
    reason: str
    open_for: float | None = None


class Admission(enum.Enum):
    """What the breaker says to one caller."""

    ALLOW = "allow"
    PROBE = "probe"
    DENY = "deny"


class Breaker:
    """The breaker of one deployment. Not thread-safe: the engine runs on one event loop."""

    __slots__ = (
        "_results",
        "consecutive_failures",
        "deployment",
        "failures_in_window",
        "on_streak",
        "open_until",
        "peer_failures",
        "peers_until",
        "policy",
        "probe_out",
        "rng",
        "state",
        "trips",
    )

    def __init__(
        self, deployment: str, policy: BreakerPolicy | None = None, rng: random.Random | None = None
    ) -> None:
        self.deployment = deployment
        self.policy = policy or BreakerPolicy()
        self.rng = rng or random.Random()
        self.state = State.CLOSED
        self.open_until = 0.0
        self.trips = 0
        self.probe_out = False
        self.consecutive_failures = 0
        self.failures_in_window = 0
        self._results: deque[bool] = deque()
        self.peer_failures = 0
        self.peers_until = 0.0
        self.on_streak: Callable[[str, int], None] | None = None

    def admit(self, now: float) -> tuple[Admission, Transition | None]:
        """May a call go to this deployment now? The first call after the open period probes."""
        state = self.state
        if state is State.CLOSED:
            return Admission.ALLOW, None
        if state is State.OPEN:
            if now < self.open_until:
                return Admission.DENY, None
            self.state = State.HALF_OPEN
            self.probe_out = True
            return Admission.PROBE, Transition(
                self.deployment,
                State.OPEN,
                State.HALF_OPEN,
                now,
                "open period over: one probe admitted",
            )
        if self.probe_out:
            return Admission.DENY, None
        self.probe_out = True
        return Admission.PROBE, None

    def peek(self, now: float) -> Admission:
        """What `admit` would answer, without taking the probe slot."""
        if self.state is State.CLOSED:
            return Admission.ALLOW
        if self.state is State.OPEN:
            return Admission.DENY if now < self.open_until else Admission.PROBE
        return Admission.DENY if self.probe_out else Admission.PROBE

    def release(self) -> None:
        """A probe ended without a verdict (caller error, cancelled): free the slot."""
        self.probe_out = False

    def record(
        self,
        success: bool,
        now: float,
        policy: BreakerPolicy | None = None,
        *,
        probe: bool = False,
        retry_after: float | None = None,
        why: str = "",
    ) -> Transition | None:
        """Record a success or failure; returns the transition it caused, if any.

        `policy` is the settings of the group the call ran in (a deployment in several groups
        is judged by each call's own group); None means the breaker's default.
        """
        policy = policy or self.policy
        if self.state is State.HALF_OPEN:
            if not probe:
                # A straggler admitted before the trip: its result is stale, the probe decides.
                return None
            self.probe_out = False
            if success:
                return self._close(now)
            why = f"probe failed: {why}" if why else "probe failed"
            return self._open(now, why, retry_after, policy)
        if self.state is State.OPEN:
            return None
        streak = self.consecutive_failures
        self._remember(success, policy.window)
        if self.on_streak is not None and (not success or streak):
            self.on_streak(self.deployment, self.consecutive_failures)
        if success:
            return None
        peers = self.peer_failures if now < self.peers_until else 0
        if self.consecutive_failures + peers >= policy.consecutive:
            own = self.consecutive_failures
            fleet = f" ({own} here, {peers} in peer processes)" if peers else ""
            return self._open(
                now,
                f"{own + peers} consecutive failures{fleet}" + (f" (last: {why})" if why else ""),
                retry_after,
                policy,
            )
        count = len(self._results)
        if count >= policy.min_calls and self.failures_in_window >= policy.failure_rate * count:
            return self._open(
                now,
                f"{self.failures_in_window}/{count} recent calls failed"
                + (f" (last: {why})" if why else ""),
                retry_after,
                policy,
            )
        return None

    def force_open(self, now: float, duration: float, reason: str) -> Transition:
        """Open at once for `duration` seconds (misconfiguration: auth, unknown model)."""
        before = self.state
        self.state = State.OPEN
        self.trips += 1
        self.probe_out = False
        self.open_until = max(self.open_until, now + duration)
        self._clear()
        return Transition(self.deployment, before, State.OPEN, now, reason, self.open_until - now)

    def _remember(self, success: bool, window: int) -> None:
        results = self._results
        # A loop, not one pop: a deployment shared by groups with different windows is judged
        # by each call's own window, which may be smaller than the last one's.
        while len(results) >= window:
            if not results.popleft():
                self.failures_in_window -= 1
        results.append(success)
        if success:
            self.consecutive_failures = 0
        else:
            self.failures_in_window += 1
            self.consecutive_failures += 1

    def _clear(self) -> None:
        self._results.clear()
        self.failures_in_window = 0
        self.consecutive_failures = 0
        self.peer_failures = 0

    def open_duration(
        self, trips: int, retry_after: float | None = None, policy: BreakerPolicy | None = None
    ) -> float:
        """Seconds to stay open on the `trips`-th consecutive trip (jitter drawn here)."""
        policy = policy or self.policy
        base = min(policy.open_max, policy.open_base * 2.0 ** (trips - 1))
        duration = base * (1.0 + self.rng.uniform(0.0, policy.jitter))
        if retry_after is not None:
            duration = max(duration, retry_after)
        return duration

    def _open(
        self, now: float, reason: str, retry_after: float | None, policy: BreakerPolicy
    ) -> Transition:
        before = self.state
        self.trips += 1
        duration = self.open_duration(self.trips, retry_after, policy)
        self.state = State.OPEN
        self.open_until = now + duration
        self._clear()
        return Transition(self.deployment, before, State.OPEN, now, reason, duration)

    def _close(self, now: float) -> Transition:
        before = self.state
        self.state = State.CLOSED
        self.trips = 0
        self._clear()
        return Transition(self.deployment, before, State.CLOSED, now, "probe succeeded")
