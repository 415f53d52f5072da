"""Which pre-call classifier routes MMLU best? Cross-validation on a training side only.

Each variant (features x model) is scored out-of-fold on the training half of a split
(``--split-seed``; the test half is never read) or on all of data/routellm (``--all``: the
training side of the shipped artifact), under the fold assignments `router eval` uses
(5 folds by prompt, `repeats_for` assignments). For each it prints what the fit would pick:
the strong share at which the averaged out-of-fold curve's lower bound (confidence 0.9, as
many new items as training ones) reaches 95% of strong quality, and the expected quality,
its 95% interval and the bound at 40/45/50% strong calls, and the out-of-fold routing-curve
area (the criterion classifier-first picks its text block by). The baseline (``base``: the
shipped model with word TF-IDF) is measured in the same run. Besides the logistic-regression
variants: ``knn50`` (the mean gain of the 50 nearest training prompts) and blends
(``avg-...``: the mean of two variants' gains, from their cached out-of-fold scores).

    ./dev python scripts/eval_mmlu_classifier.py --split-seed 0 [--variants base,c0.3,...]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from router._eval._data import Item, load_routellm, split
from router._eval._learn import (
    curve_area,
    expected_curve,
    fit_threshold,
    repeated_out_of_fold,
    repeats_for,
)
from router._eval._models import single_thread

FitScore = Callable[[list[int], list[int]], list[float]]


def _features(
    items: Sequence[Item], words: int, chars: bool, subject: bool, text: bool, alpha: float
) -> Callable[[list[int]], tuple[Any, Callable[[list[int]], Any]]]:
    """rows -> (their matrix, a transform for other rows): the chosen blocks, each refitted
    on the rows given; the text blocks scaled by `alpha` (a lighter L2 weight for them)."""
    import numpy
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder

    from router._learned import tokens

    prompts = [it.prompt for it in items]
    subjects = [[str(it.metadata.get("subject", ""))] for it in items]
    lengths = [[math.log1p(len(p)) * 0.1] for p in prompts]

    def word_grams(t: str) -> list[str]:
        return tokens(t, words)

    def makers() -> list[tuple[Any, Sequence[Any], float]]:
        out: list[tuple[Any, Sequence[Any], float]] = []
        if text:
            vec = TfidfVectorizer(
                analyzer=word_grams,
                min_df=2,
                max_features=40000 if words > 1 else 20000,
                sublinear_tf=True,
                dtype=numpy.float64,
            )
            out.append((vec, prompts, alpha))
        if chars:
            grams = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 5),
                min_df=3,
                max_features=50000,
                sublinear_tf=True,
                dtype=numpy.float64,
            )
            out.append((grams, prompts, alpha))
        out.append((None, lengths, 1.0))
        if subject:
            out.append((OneHotEncoder(handle_unknown="ignore"), subjects, 1.0))
        return out

    def build(rows: list[int]) -> tuple[Any, Callable[[list[int]], Any]]:
        blocks = makers()

        def part(block: tuple[Any, Sequence[Any], float], r: list[int], fit: bool) -> Any:
            model, source, weight = block
            values = [source[i] for i in r]
            if model is None:
                return csr_matrix(values)
            return (model.fit_transform(values) if fit else model.transform(values)) * weight

        x = hstack([part(b, rows, True) for b in blocks]).tocsr()

        def transform(r: list[int]) -> Any:
            return hstack([part(b, r, False) for b in blocks]).tocsr()

        return x, transform

    return build


def variant(
    items: Sequence[Item],
    *,
    c: float = 1.0,
    words: int = 1,
    chars: bool = False,
    subject: bool = True,
    text: bool = True,
    alpha: float = 1.0,
    model: str = "two",
    balanced: bool = False,
    seed: int = 0,
) -> FitScore:
    from sklearn.linear_model import LogisticRegression

    weak = [bool(it.correct["weak"]) for it in items]
    strong = [bool(it.correct["strong"]) for it in items]
    build = _features(items, words, chars, subject, text, alpha)
    weight = "balanced" if balanced else None

    def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
        with single_thread():
            x, transform = build(rows)
            xs = transform(score_rows)
            if model == "joint3":
                y = [int(strong[i]) - int(weak[i]) for i in rows]
                lr = LogisticRegression(C=c, max_iter=3000, class_weight=weight).fit(x, y)
                p = lr.predict_proba(xs)
                classes = list(lr.classes_)
                up, down = classes.index(1), classes.index(-1)
                return [float(row[up] - row[down]) for row in p]
            if model == "calibrated":
                from sklearn.calibration import CalibratedClassifierCV

                out = []
                for labels in (strong, weak):
                    base = LogisticRegression(C=c, max_iter=3000, class_weight=weight)
                    cal = CalibratedClassifierCV(base, method="isotonic", cv=3)
                    cal.fit(x, [labels[i] for i in rows])
                    out.append(cal.predict_proba(xs)[:, 1])
                return [float(s - w) for s, w in zip(out[0], out[1], strict=True)]
            ps = LogisticRegression(C=c, max_iter=3000, class_weight=weight)
            pw = LogisticRegression(C=c, max_iter=3000, class_weight=weight)
            ps.fit(x, [strong[i] for i in rows])
            pw.fit(x, [weak[i] for i in rows])
            s = ps.predict_proba(xs)[:, 1]
            w = pw.predict_proba(xs)[:, 1]
            return [float(a - b) for a, b in zip(s, w, strict=True)]

    return fit_score


VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "c0.1": {"c": 0.1},
    "c0.3": {"c": 0.3},
    "c3": {"c": 3.0},
    "words12": {"words": 2},
    "chars-only": {"chars": True, "text": False},
    "words+chars": {"chars": True},
    "subject-only": {"text": False},
    "no-subject": {"subject": False},
    "joint3": {"model": "joint3"},
    "balanced": {"balanced": True},
    "calibrated": {"model": "calibrated"},
    "alpha0.5": {"alpha": 0.5},
    "alpha0.3": {"alpha": 0.3},
    "alpha0.5-c0.3": {"alpha": 0.5, "c": 0.3},
    "c0.3-subject": {"c": 0.3, "text": False},
    "c3-subject": {"c": 3.0, "text": False},
    "avg-words-chars": {"blend": ("base", "chars-only")},
    "knn50": {"knn": 50},
    "avg-base-knn50": {"blend": ("base", "knn50")},
}


def nearest(items: Sequence[Item], k: int) -> FitScore:
    """The mean gain (strong right - weak right) of the k training prompts nearest by cosine
    on word TF-IDF (prompt text plus a subject token): a local, non-linear scorer."""
    import numpy
    from sklearn.feature_extraction.text import TfidfVectorizer

    from router._learned import tokens

    texts = [f"{it.prompt} subject_{it.metadata.get('subject', '')}" for it in items]
    gain = numpy.array([int(it.correct["strong"]) - int(it.correct["weak"]) for it in items])

    def fit_score(rows: list[int], score_rows: list[int]) -> list[float]:
        with single_thread():
            vec = TfidfVectorizer(analyzer=tokens, min_df=2, sublinear_tf=True)
            x = vec.fit_transform([texts[i] for i in rows])
            xs = vec.transform([texts[i] for i in score_rows])
            sims = (xs @ x.T).toarray()
            top = numpy.argpartition(-sims, k, axis=1)[:, :k]
            g = gain[numpy.array(rows)]
            return [float(v) for v in g[top].mean(axis=1)]

    return fit_score


def _scorer(items: Sequence[Item], seed: int, options: dict[str, Any]) -> FitScore:
    if "knn" in options:
        return nearest(items, int(options["knn"]))
    return variant(items, seed=seed, **options)


def evaluate(
    name: str,
    items: Sequence[Item],
    seed: int,
    options: dict[str, Any],
    folds: int = 5,
    cache: dict[str, list[list[float]]] | None = None,
) -> str:
    """One variant's line. `cache` keeps each variant's out-of-fold scores (every fold
    assignment) for the blends: a blend (``{"blend": names}``) is the mean of its parts'
    gains, and the mean of out-of-fold scores is the out-of-fold score of the mean model."""
    weak = [bool(it.correct["weak"]) for it in items]
    strong = [bool(it.correct["strong"]) for it in items]
    prompts = [it.prompt for it in items]
    cache = {} if cache is None else cache
    started = time.perf_counter()
    repeats = repeats_for(len(items))

    def scores_of(key: str, opts: dict[str, Any]) -> list[list[float]]:
        if key not in cache:
            if "blend" in opts:
                parts = [scores_of(p, VARIANTS[p]) for p in opts["blend"]]
                cache[key] = [
                    [sum(col) / len(col) for col in zip(*lists, strict=True)]
                    for lists in zip(*parts, strict=True)
                ]
            else:
                fit_score = _scorer(items, seed, opts)
                cache[key] = repeated_out_of_fold(prompts, fit_score, seed, repeats, folds)
        return cache[key]

    first, *rest = scores_of(name, options)
    found = fit_threshold(first, weak, strong, 0.95, confidence=0.9, repeats=rest)
    rows = expected_curve([first, *rest], weak, strong, None, (0.40, 0.45, 0.50))
    area = sum(curve_area(s, weak, strong) for s in [first, *rest]) / (1 + len(rest))
    cells = "  ".join(
        f"{r['strong_share']:.0%}: {r['expected_quality']:.1%} [{r['low']:.1%}, "
        f"{r['high']:.1%}] b {r['bound']:.1%}"
        for r in rows
    )
    took = time.perf_counter() - started
    return (
        f"{name:14s} share@95%(lb .9) {found.train_share:6.1%}  {cells}  area {area:.4f}"
        f"  ({took:.0f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--split-seed", type=int, help="the training half of this split")
    side.add_argument("--all", action="store_true", help="all of data/routellm/mmlu.csv")
    parser.add_argument("--variants", default="base,c0.3,words12,chars,subject-only,joint3")
    parser.add_argument("--seed", type=int, default=0, help="fold seed (0)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (5)")
    parser.add_argument("--dataset", default="mmlu", choices=("mmlu", "gsm8k"))
    args = parser.parse_args()
    dataset = load_routellm(args.dataset)
    if args.all:
        items: Sequence[Item] = dataset.items
        side_name = f"all of data/routellm/{args.dataset}.csv"
    else:
        items = split(dataset, 0.5, args.split_seed).train
        side_name = f"the training half of split {args.split_seed}"
    print(
        f"{args.dataset} classifier variants, {args.folds}-fold out-of-fold on {side_name} "
        f"({len(items)} items)"
    )
    cache: dict[str, list[list[float]]] = {}
    for name in args.variants.split(","):
        print(evaluate(name, items, args.seed, VARIANTS[name], args.folds, cache), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
