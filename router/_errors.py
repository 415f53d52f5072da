"""The router's exceptions and the classification of every error an attempt can raise.

Errors a caller sees are litellm's own classes, or the router's subclasses of the nearest one,
so `except litellm.ServiceUnavailableError` keeps working after switching to the router::

    ValueError
    └── ConfigError                  providers.toml or ROUTER_* env is malformed (router._config)
    litellm.ServiceUnavailableError  (503)
    └── NoDeploymentAvailable        every candidate was skipped or failed; lists each and why
    litellm.Timeout                  (408)
    └── DeadlineExceeded             the call's one deadline ran out across its attempts
                                     (also a built-in TimeoutError)
    litellm.APIConnectionError
    └── StreamInterrupted            a stream broke (or ended without finish_reason) after its
                                     first chunk; never a silent, truncated end
    litellm.APIResponseValidationError
    └── NeedsReview                  escalation was exhausted and the answer still fails its
                                     checks (only with ``on_exhausted = "raise"``)

Every exception that leaves a routed call carries the decision record of that call as
``exc.router_decision`` (read it with `router.get_decision(exc)`).

Outcome classes (by exception class and status code, never by message text):

===================  ===========================================================  ============
outcome              errors                                                       effect
===================  ===========================================================  ============
failure              timeouts, connection errors, 5xx, malformed responses (also  fail over
                     the 422 litellm makes of an undecodable 200), unmapped
                     `APIConnectionError`, unknown exceptions
rate_limited         429 `RateLimitError`                                         skip until
                                                                                  Retry-After
misconfigured        401 `AuthenticationError`, 403 `PermissionDeniedError`,      block long,
                     404 `NotFoundError`, 402 `PaymentRequiredError`              fail over
context_window       `ContextWindowExceededError`                                 larger window
caller_error         the rest of the 400 family (bad request, content policy,     raise as is
                     unsupported params, 422), `BudgetExceededError`
===================  ===========================================================  ============
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import litellm

from router._decision import Outcome as Outcome  # re-exported: classify() returns one

if TYPE_CHECKING:
    from router._decision import Decision


# Order matters: subclasses before their bases (ContextWindowExceededError is a BadRequestError,
# PaymentRequiredError is a BadRequestError, Timeout is an openai APIConnectionError).
_BY_CLASS: tuple[tuple[type[BaseException], Outcome], ...] = (
    (litellm.ContextWindowExceededError, Outcome.CONTEXT_WINDOW),
    (litellm.RateLimitError, Outcome.RATE_LIMITED),
    (litellm.AuthenticationError, Outcome.MISCONFIGURED),
    (litellm.PermissionDeniedError, Outcome.MISCONFIGURED),
    (litellm.NotFoundError, Outcome.MISCONFIGURED),
    (litellm.exceptions.PaymentRequiredError, Outcome.MISCONFIGURED),
    (litellm.Timeout, Outcome.FAILURE),
    (litellm.BadRequestError, Outcome.CALLER_ERROR),
    (litellm.UnprocessableEntityError, Outcome.CALLER_ERROR),
    (litellm.BudgetExceededError, Outcome.CALLER_ERROR),
    (litellm.InternalServerError, Outcome.FAILURE),
    (litellm.ServiceUnavailableError, Outcome.FAILURE),
    (litellm.BadGatewayError, Outcome.FAILURE),
    (litellm.APIConnectionError, Outcome.FAILURE),
    (litellm.APIResponseValidationError, Outcome.FAILURE),
    (TimeoutError, Outcome.FAILURE),
    (ConnectionError, Outcome.FAILURE),
)


def provider_error(exc: BaseException) -> BaseException:
    """The provider's own error inside a litellm wrapper, else `exc` itself.

    litellm raises every failure of a stream as `litellm.MidStreamFallbackError` (a 503
    `ServiceUnavailableError`), even a 429 that arrived before the first chunk (Gemini,
    Bedrock); the provider's error is its ``original_exception``. Classification, the
    rate-limit pause and the error label look at that one.
    """
    seen = 0
    while seen < 4 and isinstance(exc, litellm.exceptions.MidStreamFallbackError):
        original = getattr(exc, "original_exception", None)
        if not isinstance(original, BaseException) or original is exc:
            break
        exc = original
        seen += 1
    return exc


def classify(exc: BaseException) -> Outcome:
    """Map an attempt's exception to its `Outcome` (see the module docstring's table)."""
    exc = provider_error(exc)
    for cls, outcome in _BY_CLASS:
        if isinstance(exc, cls):
            if outcome is Outcome.CALLER_ERROR and _unparseable_answer(exc):
                return Outcome.FAILURE
            return outcome
    status = status_code_of(exc)
    if status is None:
        return Outcome.FAILURE
    return classify_status(status)


def _unparseable_answer(exc: BaseException) -> bool:
    """Whether a 4xx litellm error was really the provider's unparseable (malformed) answer.

    litellm reports a 200 whose body it cannot decode as a 422 `BadRequestError` for some
    providers (Gemini, Bedrock: "Error converting to valid response block"); the JSON decode
    error in its cause chain says it was the provider's answer, not the caller's request.
    """
    seen = 0
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and seen < 8:
        if isinstance(current, json.JSONDecodeError):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def classify_status(status: int) -> Outcome:
    """Outcome of a bare HTTP status (for errors litellm did not map to a class)."""
    if status == 429:
        return Outcome.RATE_LIMITED
    if status in (401, 402, 403, 404):
        return Outcome.MISCONFIGURED
    if status == 408 or status >= 500:
        return Outcome.FAILURE
    if 400 <= status < 500:
        return Outcome.CALLER_ERROR
    return Outcome.FAILURE


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_of(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds to wait before asking this deployment again, if the provider said.

    From the headers (`retry-after-ms`, then `Retry-After` as seconds or an HTTP date), else
    from the error body: Google's ``google.rpc.RetryInfo`` ``retryDelay`` (Gemini and Vertex
    send their hint only there, e.g. ``"retryDelay": "3s"``; litellm keeps the body in the
    exception's message and drops the headers).
    """
    exc = provider_error(exc)
    from_headers = _retry_after_headers(exc, now)
    if from_headers is not None:
        return from_headers
    return _retry_delay_in_body(exc)


