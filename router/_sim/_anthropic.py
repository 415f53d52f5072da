"""A simulated Anthropic Messages API: ``POST /v1/messages``, plain and streamed (SSE events).

Faithful to what litellm's Anthropic handler reads: ``message`` bodies with ``content`` blocks
and ``stop_reason``; streams of named SSE events (``message_start``, ``content_block_start``,
``ping``, ``content_block_delta``, ``content_block_stop``, ``message_delta``, ``message_stop``);
errors as ``{"type": "error", "error": {"type": ..., "message": ...}}`` with Anthropic's error
types (``rate_limit_error`` with ``retry-after``, ``overloaded_error`` on 529,
``authentication_error``, ``invalid_request_error`` "prompt is too long"), and an in-band
``event: error`` for ``stream_error_after``. Requests need ``x-api-key`` (any value) and
``max_tokens``, as the real API does.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._protocol import ProtocolProvider, Reply, Turn, _Invalid, finish_name

__all__ = ["AnthropicProvider"]

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode()


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class AnthropicProvider(ProtocolProvider):
    """One simulated Anthropic endpoint; ``base_url`` is litellm's ``api_base`` for it."""

    protocol = "anthropic"

    def paths(self) -> list[str]:
        return ["/v1/messages"]

    def parse(self, request: web.Request, body: Any) -> Turn:
        if not request.headers.get("x-api-key") and not request.headers.get("authorization"):
            raise _Invalid("x-api-key header is required", status=401)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid("messages: field required", "messages")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _Invalid("max_tokens: field required", "max_tokens")
        flat: list[dict[str, Any]] = []
        system = body.get("system")
        if isinstance(system, str | list):
            flat.append({"content": system})
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise _Invalid("messages: roles must be 'user' or 'assistant'", "messages")
            flat.append({"content": message.get("content")})
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
            raise _Invalid("temperature: range: 0..1", "temperature")
        model = body.get("model")
        return Turn(
            model=model if isinstance(model, str) else "claude-sim",
            messages=flat,
            stream=body.get("stream") is True,
            max_tokens=0,  # Anthropic counts the prompt against the window, not max_tokens
            temperature=None,
        )

    def error(self, kind: str, b: Behavior, turn: Turn | None, **detail: Any) -> web.Response:
        headers = {"request-id": f"req_sim_{self.name}_{self._seq}"}
        if kind == "outage":
            # Anthropic's "unavailable" is 529 overloaded_error, not a 503.
            status, message = 529, "Overloaded"
        elif kind == "auth":
            status, message = 401, "invalid x-api-key"
        elif kind == "invalid":
            status, message = int(detail.get("status", 400)), str(detail["message"])
        elif kind == "context":
            status = 400
            message = (
                f"prompt is too long: {detail['requested']} tokens > {detail['window']} maximum"
            )
        elif kind == "rate_limit":
            status = 429
            message = (
                "This request would exceed the rate limit for your organization of 50 requests "
                "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
            )
            headers["retry-after"] = str(math.ceil(b.retry_after_s))
            headers["anthropic-ratelimit-requests-remaining"] = "0"
            headers["x-should-retry"] = "true"
        else:
            status = int(detail.get("status", b.error_status))
            message = "Overloaded" if status == 529 else "Internal server error"
            headers["x-should-retry"] = "true"
        return web.json_response(_error_body(status, message), status=status, headers=headers)

    def _message(
        self, reply: Reply, content: list[dict[str, Any]], stop: str | None, output_tokens: int
    ) -> dict[str, Any]:
        return {
            "id": f"msg_{reply.id}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": output_tokens},
        }

    def render(self, reply: Reply) -> web.Response:
        text = reply.answer.text
        content = [{"type": "text", "text": text}] if text else []
        stop = finish_name(reply.finish, _STOP, "end_turn")
        return web.json_response(self._message(reply, content, stop, reply.completion_tokens))

    def frames_open(self, reply: Reply) -> list[bytes]:
        return [
            _event(
                "message_start",
                {"type": "message_start", "message": self._message(reply, [], None, 1)},
            ),
            _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _event("ping", {"type": "ping"}),
        ]

    def frames_delta(self, reply: Reply, index: int, text: str, last: bool) -> list[bytes]:
        return [
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        ]

    def frames_close(self, reply: Reply) -> list[bytes]:
        stop = finish_name(reply.finish, _STOP, "end_turn")
        return [
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": reply.completion_tokens},
                },
            ),
            _event("message_stop", {"type": "message_stop"}),
        ]

    def frames_unfinished(self, reply: Reply) -> list[bytes]:
        # The block closes, but no message_delta (stop_reason) and no message_stop arrive.
        return [_event("content_block_stop", {"type": "content_block_stop", "index": 0})]

    def frame_error(self, reply: Reply) -> bytes:
        return _event("error", _error_body(529, "Overloaded"))

    def frame_malformed(self, reply: Reply) -> bytes:
        return b'event: message_start\ndata: {"type": "message_start", "message": {\n\n'
