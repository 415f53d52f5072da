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

from router._eval._data import Item
from router._eval._gsm8k import (
    answer_features,
    arithmetic_problem,
    content_of,
    final_answer_problem,
    prompt_of,
)
from router._eval._learn import (
    AnswerConfidence,
    PromptGainModel,
    Threshold,
    fit_threshold,
    out_of_fold,
    share_thresholds,
)
from router._eval._replay import ITEM_KEY

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
CASCADE_TRIGGERS = (
    "empty",
    "length",
    "validator:gsm8k_arithmetic",
    "validator:gsm8k_final_answer",
    "validator:answer_confidence",
)
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

    def fitted(
        self, weak: Sequence[bool], strong: Sequence[bool], target: float
    ) -> tuple[Threshold, PolicySpec]:
        """The cheapest setting reaching `target` on the training split, as a spec."""
        found = fit_threshold(self.scores, weak, strong, target, self.forced)
        name = f"{self.label} (fitted for {target:.0%})"
        spec = replace(self.build(found.value, name), threshold=found.value)
        note = "" if found.reached else f"{target:.0%} not reached on train; best setting used"
        return found, replace(spec, target=target, fitted=found, note=note or spec.note)

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
) -> Fitted:
    """Fit every policy family on the training items (and nothing else).

    `count_tokens` is the router's own prompt counter (the backend's), so the length rule's
    threshold is in the unit the rule is checked in.
    """
    weak, strong = _labels(train)
    prompts = [it.prompt for it in train]
    metadata = [it.metadata for it in train]
    has_text = all("weak" in it.answers for it in train)
    categorical = ("subject",) if all("subject" in it.metadata for it in train) else ()
    baselines = [
        PolicySpec("always-weak", "always-weak", "-", "weak", base_config()),
        PolicySpec("always-strong", "always-strong", "-", "strong", base_config()),
    ]
    families: list[Family] = []
    notes: list[str] = []

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

    families.append(
        Family(
            "random",
            "random mix",
            build_random,
            [1.0 - coin(seed, it.id) for it in train],
        )
    )
    baselines.append(build_random(0.5, "random mix 50%"))

    # Rule: prompt length. The practitioners' first idea; the table shows what it buys.
    lengths = [float(count_tokens(p)) for p in prompts]

    def build_length(value: float, label: str) -> PolicySpec:
        if math.isinf(value):
            return PolicySpec(label, "rule:length", "never", "auto", _routes())
        tokens = math.ceil(value)
        route = {"name": "long-prompt", "when": {"min_prompt_tokens": tokens}, "group": "strong"}
        return PolicySpec(
            label, "rule:length", f">= {tokens} prompt tokens", "auto", _routes(route)
        )

    families.append(
        Family(
            "length",
            "rule: prompt length",
            build_length,
            lengths,
        )
    )

    # Rule: subject. Each subject's gain (strong accuracy - weak accuracy) on train.
    if categorical:
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

    # Classifier-first: expected gain from the prompt, fitted on train.
    def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
        model = PromptGainModel(categorical, seed).fit(
            [prompts[i] for i in rows],
            [metadata[i] for i in rows],
            [weak[i] for i in rows],
            [strong[i] for i in rows],
        )
        return model.score([prompts[i] for i in score_rows], [metadata[i] for i in score_rows])

    gain_oof = out_of_fold(prompts, fit_score, seed)
    gain_model = PromptGainModel(categorical, seed).fit(prompts, metadata, weak, strong)
    gain_cache: dict[tuple[str, str], float] = {}

    def gain_of(request: Mapping[str, Any]) -> float:
        text = prompt_of(request)
        meta = request.get("metadata") or {}
        key = (text, _meta_key(meta, categorical))
        value = gain_cache.get(key)
        if value is None:
            value = gain_cache[key] = gain_model.score([text], [meta])[0]
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
        todo = [
            it for it in items if (it.prompt, _meta_key(it.metadata, categorical)) not in gain_cache
        ]
        if todo:
            values = gain_model.score([it.prompt for it in todo], [it.metadata for it in todo])
            for it, value in zip(todo, values, strict=True):
                gain_cache[(it.prompt, _meta_key(it.metadata, categorical))] = value

    families.append(
        Family(
            "classifier",
            "classifier-first",
            build_classifier,
            gain_oof,
            prime=prime_gain,
        )
    )

    # The escalation cascade.
    if has_text:
        families.append(_cascade(train, weak, strong, seed))
    else:
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
    return Fitted(name, seed, baselines, families, weak, strong, notes)


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


def _cascade(train: Sequence[Item], weak: list[bool], strong: list[bool], seed: int) -> Family:
    """Weak first; validators on its answer escalate; the strong answer is checked again."""
    answers = [it.answers["weak"] for it in train]
    prompts = [it.prompt for it in train]
    features = [answer_features(q, a) for q, a in zip(prompts, answers, strict=True)]
    forced = [
        arithmetic_problem(a) is not None or final_answer_problem(a) is not None or not a.strip()
        for a in answers
    ]

    def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
        model = AnswerConfidence(seed).fit([features[i] for i in rows], [weak[i] for i in rows])
        return [1.0 - p for p in model.probability([features[i] for i in score_rows])]

    scores = out_of_fold(prompts, fit_score, seed)
    model = AnswerConfidence(seed).fit(features, weak)
    weak_model = PRICES[WEAK_DEPLOYMENT]["model"]
    cache: dict[tuple[str, str], float] = {}

    def doubt(question: str, answer: str) -> float:
        key = (question, answer)
        value = cache.get(key)
        if value is None:
            value = cache[key] = 1.0 - model.probability([answer_features(question, answer)])[0]
        return value

    def arithmetic(response: Any, request: Mapping[str, Any]) -> str | None:
        return arithmetic_problem(content_of(response))

    def final(response: Any, request: Mapping[str, Any]) -> str | None:
        return final_answer_problem(content_of(response))

    def build(value: float, label: str) -> PolicySpec:
        def confidence(response: Any, request: Mapping[str, Any]) -> str | None:
            # Fitted on the weak model's answers: another model's answer is not its to judge.
            if getattr(response, "model", None) != weak_model:
                return None
            score = doubt(prompt_of(request), content_of(response))
            if score >= value:
                return f"P(correct) {1.0 - score:.2f} <= {1.0 - value:.2f}"
            return None

        config = base_config()
        config["groups"] = {
            "weak": {
                "escalate_to": "strong",
                "escalate_on": list(CASCADE_TRIGGERS),
                "max_escalations": 1,
                "on_exhausted": "review",
            }
        }
        setting = "hard checks only" if math.isinf(value) else f"P(correct) < {1.0 - value:.2f}"
        return PolicySpec(
            label,
            "cascade",
            f"escalate: checks fail or {setting}",
            "weak",
            config,
            validators={
                "gsm8k_arithmetic": arithmetic,
                "gsm8k_final_answer": final,
                "answer_confidence": confidence,
            },
        )

    def prime(items: Sequence[Item]) -> None:
        todo = [(it.prompt, it.answers["weak"]) for it in items if "weak" in it.answers]
        todo = [pair for pair in todo if pair not in cache]
        if todo:
            values = model.probability([answer_features(q, a) for q, a in todo])
            for pair, p in zip(todo, values, strict=True):
                cache[pair] = 1.0 - p

    return Family(
        "cascade",
        "cascade",
        build,
        scores,
        forced,
        prime=prime,
    )
