"""The retry budget: a floor plus a share of calls over a sliding window."""

from __future__ import annotations

import pytest

from router._budget import RetryBudget


def spendable(budget: RetryBudget, now: float) -> int:
    spent = 0
    while budget.withdraw(now):
        spent += 1
    return spent


def test_floor_without_calls() -> None:
    assert spendable(RetryBudget(ratio=0.2, window=10, floor=3), 0.0) == 3


@pytest.mark.parametrize(("calls", "expected"), [(0, 3), (5, 4), (10, 5), (100, 23)])
def test_twenty_percent_of_calls_plus_floor(calls: int, expected: int) -> None:
    budget = RetryBudget(ratio=0.2, window=10, floor=3)
    for _ in range(calls):
        budget.deposit(1.0)
    assert spendable(budget, 1.5) == expected


def test_old_calls_and_retries_leave_the_window() -> None:
    budget = RetryBudget(ratio=0.2, window=10, floor=3)
    for _ in range(100):
        budget.deposit(0.5)
    assert spendable(budget, 0.5) == 23
    assert budget.withdraw(9.0) is False  # still inside the window: spent
    assert spendable(budget, 10.6) == 3  # the 0-1 s bucket expired: floor only


def test_description_says_what_was_spent() -> None:
    budget = RetryBudget(ratio=0.2, window=10, floor=0)
    budget.deposit(0.0)
    assert budget.withdraw(0.0) is False
    assert "retry budget spent" in budget.describe(0.0)
