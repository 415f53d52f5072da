"""The observer seam: how the engine tells telemetry what happened, at near-zero cost when off.

The engine calls `call_finished` once per call with its frozen decision record (and the
exception, if the call failed), and `transition` when a breaker changes state. With telemetry
off the engine holds no observer and pays one ``is None`` test per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision


class Observer(Protocol):
    """Receives decision records and breaker transitions (spans, metrics, logs, recorders)."""

    def call_finished(self, decision: Decision, error: BaseException | None) -> None:
        """A call ended: served, failed, or (streams) closed early."""

    def transition(self, transition: Transition) -> None:
        """A breaker changed state."""
