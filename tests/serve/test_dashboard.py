"""/dashboard in a real headless browser (Debian's chromium): a breaker trips, the page shows it.

The test finds ``chromium`` (installing it with apt-get when it is missing and this is root on
Debian) and skips with the reason otherwise. The screenshot it takes is kept in the test's tmp
directory (printed with ``-s``) as the artifact.
"""

from __future__ import annotations

import html as html_text
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from router._sim import Fleet

from .conftest import ADMIN, HTTP, KEY, GatewayProcess, gateway_config, to_toml

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


def test_dashboard_says_why_a_reload_was_refused(
    fleet: Fleet, chromium: str, tmp_path: Path
) -> None:
    path = tmp_path / "providers.toml"
    good = to_toml(gateway_config(fleet))
    path.write_text(good)
    process = GatewayProcess(path)
    try:
        url = f"{process.url}/dashboard#key={ADMIN}"  # the reasons are the admin's to read
        caller_url = f"{process.url}/dashboard#key={KEY}"
        admin = {"authorization": f"Bearer {ADMIN}"}
        # Two problems, one of them markup: the page must show it as text, not run it.
        markup = "<img src=x onerror=document.body.dataset.pwned=1>"
        broken = good.replace("[router]\n", f'[router]\n"{markup}" = 1\n', 1)
        broken = broken.replace("max_attempts = 3", "max_attempts = 0")
        assert broken.count(markup) == 1 and "max_attempts = 0" in broken
        path.write_text(broken)
        refused = httpx.post(f"{process.url}/admin/reload", headers=admin, timeout=20)
        assert refused.status_code == 422
        problems = refused.json()["problems"]
        assert len(problems) >= 2 and any(markup in p for p in problems)
        assert any("max_attempts" in p for p in problems)
        dom = _browser(chromium, "--virtual-time-budget=5000", "--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = dom.stdout
        assert 'data-loaded="1"' in page, "the page never rendered /dashboard.json"
        assert "last reload REFUSED (admin, " in page
        assert '<section id="reload">' in page  # shown (no longer hidden)
        assert "Last reload REFUSED (admin, " in page
        for problem in problems:  # every reason, as escaped text
            assert f'<li class="problem">{html_text.escape(problem, quote=False)}</li>' in page
        assert "<img" not in page and "data-pwned" not in page  # no element made of it, none ran
        assert f'id="config">config {path} · ' in page
        # A caller's key: the page says the reload was refused, not why, and not the path.
        dom = _browser(chromium, "--virtual-time-budget=5000", "--dump-dom", caller_url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        brief = dom.stdout
        assert 'data-loaded="1"' in brief, "the page never rendered /dashboard.json"
        assert "last reload REFUSED (admin, " in brief and '<section id="reload">' in brief
        assert '<p class="problem-hidden">The reasons are in the gateway' in brief
        assert 'class="problem"' not in brief and "max_attempts" not in brief
        assert str(path) not in brief
        assert 'id="config">config (its path: with the admin key) · ' in brief
        shot = tmp_path / "dashboard-refused.png"
        done = _browser(
            chromium, "--virtual-time-budget=5000", "--window-size=1400,1000",
            f"--screenshot={shot}", url,
        )  # fmt: skip
        assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000
        print(f"dashboard screenshot (refused reload): {shot}")
        # The old config kept serving; a good file afterwards clears the box.
        ok = HTTP.post(f"{process.base_url}/chat/completions",
                       json={"model": "chat", "messages": HI})  # fmt: skip
        assert ok.status_code == 200
        path.write_text(good.replace("max_attempts = 3", "max_attempts = 2"))
        again = httpx.post(f"{process.url}/admin/reload", headers=admin, timeout=20)
        assert again.status_code == 200
        page = _browser(chromium, "--virtual-time-budget=5000", "--dump-dom", url).stdout
        assert "last reload ok (admin, " in page
        assert '<section id="reload" hidden=""></section>' in page  # the box is gone
    finally:
        process.stop()
