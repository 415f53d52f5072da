"""What the policies learn from the training split: two small scikit-learn models and thresholds.

- `PromptGainModel` (classifier-first, before the call): TF-IDF of the prompt, one-hot
  categorical metadata (MMLU's subject) and the prompt's length feed two logistic regressions,
  P(weak correct) and P(strong correct); the routing score is their difference, the expected
  gain of paying for the strong model. Routing by *gain* rather than by "the weak model will
  fail" matters: where both models fail, the strong call is wasted.
- `AnswerConfidence` (cascade, after the weak answer): gradient-boosted trees over
  `router._eval._gsm8k.answer_features` give P(weak answer correct).
- `fit_threshold`: the cheapest threshold whose routing reaches a quality target on the
  training split, and stays there for every costlier threshold (a first crossing of a noisy
  curve is an optimistic pick; the last one is not).

Scores used to fit thresholds are out-of-fold predictions on the training split (5 folds by
prompt), so a threshold is never fitted on a model's own training answers. The test split is
never passed to anything in this module except `score` of an already fitted model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AnswerConfidence",
    "PromptGainModel",
    "Threshold",
    "fit_threshold",
    "fold_of",
    "out_of_fold",
    "single_thread",
]

FOLDS = 5


def single_thread() -> Any:
    """A context limiting BLAS and OpenMP to one thread.

    The machine is small and shared: scikit-learn's OpenMP pool oversubscribed under load
    ran gradient boosting twenty times slower than one thread does.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def fold_of(prompt: str, seed: int, folds: int = FOLDS) -> int:
    """The cross-validation fold of a prompt: a seeded hash, so duplicates share a fold."""
    key = " ".join(prompt.split()).casefold()
    digest = hashlib.sha256(f"fold\x00{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def out_of_fold(
    prompts: Sequence[str],
    fit_score: Callable[[list[int], list[int]], list[float]],
    seed: int,
) -> list[float]:
    """Scores for every row from a model fitted without its fold.

    `fit_score(train_rows, score_rows)` fits on `train_rows` and scores `score_rows`.
    """
    folds = [fold_of(p, seed) for p in prompts]
    out = [0.0] * len(prompts)
    for k in range(FOLDS):
        held = [i for i, f in enumerate(folds) if f == k]
        rest = [i for i, f in enumerate(folds) if f != k]
        if not held:
            continue
        for i, score in zip(held, fit_score(rest, held), strict=True):
            out[i] = score
    return out


@dataclass(frozen=True, slots=True)
class Threshold:
    """A fitted routing threshold: send to the strong model when score >= value."""

    value: float
    train_share: float
    """Share of training items the threshold sends to the strong model."""
    train_quality: float
    """Training accuracy with it, as a fraction of the always-strong accuracy."""
    reached: bool
    """Whether the target was reached on the training split at all."""


def fit_threshold(
    scores: Sequence[float],
    weak: Sequence[bool],
    strong: Sequence[bool],
    target: float,
    forced: Sequence[bool] | None = None,
) -> Threshold:
    """The cheapest threshold from which training quality stays >= `target` x strong.

    Items are routed strong in descending score order (`forced` ones always); ties move
    together. Quality is accuracy over always-strong accuracy on the same items.
    """
    n = len(scores)
    if n == 0:
        return Threshold(math.inf, 0.0, 0.0, False)
    forced = forced or [False] * n
    strong_acc = sum(strong) / n
    routed = sum(forced)
    correct = sum(weak) + sum(int(strong[i]) - int(weak[i]) for i in range(n) if forced[i])
    # Cut points (items routed, threshold, correct answers): after each run of tied scores.
    points: list[tuple[int, float, int]] = [(routed, math.inf, correct)]
    rest = sorted((i for i in range(n) if not forced[i]), key=lambda i: -scores[i])
    j = 0
    while j < len(rest):
        value = scores[rest[j]]
        while j < len(rest) and scores[rest[j]] == value:
            correct += int(strong[rest[j]]) - int(weak[rest[j]])
            j += 1
        points.append((routed + j, value, correct))
    goal = target * strong_acc * n - 1e-9
    chosen = None
    for point in reversed(points):
        if point[2] < goal:
            break
        chosen = point
    reached = chosen is not None
    if chosen is None:  # unreachable: the best setting there is, the cheaper on ties
        chosen = max(points, key=lambda p: (p[2], -p[0]))
    k, value, hits = chosen
    return Threshold(
        value=value,
        train_share=k / n,
        train_quality=hits / n / strong_acc if strong_acc else 0.0,
        reached=reached,
    )


