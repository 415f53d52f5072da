"""Resolve the ``[telemetry]`` table and the standard ``OTEL_*`` variables into one setup.

Pure: no OpenTelemetry import, so deciding that telemetry is off costs nothing.

Precedence, per value: the ``[telemetry]`` table (itself overridable by ``ROUTER_TELEMETRY__*``
through the config loader), then the standard OpenTelemetry variable, then the OTLP default.

- on/off: ``enabled = true/false`` decides outright; unset means on exactly when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and ``OTEL_SDK_DISABLED`` is not ``true``;
- ``endpoint``: ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318`` for
  ``http/protobuf`` and ``http://localhost:4317`` for ``grpc``;
- ``protocol``: ``OTEL_EXPORTER_OTLP_PROTOCOL``, else ``http/protobuf`` (the OTLP default);
- ``service_name``: ``OTEL_SERVICE_NAME``, else ``router``;
- ``capture_content``: also on with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``;
- ``metrics``: also off with ``OTEL_METRICS_EXPORTER=none`` (a traces-only backend such as
  Jaeger would answer every metrics export with an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from router._config import TelemetrySettings

Protocol = Literal["http/protobuf", "grpc"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

DEFAULT_ENDPOINTS: Final[Mapping[str, str]] = {
    "http/protobuf": "http://localhost:4318",
    "grpc": "http://localhost:4317",
}
DEFAULT_SERVICE_NAME: Final = "router"
_PROTOCOLS: Final = ("http/protobuf", "grpc")


@dataclass(frozen=True, slots=True)
class Resolved:
    """The effective telemetry setup: every value decided, nothing left to the environment."""

    enabled: bool
    endpoint: str
    """The OTLP base endpoint (http: signal paths ``/v1/traces``, ``/v1/metrics`` are added)."""
    protocol: Protocol
    service_name: str
    capture_content: bool = False
    metrics: bool = True
    logs: bool = True
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def resolve(settings: TelemetrySettings | None, env: Mapping[str, str]) -> Resolved:
    """Decide the telemetry setup from `settings` (None: all defaults) and `env`.

    Raises ValueError, when telemetry is on, for an OTLP protocol this package cannot export with
    (``http/json``): silently exporting nothing would be worse than a clear error at startup.
    """
    endpoint_env = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip() or None
    if settings is not None and settings.enabled is not None:
        enabled = bool(settings.enabled)
    else:
        enabled = endpoint_env is not None and not _true(env.get("OTEL_SDK_DISABLED"))

    protocol_text = (
        (settings.protocol if settings is not None else None)
        or (env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").strip()
        or "http/protobuf"
    )
    if protocol_text not in _PROTOCOLS and not enabled:
        protocol_text = "http/protobuf"  # off: another program's OTEL_* setting is not ours
    if protocol_text not in _PROTOCOLS:
        raise ValueError(
            f"telemetry: OTLP protocol {protocol_text!r} is not supported; "
            "use 'http/protobuf' or 'grpc' (OTEL_EXPORTER_OTLP_PROTOCOL or [telemetry] protocol)"
        )
    protocol: Protocol = "grpc" if protocol_text == "grpc" else "http/protobuf"
    endpoint = (
        (settings.endpoint if settings is not None else None)
        or endpoint_env
        or DEFAULT_ENDPOINTS[protocol]
    )
    service_name = (
        (settings.service_name if settings is not None else None)
        or (env.get("OTEL_SERVICE_NAME") or "").strip()
        or DEFAULT_SERVICE_NAME
    )
    capture = _true(env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"))
    metrics_off = (env.get("OTEL_METRICS_EXPORTER") or "").strip().lower() == "none"
    if settings is None:
        return Resolved(
            enabled,
            endpoint,
            protocol,
            service_name,
            capture_content=capture,
            metrics=not metrics_off,
        )
    return Resolved(
        enabled=enabled,
        endpoint=endpoint,
        protocol=protocol,
        service_name=service_name,
        capture_content=bool(settings.capture_content) or capture,
        metrics=bool(settings.metrics) and not metrics_off,
        logs=bool(settings.logs),
        log_format=settings.log_format,
        log_level=settings.log_level,
    )
