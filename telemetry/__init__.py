"""Telemetry for the router: OpenTelemetry spans and metrics, structlog decision events.

Everything here is built from the frozen decision record (router._decision) when a call ends,
so the engine's hot path carries no telemetry code: with telemetry off the engine holds no
observer and pays one ``is None`` test per call. This module is deliberately light: importing
it loads neither the OpenTelemetry SDK nor structlog; they are imported the first time an
observer is actually built.

Two entry points:

- `observer_for(settings, env)`: what `router.Router` calls. Decides from the ``[telemetry]``
  table and the standard ``OTEL_*`` variables (without importing the SDK) whether telemetry is
  on; if so sets up the process's providers once (reusing a TracerProvider / MeterProvider the
  application already installed globally) and returns a `Telemetry` observer, else None.
- `Telemetry(tracer_provider=..., meter_provider=..., log_file=..., capture_content=...)`:
  build an observer over providers you give (tests, or applications that wire OTel
  themselves), then ``Router(config, observer=telemetry)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router.telemetry._settings import Resolved, resolve

if TYPE_CHECKING:
    from router._config import TelemetrySettings
    from router.telemetry._observer import Telemetry

__all__ = ["Resolved", "Telemetry", "observer_for", "resolve"]


def observer_for(
    settings: TelemetrySettings | None = None, env: Mapping[str, str] | None = None
) -> Telemetry | None:
    """The telemetry observer for these settings, or None when telemetry is off.

    Off/on is decided from `settings` and `env` (default: ``os.environ``) alone, so a disabled
    setup never imports the OpenTelemetry SDK. When on, the process's providers are set up
    once (see `router.telemetry._setup`) and an observer with the given log and content options is
    returned; the same settings give the same observer back.
    """
    resolved = resolve(settings, os.environ if env is None else env)
    if not resolved.enabled:
        return None
    from router.telemetry._setup import observer

    return observer(resolved)


def __getattr__(name: str) -> Any:
    # Lazy: `Telemetry` lives with the OpenTelemetry API and structlog imports.
    if name == "Telemetry":
        from router.telemetry._observer import Telemetry

        globals()["Telemetry"] = Telemetry
        return Telemetry
    raise AttributeError(f"module 'router.telemetry' has no attribute {name!r}")