# A protobuf Duration in JSON ("3s", "1.5s", "0.250s"), possibly inside an escaped or
# bytes-repr'd body as litellm quotes it: "retryDelay": "3s" / \"retryDelay\": \"3s\".
_RETRY_DELAY = re.compile(r"""retryDelay\\?["']?\s*:\s*\\?["'](\d+(?:\.\d+)?)s\\?["']""")


def _retry_delay_in_body(exc: BaseException) -> float | None:
    texts = [getattr(exc, "message", None), str(exc)]
    response = getattr(exc, "response", None)
    try:
        texts.append(getattr(response, "text", None))
    except Exception:  # a streamed httpx response that was never read
        pass
    for text in texts:
        if isinstance(text, str) and "retryDelay" in text:
            match = _RETRY_DELAY.search(text)
            if match is not None:
                return float(match.group(1))
    return None


def _retry_after_headers(exc: BaseException, now: float | None) -> float | None:
    for headers in _header_maps(exc):
        ms = _get(headers, "retry-after-ms")
        if ms is not None:
            try:
                return max(0.0, float(ms) / 1000.0)
            except ValueError:
                pass
        value = _get(headers, "retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            if parsed is not None:
                wall = time.time() if now is None else now
                return max(0.0, parsed.timestamp() - wall)
    return None


def _header_maps(exc: BaseException) -> list[Any]:
    maps: list[Any] = []
    for attr in ("litellm_response_headers", "headers"):
        value = getattr(exc, attr, None)
        if value:
            maps.append(value)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers:
        maps.append(headers)
    return maps


def _get(headers: Any, name: str) -> str | None:
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name:
                return str(value)
        return None
    getter = getattr(headers, "get", None)
    return None if getter is None else getter(name)


def describe(exc: BaseException) -> str:
    """A short, secret-free label of an error: class name and status, e.g. `RateLimitError 429`.

    litellm folds a refused connection into a 500 `InternalServerError`; the cause chain tells
    them apart, so the label says ``(connection refused)`` when that is what happened.
    """
    exc = provider_error(exc)
    status = status_code_of(exc)
    name = type(exc).__name__
    label = f"{name} {status}" if status is not None else name
    cause = _transport_cause(exc)
    return f"{label} ({cause})" if cause else label


def _transport_cause(exc: BaseException) -> str | None:
    seen = 0
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and seen < 8:
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if type(current).__name__ in ("ConnectError", "ClientConnectorError"):
            return "connect error"
        current = current.__cause__ or current.__context__
        seen += 1
    return None


class NoDeploymentAvailable(litellm.ServiceUnavailableError):  # type: ignore[misc]
    """Every candidate of the group was skipped or failed; `reasons` says why, per deployment."""

    def __init__(self, group: str, reasons: Mapping[str, str]) -> None:
        self.group = group
        self.reasons = dict(reasons)
        listed = "; ".join(f"{name}: {why}" for name, why in reasons.items()) or "no deployments"
        super().__init__(
            f"no deployment available for '{group}': {listed}", llm_provider="router", model=group
        )


class DeadlineExceeded(litellm.Timeout, TimeoutError):  # type: ignore[misc]
    """The call's deadline (all attempts, failovers and backoff together) ran out.

    Also a built-in `TimeoutError`, so ``except TimeoutError`` (asyncio code) catches it.
    """

    def __init__(self, group: str, deadline: float, attempts: str) -> None:
        self.group = group
        self.deadline = deadline
        litellm.Timeout.__init__(
            self,
            f"deadline of {deadline:g} s for '{group}' exceeded; attempts: {attempts or 'none'}",
            model=group,
            llm_provider="router",
        )


class StreamInterrupted(litellm.APIConnectionError):  # type: ignore[misc]
    """A stream failed after its first chunk; what was already yielded is incomplete."""

    def __init__(self, group: str, deployment: str, why: str, chunks: int) -> None:
        self.group = group
        self.deployment = deployment
        self.chunks = chunks
        super().__init__(
            f"stream from '{deployment}' for '{group}' interrupted after {chunks} chunk(s): {why}",
            llm_provider="router",
            model=group,
        )


def attach(exc: BaseException, decision: Decision) -> BaseException:
    """Attach the call's decision record to an exception leaving the router."""
    try:
        exc.router_decision = decision  # type: ignore[attr-defined]
    except AttributeError:  # exceptions with __slots__; the record stays reachable via notes
        pass
    exc.add_note(f"router: {decision.reason}")
    return exc


def reattach(exc: BaseException, decision: Decision) -> BaseException:
    """Replace the record an exception carries (escalation composed a fuller one)."""
    notes = getattr(exc, "__notes__", None)
    if notes:
        exc.__notes__ = [n for n in notes if not n.startswith("router: ")]
    return attach(exc, decision)


class NeedsReview(litellm.APIResponseValidationError):  # type: ignore[misc]
    """Escalation was exhausted and the last answer still fails; ``response`` holds it."""

    def __init__(self, group: str, trigger: str, detail: str, response: Any) -> None:
        self.group = group
        self.trigger = trigger
        self.detail = detail
        self.response = response
        super().__init__(
            f"answer for '{group}' needs human review: {trigger} ({detail})",
            llm_provider="router",
            model=group,
        )
