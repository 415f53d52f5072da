"""``router report FILE``: the seed's metrics, summarised from a JSONL record file.

The router appends one line per call decision and per job to ``[router] record_file``. This
module reads such a file, through the same `router._schema` that writes its lines (fields a
line leaves out read as their defaults there), and computes, overall, per route, per step (and
per group or deployment on request) and per escalation trigger: task success, cost per
completed job, latency, failure, escalation and human-review rates. It uses the standard
library only, so the command answers at once (litellm is never imported).

Definitions (call records):

- *success*: outcome ``success``; *review*: outcome ``needs_review`` (escalation exhausted);
- *failure*: any other outcome except ``closed_early`` (the caller stopped reading a stream
  that was going fine), i.e. ``failed``, ``no_deployment``, ``deadline_exceeded``,
  ``budget_exhausted``, ``stream_interrupted``, ``caller_error``...;
- *escalated*: the call has at least one escalation (``escalations`` not empty);
- rates are shares of the calls; latency percentiles are nearest-rank (always an observed
  value); a figure with nothing to measure is None (``null``, ``-`` in tables).

Job records: *task success rate* is the share of jobs whose outcome is ``success``. *Cost per
completed job* is the total cost of ALL jobs divided by the number of successful jobs: failed
and review jobs were paid for too, and a completed job has to carry their cost.

``--json`` prints one object with these keys (rates are fractions in 0..1, costs in USD,
latencies in seconds)::

    {"source": FILE,
     "records": {"calls": n, "jobs": n, "unknown": n},   # unknown: lines of another type, ignored
     "overall": TALLY,
     "jobs": {"jobs", "success", "failed", "needs_review", "task_success_rate",
              "failure_rate", "review_rate", "cost_usd", "cost_per_completed_job_usd",
              "latency_mean_s", "escalations", "escalations_per_job"},
     "by": {"route": [ROW, ...], "step": [...]},          # the --by groupings asked for
     "escalations": {"calls": n, "total": n,
                     "triggers": [{"trigger", "count", "cost_usd",
                                   "paths": [{"from", "to", "count"}]}]}}

    TALLY = {"calls", "success", "failed", "needs_review", "escalated", "success_rate",
             "failure_rate", "escalation_rate", "review_rate", "cost_usd",
             "cost_per_call_usd", "latency_p50_s", "latency_p95_s", "latency_p99_s",
             "failovers", "hedged", "hedged_rate"}
    ROW = {"name": ..., **TALLY}

A ROW's name is the route, step, group or deployment; calls without one are named
``(explicit group)`` (no route: the caller named the group) or ``(none)``. Rows are ordered by
calls, most first, then by name. A trigger's ``cost_usd`` is what the rejected answers cost;
a path's ``to`` is None when escalation was exhausted and the call went to human review.
Triggers are ordered by count, most first, then by name.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from router._decision import CallRecord, JobRecord, outcome_ok
from router._schema import SchemaError, call_from_dict, job_from_dict
from router._tables import Section

__all__ = [
    "GROUPINGS",
    "NONE",
    "NO_ROUTE",
    "Records",
    "ReportError",
    "Section",
    "headline",
    "load",
    "sections",
    "summarise",
]

GROUPINGS = ("route", "step", "group", "deployment")
"""What ``--by`` can group calls by (each is a field of a call record)."""
DEFAULT_GROUPINGS = ("route", "step")
NO_ROUTE = "(explicit group)"
NONE = "(none)"


class ReportError(Exception):
    """The record file cannot be read: one line naming the file (and line) and why."""


@dataclass
class Records:
    """The call and job records of a file, and how many lines of other types it had."""

    calls: list[CallRecord] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    unknown: int = 0


# --- reading --------------------------------------------------------------------------------


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    try:
        # Binary, so that a line that is not UTF-8 is reported with its number too.
        with open(path, "rb") as handle:
            yield from enumerate(handle, start=1)
    except FileNotFoundError:
        raise ReportError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a directory, not a record file") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load(path: str | os.PathLike[str]) -> Records:
    """Read a record file; raises `ReportError` (one line) if it is missing or malformed.

    Blank lines are skipped; lines whose ``type`` is neither ``call`` nor ``job`` are counted
    in `Records.unknown` and otherwise ignored (a newer router may write more kinds).
    """
    name = os.fspath(path)
    records = Records()
    for number, raw in _lines(name):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ReportError(f"{name}: line {number}: not UTF-8 text") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(
                f"{name}: line {number}: not valid JSON ({exc.msg}, column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            kind_name = type(record).__name__
            raise ReportError(
                f"{name}: line {number}: a record must be a JSON object, not {kind_name}"
            )
        kind = record.get("type")
        try:
            if kind == "call":
                records.calls.append(call_from_dict(record))
            elif kind == "job":
                records.jobs.append(job_from_dict(record))
            else:
                records.unknown += 1
        except SchemaError as exc:
            raise ReportError(f"{name}: line {number}: {exc}") from None
    return records


# --- figures --------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values: an observed value, never an interpolation."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class _Tally:
    """The figures of a set of call records."""

    calls: int = 0
    success: int = 0
    failed: int = 0
    needs_review: int = 0
    escalated: int = 0
    cost_usd: float = 0.0
    failovers: int = 0
    hedged: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, call: CallRecord) -> None:
        outcome = call.outcome
        self.calls += 1
        self.success += outcome == "success"
        self.needs_review += outcome == "needs_review"
        # Sent to review is counted as such, not as a failure.
        self.failed += not outcome_ok(outcome) and outcome != "needs_review"
        self.escalated += bool(call.escalations)
        self.cost_usd += call.cost_usd
        self.failovers += call.failovers
        self.hedged += call.hedged
        if call.latency_s is not None:
            self.latencies.append(float(call.latency_s))

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        n = self.calls
        return {
            "calls": n,
            "success": self.success,
            "failed": self.failed,
            "needs_review": self.needs_review,
            "escalated": self.escalated,
            "success_rate": _rate(self.success, n),
            "failure_rate": _rate(self.failed, n),
            "escalation_rate": _rate(self.escalated, n),
            "review_rate": _rate(self.needs_review, n),
            "cost_usd": self.cost_usd,
            "cost_per_call_usd": self.cost_usd / n if n else None,
            "latency_p50_s": _percentile(ordered, 50),
            "latency_p95_s": _percentile(ordered, 95),
            "latency_p99_s": _percentile(ordered, 99),
            "failovers": self.failovers,
            "hedged": self.hedged,
            "hedged_rate": _rate(self.hedged, n),
        }


def _name(call: CallRecord, grouping: str) -> str:
    value = getattr(call, grouping)
    if value is None:
        return NO_ROUTE if grouping == "route" else NONE
    return str(value)


def _grouped(calls: Iterable[CallRecord], grouping: str) -> list[dict[str, Any]]:
    tallies: dict[str, _Tally] = {}
    for call in calls:
        tallies.setdefault(_name(call, grouping), _Tally()).add(call)
    rows = [{"name": name, **tally.figures()} for name, tally in tallies.items()]
    rows.sort(key=lambda row: (-row["calls"], row["name"]))
    return rows


def _jobs(jobs: Sequence[JobRecord]) -> dict[str, Any]:
    n = len(jobs)
    success = sum(1 for j in jobs if j.outcome == "success")
    failed = sum(1 for j in jobs if j.outcome == "failed")
    review = sum(1 for j in jobs if j.outcome == "needs_review")
    cost = sum(j.cost_usd for j in jobs)
    latencies = [j.latency_s for j in jobs]
    escalations = sum(j.escalations for j in jobs)
    return {
        "jobs": n,
        "success": success,
        "failed": failed,
        "needs_review": review,
        "task_success_rate": _rate(success, n),
        "failure_rate": _rate(failed, n),
        "review_rate": _rate(review, n),
        "cost_usd": cost,
        # Every job's cost, not only the successful ones': the failures were paid for too.
        "cost_per_completed_job_usd": cost / success if success else None,
        "latency_mean_s": sum(latencies) / len(latencies) if latencies else None,
        "escalations": escalations,
        "escalations_per_job": escalations / n if n else None,
    }


def _escalations(calls: Iterable[CallRecord]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    costs: dict[str, float] = {}
    paths: dict[str, Counter[tuple[str | None, str | None]]] = {}
    escalated = 0
    for call in calls:
        steps = call.escalations
        escalated += bool(steps)
        for step in steps:
            trigger = step.trigger
            counts[trigger] += 1
            costs[trigger] = costs.get(trigger, 0.0) + step.cost_usd
            paths.setdefault(trigger, Counter())[(step.from_group, step.to_group)] += 1
    triggers = [
        {
            "trigger": trigger,
            "count": count,
            "cost_usd": costs[trigger],
            "paths": [
                {"from": source, "to": target, "count": n}
                for (source, target), n in sorted(
                    paths[trigger].items(), key=lambda item: (-item[1], str(item[0]))
                )
            ],
        }
        for trigger, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    return {"calls": escalated, "total": sum(counts.values()), "triggers": triggers}


def summarise(
    records: Records, source: str, by: Sequence[str] = DEFAULT_GROUPINGS
) -> dict[str, Any]:
    """The report as one JSON-ready object (keys in the module docstring)."""
    overall = _Tally()
    for call in records.calls:
        overall.add(call)
    return {
        "source": source,
        "records": {
            "calls": len(records.calls),
            "jobs": len(records.jobs),
            "unknown": records.unknown,
        },
        "overall": overall.figures(),
        "jobs": _jobs(records.jobs),
        "by": {grouping: _grouped(records.calls, grouping) for grouping in dict.fromkeys(by)},
        "escalations": _escalations(records.calls),
    }


# --- tables ---------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _usd(value: float | None) -> str:
    # Six decimals: a cheap call costs a few millionths of a dollar.
    return "-" if value is None else f"{value:.6f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _per(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


_CALL_COLUMNS = (
    "calls",
    "success",
    "failure",
    "escalation",
    "review",
    "cost $",
    "$/call",
    "p50 s",
    "p95 s",
)


_JOB_COLUMNS = (
    "jobs",
    "task success",
    "failed",
    "needs review",
    "cost $",
    "$/completed job",
    "mean s",
    "escalations/job",
)


def _call_cells(figures: Mapping[str, Any]) -> dict[str, str]:
    return {
        "calls": str(figures["calls"]),
        "success": _pct(figures["success_rate"]),
        "failure": _pct(figures["failure_rate"]),
        "escalation": _pct(figures["escalation_rate"]),
        "review": _pct(figures["review_rate"]),
        "cost $": _usd(figures["cost_usd"]),
        "$/call": _usd(figures["cost_per_call_usd"]),
        "p50 s": _secs(figures["latency_p50_s"]),
        "p95 s": _secs(figures["latency_p95_s"]),
    }


def _path(path: Mapping[str, Any]) -> str:
    target = "review" if path["to"] is None else path["to"]
    return f"{path['from']} -> {target} ({path['count']})"


def sections(report: Mapping[str, Any]) -> list[Section]:
    """The text report's tables, in order: overall, jobs, each grouping, triggers."""
    overall = report["overall"]
    result = [
        Section(
            "calls",
            (*_CALL_COLUMNS, "p99 s", "failovers", "hedged"),
            [
                {
                    **_call_cells(overall),
                    "p99 s": _secs(overall["latency_p99_s"]),
                    "failovers": str(overall["failovers"]),
                    "hedged": _pct(overall["hedged_rate"]),
                }
            ],
        )
    ]
    jobs = report["jobs"]
    job_rows = []
    if jobs["jobs"]:
        job_rows.append(
            {
                "jobs": str(jobs["jobs"]),
                "task success": _pct(jobs["task_success_rate"]),
                "failed": str(jobs["failed"]),
                "needs review": str(jobs["needs_review"]),
                "cost $": _usd(jobs["cost_usd"]),
                "$/completed job": _usd(jobs["cost_per_completed_job_usd"]),
                "mean s": _secs(jobs["latency_mean_s"]),
                "escalations/job": _per(jobs["escalations_per_job"]),
            }
        )
    result.append(
        Section(
            "jobs",
            _JOB_COLUMNS,
            job_rows,
            note="$/completed job = cost of all jobs / successful jobs "
            "(failed and review jobs are paid for too)",
        )
    )
    for grouping, rows in report["by"].items():
        result.append(
            Section(
                f"by {grouping}",
                (grouping, *_CALL_COLUMNS),
                [{grouping: row["name"], **_call_cells(row)} for row in rows],
                left=(grouping,),
            )
        )
    escalations = report["escalations"]
    result.append(
        Section(
            f"escalation triggers: {escalations['total']} escalation(s) on"
            f" {escalations['calls']} call(s)",
            ("trigger", "count", "rejected $", "from -> to"),
            [
                {
                    "trigger": t["trigger"],
                    "count": str(t["count"]),
                    "rejected $": _usd(t["cost_usd"]),
                    "from -> to": ", ".join(_path(p) for p in t["paths"]),
                }
                for t in escalations["triggers"]
            ],
            left=("trigger", "from -> to"),
        )
    )
    return result


def headline(report: Mapping[str, Any]) -> str:
    """The report's first line: the file and what it held."""
    counts = report["records"]
    line = f"{report['source']}: {counts['calls']} call(s), {counts['jobs']} job(s)"
    if counts["unknown"]:
        line += f"; {counts['unknown']} line(s) of unknown type ignored"
    return line
