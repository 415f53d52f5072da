"""The retry budget: retries and hedges stay within a share of calls (Finagle, Linkerd, Envoy).

Over a sliding window (10 s, in ten 1 s buckets) a router may spend on retries, failovers and
hedges at most ``floor + ratio × calls`` (floor 10, ratio 20%). Every call deposits; every attempt
after a call's first (and every hedge) withdraws one. When a provider fails hard, the budget
caps how much extra load the router adds on top of its callers' own, so a failing fleet is not
buried under retry storms. When spent, a call gets no further attempts and its error says so,
except one reserved attempt on a candidate with a clean record that it has not tried
(router._choose rule 4): the budget keeps retries off failing deployments, not a call off a
healthy one.
"""

from __future__ import annotations


class RetryBudget:
    """A sliding-window retry budget over an injected time (`now` arguments)."""

    __slots__ = ("_calls", "_epochs", "_retries", "buckets", "floor", "ratio", "width")

    def __init__(
        self, ratio: float = 0.2, window: float = 10.0, floor: int = 10, buckets: int = 10
    ) -> None:
        self.ratio = ratio
        self.floor = floor
        self.buckets = buckets
        self.width = window / buckets
        self._calls = [0] * buckets
        self._retries = [0] * buckets
        self._epochs = [-1] * buckets

    def _slot(self, now: float) -> int:
        epoch = int(now // self.width)
        slot = epoch % self.buckets
        if self._epochs[slot] != epoch:
            self._epochs[slot] = epoch
            self._calls[slot] = 0
            self._retries[slot] = 0
        return slot

    def _totals(self, now: float) -> tuple[int, int]:
        epoch = int(now // self.width)
        oldest = epoch - self.buckets + 1
        calls = retries = 0
        for i in range(self.buckets):
            if self._epochs[i] >= oldest:
                calls += self._calls[i]
                retries += self._retries[i]
        return calls, retries

    def deposit(self, now: float) -> None:
        """One call started."""
        self._calls[self._slot(now)] += 1

    def available(self, now: float) -> float:
        """Retries that may still be spent in the current window."""
        calls, retries = self._totals(now)
        return self.floor + self.ratio * calls - retries

    def withdraw(self, now: float) -> bool:
        """Spend one retry or hedge if the budget allows; False when it is spent."""
        if self.available(now) < 1.0:
            return False
        self._retries[self._slot(now)] += 1
        return True

    def describe(self, now: float) -> str:
        calls, retries = self._totals(now)
        return (
            f"retry budget spent: {retries} retries/hedges for {calls} calls in the last "
            f"{self.width * self.buckets:g} s (allowed {self.floor} + "
            f"{self.ratio:.0%} of calls)"
        )
