"""The harness: items through a real `Router`, figures from the decision records.

For each policy a fresh `Router` is built from the policy's config, with the replay backend
(or, live, litellm's) and the policy's classifiers and validators. Each item is one call,
``router.acompletion(model, [user prompt], metadata={"eval_item": id, **item.metadata})``;
what the call cost, which deployments it reached, whether it escalated or went to review,
all come from its decision record (`router.get_decision`). Whether the served answer is
correct is the only thing the harness adds: the dataset's label for the model that served it
(replay), or the scorer's verdict on the answer text (live, or replay without labels).

Replay runs on a `router.testing.FakeClock` advanced one second per item: deterministic, and
the engine's time-windowed state (the retry budget, breakers) sees traffic at a realistic
pace rather than thousands of calls in one instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router._eval._data import Item
from router._eval._replay import ITEM_KEY

if TYPE_CHECKING:
    from router._backend import Backend
    from router._decision import Decision
    from router._eval._policies import PolicySpec
    from router._observe import Observer

__all__ = ["ItemResult", "Judge", "RunResult", "Runner"]

Judge = Callable[[Item, "str | None", Any], bool]
"""(item, serving deployment or None, response or None) -> correct."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's call, read from its decision record."""

    id: str
    correct: bool
    cost_usd: float
    deployment: str | None
    reached_strong: bool
    escalated: bool
    review: bool
    failed: bool
    route: str | None = None
    outcome: str = "success"


@dataclass
class RunResult:
    """One policy's run over a list of items."""

    name: str
    family: str
    setting: str
    items: list[ItemResult] = field(default_factory=list)
    note: str = ""
    target: float | None = None
    train_share: float | None = None
    train_quality: float | None = None
    """Cross-validated quality on train at the fitted setting (the expected quality)."""
    expected_low: float | None = None
    expected_high: float | None = None
    """95% interval of the quality on a batch of new items (the calibration margin's view)."""
    bound: float | None = None
    confidence: float | None = None
    in_sample_quality: float | None = None
    """The final model on its own training items: the optimistic training figure."""

    def fitted_from(self, found: Any, in_sample: float | None = None) -> None:
        """Copy a fitted `Threshold`'s figures."""
        self.train_share = found.train_share
        self.train_quality = found.train_quality
        self.expected_low, self.expected_high = found.low, found.high
        self.bound, self.confidence = found.bound, found.confidence
        self.in_sample_quality = in_sample

    @property
    def n(self) -> int:
        return len(self.items)

    def _share(self, hits: int) -> float:
        return hits / self.n if self.n else 0.0

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.items)

    @property
    def accuracy(self) -> float:
        return self._share(self.correct)

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.items)

    @property
    def cost_per_item(self) -> float:
        return self.cost_usd / self.n if self.n else 0.0

    @property
    def cost_per_correct(self) -> float | None:
        return self.cost_usd / self.correct if self.correct else None

    @property
    def strong_share(self) -> float:
        """Share of calls with an attempt on a strong deployment (escalated ones included)."""
        return self._share(sum(r.reached_strong for r in self.items))

    @property
    def escalation_rate(self) -> float:
        return self._share(sum(r.escalated for r in self.items))

    @property
    def review_rate(self) -> float:
        return self._share(sum(r.review for r in self.items))

    @property
    def failure_rate(self) -> float:
        return self._share(sum(r.failed for r in self.items))

    def row(self, strong_accuracy: float | None) -> dict[str, Any]:
        """The figures as a flat dict (rates are fractions, costs USD)."""
        quality = self.accuracy / strong_accuracy if strong_accuracy else None
        return {
            "policy": self.name,
            "family": self.family,
            "setting": self.setting,
            "items": self.n,
            "accuracy": self.accuracy,
            "quality_vs_strong": quality,
            "cost_usd": self.cost_usd,
            "cost_per_item_usd": self.cost_per_item,
            "cost_per_correct_usd": self.cost_per_correct,
            "strong_share": self.strong_share,
            "escalation_rate": self.escalation_rate,
            "review_rate": self.review_rate,
            "failure_rate": self.failure_rate,
            "target": self.target,
            "train_share": self.train_share,
            "train_quality": self.train_quality,
            "expected_low": self.expected_low,
            "expected_high": self.expected_high,
            "bound": self.bound,
            "confidence": self.confidence,
            "in_sample_quality": self.in_sample_quality,
            "note": self.note,
        }


def read_decision(
    item: Item,
    decision: Decision | None,
    correct: bool,
    strong: Collection[str],
    failed: bool = False,
) -> ItemResult:
    """An item's result from its call's decision record."""
    if decision is None:
        return ItemResult(item.id, False, 0.0, None, False, False, False, True, outcome="error")
    return ItemResult(
        id=item.id,
        correct=correct and not failed,
        cost_usd=decision.cost_usd,
        deployment=decision.deployment,
        reached_strong=any(a.deployment in strong for a in decision.attempts),
        escalated=any(e.to_group is not None for e in decision.escalations),
        review=decision.outcome == "needs_review",
        failed=failed,
        route=decision.route,
        outcome=decision.outcome,
    )


