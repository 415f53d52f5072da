"""The simulated provider's run-time knobs: :class:`Behavior`, :class:`Script` and their checks.

Every knob is validated where it is set (``SimProvider.set``, ``POST /_sim/knobs``, a
``Behavior``/``Script`` built by hand), so a bad value fails with a one-line ``ValueError`` naming
the knob, not on a later request.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINISH_REASONS", "KNOBS", "Behavior", "Script"]

FINISH_REASONS: frozenset[str] = frozenset(
    {"stop", "length", "content_filter", "tool_calls", "function_call"}
)
"""The ``finish_reason`` values OpenAI sends, the ones a :class:`Script` may choose."""

_SCRIPT_KEYS: frozenset[str] = frozenset(
    {"pattern", "reply", "finish_reason", "logprobs", "refusal"}
)


@dataclass(frozen=True)
class Script:
    """What a provider answers to prompts matching ``pattern`` (see ``Behavior.scripts``).

    ``pattern`` is a Python regex searched (``re.search``, case-sensitive unless the pattern
    says ``(?i)``) in the request's message contents, every role, joined with newlines.
    ``reply`` is the answer's content (``{provider}`` becomes the provider's name); with a
    ``refusal`` and an empty ``reply`` the content is ``null``, as OpenAI sends a refusal.
    ``finish_reason`` is sent as given (``"length"`` plays an answer cut at max_tokens).
    ``logprobs``, when set and the request asks ``logprobs: true``, is the mean of the
    per-token logprobs returned in ``choices[0].logprobs.content`` (must be <= 0).
    ``refusal`` fills the OpenAI ``message.refusal`` field.
    """

    pattern: str
    reply: str
    finish_reason: str = "stop"
    logprobs: float | None = None
    refusal: str | None = None

    def __post_init__(self) -> None:
        # Checked here so that a bad script fails where it is written, not on a request.
        if not isinstance(self.pattern, str):
            raise ValueError(f"script pattern must be a string, got {self.pattern!r}")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(
                f"script pattern {self.pattern!r} is not a valid regex: {exc}"
            ) from None
        if not isinstance(self.reply, str):
            raise ValueError(f"script reply must be a string, got {self.reply!r}")
        if self.finish_reason not in FINISH_REASONS:
            known = ", ".join(sorted(FINISH_REASONS))
            raise ValueError(
                f"script finish_reason must be one of {known}, got {self.finish_reason!r}"
            )
        if self.logprobs is not None:
            _number("logprobs", self.logprobs, low=-math.inf, high=0.0)
        if self.refusal is not None and not isinstance(self.refusal, str):
            raise ValueError(f"script refusal must be a string or None, got {self.refusal!r}")

    def matches(self, text: str) -> bool:
        """Whether this script answers a request whose joined message contents are `text`."""
        return re.search(self.pattern, text) is not None


@dataclass
class Behavior:
    """Run-time knobs of one simulated provider (all may be changed while it serves).

    Checks are applied in this order: ``hang``, then latency, then ``outage="503"``,
    ``auth_fail``, request validation, ``content_filter``, ``context_window``, ``rate_limit_rate``,
    ``error_rate``, ``malformed``; otherwise a normal answer: the first of ``scripts`` whose
    pattern matches the prompt, else ``reply``. Latency applies to every answer, errors
    included, so a failing provider is not unrealistically fast.
    """

    latency_ms: float = 5.0
    """Base delay before any answer (for streams: before the response headers)."""
    latency_jitter_ms: float = 0.0
    """Extra delay drawn uniformly from [0, jitter]."""
    error_rate: float = 0.0
    """Fraction of requests answered with ``error_status``."""
    error_status: int = 500
    """Status of ``error_rate`` errors (400-599), e.g. 500, 502, 503."""
    rate_limit_rate: float = 0.0
    """Fraction of requests answered 429 with ``Retry-After``."""
    retry_after_s: float = 1.0
    """Advertised wait: ``Retry-After`` rounded up to whole seconds, exact in ``retry-after-ms``."""
    retry_after_header: bool = True
    """Whether a 429 carries ``Retry-After`` / ``retry-after-ms`` at all (many do not)."""
    slow_rate: float = 0.0
    """Fraction of requests (drawn apart from the other draws) given ``slow_ms`` more latency:
    a heavy tail, or a bimodal mix with ``latency_jitter_ms``."""
    slow_ms: float = 0.0
    """The extra latency of the ``slow_rate`` requests."""
    outage: str | None = None
    """``None``; ``"503"`` (every request 503); ``"refused"`` (port closed)."""
    hang: bool = False
    """Accept requests and never answer, until the client gives up or the fleet stops."""
    first_chunk_delay_ms: float = 0.0
    """Extra delay between a stream's headers and its first chunk (slow first token)."""
    chunk_delay_ms: float = 1.0
    """Delay between stream chunks."""
    stream_chunks: int = 5
    """Number of content chunks the reply is split into when streamed."""
    cut_stream_after: int | None = None
    """Stream only: send this many content chunks, then abort the connection (no [DONE])."""
    malformed: bool = False
    """Answer 200 with a body (or a stream event) that is not valid JSON."""
    auth_fail: bool = False
    """Answer 401 ``invalid_api_key``."""
    context_window: int | None = None
    """Answer 400 ``context_length_exceeded`` when prompt + max_tokens estimates exceed it."""
    stream_error_after: int | None = None
    """Stream only: send this many content chunks, then an in-band error event in the
    provider's own vocabulary (Anthropic ``event: error`` overloaded_error, a Gemini ``error``
    chunk, a Bedrock ``throttlingException`` frame, an Azure/OpenAI ``error`` data line)."""
    stream_no_finish: bool = False
    """Stream only: end the body cleanly without a finish reason (no Anthropic
    ``message_stop``, no Gemini ``finishReason``, no Bedrock ``messageStop``, no
    ``finish_reason`` before ``[DONE]``)."""
    content_filter: bool = False
    """Block the prompt with the provider's content-safety answer (Azure 400
    ``content_filter``, Gemini ``promptFeedback.blockReason``, Bedrock
    ``guardrail_intervened``, Anthropic ``refusal``, OpenAI ``finish_reason=content_filter``)."""
    reply: str = "Hello from {provider}."
    """Answer text; ``{provider}`` becomes the provider's name."""
    embedding_dimensions: int = 16
    """``/v1/embeddings``: vector size when the request names no ``dimensions``."""
    scripts: list[Script] = field(default_factory=list)
    """Scripted answers by prompt pattern, first match wins (else ``reply``); plain and
    streamed. Dicts with :class:`Script`'s fields are accepted (the control plane sends JSON)."""

    def __post_init__(self) -> None:
        # A Behavior built with dicts (as from JSON) holds Scripts like one set through knobs.
        self.scripts = _scripts("scripts", self.scripts)


