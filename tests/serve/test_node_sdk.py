"""The official `openai` npm package (Node) against `router serve`.

The package is installed by this test into a cache directory outside the repository
(``~/.cache/router-tests/node-openai``, ``npm install --prefix``) on first use; without node or
npm, or when the install fails, the test skips with the reason (and fails under CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from router._sim import Fleet

from .conftest import KEY, GatewayProcess

OPENAI_NPM = "openai@7.55.0"
CACHE = Path(
    os.environ.get("ROUTER_TEST_NODE_CACHE", Path.home() / ".cache/router-tests/node-openai")
)
SCRIPT = Path(__file__).with_name("node") / "client.mjs"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def node_openai() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the openai npm package test")
    marker = CACHE / "node_modules" / "openai" / "package.json"
    want = OPENAI_NPM.split("@", 1)[1]
    if not marker.exists() or json.loads(marker.read_text()).get("version") != want:
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(npm), "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", OPENAI_NPM],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not marker.exists():
            _unavailable(f"npm install {OPENAI_NPM} failed: {done.stderr[-500:]}")
    return CACHE


def test_openai_npm_package(gateway: GatewayProcess, fresh: Fleet, node_openai: Path) -> None:
    fresh["cut"].set(cut_stream_after=2, stream_chunks=6)
    done = subprocess.run(
        ["node", str(SCRIPT), gateway.base_url, KEY, str(node_openai)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["plain"] == "Hello from a."
    assert out["stream"] == "Hello from a."
    assert out["usage"] and out["usage"] > 0
    assert out["unknown_model"] == {
        "name": "NotFoundError",
        "status": 404,
        "code": "model_not_found",
    }
    assert out["bad_key"]["name"] == "AuthenticationError" and out["bad_key"]["status"] == 401
    assert out["cut"] is not None and out["cut"]["name"] == "APIError"