class Runner:
    """Runs policies over items through real routers (see the module docstring)."""

    def __init__(
        self,
        backend: Backend | None,
        *,
        strong: Collection[str],
        judge: Judge,
        seed: int = 0,
        replay: bool = True,
        observer: Callable[[PolicySpec], Any] | None = None,
        advance: Callable[[int], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.backend = backend
        self.strong = frozenset(strong)
        self.judge = judge
        self.seed = seed
        self.replay = replay
        self.observer = observer
        self.advance = advance
        """Called with the number of items done after each item (a progress bar)."""
        self.concurrency = max(1, concurrency)

    def router_for(self, spec: PolicySpec) -> Any:
        """A fresh `Router` over the policy's config (fresh health and budget state)."""
        from router._config import Config
        from router._router import Router
        from router.testing import FakeClock

        observer: Observer | None = self.observer(spec) if self.observer is not None else None
        config = spec.config
        if not isinstance(config, Config):
            config = Config.from_dict(config, source=f"<eval policy {spec.name}>")
        return Router(
            config,
            backend=self.backend,
            clock=FakeClock() if self.replay else None,
            seed=self.seed,
            observer=observer,
            # Replay: no exporter from the environment (one run per policy would flood it);
            # observers given explicitly still see every record. Live: the config decides.
            telemetry=not self.replay,
            classifiers=dict(spec.classifiers),
            validators=dict(spec.validators),
        )

    async def _one(self, router: Any, spec: PolicySpec, item: Item) -> ItemResult:
        from router._decision import get_decision
        from router._errors import NeedsReview

        metadata: dict[str, Any] = {**item.metadata, ITEM_KEY: item.id}
        messages = [{"role": "user", "content": item.prompt}]
        try:
            response = await router.acompletion(spec.model, messages, metadata=metadata)
        except NeedsReview as exc:  # on_exhausted = "raise": the answer is still there
            decision = get_decision(exc)
            served = decision.deployment if decision is not None else None
            return read_decision(
                item, decision, self.judge(item, served, exc.response), self.strong
            )
        except Exception as exc:  # a failed call is a wrong answer that still cost money
            return read_decision(item, get_decision(exc), False, self.strong, failed=True)
        decision = get_decision(response)
        served = decision.deployment if decision is not None else None
        correct = self.judge(item, served, response)
        _record_outcome(router, decision, correct)
        return read_decision(item, decision, correct, self.strong)

    async def run(self, spec: PolicySpec, items: Sequence[Item]) -> RunResult:
        """One policy over `items`, in order."""
        router = self.router_for(spec)
        result = RunResult(spec.name, spec.family, spec.setting, note=spec.note)
        result.target = spec.target
        if spec.fitted is not None:
            result.fitted_from(spec.fitted, spec.in_sample_quality)
        if self.concurrency == 1:
            for item in items:
                result.items.append(await self._one(router, spec, item))
                if self.replay:
                    router.clock.advance(1.0)
                if self.advance is not None:
                    self.advance(1)
            return result
        gate = asyncio.Semaphore(self.concurrency)

        async def bounded(item: Item) -> ItemResult:
            async with gate:
                done = await self._one(router, spec, item)
                if self.advance is not None:
                    self.advance(1)
                return done

        result.items.extend(await asyncio.gather(*(bounded(it) for it in items)))
        return result


def _record_outcome(router: Any, decision: Decision | None, correct: bool) -> None:
    """With a record file, the verdict goes beside the call (``router review`` lists the
    routed failures; ``router eval`` can read the file back as a dataset)."""
    recorder = getattr(router, "observer", None)
    write = getattr(recorder, "outcome", None)
    response = decision.response if decision is not None else None
    if write is None or response is None or response.id is None:
        return
    from router._decision import OutcomeRecord

    write(
        OutcomeRecord(
            "correct" if correct else "wrong",
            ts=decision.started_at if decision is not None else 0.0,
            call=response.id,
            note="router eval: the dataset's label (live: the scorer's verdict)",
        )
    )


def replay_judge(bindings: Mapping[str, str], scorer: Any = None) -> Judge:
    """Correct = the dataset's label for the serving deployment's model, else the scorer."""
    from router._answers import content_of

    def judge(item: Item, deployment: str | None, response: Any) -> bool:
        if deployment is None:
            return False
        model = bindings.get(deployment, deployment)
        if model in item.correct:
            return item.correct[model]
        if scorer is None:
            raise LookupError(f"item {item.id!r} has no label for model {model!r}; pass a scorer")
        return bool(scorer(content_of(response), item))

    return judge


def live_judge(scorer: Any) -> Judge:
    """Correct = the scorer's verdict on the served answer's text."""
    from router._answers import content_of

    def judge(item: Item, deployment: str | None, response: Any) -> bool:
        if response is None:
            return False
        return bool(scorer(content_of(response), item))

    return judge
