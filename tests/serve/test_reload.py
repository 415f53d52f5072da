"""Validated hot reload: `Router.reload` (library), SIGHUP / POST /admin/reload / file change on a
running gateway; a broken file changes nothing and says why."""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from router import ConfigError, Router
from router._diff import diff_configs
from router._sim import Fleet

from .conftest import ADMIN, HTTP, GatewayProcess, gateway_config, to_toml

HI = [{"role": "user", "content": "hi"}]


def _base(fleet: Fleet) -> dict[str, Any]:
    return gateway_config(fleet)


def test_diff_lists_added_removed_changed_and_hides_secrets(fleet: Fleet) -> None:
    from router import Config

    old_data = _base(fleet)
    new_data = copy.deepcopy(old_data)
    new_data["deployments"] = [d for d in new_data["deployments"] if d["name"] != "dash"]
    new_data["deployments"][0]["timeout"] = 3.0
    new_data["deployments"][1]["api_key"] = "sk-other-secret"
    new_data["deployments"][2]["groups"] = []
    new_data["router"]["max_attempts"] = 2
    new_data["groups"]["hang"]["deadline"] = 2.0
    extra = dict(old_data["deployments"][0], name="d2", groups=["chat"])
    new_data["deployments"].append(extra)
    diff = diff_configs(Config.from_dict(old_data), Config.from_dict(new_data))
    assert diff.added == ("d2",)
    assert diff.removed == ("dash",)
    assert diff.changed["a"] == ("timeout 4 -> 3",)
    assert diff.changed["b"] == ("api_key changed",)
    assert diff.groups["chat"] == "members a, b, c -> a, b, d2"
    assert diff.groups["hang"] == "deadline: 1 -> 2"
    assert diff.settings == ("max_attempts: 3 -> 2",)
    text = str(diff)
    assert "sk-other-secret" not in text and "sk-sim-test" not in text
    same = diff_configs(Config.from_dict(old_data), Config.from_dict(old_data))
    assert same.empty and same.lines() == ["no changes"]


async def test_router_reload_keeps_state_of_unchanged_deployments(fleet: Fleet) -> None:
    data = _base(fleet)
    router = Router(data, telemetry=False)
    for name in ("a", "b"):
        state = router.state.get(name)
        for _ in range(10):  # the default policy opens after 5 in a row
            state.breaker.record(False, router.clock.now(), why="test")
    assert {h.deployment: h.state for h in router.health()}["a"] == "open"
    broken = copy.deepcopy(data)
    broken["router"]["deadline"] = -1
    with pytest.raises(ConfigError) as caught:
        router.reload(broken)
    assert "router.deadline" in str(caught.value)
    assert router.config.router.deadline == 10.0  # nothing changed
    new = copy.deepcopy(data)
    new["deployments"][1]["timeout"] = 1.5  # b changes: its state starts afresh
    diff = router.reload(new)
    assert diff.changed == {"b": ("timeout 4 -> 1.5",)}
    states = {h.deployment: h.state for h in router.health()}
    assert states["a"] == "open" and states["b"] == "closed"
    reply = await router.acompletion("chat", HI)
    assert reply._hidden_params["router_decision"].deployment == "b"


async def test_in_flight_call_finishes_on_the_old_config(fresh: Fleet) -> None:
    data = _base(fresh)
    fresh["c"].set(latency_ms=300.0)
    router = Router(data, telemetry=False)
    call = asyncio.ensure_future(router.acompletion("c", HI))
    await asyncio.sleep(0.1)
    new = copy.deepcopy(data)
    new["deployments"] = [d for d in new["deployments"] if d["name"] != "c"]
    assert router.reload(new).removed == ("c",)
    reply = await call
    assert reply.choices[0].message.content == "Hello from c."
    assert not router.config.is_routable("c")


@pytest.fixture
def reloadable(fleet: Fleet, tmp_path: Path) -> Any:
    path = tmp_path / "providers.toml"
    data = _base(fleet)
    path.write_text(to_toml(data))
    process = GatewayProcess(path, env={"ROUTER_TEST_WATCH": "1"})
    try:
        yield process, path, data
    finally:
        process.stop()


