"""Record files as datasets: production traffic (with outcomes) for ``router eval`` and ``fit``.

A record file (``[router] record_file``) holds call lines and, from `router.record_outcome`,
outcome lines. With content capture on, call lines carry the prompt and the served answer.
This module turns such a file into a `Dataset`:

- each distinct prompt is an item (id: the first call's response id);
- each *group* that answered it is a model: its answer text from the call's ``output`` (and,
  for a group whose answer failed a check and escalated, from the escalation's ``answer``,
  without a label), its label from the outcomes (``correct`` / ``accepted`` true,
  ``wrong`` / ``rejected`` false) recorded on that call, or on the call's job when the call
  has none of its own;
- the metadata are the call's ``step`` and ``route`` (what rules and classifiers can read);
- an outcome ``label`` becomes the item's ``reference`` (for scorers).

Calls without a prompt (content capture off), without an outcome, or that failed are left
out; the counts are in the dataset's notes. Two groups' labels on one item, which fitting a
weak/strong policy needs, come from traffic sent to both groups (a shadow sample).
"""

from __future__ import annotations

import json
import os
from typing import Any

from router._decision import CallOutcome, CallRecord, OutcomeRecord
from router._eval._data import Dataset, DatasetError, Item
from router._schema import SchemaError, call_from_dict, outcome_from_dict

__all__ = ["is_record_file", "load_records"]

_SERVED = frozenset({CallOutcome.SUCCESS, CallOutcome.NEEDS_REVIEW})
"""Outcomes of a call that returned an answer (read to its end, for a stream)."""
_POSITIVE = {"correct": True, "accepted": True, "wrong": False, "rejected": False}


def is_record_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file's first non-blank line is a router record (has a ``type``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and first.get("type") in (
                        "call",
                        "job",
                        "outcome",
                    )
    except (OSError, ValueError):
        return False
    return False


def load_records(path: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """The items of a record file (see the module docstring); every line is read through
    `router._schema`'s readers, so a wrong field is a `DatasetError` naming its line."""
    file = os.fspath(path)
    calls: list[CallRecord] = []
    by_call: dict[str, OutcomeRecord] = {}
    by_job: dict[str, OutcomeRecord] = {}
    try:
        with open(file, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError as exc:
        raise DatasetError(f"{file}: cannot read ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{file}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            continue
        kind = record.get("type")
        try:
            if kind == "call":
                calls.append(call_from_dict(record))
            elif kind == "outcome":
                verdict = outcome_from_dict(record)
                if verdict.outcome not in _POSITIVE:
                    raise DatasetError(f"{file}:{number}: unknown outcome {verdict.outcome!r}")
                if verdict.call:
                    by_call[verdict.call] = verdict  # the last word wins
                elif verdict.job:
                    by_job[verdict.job] = verdict
        except SchemaError as exc:
            raise DatasetError(f"{file}:{number}: {exc}") from None
    items: dict[str, dict[str, Any]] = {}
    skipped = {"no prompt (content capture off)": 0, "no outcome": 0, "not served": 0}
    for call in calls:
        prompt = call.prompt
        if prompt is None or not prompt.strip():
            skipped["no prompt (content capture off)"] += 1
            continue
        if call.outcome not in _SERVED or not call.group:
            skipped["not served"] += 1
            continue
        outcome = by_call.get(str(call.response_id)) or by_job.get(str(call.job))
        if outcome is None:
            skipped["no outcome"] += 1
            continue
        metadata = {"step": call.step, "route": call.route}
        entry = items.setdefault(
            " ".join(prompt.split()),
            {
                "id": str(call.response_id or f"call-{len(items) + 1}"),
                "prompt": prompt,
                "metadata": {k: v for k, v in metadata.items() if v is not None},
                "answers": {},
                "correct": {},
                "reference": None,
            },
        )
        entry["correct"][call.group] = _POSITIVE[outcome.outcome]
        if call.output is not None:
            entry["answers"][call.group] = call.output
        for e in call.escalations:  # what a rejected answer said (no label)
            if e.answer is not None and e.from_group:
                entry["answers"].setdefault(e.from_group, e.answer)
        if outcome.label is not None:
            entry["reference"] = outcome.label
    if not items:
        reasons = ", ".join(f"{k}: {v}" for k, v in skipped.items() if v)
        raise DatasetError(
            f"{file}: no call with a prompt and an outcome ({len(calls)} calls; {reasons or '-'})"
            "; turn on [telemetry] capture_content and record outcomes with "
            "router.record_outcome"
        )
    out = [
        Item(
            id=e["id"],
            prompt=e["prompt"],
            metadata=e["metadata"],
            reference=e["reference"],
            answers=e["answers"],
            correct=e["correct"],
        )
        for e in items.values()
    ]
    models = tuple(dict.fromkeys(m for it in out for m in (*it.answers, *it.correct)))
    left = [f"{v} call(s) left out: {k}" for k, v in skipped.items() if v]
    notes = (f"from the record file {file}: {len(out)} prompt(s) with outcomes", *left)
    stem = os.path.splitext(os.path.basename(file))[0]
    return Dataset(name or stem, tuple(out), models, file, notes)
