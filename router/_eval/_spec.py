"""What every routing policy of the eval is made of: the two priced deployments, `PolicySpec`
(a router config plus the python classifiers and validators it registers), `Family` (a
tunable policy: training scores and a spec for any threshold) and `Fitted` (one split's fit).

The policies themselves are fitted in `router._eval._policies` (baselines, rules, oracle)
and `router._eval._families` (the learned ones: classifier-first and cascade).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from router._eval._data import Item
from router._eval._learn import Threshold, fit_threshold, share_thresholds
from router._eval._replay import ITEM_KEY

__all__ = [
    "BINDINGS",
    "GENERIC_TRIGGERS",
    "PRICES",
    "STRONG_DEPLOYMENT",
    "WEAK_DEPLOYMENT",
    "Family",
    "Fitted",
    "PolicySpec",
    "base_config",
    "coin",
    "item_of",
    "label_route",
    "routes_config",
]

WEAK_DEPLOYMENT = "mixtral-8x7b"
STRONG_DEPLOYMENT = "gpt-4-1106"
PRICES: Mapping[str, Mapping[str, Any]] = {
    WEAK_DEPLOYMENT: {
        "model": "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
        "input_cost_per_token": 6e-07,
        "output_cost_per_token": 6e-07,
        "source": "litellm 1.110.2 price map, together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
    },
    STRONG_DEPLOYMENT: {
        "model": "gpt-4-1106-preview",
        "input_cost_per_token": 1e-05,
        "output_cost_per_token": 3e-05,
        "source": "litellm 1.110.2 price map, gpt-4-1106-preview (OpenAI list price)",
    },
}
"""The two deployments' models and prices ($ per token), and where the prices come from."""
BINDINGS: Mapping[str, str] = {WEAK_DEPLOYMENT: "weak", STRONG_DEPLOYMENT: "strong"}
"""Replay bindings: deployment name -> dataset model."""
GENERIC_TRIGGERS = ("empty", "length", "refusal")


def base_config() -> dict[str, Any]:
    """Two groups, ``weak`` and ``strong``, one priced deployment each; production defaults."""
    deployments = [
        {
            "name": name,
            "model": info["model"],
            "input_cost_per_token": info["input_cost_per_token"],
            "output_cost_per_token": info["output_cost_per_token"],
            "groups": [BINDINGS[name]],
        }
        for name, info in PRICES.items()
    ]
    return {"deployments": deployments}


def item_of(request: Mapping[str, Any]) -> str:
    """The dataset item id a request carries in its metadata."""
    metadata = request.get("metadata")
    return str(metadata.get(ITEM_KEY)) if isinstance(metadata, Mapping) else ""


def coin(seed: int, item_id: str) -> float:
    """A seeded uniform draw in [0, 1) per item: the random mix's coin."""
    digest = hashlib.sha256(f"coin\x00{seed}\x00{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class PolicySpec:
    """One policy: the router it runs on and how it was fitted."""

    name: str
    family: str
    setting: str
    model: str
    config: Any
    """A config dict (`Config.from_dict`) or a loaded `router.Config`."""
    classifiers: Mapping[str, Callable[[Mapping[str, Any]], Any]] = field(default_factory=dict)
    validators: Mapping[str, Callable[[Any, Mapping[str, Any]], Any]] = field(default_factory=dict)
    target: float | None = None
    """The quality target its setting was fitted for (None: not fitted)."""
    fitted: Threshold | None = None
    note: str = ""
    threshold: float | None = None
    """The family's threshold this spec was built with (None for the baselines)."""
    in_sample_quality: float | None = None
    """Training quality of the final model on its own training items at this setting."""


def routes_config(*routes: Mapping[str, Any], classifiers: Mapping[str, Any] | None = None) -> Any:
    config = base_config()
    config["routes"] = [*routes, {"name": "default", "group": "weak"}]
    if classifiers:
        config["classifiers"] = dict(classifiers)
    return config


def label_route(name: str, classifier: str) -> dict[str, Any]:
    return {
        "name": name,
        "classifier": classifier,
        "classes": {"strong": "strong", "weak": "weak"},
    }


@dataclass
class Family:
    """A tunable policy family: training scores, and a spec for any threshold."""

    key: str
    label: str
    build: Callable[[float, str], PolicySpec]
    """(threshold, name) -> spec; route strong (or escalate) when score >= threshold."""
    scores: list[float]
    """Training scores (out-of-fold for learned ones)."""
    forced: list[bool] | None = None
    """Training items routed strong at every threshold (failed hard validators)."""
    prime: Callable[[Sequence[Item]], None] | None = None
    """Batch-computes the policy's per-prompt scores for items about to be routed (the same
    function the router calls per request, memoised; it reads prompts and answers only)."""
    in_sample: list[float] | None = None
    """The final model's scores on its own training items (the optimistic training figure)."""
    artifact: Callable[[float], dict[str, Any]] | None = None
    """threshold -> the `router._learned` document of this family (learned families only)."""
    confidence: float | None = None
    new_items: int | None = None
    repeats: list[list[float]] = field(default_factory=list)
    """More out-of-fold training scores under other fold assignments (learned families):
    the threshold is fitted on the average curve (`fit_threshold`'s ``repeats``)."""
    choice: str = ""
    """What the family chose by cross-validation on the training items (e.g. its features)."""

    def fitted(
        self,
        weak: Sequence[bool],
        strong: Sequence[bool],
        target: float,
        confidence: float | str | None = "family",
    ) -> tuple[Threshold, PolicySpec]:
        """The cheapest setting reaching `target` on the training split (at the family's
        confidence unless `confidence` is given; None: no margin; see `fit_threshold`)."""
        level = self.confidence if confidence == "family" else confidence
        assert level is None or isinstance(level, float)
        found = fit_threshold(
            self.scores,
            weak,
            strong,
            target,
            self.forced,
            confidence=level,
            new_items=self.new_items,
            repeats=self.repeats,
        )
        suffix = ""
        if level != self.confidence:
            suffix = ", no margin" if level is None else f", confidence {level:g}"
        name = f"{self.label} (fitted for {target:.0%}{suffix})"
        spec = replace(self.build(found.value, name), threshold=found.value)
        note = "" if found.reached else f"{target:.0%} not reached on train; best setting used"
        in_sample = self.in_sample_quality(weak, strong, found.value)
        spec = replace(spec, target=target, fitted=found, note=note or spec.note)
        return found, replace(spec, in_sample_quality=in_sample)

    def in_sample_quality(
        self, weak: Sequence[bool], strong: Sequence[bool], value: float
    ) -> float | None:
        """Training quality of the final model at `value` on its own training items."""
        scores = self.in_sample if self.in_sample is not None else self.scores
        forced = self.forced or [False] * len(scores)
        hits = sum(
            (s if (f or x >= value) else w)
            for x, f, w, s in zip(scores, forced, weak, strong, strict=True)
        )
        total = sum(strong)
        return hits / total if total else None

    def curve(self, shares: Sequence[float]) -> list[PolicySpec]:
        """Specs sending about each share of training items to the strong model."""
        values = share_thresholds(self.scores, shares)
        out = []
        for share, value in zip(shares, values, strict=True):
            spec = self.build(value, f"{self.label} @ {share:.0%} train share")
            out.append(replace(spec, threshold=value))
        return out


@dataclass
class Fitted:
    """Everything fitted on one training split."""

    dataset: str
    seed: int
    baselines: list[PolicySpec]
    families: list[Family]
    weak: list[bool]
    strong: list[bool]
    notes: list[str] = field(default_factory=list)
