"""``router eval routellm``: fit on train, replay every policy on test, report.

For one dataset: load it, split it by prompt (seeded), fit every policy family on the
training split, then send the test split through one fresh `Router` per policy setting:

- the baselines (always-weak, always-strong, a 50% random mix, the oracle);
- each family at the cheapest setting that reached 90%, 95% and 98% of strong quality on the
  training split (the calibration); the 95% ones are the table's rows;
- each family at settings sending fixed shares of training items to the strong model (the
  quality-cost curve).

Then a reproduction check on *all* items (always-weak, always-strong and the oracle against
the figures data/routellm/README.md states) and the goals, judged on the policy the training
split picks (the family whose 95% setting was cheapest on train), not the best on test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from router._eval._data import Dataset, Item, Split, load_routellm, split
from router._eval._harness import Runner, RunResult, replay_judge
from router._eval._policies import (
    BINDINGS,
    PRICES,
    STRONG_DEPLOYMENT,
    Fitted,
    PolicySpec,
    base_config,
    fit,
    oracle_policy,
)
from router._eval._replay import ReplayBackend

__all__ = ["GOALS", "TARGETS", "DatasetReport", "evaluate", "plan"]

TARGETS = (0.90, 0.95, 0.98)
"""Quality targets (fractions of always-strong accuracy) each family is calibrated for."""
TABLE_TARGET = 0.95
CURVE_SHARES: Mapping[str, tuple[float, ...]] = {
    "gsm8k": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    # MMLU's test split is 11x larger: fewer points keep the whole run within two minutes.
    "mmlu": (0.2, 0.4, 0.6, 0.8),
}


@dataclass(frozen=True)
class Goal:
    """The issue's goal for a dataset, and the baselines to quote beside it."""

    quality: float
    max_strong_share: float
    random_mix: float
    routellm: float


GOALS: Mapping[str, Goal] = {
    "gsm8k": Goal(0.95, 0.45, 0.79, 0.65),
    "mmlu": Goal(0.95, 0.45, 0.68, 0.55),
}
DEFAULT_CONFIDENCE = 0.9
"""The calibration margin's default: fit so the target holds on a new batch of the training
split's size with this probability (`router._eval._learn.fit_threshold`)."""
MARGIN_FAMILIES = ("classifier", "cascade")
"""Families also run at other margins beside the default's row: the evidence for it."""
MARGIN_SWEEP: tuple[float | None, ...] = (None, 0.75)
"""The other margins (None: none, the cheapest setting that reaches the target on train)."""
REFERENCE: Mapping[str, Mapping[str, float]] = {
    # data/routellm/README.md, "Reference figures on these files".
    "gsm8k": {"weak": 0.649, "strong": 0.859, "oracle": 0.936, "random_share_95": 0.79},
    "mmlu": {"weak": 0.681, "strong": 0.807, "oracle": 0.862, "random_share_95": 0.68},
}


@dataclass
class DatasetReport:
    """Everything `router eval routellm` reports for one dataset."""

    name: str
    seed: int
    test_fraction: float
    train_items: int
    test_items: int
    notes: list[str]
    table: list[RunResult]
    curve: list[RunResult]
    calibration: list[RunResult]
    strong_accuracy: float
    reproduction: dict[str, Any] | None
    goal: dict[str, Any]
    prices: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = DEFAULT_CONFIDENCE
    new_items: int | None = None
    splits: dict[str, Any] | None = None
    """The repeated-split check (see `repeated`), when it was run."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (rates are fractions in 0..1, costs in USD)."""
        s = self.strong_accuracy
        return {
            "dataset": self.name,
            "seed": self.seed,
            "test_fraction": self.test_fraction,
            "items": {"train": self.train_items, "test": self.test_items},
            "calibration_margin": {
                "confidence": self.confidence,
                "new_items": self.new_items or self.train_items,
            },
            "prices": self.prices,
            "notes": self.notes,
            "table": [r.row(s) for r in self.table],
            "calibration": [r.row(s) for r in self.calibration],
            "curve": [r.row(s) for r in self.curve],
            "reproduction": self.reproduction,
            "goal": self.goal,
            "splits": self.splits,
        }


