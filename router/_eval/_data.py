"""Evaluation datasets: the file format, loaders, and a leak-free train/test split.

The format is deliberately small. One item per JSONL line (or CSV row):

- ``prompt`` (required): the user message sent to the router;
- ``id`` (optional): a unique name; default ``<file stem>-<line number>``;
- ``reference`` (optional): the expected answer, for scorers (live mode, or unlabelled replay);
- ``metadata`` (optional, an object): passed as the call's ``metadata`` (rules can match it);
- ``answers`` (optional, model -> text): each model's recorded answer, for replay;
- ``correct`` (optional, model -> true/false): each model's correctness label, for replay.

In CSV the same fields are columns: ``<model>_response`` (or ``<model>_answer``) and
``<model>_correct`` per model, and every other column (``subject``...) goes to ``metadata``.
The two RouteLLM files under ``data/routellm`` are CSV files of exactly this shape, so they
load with the generic loader; `load_routellm` only adds their provenance.

The split assigns *prompts*, not rows, to a side: items with the same prompt text (MMLU has
72 repeated questions) always land together, so a test question is never seen in training.
The assignment is a seeded hash of the prompt: stable across runs, machines and file order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ROUTELLM",
    "Dataset",
    "DatasetError",
    "Item",
    "Split",
    "load_dataset",
    "load_routellm",
    "routellm_dir",
    "split",
    "write_jsonl",
]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class DatasetError(ValueError):
    """A dataset file cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Item:
    """One prompt with what is known about each model's answer to it."""

    id: str
    prompt: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None
    answers: Mapping[str, str] = field(default_factory=dict)
    """Recorded answer text per dataset model."""
    correct: Mapping[str, bool] = field(default_factory=dict)
    """Correctness label per dataset model."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named list of items and the dataset models they carry answers or labels for."""

    name: str
    items: tuple[Item, ...]
    models: tuple[str, ...]
    """Dataset model keys (``weak``, ``strong``...) in first-seen order."""
    source: str = ""
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Split:
    """A train/test split of a dataset (see `split`)."""

    train: tuple[Item, ...]
    test: tuple[Item, ...]
    seed: int
    test_fraction: float


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DatasetError(f"{where}: a correctness label must be true or false (got {value!r})")


def _item(raw: Mapping[str, Any], default_id: str, where: str) -> Item:
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DatasetError(f"{where}: 'prompt' must be a non-empty string")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise DatasetError(f"{where}: 'metadata' must be an object")
    answers = raw.get("answers") or {}
    if not isinstance(answers, Mapping) or not all(isinstance(v, str) for v in answers.values()):
        raise DatasetError(f"{where}: 'answers' must map model names to answer text")
    correct = raw.get("correct") or {}
    if not isinstance(correct, Mapping):
        raise DatasetError(f"{where}: 'correct' must map model names to true/false")
    reference = raw.get("reference")
    unknown = set(raw) - {"id", "prompt", "metadata", "reference", "answers", "correct"}
    if unknown:
        raise DatasetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return Item(
        id=str(raw.get("id") or default_id),
        prompt=prompt,
        metadata=dict(metadata),
        reference=None if reference is None else str(reference),
        answers={str(k): v for k, v in answers.items()},
        correct={str(k): _flag(v, f"{where}: correct.{k}") for k, v in correct.items()},
    )


def _jsonl(path: Path) -> list[Item]:
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                raw = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{where}: not JSON ({exc})") from None
            if not isinstance(raw, Mapping):
                raise DatasetError(f"{where}: each line must be a JSON object")
            items.append(_item(raw, f"{path.stem}-{number}", where))
    return items


def _csv(path: Path) -> list[Item]:
    items = []
    # RouteLLM's responses run to several KB; the csv module's default field limit is 128 KB.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for number, row in enumerate(reader, 2):  # line 1 is the header
            where = f"{path}:{number}"
            raw: dict[str, Any] = {"answers": {}, "correct": {}, "metadata": {}}
            for column, value in row.items():
                if column is None:
                    raise DatasetError(f"{where}: more fields than header columns")
                if column in ("id", "prompt", "reference"):
                    raw[column] = value
                elif column.endswith(("_response", "_answer")):
                    raw["answers"][column.rsplit("_", 1)[0]] = value
                elif column.endswith("_correct"):
                    if value != "":
                        raw["correct"][column.rsplit("_", 1)[0]] = value
                else:
                    raw["metadata"][column] = value
            items.append(_item(raw, f"{path.stem}-{number - 1:05d}", where))
    return items


def load_dataset(path: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load a ``.jsonl`` or ``.csv`` dataset (see the module docstring for the format)."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"{file}: file not found")
    if file.suffix.lower() == ".csv":
        items = _csv(file)
    elif file.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        items = _jsonl(file)
    else:
        raise DatasetError(f"{file}: unknown format (use .jsonl or .csv)")
    if not items:
        raise DatasetError(f"{file}: no items")
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id in seen:
            raise DatasetError(
                f"{file}: duplicate id {item.id!r} (items {seen[item.id]} and {index})"
            )
        seen[item.id] = index
    models = tuple(dict.fromkeys(m for it in items for m in (*it.answers, *it.correct)))
    return Dataset(name or file.stem, tuple(items), models, str(file))


def write_jsonl(path: str | os.PathLike[str], items: Iterable[Item]) -> None:
    """Items in the JSONL dataset format (`load_dataset` reads them back unchanged)."""
    with open(path, "w", encoding="utf-8") as handle:
        for it in items:
            row: dict[str, Any] = {"id": it.id, "prompt": it.prompt}
            if it.metadata:
                row["metadata"] = dict(it.metadata)
            if it.reference is not None:
                row["reference"] = it.reference
            if it.answers:
                row["answers"] = dict(it.answers)
            if it.correct:
                row["correct"] = dict(it.correct)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


# --- RouteLLM's evaluation data -------------------------------------------------------------

ROUTELLM: Mapping[str, Mapping[str, str]] = {
    "gsm8k": {
        "file": "gsm8k.csv",
        "weak": "Mixtral-8x7B-Instruct-v0.1",
        "strong": "GPT-4 (gpt-4-1106-preview)",
        "answers": "full responses of both models",
    },
    "mmlu": {
        "file": "mmlu.csv",
        "weak": "Mixtral-8x7B-Instruct-v0.1",
        "strong": "GPT-4 (gpt-4-1106-preview)",
        "answers": "correctness labels and subjects only (no answer text)",
    },
}
"""The two shipped datasets (see data/routellm/README.md for provenance and figures)."""


def routellm_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """Where the RouteLLM files are: `given`, else ./data/routellm, else the checkout's copy."""
    if given is not None:
        return Path(given)
    candidates = [Path("data/routellm"), Path(__file__).resolve().parents[2] / "data/routellm"]
    for candidate in candidates:
        if (candidate / "gsm8k.csv").is_file() or (candidate / "mmlu.csv").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetError(f"RouteLLM data not found (looked in {looked}); pass --data DIR")


def load_routellm(name: str, directory: str | os.PathLike[str] | None = None) -> Dataset:
    """``gsm8k`` or ``mmlu`` from data/routellm, with its provenance in `Dataset.notes`."""
    if name not in ROUTELLM:
        raise DatasetError(f"unknown RouteLLM dataset {name!r} (use {', '.join(ROUTELLM)})")
    info = ROUTELLM[name]
    dataset = load_dataset(routellm_dir(directory) / info["file"], name)
    if dataset.models != ("weak", "strong"):
        raise DatasetError(f"{dataset.source}: expected weak_* and strong_* columns")
    notes = (
        f"weak = {info['weak']}, strong = {info['strong']}; {info['answers']}",
        "RouteLLM's evaluation data (lm-sys/RouteLLM, Apache-2.0), a two-thirds sample; "
        "the remaining third is held back by the data's curators, so train and test are "
        "both drawn from this sample",
    )
    return Dataset(dataset.name, dataset.items, dataset.models, dataset.source, notes)


# --- the split ------------------------------------------------------------------------------


def _group_key(item: Item) -> str:
    # Whitespace and case do not make a different question.
    return " ".join(item.prompt.split()).casefold()


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def split(items: Sequence[Item] | Dataset, test_fraction: float = 0.5, seed: int = 0) -> Split:
    """Split by prompt: identical prompts share a side; a seeded hash orders the prompts.

    The first ``round(test_fraction * prompts)`` prompts in hash order are the test side.
    Item order within each side follows the input.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    pool: Iterable[Item] = items.items if isinstance(items, Dataset) else items
    pool = list(pool)
    keys = sorted({_group_key(it) for it in pool}, key=lambda k: _rank(seed, k))
    n_test = min(len(keys) - 1, max(1, math.floor(test_fraction * len(keys) + 0.5)))
    test_keys = set(keys[:n_test])
    train = tuple(it for it in pool if _group_key(it) not in test_keys)
    test = tuple(it for it in pool if _group_key(it) in test_keys)
    return Split(train, test, seed, test_fraction)
