"""/dashboard in a real headless browser (Debian's chromium): a breaker trips, the page shows it.

The test finds ``chromium`` (installing it with apt-get when it is missing and this is root on
Debian) and skips with the reason otherwise. The screenshot it takes is kept in the test's tmp
directory (printed with ``-s``) as the artifact.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from router._sim import Fleet

from .conftest import HTTP, KEY, GatewayProcess

HI = [{"role": "user", "content": "hi"}]
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def _find() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _find()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env,
                           capture_output=True, timeout=600, check=False)  # fmt: skip
            if _find() is None:
                subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, check=False)
                subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env,
                               capture_output=True, timeout=600, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            pass
        found = _find()
    if found is None:
        pytest.skip("no chromium: not installed, and apt-get install chromium was not possible")
    return found


def _browser(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="gw-chromium-") as profile:
        return subprocess.run(
            [chromium, *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip


def test_dashboard_shows_a_tripped_breaker(
    gateway: GatewayProcess, fresh: Fleet, chromium: str, tmp_path: Path
) -> None:
    fresh["dash"].set(outage="503")
    state = None
    end = time.monotonic() + 15
    while time.monotonic() < end:
        HTTP.post(f"{gateway.base_url}/chat/completions", json={"model": "dash", "messages": HI})
        snap = HTTP.get(f"{gateway.url}/dashboard.json").json()
        rows = [d for g in snap["groups"] for d in g["deployments"] if d["name"] == "dash"]
        state = rows[0]["state"] if rows else None
        if state == "open":
            break
    assert state == "open"
    # Traffic through "chat" too, so the page has shares and served decisions to show.
    for _ in range(3):
        HTTP.post(f"{gateway.base_url}/chat/completions", json={"model": "chat", "messages": HI})
    url = f"{gateway.url}/dashboard#key={KEY}"
    dom = _browser(chromium, "--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-loaded="1"' in html, "the page never rendered /dashboard.json"
    assert 'data-deployment="dash" data-state="open"' in html
    assert 'data-deployment="a" data-state="closed"' in html
    assert "breaker dash open" in html  # the reason of the call that tripped it
    assert "served by a" in html  # a decision's reason, from the latest decisions
    shot = tmp_path / "dashboard.png"
    done = _browser(
        chromium, "--virtual-time-budget=5000", "--window-size=1400,1000",
        f"--screenshot={shot}", url,
    )  # fmt: skip
    assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, done.stderr
    print(f"dashboard screenshot: {shot}")
