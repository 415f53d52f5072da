"""Smoke test of the chaos and straggler benchmarks: both run end to end with ``--quick``.

No timing is asserted (figures belong in the benchmarks' reports, not in pass/fail): only that
each script exits 0 and that its JSON holds every figure, as a number. The two scripts run at
the same time, as subprocesses, so the pair stays well under a minute.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
TIMEOUT_S = 55.0
SYSTEMS = {
    "ours",
    "litellm simple-shuffle",
    "litellm latency-based-routing",
    "litellm cost-based-routing",
    "litellm least-busy",
    "litellm usage-based-routing-v2",
}
CHAOS_FIGURES = (
    "success",
    "p50_ms",
    "p99_ms",
    "cost_per_1k",
    "oracle_cost_per_1k",
    "cost_ratio",
    "upstream_per_request",
    "a_share_last_eighth",
)
HEDGE_MODES = ("off", "hedge p95", "hedge fixed", "litellm")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Any, Path]]]:
    """Start both benchmarks with ``--quick`` at once; yield (process, JSON path) by script."""
    out = tmp_path_factory.mktemp("bench")
    started: dict[str, tuple[Any, Path]] = {}
    for script in ("bench_chaos.py", "bench_hedge.py"):
        path = out / f"{script}.json"
        command = [sys.executable, str(SCRIPTS / script), "--quick", "--json", str(path)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[script] = (proc, path)
    try:
        yield started
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _finished(runs: dict[str, tuple[Any, Path]], script: str) -> tuple[str, dict[str, Any]]:
    proc, path = runs[script]
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"{script} --quick took over {TIMEOUT_S:g} s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    figures: dict[str, Any] = json.loads(path.read_text())
    return stdout, figures


def test_chaos_quick_run_writes_every_figure(runs: dict[str, tuple[Any, Path]]) -> None:
    stdout, figures = _finished(runs, "bench_chaos.py")
    assert "one fault schedule" in stdout
    assert {"machine", "settings", "systems", "verdict", "runtime_s"} <= set(figures)
    systems = {r["system"]: r for r in figures["systems"]}
    assert set(systems) == SYSTEMS
    for name, r in systems.items():
        for key in CHAOS_FIGURES:
            assert _number(r[key]), (name, key, r[key])
        assert r["requests"] > 0
        assert set(r["upstream_calls"]) == {"a", "b", "c"}
        assert [p["phase"] for p in r["phases"]] == ["healthy", "A 503", "A hangs", "A back"]
    assert _number(systems["ours"]["router"]["hedged_calls"])
    goals = figures["verdict"]["goals"]
    assert {g["figure"] for g in goals} >= {"success", "p99_ms", "cost_ratio"}
    for goal in goals:
        assert _number(goal["ours"]) and _number(goal["litellm_best"])
        assert goal["vs_litellm_best"] in ("better", "tie", "worse")
        if "target" in goal:
            assert isinstance(goal["pass"], bool)
    assert figures["verdict"]["litellm_best_overall"] in SYSTEMS


def test_hedge_quick_run_writes_every_figure(runs: dict[str, tuple[Any, Path]]) -> None:
    stdout, figures = _finished(runs, "bench_hedge.py")
    assert "hedging on vs off" in stdout
    assert {"machine", "settings", "modes", "goals", "configs", "runtime_s"} <= set(figures)
    for mode in HEDGE_MODES:
        f = figures["modes"][mode]
        for key in ("p50", "p95", "p99", "p999"):
            assert _number(f["latency_ms"][key]), (mode, key)
        for key in ("extra_requests", "p99_vs_off", "p99_cut", "success", "hedged_calls"):
            assert _number(f[key]), (mode, key)
        assert f["requests"] > 0
    assert [g["mode"] for g in figures["goals"]] == ["hedge p95", "hedge fixed"]
    for goal in figures["goals"]:
        assert isinstance(goal["pass"], bool) and _number(goal["p99_cut"])
