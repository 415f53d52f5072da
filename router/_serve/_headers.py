"""What travels in headers: the decision out (``x-router-*``), W3C trace context in and out."""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router._decision import Decision

__all__ = ["Trace", "decision_headers"]

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_HEADER_SAFE = re.compile(r"[^\x20-\x7e]")
_MAX_REASON_HEADER = 1024


def _header_text(text: str) -> str:
    text = _HEADER_SAFE.sub("?", text)
    return text if len(text) <= _MAX_REASON_HEADER else text[: _MAX_REASON_HEADER - 3] + "..."


def decision_headers(decision: Decision | None) -> dict[str, str]:
    """The decision as response headers (ASCII, bounded; never a key or a message)."""
    if decision is None:
        return {}
    return {
        "x-router-group": _header_text(decision.group),
        "x-router-deployment": _header_text(decision.deployment or ""),
        "x-router-attempts": str(len(decision.attempts)),
        "x-router-reason": _header_text(decision.reason),
        "x-router-cost": f"{decision.cost_usd:.8f}",
    }


# Trace and span ids need to be unique, not secret: a PRNG, as OpenTelemetry's own
# RandomIdGenerator does, instead of a getrandom() syscall per id.
_bits = random.getrandbits


class Trace:
    """W3C trace context of one request: the caller's parent and the gateway's own span id."""

    __slots__ = ("flags", "parent", "span_id", "trace_id")

    def __init__(self, header: str | None) -> None:
        match = _TRACEPARENT.fullmatch(header.strip().lower()) if header else None
        if match and match[1] != "0" * 32 and match[2] != "0" * 16:
            self.trace_id, self.parent, self.flags = match[1], match[2], match[3]
        else:
            self.trace_id, self.parent, self.flags = f"{_bits(128) or 1:032x}", None, "01"
        self.span_id = f"{_bits(64) or 1:016x}"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"
