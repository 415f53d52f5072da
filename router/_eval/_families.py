"""The learned policy families, fitted on the training items only: classifier-first (a
`PromptGainModel` over the prompt, before the call) and the cascade (the weak answer checked by
hard rules and a learned answer-quality score). Each is a `Family` whose scores are
out-of-fold, whose specs route through the same `router._learned.LearnedPolicy` inference a
production router loads, and whose `artifact` is the JSON document ``router eval fit``
exports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from router._answers import FEATURE_NAMES, answer_features
from router._eval._data import Item
from router._eval._learn import curve_area, out_of_fold, repeated_out_of_fold, repeats_for
from router._eval._models import AnswerConfidence, PromptGainModel
from router._eval._spec import (
    WEAK_DEPLOYMENT,
    Family,
    PolicySpec,
    base_config,
    label_route,
    routes_config,
)
from router._learned import (
    FORMAT,
    LearnedPolicy,
    answer_validator,
    request_text,
    rule_problem,
)

__all__ = ["ANSWER_RULES", "cascade_family", "classifier_family", "route_document"]


TEXT_CANDIDATES: tuple[tuple[str, ...], ...] = (("words",), ("chars",))
"""The prompt text blocks classifier-first may read (`PromptGainModel`'s ``text``): each
fit keeps the candidate whose out-of-fold routing curve on its training items has the larger
area (`router._eval._learn.curve_area`; on a tie the first, cheaper one). Cross-validated on
MMLU training halves, character n-grams within words routed better than word TF-IDF (the
strong share a 95% policy needs at confidence 0.9: 51.3% against 53.2% on split 0's
training half; scripts/eval_mmlu_classifier.py); the choice is made per fit, on the items
it is given, so it holds no test item and follows the data."""


def classifier_family(
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

    def scorer(text: tuple[str, ...]) -> Callable[[list[int], list[int]], list[float]]:
        def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
            model = PromptGainModel(categorical, seed, text).fit(
                [prompts[i] for i in rows],
                [metadata[i] for i in rows],
                [weak[i] for i in rows],
                [strong[i] for i in rows],
            )
            return model.score([prompts[i] for i in score_rows], [metadata[i] for i in score_rows])

        return fit_score

    first = {t: out_of_fold(prompts, scorer(t), seed) for t in TEXT_CANDIDATES}
    areas = {t: curve_area(first[t], weak, strong) for t in TEXT_CANDIDATES}
    text = max(TEXT_CANDIDATES, key=lambda t: areas[t])
    gain_oof = first[text]
    gain_repeats = [
        out_of_fold(prompts, scorer(text), seed, repeat)
        for repeat in range(1, repeats_for(len(prompts)))
    ]
    choice = (
        "text "
        + "+".join(text)
        + " (out-of-fold curve area "
        + ", ".join(f"{'+'.join(t)} {areas[t]:.4f}" for t in TEXT_CANDIDATES)
        + ")"
    )
    gain_model = PromptGainModel(categorical, seed, text).fit(prompts, metadata, weak, strong)
    gain_doc = route_document(
        gain_model, math.inf, dataset=name, items=len(train), seed=seed, chosen=choice
    )
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
            routes_config(
                label_route("classifier-first", "prompt-gain"),
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
        choice=choice,
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


def cascade_family(
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
