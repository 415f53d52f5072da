"""The wire formats a chat call can come in: OpenAI's chat completions and Anthropic's messages.

A `Dialect` parses a request body into ``(messages, kwargs, stream)`` for `Router.acompletion`
and writes the answer, the stream's events and errors back in its own shape; the call itself
(router._serve._api) is the same for both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from router._serve import _anthropic
from router._serve._errors import GatewayError, error_body, from_exception
from router._serve._request import check_types
from router._serve._sse import guarded, sse_body, trailer

__all__ = ["ANTHROPIC", "OPENAI", "Dialect", "response_json"]


def response_json(response: Any) -> bytes:
    """A litellm response (or a plain dict) as JSON bytes."""
    dump = getattr(response, "model_dump_json", None)
    if dump is not None:
        return str(dump()).encode()
    return json.dumps(response).encode()


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
        check_types(body)
        return messages, body, bool(body.pop("stream", False))

    def respond(self, response: Any, model: str) -> bytes:
        return response_json(response)

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
        check_types(kwargs)
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
