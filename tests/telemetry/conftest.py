"""Fixtures: a `Telemetry` over in-memory span/metric exporters and a log buffer, routers over
the fake backend (fake clock) or the simulated fleet (real litellm, real clock)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router import Router
from router._sim import Behavior, Fleet
from router.telemetry import Telemetry
from router.testing import FakeBackend, FakeClock

MSG = [{"role": "user", "content": "hello"}]


@dataclass
class Otel:
    """In-memory sinks for one test, and the observer writing to them."""

    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    meter_provider: MeterProvider
    log: io.StringIO
    telemetry: Telemetry
    extra: dict[str, Any] = field(default_factory=dict)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name -> [(attributes, value or histogram data point)]."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points = out.setdefault(metric.name, [])
                    for point in metric.data.data_points:
                        value = getattr(point, "value", point)
                        points.append((dict(point.attributes or {}), value))
        return out


def attrs_of(item: Any) -> dict[str, Any]:
    """A span's or event's attributes as a plain dict (values typed loosely, for asserts)."""
    return dict(item.attributes or {})


class CustomProcessor(SimpleSpanProcessor):
    """Any processor that is not exactly the SDK's: spans then take the API path."""


def make_otel(path: str = "direct", **kwargs: Any) -> Otel:
    """Sinks and an observer; ``path="api"`` puts a custom processor in, so the writer goes
    through the OpenTelemetry API instead of handing spans to the SDK's processors directly."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(**kwargs.pop("tracer_kwargs", {}))
    processor = SimpleSpanProcessor if path == "direct" else CustomProcessor
    tracer_provider.add_span_processor(processor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    log = io.StringIO()
    telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        log_file=log,
        log_format=kwargs.pop("log_format", "json"),
        **kwargs,
    )
    return Otel(exporter, tracer_provider, reader, meter_provider, log, telemetry)


@pytest.fixture(params=["direct", "api"])
def otel(request: pytest.FixtureRequest) -> Iterator[Otel]:
    """Every span test runs on both span paths (see telemetry._sinks._DirectSpans)."""
    made = make_otel(request.param)
    writer = made.telemetry._spans
    assert writer is not None
    assert (writer._direct is not None) == (request.param == "direct")
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


def fake_config(**router: Any) -> dict[str, Any]:
    """Three fake deployments a < b < c (strategy ``ordered``) in group ``chat``."""
    return {
        "router": {"strategy": "ordered", "deadline": 30.0, "max_attempts": 3, **router},
        "deployments": [
            {
                "name": name,
                "model": model,
                "groups": ["chat"],
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "timeout": 5.0,
            }
            for name, model in (
                ("a", "openai/gpt-a"),
                ("b", "anthropic/claude-b"),
                ("c", "openai/gpt-c"),
            )
        ],
    }


@dataclass
class Fake:
    clock: FakeClock
    backend: FakeBackend
    router: Router


def make_fake(telemetry: Telemetry, **router: Any) -> Fake:
    clock = FakeClock()
    backend = FakeBackend(clock)
    return Fake(
        clock,
        backend,
        Router(fake_config(**router), backend=backend, clock=clock, observer=telemetry),
    )


@pytest.fixture
def fake(otel: Otel) -> Fake:
    return make_fake(otel.telemetry)


def call_span(spans: list[ReadableSpan]) -> ReadableSpan:
    """The one span of a routed call (named ``chat {group}``, kind INTERNAL)."""
    roots = [s for s in spans if s.name == "chat chat"]
    assert len(roots) == 1, [s.name for s in spans]
    return roots[0]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """Direct children of `parent`, in start order."""
    assert parent.context is not None
    found = [
        s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet({name: Behavior(latency_ms=2.0) for name in ("a", "b", "c")}, seed=1) as f:
        yield f
