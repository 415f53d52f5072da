"""The routing policies compared, each expressed as a real router config, fitted on train only.

Every policy is a `PolicySpec`: a `Router` config (deployments with prices, groups, routes,
classifier and escalation settings), the python classifiers and validators it registers, and
the model string the caller passes. Nothing here routes by itself: the harness sends every
test item through a `Router` built from the spec, and the figures come from the decision
records. The policies:

- ``always-weak`` / ``always-strong``: ``model="weak"`` / ``"strong"``;
- ``random``: a route classifier that flips a seeded coin per item (the mix's share is fitted);
- ``oracle``: a route classifier that *reads the labels* (the weak model when it is right,
  else the strong one when that is right, else the weak one): the upper bound, not a policy;
- ``rule: prompt length``: ``[[routes]] when.min_prompt_tokens = N`` to the strong group;
- ``rule: subject``: ``[[routes]] when.metadata.subject = [...]`` (datasets with a subject);
- ``classifier-first``: a python route classifier over `PromptGainModel`;
- ``cascade``: the weak group answers, ``escalate_on`` validators check the answer and
  escalate to the strong group, whose answer is checked again and goes to human review if it
  fails (``on_exhausted = "review"``).

`fit` receives the training items only. Tunable settings (the mix's share, N, the subject
list, the classifier and confidence thresholds) come from `router._eval._learn.fit_threshold`
on training scores: out-of-fold for learned models, so no setting is fitted on answers the
model was trained on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from router._answers import FEATURE_NAMES, answer_features
from router._eval._data import Item
from router._eval._learn import (
    AnswerConfidence,
    PromptGainModel,
    Threshold,
    fit_threshold,
    out_of_fold,
    repeated_out_of_fold,
    repeats_for,
    share_thresholds,
)
from router._eval._replay import ITEM_KEY
from router._learned import (
    FORMAT,
    LearnedPolicy,
    answer_validator,
    request_text,
    rule_problem,
)

__all__ = [
    "BINDINGS",
    "PRICES",
    "Family",
    "Fitted",
    "PolicySpec",
    "base_config",
    "fit",
    "item_of",
    "oracle_policy",
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


def _routes(*routes: Mapping[str, Any], classifiers: Mapping[str, Any] | None = None) -> Any:
    config = base_config()
    config["routes"] = [*routes, {"name": "default", "group": "weak"}]
    if classifiers:
        config["classifiers"] = dict(classifiers)
    return config


def _label_route(name: str, classifier: str) -> dict[str, Any]:
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


def _labels(items: Sequence[Item]) -> tuple[list[bool], list[bool]]:
    return [bool(it.correct.get("weak")) for it in items], [
        bool(it.correct.get("strong")) for it in items
    ]


def fit(
    name: str,
    train: Sequence[Item],
    *,
    seed: int,
    count_tokens: Callable[[str], int],
    confidence: float | None = None,
    new_items: int | None = None,
    only: Sequence[str] | None = None,
) -> Fitted:
    """Fit every policy family on the training items (and nothing else).

    `count_tokens` is the router's own prompt counter (the backend's), so the length rule's
    threshold is in the unit the rule is checked in. `confidence` and `new_items` set every
    family's calibration margin (see `router._eval._learn.fit_threshold`). `only` fits just
    the named families (``classifier``, ``cascade``...), for ``router eval fit``.
    """
    weak, strong = _labels(train)
    prompts = [it.prompt for it in train]
    has_text = all("weak" in it.answers for it in train)
    categorical = ("subject",) if all("subject" in it.metadata for it in train) else ()
    baselines = [
        PolicySpec("always-weak", "always-weak", "-", "weak", base_config()),
        PolicySpec("always-strong", "always-strong", "-", "strong", base_config()),
    ]
    families: list[Family] = []
    notes: list[str] = []

    def wanted(key: str) -> bool:
        return only is None or key in only

    # Random mix: a seeded coin per item; the share is the tunable.
    def build_random(value: float, label: str) -> PolicySpec:
        share = 0.0 if math.isinf(value) else min(1.0, 1.0 - value)

        def classify(request: Mapping[str, Any]) -> str:
            return "strong" if coin(seed, item_of(request)) < share else "weak"

        return PolicySpec(
            label,
            "random",
            f"strong share {share:.0%}",
            "auto",
            _routes(
                _label_route("random-mix", "random-mix"),
                classifiers={"random-mix": {"kind": "python", "callable": "random-mix"}},
            ),
            classifiers={"random-mix": classify},
        )

    if wanted("random"):
        families.append(
            Family("random", "random mix", build_random, [1.0 - coin(seed, it.id) for it in train])
        )
    baselines.append(build_random(0.5, "random mix 50%"))

    # Rule: prompt length. The practitioners' first idea; the table shows what it buys.
    lengths = [float(count_tokens(p)) for p in prompts] if wanted("length") else []

    def build_length(value: float, label: str) -> PolicySpec:
        if math.isinf(value):
            return PolicySpec(label, "rule:length", "never", "auto", _routes())
        tokens = math.ceil(value)
        route = {"name": "long-prompt", "when": {"min_prompt_tokens": tokens}, "group": "strong"}
        return PolicySpec(
            label, "rule:length", f">= {tokens} prompt tokens", "auto", _routes(route)
        )

    if wanted("length"):
        families.append(Family("length", "rule: prompt length", build_length, lengths))

    # Rule: subject. Each subject's gain (strong accuracy - weak accuracy) on train.
    if categorical and wanted("subject"):
        subjects = [str(it.metadata["subject"]) for it in train]

        def gains(rows: Sequence[int]) -> dict[str, float]:
            by_subject: dict[str, list[int]] = {}
            for i in rows:
                by_subject.setdefault(subjects[i], []).append(int(strong[i]) - int(weak[i]))
            return {k: sum(v) / len(v) for k, v in by_subject.items()}

        gain = gains(range(len(train)))

        def subject_oof(rows: list[int], score_rows: list[int]) -> list[float]:
            # A subject's gain from the other folds: the rule's own items never score it.
            known = gains(rows)
            mean = sum(int(strong[i]) - int(weak[i]) for i in rows) / max(1, len(rows))
            return [known.get(subjects[i], mean) for i in score_rows]

        def build_subject(value: float, label: str) -> PolicySpec:
            chosen = sorted(k for k, g in gain.items() if g >= value)
            if not chosen:
                return PolicySpec(label, "rule:subject", "no subject", "auto", _routes())
            route = {
                "name": "hard-subjects",
                "when": {"metadata": {"subject": chosen}},
                "group": "strong",
            }
            return PolicySpec(
                label,
                "rule:subject",
                f"{len(chosen)} of {len(gain)} subjects",
                "auto",
                _routes(route),
            )

        families.append(
            Family(
                "subject",
                "rule: subject",
                build_subject,
                out_of_fold(prompts, subject_oof, seed),
            )
        )

    if wanted("classifier"):
        families.append(_classifier_first(name, train, categorical, weak, strong, seed))
    if has_text and wanted("cascade"):
        families.append(_cascade(name, train, weak, strong, seed))
    elif not has_text:
        notes.append(
            "cascade: the data records no answer text (labels only), so no check on the "
            "weak answer has anything to read: it never escalates and equals always-weak. "
            "Live, the generic checks (empty, length, refusal) and low_confidence on "
            "logprobs would apply."
        )
        config = base_config()
        config["groups"] = {
            "weak": {
                "escalate_to": "strong",
                "escalate_on": list(GENERIC_TRIGGERS),
                "on_exhausted": "review",
            }
        }
        baselines.append(
            PolicySpec(
                "cascade (no output signal)",
                "cascade",
                "generic checks only",
                "weak",
                config,
                note="no answer text in the data: nothing for the checks to read",
            )
        )
    for family in families:
        family.confidence, family.new_items = confidence, new_items
    return Fitted(name, seed, baselines, families, weak, strong, notes)


def _classifier_first(
    name: str,
    train: Sequence[Item],
    categorical: Sequence[str],
    weak: list[bool],
    strong: list[bool],
    seed: int,
) -> Family:
    """Classifier-first: the expected gain of the strong model from the prompt."""
    prompts = [it.prompt for it in train]
    metadata = [it.metadata for it in train]

    def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
        model = PromptGainModel(categorical, seed).fit(
            [prompts[i] for i in rows],
            [metadata[i] for i in rows],
            [weak[i] for i in rows],
            [strong[i] for i in rows],
        )
        return model.score([prompts[i] for i in score_rows], [metadata[i] for i in score_rows])

    gain_oof, *gain_repeats = repeated_out_of_fold(
        prompts, fit_score, seed, repeats_for(len(prompts))
    )
    gain_model = PromptGainModel(categorical, seed).fit(prompts, metadata, weak, strong)
    gain_doc = route_document(gain_model, math.inf, dataset=name, items=len(train), seed=seed)
    gain_runtime = LearnedPolicy(gain_doc, f"<{name} classifier-first>")
    gain_cache: dict[tuple[str, str], float] = {}

    def gain_of(request: Mapping[str, Any]) -> float:
        text, meta = request_text(request)
        key = (text, _meta_key(meta, categorical))
        value = gain_cache.get(key)
        if value is None:
            value = gain_cache[key] = gain_runtime.score(text, meta)
        return value

    def build_classifier(value: float, label: str) -> PolicySpec:
        def classify(request: Mapping[str, Any]) -> str:
            return "strong" if gain_of(request) >= value else "weak"

        return PolicySpec(
            label,
            "classifier",
            _describe_gain(value),
            "auto",
            _routes(
                _label_route("classifier-first", "prompt-gain"),
                classifiers={"prompt-gain": {"kind": "python", "callable": "prompt-gain"}},
            ),
            classifiers={"prompt-gain": classify},
        )

    def prime_gain(items: Sequence[Item]) -> None:
        for it in items:
            key = (it.prompt, _meta_key(it.metadata, categorical))
            if key not in gain_cache:
                gain_cache[key] = gain_runtime.score(it.prompt, it.metadata)

    def gain_artifact(value: float) -> dict[str, Any]:
        return {**gain_doc, "threshold": value}

    return Family(
        "classifier",
        "classifier-first",
        build_classifier,
        gain_oof,
        prime=prime_gain,
        in_sample=[gain_runtime.score(p, m) for p, m in zip(prompts, metadata, strict=True)],
        artifact=gain_artifact,
        repeats=gain_repeats,
    )


def oracle_policy(labels: Mapping[str, Item]) -> PolicySpec:
    """The oracle: a route classifier that reads the labels of the item it routes.

    The weak model when it is right, else the strong one when that is right, else the weak
    one (both wrong: the cheaper wrong answer). An upper bound, not a policy.
    """

    def oracle(request: Mapping[str, Any]) -> str:
        item = labels.get(item_of(request))
        if item is None:
            return "weak"
        if not item.correct.get("weak") and item.correct.get("strong"):
            return "strong"
        return "weak"

    return PolicySpec(
        "oracle (upper bound)",
        "oracle",
        "reads the labels",
        "auto",
        _routes(
            _label_route("oracle", "oracle"),
            classifiers={"oracle": {"kind": "python", "callable": "oracle"}},
        ),
        classifiers={"oracle": oracle},
        note="reads each item's correctness labels: an upper bound, not a policy",
    )


def _meta_key(metadata: Mapping[str, Any], keys: Sequence[str]) -> str:
    return "\x00".join(str(metadata.get(k, "")) for k in keys)


def _describe_gain(value: float) -> str:
    return "never" if math.isinf(value) else f"expected gain >= {value:+.3f}"


ANSWER_RULES = ("empty", "arithmetic", "final_answer")
"""The cascade's hard checks (`router._learned` rules): every answer failing one escalates."""