@dataclass
class Plan:
    """The policy runs of one dataset, before they run."""

    dataset: Dataset
    train: tuple[Item, ...]
    test: tuple[Item, ...]
    fitted: Fitted
    backend: ReplayBackend
    table: list[PolicySpec]
    calibration: list[PolicySpec]
    curve: list[PolicySpec]
    full: list[PolicySpec]
    """Run on all items, for the reproduction check."""
    confidence: float | None = DEFAULT_CONFIDENCE
    new_items: int | None = None

    @property
    def calls(self) -> int:
        """How many routed calls the plan makes (for a progress bar)."""
        per_test = len(self.table) + len(self.calibration) + len(self.curve)
        return per_test * len(self.test) + len(self.full) * len(self.dataset.items)


def plan(
    name: str,
    *,
    data: str | None = None,
    seed: int = 0,
    test_fraction: float = 0.5,
    full: bool = True,
    dataset: Dataset | None = None,
    confidence: float | None = DEFAULT_CONFIDENCE,
    new_items: int | None = None,
    parts: Split | None = None,
) -> Plan:
    """Load, split and fit (train only); list every policy run of the dataset.

    ``full=False`` plans only what the repeated-split check needs: always-weak,
    always-strong and each family at its 95% setting. `parts` replaces the seeded split
    (``--train FILE --test FILE``).
    """
    from router._config import Config

    dataset = dataset or load_routellm(name, data)
    given = parts
    parts = parts or split(dataset, test_fraction, seed)
    backend = ReplayBackend([*parts.train, *parts.test], BINDINGS)
    # The length rule's unit: the router counts prompt tokens with the first deployment.
    first = Config.from_dict(base_config()).deployments[0]

    def count(prompt: str) -> int:
        return backend.count_tokens(first, [{"role": "user", "content": prompt}])

    fitted = fit(
        name,
        parts.train,
        seed=seed,
        count_tokens=count,
        confidence=confidence,
        new_items=new_items,
    )
    weak, strong = fitted.weak, fitted.strong
    oracle = oracle_policy({it.id: it for it in [*parts.train, *parts.test]})
    by_name = {b.name: b for b in fitted.baselines}
    table = [by_name["always-weak"], by_name["always-strong"], by_name["random mix 50%"], oracle]
    calibration: list[PolicySpec] = []
    for family in fitted.families:
        for target in TARGETS if full else (TABLE_TARGET,):
            _, spec = family.fitted(weak, strong, target)
            if full:
                calibration.append(spec)
            if target == TABLE_TARGET:
                table.append(spec)
        if family.key in MARGIN_FAMILIES:
            for level in MARGIN_SWEEP:
                if level != confidence:
                    table.append(family.fitted(weak, strong, TABLE_TARGET, level)[1])
    table += [b for b in fitted.baselines if b not in table]
    if not full:
        table = [t for t in table if t.target is not None or t.family.startswith("always")]
    shares = CURVE_SHARES.get(name, CURVE_SHARES["gsm8k"]) if full else ()
    curve = [spec for family in fitted.families for spec in family.curve(shares)]
    for family in fitted.families:
        if family.prime is not None:
            family.prime(parts.test)
    every = [by_name["always-weak"], by_name["always-strong"], oracle] if full else []
    if given is not None:
        every = []  # --train/--test: no reproduction check against the shipped files
    return Plan(
        dataset,
        parts.train,
        parts.test,
        fitted,
        backend,
        table,
        calibration,
        curve,
        every,
        confidence,
        new_items,
    )


