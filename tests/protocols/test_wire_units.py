"""Unit level: each provider's real error bodies through litellm's own handler (pytest-httpx).

litellm's synchronous HTTP layer is httpx, so ``httpx_mock`` answers for the provider: no
server, no sockets. Each case is a response as the provider documents it; the test checks the
class litellm raises and how the router classifies it (outcome, pause), and for streams what
the router's guard makes of litellm's stream. The loopback matrix (test_fault_matrix.py) runs
the same faults end to end through the router.
"""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest
from pytest_httpx import HTTPXMock

from router._errors import Outcome, classify, describe, retry_after_of
from router._sim._bedrock import event_frame
from router._stream_guard import guard_stream

MSG = [{"role": "user", "content": "hello"}]

TARGETS: dict[str, dict[str, Any]] = {
    "anthropic": {
        "model": "anthropic/claude-3-5-haiku-20241022",
        "api_base": "http://anthropic.test",
        "api_key": "sk-ant-test",
    },
    "gemini": {
        "model": "gemini/gemini-2.0-flash",
        "api_base": "http://gemini.test",
        "api_key": "gk-test",
    },
    "azure": {
        "model": "azure/chat",
        "api_base": "http://azure.test",
        "api_key": "az-test",
        "api_version": "2024-10-21",
    },
    "bedrock": {
        "model": "bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0",
        "api_base": "http://bedrock.test",
        "aws_access_key_id": "AKIDTEST",
        "aws_secret_access_key": "test-secret",
        "aws_region_name": "us-east-1",
    },
}


