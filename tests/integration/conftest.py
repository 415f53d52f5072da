"""Fixtures: a simulated fleet on ephemeral loopback ports and a router over it (real litellm)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from router import Router
from router._sim import Behavior, Fleet

NAMES = ("a", "b", "c")


def fleet_config(
    fleet: Fleet, *, deadline: float = 5.0, timeout: float = 1.0, **per: dict[str, Any]
) -> dict[str, Any]:
    """A config with one deployment per fleet provider, priced so a < b < c."""
    deployments = []
    for rank, provider in enumerate(fleet):
        entry: dict[str, Any] = {
            "name": provider.name,
            "model": f"openai/sim-{provider.name}",
            "api_base": provider.base_url,
            "api_key": "sk-sim-test",
            "input_cost_per_token": (rank + 1) * 1e-7,
            "output_cost_per_token": (rank + 1) * 4e-7,
            "timeout": timeout,
            "groups": ["chat"],
        }
        entry.update(per.get(provider.name, {}))
        deployments.append(entry)
    return {"router": {"deadline": deadline, "max_attempts": 3}, "deployments": deployments}


def _fleet() -> Fleet:
    return Fleet({name: Behavior(latency_ms=2.0) for name in NAMES}, seed=1)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with _fleet() as running:
        yield running


@pytest.fixture
def threaded_fleet() -> Iterator[Fleet]:
    with _fleet().threaded() as running:
        yield running


@pytest.fixture
def router(fleet: Fleet) -> Router:
    return Router(fleet_config(fleet), seed=0)
