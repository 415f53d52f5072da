"""The gateway's ASGI plumbing (router._serve._asgi): dispatch, error answers, SSE sender."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.requests import ClientDisconnect, Request

from router._serve._api import race_disconnect
from router._serve._app import Gateway
from router._serve._asgi import Dispatch, EventStream

from .conftest import HTTP, GatewayProcess

HI = [{"role": "user", "content": "hi"}]


def test_unknown_paths_and_methods_get_openai_errors(gateway: GatewayProcess) -> None:
    missing = HTTP.get(f"{gateway.url}/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert "/v1/nothing-here" in missing.json()["error"]["message"]
    wrong = HTTP.get(f"{gateway.base_url}/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["message"] == "GET not allowed on /v1/chat/completions"
    head = HTTP.head(f"{gateway.url}/healthz")
    assert head.status_code == 200 and head.content == b""
    assert HTTP.get(f"{gateway.url}/healthz").json()["status"] == "ok"


class _BrokenRouter:
    """A router whose config cannot be read: every route that needs it hits a bug."""

    @property
    def config(self) -> Any:
        raise RuntimeError("boom")


async def test_a_bug_is_an_openai_500_and_the_gateway_keeps_serving() -> None:
    gateway = Gateway(_BrokenRouter())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        r = await client.get("/readyz")
        assert r.status_code == 500
        assert r.json()["error"] == {
            "message": "internal error in the gateway", "type": "server_error",
            "param": None, "code": "internal_error",
        }  # fmt: skip
        assert "boom" not in r.text
        assert (await client.get("/healthz")).status_code == 200


async def test_lifespan_is_answered() -> None:
    app = Dispatch({}, lambda request, status: None, lambda: None)  # type: ignore[arg-type,return-value]
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await asyncio.wait_for(app({"type": "lifespan"}, receive, send), 5)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


class _Body:
    """An SSE body that yields `n` pieces, then waits; records whether it was closed."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False
        self.sent = 0

    async def pieces(self) -> AsyncIterator[bytes]:
        try:
            for i in range(self.n):
                self.sent += 1
                yield f"data: {i}\n\n".encode()
            await asyncio.Event().wait()  # upstream stalls
        finally:
            self.closed = True


async def _run(body: _Body, gone: asyncio.Event) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)
        if sum(m["type"] == "http.response.body" for m in sent) == body.n:
            gone.set()  # the client goes away once it has every piece so far

    stream = EventStream(body.pieces(), {"x-router-deployment": "a"})
    await asyncio.wait_for(stream({"type": "http"}, receive, send), 5)
    return sent


@pytest.mark.parametrize("pieces", [1, 3])
async def test_a_client_gone_mid_stream_closes_the_body_at_once(pieces: int) -> None:
    body = _Body(pieces)
    sent = await _run(body, asyncio.Event())  # returns (does not hang on the stalled upstream)
    assert body.closed and body.sent == pieces
    start = sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (b"x-router-deployment", b"a") in start["headers"]
    # No end of body was sent: the connection is gone.
    assert all(m.get("more_body") for m in sent[1:])


async def test_a_server_cancel_still_cancels_and_closes_the_body() -> None:
    body = _Body(1)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError

    async def send(message: Any) -> None:
        return None

    stream = EventStream(body.pieces(), {})
    task = asyncio.ensure_future(stream({"type": "http"}, receive, send))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.closed


async def test_a_finished_stream_ends_the_body() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: [DONE]\n\n"

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError

    async def send(message: Any) -> None:
        sent.append(message)

    await EventStream(pieces(), {})({"type": "http"}, receive, send)
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: [DONE]\n\n", b""]
    assert sent[-1]["more_body"] is False


class _Call:
    """An upstream call that waits until `release` is set; records whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.cancelled = False

    async def run(self) -> str:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "answer"


def _request(gone: asyncio.Event) -> Request:
    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def test_a_client_gone_mid_call_cancels_it_at_once() -> None:
    call, gone = _Call(), asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, gone.set)
    with pytest.raises(ClientDisconnect):
        await asyncio.wait_for(race_disconnect(_request(gone), call.run()), 5)
    assert call.cancelled
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the task itself is not left cancelling
    await asyncio.sleep(0)  # and no cancellation is pending on it


async def test_a_finished_call_returns_and_leaves_no_watcher() -> None:
    call, gone = _Call(), asyncio.Event()
    call.release.set()
    before = len(asyncio.all_tasks())
    assert await race_disconnect(_request(gone), call.run()) == "answer"
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before and not call.cancelled
    gone.set()  # a disconnect after the answer cancels nothing
    await asyncio.sleep(0.01)


async def test_a_server_cancel_mid_call_stays_a_cancellation() -> None:
    call, gone = _Call(), asyncio.Event()
    task = asyncio.ensure_future(race_disconnect(_request(gone), call.run()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancelled
