"""The train/test split never leaks: by prompt, seeded, and fitting sees only the train side."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from router._eval._data import Dataset, Item, split
from router._eval._policies import Fitted, fit


def synthetic(n: int = 240, seed: int = 7) -> list[Item]:
    """Items with a subject that predicts who is right, and some repeated prompts."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        subject = ("algebra", "history", "law")[i % 3]
        # Repeats: every 10th item re-asks an earlier question, in another subject row.
        prompt = f"question {i - 5 if i % 10 == 9 else i} about {subject} " + "word " * (i % 13)
        weak_ok = rng.random() < {"algebra": 0.4, "history": 0.8, "law": 0.6}[subject]
        strong_ok = rng.random() < 0.85
        items.append(
            Item(
                id=f"s{i:03d}",
                prompt=prompt,
                metadata={"subject": subject},
                correct={"weak": weak_ok, "strong": strong_ok},
            )
        )
    return items


def _key(item: Item) -> str:
    return " ".join(item.prompt.split()).casefold()


def test_sides_are_disjoint_by_prompt_and_cover_everything() -> None:
    items = synthetic()
    # Same question, different case and spacing: still one question.
    items.append(replace(items[0], id="dup", prompt="  QUESTION 0 about algebra "))
    parts = split(items, 0.5, seed=3)
    assert {it.id for it in parts.train} | {it.id for it in parts.test} == {it.id for it in items}
    assert not {_key(it) for it in parts.train} & {_key(it) for it in parts.test}
    keys = {_key(it) for it in items}
    assert len({_key(it) for it in parts.test}) == math.floor(0.5 * len(keys) + 0.5)


def test_the_split_is_seeded_and_order_free() -> None:
    items = synthetic()
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    a, b = split(items, 0.3, seed=5), split(shuffled, 0.3, seed=5)
    assert {it.id for it in a.test} == {it.id for it in b.test}
    assert {it.id for it in split(items, 0.3, seed=6).test} != {it.id for it in a.test}


def _fingerprint(fitted: Fitted, probe: list[Item]) -> list[Any]:
    """What fitting produced: every family's settings, and its routing of probe requests."""
    out: list[Any] = []
    for family in fitted.families:
        for target in (0.9, 0.95):
            threshold, spec = family.fitted(fitted.weak, fitted.strong, target)
            out.append((family.key, target, threshold, spec.setting, spec.config.get("routes")))
            for name, classify in spec.classifiers.items():
                for it in probe:
                    request = {
                        "messages": [{"role": "user", "content": it.prompt}],
                        "metadata": {**it.metadata, "eval_item": it.id},
                    }
                    out.append((name, it.id, classify(request)))
    return out


def test_fitting_never_sees_the_test_side() -> None:
    items = synthetic()
    parts = split(items, 0.5, seed=0)
    test_ids = {it.id for it in parts.test}
    seen: list[str] = []

    def count(prompt: str) -> int:
        seen.append(prompt)
        return len(prompt.split())

    fitted = fit("synthetic", parts.train, seed=0, count_tokens=count)
    assert {_key(it) for it in parts.test}.isdisjoint(" ".join(p.split()).casefold() for p in seen)
    probe = list(parts.test[:15])
    before = _fingerprint(fitted, probe)

    # Scramble every test label and answer: fitting on the same train side gives the same
    # settings and routes the same requests the same way.
    rng = random.Random(9)
    scrambled = [
        replace(it, correct={"weak": rng.random() < 0.5, "strong": rng.random() < 0.5})
        if it.id in test_ids
        else it
        for it in items
    ]
    again = split(scrambled, 0.5, seed=0)
    assert [it.id for it in again.train] == [it.id for it in parts.train]
    refit = fit("synthetic", again.train, seed=0, count_tokens=lambda p: len(p.split()))
    assert _fingerprint(refit, probe) == before


def test_the_routellm_files_split_without_shared_questions() -> None:
    from router._eval._data import load_routellm

    mmlu: Dataset = load_routellm("mmlu")
    parts = split(mmlu, 0.5, seed=0)
    assert len(parts.train) + len(parts.test) == len(mmlu) == 9385
    assert not {_key(it) for it in parts.train} & {_key(it) for it in parts.test}
