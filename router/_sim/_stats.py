"""Traffic counters of one simulated provider, whatever protocol it speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

__all__ = ["ProviderStats", "StatsSnapshot"]


class StatsSnapshot(TypedDict):
    """A point-in-time copy of :class:`ProviderStats`."""

    requests: int
    ok: int
    streams: int
    errors_by_status: dict[int, int]
    rate_limited: int
    hung: int
    cut: int
    malformed: int


@dataclass
class ProviderStats:
    """Counters of one provider's chat-completion traffic (the control plane is not counted).

    ``requests`` counts every chat request received; ``ok`` the ones answered completely and
    well (a stream counts once it reached ``[DONE]``); ``streams`` the streams started with a
    200; ``errors_by_status`` every non-200 answer by status, 429s and 400s included;
    ``rate_limited``, ``hung``, ``cut`` and ``malformed`` count those behaviours.
    """

    requests: int = 0
    ok: int = 0
    streams: int = 0
    errors_by_status: dict[int, int] = field(default_factory=dict)
    rate_limited: int = 0
    hung: int = 0
    cut: int = 0
    malformed: int = 0

    def as_dict(self) -> StatsSnapshot:
        """Return a snapshot that later traffic will not change."""
        return StatsSnapshot(
            requests=self.requests,
            ok=self.ok,
            streams=self.streams,
            errors_by_status=dict(self.errors_by_status),
            rate_limited=self.rate_limited,
            hung=self.hung,
            cut=self.cut,
            malformed=self.malformed,
        )

    def clear(self) -> None:
        """Zero every counter in place, so references held by callers stay live."""
        self.requests = self.ok = self.streams = 0
        self.rate_limited = self.hung = self.cut = self.malformed = 0
        self.errors_by_status.clear()
