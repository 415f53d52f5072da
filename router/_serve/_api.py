"""The call routes: ``POST /v1/chat/completions`` and ``/v1/messages`` (plain and SSE),
``POST /v1/embeddings`` and ``GET /v1/models``.

Each hands the request body to the router as is (``model``, ``messages``, ``stream`` and every
other parameter) and answers with the response, the stream or the error in the dialect's shape,
with the decision in the headers and the trace context in and out. A client that goes away
cancels its upstream call at once (`race_disconnect`; a stream's sending is cancelled by the
SSE sender, router._serve._asgi).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from router._decision import Decision, get_decision
from router._serve._asgi import Answer, EventStream, JSONBytes, json_bytes
from router._serve._dialect import ANTHROPIC, OPENAI, Dialect, response_json
from router._serve._errors import GatewayError, from_exception
from router._serve._headers import Trace, decision_headers
from router._serve._keys import Keys, KeySpec
from router._serve._request import check_model, read_json

if TYPE_CHECKING:
    from router._router import Router
    from router._serve._app import Gateway

__all__ = ["chat", "embeddings", "messages", "models", "race_disconnect"]


async def chat(gw: Gateway, request: Request) -> Answer:
    return await _complete(gw, request, OPENAI)


async def messages(gw: Gateway, request: Request) -> Answer:
    return await _complete(gw, request, ANTHROPIC)


async def _until_disconnect(request: Request) -> None:
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def race_disconnect(request: Request, call: Awaitable[Any]) -> Any:
    """Await `call` in this task, cancelling it at once if the client disconnects first
    (raising `ClientDisconnect` then).

    The call runs in the request's own task, with one small watcher task that cancels it when
    ``http.disconnect`` arrives: no second task for the call and no ``asyncio.wait`` per
    request. A cancellation that is not the client's (the server stopping) propagates as is.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _until_disconnect(request)
        gone = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        # While the watcher lives, this task waits only inside `call`: a cancel the watcher
        # asks for is thrown in there (and closes the upstream attempt), never later.
        return await call
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise ClientDisconnect() from None
    finally:
        watcher.cancel()


async def _body(gw: Gateway, request: Request) -> dict[str, Any]:
    options = gw.options
    return await read_json(request, options.max_body_bytes, options.body_timeout)


async def _complete(gw: Gateway, request: Request, dialect: Dialect) -> Answer:
    trace = Trace(request.headers.get("traceparent"))
    span = None
    token = None
    route = dialect.route
    try:
        key = gw.keys.authenticate(Keys.presented(request.headers))
        gw.admit()
        body = await _body(gw, request)
        model = check_model(gw.router.config, body)
        del body["model"]
        messages, body, stream = dialect.parse(body)
        await gw.keys.admit(key)
    except GatewayError as error:
        return gw.error(error, {"traceparent": trace.header()}, route, dialect)
    except ClientDisconnect:
        return Response(status_code=499)
    span = gw.span(trace, dialect.span)
    if span is not None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace as otel_trace

        token = otel_context.attach(otel_trace.set_span_in_context(span))
    gw.in_flight += 1
    router = gw.router
    try:
        if stream:
            return await _stream(gw, request, router, model, messages, body, key, trace, span,
                                 dialect)  # fmt: skip
        try:
            response = await race_disconnect(request, router.acompletion(model, messages, **body))
        except ClientDisconnect:
            gw.observer.requests.add((("route", route), ("status", "499")))
            return Response(status_code=499)
        except Exception as exc:
            return _call_failed(gw, exc, model, trace, dialect)
        decision = get_decision(response)
        if decision is not None:
            await gw.keys.spend(key, decision.cost_usd)
        headers = decision_headers(decision)
        headers["traceparent"] = trace.header()
        gw.observer.requests.add((("route", route), ("status", "200")))
        return JSONBytes(dialect.respond(response, model), 200, headers)
    finally:
        if not stream:
            gw.in_flight -= 1
        if token is not None:
            from opentelemetry import context as otel_context

            otel_context.detach(token)
        if span is not None and not stream:
            span.end()


