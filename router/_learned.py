"""Learned routing policies at run time: a JSON artifact in, a label or a verdict out.

``router eval fit`` writes a policy as data, not code: one JSON file (format
``router.learned/1``) holding the feature recipe (TF-IDF vocabularies of words or of
character n-grams with their idf weights,
one-hot values, length scaling, or a named set of answer features), the fitted models
(logistic-regression coefficients, or the nodes of gradient-boosted trees) and the fitted
threshold. Nothing in it is executed: there is no pickle and no ``eval``, so loading a file
from a path cannot run code. Inference is plain Python (no numpy, no scikit-learn), so a
production process loads it with the base install.

Two roles:

- ``route`` (before the call): ``[classifiers.NAME] kind = "learned"``; the score is
  P(strong right | prompt) - P(weak right | prompt), the expected gain of the strong model;
  the label is ``labels.above`` (e.g. ``strong``) when score >= threshold, else
  ``labels.below``. A route maps the labels to groups with ``classes``.
- ``answer`` (after the call, for cascades): ``escalate_on = ["learned:NAME"]``; the answer
  fails when one of the artifact's hard ``rules`` fails (a wrong calculation, no final
  answer: these apply to every answer) or, for answers served by the classifier's ``group``
  (the model the scores were fitted on), when its score >= threshold.

The eval replay scores with this same module (`LearnedPolicy`), so the policy measured is the
policy that runs.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "ANALYZERS",
    "FORMAT",
    "LearnedError",
    "LearnedPolicy",
    "char_grams",
    "load_policy",
    "tokens",
]

FORMAT = "router.learned/1"
_WORD = re.compile(r"(?u)\b\w\w+\b")
_CACHE: dict[str, tuple[float, int, LearnedPolicy]] = {}


class LearnedError(ValueError):
    """An artifact cannot be used: the message names the file and what is wrong."""


def tokens(text: str, ngrams: int = 1) -> list[str]:
    """Lower-cased words of two or more word characters, and their n-grams up to `ngrams`.

    The fitting side hands this very function to scikit-learn as the analyzer, so the
    vocabulary is built from the tokens inference computes.
    """
    words = _WORD.findall(text.lower())
    if ngrams <= 1:
        return words
    out = list(words)
    for n in range(2, ngrams + 1):
        out.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return out


def char_grams(text: str, low: int = 2, high: int = 5) -> list[str]:
    """Lower-cased character n-grams of `low` to `high` characters within words: each
    whitespace-separated word padded with a space on either side, so a gram never spans two
    words and the padding marks where a word starts and ends (scikit-learn's ``char_wb``).

    Like `tokens`, the fitting side hands this very function to scikit-learn as the analyzer.
    """
    out: list[str] = []
    for word in text.lower().split():
        out.extend(_word_grams(word, low, high))
    return out


def _word_grams(word: str, low: int, high: int) -> list[str]:
    padded = f" {word} "
    size = len(padded)
    return [padded[i : i + n] for n in range(low, min(high, size) + 1) for i in range(size - n + 1)]


WORD_CACHE = 50_000
"""Words whose character n-grams a char_wb block remembers (as vocabulary indices): prompts
reuse words, so scoring one costs a lookup per word instead of a slice and lookup per gram."""


ANALYZERS = ("words", "char_wb")
"""What a tfidf block's ``analyzer`` may name: `tokens` (with ``ngrams``) or `char_grams`
(with ``ngram_range`` [low, high])."""


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


Features = dict[int, float]
"""A sparse feature vector: index -> value (absent = 0)."""


class _Block:
    """One part of the feature vector; `size` columns starting at `offset`."""

    size: int
    offset: int = 0

    def add(self, into: Features, prompt: str, metadata: Mapping[str, Any], answer: str) -> None:
        raise NotImplementedError


class _Tfidf(_Block):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        vocabulary = spec.get("vocabulary")
        idf = spec.get("idf")
        if not isinstance(vocabulary, list) or not isinstance(idf, list):
            raise LearnedError(f"{where}: a tfidf block needs 'vocabulary' and 'idf' lists")
        if len(vocabulary) != len(idf):
            raise LearnedError(f"{where}: 'vocabulary' and 'idf' differ in length")
        self.field = _field(spec, where)
        self.ngrams = int(spec.get("ngrams", 1))
        self.analyzer = str(spec.get("analyzer", "words"))
        if self.analyzer not in ANALYZERS:
            known = ", ".join(ANALYZERS)
            raise LearnedError(f"{where}: unknown analyzer {self.analyzer!r} (known: {known})")
        grams = spec.get("ngram_range", [2, 5])
        if (
            not isinstance(grams, list)
            or len(grams) != 2
            or not all(isinstance(g, int) and g > 0 for g in grams)
            or grams[0] > grams[1]
        ):
            raise LearnedError(f"{where}: 'ngram_range' must be [low, high], 1 <= low <= high")
        self.low, self.high = int(grams[0]), int(grams[1])
        self.sublinear = bool(spec.get("sublinear_tf", True))
        self._words: dict[str, tuple[int, ...]] = {}
        self.index = {str(term): i for i, term in enumerate(vocabulary)}
        self.idf = [float(v) for v in idf]
        self.size = len(vocabulary)

    def add(self, into: Features, prompt: str, metadata: Mapping[str, Any], answer: str) -> None:
        counts: dict[int, int] = {}
        index = self.index
        text = prompt if self.field == "prompt" else answer
        if self.analyzer == "char_wb":
            words = self._words
            for word in text.lower().split():
                found = words.get(word)
                if found is None:
                    grams = _word_grams(word, self.low, self.high)
                    found = tuple(j for j in map(index.get, grams) if j is not None)
                    if len(words) < WORD_CACHE:
                        words[word] = found
                for i in found:
                    counts[i] = counts.get(i, 0) + 1
        else:
            for token in tokens(text, self.ngrams):
                k = index.get(token)
                if k is not None:
                    counts[k] = counts.get(k, 0) + 1
        if not counts:
            return
        values = {
            i: ((1.0 + math.log(c)) if self.sublinear else float(c)) * self.idf[i]
            for i, c in counts.items()
        }
        norm = math.sqrt(sum(v * v for v in values.values()))
        for i, v in values.items():
            into[self.offset + i] = v / norm


class _LogLength(_Block):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        self.field = _field(spec, where)
        self.scale = float(spec.get("scale", 1.0))
        self.size = 1

    def add(self, into: Features, prompt: str, metadata: Mapping[str, Any], answer: str) -> None:
        text = prompt if self.field == "prompt" else answer
        into[self.offset] = math.log1p(len(text)) * self.scale


class _OneHot(_Block):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        values = spec.get("values")
        if not isinstance(spec.get("key"), str) or not isinstance(values, list):
            raise LearnedError(f"{where}: a onehot block needs 'key' and 'values'")
        self.key = str(spec["key"])
        self.values = {str(v): i for i, v in enumerate(values)}
        self.size = len(values)

    def add(self, into: Features, prompt: str, metadata: Mapping[str, Any], answer: str) -> None:
        i = self.values.get(str(metadata.get(self.key, "")))
        if i is not None:
            into[self.offset + i] = 1.0


def _math_answer_features(prompt: str, answer: str) -> list[float]:
    from router._answers import answer_features

    return answer_features(prompt, answer)


ANSWER_FEATURE_SETS: Mapping[str, Callable[[str, str], list[float]]] = {
    "math-word-problem/1": _math_answer_features,
}
"""Named answer-feature functions an artifact may ask for (code in this package, by name)."""


class _AnswerFeatures(_Block):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        name = spec.get("set")
        fn = ANSWER_FEATURE_SETS.get(str(name))
        if fn is None:
            known = ", ".join(ANSWER_FEATURE_SETS)
            raise LearnedError(f"{where}: unknown answer feature set {name!r} (known: {known})")
        self.fn = fn
        self.size = int(spec.get("size", 0))

    def add(self, into: Features, prompt: str, metadata: Mapping[str, Any], answer: str) -> None:
        for i, v in enumerate(self.fn(prompt, answer)):
            if v:
                into[self.offset + i] = float(v)


_BLOCKS: Mapping[str, Callable[[Mapping[str, Any], str], _Block]] = {
    "tfidf": _Tfidf,
    "log_length": _LogLength,
    "onehot": _OneHot,
    "answer_features": _AnswerFeatures,
}


def _field(spec: Mapping[str, Any], where: str) -> str:
    value = spec.get("field", "prompt")
    if value not in ("prompt", "answer"):
        raise LearnedError(f"{where}: 'field' must be 'prompt' or 'answer', not {value!r}")
    return str(value)


class _Model:
    """A binary model over a feature vector: P(positive)."""

    def probability(self, x: Features) -> float:
        raise NotImplementedError


class _Logistic(_Model):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        coef = spec.get("coef")
        if not isinstance(coef, list):
            raise LearnedError(f"{where}: a logistic model needs a 'coef' list")
        self.coef = [float(c) for c in coef]
        self.intercept = float(spec.get("intercept", 0.0))

    def probability(self, x: Features) -> float:
        coef = self.coef
        return _sigmoid(self.intercept + sum(coef[i] * v for i, v in x.items() if i < len(coef)))


class _Trees(_Model):
    """Gradient-boosted trees; a node is [feature, threshold, missing_left, left, right, leaf,
    value]; a row goes left when its value <= threshold (missing: as missing_left says)."""

    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        trees = spec.get("trees")
        if not isinstance(trees, list):
            raise LearnedError(f"{where}: a trees model needs a 'trees' list")
        self.baseline = float(spec.get("baseline", 0.0))
        self.trees = [[tuple(node) for node in tree] for tree in trees]

    def probability(self, x: Features) -> float:
        raw = self.baseline
        for tree in self.trees:
            node = tree[0]
            while not node[5]:
                value = x.get(int(node[0]), 0.0)
                go_left = bool(node[2]) if math.isnan(value) else value <= node[1]
                node = tree[int(node[3] if go_left else node[4])]
            raw += float(node[6])
        return _sigmoid(raw)


_MODELS: Mapping[str, Callable[[Mapping[str, Any], str], _Model]] = {
    "logistic": _Logistic,
    "trees": _Trees,
}


def _rules() -> Mapping[str, Callable[[str], str | None]]:
    from router._answers import arithmetic_problem, final_answer_problem

    return {
        "empty": lambda text: None if text.strip() else "no content",
        "arithmetic": arithmetic_problem,
        "final_answer": final_answer_problem,
    }


def rule_problem(answer: str, names: Sequence[str]) -> str | None:
    """The first of the named hard rules the answer fails, as 'rule: detail', or None."""
    rules = _rules()
    for name in names:
        problem = rules[name](answer)
        if problem is not None:
            return f"{name}: {problem}"
    return None


class LearnedPolicy:
    """A loaded artifact (see the module docstring); `score`, `classify`, `check`."""

    def __init__(self, document: Mapping[str, Any], source: str = "<artifact>") -> None:
        where = source
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise LearnedError(f"{where}: not a learned policy (expected format {FORMAT!r})")
        self.document = document
        self.source = source
        self.role = str(document.get("role"))
        if self.role not in ("route", "answer"):
            raise LearnedError(f"{where}: 'role' must be 'route' or 'answer'")
        try:
            self.threshold = float(document["threshold"])
        except (KeyError, TypeError, ValueError):
            raise LearnedError(f"{where}: 'threshold' must be a number") from None
        labels = document.get("labels") or {}
        self.above = str(labels.get("above", "strong"))
        self.below = str(labels.get("below", "weak"))
        self.blocks: list[_Block] = []
        offset = 0
        for k, spec in enumerate(document.get("features") or ()):
            kind = spec.get("type") if isinstance(spec, Mapping) else None
            make = _BLOCKS.get(str(kind))
            if make is None:
                raise LearnedError(f"{where}: features[{k}]: unknown type {kind!r}")
            block = make(spec, f"{where}: features[{k}]")
            block.offset = offset
            offset += block.size
            self.blocks.append(block)
        self.models: dict[str, _Model] = {}
        for name, spec in (document.get("models") or {}).items():
            make_model = _MODELS.get(str(spec.get("type")) if isinstance(spec, Mapping) else "")
            if make_model is None:
                raise LearnedError(f"{where}: models.{name}: unknown type")
            self.models[str(name)] = make_model(spec, f"{where}: models.{name}")
        score = document.get("score") or {}
        self.plus = score.get("plus")
        self.minus = score.get("minus")
        for ref in (self.plus, self.minus):
            if ref is not None and ref not in self.models:
                raise LearnedError(f"{where}: score names model {ref!r}, which is not there")
        if self.plus is None and self.minus is None:
            raise LearnedError(f"{where}: 'score' needs 'plus' and/or 'minus'")
        known = _rules()
        self.rules: tuple[str, ...] = tuple(str(r) for r in document.get("rules") or ())
        for rule in self.rules:
            if rule not in known:
                raise LearnedError(f"{where}: unknown rule {rule!r} (known: {', '.join(known)})")
        self.group = document.get("group")
        """The group whose answers the score was fitted on (answer role)."""

    def features(self, prompt: str, metadata: Mapping[str, Any], answer: str = "") -> Features:
        x: Features = {}
        for block in self.blocks:
            block.add(x, prompt, metadata, answer)
        return x

    def score(
        self, prompt: str, metadata: Mapping[str, Any] | None = None, answer: str = ""
    ) -> float:
        """P(plus) - P(minus); a side the artifact leaves out counts 1 (plus) or 0 (minus)."""
        x = self.features(prompt, metadata or {}, answer)
        plus = self.models[self.plus].probability(x) if self.plus is not None else 1.0
        minus = self.models[self.minus].probability(x) if self.minus is not None else 0.0
        return plus - minus

    def label(self, prompt: str, metadata: Mapping[str, Any] | None = None) -> str:
        """The route label: `above` when score >= threshold, else `below`."""
        return self.above if self.score(prompt, metadata) >= self.threshold else self.below

    def answer_problem(
        self,
        prompt: str,
        metadata: Mapping[str, Any] | None,
        answer: str,
        scored: bool = True,
        score: Callable[[str, Mapping[str, Any], str], float] | None = None,
    ) -> str | None:
        """Why the answer should escalate, or None; `scored=False` applies the rules only.

        `score` replaces `self.score` (the eval replay passes a memoised copy of it)."""
        problem = rule_problem(answer, self.rules)
        if problem is not None or not scored:
            return problem
        value = (score or self.score)(prompt, metadata or {}, answer)
        if value >= self.threshold:
            return f"expected gain of escalating {value:+.3f} >= {self.threshold:+.3f}"
        return None


def route_classifier(policy: LearnedPolicy) -> Callable[[Mapping[str, Any]], str]:
    """A ``kind = "python"``-style classifier over a route artifact: request -> label."""

    def classify(request: Mapping[str, Any]) -> str:
        text, metadata = request_text(request)
        return policy.label(text, metadata)

    return classify


def answer_validator(
    policy: LearnedPolicy | Mapping[str, Any],
    judged: Callable[[str | None], bool],
    *,
    score: Callable[[str, Mapping[str, Any], str], float] | None = None,
) -> Callable[[Any, Mapping[str, Any]], str | None]:
    """An ``escalate_on`` check over an answer artifact: (response, request) -> problem.

    `judged(deployment)` says whether the deployment that served the response is one whose
    answers the score was fitted on (the hard rules apply to every answer).
    """
    if not isinstance(policy, LearnedPolicy):
        policy = LearnedPolicy(policy)
    learned = policy

    def check(response: Any, request: Mapping[str, Any]) -> str | None:
        from router._answers import content_of
        from router._decision import get_decision

        decision = get_decision(response)
        served = decision.deployment if decision is not None else None
        text, metadata = request_text(request)
        return learned.answer_problem(
            text, metadata, content_of(response), scored=judged(served), score=score
        )

    return check


def resolve(path: str, config_source: str | None) -> str:
    """`path` as written in a config: absolute as is, else from the config file's folder
    (from the working directory when the config did not come from a file)."""
    if os.path.isabs(path) or not config_source or not os.path.isfile(config_source):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_source)), path)


def for_config(config: Any, name: str) -> LearnedPolicy:
    """The artifact of ``[classifiers.NAME]`` (kind learned) of a loaded config."""
    settings = config.classifiers[name]
    return load_policy(resolve(str(settings.path), config.source))


def answer_checks(config: Any) -> dict[str, Callable[[Any, Mapping[str, Any]], str | None]]:
    """``learned:NAME`` -> its escalation check, for every learned classifier a trigger names.

    Raises `LearnedError` (naming the config key and the file) when an artifact cannot load
    or has the wrong role.
    """
    names = {
        t.partition(":")[2]
        for table in (config.router, *config.groups.values())
        for t in (table.escalate_on or ())
        if t.startswith("learned:")
    }
    checks: dict[str, Callable[[Any, Mapping[str, Any]], str | None]] = {}
    for name in sorted(names):
        where = f"{config.source}: classifiers.{name}"
        try:
            policy = for_config(config, name)
        except LearnedError as exc:
            raise LearnedError(f"{where}: {exc}") from None
        if policy.role != "answer":
            raise LearnedError(
                f"{where}: {policy.source} is a '{policy.role}' policy; "
                "escalate_on needs an 'answer' one (router eval fit --policy "
                "cascade)"
            )
        group = config.classifiers[name].group or policy.group
        judged_names = (
            {d.name for d in config.deployments_in(group)}
            if group is not None and config.is_routable(group)
            else None
        )

        def judged(deployment: str | None, names: set[str] | None = judged_names) -> bool:
            return names is None or deployment in names

        checks[f"learned:{name}"] = answer_validator(policy, judged)
    return checks


def config_checks(config: Any) -> dict[str, Callable[[Any, Mapping[str, Any]], str | None]]:
    """`answer_checks` for a router being built or reloaded: {} without learned classifiers;
    an artifact that cannot load is a `ConfigError` (so a reload changes nothing)."""
    if not any(c.kind == "learned" for c in config.classifiers.values()):
        return {}
    from router._config import ConfigError

    try:
        return answer_checks(config)
    except LearnedError as exc:
        raise ConfigError([str(exc)]) from None


def load_policy(path: str | os.PathLike[str]) -> LearnedPolicy:
    """Read and check an artifact (cached per file and modification time)."""
    name = os.fspath(path)
    try:
        stat = os.stat(name)
    except OSError as exc:
        raise LearnedError(f"{name}: cannot read the learned policy ({exc.strerror})") from None
    cached = _CACHE.get(name)
    if cached is not None and cached[0] == stat.st_mtime and cached[1] == stat.st_size:
        return cached[2]
    try:
        with open(name, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise LearnedError(f"{name}: not a JSON learned policy ({exc})") from None
    policy = LearnedPolicy(document, name)
    _CACHE[name] = (stat.st_mtime, stat.st_size, policy)
    return policy


def request_text(request: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The user text of a request's messages (as rules read it) and its metadata."""
    from router._answers import message_texts

    metadata = request.get("metadata")
    text = "\n".join(message_texts(request.get("messages"), user_only=True))
    return text, metadata if isinstance(metadata, Mapping) else {}
