"""End to end: real litellm calls over the simulated fleet, exported over real OTLP.

The test runs its own collector on loopback: an aiohttp server decoding OTLP/HTTP
``ExportTraceServiceRequest`` bodies, and a grpcio ``TraceService``. Telemetry is switched on
the way an application would (the ``[telemetry]`` table, through `Router` and
`telemetry.observer_for`), so these tests cover the exporter setup too. One test scans
everything exported and logged for the API keys in the config.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from router import NoDeploymentAvailable, Router, get_decision
from router._sim import Fleet
from router.telemetry import _setup as setup

from .conftest import MSG

KEYS = {name: f"sk-e2e-{name}-7Qx9LmT2vB8nR4kW" for name in ("a", "b", "c")}
"""The API keys in the test's config: none may appear in any span, event, metric or log."""


@dataclass
class Collected:
    """What a loopback collector received."""

    traces: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every exported span, with its resource's attributes."""
        with self.lock:
            requests = list(self.traces)
        out: list[tuple[dict[str, Any], Span]] = []
        for request in requests:
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


class HttpCollector:
    """OTLP/HTTP on loopback (its own thread and loop, so a blocking flush cannot stall it)."""

    def __init__(self) -> None:
        self.collected = Collected()
        self._loop = asyncio.new_event_loop()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.collected.lock:
            self.collected.raw.append(body)
        if request.path == "/v1/traces":
            parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            with self.collected.lock:
                self.collected.traces.append(parsed)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        else:
            reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._receive)
        app.router.add_post("/v1/metrics", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def __enter__(self) -> HttpCollector:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collected: Collected) -> None:
        self.collected = collected

    def Export(self, request: Any, context: Any) -> Any:
        with self.collected.lock:
            self.collected.traces.append(request)
            self.collected.raw.append(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, collected: Collected) -> None:
        self.collected = collected

    def Export(self, request: Any, context: Any) -> Any:
        with self.collected.lock:
            self.collected.raw.append(request.SerializeToString())
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcCollector:
    """An OTLP/gRPC trace and metrics service on loopback."""

    def __init__(self) -> None:
        self.collected = Collected()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Traces(self.collected), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Metrics(self.collected), self._server
        )
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> GrpcCollector:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(__import__("os").environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    setup.reset()
    yield
    setup.reset()  # before the collector goes: the final flush has somewhere to go


def config(fleet: Fleet, endpoint: str, protocol: str) -> dict[str, Any]:
    from tests.integration.conftest import fleet_config

    cfg = fleet_config(fleet)
    for deployment in cfg["deployments"]:
        deployment["api_key"] = KEYS[deployment["name"]]
    cfg["router"].update(
        {"strategy": "cost", "breaker_consecutive_failures": 1, "breaker_open_base": 30.0}
    )
    cfg["telemetry"] = {
        "enabled": True,
        "endpoint": endpoint,
        "protocol": protocol,
        "service_name": "router-e2e",
        "log_format": "json",
    }
    return cfg


async def scenario(router: Router, fleet: Fleet) -> list[Any]:
    """A failover that opens a breaker, a call that skips it, a stream, then a total failure."""
    decisions = []
    fleet["a"].set(outage="503")
    decisions.append(get_decision(await router.acompletion("chat", MSG)))
    decisions.append(get_decision(await router.acompletion("chat", MSG)))
    stream = await router.acompletion("chat", MSG, stream=True)
    async for _ in stream:
        pass
    decisions.append(stream.decision)
    fleet["b"].set(outage="503")
    fleet["c"].set(outage="503")
    with pytest.raises(NoDeploymentAvailable) as caught:
        await router.acompletion("chat", MSG)
    decisions.append(get_decision(caught.value))
    return decisions


def check_trace_tree(collected: Collected, decisions: list[Any]) -> dict[bytes, Span]:
    """Parent/child links, the reason on every span, events and status; returns call spans."""
    exported = collected.spans()
    assert exported, "nothing was exported"
    assert all(resource["service.name"] == "router-e2e" for resource, _ in exported)
    spans = [span for _, span in exported]
    calls = [s for s in spans if s.name == "chat chat"]
    assert len(calls) == len(decisions) == 4
    by_id = {s.span_id: s for s in spans}
    for call, decision in zip(
        sorted(calls, key=lambda s: s.start_time_unix_nano), decisions, strict=True
    ):
        assert call.parent_span_id == b""  # a root: no span was current around the call
        assert call.kind == Span.SPAN_KIND_INTERNAL
        kids = sorted(
            (s for s in spans if s.parent_span_id == call.span_id),
            key=lambda s: s.start_time_unix_nano,
        )
        assert len(kids) == len(decision.attempts)
        for kid in kids:
            assert kid.trace_id == call.trace_id and kid.kind == Span.SPAN_KIND_CLIENT
            assert call.start_time_unix_nano <= kid.start_time_unix_nano
            assert by_id[kid.parent_span_id] is call
        for span in (call, *kids):
            attrs = attributes(span.attributes)
            assert attrs["router.route.reason"] == decision.reason
            assert attrs["gen_ai.operation.name"] == "chat"
        call_attrs = attributes(call.attributes)
        assert call_attrs["router.outcome"] == decision.outcome
        failed_kids = [k for k in kids if attributes(k.attributes)["router.outcome"] == "failure"]
        for kid in failed_kids:
            assert kid.status.code == Status.STATUS_CODE_ERROR
            assert [e.name for e in kid.events] == ["exception"]
    first, second, streamed, failed = sorted(calls, key=lambda s: s.start_time_unix_nano)
    # 1: a answered 503, its breaker opened (an event), b served.
    assert [e.name for e in first.events] == ["router.breaker_opened"]
    event = attributes(first.events[0].attributes)
    assert event["router.deployment"] == "a" and event["router.breaker.to"] == "open"
    assert first.status.code == Status.STATUS_CODE_UNSET
    assert attributes(first.attributes)["router.deployment"] == "b"
    # 2: a skipped, and the reason says so.
    attrs = attributes(second.attributes)
    assert attrs["router.skipped"][0].startswith("a: breaker open for")
    assert "breaker open" in attrs["router.route.reason"]
    # 3: the stream.
    attrs = attributes(streamed.attributes)
    assert attrs["router.stream"] is True and attrs["router.outcome"] == "success"
    # 4: nothing left: an error span with the exception, breaker events for b and c.
    assert failed.status.code == Status.STATUS_CODE_ERROR
    names = [e.name for e in failed.events]
    assert names.count("router.breaker_opened") == 2 and names[-1] == "exception"
    exception = attributes(failed.events[-1].attributes)
    assert exception["exception.type"] == "router._errors.NoDeploymentAvailable"
    assert attributes(failed.attributes)["error.type"] == "NoDeploymentAvailable"
    return {c.span_id: c for c in calls}


def check_logs(err: str, calls: dict[bytes, Span]) -> list[dict[str, Any]]:
    events = []
    for line in err.splitlines():
        if line.startswith("{"):
            parsed = json.loads(line)
            if str(parsed.get("event", "")).startswith("router."):
                events.append(parsed)
    decisions = [e for e in events if e["event"] in ("router.call_completed", "router.call_failed")]
    assert len(decisions) == 4
    for event in decisions:
        span = calls[bytes.fromhex(event["span_id"])]
        assert span.trace_id.hex() == event["trace_id"]
        assert attributes(span.attributes)["router.route.reason"] == event["reason"]
    assert [e["event"] for e in decisions][-1] == "router.call_failed"
    assert sum(e["event"] == "router.breaker_opened" for e in events) == 3
    return events


def check_no_keys(collected: Collected, err: str) -> None:
    blobs = [*collected.raw, err.encode()]
    assert len(collected.raw) >= 2  # traces and metrics both arrived
    for key in KEYS.values():
        for blob in blobs:
            assert key.encode() not in blob
        # Not even a fragment long enough to identify the key.
        assert key[-12:].encode() not in b"".join(blobs)


async def test_otlp_http_export_end_to_end(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    with HttpCollector() as collector:
        router = Router(config(fleet, collector.url, "http/protobuf"), seed=0)
        assert router.observer is not None
        decisions = await scenario(router, fleet)
        assert router.observer.force_flush(10_000)  # type: ignore[attr-defined]
        calls = check_trace_tree(collector.collected, decisions)
        err = capsys.readouterr().err
        check_logs(err, calls)
        check_no_keys(collector.collected, err)
        setup.reset()


async def test_otlp_grpc_export_end_to_end(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    with GrpcCollector() as collector:
        router = Router(config(fleet, collector.url, "grpc"), seed=0)
        assert router.observer is not None
        decisions = await scenario(router, fleet)
        assert router.observer.force_flush(10_000)  # type: ignore[attr-defined]
        calls = check_trace_tree(collector.collected, decisions)
        err = capsys.readouterr().err
        check_logs(err, calls)
        check_no_keys(collector.collected, err)
        setup.reset()


async def test_demo_exports_one_span_tree_per_call_with_reasons(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`router demo --otlp URL`: the receiver holds a span tree per call, every span says why."""
    from pathlib import Path

    from router._sim._demo import run_demo

    repo = Path(__file__).resolve().parents[2]
    with HttpCollector() as collector:
        code = await run_demo(
            str(repo / "providers.toml"),
            requests=60,
            quiet=True,
            ephemeral=True,
            otlp=collector.url,
        )
        spans = [span for _, span in collector.collected.spans()]
    out = capsys.readouterr().out
    assert code in (0, 1), out  # 60 requests may be too few for the whole breaker story
    calls = [s for s in spans if s.name.startswith("chat chat")]
    assert len(calls) >= 60  # every request (and the warm-up calls) is a call span
    by_id = {s.span_id: s for s in spans}
    for span in spans:
        assert "router.route.reason" in attributes(span.attributes)
        if span.parent_span_id:
            assert span.parent_span_id in by_id  # every attempt hangs under its call
    failed_over = [
        s for s in calls if "failed attempt" in str(attributes(s.attributes)["router.route.reason"])
    ]
    assert failed_over, "the outage should show as failed-over calls"
