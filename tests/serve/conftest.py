"""Fixtures: a simulated fleet, config files over it, and `router serve` processes.

The gateway runs as a real process (``python -m router._serve``, the same code as ``router
serve``) on an ephemeral port, over simulated providers that speak OpenAI's wire protocol on
loopback (router's simulated fleet, real HTTP, real litellm inside the gateway). Clients are
real ones: the official openai SDK, curl, Node's openai package, a headless browser.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router._sim import Behavior, Fleet

ROOT = Path(__file__).resolve().parents[2]
# Providers: a < b < c by price in "chat"; the others each have a group of their own so a test
# can break one without touching the rest ("acut": the Anthropic route's broken streams, so that
# they do not add up with the OpenAI route's on "cut" and open its breaker).
NAMES = ("a", "b", "c", "cut", "limited", "slow", "dash", "acut")
KEY = "sk-gw-test-key-0123456789"
ADMIN = "sk-gw-admin-9876543210"
METERED = "sk-gw-metered-key-5555"
BUDGETED = "sk-gw-budgeted-key-7777"
ENV = {"GW_TEST_KEY": KEY, "GW_TEST_ADMIN": ADMIN, "GW_TEST_KEY2": METERED,
       "GW_TEST_KEY3": BUDGETED}  # fmt: skip
AUTH = {"authorization": f"Bearer {KEY}"}
HTTP = httpx.Client(headers=AUTH, timeout=20.0)
"""A client presenting the tests' gateway key (thread-safe; shared by the tests)."""
_GROUPS = {"a": ["chat"], "b": ["chat"], "c": ["chat"], "slow": ["hang"]}
_LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the configs these tests build (tables, arrays of tables)."""
    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict | list) or (
            isinstance(v, list) and not any(isinstance(i, dict) for i in v))}  # fmt: skip
        if prefix:
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        for key, value in body.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                table(name, value)
            elif isinstance(value, list) and any(isinstance(i, dict) for i in value):
                for item in value:
                    lines.append(f"[[{name}]]")
                    for k, v in item.items():
                        lines.append(f"{k} = {_toml_value(v)}")

    table("", data)
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # the writer's own check
    return text


def gateway_config(fleet: Fleet, *, keys: bool = True, **router: Any) -> dict[str, Any]:
    """A config over the fleet: group chat = a, b, c (cheapest first), one group per other;
    group embed = embed-a, embed-b (embedding deployments on providers a and b)."""
    deployments = []
    for rank, provider in enumerate(fleet):
        name = provider.name
        deployments.append(
            {
                "name": name,
                "model": f"openai/sim-{name}",
                "api_base": provider.base_url,
                "api_key": "sk-sim-test",
                "input_cost_per_token": (rank + 1) * 1e-7,
                "output_cost_per_token": (rank + 1) * 4e-7,
                "timeout": 4.0,
                "groups": _GROUPS.get(name, []),
            }
        )
    for rank, name in enumerate(("a", "b")):
        deployments.append(
            {
                "name": f"embed-{name}",
                "model": "openai/text-embedding-sim",
                "mode": "embedding",
                "dimensions": 16,
                "api_base": fleet[name].base_url,
                "api_key": "sk-sim-test",
                "input_cost_per_token": (rank + 1) * 1e-8,
                "timeout": 4.0,
                "groups": ["embed"],
            }
        )
    settings = {
        "deadline": 10.0,
        "max_attempts": 3,
        "strategy": "cost",
        "breaker_open_base": 60.0,
        "breaker_open_max": 60.0,
        "breaker_consecutive_failures": 3,
        "backoff_base": 0.0,
    }
    settings.update(router)
    data: dict[str, Any] = {
        "router": settings,
        "deployments": deployments,
        "groups": {"hang": {"deadline": 1.0}},
    }
    if keys:
        data["gateway"] = {
            "admin_key": "os.environ/GW_TEST_ADMIN",
            "body_timeout": 1.5,
            "keys": [
                {"name": "tests", "key": "os.environ/GW_TEST_KEY"},
                {"name": "metered", "key": "os.environ/GW_TEST_KEY2", "rpm": 2},
                {"name": "budgeted", "key": "os.environ/GW_TEST_KEY3", "daily_budget_usd": 1e-9},
            ],
        }
    return data


class GatewayProcess:
    """A `router serve` process on an ephemeral port; its output is collected in `lines`."""

    def __init__(self, config: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.lines: list[str] = []
        self._seen = threading.Condition()
        full_env = {**os.environ, **ENV, **(env or {})}
        full_env.pop("ROUTER_CONFIG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router._serve", "--config", str(config), "--port", "0",
             "--fleet", "off", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=full_env,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.wait_for(_LISTENING, 90.0)[1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 10.0) -> re.Match[str]:
        """The first output line matching `pattern` (waits for it)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        end = time.monotonic() + timeout
        with self._seen:
            while True:
                for line in self.lines:
                    found = regex.search(line)
                    if found:
                        return found
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._pending()):
                    output = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no line matching {regex.pattern!r}; output:\n{output}")
                self._seen.wait(min(left, 0.2))

    def _pending(self) -> bool:
        return bool(self.proc.stdout and not self.proc.stdout.closed)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    specs = {name: Behavior(latency_ms=1.0, chunk_delay_ms=1.0) for name in NAMES}
    with Fleet(specs, seed=3).threaded() as running:
        yield running


@pytest.fixture
def fresh(fleet: Fleet) -> Iterator[Fleet]:
    """The fleet, with every provider's knobs reset after the test."""
    try:
        yield fleet
    finally:
        for provider in fleet:
            provider.reset()


@pytest.fixture(scope="session")
def gateway(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway (with a key) for the tests that do not stop or reload it."""
    path = tmp_path_factory.mktemp("gateway") / "providers.toml"
    path.write_text(to_toml(gateway_config(fleet)))
    process = GatewayProcess(path)
    try:
        yield process
    finally:
        process.stop()
