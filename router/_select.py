"""Selection strategies: in which order a call tries the eligible deployments of its group.

The engine first drops what may not be tried (breaker open, paused by a 429, misconfigured);
a strategy ranks the rest. Each gives every candidate a *key*, lower ranking first, that the
decision record keeps as the candidate's score:

==========  =====================================================================  ==========
strategy    key                                                                    source
==========  =====================================================================  ==========
cost        USD for a 1k-in/1k-out request (configured price, else litellm's map;   -
            unknown prices rank last)
latency     peak-EWMA latency × (in-flight + 1); the first pick is the better of    Finagle,
            two drawn at random ("power of two choices"), the rest follow by key    Linkerd
balanced    ``w_cost·cost/max_cost + w_latency·latency/max_latency +                -
            w_health·(1 − health score)``, weights from ``weights`` (0.5/0.3/0.2)
weighted    Efraimidis–Spirakis draw ``−ln(U)/weight``: a random order in which     -
            each deployment comes first in proportion to its ``weight``
ordered     position in the config (a priority list)                               -
==========  =====================================================================  ==========

A deployment with no latency sample yet is given the mean of the others (or 0): new and
recovered deployments are tried rather than starved. All randomness comes from the router's
seeded `random.Random`.

**Slow is a failure mode** (every strategy): after ranking, a *degraded* deployment is moved
behind every candidate that is not. Degraded means its recent latency (the median of its last
five; for streams, of time to first chunk) is at least `SLOW_FACTOR` (3) times its *baseline*:
its own long-run typical latency (router._health.LatencyTrack), or, while it is young (fewer
than 10 samples, or the first under 30 s ago), its peers' (the largest typical latency among
them) fading into its own with its age: `Selector.baseline`; and at least `NOISE_S` (50 ms)
slower than normal;
and some other candidate is expected to take at most half as long (`GAIN`)
(when all are slow alike, moving traffic gains nothing and costs money). A degraded deployment
keeps a trickle of traffic so its recovery is seen: once per `PROBE_INTERVAL_S` (1 s, per
process) it keeps its rank for one call, a *probe*, which the engine races against the next
candidate after that candidate's typical latency, so the caller does not wait on the slow one.
A probe that comes back at normal speed makes the next call a probe too: three fast answers
bring the median of five back down and the deployment back to its rank, a second or so after it
recovered. This is resilience4j's slow-call rate and Linkerd's latency-aware balancing without
their flaw of a slow deployment that is never tried again.

**Flaky is degraded too**: a deployment failing at least `FLAKY_RATE` (20%) of its last 20
results, whose expected cost to a success (``price / (1 − error rate)``) is above some peer's,
is demoted the same way, with the same probes (a probe that succeeds makes the next call a
probe). A cheap deployment failing 30% is still cheaper to a success than one 2.5 times its
price and keeps its rank; against a twin at its own price it does not. Below 20% failures
are handled call by call. The breaker (router._breaker) still trips at 50%.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from router._breaker import State
from router._catalogue import configured_cost
from router._health import SLOW_FACTOR, LatencyTrack

if TYPE_CHECKING:
    from router._catalogue import Catalogue
    from router._config import BalancedWeights, Deployment
    from router._state import StateStore

_REF_TOKENS = 1000
NOISE_S = 0.05
"""A slowdown smaller than this is not a degradation: a busy client's own scheduling stalls
(garbage collection, another process on the core) look like that, whoever is serving."""
GAIN = 2.0
"""A slow deployment is demoted only for a peer expected to take at most half as long: when
everyone is slow alike (a busy client, a shared upstream), moving traffic gains nothing."""
FLAKY_RATE = 0.2
"""A deployment failing this share of its recent calls is demoted when a peer is cheaper to a
success; below it, a failure is failed over (or retried, router._choose) call by call."""
PROBE_INTERVAL_S = 1.0
"""How often (per process) a degraded deployment gets one call as a probe."""

Ranked = list[tuple["Deployment", float]]

REASONS = {
    "cost": "cheapest healthy",
    "latency": "lowest latency × load of two random picks",
    "balanced": "best balanced score of cost, latency and health",
    "weighted": "weighted random pick",
    "ordered": "first in priority order",
}
"""The phrase each strategy contributes to the decision's reason."""


