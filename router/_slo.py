"""Explicit latency objectives per group: the cheapest deployment expected to meet them first.

Off by default. A group (or ``[router]``) that sets ``latency_slo`` (seconds for a whole call;
for a stream, its whole time) and/or ``first_chunk_slo`` (seconds to a stream's first chunk),
each at ``slo_percentile`` (0.95), has its ranking (router._select, every strategy and its
slow/flaky demotions) re-ordered before each call by `Objectives.order`:

1. **Expected** (`Objectives.expected`): a deployment's ``slo_percentile`` quantile of its last
   ``window`` completed latencies (streams: time to first chunk for ``first_chunk_slo``, the
   whole stream for ``latency_slo``), ``window = max(20, ceil(1 / (1 - percentile)))`` capped
   at the 64 kept (p95: the 19th of the last 20; p99: the largest of the last 64). Twenty is
   enough for a p95 and few enough that a recovered deployment's probes replace a brownout's
   samples within twenty calls. An attempt still out whose age is above that figure counts
   as one more sample of at least its age (it will take at least so long). A deployment with
   fewer than 5 samples has no distribution yet and is judged by the project's young-
   deployment rule (`router._select.Selector.expected_latency`: its recent median, else its
   baseline, the largest typical latency of its peers fading into its own, at least the age
   of an attempt out past its `slow_after`), and is expected to meet an objective when that
   does; with no figure at all (nobody has answered yet) it is expected to meet it, so new
   deployments are tried.
2. **Meets** when every objective that applies is at least the expected figure (a plain call:
   ``latency_slo``; a stream: both). The deployments that meet come first, in the strategy's
   order (under ``strategy = "cost"``, the default, the cheapest first: the objective is a
   constraint, the strategy the preference among those that satisfy it); then those that do
   not, the fastest expected first (the smallest expected ÷ objective, the worst objective
   counting), so when none meets, the call goes where it is likeliest to come closest.
3. **Probe**: a deployment that misses and is cheaper than the one the call now goes to gets
   one call a second (per process), first in the order, so its recovery is seen; the engine
   races it against the next candidate after twice that one's expected latency
   (router._hedge `race_delay`), so its caller does not wait on it. A probe that came back
   within the objectives makes the next call a probe too: a recovered deployment has its
   traffic back while its fast answers push the slow ones out of the window.
4. **Why**: when the order changed, the call's notes (so its decision's reason, span and log)
   say so: ``slo: a p95 0.41 s > 0.30 s``, ``slo probe: a (p95 0.41 s > 0.30 s)``, or
   ``slo: none expected to meet p95 0.30 s; fastest expected first: c p95 0.35 s``.

With no objective set, nothing here runs (`objective_of` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router._health import LatencyTrack, nearest_rank

if TYPE_CHECKING:
    from router._config import Deployment, RouterSettings
    from router._select import Selector
    from router._state import StateStore

__all__ = ["MIN_SAMPLES", "PROBE_INTERVAL_S", "Objective", "Objectives", "objective_of"]

MIN_SAMPLES = 5
"""Completed latencies a deployment needs before its own distribution is used."""
PROBE_INTERVAL_S = 1.0
"""How often (per process) a deployment that misses its objective gets one call as a probe."""
_WINDOW_MIN = 20
_WINDOW_MAX = 64


@dataclass(frozen=True, slots=True)
class Objective:
    """A group's latency objectives (seconds, None where unset) at one percentile."""

    percentile: float
    latency: float | None = None
    first_chunk: float | None = None

    @property
    def window(self) -> int:
        """How many recent completed latencies the percentile is taken over."""
        need = math.ceil(1.0 / (1.0 - self.percentile) - 1e-9)
        return min(_WINDOW_MAX, max(_WINDOW_MIN, need))

    @property
    def label(self) -> str:
        """``p95`` for 0.95, ``p99.5`` for 0.995."""
        return f"p{self.percentile * 100:g}"


def objective_of(settings: RouterSettings) -> Objective | None:
    """The objectives a call's settings ask for, or None (the default: none)."""
    if settings.latency_slo is None and settings.first_chunk_slo is None:
        return None
    return Objective(settings.slo_percentile, settings.latency_slo, settings.first_chunk_slo)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


class _Verdict:
    """One deployment against the objectives: its worst expected ÷ objective, and why."""

    __slots__ = ("deployment", "ratio", "why")

    def __init__(self, deployment: Deployment, ratio: float, why: str) -> None:
        self.deployment = deployment
        self.ratio = ratio
        self.why = why

    @property
    def meets(self) -> bool:
        return self.ratio <= 1.0


