"""`router serve`: the router as an OpenAI-compatible HTTP gateway (see router._serve._app).

Needs the ``serve`` extra (``pip install 'router[serve]'``: starlette, uvicorn, and uvloop and
httptools where they install). Lazy: ``router --help`` and ``router check`` import nothing of
it beyond the argument setup (router._serve._server imports starlette only when serving).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router._serve._app import Gateway
    from router._serve._options import ServeOptions
    from router._serve._server import build_gateway

__all__ = ["Gateway", "ServeOptions", "build_gateway"]

_WHERE = {
    "Gateway": "router._serve._app",
    "ServeOptions": "router._serve._options",
    "build_gateway": "router._serve._server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'router._serve' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
