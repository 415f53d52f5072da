"""The module-level API: a default `Router`, built lazily from the config on first use.

The default config is the file named by ``ROUTER_CONFIG``, else ``./providers.toml``. When
neither exists (and ``ROUTER_CONFIG`` is unset) the default router has no groups: every model
string goes straight to litellm, still under the router's deadline and attempt rules.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router._observe import set_default_observer

if TYPE_CHECKING:
    from router._config import Config
    from router._router import Router

_lock = threading.Lock()
_default: Router | None = None


def configure(
    config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None, **kwargs: Any
) -> Router:
    """Replace the default router with one over `config` (a path, a Config or a dict)."""
    global _default
    from router._router import Router

    router = Router(config, **kwargs)
    with _lock:
        _default = router
        set_default_observer(router.observer)
    return router


def default_router() -> Router:
    """The router that module-level `completion` / `acompletion` use (built on first use)."""
    global _default
    router = _default
    if router is not None:
        return router
    with _lock:
        if _default is None:
            from router._config import Config
            from router._router import Router

            if "ROUTER_CONFIG" not in os.environ and not os.path.exists("providers.toml"):
                _default = Router(Config.empty())
            else:
                _default = Router()
            set_default_observer(_default.observer)
        return _default


def completion(model: str, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> Any:
    """Drop-in for `litellm.completion` through the default router."""
    return default_router().completion(model, messages, **kwargs)


async def acompletion(
    model: str, messages: list[dict[str, Any]] | None = None, **kwargs: Any
) -> Any:
    """Drop-in for `litellm.acompletion` through the default router."""
    return await default_router().acompletion(model, messages, **kwargs)


def embedding(model: str, input: Any = None, **kwargs: Any) -> Any:
    """Drop-in for `litellm.embedding` through the default router."""
    return default_router().embedding(model, input, **kwargs)


async def aembedding(model: str, input: Any = None, **kwargs: Any) -> Any:
    """Drop-in for `litellm.aembedding` through the default router."""
    return await default_router().aembedding(model, input, **kwargs)
