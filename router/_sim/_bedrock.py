"""A simulated Amazon Bedrock runtime: ``/model/{modelId}/converse`` and ``/converse-stream``.

Faithful to what litellm's Bedrock Converse handler reads: Converse bodies (``output.message``,
``stopReason``, ``usage``); ``converse-stream`` as the binary AWS event stream
(``application/vnd.amazon.eventstream``: length-prefixed frames with typed headers and CRC32
checksums, decoded by botocore) carrying ``messageStart``, ``contentBlockDelta``,
``contentBlockStop``, ``messageStop`` and ``metadata`` events, and exception frames
(``:message-type: exception``) such as ``throttlingException`` mid-stream; HTTP errors with
``x-amzn-ErrorType`` and a ``{"message": ...}`` body in Bedrock's words
(``ThrottlingException`` 429 without a retry hint, ``ServiceUnavailableException`` 503,
``InternalServerException`` 500, ``ValidationException`` "Input is too long", the 403
``UnrecognizedClientException`` of a bad key). Requests must carry a SigV4 ``Authorization``
header (any dummy credentials sign one locally); the signature is not verified.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._protocol import ProtocolProvider, Reply, Turn, _Invalid, finish_name

__all__ = ["AnthropicOnBedrock", "BedrockProvider", "event_frame"]

_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "guardrail_intervened",
}

_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}

_MESSAGES = {
    429: "Too many requests, please wait before trying again.",
    500: "The server encountered an internal error while processing the request.",
    503: "Bedrock is unable to process your request.",
}


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # Header value type 7 is a UTF-8 string with a 2-byte length.
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack("!H", len(raw_value))
        + raw_value
    )


def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (lengths + CRC), headers, payload, message CRC."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def _event(kind: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return event_frame(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        payload,
    )


def _exception(kind: str, message: str) -> bytes:
    payload = json.dumps({"message": message}).encode()
    return event_frame(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload,
    )


def _error(status: int, kind: str, message: str) -> web.Response:
    headers = {
        "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": "00000000-0000-4000-8000-000000000000",
    }
    return web.json_response({"message": message}, status=status, headers=headers)


class BedrockProvider(ProtocolProvider):
    """One simulated Bedrock runtime endpoint (``aws_bedrock_runtime_endpoint`` / api_base)."""

    protocol = "bedrock"
    stream_content_type = "application/vnd.amazon.eventstream"

    def paths(self) -> list[str]:
        return ["/model/{model_id}/converse", "/model/{model_id}/converse-stream"]

    def parse(self, request: web.Request, body: Any) -> Turn:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            raise _Invalid("Missing Authentication Token", status=403)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Invalid(
                "The model returned the following errors: messages: field required", "messages"
            )
        flat: list[dict[str, Any]] = []
        system = body.get("system")
        if isinstance(system, list):
            flat.append({"content": system})
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("content"), list):
                raise _Invalid(
                    "Malformed input request: messages[].content must be a list", "messages"
                )
            flat.append({"content": message["content"]})
        if flat and messages[0].get("role") != "user":
            raise _Invalid(
                "A conversation must start with a user message. Try again with a "
                "conversation that starts with a user message.",
                "messages",
            )
        config = body.get("inferenceConfig")
        config = config if isinstance(config, dict) else {}
        temperature = config.get("temperature")
        max_tokens = config.get("maxTokens")
        return Turn(
            model=request.match_info["model_id"],
            messages=flat,
            stream=request.path.endswith("/converse-stream"),
            max_tokens=max_tokens if isinstance(max_tokens, int) else 0,
            temperature=float(temperature)
            if isinstance(temperature, int | float) and not isinstance(temperature, bool)
            else None,
        )

    def error(self, kind: str, b: Behavior, turn: Turn | None, **detail: Any) -> web.Response:
        if kind == "outage":
            return _error(503, "ServiceUnavailableException", _MESSAGES[503])
        if kind == "auth":
            return _error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if kind == "invalid":
            status = int(detail.get("status", 400))
            return _error(
                status, _ERRORS.get(status, "ValidationException"), str(detail["message"])
            )
        if kind == "context":
            return _error(400, "ValidationException", "Input is too long for requested model.")
        if kind == "rate_limit":
            # Bedrock sends no Retry-After; the router falls back to its own pause.
            return _error(429, "ThrottlingException", _MESSAGES[429])
        status = int(detail.get("status", b.error_status))
        return _error(
            status,
            _ERRORS.get(status, "InternalServerException"),
            _MESSAGES.get(status, f"Simulated error {status} from provider {self.name}."),
        )

    def _usage_of(self, reply: Reply) -> dict[str, int]:
        return {
            "inputTokens": reply.prompt_tokens,
            "outputTokens": reply.completion_tokens,
            "totalTokens": reply.prompt_tokens + reply.completion_tokens,
        }

    def render(self, reply: Reply) -> web.Response:
        text = reply.answer.text
        return web.json_response(
            {
                "output": {
                    "message": {"role": "assistant", "content": [{"text": text}] if text else []}
                },
                "stopReason": finish_name(reply.finish, _STOP, "end_turn"),
                "usage": self._usage_of(reply),
                "metrics": {"latencyMs": 5},
            }
        )

    def render_malformed(self, reply: Reply) -> web.Response:
        text = '{"output": {"message": {"role": "assistant", "content": [{"text": '
        return web.Response(status=200, text=text, content_type="application/json")

    def stream_headers(self) -> dict[str, str]:
        return {
            "Content-Type": self.stream_content_type,
            "x-amzn-RequestId": "00000000-0000-4000-8000-000000000000",
        }

    def frames_open(self, reply: Reply) -> list[bytes]:
        return [_event("messageStart", {"role": "assistant"})]

    def frames_delta(self, reply: Reply, index: int, text: str, last: bool) -> list[bytes]:
        return [_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})]

    def frames_close(self, reply: Reply) -> list[bytes]:
        return [
            _event("contentBlockStop", {"contentBlockIndex": 0}),
            _event("messageStop", {"stopReason": finish_name(reply.finish, _STOP, "end_turn")}),
            _event("metadata", {"usage": self._usage_of(reply), "metrics": {"latencyMs": 5}}),
        ]

    def frames_unfinished(self, reply: Reply) -> list[bytes]:
        return [_event("contentBlockStop", {"contentBlockIndex": 0})]

    def frame_error(self, reply: Reply) -> bytes:
        return _exception("throttlingException", _MESSAGES[429])

    def frame_malformed(self, reply: Reply) -> bytes:
        # A valid frame whose JSON payload is cut.
        return event_frame(
            {
                ":event-type": "contentBlockDelta",
                ":content-type": "application/json",
                ":message-type": "event",
            },
            b'{"contentBlockIndex": 0, "delta": {"text": ',
        )


AnthropicOnBedrock = BedrockProvider
"""Bedrock serves every model family through Converse; the name reads better in fleets."""
