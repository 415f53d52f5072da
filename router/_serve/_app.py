"""The gateway's ASGI app: OpenAI's HTTP API over one `Router`, and the operations endpoints.

Routes (see the README's "Gateway" section):

- ``POST /v1/chat/completions`` (plain, and SSE when ``"stream": true``), ``POST
  /v1/embeddings`` (when the router routes embeddings), ``GET /v1/models``;
- ``GET /healthz`` (the process answers), ``GET /readyz`` (a config is loaded and the gateway
  is not draining; never fails because Redis or a provider is down), ``GET /metrics``
  (Prometheus text), ``GET /dashboard`` and ``GET /dashboard.json``;
- ``POST /admin/reload`` (admin key): validate and swap the config file, returning the diff or
  the problems.

The gateway has no routing logic: every request body is handed to `Router.acompletion` as is
(``model``, ``messages``, ``stream`` and every other OpenAI parameter), and the response, the
stream or the error comes back in OpenAI's shape. What it adds is the edge: keys and their
limits (router._serve._keys), body-size and slow-client limits, a cap on concurrent calls that
sheds load with 503 + ``Retry-After``, cancellation when the client goes away, the decision in
response headers (``x-router-deployment``, ``x-router-attempts``, ``x-router-reason``,
``x-router-cost``) and W3C ``traceparent`` in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from router._decision import Decision, get_decision
from router._serve import _anthropic
from router._serve._errors import GatewayError, error_body, from_exception
from router._serve._keys import Keys, KeySpec
from router._serve._metrics import GatewayObserver
from router._serve._sse import guarded, sse_body, trailer

if TYPE_CHECKING:
    from router._config import Config
    from router._diff import ConfigDiff
    from router._router import Router

__all__ = ["Gateway", "ServeOptions"]

_log = logging.getLogger("router.gateway")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_HEADER_SAFE = re.compile(r"[^\x20-\x7e]")
_MAX_REASON_HEADER = 1024
# OpenAI parameters whose type the gateway checks (a wrong type is the caller's 400, never an
# attempt that counts against a provider). Everything else passes through unchecked.
_NUMBER = (float, int)
_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER,
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "n": (int,),
    "seed": (int,),
    "stream": (bool,),
    "stream_options": (dict,),
    "tools": (list,),
    "stop": (str, list),
    "user": (str,),
    "metadata": (dict,),
    "response_format": (dict,),
    "logprobs": (bool,),
    "top_logprobs": (int,),
}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "a boolean", dict: "an object",
               list: "an array", str: "a string"}  # fmt: skip


@dataclass
class ServeOptions:
    """The edge's limits and keys (``[gateway]`` in providers.toml; see the README)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrency: int = 512
    body_timeout: float = 30.0
    """Seconds a client may take to send its whole body (slow clients get a 408)."""
    drain_timeout: float = 30.0
    """SIGTERM: seconds in-flight calls and streams get to finish."""
    keys: list[KeySpec] = field(default_factory=list)
    admin_key: str | None = None
    watch: bool = False
    """Reload when the config file changes (polled once a second)."""
    config_path: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "router:"


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"request body over the {limit} byte limit", "invalid_request_error",
        "request_too_large",
    )  # fmt: skip


