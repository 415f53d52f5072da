"""Start-up: wall time of ``router check`` and ``import router``, and that neither loads litellm.

    python scripts/bench_startup.py                       # 20 interleaved rounds
    python scripts/bench_startup.py --before /path/tree   # also a before tree, same run
    python scripts/bench_startup.py --json out.json       # also write every figure as JSON

What is measured
----------------
Each row is a fresh interpreter (``sys.executable``) started as a user starts it; wall time
from spawn to exit, and the child's own CPU time (user + system, from ``os.wait4``):

- ``python -c pass``: the interpreter alone (the floor every command pays; the baseline);
- ``import router``: the package import a library user pays (litellm stays unloaded);
- ``router check``: ``python -m router.cli check CONFIG`` on the repository's providers.toml
  (validate and print the routing table).

Rounds are interleaved (every row once per round, in a freshly shuffled order) and summarised
as median, IQR and min-max. With ``--before TREE`` the same rows also run with
``PYTHONPATH=TREE`` (another checkout of the package, e.g. main before a change) in the same
rounds, so a before/after is measured in one run.

The child runs with the caller's environment minus ``ROUTER_*`` variables (those are config
overrides and would change what ``check`` does). Bytecode caching follows the caller's
environment (``PYTHONDONTWRITEBYTECODE``): with it set, nothing is cached between runs and
every run compiles the package's modules from source, which is what a fresh clone pays.

Goals: ``router check`` under 0.3 s wall; ``import router`` and ``router check`` never import
litellm. A benchmark reports; it exits 0 whether or not the goals are met.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchlib import machine_facts, spread, write_json

ROOT = Path(__file__).resolve().parent.parent
GOAL_CHECK_S = 0.3

_PROBE = "import sys; {body}; sys.exit(3 if 'litellm' in sys.modules else 0)"
"""Each row's code; exit status 3 says litellm was imported."""


def rows(config: Path) -> dict[str, str]:
    """Row name -> the ``python -c`` code it runs."""
    check = (
        "import contextlib, io; from router.cli import main; "
        "ctx = contextlib.redirect_stdout(io.StringIO()); ctx.__enter__(); "
        f"rc = main(['check', {str(config)!r}]); "
        "ctx.__exit__(None, None, None); rc == 0 or sys.exit(rc)"
    )
    return {
        "python -c pass": _PROBE.format(body="pass"),
        "import router": _PROBE.format(body="import router"),
        "router check": _PROBE.format(body=check),
    }


def run_once(code: str, env: Mapping[str, str]) -> tuple[float, float, int]:
    """(wall s, child CPU s, exit status) of one fresh interpreter running `code`.

    It runs in the tree's directory (``PYTHONPATH`` of `env`): ``python -c`` puts its working
    directory first on ``sys.path``.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=env["PYTHONPATH"],
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved rounds over every (tree, row)."""
    base_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ROUTER_")}
    trees: dict[str, dict[str, str]] = {"after": {**base_env, "PYTHONPATH": str(ROOT)}}
    if args.before is not None:
        trees = {"before": {**base_env, "PYTHONPATH": str(args.before)}, **trees}
    codes = rows(args.config)
    keys = [
        (tree, row) for tree in trees for row in codes if row != "python -c pass" or tree == "after"
    ]
    wall: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    cpu: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    failures: dict[str, int] = {}
    rng = random.Random(args.seed)
    for key in keys:  # warm the OS file cache
        run_once(codes[key[1]], trees[key[0]])
    for _ in range(args.rounds):
        for tree, row in rng.sample(keys, len(keys)):
            w, c, status = run_once(codes[row], trees[tree])
            wall[(tree, row)].append(w)
            cpu[(tree, row)].append(c)
            if status != 0:
                label = f"{tree} {row}: exit {status}" + (
                    " (litellm imported)" if status == 3 else ""
                )
                failures[label] = failures.get(label, 0) + 1
    return {
        "rows": [
            {
                "tree": tree,
                "row": row,
                "wall_s": spread(wall[(tree, row)]),
                "cpu_s": spread(cpu[(tree, row)]),
            }
            for tree, row in keys
        ],
        "failures": failures,
    }


def report(results: Mapping[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    lines = [
        "router: start-up (fresh interpreter per run, interleaved rounds)",
        f"python {m['python']} | {m['cpu_count']} CPUs | load average at start "
        f"{m['load_average_at_start']} | PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r} | {args.rounds} rounds",
        "",
        f"  {'tree':<7}{'row':<16}{'wall median':>12}   {'wall IQR, min-max':<26}"
        f"{'CPU median':>11}",
    ]
    for r in results["rows"]:
        w, c = r["wall_s"], r["cpu_s"]
        ranges = (
            f"{w['q25'] * 1e3:.0f}..{w['q75'] * 1e3:.0f}, "
            f"{w['min'] * 1e3:.0f}..{w['max'] * 1e3:.0f} ms"
        )
        lines.append(
            f"  {r['tree']:<7}{r['row']:<16}{w['median'] * 1e3:>9.0f} ms   {ranges:<26}"
            f"{c['median'] * 1e3:>8.0f} ms"
        )
    after = {r["row"]: r for r in results["rows"] if r["tree"] == "after"}
    check = after["router check"]["wall_s"]["median"]
    lines += [
        "",
        f"  goal: router check < {GOAL_CHECK_S:g} s wall: {check:.3f} s "
        f"{'PASS' if check < GOAL_CHECK_S else 'MISS'}",
        "  goal: import router / router check without litellm: "
        + ("PASS" if not any("litellm" in k for k in results["failures"]) else "MISS"),
    ]
    for label, count in results["failures"].items():
        lines.append(f"  failed: {label} ({count} runs)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (20)")
    parser.add_argument("--config", type=Path, default=ROOT / "providers.toml")
    parser.add_argument("--before", type=Path, help="another checkout to compare, same run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write figures as JSON")
    args = parser.parse_args(argv)
    args.config = args.config.resolve()
    results: dict[str, Any] = {"machine": machine_facts()}
    results.update(measure(args))
    print(report(results, args))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
