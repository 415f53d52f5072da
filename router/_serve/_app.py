"""The gateway's ASGI app: OpenAI's HTTP API over one `Router`, and the operations endpoints.

Routes (see the README's "Gateway" section):

- ``POST /v1/chat/completions`` (plain, and SSE when ``"stream": true``), ``POST
  /v1/messages`` (Anthropic's format), ``POST /v1/embeddings`` (when the router routes
  embeddings), ``GET /v1/models``: router._serve._api;
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``GET /dashboard`` and ``GET
  /dashboard.json``, ``POST /admin/reload``: router._serve._ops.

The gateway has no routing logic: every request body is handed to `Router.acompletion` as is
(``model``, ``messages``, ``stream`` and every other OpenAI parameter), and the response, the
stream or the error comes back in OpenAI's shape. What it adds is the edge: keys and their
limits (router._serve._keys), body-size and slow-client limits (router._serve._request), a cap
on concurrent calls that sheds load with 503 + ``Retry-After``, cancellation when the client
goes away, the decision in response headers (``x-router-deployment``, ``x-router-attempts``,
``x-router-reason``, ``x-router-cost``) and W3C ``traceparent`` in and out
(router._serve._headers).

This module holds what every route shares: the `Gateway` (the current router, the edge's
state and options), its error answer, the concurrency cap and the server span.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from router._serve import _api, _ops
from router._serve._asgi import Answer, Dispatch, JSONBytes, json_bytes
from router._serve._dialect import OPENAI, Dialect
from router._serve._errors import GatewayError
from router._serve._keys import Keys
from router._serve._metrics import GatewayObserver
from router._serve._options import ServeOptions, options_for

if TYPE_CHECKING:
    from router._router import Router
    from router._serve._headers import Trace

__all__ = ["Gateway", "ServeOptions", "options_for"]

Handler = Callable[["Gateway", Request], Awaitable[Answer]]
_ROUTES: tuple[tuple[str, Handler, str], ...] = (
    ("/v1/chat/completions", _api.chat, "POST"),
    ("/chat/completions", _api.chat, "POST"),
    ("/v1/messages", _api.messages, "POST"),
    ("/v1/embeddings", _api.embeddings, "POST"),
    ("/v1/models", _api.models, "GET"),
    ("/healthz", _ops.healthz, "GET"),
    ("/readyz", _ops.readyz, "GET"),
    ("/metrics", _ops.metrics, "GET"),
    ("/dashboard", _ops.dashboard, "GET"),
    ("/dashboard.json", _ops.dashboard_json, "GET"),
    ("/admin/reload", _ops.admin_reload, "POST"),
)


class Gateway:
    """One process's gateway: the current router, the edge's state, and the ASGI app."""

    def __init__(
        self,
        router: Router,
        options: ServeOptions | None = None,
        *,
        observer: GatewayObserver | None = None,
        tracer_provider: Any = None,
        tracing: bool = False,
    ) -> None:
        self.router = router
        self.options = options or ServeOptions()
        self.observer = observer or GatewayObserver()
        self.keys = Keys(
            self.options.keys,
            self.options.admin_key,
            redis_url=self.options.redis_url,
            prefix=self.options.redis_prefix,
        )
        self.in_flight = 0
        self.draining = False
        self.loaded_at = time.time()
        self.last_reload: dict[str, Any] | None = None
        self.reload_lock = asyncio.Lock()
        self._tracing = tracing or tracer_provider is not None
        self._tracer_provider = tracer_provider
        self._tracer: Any = None
        routes: dict[str, dict[str, Callable[[Request], Awaitable[Answer]]]] = {}
        for path, handler, method in _ROUTES:
            routes.setdefault(path, {})[method] = functools.partial(handler, self)
        self.app = Dispatch(routes, self._no_route, self._server_error)
        """The ASGI app (router._serve._asgi)."""

    async def reload(self, why: str) -> dict[str, Any]:
        """Validate the config file and swap it in (see router._serve._ops); never raises."""
        return await _ops.reload(self, why)

    async def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the config file changes (polled; runs forever)."""
        await _ops.watch(self, interval)

    # -- what every route shares -----------------------------------------------------------

    def _no_route(self, request: Request, status: int) -> JSONBytes:
        path = request.scope["path"]
        if status == 404:
            return self.error(GatewayError(404, f"no route {path}", "not_found_error"))
        return self.error(GatewayError(405, f"{request.method} not allowed on {path}"))

    def _server_error(self) -> JSONBytes:
        return self.error(
            GatewayError(500, "internal error in the gateway", "server_error", "internal_error")
        )

    def error(
        self,
        error: GatewayError,
        extra: Mapping[str, str] | None = None,
        route: str = "other",
        dialect: Dialect | None = None,
    ) -> JSONBytes:
        """`error` in the dialect's JSON shape with its status and headers (counted)."""
        body = (dialect or OPENAI).error_json(error)
        reasons = getattr(error, "reasons", None)
        if reasons:
            body["error"]["reasons"] = reasons
        headers = dict(error.headers)
        if extra:
            headers.update(extra)
        self.observer.requests.add((("route", route), ("status", str(error.status))))
        return JSONBytes(json_bytes(body), error.status, headers)

    def admit(self) -> None:
        """Raise a 503 + ``Retry-After`` when draining or at the concurrency cap."""
        if self.draining:
            raise GatewayError(
                503, "the gateway is shutting down", "service_unavailable", "draining",
                headers={"Retry-After": "1", "Connection": "close"},
            )  # fmt: skip
        if self.in_flight >= self.options.max_concurrency:
            raise GatewayError(
                503,
                f"the gateway is at its cap of {self.options.max_concurrency} concurrent calls",
                "service_unavailable",
                "overloaded",
                headers={"Retry-After": "1"},
            )

    def paused_for(self, group: str) -> float | None:
        """Seconds until the first of `group`'s deployments may be tried again, if known."""
        try:
            names = {d.name for d in self.router.config.deployments_in(group)}
        except KeyError:
            return None
        waits = [
            h.paused_for_s if h.paused_for_s is not None else h.open_for_s
            for h in self.router.health()
            if h.deployment in names
        ]
        known = [w for w in waits if w is not None]
        return min(known) if known else None

    def span(self, trace: Trace, name: str) -> Any:
        """A SERVER span (when telemetry is on) whose parent is the caller's traceparent."""
        if not self._tracing:
            return None
        from opentelemetry import trace as otel_trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        if self._tracer is None:
            self._tracer = otel_trace.get_tracer(
                "router.gateway", tracer_provider=self._tracer_provider
            )
        parent = None
        if trace.parent is not None:
            remote = SpanContext(
                int(trace.trace_id, 16),
                int(trace.parent, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(trace.flags, 16)),
            )
            parent = otel_trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        context = span.get_span_context()
        if context.is_valid:
            trace.trace_id = f"{context.trace_id:032x}"
            trace.span_id = f"{context.span_id:016x}"
        return span
