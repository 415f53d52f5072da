"""The state-store seam: where each deployment's health and breaker live.

`MemoryState` keeps them in this process. The engine asks the store for a deployment's
`DeploymentState` and mutates it on the event loop; a shared store (Redis, later) can publish the
breaker transitions and pauses it is told about (`on_transition`, `on_pause`) and apply its
peers' without the engine changing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from router._breaker import Breaker, BreakerPolicy, State, Transition
from router._health import Health

_BREAKER_FACTOR = {State.CLOSED: 1.0, State.HALF_OPEN: 0.5, State.OPEN: 0.0}


class DeploymentState:
    """Health and breaker of one deployment."""

    __slots__ = ("breaker", "health", "name")

    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.health = Health()
        self.breaker = Breaker(name, BreakerPolicy(), rng)

    def score(self, now: float) -> float:
        breaker = self.breaker
        factor = _BREAKER_FACTOR[breaker.state]
        if breaker.state is State.OPEN and now >= breaker.open_until:
            factor = 0.5  # due for its probe
        return self.health.score(factor, now)


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """A snapshot of one deployment's health, as `Router.health()` and `router health` show."""

    deployment: str
    state: str
    score: float
    latency_ms: float | None
    ttft_ms: float | None
    p95_ms: float | None
    error_rate: float
    calls: int
    in_flight: int
    open_for_s: float | None
    """Seconds until an open breaker admits its probe (None unless open)."""
    paused_for_s: float | None
    """Seconds left of a 429 pause (None unless paused)."""
    trips: int


class StateStore(Protocol):
    """Where deployment state lives."""

    def get(self, deployment: str) -> DeploymentState:
        """The state of `deployment`, created on first use."""

    def on_transition(self, transition: Transition) -> None:
        """A breaker changed state (a shared store publishes it)."""

    def on_pause(self, deployment: str, seconds: float, why: str) -> None:
        """A deployment was paused for `seconds` (a shared store publishes it)."""

    def snapshot(self, now: float) -> list[DeploymentHealth]:
        """Every known deployment's health."""


class MemoryState:
    """In-process state; the engine runs on one event loop, so no locks are needed."""

    def __init__(self, seed: int | None = None) -> None:
        self._states: dict[str, DeploymentState] = {}
        self._rng = random.Random(seed)

    def get(self, deployment: str) -> DeploymentState:
        state = self._states.get(deployment)
        if state is None:
            state = self._states[deployment] = DeploymentState(deployment, self._rng)
        return state

    def on_transition(self, transition: Transition) -> None:
        return None

    def on_pause(self, deployment: str, seconds: float, why: str) -> None:
        return None

    def snapshot(self, now: float) -> list[DeploymentHealth]:
        return [snapshot_of(state, now) for state in self._states.values()]


def snapshot_of(state: DeploymentState, now: float) -> DeploymentHealth:
    """The `DeploymentHealth` of one state at time `now`."""
    health, breaker = state.health, state.breaker
    p95 = health.p95()
    open_for = breaker.open_until - now if breaker.state is State.OPEN else None
    return DeploymentHealth(
        deployment=state.name,
        state=breaker.state.value,
        score=round(state.score(now), 4),
        latency_ms=None if health.latency is None else health.latency * 1000,
        ttft_ms=None if health.ttft is None else health.ttft * 1000,
        p95_ms=None if p95 is None else p95 * 1000,
        error_rate=health.error_rate,
        calls=health.calls,
        in_flight=health.in_flight,
        open_for_s=None if open_for is None else max(0.0, open_for),
        paused_for_s=(health.paused_until - now) if health.paused(now) else None,
        trips=breaker.trips,
    )
