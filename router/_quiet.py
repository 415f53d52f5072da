"""Skip litellm's logging work on a call nobody is listening to.

For every call, litellm 1.110.2 builds a "standard logging payload" and schedules an async
success task (or runs its failure handlers), whether or not any callback is registered: about a
fifth of a zero-latency call's CPU on this project's benchmark machine. The router records
every attempt itself (decision record, its own cost), so when no litellm callback is registered
nothing reads that work.

litellm has no public per-call switch that skips it: ``"no-log": True`` only skips each
callback (the payload is still built) and would hide events from callbacks a user does
register. The switch that exists is litellm's own task-scoped flag for a call whose caller logs
and bills it (``litellm._internal_context.internal_sub_call``, a context variable, not a
module global): it makes litellm skip success and failure logging for calls made inside it,
while the response and its ``_hidden_params`` (``response_cost`` included) are still built.

`LiteLLMTransport` makes a call inside that scope only when nobody could observe the difference:
no callback in any of litellm's callback lists, no budget (``litellm.max_budget`` is enforced
from the success logging), and no per-call callback keyword. A user who registers a callback
(even after the router was built) gets exactly the events litellm sends, since the lists are
read on every call. ``ROUTER_LITELLM_LOGGING=1`` turns the skipping off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

_CALLBACK_LISTS = (
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
"""litellm's module-level callback lists (read, never written)."""

_CACHE_ONLY = ["cache"]
"""What constructing any ``litellm.Cache`` leaves in the lists, even one that is never installed:
litellm's Vertex/Gemini context-caching module builds a local ``Cache`` at import, so after the
first Gemini call every process has it. It stands for litellm's response cache, which acts only
when ``litellm.cache`` is set, so on its own it is not a listener."""

_CALL_KEYS = frozenset(
    {"callbacks", "success_callback", "failure_callback", "litellm_logging_obj", "logger_fn"}
)
"""Per-call keywords through which a caller asks litellm for its logging."""


class QuietLogging:
    """Decides, per call, whether litellm's logging may be skipped (see the module docstring)."""

    __slots__ = ("_litellm", "_scope")

    def __init__(self, litellm: Any, env: Mapping[str, str] | None = None) -> None:
        self._litellm = litellm
        scope: Callable[[], AbstractContextManager[object]] | None = None
        if (env if env is not None else os.environ).get("ROUTER_LITELLM_LOGGING") != "1":
            try:
                from litellm._internal_context import internal_sub_call

                scope = internal_sub_call
            except ImportError:  # another litellm version: log as litellm always does
                scope = None
        self._scope = scope

    @property
    def available(self) -> bool:
        """Whether this litellm offers the scope (and it was not turned off)."""
        return self._scope is not None

    def listening(self, request: Mapping[str, Any]) -> bool:
        """True when a callback, a budget or the call itself wants litellm's logging."""
        litellm = self._litellm
        for name in _CALLBACK_LISTS:
            entries = getattr(litellm, name, None)
            if entries and (entries != _CACHE_ONLY or litellm.cache is not None):
                return True
        if getattr(litellm, "max_budget", None):
            return True
        return not _CALL_KEYS.isdisjoint(request)

    def scope(self, request: Mapping[str, Any]) -> AbstractContextManager[object]:
        """The context to make this call in: litellm's no-logging scope, or nothing."""
        if self._scope is None or self.listening(request):
            return nullcontext()
        return self._scope()
