"""Smoke test of `scripts/bench_redis.py`: it runs end to end and writes every figure.

No timing is asserted here (the benchmark reports against its goals); only that a tiny run
exits 0 and its JSON holds each figure as a finite number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_redis.py"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_a_tiny_run_writes_every_figure(tmp_path: Path, redis_binary: str) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--rounds", "2", "--calls", "20"]
    done = subprocess.run(
        [*command, "--trips", "3", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "added" in done.stdout and "propagation, idle" in done.stdout
    figures = json.loads(out.read_text())
    overhead = figures["overhead"]
    for key in ("memory_us_per_call", "redis_us_per_call", "added_ms_per_call"):
        assert all(_finite(v) for v in overhead[key].values()), key
    assert overhead["redis_degraded_during_run"] is False
    for phase in ("idle", "busy"):
        delays = figures["propagation"][phase]["delay_ms"]
        assert set(delays) == {"p50", "p90", "p99", "max", "min"}
        assert all(_finite(v) and v >= 0 for v in delays.values())
    assert "3. discovery cost" in done.stdout
    discovery = figures["discovery"]["calls_to_dead"]
    modes = {"single", "three apart", "three shared, per-process rule", "three shared"}
    assert set(discovery) == modes
    for mode in modes:
        # Every mode found out the hard way at least once: the dead provider got calls.
        assert discovery[mode]["min"] >= 1 and _finite(discovery[mode]["median"]), mode
    assert figures["discovery"]["failed_calls"] == 0  # b served every call
