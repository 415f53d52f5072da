"""One routed call's context and bookkeeping, and the one place its reason sentence is written.

`CallContext` is what the layers above the engine decided before the call (route, policy
sentence, skips, job and step). `Call` is the engine's mutable bookkeeping of one call over one
group, frozen into a `Decision` when the call ends. An escalated call is several engine calls;
`escalated` composes their decisions into the record of the one logical call, and
`needs_review` marks one whose escalation ran out.

Every piece of the decision's ``reason`` is worded here: the route the policy chose
(`route_reason`, `classifier_reason`, `fell_through`, `context_reason`), the attempts
(`Call.reason`), escalations and review (`escalated`, `needs_review`). Readers of the record
(spans, logs, reports) copy the sentence; nobody rewrites it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from router._decision import (
    AttemptRecord,
    CallOutcome,
    Candidate,
    Decision,
    Escalation,
    Outcome,
    ResponseInfo,
    Skip,
)
from router._select import REASONS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from router._breaker import BreakerPolicy, Transition
    from router._config import Deployment, RouterSettings

__all__ = [
    "NO_CONTEXT",
    "Call",
    "CallContext",
    "classifier_reason",
    "context_reason",
    "escalated",
    "fell_through",
    "join_reasons",
    "needs_review",
    "route_reason",
]


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the layers above the engine decided before this call (route, job)."""

    route: str | None = None
    reason: str | None = None
    """The policy's sentence, put before the engine's in the decision's reason."""
    skipped: tuple[Skip, ...] = ()
    job: str | None = None
    step: str | None = None


NO_CONTEXT = CallContext()


class Call:
    """Mutable bookkeeping of one call; frozen into a `Decision` when the call ends."""

    __slots__ = (
        "attempts",
        "candidates",
        "context",
        "deadline",
        "deadline_at",
        "events",
        "group",
        "notes",
        "peers",
        "policy",
        "reserved_used",
        "retry_after",
        "settings",
        "skipped",
        "slo_probe",
        "started",
        "strategy",
        "stream",
        "wall",
    )

    def __init__(
        self,
        group: str,
        settings: RouterSettings,
        deadline: float,
        started: float,
        stream: bool,
        policy: BreakerPolicy,
        context: CallContext = NO_CONTEXT,
    ) -> None:
        self.context = context
        self.group = group
        self.settings = settings
        self.strategy = settings.strategy
        self.policy = policy
        self.deadline = deadline
        self.started = started
        self.deadline_at = started + deadline
        self.wall = time.time()
        self.stream = stream
        self.candidates: tuple[Candidate, ...] = ()
        self.skipped: list[Skip] = list(context.skipped)
        self.attempts: list[AttemptRecord] = []
        self.events: list[Transition] = []
        self.notes: list[str] = []
        self.slo_probe: Deployment | None = None
        """A deployment missing the group's latency objective, first for one call as its probe
        (router._slo): raced like a degraded one's probe (router._hedge)."""
        # 429s this call got without pausing the deployment: name -> Retry-After (clock time),
        # so `wait_for_recovery` can wait for them as for a pause.
        self.retry_after: dict[str, float] | None = None
        self.reserved_used = False
        """Whether the call spent its one reserved attempt (router._choose rule 4)."""
        # The group's deployments, eligible now or not (set by the attempt loop): what a cold
        # deployment borrows its thresholds from (router._hedge.hung_after). A peer whose
        # breaker is open is out of the running, not out of evidence of what is normal.
        self.peers: Sequence[Deployment] = ()

    def decision(
        self,
        now: float,
        outcome: CallOutcome,
        deployment: str | None,
        cost: float,
        response: ResponseInfo | None = None,
    ) -> Decision:
        return Decision(
            group=self.group,
            strategy=self.strategy,
            candidates=self.candidates,
            skipped=tuple(self.skipped),
            attempts=tuple(self.attempts),
            deployment=deployment,
            outcome=outcome,
            reason=join_reasons(self.context.reason, (), self.reason(outcome, deployment)),
            cost_usd=cost,
            elapsed_s=now - self.started,
            deadline_s=self.deadline,
            stream=self.stream,
            events=tuple(self.events),
            notes=tuple(self.notes),
            started_at=self.wall,
            response=response,
            route=self.context.route,
            job=self.context.job,
            step=self.context.step,
        )

    def reason(self, outcome: CallOutcome, deployment: str | None) -> str:
        """The attempts' part of the sentence: who served (or how it failed), skips, events."""
        attempts = self.attempts
        if (
            len(attempts) == 1
            and deployment is not None
            and not (self.skipped or self.events or self.notes)
        ):
            only = attempts[0]
            if only.outcome is Outcome.SUCCESS and not only.hedge and only.deployment == deployment:
                # One attempt that served (most calls): what the general case below says.
                return f"served by {deployment} ({REASONS.get(self.strategy, self.strategy)})"
        failed = [a for a in self.attempts if a.outcome not in (Outcome.SUCCESS, Outcome.CANCELLED)]
        trail = ", ".join(f"{a.deployment} {a.error}" for a in failed)
        if deployment is not None:
            won = next(
                (
                    a
                    for a in self.attempts
                    if a.deployment == deployment and a.outcome == Outcome.SUCCESS
                ),
                None,
            )
            if won is not None and won.hedge:
                lost = (
                    ", ".join(a.deployment for a in self.attempts if a.outcome == Outcome.CANCELLED)
                    or "the first attempt"
                )
                text = f"served by {deployment}: its hedge beat {lost}"
            elif not failed:
                text = f"served by {deployment} ({REASONS.get(self.strategy, self.strategy)})"
            else:
                text = f"served by {deployment} after {len(failed)} failed attempt(s): {trail}"
        else:
            text = (
                f"{outcome.replace('_', ' ')} after {len(self.attempts)} attempt(s): "
                f"{trail or 'none failed'}"
            )
        if self.skipped:
            text += "; " + "; ".join(f"{s.deployment} skipped: {s.why}" for s in self.skipped)
        for event in self.events:
            text += f"; breaker {event.deployment} {event.after.value}: {event.reason}"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def join_reasons(route: str | None, escalations: tuple[Escalation, ...], attempts: str) -> str:
    """The whole sentence: the policy's part, each escalation, then the serving level's."""
    if route is None and not escalations:
        return attempts
    parts = [route] if route else []
    for step in escalations:
        parts.append(
            f"{step.from_group} answer failed {step.trigger} ({step.detail}); "
            f"escalated to {step.to_group}"
        )
    return "; ".join([*parts, attempts])


