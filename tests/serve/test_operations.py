"""Operations: /healthz, /readyz, /metrics, SIGTERM drain, and W3C traceparent in and out."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from router._sim import Fleet

from .conftest import AUTH, ENV, HTTP, GatewayProcess, gateway_config, to_toml

HI = [{"role": "user", "content": "hi"}]


def test_health_ready_and_metrics(gateway: GatewayProcess, fresh: Fleet) -> None:
    health = HTTP.get(f"{gateway.url}/healthz").json()
    assert health["status"] == "ok" and health["pid"] == gateway.proc.pid
    ready = HTTP.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    HTTP.post(f"{gateway.base_url}/chat/completions", json={"model": "chat", "messages": HI})
    r = HTTP.get(f"{gateway.url}/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert re.search(
        r'router_calls_total\{group="chat",deployment="a",outcome="success"\} \d+', text
    )
    assert re.search(
        r'router_attempts_total\{group="chat",deployment="a",outcome="success"\}', text
    )
    assert 'router_call_duration_seconds_bucket{group="chat",le="+Inf"}' in text
    assert 'router_attempt_duration_seconds_count{group="chat",deployment="a"}' in text
    assert 'router_breaker_state{deployment="a"} 0' in text
    assert "router_cost_usd_total" in text
    # Every sample line parses as `name{labels} value`.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z_]+(\{[^}]*\})? [-+0-9.e]+|[a-z_]+(\{[^}]*\})? NaN", line), (
                line
            )


def test_readyz_does_not_fail_when_providers_are_down(
    gateway: GatewayProcess, fresh: Fleet
) -> None:
    fresh["dash"].set(outage="refused")
    HTTP.post(f"{gateway.base_url}/chat/completions", json={"model": "dash", "messages": HI})
    assert HTTP.get(f"{gateway.url}/readyz").status_code == 200


def test_sigterm_drains_in_flight_streams(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    data = gateway_config(fleet)
    data["gateway"]["max_concurrency"] = 2
    path.write_text(to_toml(data))
    process = GatewayProcess(path)
    try:
        fleet["cut"].set(chunk_delay_ms=150.0, stream_chunks=8)
        fleet["slow"].set(latency_ms=800.0)
        results: dict[str, Any] = {}

        def stream() -> None:
            body = {"model": "cut", "messages": HI, "stream": True}
            with HTTP.stream("POST", f"{process.base_url}/chat/completions", json=body,
                              timeout=20) as r:  # fmt: skip
                results["stream"] = "".join(r.iter_text())

        def plain() -> None:
            r = HTTP.post(f"{process.base_url}/chat/completions",
                           json={"model": "slow", "messages": HI}, timeout=20)  # fmt: skip
            results["plain"] = r.status_code
            results["plain_body"] = r.text

        threads = [threading.Thread(target=stream), threading.Thread(target=plain)]
        for t in threads:
            t.start()
        end = time.monotonic() + 10
        while time.monotonic() < end:  # wait until both calls are in flight
            if "router_gateway_in_flight 2" in HTTP.get(f"{process.url}/metrics").text:
                break
            time.sleep(0.02)
        # At the cap of 2 calls: a third is shed with 503 + Retry-After, nothing queued.
        shed = HTTP.post(
            f"{process.base_url}/chat/completions", json={"model": "a", "messages": HI}
        )
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert shed.json()["error"]["code"] == "overloaded"
        process.signal(signal.SIGTERM)
        for t in threads:
            t.join(20)
        assert results.get("plain") == 200, results.get("plain_body")
        assert results["stream"].rstrip().endswith("data: [DONE]"), results["stream"][-300:]
        assert process.proc.wait(20) == 0
        process.wait_for("router serve: stopped")
        with pytest.raises(httpx.ConnectError):
            HTTP.get(f"{process.url}/healthz", timeout=2)
    finally:
        fleet["cut"].reset()
        fleet["slow"].reset()
        process.stop()


def test_two_workers_both_serve_and_drain_on_sigterm(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text(to_toml(gateway_config(fleet)))
    process = GatewayProcess(path, "--workers", "2")
    results: list[str] = []
    threads: list[threading.Thread] = []
    try:
        end = time.monotonic() + 90
        while len(set(re.findall(r"listening on .*pid (\d+)", "\n".join(process.lines)))) < 2:
            assert time.monotonic() < end, "\n".join(process.lines[-20:])
            time.sleep(0.1)
        workers = {int(p) for p in re.findall(r"pid (\d+)", "\n".join(process.lines))}
        assert process.proc.pid not in workers  # the supervisor serves nothing itself
        fleet["cut"].set(chunk_delay_ms=150.0, stream_chunks=20)  # streams of about 3 s

        def stream() -> None:
            body = {"model": "cut", "messages": HI, "stream": True}
            url = f"{process.base_url}/chat/completions"
            with (
                httpx.Client(headers=AUTH, timeout=30) as own,  # its own connection
                own.stream("POST", url, json=body) as r,
            ):
                results.append("".join(r.iter_text()))

        def busy() -> dict[int, int]:
            seen: dict[int, int] = {}
            for _ in range(20):  # a fresh connection each time: either worker may take it
                health = httpx.get(f"{process.url}/healthz", timeout=5).json()
                seen[health["pid"]] = health["in_flight"]
            return seen

        # Batches of streams until each worker has at least one in flight (the kernel hands
        # each new connection to whichever worker accepts it first).
        seen: dict[int, int] = {}
        while True:
            assert len(threads) < 16, f"in flight per worker: {seen}"
            for _ in range(4):
                threads.append(threading.Thread(target=stream))
                threads[-1].start()
            time.sleep(0.5)
            seen = busy()
            assert set(seen) <= workers
            if len(seen) == 2 and min(seen.values()) >= 1:
                break
        process.signal(signal.SIGTERM)  # the supervisor forwards it to both workers
        for t in threads:
            t.join(30)
        assert len(results) == len(threads)
        for text in results:  # every stream in flight on either worker finished whole
            assert text.rstrip().endswith("data: [DONE]"), text[-300:]
        assert process.proc.wait(30) == 0
        for pid in workers:
            process.wait_for(f"router serve: stopped \\(pid {pid}\\)")
    finally:
        fleet["cut"].reset()
        process.stop()


async def test_traceparent_parents_the_router_spans(
    fresh: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from router._serve import build_gateway
    from router.telemetry import Telemetry

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    path = tmp_path / "providers.toml"
    path.write_text(to_toml(gateway_config(fresh)))
    telemetry = Telemetry(tracer_provider=provider, metrics=False, logs=False)
    gateway = build_gateway(str(path), observer=telemetry, tracer_provider=provider)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for stream in (False, True):
            exporter.clear()
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": HI, "stream": stream},
                headers={"traceparent": f"00-{trace_id}-{parent}-01", **AUTH},
            )
            assert r.status_code == 200
            out = r.headers["traceparent"].split("-")
            assert out[1] == trace_id and out[2] != parent
            spans = {s.name: s for s in exporter.get_finished_spans()}
            server = spans["POST /v1/chat/completions"]
            call = spans["chat chat"]
            assert server.context.trace_id == int(trace_id, 16)
            assert server.parent is not None and server.parent.span_id == int(parent, 16)
            assert f"{server.context.span_id:016x}" == out[2]
            assert call.parent is not None and call.parent.span_id == server.context.span_id
    provider.shutdown()