class Objectives:
    """Orders a call's candidates by the group's objectives (module docstring)."""

    def __init__(self, selector: Selector, state: StateStore) -> None:
        self._selector = selector
        self._state = state
        self._next_probe: dict[str, float] = {}

    def expected(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        objective: Objective,
        now: float,
    ) -> float | None:
        """The `objective`'s percentile an attempt on `deployment` is expected to take (None
        when nothing is known), for a stream's first chunk or a whole call (module docstring)."""
        track = self._state.get(deployment.name).health.track(first_chunk)
        window = objective.window
        if track.count < MIN_SAMPLES:
            return self._selector.expected_latency(deployment, first_chunk, now, peers=peers)
        value = track.quantile(objective.percentile, window)
        assert value is not None
        age = track.age(now)
        if age > value:
            return _with_censored(track, objective.percentile, window, age)
        return value

    def verdict(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        stream: bool,
        objective: Objective,
        now: float,
    ) -> _Verdict:
        """How `deployment` stands against every objective that applies to the call."""
        ratio = 0.0
        why = ""
        checks: list[tuple[float, bool, str]] = []
        if stream and objective.first_chunk is not None:
            checks.append((objective.first_chunk, True, "first chunk "))
        if objective.latency is not None:
            checks.append((objective.latency, False, ""))
        for slo, first_chunk, what in checks:
            expected = self.expected(deployment, peers, first_chunk, objective, now)
            if expected is None:
                continue
            share = expected / slo
            if share > ratio:
                ratio = share
                sign = ">" if share > 1.0 else "<="
                why = (
                    f"{deployment.name} {what}{objective.label} {_seconds(expected)} {sign} "
                    f"{_seconds(slo)}"
                )
        return _Verdict(deployment, ratio, why)

    def order(
        self,
        ranked: list[Deployment],
        objective: Objective,
        stream: bool,
        now: float,
        notes: list[str],
    ) -> tuple[list[Deployment], Deployment | None]:
        """`ranked` (the strategy's order) re-ordered by `objective`, and the probe put first
        (None when there is none); appends to `notes` why, when the order changed."""
        if not ranked or (objective.latency is None and not stream):
            return ranked, None
        verdicts = [self.verdict(d, ranked, stream, objective, now) for d in ranked]
        if all(v.meets for v in verdicts):
            return ranked, None
        meeting = [v for v in verdicts if v.meets]
        missing = sorted((v for v in verdicts if not v.meets), key=_ratio)
        head = meeting[0] if meeting else missing[0]
        price = self._selector.price
        head_price = price(head.deployment)
        # Those the call would have gone to were they expected to meet: cheaper than the head.
        passed = [v for v in missing if v is not head and price(v.deployment) < head_price]
        probe = self._probe(passed, objective, stream, now)
        order = [v.deployment for v in meeting] + [v.deployment for v in missing]
        if probe is not None:
            order.remove(probe.deployment)
            order.insert(0, probe.deployment)
            notes.append(f"slo probe: {probe.deployment.name} ({_without_name(probe)})")
        elif not meeting:
            notes.append(
                f"slo: none expected to meet {_targets(objective, stream)}; "
                f"fastest expected first: {head.why}"
            )
        elif passed:
            notes.append("slo: " + ", ".join(v.why for v in passed))
        return order, None if probe is None else probe.deployment

    def _probe(
        self, passed: Sequence[_Verdict], objective: Objective, stream: bool, now: float
    ) -> _Verdict | None:
        """The first of `passed` due a probe: a second after its last one, or at once when its
        latest answer met the objectives (it is coming back)."""
        for verdict in passed:
            name = verdict.deployment.name
            if now >= self._next_probe.get(name, 0.0) or self._came_back(
                verdict.deployment, objective, stream, now
            ):
                self._next_probe[name] = now + PROBE_INTERVAL_S
                return verdict
        return None

    def _came_back(
        self, deployment: Deployment, objective: Objective, stream: bool, now: float
    ) -> bool:
        health = self._state.get(deployment.name).health
        checks: list[tuple[float, LatencyTrack]] = []
        if stream and objective.first_chunk is not None:
            checks.append((objective.first_chunk, health.ttft_track))
        if objective.latency is not None:
            checks.append((objective.latency, health.calls_track))
        for slo, track in checks:
            last = track.last
            if last is None or last > slo or track.age(now) > slo:
                return False
        return bool(checks)


def _with_censored(track: LatencyTrack, q: float, window: int, age: float) -> float:
    """The `q` quantile of the last `window` - 1 completed latencies and `age` (a lower bound
    on the latency of the attempt still out)."""
    return nearest_rank(sorted([*track.newest(window - 1), age]), q)


def _targets(objective: Objective, stream: bool) -> str:
    parts = []
    if stream and objective.first_chunk is not None:
        parts.append(f"first chunk {objective.label} {_seconds(objective.first_chunk)}")
    if objective.latency is not None:
        parts.append(f"{objective.label} {_seconds(objective.latency)}")
    return " and ".join(parts) or objective.label


def _without_name(verdict: _Verdict) -> str:
    return verdict.why.removeprefix(verdict.deployment.name + " ")


def _ratio(verdict: _Verdict) -> float:
    return verdict.ratio
