"""What the three examples share: their own simulated fleet, the config aimed at it, and the
job-metrics report they print.

This is plumbing, not the pattern an example shows: the patterns live in each example's
``providers.toml`` and ``run.py``. Every example starts its own `Fleet` on ephemeral loopback
ports (so it never collides with ``./dev demo`` on 4101-4103, nor with another example), then
loads its TOML and points each deployment's ``api_base`` at the simulated provider of the same
name, exactly as a real deployment would point it at a provider's URL.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from router import Config, Escalation

if TYPE_CHECKING:
    from router import JobRecord
    from router._sim import Fleet

__all__ = ["JobResult", "Report", "load_config", "parse_args", "records_path"]


def parse_args(name: str, doc: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line every example takes: where its records go."""
    first = (doc or name).strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog=f"examples/{name}/run.py", description=first)
    parser.add_argument(
        "--records",
        type=Path,
        default=Path(tempfile.gettempdir()) / "router-examples" / f"{name}-records.jsonl",
        help="JSONL file for the call and job records (replaced on each run; default: %(default)s)",
    )
    return parser.parse_args(argv)


def records_path(requested: Path) -> Path:
    """Where records will really go (``ROUTER_RECORD_FILE`` wins over the config), emptied.

    Emptied because the recorder appends: a second run must not count the first one's jobs.
    """
    path = Path(os.environ.get("ROUTER_RECORD_FILE") or requested)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


def load_config(toml_path: Path, fleet: Fleet, records: Path) -> Config:
    """The example's providers.toml, its deployments aimed at `fleet`, recording to `records`.

    Each ``[[deployments]]`` entry named like a fleet provider gets that provider's URL (the
    TOML's port is only what a long-running fleet would use); everything else is as written.
    """
    data: dict[str, Any] = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    for deployment in data.get("deployments", []):
        provider = fleet.providers.get(deployment.get("name", ""))
        if provider is not None:
            deployment["api_base"] = provider.base_url
    data.setdefault("router", {})["record_file"] = str(records)
    return Config.from_dict(data, source=str(toml_path))


def _money(value: float) -> str:
    return f"${value:.6f}"


@dataclass
class JobResult:
    """One finished job as an example saw it, and what the example expected of it."""

    item: str
    """The work item's id (ticket, invoice, question)."""
    label: str
    """A short description of the item (its kind)."""
    record: JobRecord
    expected: str
    """The outcome the example designed: success or needs_review."""
    path: str
    """Where the work went, e.g. ``small → strong`` or ``plan@strong, 3 searches``."""
    escalations: list[Escalation] = field(default_factory=list)
    extra_cost_usd: float = 0.0
    """Cost the job record cannot know about (tool calls made through a `router.Pool`)."""
    note: str = ""

    @property
    def cost_usd(self) -> float:
        return self.record.cost_usd + self.extra_cost_usd


class Report:
    """Job results and the example's own checks; prints the metrics and gives the exit code."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.jobs: list[JobResult] = []
        self.problems: list[str] = []

    def add(self, result: JobResult) -> JobResult:
        """Record a job; a job that did not end as designed is a problem."""
        self.jobs.append(result)
        if result.record.outcome != result.expected:
            self.problems.append(
                f"{result.item}: ended {result.record.outcome}, expected {result.expected}"
                f" ({result.record.why or 'no reason recorded'})"
            )
        return result

    def expect(self, condition: bool, problem: str) -> None:
        """An assert that reports instead of raising, so one run shows every problem."""
        if not condition:
            self.problems.append(problem)

    def totals(self) -> dict[str, float]:
        """Task success rate, cost per completed job, escalation and human-review rates."""
        jobs = len(self.jobs)
        done = sum(1 for j in self.jobs if j.record.outcome == "success")
        cost = sum(j.cost_usd for j in self.jobs)
        return {
            "jobs": jobs,
            "success_rate": done / jobs if jobs else 0.0,
            "total_cost_usd": cost,
            # Everything spent, reviews and failures included, over the jobs that completed:
            # what one finished job really costs.
            "cost_per_completed_job_usd": cost / done if done else 0.0,
            # Any answer that failed its checks, as `router report` counts them ...
            "escalation_rate": sum(1 for j in self.jobs if j.escalations) / jobs if jobs else 0.0,
            # ... and of those, the ones a stronger model took over (the rest went to a human).
            "model_escalation_rate": (
                sum(1 for j in self.jobs if any(e.to_group for e in j.escalations)) / jobs
                if jobs
                else 0.0
            ),
            "human_review_rate": (
                sum(1 for j in self.jobs if j.record.outcome == "needs_review") / jobs
                if jobs
                else 0.0
            ),
        }

    def print(self, records: Path, out: TextIO, extra: Mapping[str, str] | None = None) -> int:
        """Print the per-job table, the totals and the problems; 0 if every job was as designed."""
        w = out.write
        w(f"\n== {self.title}: job metrics\n")
        width = max([len(j.item) for j in self.jobs] + [4])
        kind = max([len(j.label) for j in self.jobs] + [4])
        w(f"{'job':<{width}}  {'kind':<{kind}}  {'outcome':<12}  {'cost':>10}  path\n")
        for job in self.jobs:
            w(
                f"{job.item:<{width}}  {job.label:<{kind}}  {job.record.outcome:<12}  "
                f"{_money(job.cost_usd):>10}  {job.path}\n"
            )
            pad = " " * (width + 2)
            for e in job.escalations:
                to = e.to_group or "human review"
                w(f"{pad}↳ {e.from_group} → {to} on {e.trigger}: {e.detail}\n")
            if job.note:
                w(f"{pad}↳ {job.note}\n")
        t = self.totals()
        w("\ntotals\n")
        w(f"  jobs                    {int(t['jobs'])}\n")
        w(f"  task success rate       {t['success_rate']:.0%}  (completed without a human)\n")
        w(f"  total cost              {_money(t['total_cost_usd'])}\n")
        w(f"  cost per completed job  {_money(t['cost_per_completed_job_usd'])}\n")
        w(
            f"  escalation rate         {t['escalation_rate']:.0%}"
            f"  ({t['model_escalation_rate']:.0%} to a stronger model)\n"
        )
        w(f"  human-review rate       {t['human_review_rate']:.0%}\n")
        for key, value in (extra or {}).items():
            w(f"  {key:<23} {value}\n")
        w(f"  records                 {records} ({_record_counts(records)})\n")
        w(f"                          summarise them: router report {records}\n")
        if self.problems:
            w(f"\nNOT AS DESIGNED ({len(self.problems)}):\n")
            for problem in self.problems:
                w(f"  - {problem}\n")
            return 1
        w(f"\nall {len(self.jobs)} jobs ended as designed\n")
        return 0


def _record_counts(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return "not written"
    kinds = Counter(json.loads(line).get("type") for line in lines if line.strip())
    return ", ".join(f"{n} {kind} lines" for kind, n in sorted(kinds.items())) or "empty"
