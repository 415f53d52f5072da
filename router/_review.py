"""``router review FILE``: the routed failures, escalations and review cases, for a person.

The seed's advice is to review routed failures by hand before adding more branches. This
reads a record file (``[router] record_file``; see router._records) and lists the calls a
person should look at, grouped by route and reason, newest first:

- **review**: the call ended ``needs_review`` (escalation exhausted: the last answer failed
  its checks too);
- **escalated**: an answer failed a check and a stronger group answered (the trigger and its
  detail say why);
- **failed**: the call did not return an answer (``failed``, ``deadline_exceeded``,
  ``no_deployment``...; ``closed_early`` and caller errors are not the route's failures);
- **wrong**: it returned an answer that an outcome (`router.record_outcome`) marked
  ``wrong`` or ``rejected``.

Each case shows when, the route and groups, the path taken (group -> escalation group ->
review, the serving deployment, failovers), the decision's reason, and the prompt, the answer
and what each rejected answer said (an escalated cascade: the weak model's answer) *only when
content capture was on* when the call was recorded (``[telemetry]
capture_content = true``); otherwise the record has no content to show. ``--html OUT``
writes one self-contained page (inline CSS, no scripts, no external resources; all recorded
text is HTML-escaped). Standard library only: litellm is never imported.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router._decision import CallOutcome, CallRecord, Escalation, OutcomeRecord, outcome_ok
from router._schema import (
    SchemaError,
    call_from_dict,
    escalation_to_dict,
    outcome_from_dict,
)

__all__ = ["Case", "ReviewError", "cases", "load", "render_html", "render_text", "review"]

KINDS = ("review", "failed", "wrong", "escalated")
"""Case kinds, in the order a reader should look at them."""
_NEGATIVE = frozenset({"wrong", "rejected"})


class ReviewError(Exception):
    """The record file cannot be read: one line naming the file (and line) and why."""


@dataclass(frozen=True)
class Case:
    """One call worth a look."""

    kind: str
    ts: float
    route: str
    reason_key: str
    """What groups it: the trigger, the failure outcome or the verdict."""
    call: CallRecord
    outcome: OutcomeRecord | None = None
    job_outcome: OutcomeRecord | None = None

    @property
    def path(self) -> str:
        """Group -> escalation group(s) -> review, then the serving deployment."""
        call = self.call
        steps = [call.group or "?"]
        escalations = call.escalations
        if escalations:
            steps = [escalations[0].from_group or steps[0]]
            for e in escalations:
                steps.append(e.to_group or "human review")
        text = " -> ".join(steps)
        served = call.deployment
        text += f"; served by {served}" if served else "; no deployment served"
        # An escalation starts a new attempt; it is not a failover.
        failovers = call.failovers - sum(1 for e in escalations if e.to_group)
        if failovers > 0:
            text += f" after {failovers} failover(s)"
        return text


@dataclass
class Records:
    calls: list[CallRecord] = field(default_factory=list)
    outcomes: dict[str, OutcomeRecord] = field(default_factory=dict)
    job_outcomes: dict[str, OutcomeRecord] = field(default_factory=dict)
    content: int = 0
    """Calls that carry recorded content (prompt or output)."""


def load(path: str | os.PathLike[str]) -> Records:
    """Read the call and outcome lines of a record file (other lines are skipped), each
    through `router._schema`'s reader: a wrong field is a `ReviewError` naming its line."""
    name = os.fspath(path)
    records = Records()
    try:
        with open(name, "rb") as handle:
            raw_lines = handle.readlines()
    except FileNotFoundError:
        raise ReviewError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ReviewError(f"{name}: is a directory, not a record file") from None
    except OSError as exc:
        raise ReviewError(f"{name}: cannot read: {exc.strerror or exc}") from None
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ReviewError(f"{name}: line {number}: not UTF-8 text") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReviewError(f"{name}: line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ReviewError(f"{name}: line {number}: a record must be a JSON object")
        kind = record.get("type")
        try:
            if kind == "call":
                call = call_from_dict(record)
                records.calls.append(call)
                records.content += bool(call.prompt or call.output)
            elif kind == "outcome":
                verdict = outcome_from_dict(record)
                if verdict.call:
                    records.outcomes[verdict.call] = verdict
                elif verdict.job:
                    records.job_outcomes[verdict.job] = verdict
        except SchemaError as exc:
            raise ReviewError(f"{name}: line {number}: {exc}") from None
    return records


def _reason(escalation: Escalation) -> str:
    """An escalation's trigger, with the kind of problem when the detail names one
    (``learned:x (arithmetic)``, ``learned:x (score)``): same trigger, different failures."""
    trigger = escalation.trigger or "escalated"
    detail = escalation.detail
    if detail.startswith("expected gain"):
        return f"{trigger} (score)"
    head, sep, _ = detail.partition(":")
    if sep and head and len(head) <= 24 and " " not in head.strip():
        return f"{trigger} ({head.strip()})"
    return trigger


def _route(call: CallRecord) -> str:
    return call.route or "(explicit group)"


def cases(records: Records) -> list[Case]:
    """Every case of the file, newest first (a call is one case: the most serious kind)."""
    out: list[Case] = []
    for call in records.calls:
        ts = float(call.ts)
        outcome = records.outcomes.get(str(call.response_id))
        job_outcome = records.job_outcomes.get(call.job) if call.job else None
        escalations = call.escalations
        verdict = outcome or job_outcome
        if call.outcome == "needs_review":
            key = _reason(escalations[-1]) if escalations else "needs review"
            out.append(Case("review", ts, _route(call), key, call, outcome, job_outcome))
        elif not outcome_ok(call.outcome) and call.outcome != CallOutcome.CALLER_ERROR:
            key = str(call.outcome) + (f" ({call.error})" if call.error else "")
            out.append(Case("failed", ts, _route(call), key, call, outcome, job_outcome))
        elif verdict is not None and verdict.outcome in _NEGATIVE:
            key = f"marked {verdict.outcome}"
            out.append(Case("wrong", ts, _route(call), key, call, outcome, job_outcome))
        elif any(e.to_group for e in escalations):
            key = _reason(escalations[0])
            out.append(Case("escalated", ts, _route(call), key, call, outcome, job_outcome))
    out.sort(key=lambda c: -c.ts)
    return out


def grouped(found: Sequence[Case]) -> list[tuple[tuple[str, str, str], list[Case]]]:
    """(kind, route, reason) groups, by kind order then size, cases newest first."""
    groups: dict[tuple[str, str, str], list[Case]] = {}
    for case in found:
        groups.setdefault((case.kind, case.route, case.reason_key), []).append(case)
    return sorted(groups.items(), key=lambda g: (KINDS.index(g[0][0]), -len(g[1]), g[0]))


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "-"


def _details(case: Case) -> list[tuple[str, str]]:
    call = case.call
    rows = [
        ("when", _when(case.ts)),
        ("path", case.path),
        ("why", call.reason or "-"),
    ]
    for e in call.escalations:
        target = e.to_group or "human review"
        rows.append(("check", f"{e.trigger}: {e.detail} (-> {target})"))
        if e.answer is not None and e.to_group:  # (an exhausted one's is the answer)
            rows.append((f"{e.from_group or 'rejected'} said", e.answer))
    if call.step or call.job:
        rows.append(("job / step", f"{call.job or '-'} / {call.step or '-'}"))
    verdict = case.outcome or case.job_outcome
    if verdict is not None:
        about = "call" if case.outcome is not None else "job"
        text = f"{verdict.outcome} ({about})"
        if verdict.label is not None:
            text += f", label {verdict.label!r}"
        if verdict.note:
            text += f": {verdict.note}"
        rows.append(("outcome", text))
    rows.append(("cost", f"${call.cost_usd:.6f}"))
    if call.prompt is not None:
        rows.append(("prompt", call.prompt))
    if call.output is not None:
        rows.append(("answer", call.output))
    return rows


def summary(records: Records, found: Sequence[Case], source: str) -> str:
    counts = {k: sum(1 for c in found if c.kind == k) for k in KINDS}
    parts = ", ".join(f"{n} {k}" for k, n in counts.items())
    line = f"{source}: {len(records.calls)} call(s); {len(found)} to review ({parts})"
    if records.calls and not records.content:
        line += "; no content recorded (capture_content off): prompts are not shown"
    return line


def render_text(records: Records, found: Sequence[Case], source: str, limit: int) -> str:
    """The terminal listing (each group shows its newest `limit` cases)."""
    lines = [summary(records, found, source)]
    for (kind, route, reason), group in grouped(found):
        lines.append("")
        lines.append(f"== {kind}: route {route}: {reason} ({len(group)})")
        for case in group[:limit]:
            rows = _details(case)
            lines.append(f"  - {rows[0][1]}")
            for label, value in rows[1:]:
                text = value if len(value) <= 400 else value[:400] + "..."
                text = text.replace("\n", "\n      ")
                lines.append(f"    {label}: {text}")
        if len(group) > limit:
            lines.append(f"  ... {len(group) - limit} older case(s) (--limit to show more)")
    return "\n".join(lines)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:70em;
color:#1d2330;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #dde}
.kind{display:inline-block;border-radius:4px;padding:0 .5em;margin-right:.4em;color:#fff}
.review{background:#b3261e}.failed{background:#6b3fa0}.wrong{background:#c25e00}
.escalated{background:#2f6db3}
details{border:1px solid #dde;border-radius:6px;margin:.4em 0;padding:.3em .8em}
summary{cursor:pointer}table{border-collapse:collapse;margin:.4em 0}
td{vertical-align:top;padding:.15em .6em}td.k{color:#667;white-space:nowrap}
pre{white-space:pre-wrap;margin:0;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
.muted{color:#667}
"""


def render_html(records: Records, found: Sequence[Case], source: str) -> str:
    """One self-contained page: inline CSS, no script, no external resource, text escaped."""
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>router review: {esc(os.path.basename(source))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>router review: {esc(source)}</h1>",
        f'<p class="muted">{esc(summary(records, found, source))}</p>',
    ]
    for (kind, route, reason), group in grouped(found):
        parts.append(
            f'<h2><span class="kind {esc(kind)}">{esc(kind)}</span>route {esc(route)}: '
            f"{esc(reason)} ({len(group)})</h2>"
        )
        for case in group:
            rows = _details(case)
            head = f"{rows[0][1]} &middot; {esc(case.path)}"
            if case.call.prompt:  # which question it was, at a glance (content capture on)
                excerpt = " ".join(case.call.prompt.split())
                excerpt = excerpt if len(excerpt) <= 90 else excerpt[:90] + "..."
                head += f' &middot; <span class="muted">{esc(excerpt)}</span>'
            parts.append(f"<details><summary>{head}</summary><table>")
            for label, value in rows[1:]:
                parts.append(
                    f'<tr><td class="k">{esc(label)}</td><td><pre>{esc(value)}</pre></td></tr>'
                )
            parts.append("</table></details>")
    if not found:
        parts.append("<p>Nothing to review: no failures, escalations or review cases.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _case_json(c: Case) -> dict[str, Any]:
    verdict = c.outcome or c.job_outcome
    return {
        "ts": c.ts,
        "path": c.path,
        "reason": c.call.reason or None,
        "escalations": [escalation_to_dict(e, captured=True) for e in c.call.escalations],
        "outcome": verdict.outcome if verdict else None,
        "label": verdict.label if verdict else None,
        "prompt": c.call.prompt,
        "answer": c.call.output,
        "response_id": c.call.response_id,
    }


def as_json(records: Records, found: Iterable[Case], source: str) -> dict[str, Any]:
    found = list(found)
    return {
        "source": source,
        "calls": len(records.calls),
        "groups": [
            {
                "kind": kind,
                "route": route,
                "reason": reason,
                "cases": [_case_json(c) for c in group],
            }
            for (kind, route, reason), group in grouped(found)
        ],
    }


def review(
    path: str, *, html_out: str | None = None, limit: int = 5, as_json_output: bool = False
) -> tuple[str, int]:
    """(what to print, exit code) for ``router review``."""
    try:
        records = load(path)
    except ReviewError as exc:
        return f"router review: {exc}", 1
    found = cases(records)
    if html_out is not None:
        try:
            with open(html_out, "w", encoding="utf-8") as handle:
                handle.write(render_html(records, found, path))
        except OSError as exc:
            return f"router review: cannot write {html_out}: {exc.strerror or exc}", 1
    if as_json_output:
        return json.dumps(as_json(records, found, path), indent=2), 0
    text = render_text(records, found, path, limit)
    if html_out is not None:
        text += f"\n\nwrote {html_out} (one self-contained page)"
    return text, 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``router review`` arguments."""
    parser.add_argument("file", metavar="FILE", help="a JSONL record file ([router] record_file)")
    parser.add_argument("--html", default=None, metavar="OUT", help="also write one HTML page")
    parser.add_argument(
        "--limit", type=int, default=5, help="cases shown per group in the terminal (5)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def run(args: argparse.Namespace) -> int:
    """``router review FILE [--html OUT] [--limit N] [--json]``; exit 1 on an unreadable file."""
    import sys

    text, code = review(
        args.file, html_out=args.html, limit=max(1, args.limit), as_json_output=args.json
    )
    print(text, file=sys.stderr if code else sys.stdout)
    return code
