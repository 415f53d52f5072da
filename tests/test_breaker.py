"""The breaker against a small reference model (hypothesis stateful), plus its table cases."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from router._breaker import Admission, Breaker, BreakerPolicy, State

POLICY = BreakerPolicy(
    failure_rate=0.5,
    window=20,
    min_calls=10,
    consecutive=5,
    open_base=30.0,
    open_max=300.0,
    jitter=0.0,
)


class Reference:
    """The rules of RELIABILITY.md written as plainly as possible."""

    def __init__(self) -> None:
        self.state = "closed"
        self.open_until = 0.0
        self.trips = 0
        self.probe_out = False
        self.results: list[bool] = []  # since the last clear, newest last

    def admit(self, now: float) -> str:
        if self.state == "closed":
            return "allow"
        if self.state == "open":
            if now < self.open_until:
                return "deny"
            self.state = "half_open"
            self.probe_out = True
            return "probe"
        if self.probe_out:
            return "deny"
        self.probe_out = True
        return "probe"

    def open(self, now: float) -> None:
        self.trips += 1
        self.state = "open"
        self.open_until = now + min(300.0, 30.0 * 2 ** (self.trips - 1))
        self.results = []

    def record(self, success: bool, now: float, probe: bool) -> None:
        if self.state == "half_open":
            if not probe:
                return
            self.probe_out = False
            if success:
                self.state, self.trips, self.results = "closed", 0, []
            else:
                self.open(now)
            return
        if self.state == "open":
            return
        self.results.append(success)
        streak = 0
        for result in reversed(self.results):
            if result:
                break
            streak += 1
        window = self.results[-20:]
        failures = window.count(False)
        if not success and (streak >= 5 or (len(window) >= 10 and failures >= 0.5 * len(window))):
            self.open(now)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.real = Breaker("a", POLICY, random.Random(0))
        self.model = Reference()
        self.admitted: list[bool] = []  # probe flags of calls admitted and not yet recorded

    @rule(dt=st.floats(0, 400))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def admit(self) -> None:
        admission, _ = self.real.admit(self.now)
        expected = self.model.admit(self.now)
        assert admission.value == expected
        if admission is not Admission.DENY:
            self.admitted.append(admission is Admission.PROBE)

    @precondition(lambda self: bool(self.admitted))
    @rule(success=st.booleans(), which=st.integers(0, 10))
    def record(self, success: bool, which: int) -> None:
        probe = self.admitted.pop(which % len(self.admitted))
        self.real.record(success, self.now, probe=probe)
        self.model.record(success, self.now, probe)

    @precondition(lambda self: any(self.admitted))
    @rule()
    def probe_cancelled(self) -> None:
        self.admitted.remove(True)
        self.real.release()
        self.model.probe_out = False

    @invariant()
    def same_state(self) -> None:
        assert self.real.state.value == self.model.state
        assert self.real.trips == self.model.trips
        if self.real.state is State.OPEN:
            assert self.real.open_until == self.model.open_until

    @invariant()
    def at_most_one_probe(self) -> None:
        assert sum(self.admitted) <= 1


TestBreakerAgainstReference = BreakerMachine.TestCase
TestBreakerAgainstReference.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)


def test_open_duration_doubles_with_jitter_and_a_cap() -> None:
    breaker = Breaker(
        "a", BreakerPolicy(open_base=30.0, open_max=300.0, jitter=0.1), random.Random(1)
    )
    for trips, base in [(1, 30.0), (2, 60.0), (3, 120.0), (4, 240.0), (5, 300.0), (9, 300.0)]:
        duration = breaker.open_duration(trips)
        assert base <= duration <= base * 1.1


def test_retry_after_lengthens_the_open_period() -> None:
    breaker = Breaker("a", BreakerPolicy(open_base=1.0, jitter=0.0))
    assert breaker.open_duration(1, retry_after=20.0) == 20.0
    assert breaker.open_duration(1, retry_after=0.5) == 1.0


def test_five_consecutive_failures_trip_and_the_transition_says_why() -> None:
    breaker = Breaker("a", BreakerPolicy(jitter=0.0))
    for _ in range(4):
        assert breaker.record(False, 0.0, why="ServiceUnavailableError 503") is None
    transition = breaker.record(False, 0.0, why="ServiceUnavailableError 503")
    assert transition is not None
    assert (transition.before, transition.after) == (State.CLOSED, State.OPEN)
    assert "5 consecutive failures" in transition.reason
    assert transition.open_for == 1.0  # the default open_base (was 30 s before issue 11)


def test_failure_rate_over_the_window_trips() -> None:
    breaker = Breaker("a", BreakerPolicy(jitter=0.0))
    outcomes = [True, False] * 4 + [True]  # 4 failures in 9: below min_calls
    for ok in outcomes:
        assert breaker.record(ok, 0.0) is None
    transition = breaker.record(False, 0.0)  # 5 of 10
    assert transition is not None and "5/10 recent calls failed" in transition.reason


def test_force_open_blocks_at_once() -> None:
    breaker = Breaker("a")
    transition = breaker.force_open(10.0, 300.0, "misconfigured: AuthenticationError 401")
    assert transition.after is State.OPEN
    assert breaker.admit(200.0)[0] is Admission.DENY
    assert breaker.admit(311.0)[0] is Admission.PROBE


def test_peers_failures_count_toward_the_streak_while_they_are_fresh() -> None:
    # A shared store (router._redis_state) keeps `peer_failures`: the peers' current streaks.
    breaker = Breaker("a", BreakerPolicy(jitter=0.0))
    breaker.peer_failures, breaker.peers_until = 3, 10.0
    assert breaker.record(False, 1.0) is None  # 1 here + 3 in peers
    transition = breaker.record(False, 2.0)
    assert transition is not None and transition.after is State.OPEN
    assert transition.reason.startswith("5 consecutive failures (2 here, 3 in peer processes)")
    assert breaker.peer_failures == 0  # the trip consumed the fleet's streak
    stale = Breaker("a", BreakerPolicy(jitter=0.0))
    stale.peer_failures, stale.peers_until = 3, 10.0
    for _ in range(4):
        assert stale.record(False, 11.0) is None  # past peers_until: only its own count


def test_on_streak_hears_every_change_of_the_own_streak_and_nothing_else() -> None:
    heard: list[tuple[str, int]] = []
    breaker = Breaker("a", BreakerPolicy(jitter=0.0))
    breaker.on_streak = lambda name, n: heard.append((name, n))
    for ok in (True, True, False, False, True, True, False):
        breaker.record(ok, 0.0)
    assert heard == [("a", 1), ("a", 2), ("a", 0), ("a", 1)]
    assert Breaker("b").on_streak is None and Breaker("b").peer_failures == 0  # off by default
