"""The state-store seam: where per-deployment state lives (in-process now, shared later).

For now the store holds pauses: a deployment that answered 429 is skipped until its
Retry-After has passed, and a misconfigured one (401/403/404) is blocked for a long time.
Times are on the engine clock's monotonic scale.
"""

from __future__ import annotations

from typing import Protocol


class StateStore(Protocol):
    """Per-deployment availability as seen by this router."""

    def unavailable(self, deployment: str, now: float) -> str | None:
        """Why the deployment must be skipped now, or None if it may be tried."""

    def pause(self, deployment: str, until: float, why: str) -> None:
        """Skip the deployment until the monotonic time `until`, for the reason `why`."""

    def clear(self, deployment: str) -> None:
        """Forget any pause of the deployment."""


class MemoryState:
    """In-process state store; no locks needed, the engine runs on one event loop."""

    def __init__(self) -> None:
        self._paused: dict[str, tuple[float, str]] = {}

    def unavailable(self, deployment: str, now: float) -> str | None:
        entry = self._paused.get(deployment)
        if entry is None:
            return None
        until, why = entry
        if now >= until:
            del self._paused[deployment]
            return None
        return f"{why} ({until - now:.1f} s left)"

    def pause(self, deployment: str, until: float, why: str) -> None:
        current = self._paused.get(deployment)
        if current is None or current[0] < until:
            self._paused[deployment] = (until, why)

    def clear(self, deployment: str) -> None:
        self._paused.pop(deployment, None)
