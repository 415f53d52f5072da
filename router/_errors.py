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
not_provider         an exception that did not come from the provider: a          raise as is,
                     `TypeError`/`AttributeError`/`KeyError`... from argument     counts for
                     handling or a bug (see `from_provider`)                      nothing
===================  ===========================================================  ============
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import litellm
import openai

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
# Python's programming-error classes: raised by argument handling or a bug, never by a provider.
_PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    LookupError,
    NameError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    ArithmeticError,
)


def from_provider(exc: BaseException) -> bool:
    """False when `exc` did not come from the provider: a caller's argument or a bug.

    Decided by where the exception came from, not by its message:

    - a programming-error class (`TypeError`, `AttributeError`, `KeyError`, ...) raised as is
      never went through litellm's provider call: Python's argument binding (``got multiple
      values for keyword argument``), the router's code, a hook or a tool;
    - litellm's catch-all `APIConnectionError` (status 500, no response) wrapping such an error
      directly, with no transport or HTTP error anywhere in its cause chain, is litellm failing
      to *build* the request (``messages="hi"``, ``tools=5``): nothing was sent. A malformed
      *answer* reaches the caller differently (wrapped by the provider handler's own error
      first), so it still counts against the deployment.
    """
    if isinstance(exc, _PROGRAMMING_ERRORS):
        return False
    if type(exc) is litellm.APIConnectionError:
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, _PROGRAMMING_ERRORS) and not _transport_in_chain(inner):
            return False
    return True


def _transport_in_chain(exc: BaseException) -> bool:
    current: BaseException | None = exc
    seen = 0
    while current is not None and seen < 16:
        if isinstance(current, OSError | TimeoutError) or status_code_of(current) is not None:
            return True
        module = type(current).__module__
        if module.startswith(("httpx", "aiohttp", "httpcore", "openai", "anyio", "h11")):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def classify(exc: BaseException) -> Outcome:
    """Map an attempt's exception to its `Outcome` (see the module docstring's table)."""
    exc = provider_error(exc)
    if not from_provider(exc):
        return Outcome.NOT_PROVIDER
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
    """Every candidate of the group was skipped or failed; `reasons` says why, per deployment.

    When every candidate was out for one and the same reason, the error is also that reason's
    litellm class, as litellm and `litellm.Router` raise it: `AllRateLimited` (a
    `litellm.RateLimitError`, 429) when each answered 429 or was paused by one or by an RPM/TPM
    limit, `AllUnauthorized` (a `litellm.AuthenticationError`, 401) when each answered 401.
    ``except NoDeploymentAvailable`` catches all three. ``retry_after``: seconds until the
    soonest candidate may be tried again, when known (also the ``Retry-After`` header of
    ``exc.response``).
    """

    _chained = False

    def __init__(
        self,
        group: str,
        reasons: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        **chain: Any,
    ) -> None:
        if self._chained:
            # Reached through a subclass's litellm base (cooperative ``super().__init__``):
            # that base has set its own status and message; finish the openai constructor.
            openai.APIStatusError.__init__(self, group, **chain)
            return
        self._route(group, reasons or {}, retry_after)
        super().__init__(self._listing(), llm_provider="router", model=group)

    def _route(self, group: str, reasons: Mapping[str, str], retry_after: float | None) -> None:
        self.group = group
        self.reasons = dict(reasons)
        self.retry_after = retry_after

    def _listing(self) -> str:
        listed = "; ".join(f"{name}: {why}" for name, why in self.reasons.items())
        return f"no deployment available for '{self.group}': {listed or 'no deployments'}"


def _status_response(status: int, retry_after: float | None) -> Any:
    import httpx

    headers = {} if retry_after is None else {"retry-after": f"{max(0, math.ceil(retry_after))}"}
    request = httpx.Request("POST", "http://router.invalid/")
    return httpx.Response(status_code=status, headers=headers, request=request)


class AllRateLimited(litellm.RateLimitError, NoDeploymentAvailable):  # type: ignore[misc]
    """Every candidate answered 429 or was paused by one (or by an RPM/TPM limit)."""

    _chained = True

    def __init__(
        self, group: str, reasons: Mapping[str, str], retry_after: float | None = None
    ) -> None:
        self._route(group, reasons, retry_after)
        litellm.RateLimitError.__init__(
            self,
            self._listing(),
            llm_provider="router",
            model=group,
            response=_status_response(429, retry_after),
            headers=None if retry_after is None else {"retry-after": f"{retry_after:g}"},
        )


class AllUnauthorized(litellm.AuthenticationError, NoDeploymentAvailable):  # type: ignore[misc]
    """Every candidate answered 401 (its key was refused), now or when its breaker opened."""

    _chained = True

    def __init__(
        self, group: str, reasons: Mapping[str, str], retry_after: float | None = None
    ) -> None:
        self._route(group, reasons, retry_after)
        litellm.AuthenticationError.__init__(
            self,
            self._listing(),
            llm_provider="router",
            model=group,
            response=_status_response(401, None),
        )


def out_of_candidates(
    group: str,
    reasons: Mapping[str, str],
    kinds: Mapping[str, Outcome | int],
    retry_after: float | None = None,
) -> NoDeploymentAvailable:
    """The error for a call whose candidates ran out, by why each one was out.

    `kinds` maps each deployment to why it was out: `Outcome.RATE_LIMITED` (a 429 now, or a
    pause), an HTTP status (401 from a refused key), anything else. One shared reason gives
    that reason's litellm class (`AllRateLimited`, `AllUnauthorized`); a mix, the 503.
    """
    values = {Outcome.RATE_LIMITED if k == 429 else k for k in kinds.values()}
    if len(values) == 1 and reasons and kinds.keys() >= reasons.keys():
        (kind,) = values
        if kind == Outcome.RATE_LIMITED:
            return AllRateLimited(group, reasons, retry_after)
        if kind == 401:
            return AllUnauthorized(group, reasons)
    return NoDeploymentAvailable(group, reasons, retry_after)


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
