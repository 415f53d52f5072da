"""Turning telemetry on and off: settings + OTEL_* resolution, Router wiring, provider reuse."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from router import Router, telemetry
from router._config import TelemetrySettings
from router.telemetry import Telemetry, observer_for, resolve
from router.telemetry import _setup as setup
from router.testing import FakeBackend, FakeClock

from .conftest import MSG, fake_config, make_otel

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter (global OTel state and sys.modules are per process)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(autouse=True)
def _fresh_process_setup() -> Iterator[None]:
    setup.reset()
    yield
    setup.reset()


# -- resolution ---------------------------------------------------------------------------------


def test_off_by_default() -> None:
    assert not resolve(TelemetrySettings(), {}).enabled
    assert observer_for(TelemetrySettings(), {}) is None
    assert observer_for(None, {}) is None


def test_on_when_the_otlp_endpoint_variable_is_set() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    r = resolve(TelemetrySettings(), env)
    assert r.enabled and r.endpoint == "http://collector:4318" and r.protocol == "http/protobuf"
    assert r.service_name == "router"


def test_sdk_disabled_wins_over_the_endpoint_unless_enabled_explicitly() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}
    assert not resolve(TelemetrySettings(), env).enabled
    assert resolve(TelemetrySettings(enabled=True), env).enabled
    assert not resolve(
        TelemetrySettings(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
    ).enabled


def test_table_values_win_over_variables_and_defaults_follow_the_protocol() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_SERVICE_NAME": "from-env",
    }
    r = resolve(TelemetrySettings(endpoint="http://toml:4317", service_name="from-toml"), env)
    assert (r.endpoint, r.protocol, r.service_name) == ("http://toml:4317", "grpc", "from-toml")
    r = resolve(TelemetrySettings(enabled=True), {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert r.endpoint == "http://localhost:4317"
    r = resolve(TelemetrySettings(enabled=True, protocol="http/protobuf"), {})
    assert r.endpoint == "http://localhost:4318"
    assert resolve(TelemetrySettings(), {"OTEL_SERVICE_NAME": "svc"}).service_name == "svc"


def test_metrics_exporter_none_turns_metrics_off() -> None:
    assert resolve(TelemetrySettings(enabled=True), {}).metrics
    assert not resolve(TelemetrySettings(enabled=True), {"OTEL_METRICS_EXPORTER": "none"}).metrics
    assert not resolve(None, {"OTEL_METRICS_EXPORTER": "none"}).metrics
    assert not resolve(TelemetrySettings(metrics=False), {}).metrics


def test_unsupported_protocol_is_a_clear_error() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
    with pytest.raises(ValueError, match="http/json"):
        resolve(TelemetrySettings(), env)
    # Off, it is none of our business: a router never fails over another program's variable.
    assert not resolve(TelemetrySettings(), {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}).enabled


def test_content_capture_is_off_unless_asked() -> None:
    assert not resolve(TelemetrySettings(enabled=True), {}).capture_content
    assert resolve(TelemetrySettings(capture_content=True), {}).capture_content
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    assert resolve(TelemetrySettings(), env).capture_content


def test_the_telemetry_table_loads_from_a_config_dict() -> None:
    config = fake_config()
    config["telemetry"] = {"enabled": True, "protocol": "grpc", "log_format": "console"}
    clock = FakeClock()
    router = Router(config, backend=FakeBackend(clock), clock=clock, telemetry=False)
    assert router.config.telemetry.protocol == "grpc"
    assert router.observer is None  # telemetry=False: the table is not even consulted


# -- wiring -------------------------------------------------------------------------------------


async def test_router_passes_its_observer_to_the_engine() -> None:
    otel = make_otel()
    clock = FakeClock()
    router = Router(fake_config(), backend=FakeBackend(clock), clock=clock, observer=otel.telemetry)
    assert router.observer is otel.telemetry
    await router.acompletion("chat", MSG)
    assert len(otel.spans()) == 2 and len(otel.logs()) == 1


def test_router_builds_the_observer_from_its_telemetry_table() -> None:
    config = fake_config()
    config["telemetry"] = {"enabled": True, "endpoint": "http://127.0.0.1:9", "metrics": False}
    clock = FakeClock()
    router = Router(config, backend=FakeBackend(clock), clock=clock)
    assert isinstance(router.observer, Telemetry)
    # Same settings, same observer: providers and exporters are set up once per process.
    again = Router(config, backend=FakeBackend(clock), clock=clock)
    assert again.observer is router.observer


def test_disabled_telemetry_never_imports_the_sdk() -> None:
    out = run_python(
        """
        import sys
        from router import telemetry
        assert "opentelemetry" not in sys.modules, "import telemetry must stay light"
        assert "structlog" not in sys.modules
        assert telemetry.observer_for(None, {}) is None
        from router import Router
        from router.testing import FakeBackend, FakeClock
        clock = FakeClock()
        config = {"deployments": [{"name": "a", "model": "openai/x", "groups": ["chat"]}]}
        r = Router(config, backend=FakeBackend(clock), clock=clock)
        assert r.observer is None
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert out.strip() == "[]"


def test_the_applications_global_providers_are_used_not_replaced() -> None:
    out = run_python(
        """
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        app_tracer, app_meter = TracerProvider(), MeterProvider()
        app_exporter = InMemorySpanExporter()
        app_tracer.add_span_processor(SimpleSpanProcessor(app_exporter))
        trace.set_tracer_provider(app_tracer)
        metrics.set_meter_provider(app_meter)
        from router import telemetry
        from router._config import TelemetrySettings
        t = telemetry.observer_for(TelemetrySettings(enabled=True), {})
        assert t is not None
        assert t.tracer_provider is app_tracer, t.tracer_provider
        assert t.meter_provider is app_meter, t.meter_provider
        assert trace.get_tracer_provider() is app_tracer
        t.shutdown()  # never shuts down what the application owns
        assert not app_exporter._stopped
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_without_global_providers_sdk_ones_are_made_and_not_installed() -> None:
    out = run_python(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.metrics import MeterProvider
        from router import telemetry
        from router._config import TelemetrySettings
        t = telemetry.observer_for(
            TelemetrySettings(enabled=True, protocol="grpc", service_name="svc"),
            {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test"},
        )
        assert isinstance(t.tracer_provider, TracerProvider)
        assert isinstance(t.meter_provider, MeterProvider)
        attrs = t.tracer_provider.resource.attributes
        assert attrs["service.name"] == "svc", attrs
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        t.shutdown()
        print("ok")
        """,
        env={"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test"},
    )
    assert out.strip() == "ok"


def test_module_is_light_and_lazy() -> None:
    assert telemetry.__all__ == ["Resolved", "Telemetry", "observer_for", "resolve"]
    assert telemetry.Telemetry is Telemetry
    with pytest.raises(AttributeError):
        _ = telemetry.nothing_here