class Selector:
    """Ranks candidates with the strategy a group asks for."""

    def __init__(self, catalogue: Catalogue, state: StateStore, rng: random.Random) -> None:
        self._catalogue = catalogue
        self._state = state
        self._rng = rng
        self._prices: dict[str, float] = {}
        self._strategies: dict[
            str, Callable[[Sequence[Deployment], float, BalancedWeights], Ranked]
        ] = {
            "cost": self._cost,
            "latency": self._latency,
            "balanced": self._balanced,
            "weighted": self._weighted,
            "ordered": self._ordered,
        }

    def rank(
        self,
        strategy: str,
        candidates: Sequence[Deployment],
        now: float,
        weights: BalancedWeights,
        first_chunk: bool = False,
    ) -> Ranked:
        """The candidates, best first, each with its key (see the module docstring)."""
        if len(candidates) <= 1:
            return [(d, 0.0) for d in candidates]
        ranked = self._strategies[strategy](candidates, now, weights)
        return self._demote_slow(ranked, now, first_chunk)

    def slowness(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float | None = None,
    ) -> float:
        """How many times slower than normal `deployment` is now (1.0 when not known).

        Against its `baseline` (its own typical latency, or before it has one its peers').
        With `now`, an attempt still out counts as a latency of at least its age
        (`expected_latency`)."""
        recent = self.expected_latency(deployment, first_chunk, now, typical=False, peers=peers)
        if recent is None:
            return 1.0
        typical = self.baseline(deployment, peers, first_chunk, now)
        if typical is None or typical <= 0:
            return 1.0
        return recent / typical

    def baseline(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float | None = None,
    ) -> float | None:
        """The latency `deployment` normally takes (None when neither it nor a peer knows).

        Its own long-run typical latency, once it has 10 samples and they are old enough to
        be its own pace. While it is *young* (fewer than 10 samples, or its first one less
        than three decay periods ago: new to this process, or rarely used, like a second
        region behind a cheaper first), its peers' figure weighs in: the largest typical
        latency among `peers` (the most lenient), giving way to its own samples with time as
        a peak EWMA forgets, ``prior^w * own^(1 - w)``, ``w = exp(-age / decay)`` (decay the
        deployment's latency decay, 10 s; `LatencyTrack.blended`). So a brownout that hits a
        cold deployment stays a slowdown against what the group normally takes, however many
        slow samples arrive at once, instead of becoming its normal; a deployment slower by
        nature has its own pace within a few decay periods (5x its peers: ~4 s; 10x: ~7 s)."""
        health = self._state.get(deployment.name).health
        track = health.track(first_chunk)
        own = track.typical
        if own is not None and not track.young(now, health.decay):
            return own
        prior = self.from_peers(deployment, peers, first_chunk, _typical)
        if prior is None:
            return own
        return track.blended(prior, now, health.decay)

    def slow_after(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float | None = None,
    ) -> float | None:
        """For a deployment without its own p99 (fewer than 10 samples): the age past which
        an attempt on it makes it degraded, ``max(SLOW_FACTOR * baseline, baseline + NOISE_S)``
        (None for one with its own p99, or when no baseline is known). It stands in for the
        p99 in `expected_latency` and, on the attempt loop, for the hung threshold: a cold
        deployment's attempt is raced once it is slow by the same rule that would demote it."""
        track = self._state.get(deployment.name).health.track(first_chunk)
        if track.p99() is not None:
            return None
        typical = self.baseline(deployment, peers, first_chunk, now)
        if typical is None:
            return None
        return max(SLOW_FACTOR * typical, typical + NOISE_S)

    def from_peers(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        figure: Callable[[LatencyTrack], float | None],
    ) -> float | None:
        """The largest (most lenient) `figure` of the latency tracks of `peers` other than
        `deployment` (None when none has it): what a cold deployment borrows."""
        largest: float | None = None
        for peer in peers:
            if peer is deployment:
                continue
            value = figure(self._state.get(peer.name).health.track(first_chunk))
            if value is not None and (largest is None or value > largest):
                largest = value
        return largest

    def _overdue(
        self,
        track: LatencyTrack,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float,
    ) -> float:
        """`LatencyTrack.overdue`; before it has its own p99, against `slow_after`."""
        if not peers or track.p99() is not None or track.age(now) <= 0.0:
            return track.overdue(now)
        return track.overdue(now, self.slow_after(deployment, peers, first_chunk, now))

    def expected_latency(
        self,
        deployment: Deployment,
        first_chunk: bool,
        now: float | None = None,
        *,
        typical: bool = True,
        peers: Sequence[Deployment] = (),
    ) -> float | None:
        """What an attempt on `deployment` is expected to take now (None when not known).

        The median of its recent latencies (else, with `typical`, its `baseline`: for a cold
        deployment, from `peers`); with `now`, at least the age of its oldest attempt still
        out once that is past the deployment's recent p99 (before it has one, `slow_after`;
        `LatencyTrack.overdue`): that attempt takes at least so long, so the next
        is not expected to be faster. A deployment that turns slow or hangs is seen while its
        first slow attempt is still out, not after three came back or timed out; a long
        request within the deployment's normal spread does not count."""
        track = self._state.get(deployment.name).health.track(first_chunk)
        recent = track.recent
        if recent is None and typical:
            recent = self.baseline(deployment, peers, first_chunk, now)
        if now is not None:
            age = self._overdue(track, deployment, peers, first_chunk, now)
            if age > 0.0 and (recent is None or age > recent):
                return age
        return recent

    def degraded(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float | None = None,
    ) -> bool:
        """Whether `deployment` is degraded by slowness among `peers` (module docstring).

        For streams, a slow first chunk or a slow whole stream (a drip) both count. With
        `now`, attempts still out count at their age (`expected_latency`)."""
        if first_chunk and self._degraded(deployment, peers, False, now):
            return True
        return self._degraded(deployment, peers, first_chunk, now)

    def _degraded(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float | None,
    ) -> bool:
        slowness = self.slowness(deployment, peers, first_chunk, now)
        if slowness < SLOW_FACTOR:
            return False
        mine = self.expected_latency(deployment, first_chunk, now, peers=peers)
        if mine is None or mine - mine / slowness < NOISE_S:
            return False
        for peer in peers:
            if peer is deployment:
                continue
            theirs = self.expected_latency(peer, first_chunk, now)
            if theirs is None or GAIN * theirs <= mine:
                return True
        return False

    def flaky(self, deployment: Deployment, peers: Sequence[Deployment]) -> bool:
        """Failing at least `FLAKY_RATE` of its recent calls, and so dearer to a success
        (price / (1 − error rate)) than some peer."""
        state = self._state.get(deployment.name)
        if state.breaker.state is not State.CLOSED or state.breaker.consecutive_failures >= 3:
            # Due for its breaker's probe, or failing in a streak (down, not flaky): the
            # breaker decides, and its probe goes at the deployment's rank.
            return False
        health = state.health
        rate = health.error_rate
        if rate < FLAKY_RATE or health.calls < 5:
            return False
        mine = self.price(deployment) / max(0.05, 1.0 - rate)
        for peer in peers:
            if peer is deployment:
                continue
            other = self._state.get(peer.name).health.error_rate
            if self.price(peer) / max(0.05, 1.0 - other) < mine:
                return True
        return False

    def _demote_slow(self, ranked: Ranked, now: float, first_chunk: bool) -> Ranked:
        peers = [d for d, _ in ranked]
        slow: list[tuple[Deployment, float]] = []
        kept: Ranked = []
        for entry in ranked:
            deployment = entry[0]
            slow_now = self.degraded(deployment, peers, first_chunk, now)
            flaky = self.flaky(deployment, peers)
            if not slow_now and not flaky:
                kept.append(entry)
                continue
            health = self._state.get(deployment.name).health
            # A probe that came back well (at normal speed, a success) and none still out
            # overdue: probe again at once, recovery is near.
            fast = self._came_back(deployment, peers, False, now) and (
                not first_chunk or self._came_back(deployment, peers, True, now)
            )
            good = (fast or not slow_now) and (health.last_ok or not flaky)
            if good or now >= health.next_probe:
                health.next_probe = now + PROBE_INTERVAL_S
                kept.append(entry)
            else:
                slow.append(entry)
        if not slow:
            return kept
        return kept + slow

    def _came_back(
        self, deployment: Deployment, peers: Sequence[Deployment], first_chunk: bool, now: float
    ) -> bool:
        """Its latest latency is back near its `baseline` and no attempt of it is overdue (True
        when it has no baseline to compare with)."""
        track = self._state.get(deployment.name).health.track(first_chunk)
        typical = self.baseline(deployment, peers, first_chunk, now)
        if typical is None:
            return True
        last = track.last
        return (
            last is not None
            and last < SLOW_FACTOR * typical
            and self._overdue(track, deployment, peers, first_chunk, now) == 0.0
        )

    def price(self, deployment: Deployment) -> float:
        """USD of a 1k-in/1k-out request on `deployment` (inf when unknown)."""
        price = self._prices.get(deployment.name)
        if price is None:
            # A configured price of 0 means free (ranked first); an unknown one (None: neither
            # the config nor the catalogue knows the model) ranks last.
            configured = configured_cost(deployment, _REF_TOKENS, _REF_TOKENS)
            if configured is None:
                configured = self._catalogue.price(deployment, _REF_TOKENS, _REF_TOKENS)
            price = math.inf if configured is None else configured
            self._prices[deployment.name] = price
        return price

    def _cost(
        self, candidates: Sequence[Deployment], now: float, weights: BalancedWeights
    ) -> Ranked:
        return sorted(((d, self.price(d)) for d in candidates), key=_key)

    def _loads(self, candidates: Sequence[Deployment]) -> list[float]:
        states = [self._state.get(d.name).health for d in candidates]
        known = [h.latency for h in states if h.latency is not None]
        fallback = sum(known) / len(known) if known else 0.0
        return [
            (h.latency if h.latency is not None else fallback) * (h.in_flight + 1) for h in states
        ]

    def _latency(
        self, candidates: Sequence[Deployment], now: float, weights: BalancedWeights
    ) -> Ranked:
        loads = self._loads(candidates)
        ranked = sorted(zip(candidates, loads, strict=True), key=_key)
        i, j = self._rng.sample(range(len(candidates)), 2)
        first = i if loads[i] <= loads[j] else j
        pick = (candidates[first], loads[first])
        return [pick, *(entry for entry in ranked if entry[0] is not pick[0])]

    def _balanced(
        self, candidates: Sequence[Deployment], now: float, weights: BalancedWeights
    ) -> Ranked:
        prices = [self.price(d) for d in candidates]
        finite = [p for p in prices if p < math.inf]
        top_price = max(finite) if finite else 0.0
        states = [self._state.get(d.name) for d in candidates]
        latencies = [s.health.latency for s in states]
        known = [x for x in latencies if x is not None]
        fallback = sum(known) / len(known) if known else 0.0
        filled = [fallback if x is None else x for x in latencies]
        top_latency = max(filled) if filled else 0.0
        ranked: Ranked = []
        for deployment, price, latency, state in zip(
            candidates, prices, filled, states, strict=True
        ):
            cost_part = 1.0 if price == math.inf else (price / top_price if top_price else 0.0)
            latency_part = latency / top_latency if top_latency else 0.0
            health_part = 1.0 - state.score(now)
            key = (
                weights.cost * cost_part
                + weights.latency * latency_part
                + weights.health * health_part
            )
            ranked.append((deployment, round(key, 6)))
        ranked.sort(key=_key)
        return ranked

    def _weighted(
        self, candidates: Sequence[Deployment], now: float, weights: BalancedWeights
    ) -> Ranked:
        rng = self._rng
        keyed = [
            (d, -math.log(1.0 - rng.random()) / d.weight if d.weight > 0 else math.inf)
            for d in candidates
        ]
        keyed.sort(key=_key)
        return keyed

    def _ordered(
        self, candidates: Sequence[Deployment], now: float, weights: BalancedWeights
    ) -> Ranked:
        return [(d, float(i)) for i, d in enumerate(candidates)]


def _typical(track: LatencyTrack) -> float | None:
    return track.typical


def _key(entry: tuple[Deployment, float]) -> float:
    return entry[1]
