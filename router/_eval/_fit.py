"""``router eval fit``: fit a learned policy on labelled data and export it for production.

Fits one family (``classifier-first`` or ``cascade``) on *every* item of the dataset, picks
the cheapest setting whose quality reaches the target at the given confidence on new data
(out-of-fold scores, `router._eval._learn.fit_threshold`), and writes to ``--out``:

- ``NAME.json``: the artifact (`router._learned`, format ``router.learned/1``): data only,
  loaded by the base install without scikit-learn;
- ``NAME.toml``: the providers.toml snippet that uses it (``[classifiers.NAME] kind =
  "learned"`` and a route, or a learned ``escalate_on`` check for the cascade);
- ``NAME.example.toml``: a complete config (the two priced deployments of the eval, the
  snippet) that ``router eval run DATA --config ...`` replays, to see the exported policy
  make its decisions through the production config loader.

The fit's figures (training share and quality, the expected quality on new data with its
interval) are printed and stored in the artifact's ``fitted`` table.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router._eval._data import Dataset, Item
from router._eval._learn import expected_curve
from router._eval._policies import BINDINGS, PRICES, base_config, fit

__all__ = ["FAMILIES", "Check", "Export", "check_export", "export_policy"]

FAMILIES: Mapping[str, str] = {"classifier-first": "classifier", "cascade": "cascade"}
"""``--policy`` names -> the family keys of `router._eval._policies.fit`."""
CURVE_SHARES = tuple(x / 100 for x in range(20, 85, 5))
"""The strong shares the fit's curve reports (the trade on new data at each)."""
NEVER = 1e9
"""The threshold written for "never" (scores are differences of probabilities, in [-1, 1])."""


@dataclass(frozen=True)
class Export:
    """What `export_policy` wrote and the fit's figures."""

    name: str
    artifact: Path
    snippet: Path
    example: Path
    fitted: dict[str, Any]
    snippet_text: str
    spec: Any = None
    """The eval replay's policy at the exported setting (`router._eval._policies.PolicySpec`)."""


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug or "policy"


def export_policy(
    dataset: Dataset,
    policy: str,
    out: str | os.PathLike[str],
    *,
    target: float = 0.95,
    confidence: float | None = 0.9,
    new_items: int | None = None,
    name: str | None = None,
    seed: int = 0,
) -> Export:
    """Fit `policy` on all of `dataset` and write the artifact, snippet and example config."""
    if policy not in FAMILIES:
        raise ValueError(f"--policy {policy!r}: use {' or '.join(FAMILIES)}")
    if not 0 < target <= 1.5:
        raise ValueError(f"--target {target}: a fraction of strong quality, e.g. 0.95")
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError(f"--confidence {confidence}: a probability in (0, 1), e.g. 0.9")
    missing = [m for m in ("weak", "strong") if m not in dataset.models]
    if missing:
        raise ValueError(
            f"{dataset.source or dataset.name}: no labels for model(s) {missing}; the data "
            "needs weak_correct and strong_correct (or correct.weak / correct.strong)"
        )
    items = [it for it in dataset.items if "weak" in it.correct and "strong" in it.correct]
    if len(items) < 20:
        raise ValueError(f"{dataset.name}: {len(items)} items with both labels; need 20 or more")
    if policy == "cascade" and not all("weak" in it.answers for it in items):
        raise ValueError(
            f"{dataset.name}: the cascade reads the weak model's answer, and the data has no "
            "weak answer text (weak_response); fit classifier-first instead"
        )
    key = FAMILIES[policy]
    fitted = fit(
        dataset.name,
        items,
        seed=seed,
        count_tokens=lambda prompt: 0,
        confidence=confidence,
        new_items=new_items,
        only=(key,),
    )
    family = next(f for f in fitted.families if f.key == key)
    assert family.artifact is not None
    found, spec = family.fitted(fitted.weak, fitted.strong, target)
    threshold = NEVER if math.isinf(found.value) else found.value
    document = family.artifact(threshold)
    figures: dict[str, Any] = {
        "dataset": dataset.name,
        "source": dataset.source,
        "items": len(items),
        "seed": seed,
        "policy": policy,
        "target": target,
        "reached": found.reached,
        "confidence": confidence,
        "new_items": found.new_items,
        "train_share": found.train_share,
        "expected_quality": found.train_quality,
        "expected_interval_95": [found.low, found.high],
        "lower_bound": found.bound,
        "in_sample_quality": spec.in_sample_quality,
        "setting": spec.setting,
        "chosen": family.choice,
        "fitted_with": "router eval fit",
        "curve": expected_curve(
            [family.scores, *family.repeats],
            fitted.weak,
            fitted.strong,
            family.forced,
            CURVE_SHARES,
            confidence=confidence or 0.9,
            new_items=found.new_items or new_items,
        ),
    }
    document["fitted"] = figures
    base = name or f"{dataset.name}-{policy}"
    slug = _slug(base)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / f"{slug}.json"
    artifact.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    path_text = artifact.as_posix()
    snippet_text = _snippet(policy, slug, path_text, figures)
    snippet = folder / f"{slug}.toml"
    snippet.write_text(snippet_text, encoding="utf-8")
    example = folder / f"{slug}.example.toml"
    # The example sits beside the artifact, and a path resolves from its config's folder.
    local = _snippet(policy, slug, artifact.name, figures)
    example.write_text(_example(local, slug), encoding="utf-8")
    return Export(slug, artifact, snippet, example, figures, snippet_text, spec)


