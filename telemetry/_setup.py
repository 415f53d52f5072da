"""Process-wide OpenTelemetry setup for `router.telemetry.observer_for` (imports the SDK).

Once per process: the first enabled router sets up the providers, later ones reuse them (OTel
providers are process resources: a second exporter to the same collector would double every
span). A provider the application installed globally before is used as is, never replaced.
Otherwise SDK providers are created with OTLP exporters (``http/protobuf`` or ``grpc``) and a
``service.name`` resource; they are *not* installed globally, so an application that installs
its own later is not refused, and they are flushed at exit (the SDK's atexit hook).

Observers are cached by their resolved settings: routers with the same ``[telemetry]`` share
one observer (and its breaker-state map).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from router.telemetry._observer import Telemetry

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from router.telemetry._settings import Resolved

_log = logging.getLogger("telemetry")


class _Owned:
    """The providers this package created; shut down once, by whichever observer asks first."""

    def __init__(self, providers: list[Any]) -> None:
        self.providers = providers
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        with self._lock:
            providers, self.providers = self.providers, []
        for provider in providers:
            provider.shutdown()


class _Process:
    def __init__(
        self,
        key: tuple[str, str, str],
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider | None,
        owned: _Owned,
    ) -> None:
        self.key = key
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.owned = owned


_lock = threading.Lock()
_process: _Process | None = None
_observers: dict[Resolved, Telemetry] = {}


def observer(resolved: Resolved) -> Telemetry:
    """The observer for `resolved` (enabled) settings, setting up the providers on first use."""
    with _lock:
        found = _observers.get(resolved)
        if found is not None:
            return found
        process = _providers(resolved)
        made = Telemetry(
            tracer_provider=process.tracer_provider,
            meter_provider=process.meter_provider,
            metrics=resolved.metrics and process.meter_provider is not None,
            logs=resolved.logs,
            log_format=resolved.log_format,
            log_level=resolved.log_level,
            capture_content=resolved.capture_content,
            owned=(process.owned,),
        )
        _observers[resolved] = made
        return made


def reset() -> None:
    """Shut down what this package set up and forget it (tests; a re-configured process)."""
    global _process
    with _lock:
        process, _process = _process, None
        _observers.clear()
    if process is not None:
        process.owned.shutdown()


def _providers(resolved: Resolved) -> _Process:
    global _process
    key = (resolved.endpoint, resolved.protocol, resolved.service_name)
    process = _process
    if process is not None:
        if process.key != key:
            _log.warning(
                "telemetry: already exporting to %s (%s) as %r; keeping that setup, not %s",
                *process.key,
                resolved.endpoint,
            )
        if resolved.metrics and process.meter_provider is None:
            process.meter_provider = _meter_provider(resolved, process.owned)
        return process
    from opentelemetry import trace

    owned = _Owned([])
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):  # nothing installed: make our own
        tracer_provider: TracerProvider = _tracer_provider(resolved)
        owned.providers.append(tracer_provider)
    else:
        tracer_provider = current
    meter_provider = _meter_provider(resolved, owned) if resolved.metrics else None
    _process = _Process(key, tracer_provider, meter_provider, owned)
    return _process


def _resource(resolved: Resolved) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; the explicit name wins.
    return Resource.create({SERVICE_NAME: resolved.service_name})


def _insecure(endpoint: str) -> bool | None:
    # gRPC: a plain-http URL means no TLS; https means TLS; no scheme leaves it to the
    # exporter (OTEL_EXPORTER_OTLP_INSECURE, default TLS).
    if endpoint.startswith("http://"):
        return True
    if endpoint.startswith("https://"):
        return False
    return None


def _tracer_provider(resolved: Resolved) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter: Any
    if resolved.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        exporter = GrpcSpanExporter(
            endpoint=resolved.endpoint, insecure=_insecure(resolved.endpoint)
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        # An explicit endpoint is used as is by the HTTP exporter: add the signal path.
        exporter = HttpSpanExporter(endpoint=resolved.endpoint.rstrip("/") + "/v1/traces")
    provider = SdkTracerProvider(resource=_resource(resolved))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _meter_provider(resolved: Resolved, owned: _Owned) -> MeterProvider:
    from opentelemetry import metrics
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    current = metrics.get_meter_provider()
    if not isinstance(current, _ProxyMeterProvider):  # the application's: use it
        return current
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter: Any
    if resolved.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        exporter = GrpcMetricExporter(
            endpoint=resolved.endpoint, insecure=_insecure(resolved.endpoint)
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        exporter = HttpMetricExporter(endpoint=resolved.endpoint.rstrip("/") + "/v1/metrics")
    provider = SdkMeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter)], resource=_resource(resolved)
    )
    owned.providers.append(provider)
    return provider
