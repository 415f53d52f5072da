"""Smoke test of the telemetry benchmark: it runs end to end and writes complete figures.

No timing is asserted (a benchmark reports; pass/fail on timing would be flaky on a shared
machine): only that the script exits 0 and its JSON has every figure, as a finite number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_telemetry.py"


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--rounds", "2", "--calls", "20"]
    done = subprocess.run(
        [*command, "--warmup", "5", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "+ tracing+logs" in done.stdout
    results = json.loads(out.read_text())
    for scenario in ("served", "failover"):
        figures = results[scenario]
        for mode in ("direct", "off", "tracing+logs", "all", "tracing+logs/sync"):
            assert math.isfinite(figures["us_per_call"][mode]["median"])
        for mode in ("tracing+logs", "all", "tracing+logs/sync"):
            assert set(figures["added_us"][mode]) == {"median", "q25", "q75", "min", "max"}
    assert results["sdk_not_imported_when_off"] is True
    assert isinstance(results["goal"]["pass"], bool)