def share_thresholds(scores: Sequence[float], shares: Sequence[float]) -> list[float]:
    """Thresholds sending about each share of these scores to the strong model."""
    ordered = sorted(scores, reverse=True)
    out = []
    for share in shares:
        k = round(share * len(ordered))
        out.append(math.inf if k <= 0 else ordered[min(k, len(ordered)) - 1])
    return out


class PromptGainModel:
    """P(strong correct) - P(weak correct) from the prompt (see the module docstring)."""

    def __init__(self, categorical: Sequence[str] = (), seed: int = 0) -> None:
        self.categorical = tuple(categorical)
        self.seed = seed
        self._vectorizer: Any = None
        self._encoder: Any = None
        self._weak: Any = None
        self._strong: Any = None

    def _matrix(self, prompts: Sequence[str], metadata: Sequence[Any], fit: bool) -> Any:
        import numpy
        from scipy.sparse import csr_matrix, hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import OneHotEncoder

        if fit:
            self._vectorizer = TfidfVectorizer(
                min_df=2, max_features=20000, sublinear_tf=True, dtype=numpy.float64
            )
            text = self._vectorizer.fit_transform(prompts)
        else:
            text = self._vectorizer.transform(prompts)
        parts = [text, csr_matrix([[math.log1p(len(p)) / 10.0] for p in prompts])]
        if self.categorical:
            rows = [[str(m.get(c, "")) for c in self.categorical] for m in metadata]
            if fit:
                self._encoder = OneHotEncoder(handle_unknown="ignore")
                parts.append(self._encoder.fit_transform(rows))
            else:
                parts.append(self._encoder.transform(rows))
        return hstack(parts).tocsr()

    def fit(
        self,
        prompts: Sequence[str],
        metadata: Sequence[Any],
        weak: Sequence[bool],
        strong: Sequence[bool],
    ) -> PromptGainModel:
        """Fit both regressions on training items."""
        from sklearn.linear_model import LogisticRegression

        with single_thread():
            x = self._matrix(prompts, metadata, fit=True)
            self._weak = _fit_binary(LogisticRegression(C=1.0, max_iter=3000), x, weak)
            self._strong = _fit_binary(LogisticRegression(C=1.0, max_iter=3000), x, strong)
        return self

    def score(self, prompts: Sequence[str], metadata: Sequence[Any]) -> list[float]:
        """The expected gain of the strong model for each prompt."""
        with single_thread():
            x = self._matrix(prompts, metadata, fit=False)
            return [
                float(s - w)
                for s, w in zip(_positive(self._strong, x), _positive(self._weak, x), strict=True)
            ]


class AnswerConfidence:
    """P(answer correct) from features of the answer and its question."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._model: Any = None

    def fit(self, features: Sequence[Sequence[float]], correct: Sequence[bool]) -> AnswerConfidence:
        """Fit on training answers' features and labels."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        with single_thread():
            model = HistGradientBoostingClassifier(
                max_depth=2, learning_rate=0.05, max_iter=150, random_state=self.seed
            )
            self._model = _fit_binary(model, features, correct)
        return self

    def probability(self, features: Sequence[Sequence[float]]) -> list[float]:
        """P(correct) for each row."""
        with single_thread():
            return [float(p) for p in _positive(self._model, features)]


class _Constant:
    """Stands in for a classifier when the training labels are all one value."""

    def __init__(self, value: bool) -> None:
        self.value = value


def _fit_binary(model: Any, x: Any, y: Sequence[bool]) -> Any:
    labels = [bool(v) for v in y]
    if len(set(labels)) < 2:
        return _Constant(labels[0] if labels else False)
    return model.fit(x, labels)


def _positive(model: Any, x: Any) -> list[float]:
    if isinstance(model, _Constant):
        rows = x.shape[0] if hasattr(x, "shape") else len(x)
        return [1.0 if model.value else 0.0] * rows
    classes = list(model.classes_)
    proba = model.predict_proba(x)
    column = classes.index(True)
    return [float(row[column]) for row in proba]