async def evaluate(
    name: str,
    *,
    data: str | None = None,
    seed: int = 0,
    test_fraction: float = 0.5,
    advance: Callable[[int], None] | None = None,
    observer: Callable[[PolicySpec], Any] | None = None,
    prepared: Plan | None = None,
) -> DatasetReport:
    """Run one RouteLLM dataset end to end (see the module docstring)."""
    work = prepared or plan(name, data=data, seed=seed, test_fraction=test_fraction)
    runner = Runner(
        work.backend,
        strong={STRONG_DEPLOYMENT},
        judge=replay_judge(BINDINGS),
        seed=seed,
        observer=observer,
        advance=advance,
    )
    done: dict[tuple[str, str, str], RunResult] = {}

    async def run(spec: PolicySpec, items: Sequence[Item]) -> RunResult:
        # Identical settings (a 90% and a 95% fit landing on one threshold) run once.
        key = (spec.family, f"{spec.threshold!r} {spec.setting}", str(len(items)))
        found = done.get(key)
        if found is None:
            found = done[key] = await runner.run(spec, items)
        elif advance is not None:
            advance(len(items))
        return _renamed(found, spec)

    table = [await run(spec, work.test) for spec in work.table]
    calibration = [await run(spec, work.test) for spec in work.calibration]
    curve = [await run(spec, work.test) for spec in work.curve]
    full = [await run(spec, work.dataset.items) for spec in work.full]
    strong_accuracy = table[1].accuracy
    baselines = [r for r in table if r.family in ("always-weak", "always-strong")]
    curve_all = sorted([*baselines, *curve, *calibration], key=lambda r: (r.family, r.strong_share))
    return DatasetReport(
        name=name,
        seed=seed,
        test_fraction=test_fraction,
        train_items=len(work.train),
        test_items=len(work.test),
        notes=[*work.dataset.notes, *work.fitted.notes],
        table=table,
        curve=curve_all,
        calibration=calibration,
        strong_accuracy=strong_accuracy,
        reproduction=_reproduction(name, full) if full else None,
        goal=_goal(name, table, strong_accuracy),
        prices={k: dict(v) for k, v in PRICES.items()},
        confidence=work.confidence,
        new_items=work.new_items,
    )


def _renamed(result: RunResult, spec: PolicySpec) -> RunResult:
    copy = RunResult(result.name, result.family, result.setting, result.items, result.note)
    copy.name, copy.note, copy.target = spec.name, spec.note or result.note, spec.target
    if spec.fitted is not None:
        copy.fitted_from(spec.fitted, spec.in_sample_quality)
    return copy


def _reproduction(name: str, full: Sequence[RunResult]) -> dict[str, Any]:
    weak, strong, oracle = (r.accuracy for r in full)
    # A mix routing share p strong has expected accuracy (1-p)·weak + p·strong.
    need = (0.95 * strong - weak) / (strong - weak) if strong > weak else None
    ref = REFERENCE[name]
    return {
        "items": full[0].n,
        "weak": weak,
        "strong": strong,
        "oracle": oracle,
        "random_share_95": need,
        "reference": dict(ref),
        "matches": all(
            abs(ours - ref[key]) < 0.0006
            for key, ours in (("weak", weak), ("strong", strong), ("oracle", oracle))
        )
        and need is not None
        and abs(need - ref["random_share_95"]) < 0.006,
    }