def _call_failed(
    gw: Gateway, exc: BaseException, model: str, trace: Trace, dialect: Dialect | None = None
) -> JSONBytes:
    error = from_exception(exc, gw.paused_for(model))
    headers = decision_headers(get_decision(exc))
    headers["traceparent"] = trace.header()
    route = dialect.route if dialect is not None else "embeddings"
    return gw.error(error, headers, route, dialect)


async def _stream(
    gw: Gateway,
    request: Request,
    router: Router,
    model: str,
    messages: list[dict[str, Any]],
    body: dict[str, Any],
    key: KeySpec | None,
    trace: Trace,
    span: Any,
    dialect: Dialect,
) -> Answer:
    ended = False

    def on_end(error: BaseException | None) -> None:
        nonlocal ended
        if not ended:
            ended = True
            gw.in_flight -= 1
            if span is not None:
                span.end()
            decision = getattr(stream, "decision", None)
            if key is not None and isinstance(decision, Decision):
                task = asyncio.ensure_future(gw.keys.spend(key, decision.cost_usd))
                task.add_done_callback(_quiet)

    # Usage is always asked of the provider (a stream's cost, and so a key's budget,
    # comes from it); the caller gets it only if they asked (see router._serve._sse).
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    if not wants_usage:
        body["stream_options"] = {**(options or {}), "include_usage": True}
    try:
        stream = await race_disconnect(
            request, router.acompletion(model, messages, stream=True, **body)
        )
    except ClientDisconnect:
        ended = True
        gw.in_flight -= 1
        if span is not None:
            span.end()
        gw.observer.requests.add((("route", dialect.route), ("status", "499")))
        return Response(status_code=499)
    except Exception as exc:
        ended = True
        gw.in_flight -= 1
        if span is not None:
            span.end()
        return _call_failed(gw, exc, model, trace, dialect)
    headers = decision_headers(getattr(stream, "decision", None))
    headers.pop("x-router-cost", None)  # known at the end: in the trailer (see _sse)
    headers["traceparent"] = trace.header()
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    gw.observer.requests.add((("route", dialect.route), ("status", "200")))
    body_iter = dialect.events(stream, on_end, wants_usage, model)
    if span is not None:
        body_iter = _in_span(body_iter, span)
    return EventStream(body_iter, headers)


async def embeddings(gw: Gateway, request: Request) -> Answer:
    trace = Trace(request.headers.get("traceparent"))
    router = gw.router
    call = getattr(router, "aembedding", None)
    try:
        key = gw.keys.authenticate(Keys.presented(request.headers))
        gw.admit()
        body = await _body(gw, request)
        model = check_model(router.config, body)
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
        await gw.keys.admit(key)
    except GatewayError as error:
        return gw.error(error, {"traceparent": trace.header()}, "embeddings")
    except ClientDisconnect:
        return Response(status_code=499)
    del body["model"]
    gw.in_flight += 1
    try:
        response = await race_disconnect(request, call(model=model, **body))
    except ClientDisconnect:
        return Response(status_code=499)
    except Exception as exc:
        return _call_failed(gw, exc, model, trace)
    finally:
        gw.in_flight -= 1
    decision = get_decision(response)
    if decision is not None:
        await gw.keys.spend(key, decision.cost_usd)
    headers = decision_headers(decision)
    headers["traceparent"] = trace.header()
    gw.observer.requests.add((("route", "embeddings"), ("status", "200")))
    return JSONBytes(response_json(response), 200, headers)


async def models(gw: Gateway, request: Request) -> Answer:
    try:
        gw.keys.authenticate(Keys.presented(request.headers))
    except GatewayError as error:
        return gw.error(error, route="models")
    config = gw.router.config
    names = list(dict.fromkeys([*config.group_names(), *(d.name for d in config.deployments)]))
    if config.routes:
        names.insert(0, config.router.auto_model)
    created = int(gw.loaded_at)
    data = [{"id": n, "object": "model", "created": created, "owned_by": "router"} for n in names]
    return JSONBytes(json_bytes({"object": "list", "data": data}))


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
        close = getattr(body, "aclose", None)
        if close is not None:  # closed early (the client went away): close the body too
            await close()


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
