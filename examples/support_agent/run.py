"""Support agent: cheap model for routine tickets, strong model for the hard ones, a human for
anything that gives money back or bends a rule.

Run it: ``./dev python examples/support_agent/run.py``. It starts its own simulated providers
on ephemeral ports, handles ten tickets and prints each ticket's outcome, cost and escalations,
then the totals (a few seconds, most of it importing litellm).

The pattern. Every ticket is one job (``router.job``) whose reply is one call with
``model="auto"``; the rules in ``providers.toml`` pick the model:

- a long multi-interaction history (``min_prompt_tokens``) goes to the strong model;
- a keyword classifier labels the ticket: refunds and policy questions go to the strong model,
  shipping and account questions to the small one; no keyword, the default route, small;
- the small model's answer is checked: a refusal, a low mean token logprob (the router asks
  for logprobs itself) or an answer cut at ``max_tokens`` is escalated to the strong model;
- the strong model's answer is checked by ``validator:approval`` (a Python function given to
  ``Router(validators=...)``): a draft that refunds more than $50 or grants a policy exception
  fails it, there is nowhere further to escalate, so (``on_exhausted = "review"``) the answer
  comes back marked ``needs_review`` and the job ends ``needs_review``. run.py packages the
  ticket, the draft and the reason into an approval queue (a JSONL file) for a human.

The part of ``providers.toml`` that does it::

    [[routes]]
    name = "long-history"
    when = { min_prompt_tokens = 1200 }
    group = "strong"

    [[routes]]
    name = "ticket-kind"
    classifier = "ticket_kind"
    classes = { refund = "strong", policy = "strong", shipping = "small", account = "small" }

    [[routes]]
    name = "default"
    group = "small"

    [classifiers.ticket_kind]
    kind = "keywords"
    [classifiers.ticket_kind.labels]
    refund = ["refund", "money back", "chargeback", "reimburse"]
    policy = ["exception", "warranty", "policy", "bend the rules"]
    shipping = ["package", "parcel", "delivery", "tracking", "shipping", ...]
    account = ["password", "log in", "login", "account", "email address", "sign in"]

    [groups.small]
    escalate_to = "strong"
    escalate_on = ["refusal", "low_confidence", "length"]
    min_logprob = -1.0

    [groups.strong]
    escalate_on = ["validator:approval"]
    on_exhausted = "review"

The simulated providers are scripted (``router._sim.Script``) so every path happens: the small
model is unsure about an email change (low logprobs), refuses to delete an account, and runs
out of tokens on a customs question; the strong model drafts a $240 refund and a warranty
exception, which wait for a human.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `examples` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples._harness import JobResult, Report, load_config, parse_args, records_path
from router import Decision, Router, get_decision
from router._sim import Behavior, Fleet, Script

HERE = Path(__file__).resolve().parent
AUTO_APPROVE_LIMIT = 50.00
"""Refunds up to this amount go out without a human."""

SYSTEM = (
    "You are the support assistant of Northwind Outfitters. Answer the customer's latest "
    "message in under 120 words. When you give money back or bend a rule, end with one line: "
    "'ACTION: refund $<amount>' or 'ACTION: exception <what>'."
)


@dataclass(frozen=True)
class Ticket:
    """A support ticket and what the example expects to happen to it."""

    id: str
    customer: str
    kind: str
    """The label the keyword classifier should give (``-`` when no keyword matches)."""
    text: str
    group: str
    """Where the final answer should come from: small or strong."""
    triggers: tuple[str, ...] = ()
    """The escalation triggers expected, in order."""
    outcome: str = "success"
    history: tuple[dict[str, str], ...] = field(default=(), repr=False)
    """Earlier messages of the conversation, oldest first."""

    def messages(self) -> list[dict[str, Any]]:
        """The conversation the model sees: instructions, history, the latest message."""
        return [
            {"role": "system", "content": SYSTEM},
            *self.history,
            {"role": "user", "content": f"[{self.id}] {self.customer}: {self.text}"},
        ]


def _long_history() -> tuple[dict[str, str], ...]:
    """Twenty days of chasing a lost parcel: far more reading than a routine ticket."""
    turns: list[dict[str, str]] = []
    for day in range(1, 21):
        turns.append(
            {
                "role": "user",
                "content": f"Day {day}: the courier app still shows my parcel at the Leeds "
                "depot. I was home all day and nobody came to the door. Please chase them.",
            }
        )
        turns.append(
            {
                "role": "assistant",
                "content": f"Thanks for your patience. I have opened case C-{day:03d} with "
                "the courier and asked for a new delivery attempt within two working days.",
            }
        )
    return tuple(turns)


TICKETS: tuple[Ticket, ...] = (
    Ticket("T-101", "Ravi", "shipping", "Order ORD-5512 says 'label created' for three days. "
           "Has my package shipped?", "small"),
    Ticket("T-102", "Mia", "account", "I forgot my password and the reset mail never comes. "
           "How do I log in?", "small"),
    Ticket("T-103", "Dana", "account", "Please change the email address on my account to "
           "dana@new.example.", "strong", ("low_confidence",)),
    Ticket("T-104", "Olu", "account", "Close my account and delete all my data, past orders "
           "included.", "strong", ("refusal",)),
    Ticket("T-105", "Chloé", "shipping", "Do you ship to Canada? How long does customs take "
           "and who pays the duties?", "strong", ("length",)),
    Ticket("T-106", "Sam", "refund", "I'd like a refund: the $18 mug from ORD-7731 arrived "
           "chipped.", "strong"),
    Ticket("T-107", "Noor", "refund", "Refund request: I returned the $240 storm jacket 45 "
           "days after delivery; your site says 30 days.", "strong", ("validator:approval",),
           "needs_review"),
    Ticket("T-108", "Lars", "policy", "My blender died two weeks after the warranty ended. "
           "Can you make an exception?", "strong", ("validator:approval",), "needs_review"),
    Ticket("T-109", "Jo", "long-history", "It has been three weeks. Where is my parcel?",
           "strong", history=_long_history()),
    Ticket("T-110", "Ana", "-", "What are your store opening hours on Sundays?", "small"),
)  # fmt: skip

# What the simulated providers say. The small model answers routine questions confidently
# (mean logprob -0.2), but not everything; the strong model answers well and drafts actions.
MINI = Behavior(
    latency_ms=8.0,
    scripts=[
        Script(
            r"(?i)change the email address",
            "I think you can maybe change it under Settings, or perhaps by contacting us?",
            logprobs=-2.4,
        ),
        Script(r"(?i)delete all my data", "", refusal="I'm sorry, I can't help with that."),
        Script(
            r"(?i)customs",
            "Yes, we ship to Canada. Customs clearance usually takes between two and",
            finish_reason="length",
            logprobs=-0.3,
        ),
        Script(
            r"(?i)opening hours",
            "Our stores open 10:00-16:00 on Sundays; online support answers around the clock.",
            logprobs=-0.2,
        ),
        Script(
            r"(?s).",
            "Thanks for reaching out! Here is what to do next: {provider} has checked your "
            "order and account, and the steps are in the email we just sent you.",
            logprobs=-0.2,
        ),
    ],
)
PRO = Behavior(
    latency_ms=20.0,
    scripts=[
        Script(
            r"(?i)chipped",
            "Sorry about the mug! No need to send it back; the refund is on its way.\n"
            "ACTION: refund $18.00",
        ),
        Script(
            r"(?i)storm jacket",
            "Thanks for returning the jacket. It arrived after the 30-day window, but as a "
            "long-standing customer we would like to refund it in full.\nACTION: refund $240.00",
        ),
        Script(
            r"(?i)warranty ended",
            "Two weeks past warranty is close; we can offer a free repair as a goodwill "
            "gesture.\nACTION: exception free repair 2 weeks outside warranty",
        ),
        Script(
            r"(?i)email address",
            "Done: the email on your account is now dana@new.example. We sent a confirmation "
            "to both addresses.",
        ),
        Script(
            r"(?i)delete all my data",
            "Your account is scheduled for closure. We will erase your personal data within "
            "30 days, except invoices we must keep by law; you will get a confirmation.",
        ),
        Script(
            r"(?i)customs",
            "Yes, we ship to Canada. Customs usually takes 2-5 days; duties are prepaid at "
            "checkout, so nothing is due on delivery.",
        ),
        Script(
            r"(?i)where is my parcel",
            "I'm sorry this has dragged on for three weeks. The courier confirmed the parcel "
            "is lost, so I have sent a replacement by express; tracking follows today.",
        ),
    ],
)

_ACTION = re.compile(r"^ACTION:\s*(refund \$(?P<amount>[0-9.]+)|exception (?P<what>.+))$", re.M)


def approval(response: Any, request: Mapping[str, Any]) -> str | None:
    """``validator:approval``: None if the draft can go out, else why a human must approve it."""
    content = response.choices[0].message.content or ""
    for match in _ACTION.finditer(content):
        if match["what"]:
            return f"policy exception ({match['what'].strip()}) needs a human's approval"
        amount = float(match["amount"])
        if amount > AUTO_APPROVE_LIMIT:
            return (
                f"refund of ${amount:.2f} exceeds the ${AUTO_APPROVE_LIMIT:.2f} auto-approve limit"
            )
    return None


def approval_package(
    ticket: Ticket, draft: str, decision: Decision, job_id: str, cost: float
) -> dict[str, Any]:
    """What a human approver needs: the ticket, the draft, why it waits, and what it cost."""
    why = decision.escalations[-1].detail if decision.escalations else decision.reason
    return {
        "ticket": ticket.id,
        "customer": ticket.customer,
        "kind": ticket.kind,
        "message": ticket.text,
        "draft_reply": draft,
        "action": next((m.group(0) for m in _ACTION.finditer(draft)), None),
        "why_review": why,
        "drafted_by": decision.deployment,
        "route": decision.route,
        "routing_reason": decision.reason,
        "job": job_id,
        "cost_usd": cost,
    }


def _path(decision: Decision) -> str:
    """Where the answer went: ``small``, ``small → strong``, ``strong → human review``."""
    steps = [e.from_group for e in decision.escalations]
    last = decision.escalations[-1].to_group if decision.escalations else decision.group
    return " → ".join([*steps, last or "human review"])


async def handle(router: Router, ticket: Ticket, report: Report, approvals: Path) -> None:
    """One ticket, one job: draft a reply on the routed model; queue it if it needs approval."""
    async with router.job(f"ticket-{ticket.id}", ticket=ticket.id) as job:
        response = await router.acompletion(
            "auto", ticket.messages(), max_tokens=300, metadata={"step": "reply"}
        )
        decision = get_decision(response)
        assert decision is not None  # every routed response carries one
        draft = response.choices[0].message.content or ""
        if decision.needs_review:
            package = approval_package(ticket, draft, decision, job.id, job.cost_usd)
            with approvals.open("a", encoding="utf-8") as queue:
                queue.write(json.dumps(package) + "\n")
    assert job.record is not None  # set when the block exits
    note = ""
    if decision.route == "long-history":
        note = f"routed: {decision.reason.split('; ')[0]}"
    result = report.add(
        JobResult(
            ticket.id,
            ticket.kind,
            job.record,
            ticket.outcome,
            _path(decision),
            list(decision.escalations),
            note=note,
        )
    )
    # The checks that make this example a test: every ticket took the designed path.
    triggers = tuple(e.trigger for e in result.escalations)
    report.expect(
        triggers == ticket.triggers,
        f"{ticket.id}: escalations {triggers}, expected {ticket.triggers}",
    )
    report.expect(
        decision.group == ticket.group,
        f"{ticket.id}: answered by group {decision.group}, expected {ticket.group}",
    )
    if ticket.kind in ("refund", "policy", "shipping", "account"):
        report.expect(
            f"classifier ticket_kind said '{ticket.kind}'" in decision.reason,
            f"{ticket.id}: not classified '{ticket.kind}': {decision.reason}",
        )
    elif ticket.kind == "long-history":
        report.expect(decision.route == "long-history", f"{ticket.id}: route {decision.route}")
    else:
        report.expect(decision.route == "default", f"{ticket.id}: route {decision.route}")


async def run(records: Path) -> int:
    """Process the tickets against a fresh simulated fleet; print the metrics."""
    approvals = records.with_name(f"{records.stem}-approvals.jsonl")
    approvals.write_text("")
    async with Fleet({"support-mini": MINI, "support-pro": PRO}, seed=7) as fleet:
        config = load_config(HERE / "providers.toml", fleet, records)
        router = Router(config, validators={"approval": approval})
        report = Report("support agent")
        for ticket in TICKETS:
            await handle(router, ticket, report, approvals)
    queued = [json.loads(line) for line in approvals.read_text().splitlines()]
    want = [t.id for t in TICKETS if t.outcome == "needs_review"]
    report.expect(
        [p["ticket"] for p in queued] == want,
        f"approval queue holds {[p['ticket'] for p in queued]}, expected {want}",
    )
    extra = {"approval queue": f"{len(queued)} package(s) in {approvals}"}
    return report.print(records, sys.stdout, extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; 0 when every ticket ended as designed."""
    args = parse_args("support_agent", __doc__, argv)
    return asyncio.run(run(records_path(args.records)))


if __name__ == "__main__":
    sys.exit(main())
