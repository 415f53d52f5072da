"""A simulated Azure OpenAI resource: ``/openai/deployments/{deployment}/chat/completions``.

Faithful to what litellm's Azure handler (the OpenAI SDK's Azure client) reads and to what Azure
sends: the ``api-version`` query parameter is required (404 ``Resource not found`` without it,
as Azure answers); the key comes in ``api-key``; answers are OpenAI chat completions with
Azure's ``prompt_filter_results`` and per-choice ``content_filter_results``; streams open with
the chunk of empty ``choices`` that carries the prompt filter results; a 429 says
``retry-after`` and ``retry-after-ms``; errors use Azure's string codes (``"429"``,
``"DeploymentNotFound"``, ``"content_filter"`` with ``innererror.content_filter_result``);
``content_filter`` blocks the prompt with that 400, and a :class:`~router._sim._knobs.Script`
with ``finish_reason="content_filter"`` plays Azure's output filter.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._protocol import ProtocolProvider, Reply, Turn, _Invalid

__all__ = ["AzureProvider"]

_SAFE = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
_FLAGGED = {**_SAFE, "violence": {"filtered": True, "severity": "high"}}


def _sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _error(http_status: int, code: str, message: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=http_status)


class AzureProvider(ProtocolProvider):
    """One simulated Azure OpenAI resource; every deployment name is served."""

    protocol = "azure"

    def paths(self) -> list[str]:
        return ["/openai/deployments/{deployment}/chat/completions"]

    def parse(self, request: web.Request, body: Any) -> Turn:
        if not request.query.get("api-version"):
            raise _Invalid("Resource not found", status=404)
        if not request.headers.get("api-key") and not request.headers.get("authorization"):
            raise _Invalid(
                "Access denied due to missing subscription key. Make sure to include "
                "subscription key when making requests to an API.",
                status=401,
            )
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise _Invalid("'messages' is a required property", "messages")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        temperature = body.get("temperature")
        options = body.get("stream_options")
        return Turn(
            model=request.match_info["deployment"],
            messages=[m for m in messages if isinstance(m, dict)],
            stream=body.get("stream") is True,
            max_tokens=max_tokens if isinstance(max_tokens, int) else 0,
            temperature=float(temperature)
            if isinstance(temperature, int | float) and not isinstance(temperature, bool)
            else None,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            deployment=request.match_info["deployment"],
        )

    def blocks_with_error(self) -> bool:
        return True

    def error(self, kind: str, b: Behavior, turn: Turn | None, **detail: Any) -> web.Response:
        if kind == "outage":
            return _error(
                503,
                "ServiceUnavailable",
                "The service is temporarily unable to "
                "process your request. Please try again later.",
            )
        if kind == "auth":
            return _error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong "
                "API endpoint. Make sure to provide a valid key for an active "
                "subscription and use a correct regional API endpoint for your resource.",
            )
        if kind == "invalid":
            status = int(detail.get("status", 400))
            code = "404" if status == 404 else str(status) if status != 400 else "BadRequest"
            return _error(
                status,
                code,
                str(detail["message"]),
                param=detail.get("param"),
                type="invalid_request_error" if status == 400 else None,
            )
        if kind == "content_filter":
            return _error(
                400,
                "content_filter",
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry. To learn more about our "
                "content filtering policies please read our documentation: "
                "https://go.microsoft.com/fwlink/?linkid=2198766",
                param="prompt",
                type=None,
                status=400,
                innererror={
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": _FLAGGED,
                },
            )
        if kind == "context":
            requested = detail["requested"]
            return _error(
                400,
                "context_length_exceeded",
                f"This model's maximum context length is {detail['window']} tokens. However, you "
                f"requested {requested} tokens. Please reduce the length of the messages.",
                param="messages",
                type="invalid_request_error",
            )
        if kind == "rate_limit":
            api_version = "2024-10-21"
            response = _error(
                429,
                "429",
                f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                f"{api_version} have exceeded token rate limit of your current OpenAI S0 pricing "
                f"tier. Please retry after {math.ceil(b.retry_after_s)} seconds. Please go here: "
                "https://aka.ms/oai/quotaincrease if you would like to further increase the "
                "default rate limit.",
            )
            response.headers["retry-after"] = str(math.ceil(b.retry_after_s))
            response.headers["retry-after-ms"] = str(round(b.retry_after_s * 1000))
            response.headers["x-ratelimit-remaining-requests"] = "0"
            return response
        status = int(detail.get("status", b.error_status))
        codes = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
        return _error(
            status,
            codes.get(status, str(status)),
            f"Simulated error {status} from provider {self.name}.",
        )

    def _envelope(self, reply: Reply, obj: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{reply.id}",
            "object": obj,
            "created": int(time.time()),
            "model": "gpt-4o-2024-11-20",
            "system_fingerprint": "fp_sim",
        }

    def _usage_of(self, reply: Reply) -> dict[str, int]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }

    def _filters(self, reply: Reply) -> dict[str, Any]:
        return _FLAGGED if reply.finish == "content_filter" else _SAFE

    def render(self, reply: Reply) -> web.Response:
        filtered = reply.finish == "content_filter"
        body = self._envelope(reply, "chat.completion")
        body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _SAFE}]
        body["choices"] = [
            {
                "index": 0,
                "finish_reason": reply.finish,
                "message": {
                    "role": "assistant",
                    "content": None if filtered and not reply.answer.text else reply.answer.content,
                },
                "content_filter_results": self._filters(reply),
            }
        ]
        body["usage"] = self._usage_of(reply)
        return web.json_response(body)

    def render_malformed(self, reply: Reply) -> web.Response:
        text = '{"id": "chatcmpl-' + reply.id + '", "object": "chat.completion", "choices": [{'
        return web.Response(status=200, text=text, content_type="application/json")

    def frames_open(self, reply: Reply) -> list[bytes]:
        # Azure's first chunk: no choices, only the prompt's filter results.
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _SAFE}],
        }
        return [_sse(first)]

    def frames_delta(self, reply: Reply, index: int, text: str, last: bool) -> list[bytes]:
        chunk = self._envelope(reply, "chat.completion.chunk")
        delta: dict[str, Any] = {"content": text}
        if index == 0:
            delta["role"] = "assistant"
        chunk["choices"] = [
            {"index": 0, "delta": delta, "finish_reason": None, "content_filter_results": _SAFE}
        ]
        return [_sse(chunk)]

    def frames_close(self, reply: Reply) -> list[bytes]:
        chunk = self._envelope(reply, "chat.completion.chunk")
        chunk["choices"] = [
            {
                "index": 0,
                "delta": {},
                "finish_reason": reply.finish,
                "content_filter_results": self._filters(reply),
            }
        ]
        frames = [_sse(chunk)]
        if reply.turn.include_usage:
            usage = self._envelope(reply, "chat.completion.chunk")
            usage["choices"] = []
            usage["usage"] = self._usage_of(reply)
            frames.append(_sse(usage))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def frames_unfinished(self, reply: Reply) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def frame_error(self, reply: Reply) -> bytes:
        return _sse(
            {
                "error": {
                    "code": "InternalServerError",
                    "message": "The server had an "
                    "error while processing your request. Sorry about that!",
                }
            }
        )

    def frame_malformed(self, reply: Reply) -> bytes:
        return b'data: {"id": "chatcmpl-' + reply.id.encode() + b'", "choices": [\n\n'
