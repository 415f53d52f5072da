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

The shared pieces (the priced deployments, `PolicySpec`, `Family`, `Fitted`) live in
`router._eval._spec`; the learned families (classifier-first, cascade) in
`router._eval._families`; this module fits them all (`fit`) and builds the oracle.

`fit` receives the training items only. Tunable settings (the mix's share, N, the subject
list, the classifier and confidence thresholds) come from `router._eval._learn.fit_threshold`
on training scores: out-of-fold for learned models, so no setting is fitted on answers the
model was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from router._eval._data import Item
from router._eval._families import cascade_family, classifier_family
from router._eval._learn import out_of_fold
from router._eval._spec import (
    BINDINGS,
    GENERIC_TRIGGERS,
    PRICES,
    STRONG_DEPLOYMENT,
    WEAK_DEPLOYMENT,
    Family,
    Fitted,
    PolicySpec,
    base_config,
    coin,
    item_of,
    label_route,
    routes_config,
)

__all__ = [
    "BINDINGS",
    "PRICES",
    "STRONG_DEPLOYMENT",
    "WEAK_DEPLOYMENT",
    "Family",
    "Fitted",
    "PolicySpec",
    "base_config",
    "fit",
    "item_of",
    "oracle_policy",
]


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
            routes_config(
                label_route("random-mix", "random-mix"),
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
            return PolicySpec(label, "rule:length", "never", "auto", routes_config())
        tokens = math.ceil(value)
        route = {"name": "long-prompt", "when": {"min_prompt_tokens": tokens}, "group": "strong"}
        return PolicySpec(
            label, "rule:length", f">= {tokens} prompt tokens", "auto", routes_config(route)
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
                return PolicySpec(label, "rule:subject", "no subject", "auto", routes_config())
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
                routes_config(route),
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
        families.append(classifier_family(name, train, categorical, weak, strong, seed))
    if has_text and wanted("cascade"):
        families.append(cascade_family(name, train, weak, strong, seed))
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
        if family.choice:
            notes.append(f"{family.label}: chosen on the training split: {family.choice}")
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
        routes_config(
            label_route("oracle", "oracle"),
            classifiers={"oracle": {"kind": "python", "callable": "oracle"}},
        ),
        classifiers={"oracle": oracle},
        note="reads each item's correctness labels: an upper bound, not a policy",
    )