def _gemini_error(code: int, status: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


RETRY_INFO = [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
]

# (provider, status, body, headers) -> (litellm class, router outcome, pause in seconds)
ERRORS: dict[str, tuple[str, int, Any, dict[str, str], type[Exception], Outcome, float | None]] = {
    "anthropic-529-overloaded": (
        "anthropic", 529,
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {}, litellm.InternalServerError, Outcome.FAILURE, None,
    ),
    "anthropic-429": (
        "anthropic", 429,
        {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}},
        {"retry-after": "7"}, litellm.RateLimitError, Outcome.RATE_LIMITED, 7.0,
    ),
    "anthropic-401": (
        "anthropic", 401,
        {"type": "error",
         "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
        {}, litellm.AuthenticationError, Outcome.MISCONFIGURED, None,
    ),
    "anthropic-prompt-too-long": (
        "anthropic", 400,
        {"type": "error",
         "error": {"type": "invalid_request_error",
                   "message": "prompt is too long: 210000 tokens > 200000 maximum"}},
        {}, litellm.ContextWindowExceededError, Outcome.CONTEXT_WINDOW, None,
    ),
    "anthropic-400": (
        "anthropic", 400,
        {"type": "error", "error": {"type": "invalid_request_error",
                                    "message": "max_tokens: must be positive"}},
        {}, litellm.BadRequestError, Outcome.CALLER_ERROR, None,
    ),
    "gemini-429-retry-info": (
        "gemini", 429,
        _gemini_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", RETRY_INFO),
        {}, litellm.RateLimitError, Outcome.RATE_LIMITED, 37.0,
    ),
    "gemini-503": (
        "gemini", 503,
        _gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        {}, litellm.InternalServerError, Outcome.FAILURE, None,
    ),
    "gemini-500": (
        "gemini", 500, _gemini_error(500, "INTERNAL", "An internal error has occurred."),
        {}, litellm.InternalServerError, Outcome.FAILURE, None,
    ),
    "gemini-bad-key": (
        "gemini", 400,
        _gemini_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
        {}, litellm.AuthenticationError, Outcome.MISCONFIGURED, None,
    ),
    "gemini-input-too-long": (
        "gemini", 400,
        _gemini_error(400, "INVALID_ARGUMENT", "The input token count (1048577) exceeds the "
                      "maximum number of tokens allowed (1048576)."),
        {}, litellm.ContextWindowExceededError, Outcome.CONTEXT_WINDOW, None,
    ),
    "azure-429": (
        "azure", 429,
        {"error": {"code": "429", "message": "Requests have exceeded the token rate limit."}},
        {"retry-after": "3", "retry-after-ms": "2500"},
        litellm.RateLimitError, Outcome.RATE_LIMITED, 2.5,
    ),
    "azure-content-filter": (
        "azure", 400,
        {"error": {"code": "content_filter", "param": "prompt", "status": 400,
                   "message": "The response was filtered due to the prompt triggering Azure "
                   "OpenAI's content management policy.",
                   "innererror": {"code": "ResponsibleAIPolicyViolation"}}},
        {}, litellm.ContentPolicyViolationError, Outcome.CALLER_ERROR, None,
    ),
    "azure-deployment-not-found": (
        "azure", 404,
        {"error": {"code": "DeploymentNotFound",
                   "message": "The API deployment for this resource does not exist."}},
        {}, litellm.NotFoundError, Outcome.MISCONFIGURED, None,
    ),
    "azure-401": (
        "azure", 401, {"error": {"code": "401", "message": "Access denied due to invalid key."}},
        {}, litellm.AuthenticationError, Outcome.MISCONFIGURED, None,
    ),
    "azure-503": (
        "azure", 503, {"error": {"code": "ServiceUnavailable", "message": "Try again later."}},
        {}, litellm.ServiceUnavailableError, Outcome.FAILURE, None,
    ),
    "bedrock-throttling": (
        "bedrock", 429, {"message": "Too many requests, please wait before trying again."},
        {"x-amzn-ErrorType": "ThrottlingException"},
        litellm.RateLimitError, Outcome.RATE_LIMITED, None,
    ),
    "bedrock-bad-token": (
        "bedrock", 403, {"message": "The security token included in the request is invalid."},
        {"x-amzn-ErrorType": "UnrecognizedClientException"},
        litellm.AuthenticationError, Outcome.MISCONFIGURED, None,
    ),
    "bedrock-input-too-long": (
        "bedrock", 400, {"message": "Input is too long for requested model."},
        {"x-amzn-ErrorType": "ValidationException"},
        litellm.ContextWindowExceededError, Outcome.CONTEXT_WINDOW, None,
    ),
    "bedrock-500": (
        "bedrock", 500, {"message": "The server encountered an internal error."},
        {"x-amzn-ErrorType": "InternalServerException"},
        litellm.ServiceUnavailableError, Outcome.FAILURE, None,
    ),
    "bedrock-503": (
        "bedrock", 503, {"message": "Bedrock is unable to process your request."},
        {"x-amzn-ErrorType": "ServiceUnavailableException"},
        litellm.ServiceUnavailableError, Outcome.FAILURE, None,
    ),
}  # fmt: skip


def _call(provider: str, **extra: Any) -> Any:
    return litellm.completion(
        messages=MSG, num_retries=0, max_retries=0, **TARGETS[provider], **extra
    )


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_body_is_classified(httpx_mock: HTTPXMock, case: str) -> None:
    provider, status, body, headers, cls, outcome, pause = ERRORS[case]
    httpx_mock.add_response(status_code=status, json=body, headers=headers)
    with pytest.raises(cls) as info:
        _call(provider)
    assert classify(info.value) is outcome
    assert retry_after_of(info.value) == pause
    assert "test" not in describe(info.value)  # the label never carries keys or bodies


@pytest.mark.parametrize("provider", ["gemini", "bedrock", "anthropic", "azure"])
def test_undecodable_200_is_the_providers_failure(httpx_mock: HTTPXMock, provider: str) -> None:
    httpx_mock.add_response(status_code=200, text='{"candidates": [{"content": ')
    with pytest.raises(litellm.APIError if provider == "azure" else Exception) as info:
        _call(provider)
    # litellm calls it a 422 BadRequestError for Gemini and Bedrock: still not the caller's.
    assert classify(info.value) is Outcome.FAILURE


def _sse(*payloads: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\r\n\r\n" for p in payloads)


def _gemini_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-2.0-flash"}


def _drain(stream: Any) -> tuple[str, list[str]]:
    text, reasons = [], []
    for chunk in stream:
        for choice in chunk.choices or ():
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    return "".join(text), reasons


def test_gemini_stream_with_finish_reason_completes(httpx_mock: HTTPXMock) -> None:
    body = _sse(_gemini_chunk("Hel"), _gemini_chunk("lo.", "STOP"))
    httpx_mock.add_response(content=body, headers={"content-type": "text/event-stream"})
    assert _drain(guard_stream(_call("gemini", stream=True))) == ("Hello.", ["stop"])


def test_gemini_stream_without_finish_reason_raises(httpx_mock: HTTPXMock) -> None:
    body = _sse(_gemini_chunk("Hel"), _gemini_chunk("lo"))
    httpx_mock.add_response(content=body, headers={"content-type": "text/event-stream"})
    # Unguarded, litellm ends it as a finished stream: that is the bug the guard exists for.
    assert _drain(_call("gemini", stream=True)) == ("Hello", ["stop"])
    httpx_mock.add_response(content=body, headers={"content-type": "text/event-stream"})
    with pytest.raises(litellm.APIConnectionError) as info:
        _drain(guard_stream(_call("gemini", stream=True)))
    assert classify(info.value) is Outcome.FAILURE


def test_gemini_stream_429_is_raised_as_a_rate_limit(httpx_mock: HTTPXMock) -> None:
    body = _gemini_error(429, "RESOURCE_EXHAUSTED", "Resource exhausted.", RETRY_INFO)
    httpx_mock.add_response(status_code=429, json=body)
    with pytest.raises(litellm.RateLimitError) as info:
        _drain(guard_stream(_call("gemini", stream=True)))
    assert not isinstance(info.value, litellm.exceptions.MidStreamFallbackError)
    assert classify(info.value) is Outcome.RATE_LIMITED
    assert retry_after_of(info.value) == 37.0


def test_gemini_blocked_prompt_is_a_finished_stream(httpx_mock: HTTPXMock) -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-2.0-flash"}
    httpx_mock.add_response(content=_sse(blocked), headers={"content-type": "text/event-stream"})
    assert _drain(guard_stream(_call("gemini", stream=True)))[1] == ["content_filter"]


def test_anthropic_truncated_stream_raises(httpx_mock: HTTPXMock) -> None:
    body = b'event: message_start\ndata: {"type": "message_start", "message": {\n\n'
    httpx_mock.add_response(content=body, headers={"content-type": "text/event-stream"})
    with pytest.raises(litellm.APIConnectionError):
        _drain(guard_stream(_call("anthropic", stream=True)))


def _bedrock_event(kind: str, body: Any, message_type: str = "event") -> bytes:
    key = ":event-type" if message_type == "event" else ":exception-type"
    headers = {key: kind, ":content-type": "application/json", ":message-type": message_type}
    return event_frame(headers, json.dumps(body).encode())


def test_bedrock_event_stream_frames_decode_in_litellm(httpx_mock: HTTPXMock) -> None:
    body = b"".join(
        [
            _bedrock_event("messageStart", {"role": "assistant"}),
            _bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            _bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
            _bedrock_event("messageStop", {"stopReason": "max_tokens"}),
            _bedrock_event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 1,
                                                  "totalTokens": 4}, "metrics": {"latencyMs": 1}}),
        ]
    )  # fmt: skip
    headers = {"content-type": "application/vnd.amazon.eventstream"}
    httpx_mock.add_response(content=body, headers=headers)
    assert _drain(guard_stream(_call("bedrock", stream=True))) == ("Hi", ["length"])


def test_bedrock_throttling_frame_before_content_is_a_rate_limit(httpx_mock: HTTPXMock) -> None:
    body = _bedrock_event("messageStart", {"role": "assistant"}) + _bedrock_event(
        "throttlingException", {"message": "Too many requests"}, "exception"
    )
    headers = {"content-type": "application/vnd.amazon.eventstream"}
    httpx_mock.add_response(content=body, headers=headers)
    with pytest.raises(litellm.RateLimitError) as info:
        _drain(guard_stream(_call("bedrock", stream=True)))
    assert classify(info.value) is Outcome.RATE_LIMITED
