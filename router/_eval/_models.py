"""What the learned policies learn from the training split: two small scikit-learn models.

- `PromptGainModel` (classifier-first, before the call): TF-IDF of the prompt (words or
  character n-grams), one-hot categorical metadata (MMLU's subject) and the prompt's length
  feed two logistic regressions, P(weak correct) and P(strong correct); the routing score is
  their difference, the expected gain of paying for the strong model. Routing by *gain*
  rather than by "the weak model will fail" matters: where both models fail, the strong call
  is wasted.
- `AnswerConfidence` (cascade, after the weak answer): boosted stumps over
  `router._answers.answer_features` give P(weak answer correct).

Both export themselves as data (`router._learned` artifacts: vocabularies, coefficients, tree
nodes), whose plain-Python inference is what routes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["AnswerConfidence", "PromptGainModel", "single_thread"]


def single_thread() -> Any:
    """A context limiting BLAS and OpenMP to one thread.

    The machine is small and shared: scikit-learn's OpenMP pool oversubscribed under load
    ran gradient boosting twenty times slower than one thread does.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


class PromptGainModel:
    """P(strong correct) - P(weak correct) from the prompt (see the module docstring).

    `text` names the prompt's TF-IDF blocks: ``words`` (`router._learned.tokens`) and/or
    ``chars`` (`router._learned.char_grams`, 2 to 5 characters within words). Fitted with
    scikit-learn; `blocks` and `models` export it as a `router._learned` artifact, whose
    plain-Python inference is what routes (in the eval replay and in production alike).
    """

    def __init__(
        self, categorical: Sequence[str] = (), seed: int = 0, text: Sequence[str] = ("words",)
    ) -> None:
        unknown = [t for t in text if t not in TEXT_BLOCKS]
        if unknown:
            raise ValueError(f"PromptGainModel: unknown text block(s) {unknown}")
        self.categorical = tuple(categorical)
        self.seed = seed
        self.text = tuple(text)
        self._vectorizers: list[Any] = []
        self._encoders: list[Any] = []
        self._weak: Any = None
        self._strong: Any = None

    def _matrix(self, prompts: Sequence[str], metadata: Sequence[Any], fit: bool) -> Any:
        from scipy.sparse import csr_matrix, hstack
        from sklearn.preprocessing import OneHotEncoder

        parts = []
        if fit:
            self._vectorizers = [_vectorizer(kind) for kind in self.text]
            parts = [v.fit_transform(prompts) for v in self._vectorizers]
        else:
            parts = [v.transform(prompts) for v in self._vectorizers]
        parts.append(csr_matrix([[math.log1p(len(p)) * LENGTH_SCALE] for p in prompts]))
        for k, column in enumerate(self.categorical):
            rows = [[str(m.get(column, ""))] for m in metadata]
            if fit:
                self._encoders.append(OneHotEncoder(handle_unknown="ignore"))
                parts.append(self._encoders[k].fit_transform(rows))
            else:
                parts.append(self._encoders[k].transform(rows))
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
        """The expected gain of the strong model for each prompt (scikit-learn, batched)."""
        with single_thread():
            x = self._matrix(prompts, metadata, fit=False)
            return [
                float(s - w)
                for s, w in zip(_positive(self._strong, x), _positive(self._weak, x), strict=True)
            ]

    def strong_probability(self, prompts: Sequence[str]) -> list[float]:
        """P(strong correct) per prompt (no categorical columns: for the cascade)."""
        with single_thread():
            return _positive(self._strong, self._matrix(prompts, [{}] * len(prompts), fit=False))

    def blocks(self) -> list[dict[str, Any]]:
        """The feature recipe, in column order (tfidf per text block, log length, one-hot
        per categorical column)."""
        out: list[dict[str, Any]] = []
        for kind, vectorizer in zip(self.text, self._vectorizers, strict=True):
            block: dict[str, Any] = {"type": "tfidf", "field": "prompt"}
            if kind == "chars":
                block |= {"analyzer": "char_wb", "ngram_range": list(CHAR_RANGE)}
            else:
                block |= {"ngrams": 1}
            block |= {
                "sublinear_tf": True,
                "vocabulary": vectorizer.get_feature_names_out().tolist(),
                "idf": [float(v) for v in vectorizer.idf_],
            }
            out.append(block)
        out.append({"type": "log_length", "field": "prompt", "scale": LENGTH_SCALE})
        for column, encoder in zip(self.categorical, self._encoders, strict=True):
            values = [str(v) for v in encoder.categories_[0]]
            out.append({"type": "onehot", "key": column, "values": values})
        return out

    def models(self) -> dict[str, dict[str, Any]]:
        return {"strong": _logistic(self._strong), "weak": _logistic(self._weak)}


