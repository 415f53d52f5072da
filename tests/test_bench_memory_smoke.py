"""Smoke test of the memory benchmark's in-process sections: it runs and reports every figure.

No size is asserted (figures belong in the benchmark's report): only that the script exits 0
and that its JSON has the state and in-flight figures, as numbers. The HTTP and soak sections
need minutes and are left to the benchmark itself.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_memory.py"


def test_in_process_sections_write_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--minutes",
        "0",
        "--no-http",
        "--in-flight",
        "200",
        "--rounds",
        "1",
        "--json",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "added by the router" in done.stdout
    figures = json.loads(out.read_text())
    assert [row["deployments"] for row in figures["state"]] == [10, 1000]
    for row in figures["state"]:
        assert math.isfinite(row["bytes_per_deployment"]) and row["bytes_per_deployment"] > 0
    in_flight = figures["in_flight"]
    assert in_flight["calls"] == 200
    for key in ("direct_bytes_per_call", "router_bytes_per_call", "added_bytes_per_call"):
        assert math.isfinite(in_flight[key]), key
    assert "soak" not in figures and "http" not in figures
