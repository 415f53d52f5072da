"""`Router`: the drop-in `completion` / `acompletion` over a providers.toml config."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

from router._backend import Backend, LiteLLMBackend
from router._budget import RetryBudget
from router._clock import Clock, SystemClock
from router._config import Config, Deployment, RouterSettings, load_config
from router._engine import Engine, RoutedStream
from router._state import DeploymentHealth, MemoryState, StateStore
from router._sync import SyncStream, run_sync

# Routes are cached per model string; a caller passing endless distinct raw model strings must
# not grow memory without bound.
_MAX_ADHOC_ROUTES = 1024
# Keywords that belong to the router, not to the provider call.
_OURS = frozenset({"num_retries", "max_retries"})


class Router:
    """Routes litellm calls over the deployments of a config.

    ``model`` naming a group (or a deployment) is routed over its deployments with failover
    under one deadline; any other model string goes straight to litellm as a one-deployment
    call, still under the ``[router]`` deadline and attempt rules. Every other keyword
    (temperature, tools, response_format, metadata, ...) is passed through to litellm, except:

    - ``timeout``: caps the call's deadline (it never extends the configured one);
    - ``num_retries`` / ``max_retries``: ignored, the router is the only retry layer.

    The collaborators are injectable seams: `backend` (default: litellm), `clock`, `state`
    (where health and breakers live) and `seed` for every random draw (jitter, P2C, weights).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        backend: Backend | None = None,
        clock: Clock | None = None,
        state: StateStore | None = None,
        seed: int | None = None,
    ) -> None:
        if config is None or isinstance(config, str | os.PathLike):
            config = load_config(config)
        elif not isinstance(config, Config):
            config = Config.from_dict(config)
        self.config: Config = config
        self.backend: Backend = backend if backend is not None else LiteLLMBackend()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.state: StateStore = state if state is not None else MemoryState(seed)
        base = config.router
        self.budget = RetryBudget(
            base.retry_budget_ratio, base.retry_budget_window, base.retry_budget_floor
        )
        self.engine = Engine(self.backend, self.clock, self.state, random.Random(seed), self.budget)
        self._routes: dict[str, tuple[Sequence[Deployment], RouterSettings]] = {}

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **kwargs: Any) -> Router:
        """A router over the config file at `path` (see `Router` for keyword arguments)."""
        return cls(load_config(path), **kwargs)

    def _route(self, model: str) -> tuple[Sequence[Deployment], RouterSettings]:
        route = self._routes.get(model)
        if route is None:
            config = self.config
            if config.is_routable(model):
                route = (config.deployments_in(model), config.settings_for(model))
            else:
                route = ((Deployment(name=model, model=model),), config.router)
            if len(self._routes) < _MAX_ADHOC_ROUTES:
                self._routes[model] = route
        return route

    async def acompletion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Async drop-in for `litellm.acompletion`: a `ModelResponse`, or a `RoutedStream`."""
        deployments, settings = self._route(model)
        deadline = kwargs.pop("timeout", None)
        if _OURS.intersection(kwargs):
            for key in _OURS:
                kwargs.pop(key, None)
        kwargs["messages"] = messages if messages is not None else []
        cap = float(deadline) if isinstance(deadline, int | float) else None
        if stream:
            return await self.engine.stream(model, deployments, settings, kwargs, cap)
        return await self.engine.complete(model, deployments, settings, kwargs, cap)

    def health(self) -> list[DeploymentHealth]:
        """A snapshot of every deployment's health and breaker, in config order."""
        now = self.clock.now()
        known = {h.deployment: h for h in self.state.snapshot(now)}
        from router._state import snapshot_of

        return [
            known.get(d.name) or snapshot_of(self.state.get(d.name), now)
            for d in self.config.deployments
        ]

    def completion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Sync drop-in for `litellm.completion`: a `ModelResponse`, or an iterator of chunks."""
        result = run_sync(self.acompletion(model, messages, stream=stream, **kwargs))
        if isinstance(result, RoutedStream):
            return SyncStream(result)
        return result