def _check_types(body: Mapping[str, Any]) -> None:
    for key, types in _TYPES.items():
        value = body.get(key)
        if value is None:
            continue
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = (
                "a number"
                if types == _NUMBER
                else " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            )
            raise GatewayError(
                400, f"'{key}' must be {want}", "invalid_request_error", "invalid_type", key
            )


def _header_text(text: str) -> str:
    text = _HEADER_SAFE.sub("?", text)
    return text if len(text) <= _MAX_REASON_HEADER else text[: _MAX_REASON_HEADER - 3] + "..."


def decision_headers(decision: Decision | None) -> dict[str, str]:
    """The decision as response headers (ASCII, bounded; never a key or a message)."""
    if decision is None:
        return {}
    return {
        "x-router-group": _header_text(decision.group),
        "x-router-deployment": _header_text(decision.deployment or ""),
        "x-router-attempts": str(len(decision.attempts)),
        "x-router-reason": _header_text(decision.reason),
        "x-router-cost": f"{decision.cost_usd:.8f}",
    }


# Trace and span ids need to be unique, not secret: a PRNG, as OpenTelemetry's own
# RandomIdGenerator does, instead of a getrandom() syscall per id.
_bits = random.getrandbits


class _Trace:
    """W3C trace context of one request: the caller's parent and the gateway's own span id."""

    __slots__ = ("flags", "parent", "span_id", "trace_id")

    def __init__(self, header: str | None) -> None:
        match = _TRACEPARENT.fullmatch(header.strip().lower()) if header else None
        if match and match[1] != "0" * 32 and match[2] != "0" * 16:
            self.trace_id, self.parent, self.flags = match[1], match[2], match[3]
        else:
            self.trace_id, self.parent, self.flags = f"{_bits(128) or 1:032x}", None, "01"
        self.span_id = f"{_bits(64) or 1:016x}"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


class Dialect:
    """What differs between the wire formats a chat call can come in: OpenAI's chat
    completions (this class) and Anthropic's messages (`_AnthropicDialect`)."""

    route = "chat"
    span = "POST /v1/chat/completions"

    def parse(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
        """``(messages, kwargs, stream)`` of a request body without its ``model``."""
        messages = body.pop("messages", None)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise GatewayError(
                400, "'messages' is required and must be an array of objects",
                "invalid_request_error", "invalid_type", "messages",
            )  # fmt: skip
        _check_types(body)
        return messages, body, bool(body.pop("stream", False))

    def respond(self, response: Any, model: str) -> bytes:
        return _response_json(response)

    def events(
        self, stream: Any, on_end: Callable[[BaseException | None], None], usage: bool, model: str
    ) -> AsyncIterator[bytes]:
        return sse_body(stream, on_end=on_end, usage=usage)

    def error_json(self, error: GatewayError) -> dict[str, Any]:
        return error_body(error.message, error.type, error.code, error.param)


class _AnthropicDialect(Dialect):
    route = "messages"
    span = "POST /v1/messages"

    def parse(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
        messages, kwargs, stream = _anthropic.to_openai(body)
        _check_types(kwargs)
        return messages, kwargs, stream

    def respond(self, response: Any, model: str) -> bytes:
        return _anthropic.response_json(response, model)

    def events(
        self, stream: Any, on_end: Callable[[BaseException | None], None], usage: bool, model: str
    ) -> AsyncIterator[bytes]:
        pieces = _anthropic.events(stream, model, trailer)
        return guarded(stream, pieces, on_end, self._error_event)

    def error_json(self, error: GatewayError) -> dict[str, Any]:
        return _anthropic.error_json(error)

    def _error_event(self, exc: BaseException) -> bytes:
        body = json.dumps(self.error_json(from_exception(exc)), separators=(",", ":"))
        return b"event: error\ndata: " + body.encode() + b"\n\n"


OPENAI = Dialect()
ANTHROPIC = _AnthropicDialect()


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
        self._reload_lock = asyncio.Lock()
        self._tracing = tracing or tracer_provider is not None
        self._tracer_provider = tracer_provider
        self._tracer: Any = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/dashboard", self.dashboard, methods=["GET"]),
                Route("/dashboard.json", self.dashboard_json, methods=["GET"]),
                Route("/admin/reload", self.admin_reload, methods=["POST"]),
            ],
            exception_handlers={404: self._not_found, 405: self._not_allowed},
        )

    # -- helpers ---------------------------------------------------------------------------

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return self._error(GatewayError(404, f"no route {request.url.path}", "not_found_error"))

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        return self._error(GatewayError(405, f"{request.method} not allowed on {request.url.path}"))

    def _error(
        self,
        error: GatewayError,
        extra: Mapping[str, str] | None = None,
        route: str = "other",
        dialect: Dialect | None = None,
    ) -> JSONResponse:
        body = (dialect or OPENAI).error_json(error)
        reasons = getattr(error, "reasons", None)
        if reasons:
            body["error"]["reasons"] = reasons
        headers = dict(error.headers)
        if extra:
            headers.update(extra)
        self.observer.requests.add((("route", route), ("status", str(error.status))))
        return JSONResponse(body, status_code=error.status, headers=headers)

    async def _body(self, request: Request) -> dict[str, Any]:
        limit = self.options.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)
        raw = await self._read(request, limit)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GatewayError(
                400, f"malformed JSON body: {exc}", "invalid_request_error", "invalid_json"
            ) from None
        if not isinstance(body, dict):
            raise GatewayError(400, "the body must be a JSON object", "invalid_request_error")
        return body

    async def _read(self, request: Request, limit: int) -> bytes:
        """The whole body, within `limit` bytes and ``body_timeout`` seconds."""
        receive = request.receive
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.options.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise ClientDisconnect()
                    chunk = message.get("body", b"")
                    if not chunks and not message.get("more_body", False):
                        if len(chunk) > limit:  # the usual case: the body came whole
                            raise _too_large(limit)
                        return bytes(chunk)
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise GatewayError(
                408,
                f"request body not received within {self.options.body_timeout:g} s",
                "invalid_request_error",
                "request_timeout",
            ) from None

    def _check_model(self, body: Mapping[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(
                400, "'model' is required and must be a string", "invalid_request_error",
                "invalid_type", "model",
            )  # fmt: skip
        config = self.router.config
        if config.is_routable(model) or (model == config.router.auto_model and config.routes):
            return model
        import difflib

        known = [*config.group_names(), *(d.name for d in config.deployments)]
        close = difflib.get_close_matches(model, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise GatewayError(
            404,
            f"The model '{model}' does not exist: no group or deployment of this gateway{hint}",
            "invalid_request_error",
            "model_not_found",
            "model",
        )

    def _admit(self) -> None:
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

    def _paused_for(self, group: str) -> float | None:
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

    def _span(self, trace: _Trace, name: str) -> Any:
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

    async def _until_disconnect(self, request: Request) -> None:
        receive = request.receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    async def _race_disconnect(self, request: Request, call: Awaitable[Any]) -> Any:
        """Run `call`, cancelling it at once if the client disconnects first."""
        task = asyncio.ensure_future(call)
        watcher = asyncio.ensure_future(self._until_disconnect(request))
        try:
            await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise ClientDisconnect()
        return task.result()

    # -- the OpenAI API --------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        return await self._complete(request, OPENAI)

    async def messages(self, request: Request) -> Response:
        return await self._complete(request, ANTHROPIC)

    async def _complete(self, request: Request, dialect: Dialect) -> Response:
        trace = _Trace(request.headers.get("traceparent"))
        span = None
        token = None
        route = dialect.route
        try:
            key = self.keys.authenticate(Keys.presented(request.headers))
            self._admit()
            body = await self._body(request)
            model = self._check_model(body)
            del body["model"]
            messages, body, stream = dialect.parse(body)
            await self.keys.admit(key)
        except GatewayError as error:
            return self._error(error, {"traceparent": trace.header()}, route, dialect)
        except ClientDisconnect:
            return Response(status_code=499)
        span = self._span(trace, dialect.span)
        if span is not None:
            from opentelemetry import context as otel_context
            from opentelemetry import trace as otel_trace

            token = otel_context.attach(otel_trace.set_span_in_context(span))
        self.in_flight += 1
        router = self.router
        try:
            if stream:
                return await self._stream(
                    request, router, model, messages, body, key, trace, span, dialect
                )
            try:
                response = await self._race_disconnect(
                    request, router.acompletion(model, messages, **body)
                )
            except ClientDisconnect:
                self.observer.requests.add((("route", route), ("status", "499")))
                return Response(status_code=499)
            except Exception as exc:
                return self._call_failed(exc, model, trace, dialect)
            decision = get_decision(response)
            if decision is not None:
                await self.keys.spend(key, decision.cost_usd)
            headers = decision_headers(decision)
            headers["traceparent"] = trace.header()
            self.observer.requests.add((("route", route), ("status", "200")))
            return Response(
                dialect.respond(response, model), media_type="application/json", headers=headers
            )
        finally:
            if not stream:
                self.in_flight -= 1
            if token is not None:
                from opentelemetry import context as otel_context

                otel_context.detach(token)
            if span is not None and not stream:
                span.end()

    def _call_failed(
        self, exc: BaseException, model: str, trace: _Trace, dialect: Dialect | None = None
    ) -> JSONResponse:
        error = from_exception(exc, self._paused_for(model))
        headers = decision_headers(get_decision(exc))
        headers["traceparent"] = trace.header()
        route = dialect.route if dialect is not None else "embeddings"
        return self._error(error, headers, route, dialect)

    async def _stream(
        self,
        request: Request,
        router: Router,
        model: str,
        messages: list[dict[str, Any]],
        body: dict[str, Any],
        key: KeySpec | None,
        trace: _Trace,
        span: Any,
        dialect: Dialect,
    ) -> Response:
        ended = False

        def on_end(error: BaseException | None) -> None:
            nonlocal ended
            if not ended:
                ended = True
                self.in_flight -= 1
                if span is not None:
                    span.end()
                decision = getattr(stream, "decision", None)
                if key is not None and isinstance(decision, Decision):
                    task = asyncio.ensure_future(self.keys.spend(key, decision.cost_usd))
                    task.add_done_callback(_quiet)

        # Usage is always asked of the provider (a stream's cost, and so a key's budget,
        # comes from it); the caller gets it only if they asked (see router._serve._sse).
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        if not wants_usage:
            body["stream_options"] = {**(options or {}), "include_usage": True}
        try:
            stream = await self._race_disconnect(
                request, router.acompletion(model, messages, stream=True, **body)
            )
        except ClientDisconnect:
            ended = True
            self.in_flight -= 1
            if span is not None:
                span.end()
            self.observer.requests.add((("route", dialect.route), ("status", "499")))
            return Response(status_code=499)
        except Exception as exc:
            ended = True
            self.in_flight -= 1
            if span is not None:
                span.end()
            return self._call_failed(exc, model, trace, dialect)
        headers = decision_headers(getattr(stream, "decision", None))
        headers.pop("x-router-cost", None)  # known at the end: in the trailer (see _sse)
        headers["traceparent"] = trace.header()
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        self.observer.requests.add((("route", dialect.route), ("status", "200")))
        body_iter = dialect.events(stream, on_end, wants_usage, model)
        if span is not None:
            body_iter = _in_span(body_iter, span)
        return StreamingResponse(body_iter, media_type="text/event-stream", headers=headers)

    async def embeddings(self, request: Request) -> Response:
        trace = _Trace(request.headers.get("traceparent"))
        router = self.router
        call = getattr(router, "aembedding", None)
        try:
            key = self.keys.authenticate(Keys.presented(request.headers))
            self._admit()
            body = await self._body(request)
            model = self._check_model(body)
            if call is None:
                raise GatewayError(
                    501, "this router does not route embeddings yet", "invalid_request_error",
                    "not_implemented",
                )  # fmt: skip
            inputs = body.get("input")
            if not isinstance(inputs, str | list):
                raise GatewayError(
                    400, "'input' is required: a string or an array", "invalid_request_error",
                    "invalid_type", "input",
                )  # fmt: skip
            await self.keys.admit(key)
        except GatewayError as error:
            return self._error(error, {"traceparent": trace.header()}, "embeddings")
        except ClientDisconnect:
            return Response(status_code=499)
        del body["model"]
        self.in_flight += 1
        try:
            response = await self._race_disconnect(request, call(model=model, **body))
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception as exc:
            return self._call_failed(exc, model, trace)
        finally:
            self.in_flight -= 1
        decision = get_decision(response)
        if decision is not None:
            await self.keys.spend(key, decision.cost_usd)
        headers = decision_headers(decision)
        headers["traceparent"] = trace.header()
        self.observer.requests.add((("route", "embeddings"), ("status", "200")))
        return Response(_response_json(response), media_type="application/json", headers=headers)

    async def models(self, request: Request) -> Response:
        try:
            self.keys.authenticate(Keys.presented(request.headers))
        except GatewayError as error:
            return self._error(error, route="models")
        config = self.router.config
        names = list(dict.fromkeys([*config.group_names(), *(d.name for d in config.deployments)]))
        if config.routes:
            names.insert(0, config.router.auto_model)
        created = int(self.loaded_at)
        data = [
            {"id": n, "object": "model", "created": created, "owned_by": "router"} for n in names
        ]
        return JSONResponse({"object": "list", "data": data})

    # -- operations --------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        # The pid tells apart the workers of ``--workers N`` (one socket, N processes).
        return JSONResponse({"status": "ok", "pid": os.getpid(), "in_flight": self.in_flight})

    async def readyz(self, request: Request) -> Response:
        # Ready means: a config is loaded and we are not draining. Redis or a provider being
        # down is not a reason to drop this replica from the load balancer: every replica
        # would see the same thing, and the router already fails over (or answers 503).
        if self.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        config = self.router.config
        state = self.router.state
        return JSONResponse(
            {
                "status": "ready",
                "config": config.source,
                "deployments": len(config.deployments),
                "groups": len(config.group_names()),
                "state_degraded": bool(getattr(state, "degraded", False)),
            }
        )

    async def metrics(self, request: Request) -> Response:
        gauges = {
            "router_gateway_in_flight": float(self.in_flight),
            "router_gateway_draining": 1.0 if self.draining else 0.0,
            "router_gateway_config_loaded_timestamp_seconds": self.loaded_at,
        }
        text = self.observer.render(self.router.health(), gauges)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def dashboard(self, request: Request) -> Response:
        from router._serve._dashboard import page

        return HTMLResponse(page())

    async def dashboard_json(self, request: Request) -> Response:
        from router._serve._dashboard import snapshot

        if self.keys.required or self.keys.has_admin:
            presented = Keys.presented(request.headers)
            if not self.keys.is_admin(presented):
                try:
                    self.keys.authenticate(presented)
                except GatewayError as error:
                    return self._error(error, route="dashboard")

        return JSONResponse(snapshot(self))

    async def admin_reload(self, request: Request) -> Response:
        presented = Keys.presented(request.headers)
        allowed = self.keys.is_admin(presented)
        if not self.keys.has_admin and not self.keys.required:
            # An open gateway (no keys at all): reload only from this machine.
            client = request.client.host if request.client else ""
            allowed = client in ("127.0.0.1", "::1", "localhost")
        if not allowed:
            return self._error(
                GatewayError(401, "admin key required", "authentication_error", "invalid_api_key"),
                route="admin",
            )
        result = await self.reload("admin")
        return JSONResponse(result, status_code=200 if result["ok"] else 422)

    async def reload(self, why: str) -> dict[str, Any]:
        """Validate the config file and swap it in (see router._reload); never raises."""
        from router._config import ConfigError

        async with self._reload_lock:
            path = self.options.config_path or self.router.config.source
            try:
                from router._loading import load_config

                config = load_config(path)
                options = options_for(config, path)  # keys resolvable, else refused
                diff: ConfigDiff = self.router.reload(config)
                self._apply_options(options)
            except ConfigError as exc:
                self.observer.reloads.add((("result", "invalid"),))
                for problem in exc.problems:
                    _log.error("reload (%s) refused: %s", why, problem)
                print(f"router serve: reload ({why}) refused; the old config stays:", flush=True)
                for problem in exc.problems:
                    print(f"  {problem}", flush=True)
                result: dict[str, Any] = {"ok": False, "problems": exc.problems}
            except Exception as exc:  # never take the gateway down over a reload
                self.observer.reloads.add((("result", "error"),))
                _log.exception("reload (%s) failed", why)
                result = {"ok": False, "problems": [f"{type(exc).__name__}: {exc}"]}
            else:
                self.observer.reloads.add((("result", "ok"),))
                self.loaded_at = time.time()
                print(f"router serve: reloaded {path} ({why}):", flush=True)
                for line in diff.lines():
                    print(f"  {line}", flush=True)
                result = {"ok": True, "diff": diff.as_dict()}
            result["at"] = time.time()
            result["trigger"] = why
            self.last_reload = result
            return result

    def _apply_options(self, options: ServeOptions) -> None:
        """Swap in the edge's options of a reloaded config (keys, limits)."""
        old = self.keys
        options.watch = self.options.watch  # the watcher is already running (or not)
        self.options = options
        self.keys = Keys(
            options.keys,
            options.admin_key,
            redis_url=options.redis_url,
            prefix=options.redis_prefix,
        )
        self.keys.adopt(old)

    async def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the config file's mtime or size changes (polled; runs forever)."""
        path = self.options.config_path or self.router.config.source

        def stamp() -> tuple[float, int] | None:
            try:
                info = os.stat(path)
            except OSError:
                return None
            return (info.st_mtime, info.st_size)

        seen = stamp()
        while True:
            await asyncio.sleep(interval)
            now = stamp()
            if now is not None and now != seen:
                seen = now
                await self.reload("file change")


async def _in_span(body: AsyncIterator[bytes], span: Any) -> AsyncIterator[bytes]:
    # The response body runs in its own task: make the gateway's span current there too, so
    # the router's call span (written when the stream ends) is its child.
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace

    token = otel_context.attach(otel_trace.set_span_in_context(span))
    try:
        async for piece in body:
            yield piece
    finally:
        otel_context.detach(token)


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _response_json(response: Any) -> bytes:
    dump = getattr(response, "model_dump_json", None)
    if dump is not None:
        return str(dump()).encode()
    return json.dumps(response).encode()


Handler = Callable[[Request], Awaitable[Response]]


def options_for(config: Config, config_path: str | None) -> ServeOptions:
    """The edge's options from the config's ``[gateway]`` table.

    Raises `ConfigError` when a key's env reference names an unset variable: a gateway told to
    require keys must not start (or reload) open.
    """
    from router._config import ConfigError
    from router._serve._keys import KeySpec

    settings = config.gateway
    problems = settings.unset()
    if problems:
        raise ConfigError([f"{config.source}: {p}" for p in problems])
    options = ServeOptions(
        config_path=config_path,
        max_body_bytes=settings.max_body_bytes,
        max_concurrency=settings.max_concurrency,
        body_timeout=settings.body_timeout,
        drain_timeout=settings.drain_timeout,
        watch=settings.watch,
        admin_key=settings.resolve_admin_key(),
        keys=[KeySpec(k.name, k.resolve() or "", k.rpm, k.daily_budget_usd) for k in settings.keys],
    )
    if config.state.backend == "redis":
        options.redis_url = config.state.resolve_url()
        options.redis_prefix = config.state.key_prefix
    return options
