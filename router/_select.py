"""The selection seam: which order a group's deployments are tried in.

For now one strategy, ``cost``: cheapest first by the configured (or litellm map) price of a
reference request, then config order. Health, latency and blended scoring replace it behind the
same `Selector` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from router._backend import Backend
    from router._config import Deployment

# A reference request for ranking by price: 1k prompt and 1k completion tokens.
_REF_TOKENS = 1000


class Selector(Protocol):
    """Ranks a group's deployments for one call; the engine tries them in that order."""

    name: str

    def rank(self, group: str, deployments: Sequence[Deployment]) -> Sequence[Deployment]:
        """The deployments in the order to try them (best first)."""


class CheapestFirst:
    """Cheapest first (configured price, else litellm's map), ties in config order.

    Deployments whose price is unknown rank after every priced one. The ranking of a group is
    static, so it is computed once per group and reused.
    """

    name = "cost"

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._cache: dict[str, Sequence[Deployment]] = {}

    def rank(self, group: str, deployments: Sequence[Deployment]) -> Sequence[Deployment]:
        # A group's members are fixed for the life of a router, so the group name is the key.
        ranked = self._cache.get(group)
        if ranked is None:
            ranked = tuple(sorted(deployments, key=self._price_key))
            self._cache[group] = ranked
        return ranked

    def _price_key(self, deployment: Deployment) -> tuple[int, float]:
        price = self._backend.cost(deployment, _REF_TOKENS, _REF_TOKENS)
        # sorted() is stable, so equal keys keep config order.
        return (0, price) if price > 0 else (1, 0.0)