def escalated(
    before: Decision,
    level: Decision,
    escalations: tuple[Escalation, ...],
    offset: float,
    deadline: float,
    route_reason: str | None,
) -> Decision:
    """The logical call's record after one more escalation level.

    `before` is the record so far, `level` the engine's record of the level just run (begun
    `offset` seconds after the logical call, whose deadline is `deadline`). The level's own
    parts (candidates, skips, events, notes, outcome, response) describe the call now; the
    attempts of every level are kept, numbered and timed from the logical call's start. A
    served level adds its cost to what the earlier answers cost; a failed one records 0.0.
    """
    shift = len(before.attempts)
    attempts = before.attempts + tuple(
        replace(a, number=a.number + shift, started_s=a.started_s + offset) for a in level.attempts
    )
    served = level.deployment is not None
    return replace(
        level,
        attempts=attempts,
        cost_usd=level.cost_usd + before.cost_usd if served else level.cost_usd,
        elapsed_s=offset + level.elapsed_s,
        deadline_s=deadline,
        started_at=before.started_at,
        escalations=escalations,
        reason=join_reasons(route_reason, escalations, level.reason),
    )


def needs_review(decision: Decision, step: Escalation) -> Decision:
    """The record of a call whose escalation ran out with an answer still failing `step`."""
    return replace(
        decision,
        outcome=CallOutcome.NEEDS_REVIEW,
        escalations=(*decision.escalations, step),
        reason=f"{decision.reason}; needs human review: {step.trigger} ({step.detail})",
    )


# -- the policy's part of the sentence -------------------------------------------------------


def route_reason(route: str, why: str) -> str:
    """A rule route matched (`why`: what matched; empty for the default route)."""
    return f"route '{route}'" + (f" ({why})" if why else " (default)")


def classifier_reason(route: str, classifier: str | None, label: str, detail: str) -> str:
    """A classifier route chose the group for `label`."""
    return f"route '{route}': classifier {classifier} said '{label}' {detail}".rstrip()


def fell_through(route: str, classifier: str | None, detail: str) -> str:
    """A classifier route gave no usable label; the next route was tried."""
    return f"route '{route}': classifier {classifier} {detail}; fell through"


def context_reason(reason: str | None, need: int, group: str, largest: int, target: str) -> str:
    """The prompt fits no window of `group`; the call went to the larger `target`."""
    note = (
        f"~{need:,} tokens (prompt + max_tokens) exceed every window in "
        f"'{group}' (largest {largest:,}); sent to '{target}'"
    )
    return f"{reason}; {note}" if reason else note
