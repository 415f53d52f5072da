"""Research agent: routes between two search tools, fans out in parallel for hard questions,
and synthesizes the findings on a stronger model.

Run it: ``./dev python examples/research_agent/run.py``. It starts its own simulated
providers on ephemeral ports, answers six questions and prints each one's outcome, cost,
searches and escalations, then the totals (a few seconds, most of it importing litellm).

The pattern. Every question is one job of three steps:

1. ``plan`` (``model="auto"``): an ``llm`` classifier on the cheap model says whether the
   question is easy or hard; easy questions are planned by the cheap model, hard ones by the
   strong model. The plan is JSON (``response_format`` with a schema) listing the searches; a
   cheap plan that is not valid JSON for the schema escalates to the strong model.
2. search: the planned queries run in parallel (``asyncio.gather``) through a ``router.Pool``
   of two search tools, plain async callables, not LLMs, ranked by cost: the cheaper tool
   serves while it is healthy; when it fails, calls fail over to the other and, after three
   failures in a row, its breaker opens so calls stop trying it; once it recovers, the
   breaker's single probe brings its traffic back.
3. ``answer`` (one search: the cheap model) or ``synthesize`` (several: the strong model),
   chosen by a ``when.step`` rule.

The part of ``providers.toml`` that does it::

    [[routes]]
    name = "synthesis"
    when = { step = "synthesize" }
    group = "deep"

    [[routes]]
    name = "answer"
    when = { step = "answer" }
    group = "fast"

    [[routes]]
    name = "plan"
    when = { step = "plan" }
    classifier = "difficulty"
    classes = { easy = "fast", hard = "deep" }

    [classifiers.difficulty]
    kind = "llm"
    group = "fast"
    labels = ["easy", "hard"]
    prompt = "Is this research question easy (...) or hard (...)? Answer with one word: ..."

    [groups.fast]
    escalate_to = "deep"
    escalate_on = ["invalid_json", "schema", "empty"]

and the search tools, in Python::

    search = router.Pool(
        {"fastsearch": fastsearch, "deepsearch": deepsearch},
        strategy="cost", costs={"fastsearch": 0.001, "deepsearch": 0.005},
        timeout=2.0, deadline=5.0, breaker_consecutive_failures=3, breaker_open_base=0.5,
        caller_errors=(ValueError,),
    )
    hits = await asyncio.gather(*(search.call_routed(q, k=3) for q in plan["queries"]))

A Pool's calls are not part of the job record (it knows only the router's LLM calls), so
run.py adds each search's ``Routed.cost_usd`` to the job's cost itself.

The script takes fastsearch down for questions Q4 and Q5 (its breaker opens during Q4's
fan-out; Q5 skips it), brings it back for Q6 (the probe closes the breaker), and the cheap
planner answers Q6 with the wrong JSON keys (escalated on ``schema``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script: make `examples` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples._harness import JobResult, Report, load_config, parse_args, records_path
from router import Decision, Pool, Routed, Router, get_decision
from router._sim import Behavior, Fleet, Script

if TYPE_CHECKING:
    from router._breaker import Transition

HERE = Path(__file__).resolve().parent

PLAN = (
    "Plan the web searches needed to answer the question. Reply with JSON: "
    '{"queries": [...]} (one query for a single fact, up to four for a question with '
    "several aspects)."
)
ANSWER = "Answer the question from the numbered search results; cite them like [1]."
PLAN_SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "search_plan",
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["queries"],
            "properties": {
                "queries": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 4,
                    "items": {"type": "string", "minLength": 3},
                }
            },
        },
    },
}


# --- the search tools: two interchangeable, non-LLM backends ----------------------------------


@dataclass(frozen=True)
class Hit:
    """One search result."""

    url: str
    title: str
    snippet: str


CORPUS: tuple[tuple[Hit, frozenset[str]], ...] = tuple(
    (Hit(url, title, snippet), frozenset(terms.split()))
    for url, title, snippet, terms in (
        ("https://example.org/transistor", "The first transistor (1947)",
         "Bardeen and Brattain demonstrated the point-contact transistor at Bell Labs in "
         "December 1947.", "transistor first 1947 bell labs invented demonstrated"),
        ("https://example.org/cpython", "CPython governance",
         "CPython is developed by its core developers; the Python Software Foundation holds "
         "the rights.", "cpython python maintains core developers psf governance"),
        ("https://example.org/li-ion-cost", "Li-ion grid storage costs",
         "Lithium-ion pack prices fell below $140/kWh in 2023.",
         "lithium-ion li-ion cost price grid storage batteries"),
        ("https://example.org/na-ion", "Sodium-ion batteries",
         "Sodium-ion cells avoid lithium and cobalt; energy density is lower but cycle life is "
         "comparable.", "sodium-ion na-ion batteries cycle life supply grid storage"),
        ("https://example.org/supply-risk", "Battery supply risk",
         "Lithium supply is concentrated in a few countries; sodium is abundant.",
         "supply risk lithium sodium minerals batteries"),
        ("https://example.org/blackout-2003", "2003 Northeast blackout",
         "A software bug silenced alarms at FirstEnergy while overloaded lines sagged into "
         "trees.", "2003 northeast blackout alarms bug firstenergy cause spread"),
        ("https://example.org/nerc", "After 2003: mandatory reliability standards",
         "The Energy Policy Act of 2005 made NERC reliability standards mandatory.",
         "2003 blackout afterwards nerc standards reliability changed"),
        ("https://example.org/cascade", "How grid failures cascade",
         "Tripped lines shift load onto neighbours, which trip in turn.",
         "grid cascade spread failures blackout lines"),
        ("https://example.org/heat-pumps-old", "Heat pumps in old houses",
         "Heat pumps work in old houses with larger radiators and some insulation first.",
         "heat pumps old houses radiators insulation trade-offs"),
        ("https://example.org/boiler-costs", "Gas boilers: running costs",
         "Gas boilers are cheaper to install; running costs depend on gas prices.",
         "gas boilers costs running install trade-offs"),
        ("https://example.org/heat-pump-cop", "Heat pump efficiency",
         "A heat pump delivers 3-4 kWh of heat per kWh of electricity.",
         "heat pumps efficiency cop electricity"),
        ("https://example.org/everest-boiling", "Boiling point at altitude",
         "At the summit of Everest water boils at about 70 °C.",
         "boiling point water everest altitude summit"),
    )
)  # fmt: skip


class SearchTool:
    """A search backend over the shared corpus; `down` makes it fail like a dead service."""

    def __init__(self, name: str, latency_s: float) -> None:
        self.name = name
        self.latency_s = latency_s
        self.down = False
        self.calls = 0

    async def __call__(self, query: str, k: int = 3) -> list[Hit]:
        """The `k` best hits for `query` (a blank query is the caller's mistake)."""
        if not query.strip():
            raise ValueError("empty query")
        self.calls += 1
        await asyncio.sleep(self.latency_s)
        if self.down:
            raise ConnectionError(f"{self.name}: connection reset by peer")
        words = set(re.findall(r"[a-z0-9-]+", query.lower()))
        scored = sorted(
            ((len(words & terms), hit) for hit, terms in CORPUS if words & terms),
            key=lambda pair: -pair[0],
        )
        return [hit for _, hit in scored[:k]]


# --- the questions and the scripted models -----------------------------------------------------


@dataclass(frozen=True)
class Question:
    """A research question and how the example expects it to be handled."""

    id: str
    text: str
    label: str
    """easy or hard: what the difficulty classifier should say."""
    queries: tuple[str, ...]
    """The searches the plan lists."""
    answer: str
    """The final answer the scripted model gives."""
    cheap_plan: str | None = None
    """A broken plan the cheap model gives instead (escalated), if any."""
    tools: tuple[str, ...] = ("fastsearch",)
    """Which tool should serve the searches."""
    triggers: tuple[str, ...] = ()

    @property
    def final_step(self) -> str:
        """``synthesize`` when several searches must be weighed, else ``answer``."""
        return "synthesize" if len(self.queries) > 1 else "answer"

    def prompt(self) -> str:
        """The question as the models see it."""
        return f"Question {self.id}: {self.text}"


QUESTIONS: tuple[Question, ...] = (
    Question("Q1", "When was the first transistor demonstrated, and where?", "easy",
             ("first transistor demonstrated 1947",),
             "At Bell Labs, in December 1947 [1]."),
    Question("Q2", "Compare lithium-ion and sodium-ion batteries for grid storage: cost, "
             "cycle life and supply risk.", "hard",
             ("li-ion grid storage cost", "sodium-ion cycle life", "battery supply risk lithium"),
             "Li-ion is cheaper today [1]; sodium-ion matches its cycle life [2] and avoids "
             "lithium's concentrated supply [3]."),
    Question("Q3", "Who maintains CPython?", "easy", ("cpython core developers governance",),
             "Its core developers, under the Python Software Foundation [1]."),
    Question("Q4", "Why did the 2003 Northeast blackout spread so far, and what changed "
             "afterwards?", "hard",
             ("2003 blackout cause alarms bug", "grid cascade spread failures",
              "after 2003 blackout nerc standards"),
             "Silenced alarms hid overloaded lines [1], the failure cascaded [2], and "
             "reliability standards became mandatory in 2005 [3].",
             tools=("deepsearch",)),
    Question("Q5", "What are the trade-offs between heat pumps and gas boilers for old "
             "houses?", "hard",
             ("heat pumps old houses radiators", "gas boilers running costs",
              "heat pump efficiency cop"),
             "Heat pumps need bigger radiators [1] but deliver 3-4x the heat per kWh [3]; "
             "boilers are cheaper to install [2].",
             tools=("deepsearch",)),
    Question("Q6", "At what temperature does water boil on the summit of Everest?", "easy",
             ("boiling point water everest summit",), "About 70 °C [1].",
             cheap_plan='{"searches": ["everest boiling point"]}', triggers=("schema",)),
)  # fmt: skip

_CLASSIFY = re.escape("Answer with one word: easy or hard.")


def fleet_behaviors() -> dict[str, Behavior]:
    """The scripted providers: the classifier's word, plans and answers per question."""
    mini: list[Script] = []
    pro: list[Script] = []
    for q in QUESTIONS:
        ask = re.escape(q.prompt())
        mini.append(Script(rf"(?s){_CLASSIFY}.*{ask}", q.label))
        plan = json.dumps({"queries": list(q.queries)})
        if q.label == "easy":
            mini.append(Script(rf"(?s){re.escape(PLAN)}.*{ask}", q.cheap_plan or plan))
        pro.append(Script(rf"(?s){re.escape(PLAN)}.*{ask}", plan))
        final = mini if q.final_step == "answer" else pro
        final.append(Script(rf"(?s){re.escape(ANSWER)}.*{ask}", q.answer))
    return {
        "research-mini": Behavior(latency_ms=8.0, scripts=mini),
        "research-pro": Behavior(latency_ms=30.0, scripts=pro),
    }


# --- the agent -----------------------------------------------------------------------------------


def _decision(response: Any) -> Decision:
    """The decision record every routed response carries."""
    decision = get_decision(response)
    assert decision is not None  # every routed response carries one
    return decision


def _where(decision: Decision) -> str:
    """The groups a call went through, e.g. ``fast → deep``."""
    groups = [e.from_group for e in decision.escalations]
    return " → ".join([*groups, decision.group])


async def research(
    router: Router,
    search: Pool[..., list[Hit]],
    q: Question,
    report: Report,
    transitions: list[tuple[str, Transition]],
) -> None:
    """One question, one job: plan, search in parallel, answer or synthesize."""
    async with router.job(f"question-{q.id}", question=q.id) as job:
        plan = await router.acompletion(
            "auto",
            [{"role": "system", "content": PLAN}, {"role": "user", "content": q.prompt()}],
            response_format=PLAN_SCHEMA,
            metadata={"step": "plan"},
        )
        planned = _decision(plan)
        queries: list[str] = json.loads(plan.choices[0].message.content or "{}")["queries"]
        # The fan-out: every planned search at once, each routed over the two tools.
        found: list[Routed[list[Hit]]] = await asyncio.gather(
            *(search.call_routed(query, k=3) for query in queries)
        )
        hits = list({hit.url: hit for routed in found for hit in routed.value}.values())
        sources = "\n".join(
            f"[{i}] {h.title}: {h.snippet} ({h.url})" for i, h in enumerate(hits, 1)
        )
        step = "synthesize" if len(queries) > 1 else "answer"
        final = await router.acompletion(
            "auto",
            [
                {"role": "system", "content": ANSWER},
                {"role": "user", "content": f"{q.prompt()}\n\nSearch results:\n{sources}"},
            ],
            metadata={"step": step},
        )
        answered = _decision(final)
    assert job.record is not None  # set when the block exits
    transitions += [(q.id, event) for routed in found for event in routed.decision.events]
    served = Counter(routed.served_by for routed in found)
    tools = ", ".join(f"{name}×{n}" for name, n in served.items())
    searches = f"{len(found)} search{'es' if len(found) > 1 else ''} [{tools}]"
    # What the tool routing did, once per kind: failovers and skips are the story of Q4/Q5.
    trouble = dict.fromkeys(
        [
            f"{a.deployment} failed ({a.error}), failed over"
            for routed in found
            for a in routed.decision.attempts
            if a.outcome != "success"
        ]
        + [
            f"{s.deployment} skipped ({s.why.split(' for ')[0]})"
            for routed in found
            for s in routed.decision.skipped
        ]
    )
    result = report.add(
        JobResult(
            q.id,
            q.label,
            job.record,
            "success",
            f"plan@{_where(planned)}, {searches}, {answered.step}@{_where(answered)}",
            list(planned.escalations) + list(answered.escalations),
            extra_cost_usd=sum(routed.cost_usd for routed in found),
            note="; ".join(trouble),
        )
    )
    # The checks that make this example a test: every question took the designed path.
    expect = report.expect
    expect(f"classifier difficulty said '{q.label}'" in planned.reason, f"{q.id}: {planned.reason}")
    expect(planned.group == ("deep" if q.label == "hard" or q.triggers else "fast"),
           f"{q.id}: planned on {planned.group}")  # fmt: skip
    expect(tuple(queries) == q.queries, f"{q.id}: planned {queries}")
    expect(set(served) == set(q.tools), f"{q.id}: searches served by {dict(served)}")
    if q.id == "Q5":  # the breaker opened during Q4: no call should even try fastsearch
        expect(
            all("breaker open" in s.why for r in found for s in r.decision.skipped)
            and all(a.deployment == "deepsearch" for r in found for a in r.decision.attempts),
            f"{q.id}: fastsearch was not skipped: {[r.decision.reason for r in found]}",
        )
    expect(answered.step == q.final_step, f"{q.id}: final step {answered.step}")
    expect(answered.group == ("deep" if q.final_step == "synthesize" else "fast"),
           f"{q.id}: {answered.step} ran on {answered.group}")  # fmt: skip
    expect(final.choices[0].message.content == q.answer, f"{q.id}: answer {final}")
    triggers = tuple(e.trigger for e in result.escalations)
    expect(triggers == q.triggers, f"{q.id}: escalations {triggers}, expected {q.triggers}")


async def run(records: Path) -> int:
    """Answer the questions against a fresh simulated fleet; print the metrics."""
    fast, deep = SearchTool("fastsearch", 0.005), SearchTool("deepsearch", 0.02)
    search = Pool(
        {"fastsearch": fast, "deepsearch": deep},
        strategy="cost",
        costs={"fastsearch": 0.001, "deepsearch": 0.005},
        timeout=2.0,
        deadline=5.0,
        breaker_consecutive_failures=3,
        breaker_open_base=0.5,
        breaker_open_max=2.0,
        caller_errors=(ValueError,),
        name="search",
    )
    transitions: list[tuple[str, Transition]] = []
    report = Report("research agent")
    async with Fleet(fleet_behaviors(), seed=3) as fleet:
        router = Router(load_config(HERE / "providers.toml", fleet, records))
        for q in QUESTIONS:
            if q.id == "Q4":
                fast.down = True  # the cheap search service starts failing
            if q.id == "Q6":
                fast.down = False  # ... and comes back; its breaker admits one probe when due
                health = next(h for h in search.health() if h.deployment == "fastsearch")
                # A little past the open period: a timer may fire a hair early.
                await asyncio.sleep((health.open_for_s or 0.0) + 0.05)
            await research(router, search, q, report, transitions)
    story = [f"{qid}: {t.deployment} {t.after.value} ({t.reason})" for qid, t in transitions]
    report.expect(
        [(qid, t.after.value) for qid, t in transitions]
        == [("Q4", "open"), ("Q6", "half_open"), ("Q6", "closed")],
        f"breaker transitions: {story}",
    )
    report.expect(fast.calls > 0 and deep.calls > 0, "both search tools should have been used")
    extra = {
        "searches": f"fastsearch {fast.calls} call(s), deepsearch {deep.calls} call(s)",
        "breaker": "; ".join(story) or "no transitions",
    }
    return report.print(records, sys.stdout, extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; 0 when every question ended as designed."""
    args = parse_args("research_agent", __doc__, argv)
    return asyncio.run(run(records_path(args.records)))


if __name__ == "__main__":
    sys.exit(main())
