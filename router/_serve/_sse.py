"""Server-sent events for a routed stream: chunks, then ``[DONE]``, or an error event and no
``[DONE]``.

The router commits a stream to the deployment that sent its first chunk; when that stream breaks
later (`StreamInterrupted`: a cut connection, a stall past the deadline, an end without any
``finish_reason``), the client must not take the truncated text as a complete answer. The body
then ends with one ``event: error`` / ``data: {"error": {...}}`` event and the connection
closes without ``data: [DONE]``: the OpenAI SDKs raise an ``APIError`` on such an event,
and a client reading raw SSE sees no ``[DONE]``.

A client that disconnects cancels the generator (Starlette cancels the response task when it
hears ``http.disconnect``); ``finally`` closes the upstream stream at once, which releases the
provider connection and the attempt's in-flight slot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from router._serve._errors import error_body, from_exception

__all__ = ["DONE", "sse_body"]

DONE = b"data: [DONE]\n\n"
_CLOSE_GRACE_S = 5.0


def chunk_json(chunk: Any) -> str:
    """A litellm stream chunk as OpenAI's JSON (nulls dropped, as OpenAI itself does)."""
    dump = getattr(chunk, "model_dump_json", None)
    if dump is not None:
        return str(dump(exclude_none=True))
    return json.dumps(chunk, separators=(",", ":"))


async def sse_body(
    stream: Any,
    *,
    on_end: Callable[[BaseException | None], None],
    encode: Callable[[Any], str] = chunk_json,
) -> AsyncIterator[bytes]:
    """The SSE body of `stream` (see the module docstring). `on_end` runs exactly once."""
    error: BaseException | None = None
    try:
        async for chunk in stream:
            yield b"data: " + encode(chunk).encode() + b"\n\n"
        yield DONE
    except Exception as exc:  # the stream broke after its first chunk: say so, no [DONE]
        error = exc
        mapped = from_exception(exc)
        body = error_body(mapped.message, mapped.type, mapped.code)
        yield b"event: error\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
    except BaseException as exc:  # cancelled: the client went away
        error = exc
        raise
    finally:
        close = getattr(stream, "aclose", None)
        try:
            if close is not None:
                # Shielded: a cancelled scope would cancel the close too, leaving the
                # provider connection (and the attempt's slot) held.
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_GRACE_S):
                    await close()
        finally:
            on_end(error)
