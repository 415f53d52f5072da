"""`QuietLogging`: litellm's no-logging scope only when no callback, budget or call asks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from litellm._internal_context import is_internal_call

from router._quiet import QuietLogging


def _litellm(**overrides: Any) -> SimpleNamespace:
    """A stand-in for the litellm module with its callback lists and budget as after import."""
    lists: dict[str, list[Any]] = {
        name: []
        for name in (
            "callbacks",
            "success_callback",
            "failure_callback",
            "_async_success_callback",
            "_async_failure_callback",
            "input_callback",
            "_async_input_callback",
            "service_callback",
            "audit_log_callbacks",
        )
    }
    return SimpleNamespace(**{**lists, "max_budget": 0.0, "cache": None, **overrides})


def test_nobody_listening_makes_the_call_inside_litellms_internal_scope() -> None:
    quiet = QuietLogging(_litellm(), env={})
    assert quiet.available and not quiet.listening({"messages": []})
    assert is_internal_call.get() is False
    with quiet.scope({"messages": []}):
        assert is_internal_call.get() is True
    assert is_internal_call.get() is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"callbacks": ["otel"]},
        {"success_callback": [lambda *a: None]},
        {"failure_callback": ["langfuse"]},
        {"_async_success_callback": [object()]},
        {"_async_failure_callback": [object()]},
        {"input_callback": [object()]},
        {"service_callback": ["prometheus_system"]},
        {"audit_log_callbacks": [object()]},
        {"max_budget": 10.0},
        {"success_callback": ["cache"], "cache": object()},
    ],
)
def test_any_registered_callback_or_budget_keeps_litellms_logging(
    overrides: dict[str, Any],
) -> None:
    quiet = QuietLogging(_litellm(**overrides), env={})
    assert quiet.listening({"messages": []})
    with quiet.scope({"messages": []}):
        assert is_internal_call.get() is False


@pytest.mark.parametrize("key", ["callbacks", "success_callback", "failure_callback", "logger_fn"])
def test_a_per_call_callback_keeps_litellms_logging(key: str) -> None:
    quiet = QuietLogging(_litellm(), env={})
    request = {"messages": [], key: [object()]}
    assert quiet.listening(request)
    with quiet.scope(request):
        assert is_internal_call.get() is False


def test_callbacks_registered_later_are_seen_on_the_next_call() -> None:
    fake = _litellm()
    quiet = QuietLogging(fake, env={})
    assert not quiet.listening({})
    fake.callbacks.append(object())
    assert quiet.listening({})


def test_the_environment_turns_skipping_off() -> None:
    quiet = QuietLogging(_litellm(), env={"ROUTER_LITELLM_LOGGING": "1"})
    assert not quiet.available
    with quiet.scope({"messages": []}):
        assert is_internal_call.get() is False


def test_an_uninstalled_cache_left_in_the_lists_is_not_a_listener() -> None:
    # What importing litellm's Gemini path leaves behind: "cache" in three lists, no litellm.cache.
    names = ("success_callback", "_async_success_callback", "input_callback")
    leftover = {name: ["cache"] for name in names}
    quiet = QuietLogging(_litellm(**leftover), env={})
    assert not quiet.listening({"messages": []})