def route_document(model: PromptGainModel, threshold: float, **fitted: Any) -> dict[str, Any]:
    """A classifier-first artifact (`router._learned`, role ``route``)."""
    return {
        "format": FORMAT,
        "role": "route",
        "description": "classifier-first: route to the strong model when P(strong right) - "
        "P(weak right), from the prompt, is >= threshold",
        "labels": {"above": "strong", "below": "weak"},
        "threshold": threshold,
        "score": {"plus": "strong", "minus": "weak"},
        "features": model.blocks(),
        "models": model.models(),
        "fitted": fitted,
    }


def _cascade(
    name: str, train: Sequence[Item], weak: list[bool], strong: list[bool], seed: int
) -> Family:
    """Weak first; its answer escalates when a hard check fails or when the expected gain of
    the strong answer, P(strong right | prompt) - P(weak right | prompt, weak answer), is
    over the threshold; the strong answer is checked again (hard checks: review)."""
    answers = [it.answers["weak"] for it in train]
    prompts = [it.prompt for it in train]
    metadata = [it.metadata for it in train]
    features = [answer_features(q, a) for q, a in zip(prompts, answers, strict=True)]
    forced = [rule_problem(a, ANSWER_RULES) is not None for a in answers]

    def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
        gain = PromptGainModel((), seed).fit(
            [prompts[i] for i in rows],
            [metadata[i] for i in rows],
            [weak[i] for i in rows],
            [strong[i] for i in rows],
        )
        right = AnswerConfidence(seed).fit([features[i] for i in rows], [weak[i] for i in rows])
        p_strong = gain.strong_probability([prompts[i] for i in score_rows])
        p_weak = right.probability([features[i] for i in score_rows])
        return [s - w for s, w in zip(p_strong, p_weak, strict=True)]

    scores, *repeats = repeated_out_of_fold(prompts, fit_score, seed, repeats_for(len(prompts)))
    gain = PromptGainModel((), seed).fit(prompts, metadata, weak, strong)
    right = AnswerConfidence(seed).fit(features, weak)
    blocks = gain.blocks()
    offset = sum(
        len(b["vocabulary"]) if b["type"] == "tfidf" else len(b.get("values", ())) or 1
        for b in blocks
    )
    document = {
        **_cascade_shell(),
        "features": [
            *blocks,
            {"type": "answer_features", "set": "math-word-problem/1", "size": len(FEATURE_NAMES)},
        ],
        "models": {"strong": gain.models()["strong"], "weak": right.export(offset)},
        "group": "weak",
        "fitted": {"dataset": name, "items": len(train), "seed": seed},
    }
    runtime = LearnedPolicy(document, f"<{name} cascade>")
    cache: dict[tuple[str, str], float] = {}

    def doubt(question: str, meta: Mapping[str, Any], answer: str) -> float:
        key = (question, answer)
        value = cache.get(key)
        if value is None:
            value = cache[key] = runtime.score(question, meta, answer)
        return value

    def build(value: float, label: str) -> PolicySpec:
        check = answer_validator(
            {**document, "threshold": value}, lambda d: d == WEAK_DEPLOYMENT, score=doubt
        )
        config = base_config()
        config["groups"] = {
            "weak": {
                "escalate_to": "strong",
                "escalate_on": ["length", "validator:learned_answer"],
                "max_escalations": 1,
                "on_exhausted": "review",
            }
        }
        setting = "hard checks only" if math.isinf(value) else f"expected gain >= {value:+.2f}"
        return PolicySpec(
            label,
            "cascade",
            f"escalate: checks fail or {setting}",
            "weak",
            config,
            validators={"learned_answer": check},
        )

    def prime(items: Sequence[Item]) -> None:
        for it in items:
            if "weak" in it.answers:
                doubt(it.prompt, it.metadata, it.answers["weak"])

    def artifact(value: float) -> dict[str, Any]:
        return {**document, "threshold": value}

    in_sample = [runtime.score(q, m, a) for q, m, a in zip(prompts, metadata, answers, strict=True)]
    return Family(
        "cascade",
        "cascade",
        build,
        scores,
        forced,
        prime=prime,
        in_sample=in_sample,
        artifact=artifact,
        repeats=repeats,
    )


def _cascade_shell() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "role": "answer",
        "description": "cascade check on the weak answer: escalate when a hard rule fails, or "
        "when P(strong right | prompt) - P(weak right | prompt, answer) is >= threshold",
        "threshold": math.inf,
        "score": {"plus": "strong", "minus": "weak"},
        "rules": list(ANSWER_RULES),
    }
