"""A mixed simulated fleet: two providers per wire protocol, on ephemeral loopback ports.

Each protocol has a primary ``<protocol>-p`` (the one a test breaks) and a healthy spare
``<protocol>-q``; a group ``<protocol>`` holds both, primary first (cheaper). Real litellm
talks to each through that provider's own handler (see `router._sim._protocols`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from router._sim import Behavior, Fleet
from router._sim._protocols import PROTOCOLS, litellm_params

ALL = tuple(PROTOCOLS)


def mixed_fleet(seed: int = 1) -> Fleet:
    names = {f"{p}-{role}": p for p in ALL for role in ("p", "q")}
    return Fleet(
        {name: Behavior(latency_ms=1.0, chunk_delay_ms=0.0) for name in names},
        seed=seed,
        protocols=names,
    )


def group_config(
    fleet: Fleet,
    protocol: str,
    *,
    timeout: float = 5.0,
    deadline: float = 10.0,
    router: dict[str, Any] | None = None,
    **per: dict[str, Any],
) -> dict[str, Any]:
    """A config whose group `protocol` is that protocol's primary then spare."""
    deployments = []
    for rank, role in enumerate(("p", "q")):
        provider = fleet[f"{protocol}-{role}"]
        entry: dict[str, Any] = {
            "name": provider.name,
            **litellm_params(provider),
            "input_cost_per_token": (rank + 1) * 1e-7,
            "output_cost_per_token": (rank + 1) * 4e-7,
            "timeout": timeout,
            "groups": [protocol],
        }
        entry.update(per.get(role, {}))
        deployments.append(entry)
    settings: dict[str, Any] = {"deadline": deadline, "max_attempts": 3}
    settings.update(router or {})
    return {"router": settings, "deployments": deployments}


def _warm(fleet: Fleet) -> None:
    # litellm imports each provider's code path on its first call (seconds on a loaded
    # machine); make those first calls here so no test's attempt timeout pays for them.
    import litellm

    for protocol in ALL:
        params = litellm_params(fleet[f"{protocol}-q"])
        extra = params.pop("litellm_params", {})
        for stream in (False, True):
            result = litellm.completion(
                messages=[{"role": "user", "content": "warm up"}],
                stream=stream,
                num_retries=0,
                **params,
                **extra,
            )
            if stream:
                for _ in result:
                    pass
    fleet.reset()


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with mixed_fleet().threaded() as running:
        _warm(running)
        yield running


@pytest.fixture(autouse=True, scope="module")
def _litellm_globals_restored() -> Iterator[None]:
    """Leave litellm's process-wide callback lists and cache as this module found them.

    litellm's Gemini code path turns on its response cache as a side effect (adding "cache"
    to the success/input callback lists for the rest of the process), which would make later
    tests in the same process see "someone listens to litellm's logging".
    """
    import litellm

    from router._quiet import _CALLBACK_LISTS

    names = [*_CALLBACK_LISTS, "input_callback"]
    saved = {name: list(getattr(litellm, name, None) or []) for name in names}
    cache = litellm.cache
    yield
    for name, value in saved.items():
        if isinstance(getattr(litellm, name, None), list):
            getattr(litellm, name)[:] = value
    litellm.cache = cache


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "fleet" in request.fixturenames:
        request.getfixturevalue("fleet").reset()
