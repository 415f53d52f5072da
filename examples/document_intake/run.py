"""Document intake: extract invoice fields with a cheap model; escalate the extractions that
are not JSON, miss required fields or whose totals do not reconcile to a strong model.

Run it: ``./dev python examples/document_intake/run.py``. It starts its own simulated
providers on ephemeral ports, takes in nine documents and prints each one's outcome, cost and
escalations, then the totals (a few seconds, most of it importing litellm).

The pattern. Every document is one job with two steps, each a call with ``model="auto"`` and
``metadata={"step": ...}``:

1. ``classify``: one cheap word (invoice, receipt, delivery_note); anything but an invoice is
   rejected (``job.fail``), so nothing is spent extracting it;
2. ``extract``: the fields as JSON, asked for with a JSON schema
   (``response_format={"type": "json_schema", ...}``). The cheap model's answer must parse
   (``invalid_json``), validate against the schema (``schema``: required fields, types,
   formats) and reconcile (``validator:totals``: line amounts = quantity × unit price, lines
   add up to the subtotal, subtotal + tax = total; a Python function given to
   ``Router(validators=...)``). The first check that fails escalates the call to the strong
   model, whose answer must pass the same checks. Scanned documents skip the cheap model.
   An invoice whose own numbers do not add up fails on both models and comes back
   ``needs_review``: a human must look at it.

The part of ``providers.toml`` that does it::

    [[deployments]]
    name = "extract-mini"
    groups = ["triage", "extract-cheap"]      # one model, a group per kind of work
    ...
    [[routes]]
    name = "classify"
    when = { step = "classify" }
    group = "triage"

    [[routes]]
    name = "scanned"
    when = { step = "extract", tags = ["scanned"] }
    group = "extract-strong"

    [[routes]]
    name = "extract"
    when = { step = "extract", has_response_format = true }
    group = "extract-cheap"

    [groups.extract-cheap]
    escalate_to = "extract-strong"
    escalate_on = ["invalid_json", "schema", "validator:totals"]

    [groups.extract-strong]
    escalate_on = ["schema", "validator:totals"]
    on_exhausted = "review"

The simulated cheap model is scripted (``router._sim.Script``) to wrap one answer in prose
and a code fence, drop the date and currency from another and misread a subtotal in a third;
the strong model extracts what is printed.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `examples` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples._harness import JobResult, Report, load_config, parse_args, records_path
from router import Decision, Router, get_decision
from router._sim import Behavior, Fleet, Script

HERE = Path(__file__).resolve().parent

CLASSIFY = (
    "What kind of business document is this? Answer with one word: invoice, receipt or "
    "delivery_note."
)
EXTRACT = "Extract the invoice's fields as JSON matching the schema. Copy numbers as printed."

SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "invoice",
        "strict": True,
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "invoice_number",
                "vendor",
                "issue_date",
                "currency",
                "lines",
                "subtotal",
                "tax",
                "total",
            ],
            "properties": {
                "invoice_number": {"type": "string"},
                "vendor": {"type": "string"},
                "issue_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "currency": {"type": "string", "enum": ["EUR", "GBP", "USD"]},
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["description", "quantity", "unit_price", "amount"],
                        "properties": {
                            "description": {"type": "string"},
                            "quantity": {"type": "number"},
                            "unit_price": {"type": "number"},
                            "amount": {"type": "number"},
                        },
                    },
                },
                "subtotal": {"type": "number"},
                "tax": {"type": "number"},
                "total": {"type": "number"},
            },
        },
    },
}


@dataclass(frozen=True)
class Document:
    """A document in the intake batch, and how the simulated models read it."""

    id: str
    vendor: str
    date: str
    currency: str
    lines: tuple[tuple[str, float, float], ...]
    """(description, quantity, unit price)."""
    tax_rate: float = 0.2
    printed_total: float | None = None
    """The TOTAL the vendor printed, when it is not subtotal + tax (a vendor's mistake)."""
    kind: str = "invoice"
    tags: tuple[str, ...] = ()
    cheap: str = "ok"
    """How the cheap model reads it: ok, invalid_json, missing_fields or wrong_subtotal."""
    triggers: tuple[str, ...] = ()
    outcome: str = "success"

    @property
    def subtotal(self) -> float:
        """The sum of the line amounts."""
        return round(sum(round(q * p, 2) for _, q, p in self.lines), 2)

    @property
    def tax(self) -> float:
        """The tax on the subtotal, rounded to cents."""
        return round(self.subtotal * self.tax_rate, 2)

    @property
    def total(self) -> float:
        """The total as printed: subtotal + tax unless the vendor got it wrong."""
        return self.printed_total if self.printed_total is not None else self.subtotal + self.tax

    def text(self) -> str:
        """The document as OCR or a PDF parser would hand it over."""
        if self.kind == "delivery_note":
            items = "\n".join(f"  {q:g} x {d}" for d, q, _ in self.lines)
            return f"DELIVERY NOTE {self.id}\nFrom: {self.vendor}\nDate: {self.date}\n{items}\n"
        rows = "\n".join(f"  {q:g} x {d} @ {p:.2f} = {q * p:.2f}" for d, q, p in self.lines)
        return (
            f"INVOICE {self.id}\nFrom: {self.vendor}\nDate: {self.date}\n"
            f"Currency: {self.currency}\n{rows}\nSubtotal: {self.subtotal:.2f}\n"
            f"Tax {self.tax_rate:.0%}: {self.tax:.2f}\nTOTAL DUE: {self.total:.2f}\n"
        )

    def fields(self) -> dict[str, Any]:
        """The fields as printed on the document: what a faithful extraction returns."""
        return {
            "invoice_number": self.id,
            "vendor": self.vendor,
            "issue_date": self.date,
            "currency": self.currency,
            "lines": [
                {"description": d, "quantity": q, "unit_price": p, "amount": round(q * p, 2)}
                for d, q, p in self.lines
            ],
            "subtotal": self.subtotal,
            "tax": self.tax,
            "total": round(self.total, 2),
        }


DOCUMENTS: tuple[Document, ...] = (
    Document("INV-001", "Fjord Paper AS", "2024-05-02", "EUR",
             (("A4 copy paper, box of 5 reams", 4, 24.5), ("Delivery", 1, 9.0))),
    Document("INV-002", "Kettle & Co", "2024-05-03", "GBP",
             (("Office coffee beans 1 kg", 6, 18.75),)),
    Document("INV-003", "Brightline Ltd", "2024-05-06", "GBP",
             (("LED panel 60x60", 12, 32.0), ("Installation hours", 5, 45.0)),
             cheap="invalid_json", triggers=("invalid_json",)),
    Document("INV-004", "Oakridge Supply", "2024-05-07", "USD",
             (("Pallet jack", 1, 389.0), ("Safety gloves, pair", 20, 3.2)), tax_rate=0.08,
             cheap="missing_fields", triggers=("schema",)),
    Document("INV-005", "Nordlys Energi", "2024-05-08", "EUR",
             (("Electricity, April (kWh)", 1840, 0.31), ("Grid fee", 1, 52.4)),
             tax_rate=0.25, cheap="wrong_subtotal", triggers=("validator:totals",)),
    Document("INV-006", "Hanse Print GmbH", "2024-05-09", "EUR",
             (("Flyers A5, 5000 pcs", 1, 210.0),), tax_rate=0.19, tags=("scanned",)),
    Document("INV-007", "Quickfix Plumbing", "2024-05-10", "GBP",
             (("Call-out", 1, 85.0), ("Valve replacement", 2, 40.0)), printed_total=215.0,
             triggers=("validator:totals", "validator:totals"), outcome="needs_review"),
    Document("INV-008", "Pixel Cloud Inc", "2024-05-13", "USD",
             (("Cloud storage, TB-month", 3, 23.0),), tax_rate=0.0),
    Document("DN-009", "Fjord Paper AS", "2024-05-14", "EUR",
             (("A4 copy paper, box of 5 reams", 4, 0.0),), kind="delivery_note",
             outcome="failed"),
)  # fmt: skip


def _cheap_reading(doc: Document) -> str:
    """The cheap model's answer: right, or wrong in the way `doc.cheap` says."""
    fields = doc.fields()
    if doc.cheap == "invalid_json":
        return f"Here is the extracted invoice:\n```json\n{json.dumps(fields, indent=2)}\n```"
    if doc.cheap == "missing_fields":
        del fields["issue_date"], fields["currency"]
    elif doc.cheap == "wrong_subtotal":
        fields["subtotal"] = round(fields["subtotal"] - 90, 2)  # a 9 read as a 0 in the tens
    return json.dumps(fields)


def fleet_behaviors() -> dict[str, Behavior]:
    """The scripted providers: one script per document and model."""
    mini: list[Script] = [
        Script(rf"(?s){re.escape(CLASSIFY)}.*DELIVERY NOTE", "delivery_note"),
        Script(re.escape(CLASSIFY), "invoice"),
    ]
    pro: list[Script] = []
    for doc in DOCUMENTS:
        if doc.kind == "invoice":
            pattern = rf"(?s){re.escape(EXTRACT)}.*INVOICE {doc.id}\n"
            mini.append(Script(pattern, _cheap_reading(doc)))
            pro.append(Script(pattern, json.dumps(doc.fields())))
    return {
        "extract-mini": Behavior(latency_ms=10.0, scripts=mini),
        "extract-pro": Behavior(latency_ms=25.0, scripts=pro),
    }


def totals(response: Any, request: Mapping[str, Any]) -> str | None:
    """``validator:totals``: None if the invoice's numbers reconcile, else what does not."""
    try:
        doc = json.loads(response.choices[0].message.content or "")
        lines = doc["lines"]
        amounts = [float(line["amount"]) for line in lines]
        subtotal, tax, total = float(doc["subtotal"]), float(doc["tax"]), float(doc["total"])
    except (ValueError, KeyError, TypeError) as exc:
        # The JSON and schema checks run first and report these; say so if they were left out.
        return f"cannot read the totals ({type(exc).__name__}: {exc})"
    for i, line in enumerate(lines):
        expected = float(line["quantity"]) * float(line["unit_price"])
        if abs(expected - amounts[i]) > 0.01:
            return f"line {i + 1}: {line['quantity']} × {line['unit_price']} ≠ {amounts[i]:.2f}"
    if abs(sum(amounts) - subtotal) > 0.01:
        return f"lines add up to {sum(amounts):,.2f} but the subtotal says {subtotal:,.2f}"
    if abs(subtotal + tax - total) > 0.01:
        return (
            f"subtotal {subtotal:,.2f} + tax {tax:,.2f} = {subtotal + tax:,.2f}, not {total:,.2f}"
        )
    return None


def _path(decisions: list[Decision]) -> str:
    """Each step and the groups it went through, e.g. ``extract@extract-cheap → ...``."""
    parts = []
    for d in decisions:
        groups = [e.from_group for e in d.escalations]
        last = d.escalations[-1].to_group if d.escalations else d.group
        parts.append(f"{d.step}@{' → '.join([*groups, last or 'human review'])}")
    return ", ".join(parts)


async def process(router: Router, doc: Document, report: Report, ledger: list[Any]) -> None:
    """One document, one job: classify it, extract an invoice's fields, book what passed."""
    decisions: list[Decision] = []
    extracted: dict[str, Any] | None = None
    async with router.job(f"doc-{doc.id}", document=doc.id) as job:
        kind = await router.acompletion(
            "auto",
            [{"role": "system", "content": CLASSIFY}, {"role": "user", "content": doc.text()}],
            max_tokens=5,
            metadata={"step": "classify"},
        )
        decisions.append(_decision(kind))
        label = (kind.choices[0].message.content or "").strip().lower()
        if label != "invoice":
            job.fail(f"not an invoice ({label}); sent back to the mailroom")
        else:
            response = await router.acompletion(
                "auto",
                [{"role": "system", "content": EXTRACT}, {"role": "user", "content": doc.text()}],
                response_format=SCHEMA,
                metadata={"step": "extract", "tags": list(doc.tags)},
            )
            decision = _decision(response)
            decisions.append(decision)
            # A needs_review answer may not even parse: it waits for a human as it is.
            if not decision.needs_review:
                extracted = json.loads(response.choices[0].message.content or "")
                ledger.append(extracted)  # booked: it parsed, validated and reconciled
    assert job.record is not None  # set when the block exits
    escalations = [e for d in decisions for e in d.escalations]
    note = (job.record.why or "") if job.record.outcome == "failed" else ""
    report.add(
        JobResult(
            doc.id, doc.kind, job.record, doc.outcome, _path(decisions), escalations, note=note
        )
    )
    # The checks that make this example a test: every document took the designed path.
    triggers = tuple(e.trigger for e in escalations)
    report.expect(
        triggers == doc.triggers, f"{doc.id}: escalations {triggers}, expected {doc.triggers}"
    )
    if doc.outcome == "success":
        report.expect(extracted == doc.fields(), f"{doc.id}: extracted {extracted}")
    if "scanned" in doc.tags:
        report.expect(decisions[-1].route == "scanned", f"{doc.id}: route {decisions[-1].route}")


def _decision(response: Any) -> Decision:
    """The decision record every routed response carries."""
    decision = get_decision(response)
    assert decision is not None  # every routed response carries one
    return decision


async def run(records: Path) -> int:
    """Process the documents against a fresh simulated fleet; print the metrics."""
    ledger: list[Any] = []
    async with Fleet(fleet_behaviors(), seed=11) as fleet:
        config = load_config(HERE / "providers.toml", fleet, records)
        router = Router(config, validators={"totals": totals})
        report = Report("document intake")
        for doc in DOCUMENTS:
            await process(router, doc, report, ledger)
    booked = [d["invoice_number"] for d in ledger]
    want = [d.id for d in DOCUMENTS if d.outcome == "success"]
    report.expect(booked == want, f"booked {booked}, expected {want}")
    return report.print(records, sys.stdout, {"booked": f"{len(booked)} invoice(s)"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; 0 when every document ended as designed."""
    args = parse_args("document_intake", __doc__, argv)
    return asyncio.run(run(records_path(args.records)))


if __name__ == "__main__":
    sys.exit(main())
