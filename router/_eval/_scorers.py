"""Scorers: is an answer right? For live runs and for recorded answers without labels.

A scorer is ``(answer text, item) -> bool``. Built from a spec string:

- ``exact``: the answer equals the item's ``reference``, ignoring case, surrounding
  whitespace and runs of whitespace;
- ``regex:PATTERN``: the pattern is searched in the answer (``re.search``, dot matches
  newlines); if it has a group and the item a reference, group 1 must equal the reference
  (as ``exact``), so ``regex:#### (\\d+)`` grades GSM8K-style answers;
- ``jsonschema:PATH``: the answer (a fenced ```json block is unwrapped) parses as JSON and
  validates against the JSON schema in the file at PATH;
- ``module:function``: any callable taking ``(answer, item)``; a truthy result is correct.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router._eval._data import Item

__all__ = ["Scorer", "ScorerError", "make_scorer", "normalise"]

Scorer = Callable[[str, Item], bool]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


class ScorerError(ValueError):
    """A scorer spec cannot be used, or an item lacks what the scorer needs."""


def normalise(text: str) -> str:
    """Case-folded, whitespace-collapsed text."""
    return " ".join(text.split()).casefold()


def _reference(item: Item) -> str:
    if item.reference is None:
        raise ScorerError(f"item {item.id!r} has no 'reference' to compare with")
    return item.reference


def exact(answer: str, item: Item) -> bool:
    """The answer equals the reference (see `normalise`)."""
    return normalise(answer) == normalise(_reference(item))


def _regex(pattern: str) -> Scorer:
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise ScorerError(f"regex scorer: not a valid pattern: {exc}") from None

    def score(answer: str, item: Item) -> bool:
        match = compiled.search(answer)
        if match is None:
            return False
        if compiled.groups and item.reference is not None:
            return normalise(match.group(1) or "") == normalise(item.reference)
        return True

    return score


def _jsonschema(path: str) -> Scorer:
    import jsonschema

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScorerError(f"jsonschema scorer: cannot read {path}: {exc}") from None
    validator = jsonschema.Draft202012Validator(schema)

    def score(answer: str, item: Item) -> bool:
        fenced = _FENCE.match(answer)
        try:
            document = json.loads(fenced.group(1) if fenced else answer)
        except ValueError:
            return False
        return bool(validator.is_valid(document))

    return score


def _callable(path: str) -> Scorer:
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ScorerError(f"scorer {path!r}: {exc}") from None
    if not callable(fn):
        raise ScorerError(f"scorer {path!r} is not callable")

    def score(answer: str, item: Item) -> bool:
        result: Any = fn(answer, item)
        return bool(result)

    return score


def make_scorer(spec: str) -> Scorer:
    """A scorer from its spec (see the module docstring)."""
    if spec == "exact":
        return exact
    kind, sep, rest = spec.partition(":")
    if sep and kind == "regex":
        return _regex(rest)
    if sep and kind == "jsonschema":
        return _jsonschema(rest)
    if sep and rest and kind and all(p.isidentifier() for p in kind.split(".")):
        return _callable(spec)
    raise ScorerError(
        f"unknown scorer {spec!r}: use exact, regex:PATTERN, jsonschema:PATH or module:function"
    )