def _goal(name: str, table: Sequence[RunResult], strong_accuracy: float) -> dict[str, Any]:
    goal = GOALS.get(name, GOALS["gsm8k"])
    fitted = [
        r
        for r in table
        if r.target == TABLE_TARGET and r.family != "random" and r.name.endswith("%)")
    ]
    candidates: list[dict[str, Any]] = []
    for r in fitted:
        quality = r.accuracy / strong_accuracy if strong_accuracy else 0.0
        candidates.append(
            {
                "policy": r.name,
                "train_share": r.train_share,
                "train_quality": r.train_quality,
                "in_sample_quality": r.in_sample_quality,
                "expected_low": r.expected_low,
                "expected_high": r.expected_high,
                "bound": r.bound,
                "confidence": r.confidence,
                "quality": quality,
                "strong_share": r.strong_share,
                "met": quality >= goal.quality and r.strong_share <= goal.max_strong_share,
            }
        )

    def sure(c: Mapping[str, Any]) -> float:
        return float(c["bound"] if c["bound"] is not None else c["train_quality"] or 0.0)

    reached = [c for c in candidates if sure(c) >= goal.quality - 1e-12]
    pick = min(reached or candidates, key=lambda c: c["train_share"] or 1.0, default=None)
    return {
        "quality": goal.quality,
        "max_strong_share": goal.max_strong_share,
        "random_mix_share": goal.random_mix,
        "routellm_share": goal.routellm,
        "pick": pick,
        "met": bool(pick and pick["met"]),
        "candidates": candidates,
        "rule": "the pick is the family whose 95% setting (reaching it on train at the "
        "calibration's confidence) sent the fewest training items to the strong model; its "
        "test figures decide the goal",
    }


async def repeated(
    report: DatasetReport,
    seeds: Sequence[int],
    *,
    data: str | None = None,
    dataset: Dataset | None = None,
    advance: Callable[[int], None] | None = None,
    planned: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The 95% policies over several splits: how much of a result is the split's luck.

    Every split is fitted on its own training side and measured on its own test side, as the
    main run is; `report` (the main run) supplies its own seed's figures. `planned` is told
    each extra split's number of calls once it is fitted (for a progress bar).
    """
    name = report.name
    goal = GOALS.get(name, GOALS["gsm8k"])
    per_seed: dict[int, list[RunResult]] = {}
    strong_by_seed: dict[int, float] = {}
    main = [r for r in report.table if r.target == TABLE_TARGET or r.family == "always-weak"]
    per_seed[report.seed] = main
    strong_by_seed[report.seed] = report.strong_accuracy
    for seed in seeds:
        if seed in per_seed:
            continue
        work = plan(
            name,
            data=data,
            seed=seed,
            test_fraction=report.test_fraction,
            full=False,
            dataset=dataset,
            confidence=report.confidence,
            new_items=report.new_items,
        )
        if planned is not None:
            planned(work.calls)
        runner = Runner(
            work.backend,
            strong={STRONG_DEPLOYMENT},
            judge=replay_judge(BINDINGS),
            seed=seed,
            advance=advance,
        )
        results = [await runner.run(spec, work.test) for spec in work.table]
        for spec, result in zip(work.table, results, strict=True):
            result.name = spec.name
        strong_by_seed[seed] = next(r for r in results if r.family == "always-strong").accuracy
        per_seed[seed] = [r for r in results if r.family != "always-strong"]
    policies: dict[str, dict[str, Any]] = {}
    for seed in sorted(per_seed):
        for r in per_seed[seed]:
            entry = policies.setdefault(
                r.name, {"quality": [], "strong_share": [], "cost_per_item_usd": []}
            )
            entry["quality"].append(r.accuracy / strong_by_seed[seed])
            entry["strong_share"].append(r.strong_share)
            entry["cost_per_item_usd"].append(r.cost_per_item)
    for entry in policies.values():
        q, s = entry["quality"], entry["strong_share"]
        entry["mean_quality"] = sum(q) / len(q)
        entry["min_quality"] = min(q)
        entry["mean_strong_share"] = sum(s) / len(s)
        entry["max_strong_share"] = max(s)
        entry["splits_meeting_goal"] = sum(
            1 for a, b in zip(q, s, strict=True) if a >= goal.quality and b <= goal.max_strong_share
        )
        entry["splits_quality_held"] = sum(1 for a in q if a >= goal.quality)
        entry["mean_meets_goal"] = (
            entry["mean_quality"] >= goal.quality
            and entry["mean_strong_share"] <= goal.max_strong_share
        )
    return {"seeds": sorted(per_seed), "test_fraction": report.test_fraction, "policies": policies}
