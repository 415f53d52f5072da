"""Outcomes: what happened to an answer, recorded beside its call so the next fit can learn.

``router.record_outcome(response, "correct")`` (or ``"wrong"``; ``"accepted"`` /
``"rejected"`` for a human's verdict on a review case) appends one line to the record file
(``[router] record_file`` or ``ROUTER_RECORD_FILE``)::

    {"type": "outcome", "ts": ..., "call": <response id>, "job": <job id>,
     "outcome": "correct", "label": "billing", "note": "..."}

The target is a response the router returned (its decision names the call), a
`router.NeedsReview` error, a `Job` or `JobRecord` (the outcome of the whole job), or a
response id string. ``label`` is optional: the right answer or class when it is known (a
human's correction), kept for the next fit.

``router eval`` and ``router eval fit`` read a record file as a dataset (with content
capture on: the prompts and answers are in the file): each prompt is an item, each group that
answered it a model, and the outcomes its labels. An item needs labels for both the weak
and the strong group to fit on, so record outcomes for a sample of traffic sent to both
(e.g. 5% of calls also made with ``model="strong"``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router._router import Router

__all__ = ["OUTCOMES", "record_outcome"]

OUTCOMES = ("correct", "wrong", "accepted", "rejected")
"""correct / wrong: the application's check; accepted / rejected: a human's review."""
POSITIVE = frozenset({"correct", "accepted"})


def _target(target: Any) -> tuple[str | None, str | None]:
    """(response id, job id) of what the outcome is about."""
    if isinstance(target, str):
        return target, None
    from router._jobs import Job, JobRecord

    if isinstance(target, Job):
        return None, target.id
    if isinstance(target, JobRecord):
        return None, target.id
    from router._decision import get_decision

    decision = get_decision(target)
    if decision is None:
        raise ValueError(
            "record_outcome: pass a response the router returned (or NeedsReview), a job, "
            f"or a response id; got {type(target).__name__} without a decision record"
        )
    call = decision.response.id if decision.response is not None else None
    if call is None:
        call = getattr(target, "id", None) or getattr(getattr(target, "response", None), "id", None)
    if call is None:
        raise ValueError("record_outcome: the response has no id to refer to")
    return str(call), decision.job


def record_outcome(
    target: Any,
    outcome: str,
    *,
    label: str | None = None,
    note: str | None = None,
    router: Router | None = None,
    path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Append an outcome line for a call or job to the record file; returns the line.

    The file is `path`, else `router`'s record file, else the default router's, else
    ``ROUTER_RECORD_FILE``; with none of them, `ValueError` (nothing would keep it).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"record_outcome: outcome must be one of {', '.join(OUTCOMES)}")
    call, job = _target(target)
    file = path
    if file is None and router is not None:
        file = router.record_file
    if file is None:
        from router import _default

        default = _default._default
        file = default.record_file if default is not None else None
    if file is None:
        file = os.environ.get("ROUTER_RECORD_FILE") or None
    if file is None:
        raise ValueError(
            "record_outcome: no record file ([router] record_file, ROUTER_RECORD_FILE or path=)"
        )
    from router._decision import OutcomeRecord
    from router._records import Recorder
    from router._schema import outcome_to_dict

    record = OutcomeRecord(outcome, time.time(), call, job, label, note)
    Recorder(file).outcome(record)
    return {"type": "outcome", **outcome_to_dict(record)}
