"""Fixtures for the eval tests: a tiny hand-made dataset whose every figure is checkable."""

from __future__ import annotations

from typing import Any

import pytest

from router._eval._data import Dataset, Item

# Prices chosen so costs read off by hand: prompts are free, every answer here is one token
# ("yes" / "no" are one token for litellm's counter), weak $0.001 and strong $0.01 per token.
WEAK_PRICE = 0.001
STRONG_PRICE = 0.01


def tiny_items() -> list[Item]:
    """Four items: (weak answer, weak right?, strong answer, strong right?) per item.

    a: yes/right, yes/right   b: no/wrong, yes/right   c: no/wrong, no/wrong
    d: yes/wrong, yes/right   (the weak answer looks fine and is wrong)
    """
    rows = [
        ("a", "easy", "yes", True, "yes", True),
        ("b", "hard", "no", False, "yes", True),
        ("c", "hard", "no", False, "no", False),
        ("d", "easy", "yes", False, "yes", True),
    ]
    return [
        Item(
            id=ident,
            prompt=f"question {ident}",
            metadata={"kind": kind},
            reference="yes",
            answers={"weak": wa, "strong": sa},
            correct={"weak": wc, "strong": sc},
        )
        for ident, kind, wa, wc, sa, sc in rows
    ]


@pytest.fixture
def tiny() -> Dataset:
    items = tiny_items()
    return Dataset("tiny", tuple(items), ("weak", "strong"), "<tests>")


def tiny_config(**extra: Any) -> dict[str, Any]:
    """weak and strong groups, one deployment each, priced per output token only."""
    config: dict[str, Any] = {
        "deployments": [
            {
                "name": "small",
                "model": "openai/sim-small",
                "input_cost_per_token": 0.0,
                "output_cost_per_token": WEAK_PRICE,
                "groups": ["weak"],
            },
            {
                "name": "large",
                "model": "openai/sim-large",
                "input_cost_per_token": 0.0,
                "output_cost_per_token": STRONG_PRICE,
                "groups": ["strong"],
            },
        ]
    }
    config.update(extra)
    return config


BINDINGS = {"small": "weak", "large": "strong"}
