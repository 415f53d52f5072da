"""`Router`: the drop-in `completion` / `acompletion` over a providers.toml config."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

from router._backend import Backend, LiteLLMBackend
from router._clock import Clock, SystemClock
from router._config import Config, Deployment, load_config
from router._engine import Engine, RoutedStream
from router._select import CheapestFirst, Selector
from router._state import MemoryState, StateStore
from router._sync import SyncStream, run_sync

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

    The collaborators are injectable seams: `backend` (default: litellm), `clock`, `state`,
    `selector` and `seed` for the jitter's random source.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        backend: Backend | None = None,
        clock: Clock | None = None,
        state: StateStore | None = None,
        selector: Selector | None = None,
        seed: int | None = None,
    ) -> None:
        if config is None or isinstance(config, str | os.PathLike):
            config = load_config(config)
        elif not isinstance(config, Config):
            config = Config.from_dict(config)
        self.config: Config = config
        self.backend: Backend = backend if backend is not None else LiteLLMBackend()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.state: StateStore = state if state is not None else MemoryState()
        self.selector: Selector = selector if selector is not None else CheapestFirst(self.backend)
        self.engine = Engine(
            self.backend, self.clock, self.state, self.selector, random.Random(seed)
        )
        self._adhoc: dict[str, tuple[Deployment, ...]] = {}

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **kwargs: Any) -> Router:
        """A router over the config file at `path` (see `Router` for keyword arguments)."""
        return cls(load_config(path), **kwargs)

    def _route(self, model: str) -> tuple[tuple[Deployment, ...] | list[Deployment], Any]:
        config = self.config
        if config.is_routable(model):
            return config.deployments_in(model), config.settings_for(model)
        adhoc = self._adhoc.get(model)
        if adhoc is None:
            adhoc = (Deployment(name=model, model=model),)
            self._adhoc[model] = adhoc
        return adhoc, config.router

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
