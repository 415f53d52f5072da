"""Smoke test of the overhead benchmark: it runs end to end and writes complete figures.

No timing is asserted (timing belongs in the benchmark's own report, not in pass/fail): only
that the script exits 0 with `--quick` and that its JSON has every figure, as a number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_overhead.py"
MODES = ("raw", "router", "litellm-router")
SPREAD = ("median", "q25", "q75", "min", "max")


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _finite(value: Any) -> bool:
    # Added costs are differences: noise can make them negative, so only finiteness is checked.
    return isinstance(value, int | float) and math.isfinite(value)


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # Smallest useful settings: the fixed costs (litellm import, provider start) dominate.
    command = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--rounds",
        "2",
        "--calls",
        "5",
        "--per-worker",
        "1",
        "--concurrency",
        "1,4",
        "--inproc-calls",
        "200",
        "--json",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "router vs raw litellm" in done.stdout

    figures = json.loads(out.read_text())
    assert {"machine", "settings", "sequential", "concurrent", "in_process", "goals"} <= set(
        figures
    )
    assert figures["machine"]["litellm"] and _positive(figures["machine"]["cpu_count"])

    sequential = figures["sequential"]
    for mode in MODES:
        for key in ("median_ms", "p99_ms", "mean_ms", "calls"):
            assert _positive(sequential["modes"][mode][key]), (mode, key)
    for mode in MODES[1:]:
        added = sequential["added"][mode]
        assert all(_finite(added["median_added_ms"][k]) for k in SPREAD), mode
        assert all(_finite(added["median_added_pct"][k]) for k in SPREAD), mode
        assert _finite(added["p99_added_ms"]), mode

    assert set(figures["concurrent"]) == {"1", "4"}
    for level in figures["concurrent"].values():
        for mode in MODES:
            figures_of = level["modes"][mode]
            assert _positive(figures_of["median_calls_per_s"]), mode
            assert _positive(figures_of["p50_ms"]) and _positive(figures_of["p99_ms"]), mode
        for mode in MODES[1:]:
            assert all(_positive(level["ratio_to_raw"][mode][k]) for k in SPREAD), mode
            assert _finite(level["p99_added_ms"][mode]), mode

    in_process = figures["in_process"]
    assert _positive(in_process["direct_us"]) and _positive(in_process["router_us"])
    assert all(_finite(in_process["added_us"][k]) for k in SPREAD)

    # Sequential median and p99 and the router's own work; no throughput goal at levels 1 and
    # 4 (goals are at 32+). LiteLLM's Router has no in-process figure.
    assert [g["unit"] for g in figures["goals"]] == ["ms", "ms", "us"]
    for goal in figures["goals"]:
        assert isinstance(goal["pass"], bool)
        assert _finite(goal["router"])
        assert _finite(goal["litellm_router"]) or goal["unit"] == "us"

    # Every call reached the provider and succeeded: the modes really ran, with no retries.
    stats = figures["provider"]["stats"]
    assert stats["requests"] > 0 and stats["ok"] == stats["requests"]
