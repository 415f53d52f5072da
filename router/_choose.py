"""Which attempt comes next: every attempt chosen by expected cost and time, not only by rank.

The engine (router._engine) asks `Chooser.order` for the candidates of the next attempt, best
first, each with the backoff to sleep before it; it starts the first one the breaker admits.
The rules, in order:

1. **Never start an attempt that cannot finish.** A candidate whose expected latency (the
   median of its recent latencies, else its typical one; router._select) plus its backoff is
   more than the time left is left out. One with no latency history is allowed.
2. **Retry the same deployment, or fail over?** After a transient failure (a 5xx the server
   answered; not a timeout, a refused or broken connection) on a deployment whose breaker is
   still closed, whose failure was isolated (not the second or later of a streak across
   calls: that is a deployment going down, not a transient error) and which this call tried
   once, compare the expected cost to a success of one
   more try there (after a short full-jitter backoff ``U(0, backoff_base)``),
   ``price / (1 − error rate)``, with that of the candidate the strategy would try next; the
   cheaper goes first (ties fail over). A provider with a transient 3 % error rate is retried
   at its own price instead of paying five times more on the steady one; one failing half its
   calls is left at once.
3. **The last attempt goes to the healthiest candidate.** When one attempt is left, the
   candidates are ordered by health instead of rank: not degraded by slowness, breaker closed,
   highest health score, fewest tries in this call, then rank. Hedges and attempts on slow or
   flaky deployments cannot use up the attempts so that a healthy deployment is never tried.
4. **One reserved attempt past `max_attempts` or the retry budget.** If the attempts or the
   retry budget are used up and a candidate this call has not tried has a clean record
   (breaker closed, no recent failure, not degraded), it gets one more attempt while the
   deadline allows: a call does not fail while a healthy deployment exists and time allows an
   attempt on it. It is not charged to the budget: the budget keeps retries off failing
   deployments, and this attempt goes to one that is not failing, once per call; its first
   failure ends its clean record, so a fleet failing everywhere still gets no extra load.
   (``max_attempts = 1`` still means one attempt.) Measured: a router 1.5 s old (46 calls,
   a budget of 19) lost 9 of 92 calls when both of A's deployments began refusing connections
   (each call spent two failovers until their breakers opened), with B and C healthy
   (scripts/bench_scenarios.py, outage_refused seed 1).

Otherwise candidates come in rank order, untried first, then the tried ones by fewest tries
(each retry after ``U(0, min(backoff_max, backoff_base · 2^(n−1)))``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from router._breaker import State
from router._errors import describe, status_code_of

if TYPE_CHECKING:
    from router._config import Deployment, RouterSettings
    from router._select import Selector
    from router._state import StateStore

_MIN_SUCCESS = 0.05
_MIN_ATTEMPT_S = 0.001

Option = tuple["Deployment", float]
"""A candidate for the next attempt and the backoff (seconds) to sleep before it."""


def transient(exc: BaseException | None) -> bool:
    """An error worth one more try on the same deployment: the server answered with a 5xx.

    Not a timeout (slow), not a refused or broken connection (down), not an error without a
    status (a tool's own exception): those fail over."""
    if exc is None:
        return False
    status = status_code_of(exc)
    if status is None or not 500 <= status <= 599:
        return False
    return describe(exc) == f"{type(exc).__name__} {status}"  # no transport cause


class Chooser:
    """Orders the candidates of a call's next attempt (see the module docstring)."""

    def __init__(self, selector: Selector, state: StateStore, rng: random.Random) -> None:
        self._selector = selector
        self._state = state
        self._rng = rng

    def success_chance(self, deployment: Deployment) -> float:
        """1 − the deployment's recent error rate (at least 5%)."""
        rate = self._state.get(deployment.name).health.error_rate
        return max(_MIN_SUCCESS, 1.0 - rate)

    def expected_cost(self, deployment: Deployment) -> float:
        """USD to a success on `deployment`, retrying it until one: price / success chance."""
        return self._selector.price(deployment) / self.success_chance(deployment)

    def healthy(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        first_chunk: bool,
        now: float | None = None,
    ) -> bool:
        """A clean record: breaker closed, no failure in its window, not degraded, not paused."""
        health = self._state.get(deployment.name)
        return (
            health.breaker.state is State.CLOSED
            and health.health.error_rate == 0.0
            and not self._selector.degraded(deployment, peers, first_chunk, now)
        )

    def _health_key(
        self,
        deployment: Deployment,
        peers: Sequence[Deployment],
        tries: int,
        index: int,
        first_chunk: bool,
        now: float,
    ) -> tuple[bool, bool, float, int, int]:
        state = self._state.get(deployment.name)
        return (
            self._selector.degraded(deployment, peers, first_chunk, now),
            state.breaker.state is not State.CLOSED,
            -state.score(now),
            tries,
            index,
        )

    def fits(
        self,
        deployment: Deployment,
        backoff: float,
        left: float,
        first_chunk: bool,
        now: float | None = None,
    ) -> bool:
        """Whether an attempt on `deployment` after `backoff` is expected to end in `left`."""
        expected = self._selector.expected_latency(deployment, first_chunk, now)
        need = backoff + (expected if expected is not None else 0.0) + _MIN_ATTEMPT_S
        return need <= left

    def reserve(
        self,
        ranked: Sequence[Deployment],
        tries: Mapping[str, int],
        left: float,
        first_chunk: bool,
        now: float | None = None,
    ) -> Deployment | None:
        """Rule 4's candidate: the first untried one with a clean record that is expected to
        end within `left` (None when there is none). The attempt loop spends it after the
        attempts or the budget ran out; a rescue race spends it on a presumed-hung attempt
        (router._hedge), at most once per call either way (`Call.reserved_used`)."""
        for deployment in ranked:
            if tries.get(deployment.name) or not self.healthy(deployment, ranked, first_chunk, now):
                continue
            return deployment if self.fits(deployment, 0.0, left, first_chunk, now) else None
        return None

    def order(
        self,
        ranked: Sequence[Deployment],
        tries: Mapping[str, int],
        settings: RouterSettings,
        *,
        made: int,
        left: float,
        first_chunk: bool,
        now: float,
        failed: Deployment | None = None,
        fast_failure: bool = False,
        reserved_used: bool = False,
        budget_spent: bool = False,
    ) -> list[Option]:
        """The next attempt's candidates, best first, each with its backoff (module docstring).

        `made` is the attempts this call has made, `left` the seconds to its deadline,
        `failed` the deployment whose attempt just failed (`fast_failure`: with an error
        answer, not a timeout), `reserved_used` whether the reserved attempt was spent,
        `budget_spent` whether the retry budget is (then only the reserved attempt is left)."""
        attempts_left = settings.max_attempts - made
        if budget_spent:
            attempts_left = min(attempts_left, 0)
        if not tries and attempts_left > 1:
            # The call's first attempt (the common case): every candidate untried, in rank
            # order, no backoff; only rule 1 applies.
            return [(d, 0.0) for d in ranked if self.fits(d, 0.0, left, first_chunk, now)]
        untried = [d for d in ranked if not tries.get(d.name)]
        if attempts_left <= 0:
            if reserved_used or settings.max_attempts < 2:
                return []
            reserve = self.reserve(ranked, tries, left, first_chunk, now)
            return [] if reserve is None else [(reserve, 0.0)]
        tried = sorted(
            (d for d in ranked if tries.get(d.name)),
            key=lambda d: (tries.get(d.name, 0), ranked.index(d)),
        )
        options: list[Option] = [(d, 0.0) for d in untried]
        for d in tried:
            n = tries.get(d.name, 0)
            options.append((d, self._backoff(settings, n)))
        if attempts_left == 1:
            index = {d.name: i for i, d in enumerate(ranked)}
            options.sort(
                key=lambda o: self._health_key(
                    o[0], ranked, tries.get(o[0].name, 0), index[o[0].name], first_chunk, now
                )
            )
        elif (
            failed is not None
            and fast_failure
            and tries.get(failed.name) == 1
            and failed in ranked
            and untried
            and self._state.get(failed.name).breaker.state is State.CLOSED
            and self._state.get(failed.name).breaker.consecutive_failures <= 1
        ):
            again = self.expected_cost(failed)
            other = self.expected_cost(untried[0])
            if math.isfinite(again) and again < other:
                backoff = self._rng.uniform(0.0, min(settings.backoff_max, settings.backoff_base))
                options = [(failed, backoff), *(o for o in options if o[0] is not failed)]
        return [o for o in options if self.fits(o[0], o[1], left, first_chunk, now)]

    def _backoff(self, settings: RouterSettings, n: int) -> float:
        """Full jitter before the n+1-th try of one deployment."""
        return self._rng.uniform(
            0.0, min(settings.backoff_max, settings.backoff_base * 2 ** (n - 1))
        )
