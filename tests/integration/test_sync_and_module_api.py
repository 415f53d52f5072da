"""The sync API and the module-level API (`ROUTER_CONFIG`) against a fleet in a thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import litellm
import pytest

from router import Router, StreamInterrupted, get_decision
from router._sim import Fleet

from .conftest import fleet_config

MSG = [{"role": "user", "content": "hello"}]
# Attempt timeout: the first call of a process (a fresh subprocess below, or this module run
# alone) pays litellm's lazy imports and client set-up, 1-2 s on a loaded machine.
_WARM = 5.0


def test_sync_completion_and_failover(threaded_fleet: Fleet) -> None:
    router = Router(fleet_config(threaded_fleet, timeout=_WARM))
    response = router.completion("chat", MSG)
    assert isinstance(response, litellm.ModelResponse)
    assert get_decision(response).deployment == "a"  # type: ignore[union-attr]
    threaded_fleet["a"].set(outage="refused")
    assert get_decision(router.completion("chat", MSG)).deployment == "b"  # type: ignore[union-attr]


def test_sync_stream(threaded_fleet: Fleet) -> None:
    router = Router(fleet_config(threaded_fleet, timeout=_WARM))
    stream = router.completion("chat", MSG, stream=True)
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert text == "Hello from a."
    assert stream.decision.outcome == "success"


def test_sync_stream_cut_raises(threaded_fleet: Fleet) -> None:
    router = Router(fleet_config(threaded_fleet, timeout=_WARM))
    threaded_fleet["a"].set(cut_stream_after=1)
    stream = router.completion("chat", MSG, stream=True)
    with pytest.raises(StreamInterrupted):
        for _ in stream:
            pass


def toml_for(config: dict[str, object]) -> str:
    lines = ["[router]", "deadline = 5.0", ""]
    for dep in config["deployments"]:  # type: ignore[attr-defined]
        lines.append("[[deployments]]")
        for key, value in dep.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def _run_script(script: str, config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    repo = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "ROUTER_CONFIG": str(config),
        "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
    }
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
    # faulthandler: a hang at exit prints every thread's stack instead of a bare timeout.
    prologue = "import faulthandler; faulthandler.dump_traceback_later(60, exit=True)\n"
    return subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_module_level_api_reads_router_config(threaded_fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(toml_for(fleet_config(threaded_fleet, timeout=_WARM)))
    threaded_fleet["a"].set(outage="503")
    out = _run_script(
        """
        import sys, router
        assert "litellm" not in sys.modules, "import router must not import litellm"
        r = router.completion(model="chat", messages=[{"role": "user", "content": "hi"}])
        d = router.get_decision(r)
        print(d.deployment, r.choices[0].message.content)
        """,
        path,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "b Hello from b."


def test_exit_stops_the_loop_and_flushes_litellm_callbacks(
    threaded_fleet: Fleet, tmp_path: Path
) -> None:
    """At exit the sync loop's thread is joined before `atexit` handlers run, and a user's
    litellm callback still in flight completes instead of being frozen.

    A daemon loop left running at finalization deadlocked the exit about one run in ten
    (frozen mid-import while holding the import lock; litellm's `__del__` then imported).
    """
    path = tmp_path / "fleet.toml"
    path.write_text(toml_for(fleet_config(threaded_fleet, timeout=_WARM)))
    marker = tmp_path / "callback.txt"
    out = _run_script(
        f"""
        import atexit, threading, time, router, litellm
        from litellm.integrations.custom_logger import CustomLogger

        class Slow(CustomLogger):
            # A sync call fires litellm's sync events (router._threaded), on litellm's threads.
            def log_success_event(self, kwargs, response_obj, start_time, end_time):
                time.sleep(0.3)
                with open({str(marker)!r}, "w") as f:
                    f.write("logged")

        litellm.callbacks = [Slow()]
        r = router.completion(model="chat", messages=[{{"role": "user", "content": "hi"}}])

        def report():
            alive = [t.name for t in threading.enumerate() if t.name == "router-sync-loop"]
            print("loop threads at atexit:", alive, flush=True)

        atexit.register(report)
        print(router.get_decision(r).deployment, flush=True)
        """,
        path,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["a", "loop threads at atexit: []"], out.stdout
    assert marker.read_text() == "logged"