def test_gateway_reload_by_admin_sighup_and_refusal(reloadable: Any) -> None:
    process, path, data = reloadable
    url = process.url
    assert HTTP.post(f"{process.base_url}/chat/completions", json={"model": "a", "messages": HI})
    # A broken file: refused with the reasons, the old config still serves.
    path.write_text(to_toml(data).replace("deadline = 10.0", 'deadline = "soon"'))
    assert httpx.post(f"{url}/admin/reload").status_code == 401  # no admin key
    assert HTTP.post(f"{url}/admin/reload").status_code == 401  # a caller's key is no admin's
    r = httpx.post(f"{url}/admin/reload", headers={"authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False and any("router.deadline" in p for p in body["problems"])
    process.wait_for("reload \\(admin\\) refused")
    ok = HTTP.post(f"{process.base_url}/chat/completions", json={"model": "a", "messages": HI})
    assert ok.status_code == 200
    # Why it was refused is the admin's to read (the problems name the file's keys); a
    # caller's key learns that it was refused, when and how, and not the file's path.
    admin = {"authorization": f"Bearer {ADMIN}"}
    seen = httpx.get(f"{url}/dashboard.json", headers=admin).json()
    assert seen["detail"] is True and seen["config"] == str(path)
    assert seen["last_reload"]["problems"] == body["problems"]
    caller = HTTP.get(f"{url}/dashboard.json")
    assert caller.status_code == 200
    brief = caller.json()
    assert brief["detail"] is False and brief["config"] is None
    assert brief["last_reload"] == {"ok": False, "at": seen["last_reload"]["at"],
                                    "trigger": "admin"}  # fmt: skip
    assert "router.deadline" not in caller.text and str(path) not in caller.text
    assert httpx.get(f"{url}/dashboard.json").status_code == 401  # no key: nothing
    assert "config" not in httpx.get(f"{url}/readyz").json()  # probes send no key
    assert httpx.get(f"{url}/readyz", headers=admin).json()["config"] == str(path)
    # A valid change through SIGHUP: the diff is printed; the removed deployment is gone.
    new = copy.deepcopy(data)
    new["deployments"] = [d for d in new["deployments"] if d["name"] != "dash"]
    path.write_text(to_toml(new))
    process.signal(signal.SIGHUP)
    process.wait_for("- deployment dash")
    taken = HTTP.get(f"{url}/dashboard.json").json()["last_reload"]
    assert taken["ok"] is True and taken["trigger"] == "SIGHUP" and "diff" not in taken
    diff = httpx.get(f"{url}/dashboard.json", headers=admin).json()["last_reload"]["diff"]
    assert "dash" in str(diff)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        r = HTTP.post(
            f"{process.base_url}/chat/completions", json={"model": "dash", "messages": HI}
        )
        if r.status_code == 404:
            break
        time.sleep(0.05)
    assert r.status_code == 404
    models = [m["id"] for m in HTTP.get(f"{process.base_url}/models").json()["data"]]
    assert "dash" not in models


def test_check_diff_cli(fleet: Fleet, tmp_path: Path) -> None:
    import subprocess
    import sys

    old, new, broken = tmp_path / "old.toml", tmp_path / "new.toml", tmp_path / "broken.toml"
    data = _base(fleet)
    old.write_text(to_toml(data))
    changed = copy.deepcopy(data)
    changed["deployments"] = [d for d in changed["deployments"] if d["name"] != "dash"]
    changed["router"]["max_attempts"] = 2
    new.write_text(to_toml(changed))
    broken.write_text(to_toml(data).replace("max_attempts = 3", "max_attempts = 0"))
    cmd = [sys.executable, "-m", "router.cli", "check", "--diff"]
    ok = subprocess.run([*cmd, str(old), str(new)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "- deployment dash" in ok.stdout and "max_attempts: 3 -> 2" in ok.stdout
    bad = subprocess.run([*cmd, str(old), str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "router.max_attempts" in bad.stderr and "refused" in bad.stderr


def test_an_open_gateway_shows_every_caller_why_a_reload_was_refused(
    fleet: Fleet, tmp_path: Path
) -> None:
    # No keys at all (local development): as before, the dashboard shows anyone the problems
    # and the path, and reload is taken from this machine only.
    path = tmp_path / "providers.toml"
    data = gateway_config(fleet, keys=False)
    path.write_text(to_toml(data))
    process = GatewayProcess(path)
    try:
        path.write_text(to_toml(data).replace("max_attempts = 3", "max_attempts = 0"))
        refused = httpx.post(f"{process.url}/admin/reload", timeout=20)
        assert refused.status_code == 422
        seen = httpx.get(f"{process.url}/dashboard.json").json()
        assert seen["detail"] is True and seen["config"] == str(path)
        assert seen["last_reload"]["problems"] == refused.json()["problems"]
        assert any("router.max_attempts" in p for p in seen["last_reload"]["problems"])
        assert httpx.get(f"{process.url}/readyz").json()["config"] == str(path)
    finally:
        process.stop()
