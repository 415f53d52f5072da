"""Errors in OpenAI's JSON shape, with the status an OpenAI client expects.

Every error the gateway returns is ``{"error": {"message", "type", "param", "code"}}`` with:

======  ==========================  =====================================================
status  type / code                 when
======  ==========================  =====================================================
400     invalid_request_error       malformed JSON, wrong types, a provider's 400 (bad
                                    request, content policy, context window exceeded)
401     authentication_error        missing or wrong gateway key
404     model_not_found             ``model`` is no group or deployment of the config
408     request_timeout             the client sent its body too slowly
413     request_too_large           the body is over ``max_body_bytes``
429     rate_limit_exceeded         every candidate is rate-limited (``Retry-After`` set),
                                    or the key's rpm / daily budget is spent
502     upstream_error              the provider failed in a way failover could not hide
503     no_deployment_available     no candidate is available (``reasons`` per deployment),
                                    or the gateway is at its concurrency cap / draining
504     deadline_exceeded           the call's deadline ran out
======  ==========================  =====================================================

Messages never carry keys: the router's own errors are built from names and error classes,
and a provider's message is passed on only for caller errors (4xx), which describe the request.
"""

from __future__ import annotations

import math
from typing import Any

import litellm

from router._errors import (
    AllRateLimited,
    DeadlineExceeded,
    NoDeploymentAvailable,
    StreamInterrupted,
)

__all__ = ["GatewayError", "error_body", "from_exception"]


class GatewayError(Exception):
    """An error answered by the gateway itself (bad input, auth, limits)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}


def error_body(
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The OpenAI error object."""
    error: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code}
    error.update(extra)
    return {"error": error}


def _retry_after(seconds: float | None) -> dict[str, str]:
    if seconds is None:
        return {"Retry-After": "1"}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def from_exception(exc: BaseException, paused_for: float | None = None) -> GatewayError:
    """Map an exception raised by a routed call to the gateway's answer.

    `paused_for` is the shortest pause left among the group's deployments (for 429's
    ``Retry-After``).
    """
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, DeadlineExceeded):
        return GatewayError(504, str(exc), "timeout", "deadline_exceeded")
    if isinstance(exc, AllRateLimited):  # every candidate answered 429 or is paused by one
        return GatewayError(
            429,
            str(exc),
            "rate_limit_error",
            "rate_limit_exceeded",
            headers=_retry_after(exc.retry_after if exc.retry_after is not None else paused_for),
        )
    if isinstance(exc, NoDeploymentAvailable):
        error = GatewayError(
            503,
            str(exc),
            "service_unavailable",
            "no_deployment_available",
            headers=_retry_after(paused_for if paused_for is not None else 1.0),
        )
        error.reasons = dict(exc.reasons)  # type: ignore[attr-defined]
        return error
    if isinstance(exc, StreamInterrupted):
        return GatewayError(502, str(exc), "upstream_error", "stream_interrupted")
    if isinstance(exc, litellm.ContextWindowExceededError):
        return GatewayError(
            400, _message(exc), "invalid_request_error", "context_length_exceeded", "messages"
        )
    if isinstance(exc, litellm.RateLimitError):
        return GatewayError(
            429,
            _message(exc),
            "rate_limit_error",
            "rate_limit_exceeded",
            headers=_retry_after(paused_for),
        )
    if isinstance(exc, litellm.ContentPolicyViolationError):
        return GatewayError(400, _message(exc), "invalid_request_error", "content_policy_violation")
    if isinstance(exc, litellm.BadRequestError | litellm.UnprocessableEntityError):
        status = getattr(exc, "status_code", 400)
        status = status if isinstance(status, int) and 400 <= status < 500 else 400
        if status in (401, 403, 404):  # the provider refused our key/model, not the client's
            return GatewayError(502, _upstream(exc), "upstream_error", "upstream_misconfigured")
        return GatewayError(status, _message(exc), "invalid_request_error", None)
    if isinstance(exc, litellm.Timeout | TimeoutError):
        return GatewayError(504, _upstream(exc), "timeout", "deadline_exceeded")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 404, 429):
        return GatewayError(status, _message(exc), "invalid_request_error", None)
    # Every attempt the call was allowed failed upstream (the router re-raises the last
    # provider error, litellm's class). The provider said it is unavailable (503, 529): none
    # is available, 503 with the reasons; any other failure: 502, with the reasons too.
    if isinstance(exc, litellm.ServiceUnavailableError) or status in (503, 529):
        error = GatewayError(
            503, _upstream(exc), "service_unavailable", "no_deployment_available",
            headers=_retry_after(paused_for if paused_for is not None else 1.0),
        )  # fmt: skip
    else:
        error = GatewayError(502, _upstream(exc), "upstream_error", "upstream_error")
    reasons = _attempt_reasons(exc)
    if reasons:
        error.reasons = reasons  # type: ignore[attr-defined]
    return error


def _attempt_reasons(exc: BaseException) -> dict[str, str]:
    """Per deployment, how its last attempt of the failed call ended (names, classes and
    statuses only: see `router._errors.describe`)."""
    from router._decision import get_decision

    decision = get_decision(exc)
    if decision is None:
        return {}
    return {
        a.deployment: a.error or str(a.outcome)
        for a in decision.attempts
        if a.outcome != "cancelled"
    }


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text[:2000]


def _upstream(exc: BaseException) -> str:
    # Upstream failures: name the class and status only (a provider's text may echo a key).
    from router._errors import describe

    return f"upstream call failed: {describe(exc)}"
