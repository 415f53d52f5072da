"""`router serve`: the router as an OpenAI-compatible HTTP gateway (see router._serve._app).

Needs the ``serve`` extra (``pip install 'router[serve]'``: starlette, uvicorn, and uvloop and
httptools where they install). Nothing here is imported by ``import router``.
"""

from __future__ import annotations

from router._serve._app import Gateway, ServeOptions
from router._serve._server import build_gateway

__all__ = ["Gateway", "ServeOptions", "build_gateway"]
