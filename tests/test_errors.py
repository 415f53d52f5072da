"""Every litellm exception class the router can see, with the outcome it is classified as."""

from __future__ import annotations

import httpx
import litellm
import pytest

from router._errors import Outcome, classify, classify_status, describe, retry_after_of
from router.testing import error

REQ = httpx.Request("POST", "http://x/v1/chat/completions")


def resp(code: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(code, headers=headers or {}, request=REQ)


KW = {"llm_provider": "openai", "model": "m"}

CASES = [
    (litellm.APIConnectionError("x", **KW), Outcome.FAILURE),
    (litellm.Timeout("x", **KW), Outcome.FAILURE),
    (litellm.InternalServerError("x", response=resp(500), **KW), Outcome.FAILURE),
    (litellm.BadGatewayError("x", response=resp(502), **KW), Outcome.FAILURE),
    (litellm.ServiceUnavailableError("x", response=resp(503), **KW), Outcome.FAILURE),
    (litellm.APIResponseValidationError("x", **KW), Outcome.FAILURE),
    (litellm.APIError(504, "x", **KW), Outcome.FAILURE),
    (litellm.APIError(500, "x", **KW), Outcome.FAILURE),
    (
        litellm.exceptions.MidStreamFallbackError("x", model="m", llm_provider="openai"),
        Outcome.FAILURE,
    ),
    (litellm.RateLimitError("x", response=resp(429), **KW), Outcome.RATE_LIMITED),
    (litellm.APIError(429, "x", **KW), Outcome.RATE_LIMITED),
    (litellm.AuthenticationError("x", response=resp(401), **KW), Outcome.MISCONFIGURED),
    (litellm.PermissionDeniedError("x", response=resp(403), **KW), Outcome.MISCONFIGURED),
    (litellm.NotFoundError("x", response=resp(404), **KW), Outcome.MISCONFIGURED),
    (
        litellm.exceptions.PaymentRequiredError("x", model="m", llm_provider="openai"),
        Outcome.MISCONFIGURED,
    ),
    (litellm.ContextWindowExceededError("x", response=resp(400), **KW), Outcome.CONTEXT_WINDOW),
    (litellm.BadRequestError("x", response=resp(400), **KW), Outcome.CALLER_ERROR),
    (litellm.ContentPolicyViolationError("x", response=resp(400), **KW), Outcome.CALLER_ERROR),
    (litellm.UnsupportedParamsError("x", **KW), Outcome.CALLER_ERROR),
    (
        litellm.exceptions.InvalidRequestError("x", model="m", llm_provider="openai"),
        Outcome.CALLER_ERROR,
    ),
    (litellm.UnprocessableEntityError("x", response=resp(422), **KW), Outcome.CALLER_ERROR),
    (litellm.BudgetExceededError(current_cost=2.0, max_budget=1.0), Outcome.CALLER_ERROR),
    (litellm.APIError(418, "x", **KW), Outcome.CALLER_ERROR),
    (TimeoutError(), Outcome.FAILURE),
    (ConnectionRefusedError(), Outcome.FAILURE),
    (RuntimeError("unknown"), Outcome.FAILURE),
]


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=lambda v: type(v).__name__)
def test_classify_every_litellm_class(exc: BaseException, expected: Outcome) -> None:
    assert classify(exc) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, Outcome.CALLER_ERROR),
        (401, Outcome.MISCONFIGURED),
        (404, Outcome.MISCONFIGURED),
        (408, Outcome.FAILURE),
        (409, Outcome.CALLER_ERROR),
        (429, Outcome.RATE_LIMITED),
        (500, Outcome.FAILURE),
        (503, Outcome.FAILURE),
        (529, Outcome.FAILURE),
    ],
)
def test_classify_bare_status(status: int, expected: Outcome) -> None:
    assert classify_status(status) is expected


def test_router_errors_subclass_the_nearest_litellm_class() -> None:
    from router import DeadlineExceeded, NoDeploymentAvailable, StreamInterrupted

    assert issubclass(NoDeploymentAvailable, litellm.ServiceUnavailableError)
    assert issubclass(DeadlineExceeded, litellm.Timeout)
    assert issubclass(StreamInterrupted, litellm.APIConnectionError)
    exc = NoDeploymentAvailable("chat", {"a": "breaker open", "b": "rate-limited"})
    assert "a: breaker open" in str(exc) and "b: rate-limited" in str(exc)
    assert exc.status_code == 503


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_from_headers(headers: dict[str, str], expected: float | None) -> None:
    exc = litellm.RateLimitError("x", response=resp(429, headers), **KW)
    assert retry_after_of(exc) == expected


def test_retry_after_http_date() -> None:
    exc = litellm.RateLimitError(
        "x", response=resp(429, {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}), **KW
    )
    # 10 s before that date on the wall clock
    assert retry_after_of(exc, now=1445412480.0) == pytest.approx(10.0)


def test_describe_has_class_and_status_only() -> None:
    assert describe(error(503)) == "ServiceUnavailableError 503"
    assert describe(TimeoutError()) == "TimeoutError"
