"""Server-sent events for a routed stream: chunks, the decision trailer, then ``[DONE]``; or an
error event and no ``[DONE]``.

The router commits a stream to the deployment that sent its first chunk; when that stream breaks
later (`StreamInterrupted`: a cut connection, a stall past the deadline, an end without any
``finish_reason``), the client must not take the truncated text as a complete answer. The body
then ends with one ``event: error`` / ``data: {"error": {...}}`` event and the connection
closes without ``data: [DONE]``: the OpenAI SDKs raise an ``APIError`` on such an event,
and a client reading raw SSE sees no ``[DONE]``.

**A stream's cost.** Response headers leave before the first chunk, when a stream's cost is not
known (it is priced from the usage the provider sends at the end). So a stream's headers carry
no ``x-router-cost``; the cost travels at the end, in two places:

- the **trailer**: SSE comment lines just before ``data: [DONE]``, one per decision field,
  spelled like the plain call's headers (``: x-router-cost: 0.00000420``, ``:
  x-router-deployment: a``, ``: x-router-attempts: 1``). Comment lines are ignored by every
  SSE parser (the SDKs included), so no client breaks on them; a client reading raw SSE
  (curl, a proxy) parses them like headers. HTTP trailers would be the textbook place, but
  uvicorn does not send them and no mainstream client (browsers' fetch, httpx, the OpenAI
  SDKs) exposes them;
- the **usage chunk**, when the caller asked for it (``stream_options.include_usage``):
  ``usage.cost`` in USD, as OpenRouter does (the SDKs keep unknown fields:
  ``chunk.usage.cost`` / ``chunk.usage.model_extra["cost"]``). That chunk is the stream's
  last, so holding it until the stream has ended delays nothing.

The gateway always asks the provider for usage (a key's daily budget must see what a stream
spent); when the caller did not ask for it, the usage-only chunk and any ``usage`` field are
left out of what the caller receives, as OpenAI itself does.

A client that disconnects cancels the generator (the SSE sender, router._serve._asgi, cancels
its task when it hears ``http.disconnect``, and closes the body); ``finally`` closes the
upstream stream at once, which releases the provider connection and the attempt's in-flight
slot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from router._decision import Decision
from router._fields import field
from router._serve._errors import error_body, from_exception

__all__ = ["DONE", "error_event", "guarded", "openai_events", "sse_body", "trailer"]

DONE = b"data: [DONE]\n\n"
_CLOSE_GRACE_S = 5.0
_NO_USAGE = {"usage"}


def chunk_json(chunk: Any, usage: bool = True) -> bytes:
    """A litellm stream chunk as OpenAI's JSON (nulls dropped, as OpenAI itself does)."""
    dump = getattr(chunk, "model_dump_json", None)
    if dump is not None:
        text = dump(exclude_none=True) if usage else dump(exclude_none=True, exclude=_NO_USAGE)
        return text.encode() if isinstance(text, str) else bytes(text)
    if not usage and isinstance(chunk, dict) and "usage" in chunk:
        chunk = {k: v for k, v in chunk.items() if k != "usage"}
    return json.dumps(chunk, separators=(",", ":")).encode()


def _with_cost(chunk: Any, cost: float) -> bytes:
    """The usage chunk's JSON with ``usage.cost`` (USD) added."""
    dump = getattr(chunk, "model_dump", None)
    data: Any = dump(exclude_none=True) if dump is not None else dict(chunk)
    usage = data.get("usage")
    if isinstance(usage, dict):
        data["usage"] = {**usage, "cost": round(cost, 12)}
    return json.dumps(data, separators=(",", ":")).encode()


def trailer(decision: Decision | None) -> bytes:
    """The decision as SSE comment lines (see the module docstring); empty when unknown."""
    if decision is None:
        return b""
    lines = (
        f": x-router-cost: {decision.cost_usd:.8f}\n"
        f": x-router-deployment: {_comment_safe(decision.deployment or '')}\n"
        f": x-router-attempts: {len(decision.attempts)}\n\n"
    )
    return lines.encode()


def _comment_safe(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _usage_only(chunk: Any) -> bool:
    return not field(chunk, "choices") and field(chunk, "usage") is not None


def sse_body(
    stream: Any,
    *,
    on_end: Callable[[BaseException | None], None],
    usage: bool = True,
) -> AsyncIterator[bytes]:
    """The OpenAI SSE body of `stream` (see the module docstring). `on_end` runs exactly once.

    `usage`: whether the caller asked for usage (``stream_options.include_usage``).
    """
    return guarded(stream, openai_events(stream, usage), on_end, error_event)


def error_event(exc: BaseException) -> bytes:
    """The OpenAI SDKs' error event for a stream that broke: ``event: error``, OpenAI's body."""
    mapped = from_exception(exc)
    text = json.dumps(error_body(mapped.message, mapped.type, mapped.code), separators=(",", ":"))
    return b"event: error\ndata: " + text.encode() + b"\n\n"


async def openai_events(stream: Any, usage: bool) -> AsyncIterator[bytes]:
    """`stream`'s chunks as OpenAI ``data:`` events, the trailer, then ``[DONE]``."""
    held: Any = None
    async for chunk in stream:
        if held is not None:  # a usage chunk that was not the last after all
            yield b"data: " + chunk_json(held) + b"\n\n"
            held = None
        if _usage_only(chunk):
            if usage:
                held = chunk
            continue
        yield b"data: " + chunk_json(chunk, usage) + b"\n\n"
    decision = getattr(stream, "decision", None)
    decision = decision if isinstance(decision, Decision) else None
    if held is not None:
        cost = decision.cost_usd if decision is not None else None
        body = chunk_json(held) if cost is None else _with_cost(held, cost)
        yield b"data: " + body + b"\n\n"
    yield trailer(decision) + DONE


async def guarded(
    stream: Any,
    pieces: AsyncIterator[bytes],
    on_end: Callable[[BaseException | None], None],
    error: Callable[[BaseException], bytes],
) -> AsyncIterator[bytes]:
    """`pieces` (the events of `stream` in some protocol), ending with `error`'s event if the
    stream breaks; `stream` is closed (shielded) and `on_end` runs exactly once, whatever
    happens (a client gone away included)."""
    failure: BaseException | None = None
    try:
        async for piece in pieces:
            yield piece
    except Exception as exc:  # the stream broke after its first chunk: say so, no end marker
        failure = exc
        yield error(exc)
    except BaseException as exc:  # cancelled: the client went away
        failure = exc
        raise
    finally:
        close = getattr(stream, "aclose", None)
        try:
            # Shielded: a cancelled scope would cancel the close too, leaving the provider
            # connection (and the attempt's slot) held.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_GRACE_S):
                stop = getattr(pieces, "aclose", None)
                if stop is not None:
                    await stop()
                if close is not None:
                    await close()
        finally:
            on_end(failure)