KNOBS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Behavior))
"""Names accepted by :meth:`SimProvider.set` and ``POST /_sim/knobs``."""


def _number(name: str, value: Any, *, low: float = 0.0, high: float = math.inf) -> float:
    # bool is an int subclass; True as a latency is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"knob {name!r} must be a number, got {value!r}")
    if not low <= value <= high:  # also rejects NaN
        raise ValueError(f"knob {name!r} must be within [{low}, {high}], got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"knob {name!r} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"knob {name!r} must be within [{low}, {high}], got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"knob {name!r} must be a boolean, got {value!r}")
    return value


def _outage(name: str, value: Any) -> str | None:
    # Accept 503 as a number too: it is what people type in JSON and on the command line.
    if value is None or value in ("503", "refused"):
        return value  # type: ignore[no-any-return]
    if value == 503 and not isinstance(value, bool):
        return "503"
    raise ValueError(f"knob {name!r} must be None, '503' or 'refused', got {value!r}")


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"knob {name!r} must be a string, got {value!r}")
    return value


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _script(name: str, value: Any) -> Script:
    if isinstance(value, Script):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"knob {name!r}: each script must be a Script or an object, got {value!r}")
    unknown = sorted(set(value) - _SCRIPT_KEYS)
    if unknown:
        known = ", ".join(sorted(_SCRIPT_KEYS))
        raise ValueError(f"knob {name!r}: unknown script key(s) {', '.join(unknown)} ({known})")
    missing = sorted({"pattern", "reply"} - set(value))
    if missing:
        raise ValueError(f"knob {name!r}: a script needs {' and '.join(missing)}")
    try:
        return Script(**value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"knob {name!r}: {exc}") from None


def _scripts(name: str, value: Any) -> list[Script]:
    # A fresh list: the provider's copy must not change when the caller's list does.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"knob {name!r} must be a list of scripts, got {value!r}")
    return [_script(name, item) for item in value]


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _number,
    "latency_jitter_ms": _number,
    "error_rate": lambda n, v: _number(n, v, high=1.0),
    "error_status": lambda n, v: _integer(n, v, low=400, high=599),
    "rate_limit_rate": lambda n, v: _number(n, v, high=1.0),
    "retry_after_s": _number,
    "retry_after_header": _flag,
    "slow_rate": lambda n, v: _number(n, v, high=1.0),
    "slow_ms": _number,
    "outage": _outage,
    "hang": _flag,
    "first_chunk_delay_ms": _number,
    "chunk_delay_ms": _number,
    "stream_chunks": lambda n, v: _integer(n, v, low=1),
    "cut_stream_after": _optional(lambda n, v: _integer(n, v, low=0)),
    "malformed": _flag,
    "auth_fail": _flag,
    "context_window": _optional(lambda n, v: _integer(n, v, low=1)),
    "stream_error_after": _optional(lambda n, v: _integer(n, v, low=0)),
    "stream_no_finish": _flag,
    "content_filter": _flag,
    "reply": _text,
    "embedding_dimensions": lambda n, v: _integer(n, v, low=1, high=4096),
    "scripts": _scripts,
}
assert set(_CHECKS) == KNOBS, "every Behavior field needs a validator"


def _validate(knobs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(knobs) - KNOBS)
    if unknown:
        raise ValueError(
            f"unknown knob(s): {', '.join(unknown)} (known: {', '.join(sorted(KNOBS))})"
        )
    return {name: _CHECKS[name](name, value) for name, value in knobs.items()}