LENGTH_SCALE = 0.1
"""log1p(prompt characters) x this: one length column on the scale of the TF-IDF values."""
TEXT_BLOCKS = ("words", "chars")
CHAR_RANGE = (2, 5)


def _char_grams(text: str) -> list[str]:
    from router._learned import char_grams

    return char_grams(text, *CHAR_RANGE)


def _vectorizer(kind: str) -> Any:
    """The TF-IDF of one text block: words (min_df 2, 20,000 terms) or character n-grams
    within words (min_df 3, 50,000 grams); sublinear term frequency, l2-normalised."""
    import numpy
    from sklearn.feature_extraction.text import TfidfVectorizer

    from router._learned import tokens

    if kind == "chars":
        return TfidfVectorizer(
            analyzer=_char_grams,
            min_df=3,
            max_features=50000,
            sublinear_tf=True,
            dtype=numpy.float64,
        )
    return TfidfVectorizer(
        analyzer=tokens, min_df=2, max_features=20000, sublinear_tf=True, dtype=numpy.float64
    )


DEPTH, ROUNDS = 1, 300
"""The answer model's trees: stumps (an additive model: each feature's effect on its own),
300 rounds at learning rate 0.05. Chosen by repeated 5-fold cross-validation on GSM8K's 850
items (10 fold assignments): the strong share a 95% cascade needs at confidence 0.9 went
from 46.1% (depth 2, 150 rounds) to 44.9%, and the quality at 45% strong from 97.5% to
97.6%; deeper trees (depth 3) and a logistic regression on the same features did worse."""


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
                max_depth=DEPTH, learning_rate=0.05, max_iter=ROUNDS, random_state=self.seed
            )
            self._model = _fit_binary(model, features, correct)
        return self

    def probability(self, features: Sequence[Sequence[float]]) -> list[float]:
        """P(correct) for each row."""
        with single_thread():
            return [float(p) for p in _positive(self._model, features)]

    def export(self, offset: int) -> dict[str, Any]:
        """The trees as data (feature indices shifted by `offset` columns)."""
        model = self._model
        if isinstance(model, _Constant):
            return {"type": "trees", "baseline": 50.0 if model.value else -50.0, "trees": []}
        if list(model.classes_) != [False, True]:
            raise ValueError("answer model: expected classes [False, True]")
        trees = []
        for predictors in model._predictors:
            nodes = predictors[0].nodes
            trees.append(
                [
                    [
                        int(node["feature_idx"]) + offset,
                        float(node["num_threshold"]),
                        bool(node["missing_go_to_left"]),
                        int(node["left"]),
                        int(node["right"]),
                        bool(node["is_leaf"]),
                        float(node["value"]),
                    ]
                    for node in nodes
                ]
            )
        return {
            "type": "trees",
            "baseline": float(model._baseline_prediction.ravel()[0]),
            "trees": trees,
        }


def _logistic(model: Any) -> dict[str, Any]:
    if isinstance(model, _Constant):
        return {"type": "logistic", "coef": [], "intercept": 50.0 if model.value else -50.0}
    if list(model.classes_) != [False, True]:
        raise ValueError("logistic model: expected classes [False, True]")
    return {
        "type": "logistic",
        "coef": [float(c) for c in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
    }


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