@dataclass(frozen=True)
class Check:
    """`check_export`'s answer: the items whose decisions agreed, and the first that did not."""

    items: int
    same: int
    config: Path
    differences: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.same == self.items


DECISION_FIELDS = ("deployment", "reached_strong", "escalated", "review", "outcome", "correct")
"""What "the same decision" compares per item: who served, whether the strong model was
called, escalated, sent to review, the call's outcome and the answer's verdict."""


async def check_export(export: Export, items: Sequence[Item]) -> Check:
    """Replay `items` twice: through the eval's own policy at the exported setting, and
    through a `Router` built the way production builds one, from the example config the
    export wrote (``kind = "learned"``, the artifact read from its path). Per item, the two
    decisions must agree on every `DECISION_FIELDS` field."""
    from router._eval._harness import Runner, replay_judge
    from router._eval._replay import ReplayBackend
    from router._eval._spec import STRONG_DEPLOYMENT, PolicySpec
    from router._loading import load_config

    if export.spec is None:
        raise ValueError("check_export: the export carries no eval policy to compare with")
    config = load_config(export.example)

    def runner() -> Runner:
        backend = ReplayBackend(list(items), BINDINGS)
        return Runner(backend, strong={STRONG_DEPLOYMENT}, judge=replay_judge(BINDINGS))

    production = PolicySpec("production", "configured", "-", export.spec.model, config)
    replayed = await runner().run(export.spec, items)
    served = await runner().run(production, items)
    differences: list[str] = []
    same = 0
    for a, b in zip(replayed.items, served.items, strict=True):
        wrong = [f for f in DECISION_FIELDS if getattr(a, f) != getattr(b, f)]
        if not wrong:
            same += 1
        elif len(differences) < 5:
            differences.append(
                f"{a.id}: "
                + ", ".join(f"{f} {getattr(a, f)!r} vs {getattr(b, f)!r}" for f in wrong)
            )
    return Check(len(items), same, export.example, tuple(differences))


def _header(policy: str, figures: Mapping[str, Any]) -> str:
    low, high = figures["expected_interval_95"]
    interval = "" if low is None else f" (95% interval on new data {low:.1%}-{high:.1%})"
    level = figures["confidence"]
    margin = "with no margin" if level is None else f"at confidence {level}"
    return (
        f"# router eval fit: {policy} on {figures['dataset']} ({figures['items']} items), "
        f"target {figures['target']:.0%} of strong quality {margin}\n"
        f"# expected quality on new data {figures['expected_quality']:.1%}"
        f"{interval}, strong share on train {figures['train_share']:.1%}\n"
    )


def _snippet(policy: str, slug: str, path: str, figures: Mapping[str, Any]) -> str:
    head = _header(policy, figures)
    if policy == "classifier-first":
        return (
            f"{head}\n"
            "[[routes]]\n"
            f'name = "{slug}"\n'
            f'classifier = "{slug}"\n'
            'classes = { strong = "strong", weak = "weak" }\n'
            "\n"
            "[[routes]]\n"
            'name = "default"\n'
            'group = "weak"\n'
            "\n"
            f"[classifiers.{slug}]\n"
            'kind = "learned"\n'
            f'path = "{path}"\n'
        )
    return (
        f"{head}\n"
        "[groups.weak]\n"
        'escalate_to = "strong"\n'
        f'escalate_on = ["length", "learned:{slug}"]\n'
        "max_escalations = 1\n"
        'on_exhausted = "review"\n'
        "\n"
        f"[classifiers.{slug}]\n"
        'kind = "learned"\n'
        f'path = "{path}"\n'
        'group = "weak"          # the group whose answers the model was fitted on\n'
    )


def _example(snippet: str, slug: str) -> str:
    lines = [
        f"# A complete config around the {slug} snippet: the eval's two priced deployments.",
        "# Replay it: router eval run DATA --config THIS_FILE --policy auto (or weak).",
        "",
    ]
    for deployment in base_config()["deployments"]:
        info = PRICES[deployment["name"]]
        lines += [
            "[[deployments]]",
            f'name = "{deployment["name"]}"',
            f'model = "{info["model"]}"',
            f"input_cost_per_token = {info['input_cost_per_token']!r}",
            f"output_cost_per_token = {info['output_cost_per_token']!r}",
            f'groups = ["{BINDINGS[deployment["name"]]}"]',
            "",
        ]
    return "\n".join(lines) + "\n" + snippet
