"""The gateway's ASGI plumbing: route dispatch, the JSON answer, and the SSE sender.

Raw ASGI rather than Starlette's application stack: the gateway has eleven fixed routes and
its own error shapes, so Starlette's router, middleware stack and exception handlers did
nothing here but cost time on every request; what is kept of Starlette is `Request` (headers,
client address) and its `Response` classes for the operations routes.

**The SSE sender** (`EventStream`) sends a routed stream's events as they come, in the request's
own task. Starlette's `StreamingResponse` runs each stream in an anyio task group of two tasks
(the body and a listener for ``http.disconnect``); here one small watcher task listens, and a
client that goes away cancels the sending task at once: the body's generator (router._serve._sse
`guarded`) then closes the upstream stream, which releases the provider connection and the
attempt's slot, and the stream's accounting runs. A stream that breaks after its first chunk
ends with the error event the body yields, and no ``[DONE]`` (router._serve._sse).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

__all__ = ["Answer", "Dispatch", "EventStream", "JSONBytes", "json_bytes"]

_log = logging.getLogger("router.gateway")

Answer = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI response: `JSONBytes`, `EventStream`, or one of Starlette's `Response` classes."""
Endpoint = Callable[[Request], Awaitable[Answer]]
NotFound = Callable[[Request, int], Answer]
"""The answer to a path no route has (404) or a method it does not take (405)."""

_JSON = b"application/json"


def _raw(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class JSONBytes:
    """An answer whose body is already JSON bytes: status, content type and length, headers."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(
        self, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.body = body
        self.status_code = status
        raw = _raw(headers) if headers else []
        raw.append((b"content-type", _JSON))
        raw.append((b"content-length", str(len(body)).encode()))
        self.headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.headers})  # fmt: skip
        await send({"type": "http.response.body", "body": self.body})


def json_bytes(data: Any) -> bytes:
    """`data` as compact JSON bytes (the gateway's own answers)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class EventStream:
    """An SSE answer: the headers, each piece of `body` as it comes, then the end of the body.

    A client that disconnects cancels the sending (see the module docstring); the body is
    closed whatever happens, so that its ``finally`` (the upstream stream's close and the
    stream's accounting) has run when this returns.
    """

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, body: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        self.body = body
        self.status_code = 200
        raw = _raw(headers)
        raw.append((b"content-type", b"text/event-stream; charset=utf-8"))
        self.headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        body = self.body
        try:
            try:
                await send({"type": "http.response.start", "status": 200,
                            "headers": self.headers})  # fmt: skip
                async for piece in body:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
            finally:
                # No await between the last send and here: a cancel the watcher asked for
                # has surfaced at that send (or in the body) by now.
                watcher.cancel()
        except BaseException as exc:
            client_gone = gone and isinstance(exc, asyncio.CancelledError)
            if client_gone:
                task.uncancel()  # the client went away: nothing more to send
            await _close(body)
            if client_gone:
                return
            raise  # the server itself is stopping, or a bug
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _close(body: AsyncIterator[bytes]) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()


class Dispatch:
    """The ASGI app: ``(path, method)`` to an endpoint; anything unexpected is a 500."""

    def __init__(
        self,
        routes: Mapping[str, Mapping[str, Endpoint]],
        not_found: NotFound,
        server_error: Callable[[], Answer],
    ) -> None:
        table: dict[str, dict[str, Endpoint]] = {}
        for path, methods in routes.items():
            table[path] = dict(methods)
            if "GET" in methods and "HEAD" not in methods:
                table[path]["HEAD"] = methods["GET"]  # the server leaves the body out
        self.routes = table
        self.not_found = not_found
        self.server_error = server_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            await _not_http(kind, receive, send)
            return
        request = Request(scope, receive)
        methods = self.routes.get(scope["path"])
        endpoint = None if methods is None else methods.get(scope["method"])
        response: Answer
        try:
            if endpoint is None:
                response = self.not_found(request, 404 if methods is None else 405)
            else:
                response = await endpoint(request)
        except Exception:  # a bug: answered as OpenAI's 500, and logged
            _log.exception("%s %s failed", scope["method"], scope["path"])
            response = self.server_error()
        await response(scope, receive, send)


async def _not_http(kind: str, receive: Receive, send: Send) -> None:
    if kind == "lifespan":  # nothing to set up or tear down: say so to a server that asks
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1000})
