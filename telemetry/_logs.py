"""structlog decision events: one per call, one per breaker transition, never a secret.

The logger is the router's own (`structlog.wrap_logger` over a writer with our processors), so
an application that configured structlog globally keeps its configuration: nothing here calls
``structlog.configure``. Lines go to stderr (or the file given): JSON by default when stderr is
not a terminal (production), the pretty console renderer when it is.

Redaction is belt and braces: the events are built from the decision record, which holds no
key and no message text, and a processor still drops secret-named fields and masks
key-shaped strings in case a caller's own fields (or a future one) carry one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, Final, Literal, TextIO

import structlog

LEVELS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_SECRET_NAMES: Final = (
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "password",
    "secret",
    "access_token",
    "refresh_token",
    "client_secret",
    "aws_secret_access_key",
    "x-api-key",
)
# Exact names in the usual spellings: a set test per event is cheaper than lower-casing every
# key of every event.
_SECRET_KEYS: Final = frozenset(
    spelling
    for name in _SECRET_NAMES
    for spelling in (name, name.upper(), name.title(), name.capitalize())
)
# Strings shaped like credentials: OpenAI/Anthropic-style keys, bearer tokens, AWS key ids,
# Google API keys. A stray match is replaced, never logged.
_SECRET_VALUE: Final = re.compile(
    r"(?:\bsk-[A-Za-z0-9_\-]{6,}|\bBearer\s+[A-Za-z0-9._\-~+/]+=*|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_\-]{20,})"
)
REDACTED: Final = "[redacted]"


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-named fields and mask credential-shaped substrings (a structlog processor).

    The common case (nothing to redact) costs one set test over the keys and one regex scan over
    the string values joined: a field-by-field pass happens only when something matched.
    """
    if not _SECRET_KEYS.isdisjoint(event):
        for key in _SECRET_KEYS.intersection(event):
            event[key] = REDACTED
    strings = [v for v in event.values() if isinstance(v, str)]
    strings.extend(
        x for v in event.values() if isinstance(v, list | tuple) for x in v if isinstance(x, str)
    )
    if _SECRET_VALUE.search("\n".join(strings)) is None:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = _SECRET_VALUE.sub(REDACTED, value)
        elif isinstance(value, list | tuple):
            event[key] = [
                _SECRET_VALUE.sub(REDACTED, v) if isinstance(v, str) else v for v in value
            ]
    return event


def make_logger(
    file: TextIO | None = None,
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
) -> Any:
    """A bound structlog logger writing one line per event to `file` (default: stderr).

    ``fmt="auto"`` renders JSON unless `file` is a terminal. Returns the concrete bound logger
    (not a lazy proxy), so each event pays only its processors.
    """
    stream: TextIO = file if file is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    terminal = bool(isatty is not None and isatty())
    if fmt == "auto":
        fmt = "console" if terminal else "json"
    renderer: Callable[..., Any]
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(
            colors=terminal,
            # Not the rich default: it prints local variables, which may hold a key.
            exception_formatter=structlog.dev.plain_traceback,
        )
    else:
        renderer = structlog.processors.JSONRenderer()
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
        renderer,
    ]
    wrapper = structlog.make_filtering_bound_logger(LEVELS.get(level, 20))
    return structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=processors,
        wrapper_class=wrapper,
        context_class=dict,
        cache_logger_on_first_use=True,
    ).bind(logger="router")
