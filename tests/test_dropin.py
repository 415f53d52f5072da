"""Drop-in rules through the seams (fake backend, fake clock): what a caller written against
litellm relies on. Over real litellm and loopback servers: tests/integration/test_dropin_http.py.
"""

from __future__ import annotations

from typing import Any

import litellm
import pytest

from router import NoDeploymentAvailable, Router, get_decision
from router._errors import (
    AllRateLimited,
    AllUnauthorized,
    Outcome,
    classify,
    from_provider,
    out_of_candidates,
)
from router.testing import FakeBackend, FakeClock, Step, fail

from .test_engine import MSG, config


def make(cfg: dict[str, Any] | None = None) -> tuple[Router, FakeBackend, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(clock)
    return Router(cfg or config(), backend=backend, clock=clock, seed=1), backend, clock


# -- item 4: an exception that is not the provider's counts for nothing -----------------------


def _wrapped(inner: BaseException) -> litellm.APIConnectionError:
    """What litellm raises when its own request building fails (messages="hi", tools=5)."""
    try:
        raise inner
    except BaseException:
        try:
            raise litellm.APIConnectionError("wrapped", llm_provider="openai", model="m")
        except litellm.APIConnectionError as outer:
            return outer
    raise AssertionError("unreachable")


def _provider_wrapped() -> litellm.APIConnectionError:
    """A refused connection, as litellm surfaces it: transport errors in the chain."""
    try:
        raise ConnectionRefusedError(111, "refused")
    except ConnectionRefusedError:
        try:
            raise litellm.APIConnectionError("refused", llm_provider="openai", model="m")
        except litellm.APIConnectionError as outer:
            return outer
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("acompletion() got multiple values for keyword argument 'api_key'"),
        AttributeError("'NoneType' object has no attribute 'get'"),
        KeyError("x"),
        _wrapped(AttributeError("'str' object has no attribute 'get'")),
        _wrapped(TypeError("'int' object is not iterable")),
    ],
)
def test_exceptions_not_from_the_provider_are_classified_by_origin(exc: BaseException) -> None:
    assert not from_provider(exc)
    assert classify(exc) is Outcome.NOT_PROVIDER


@pytest.mark.parametrize(
    "exc",
    [
        litellm.APIConnectionError("plain", llm_provider="openai", model="m"),
        _provider_wrapped(),
        litellm.RateLimitError("429", llm_provider="openai", model="m"),
        ConnectionResetError(),
        TimeoutError(),
        ValueError("malformed JSON"),
    ],
)
def test_provider_errors_keep_their_class_outcome(exc: BaseException) -> None:
    assert from_provider(exc)
    assert classify(exc) is not Outcome.NOT_PROVIDER


async def test_a_bug_in_the_call_is_raised_at_once_and_counts_for_nothing() -> None:
    router, backend, clock = make()
    bug = TypeError("acompletion() got multiple values for keyword argument 'api_key'")
    backend.script("a", default=Step(error=bug))
    for _ in range(8):  # twice what opened both breakers before
        with pytest.raises(TypeError) as info:
            await router.acompletion("chat", MSG)
        assert info.value is bug
    assert backend.calls_to("b") == 0 and backend.calls_to("c") == 0  # no failover
    decision = get_decision(info.value)
    assert decision is not None and decision.outcome == "error"
    assert decision.attempts[-1].outcome == "not_provider"
    health = {h.deployment: h for h in router.health()}
    assert health["a"].state == "closed" and health["a"].trips == 0
    assert health["a"].error_rate == 0.0 and health["a"].calls == 0
    assert "0 retries/hedges" in router.budget.describe(clock.now())
    backend.script("a", default=Step())
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "a"  # type: ignore[union-attr]


@pytest.mark.parametrize("key", ["api_key", "api_base", "base_url", "api_version"])
async def test_per_call_credentials_on_a_group_are_refused_clearly(key: str) -> None:
    router, backend, _ = make()
    for _ in range(6):
        with pytest.raises(litellm.UnsupportedParamsError) as info:
            kwargs: dict[str, Any] = {key: "sk-or-url-of-the-caller"}
            await router.acompletion("chat", MSG, **kwargs)
        assert key in str(info.value) and "chat" in str(info.value)
        assert "sk-or-url-of-the-caller" not in str(info.value)
    assert backend.calls == []
    assert all(h.state == "closed" for h in router.health())
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "a"  # type: ignore[union-attr]


# -- item 5: candidates out for one reason raise that reason's litellm class -------------------


def test_out_of_candidates_picks_the_shared_reason() -> None:
    reasons = {"a": "failed: RateLimitError 429", "b": "rate-limited for 3 s (2.0 s left)"}
    err = out_of_candidates("chat", reasons, {"a": Outcome.RATE_LIMITED, "b": 429}, 2.0)
    assert isinstance(err, AllRateLimited) and isinstance(err, litellm.RateLimitError)
    assert isinstance(err, NoDeploymentAvailable)
    assert err.status_code == 429 and err.retry_after == 2.0 and err.reasons == reasons
    assert err.response.headers["retry-after"] == "2"
    unauthorized = out_of_candidates("chat", {"a": "x"}, {"a": 401})
    assert isinstance(unauthorized, AllUnauthorized) and unauthorized.status_code == 401
    mixed = out_of_candidates("chat", reasons, {"a": Outcome.RATE_LIMITED, "b": Outcome.FAILURE})
    assert type(mixed) is NoDeploymentAvailable and mixed.status_code == 503


async def test_every_candidate_429_raises_litellms_rate_limit_error() -> None:
    router, backend, clock = make()
    for name in "abc":
        backend.script(name, default=fail(429, retry_after=30))
    try:
        await router.acompletion("chat", MSG)
    except litellm.RateLimitError as exc:  # what code written against litellm catches
        assert isinstance(exc, NoDeploymentAvailable)
        assert set(exc.reasons) == {"a", "b", "c"}
        assert exc.retry_after == pytest.approx(30.0)
    else:
        raise AssertionError("no RateLimitError")
    with pytest.raises(litellm.RateLimitError):  # the second 429 in a row pauses each
        await router.acompletion("chat", MSG)
    calls = len(backend.calls)
    with pytest.raises(litellm.RateLimitError) as info:  # all paused: skipped, same class
        await router.acompletion("chat", MSG)
    assert len(backend.calls) == calls
    assert info.value.retry_after == pytest.approx(30.0, abs=0.5)
    assert all("rate-limited" in why for why in info.value.reasons.values())
    clock.advance(31)
    backend.script("a", default=Step())
    assert get_decision(await router.acompletion("chat", MSG)).deployment == "a"  # type: ignore[union-attr]


async def test_every_candidate_401_raises_litellms_authentication_error() -> None:
    router, backend, _ = make()
    for name in "abc":
        backend.script(name, default=fail(401))
    with pytest.raises(litellm.AuthenticationError) as info:
        await router.acompletion("chat", MSG)
    assert isinstance(info.value, NoDeploymentAvailable)
    calls = len(backend.calls)
    with pytest.raises(litellm.AuthenticationError):  # breakers open for the refused keys
        await router.acompletion("chat", MSG)
    assert len(backend.calls) == calls


async def test_mixed_reasons_stay_no_deployment_available() -> None:
    router, backend, _ = make()
    backend.script("a", default=fail(429, retry_after=30))
    backend.script("b", default=fail(401))
    backend.script("c", default=fail(429, retry_after=30))
    with pytest.raises(NoDeploymentAvailable) as info:
        await router.acompletion("chat", MSG)
    assert not isinstance(info.value, litellm.RateLimitError | litellm.AuthenticationError)
