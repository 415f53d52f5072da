"""A simulated Gemini API: ``models/{model}:generateContent`` and ``:streamGenerateContent``.

Faithful to what litellm's Gemini handler (``gemini/`` model strings) reads: ``candidates``
with ``content.parts`` and ``finishReason``, ``usageMetadata``; streams as ``?alt=sse`` data
lines, the last carrying ``finishReason`` (no ``[DONE]``); errors as Google RPC statuses
(``{"error": {"code", "message", "status", "details"}}``): 429 ``RESOURCE_EXHAUSTED`` with a
``google.rpc.RetryInfo`` ``retryDelay`` in the body and no ``Retry-After`` header, 503
``UNAVAILABLE`` "The model is overloaded", 400 ``INVALID_ARGUMENT`` "API key not valid" for a
bad key (Gemini's 401), the input-token-count 400 for a long prompt; a prompt blocked by safety
filters as ``promptFeedback.blockReason``; an in-band ``error`` chunk for
``stream_error_after``. Requests need ``x-goog-api-key`` (or ``?key=``), any value.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._protocol import ProtocolProvider, Reply, Turn, _Invalid, finish_name

__all__ = ["GeminiProvider", "retry_delay"]

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}


def retry_delay(seconds: float) -> str:
    """A protobuf ``Duration`` as JSON writes it: ``"3s"``, ``"1.500s"``."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.3f}s"


def _rpc_error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\r\n\r\n"


class GeminiProvider(ProtocolProvider):
    """One simulated Gemini endpoint; ``base_url`` is litellm's ``api_base`` for it."""

    protocol = "gemini"

    def paths(self) -> list[str]:
        return ["/models/{call}", "/v1beta/models/{call}", "/v1/models/{call}"]

    def parse(self, request: web.Request, body: Any) -> Turn:
        call = request.match_info.get("call", "")
        model, _, method = call.partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            raise _Invalid(f"Method not found: {method!r}.", status=404)
        if not request.headers.get("x-goog-api-key") and not request.query.get("key"):
            raise _Invalid(
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
                status=403,
            )
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _Invalid(
                "* GenerateContentRequest.contents: contents is not specified", "contents"
            )
        flat: list[dict[str, Any]] = []
        system = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(system, dict):
            flat.append({"content": system.get("parts")})
        for content in contents:
            if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
                raise _Invalid(
                    "* GenerateContentRequest.contents: parts is not specified", "contents"
                )
            flat.append({"content": content["parts"]})
        config = body.get("generationConfig")
        config = config if isinstance(config, dict) else {}
        max_tokens = config.get("maxOutputTokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _Invalid(
                "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), "
                f"{max_tokens!r}",
                "generationConfig.maxOutputTokens",
            )
        temperature = config.get("temperature")
        return Turn(
            model=model or "gemini-sim",
            messages=flat,
            stream=method == "streamGenerateContent",
            max_tokens=0,  # Gemini checks the input token count alone against the window
            temperature=float(temperature)
            if isinstance(temperature, int | float) and not isinstance(temperature, bool)
            else None,
        )

    def error(self, kind: str, b: Behavior, turn: Turn | None, **detail: Any) -> web.Response:
        details: list[dict[str, Any]] | None = None
        if kind == "outage":
            status, message = 503, _MESSAGES[503]
        elif kind == "auth":
            # Gemini answers a bad key with 400 INVALID_ARGUMENT, not 401.
            status, message = 400, "API key not valid. Please pass a valid API key."
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        elif kind == "invalid":
            status, message = int(detail.get("status", 400)), str(detail["message"])
        elif kind == "context":
            status = 400
            message = (
                f"The input token count ({detail['requested']}) exceeds the maximum number of "
                f"tokens allowed ({detail['window']})."
            )
        elif kind == "rate_limit":
            status = 429
            model = turn.model if turn is not None else "gemini"
            message = (
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, head to: "
                "https://ai.google.dev/gemini-api/docs/rate-limits."
            )
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "15",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": retry_delay(b.retry_after_s),
                },
            ]
        else:
            status = int(detail.get("status", b.error_status))
            message = _MESSAGES.get(status, f"Simulated error {status} from provider {self.name}.")
        return web.json_response(_rpc_error(status, message, details), status=status)

    def _chunk(self, reply: Reply, text: str | None, finish: str | None, usage: bool) -> Any:
        payload: dict[str, Any] = {"modelVersion": reply.model, "responseId": reply.id}
        if reply.blocked:
            payload["promptFeedback"] = {
                "blockReason": "SAFETY",
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    }
                ],
            }
        else:
            candidate: dict[str, Any] = {"index": 0}
            if text is not None:
                candidate["content"] = {"parts": [{"text": text}], "role": "model"}
            if finish is not None:
                candidate["finishReason"] = finish
            payload["candidates"] = [candidate]
        if usage:
            completion = reply.completion_tokens
            payload["usageMetadata"] = {
                "promptTokenCount": reply.prompt_tokens,
                "candidatesTokenCount": completion,
                "totalTokenCount": reply.prompt_tokens + completion,
            }
        return payload

    def render(self, reply: Reply) -> web.Response:
        finish = finish_name(reply.finish, _FINISH, "STOP")
        return web.json_response(self._chunk(reply, reply.answer.text, finish, usage=True))

    def render_malformed(self, reply: Reply) -> web.Response:
        text = '{"candidates": [{"content": {"parts": [{"text": "'
        return web.Response(status=200, text=text, content_type="application/json")

    def frames_delta(self, reply: Reply, index: int, text: str, last: bool) -> list[bytes]:
        # Gemini puts finishReason (and the final usage) on the last content chunk.
        finish = finish_name(reply.finish, _FINISH, "STOP") if last else None
        if reply.blocked:
            return [_sse(self._chunk(reply, None, None, usage=True))] if index == 0 else []
        return [_sse(self._chunk(reply, text, finish, usage=True))]

    def frame_error(self, reply: Reply) -> bytes:
        # Vertex/Gemini can answer HTTP 200 and put the error in the stream.
        return _sse(_rpc_error(503, _MESSAGES[503]))

    def frame_malformed(self, reply: Reply) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [\r\n\r\n'
