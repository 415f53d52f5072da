"""structlog decision events: one per call, one per breaker transition, never a secret.

The logger is the router's own (`structlog.wrap_logger` over a writer with our processors), so
an application that configured structlog globally keeps its configuration: nothing here calls
``structlog.configure``. Lines go to stderr (or the file given): JSON by default when stderr is
not a terminal (production), the pretty console renderer when it is.

Redaction is belt and braces: the events are built from the decision record, which holds no
key and no message text, and processors still replace secret-named fields and mask
key-shaped strings in the rendered line, in case a field (now or in future) carries one.
"""

from __future__ import annotations

import json
import re
import sys
import time
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
_SECRET_PREFIXES: Final = ("sk-", "Bearer", "AKIA", "AIza")
"""Substrings every `_SECRET_VALUE` match contains."""
REDACTED: Final = "[redacted]"


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any secret-named field (a structlog processor, before rendering).

    One set test per event in the common case; key-shaped strings inside values are masked
    after rendering, by `mask`.
    """
    if not _SECRET_KEYS.isdisjoint(event):
        for key in _SECRET_KEYS.intersection(event):
            event[key] = REDACTED
    return event


def mask(_logger: Any, _method: str, line: str) -> str:
    """Mask credential-shaped substrings in the rendered line (a structlog processor, last).

    Scanning the one rendered string covers every field, nested ones included, for the cost
    of a single regex search when there is nothing to mask (the normal case).
    """
    # Substring tests first (each a fraction of a microsecond): the regex only runs on a line
    # that contains one of the prefixes it looks for.
    for prefix in _SECRET_PREFIXES:
        if prefix in line:
            return _SECRET_VALUE.sub(REDACTED, line)
    return line


class _Stamp:
    """Adds ``level``, an ISO-8601 UTC ``timestamp`` and ``logger`` (a structlog processor).

    structlog's TimeStamper formats a datetime per event; this keeps the formatted second and
    only appends the microseconds, a quarter of the cost.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        event["level"] = "warning" if method == "warn" else method
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        event["logger"] = "router"
        return event


def _fallback(value: Any) -> Any:
    """What structlog's JSON renderer does with a value JSON has no type for."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


_JSON: Final = json.JSONEncoder(default=_fallback)
"""One encoder for every event: ``json.dumps(event, default=...)``, structlog's default,
builds a new `json.JSONEncoder` per call; the line is the same."""


def _to_json(event: Any, **_: Any) -> str:
    return _JSON.encode(event)


def _line_encoder() -> Callable[[Any], str]:
    """`_JSON.encode` for an event dict, with its C encoder built once.

    ``JSONEncoder.encode`` builds a C encoder (and a float-formatting closure) on every call;
    this one is built once with the same settings (ASCII, ``": "`` / ``", "``, the same
    fallback, NaN allowed) and no circular-reference markers: an event dict is built fresh
    by the router and holds no cycle (one would raise `RecursionError` instead of
    ``ValueError``, and the observer's guard drops the event either way). The text is the
    same (tests/telemetry/test_logs.py compares it with structlog's renderer). Without
    the C accelerator, `_JSON.encode` itself.
    """
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)  # the C accelerator (absent: pure Python)
    if make is None:
        return _JSON.encode
    chunks = make(
        None, _fallback, encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    join = "".join

    def encode(event: Any) -> str:
        return join(chunks(event, 0))

    return encode


_encode_line: Final = _line_encoder()


class JsonLines:
    """The JSON decision log without structlog's per-event machinery: the same processors
    (`_Stamp`, `redact`, the one encoder, `mask`) called in the same order on the same event
    dict, the line written and flushed under a lock as structlog's ``WriteLogger`` does, and
    level filtering as ``make_filtering_bound_logger``'s (a method below the level does
    nothing). The line is byte for byte the structlog pipeline's (tests/telemetry/test_logs.py);
    each event skips the bound logger's dispatch, the context copy and the processor loop.
    """

    __slots__ = ("_flush", "_level", "_lock", "_stamp", "_write")

    def __init__(self, stream: TextIO, level: int) -> None:
        import threading

        self._write = stream.write
        self._flush = stream.flush
        self._lock = threading.Lock()
        self._stamp = _Stamp()
        self._level = level

    def _emit(self, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        if args:
            event = event % args
        fields["event"] = event
        line = mask(
            None, method, _encode_line(redact(None, method, self._stamp(None, method, fields)))
        )
        with self._lock:
            self._write(line + "\n")
            self._flush()

    def _at(
        self, level: int, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]
    ) -> None:
        if level >= self._level:
            self._emit(method, event, args, fields)

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        """Log `event` at debug level (nothing below the logger's level)."""
        self._at(10, "debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        """Log `event` at info level."""
        self._at(20, "info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        """Log `event` at warning level."""
        self._at(30, "warning", event, args, fields)

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        """Log `event` at error level."""
        self._at(40, "error", event, args, fields)


def make_logger(
    file: TextIO | None = None,
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    *,
    direct: bool = True,
) -> Any:
    """A logger writing one line per event to `file` (default: stderr).

    ``fmt="auto"`` renders JSON unless `file` is a terminal. JSON lines are written by
    `JsonLines` (`direct`; the same line as the structlog pipeline below, which
    ``direct=False`` returns); the console format is structlog's concrete bound logger (not a
    lazy proxy), so each event pays only its processors.
    """
    stream: TextIO = file if file is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    terminal = bool(isatty is not None and isatty())
    if fmt == "auto":
        fmt = "console" if terminal else "json"
    if fmt == "json" and direct:
        return JsonLines(stream, LEVELS.get(level, 20))
    renderer: Callable[..., Any]
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(
            colors=terminal,
            # Not the rich default: it prints local variables, which may hold a key.
            exception_formatter=structlog.dev.plain_traceback,
        )
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_to_json)
    processors: list[Any] = [
        _Stamp(),
        redact,
        renderer,
        mask,
    ]
    wrapper = structlog.make_filtering_bound_logger(LEVELS.get(level, 20))
    return structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=processors,
        wrapper_class=wrapper,
        context_class=dict,
        cache_logger_on_first_use=True,
    ).bind()
