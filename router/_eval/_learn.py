"""How the policies' settings are fitted on the training split: folds and thresholds.

The models themselves (`PromptGainModel`, `AnswerConfidence`) are in `router._eval._models`.

- `out_of_fold` / `repeated_out_of_fold`: every training item scored by a model fitted
  without it;
- `curve_area`: how well scores rank items by the strong model's gain, as one number;
- `fit_threshold`: the cheapest threshold whose routing reaches a quality target on the
  training split, and stays there for every costlier threshold (a first crossing of a noisy
  curve is an optimistic pick; the last one is not).

Scores used to fit thresholds are out-of-fold predictions on the training split (5 folds by
prompt, repeated over several fold assignments: `repeats_for`), so a threshold is never
fitted on a model's own training answers. The test split is
never passed to anything in this module except `score` of an already fitted model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Threshold",
    "curve_area",
    "expected_curve",
    "fit_threshold",
    "fold_of",
    "out_of_fold",
    "repeated_out_of_fold",
    "repeats_for",
    "share_thresholds",
]

FOLDS = 5


def fold_of(prompt: str, seed: int, folds: int = FOLDS, repeat: int = 0) -> int:
    """The cross-validation fold of a prompt: a seeded hash, so duplicates share a fold.

    `repeat` > 0 draws another assignment (repeated cross-validation)."""
    key = " ".join(prompt.split()).casefold()
    tag = f"{seed}" if repeat == 0 else f"{seed}.{repeat}"
    digest = hashlib.sha256(f"fold\x00{tag}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def out_of_fold(
    prompts: Sequence[str],
    fit_score: Callable[[list[int], list[int]], list[float]],
    seed: int,
    repeat: int = 0,
    folds: int = FOLDS,
) -> list[float]:
    """Scores for every row from a model fitted without its fold.

    `fit_score(train_rows, score_rows)` fits on `train_rows` and scores `score_rows`;
    `repeat` picks the fold assignment (see `fold_of`), `folds` how many there are.
    """
    assigned = [fold_of(p, seed, folds, repeat) for p in prompts]
    out = [0.0] * len(prompts)
    for k in range(folds):
        held = [i for i, f in enumerate(assigned) if f == k]
        rest = [i for i, f in enumerate(assigned) if f != k]
        if not held:
            continue
        for i, score in zip(held, fit_score(rest, held), strict=True):
            out[i] = score
    return out


def repeats_for(items: int) -> int:
    """How many fold assignments a learned family's threshold is fitted over.

    The curve a threshold is read from is noisy in the fold assignment: on GSM8K's 850
    items, one 5-fold assignment put the calibrated strong share anywhere in 41-50%. Averaging
    the curves of several assignments (repeated cross-validation) removes most of that noise
    at the price of refitting; with thousands of items one assignment already varies little.
    """
    return 5 if items <= 2000 else 2


def repeated_out_of_fold(
    prompts: Sequence[str],
    fit_score: Callable[[list[int], list[int]], list[float]],
    seed: int,
    repeats: int,
    folds: int = FOLDS,
) -> list[list[float]]:
    """`out_of_fold` under `repeats` fold assignments (the first is the plain one)."""
    return [out_of_fold(prompts, fit_score, seed, r, folds) for r in range(max(1, repeats))]


@dataclass(frozen=True, slots=True)
class Threshold:
    """A fitted routing threshold: send to the strong model when score >= value."""

    value: float
    train_share: float
    """Share of training items the threshold sends to the strong model."""
    train_quality: float
    """Training accuracy with it, as a fraction of the always-strong accuracy (from the
    scores given: out-of-fold ones make this the cross-validated estimate)."""
    reached: bool
    """Whether the target was reached on the training split at all (by `bound`)."""
    low: float | None = None
    high: float | None = None
    """95% interval of the quality on `new_items` new items (None without a margin)."""
    bound: float | None = None
    """The one-sided lower bound at `confidence` the fit required to reach the target."""
    confidence: float | None = None
    new_items: int | None = None


class _Running:
    """Accuracy of a routing and its standard error on new data, updated one item at a time.

    The quality of a routing is A/S (its accuracy over always-strong accuracy). On a new
    sample of m items drawn like the n training items, its standard error is about
    sd(c - q s) / mean(s) * sqrt(1/n + 1/m) (delta method: c the routing's correctness, s
    the strong model's, q = A/S): the uncertainty of the estimate plus the new sample's own.
    """

    def __init__(self, weak: Sequence[bool], strong: Sequence[bool]) -> None:
        self.n = len(weak)
        self.c = float(sum(weak))  # sum of c (= sum of c^2: binary)
        self.s = float(sum(strong))
        self.cs = float(sum(1 for w, s in zip(weak, strong, strict=True) if w and s))

    def move(self, w: bool, s: bool) -> None:
        """An item goes from the weak answer to the strong one."""
        self.c += int(s) - int(w)
        self.cs += int(s) - int(w and s)

    def quality(self) -> float:
        return self.c / self.s if self.s else 0.0

    def error(self, new_items: int) -> float:
        n = self.n
        if n < 2 or not self.s:
            return math.inf
        q = self.quality()
        ec, es, ecs = self.c / n, self.s / n, self.cs / n
        var = ec - 2 * q * ecs + q * q * es - (ec - q * es) ** 2
        var = max(0.0, var) * n / (n - 1)
        return math.sqrt(var * (1.0 / n + 1.0 / max(1, new_items))) / es


def z_of(confidence: float) -> float:
    """The one-sided normal quantile for a confidence in (0, 1)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence)


def fit_threshold(
    scores: Sequence[float],
    weak: Sequence[bool],
    strong: Sequence[bool],
    target: float,
    forced: Sequence[bool] | None = None,
    *,
    confidence: float | None = None,
    new_items: int | None = None,
    repeats: Sequence[Sequence[float]] = (),
) -> Threshold:
    """The cheapest threshold from which training quality stays >= `target` x strong.

    Items are routed strong in descending score order (`forced` ones always); ties move
    together. Quality is accuracy over always-strong accuracy on the same items.

    With `confidence` (e.g. 0.9) the test is on the lower confidence bound instead of the
    point estimate: quality - z(confidence) x its standard error on a batch of `new_items`
    new items (default: as many as were given), so the target holds on such a batch with
    about that probability (the margin). Without it, the point estimate decides (the
    cheapest setting that reaches the target on these items: it lands below about half the
    time on new ones).

    `repeats`: more out-of-fold scores of the same items (other fold assignments, see
    `repeated_out_of_fold`). Then the quality curve (and its error) as a function of the
    number of items routed strong is averaged over `scores` and every repeat, the count is
    chosen on that average curve as above, and the threshold is the median over the score
    lists of the score at that count.
    """
    n = len(scores)
    if n == 0:
        return Threshold(math.inf, 0.0, 0.0, False)
    if repeats:
        return _fit_averaged(
            [scores, *repeats], weak, strong, target, forced, confidence, new_items
        )
    forced = forced or [False] * n
    m = new_items or n
    z = z_of(confidence) if confidence is not None else 0.0
    run = _Running(weak, strong)
    routed = 0
    for i in range(n):
        if forced[i]:
            run.move(weak[i], strong[i])
            routed += 1

    def point(value: float) -> tuple[int, float, float, float]:
        err = run.error(m) if confidence is not None else 0.0
        q = run.quality()
        return routed, value, q, err

    # Cut points (items routed, threshold, quality, its error): after each run of tied scores.
    points = [point(math.inf)]
    rest = sorted((i for i in range(n) if not forced[i]), key=lambda i: -scores[i])
    j = 0
    while j < len(rest):
        value = scores[rest[j]]
        while j < len(rest) and scores[rest[j]] == value:
            run.move(weak[rest[j]], strong[rest[j]])
            routed += 1
            j += 1
        points.append(point(value))
    goal = target - 1e-12
    chosen = None
    for p in reversed(points):
        if p[2] - z * p[3] < goal:
            break
        chosen = p
    reached = chosen is not None
    if chosen is None:  # unreachable: the best setting there is, the cheaper on ties
        chosen = max(points, key=lambda p: (p[2] - z * p[3], -p[0]))
    k, value, q, err = chosen
    return _threshold(value, k / n, q, err, reached, confidence, m)


def _threshold(
    value: float,
    share: float,
    quality: float,
    err: float,
    reached: bool,
    confidence: float | None,
    new_items: int,
) -> Threshold:
    if confidence is None:
        return Threshold(value, share, quality, reached)
    spread = 1.959964 * err
    return Threshold(
        value=value,
        train_share=share,
        train_quality=quality,
        reached=reached,
        low=quality - spread,
        high=quality + spread,
        bound=quality - z_of(confidence) * err,
        confidence=confidence,
        new_items=new_items,
    )


def _curve(
    scores: Sequence[float],
    weak: Sequence[bool],
    strong: Sequence[bool],
    forced: Sequence[bool],
    new_items: int,
    margin: bool,
) -> tuple[list[float], list[float], list[float]]:
    """(quality, error, threshold) after routing k = 0..n items strong (forced ones first,
    then by descending score; the threshold at k is the k-th item's score, inf before)."""
    n = len(scores)
    run = _Running(weak, strong)
    order = [i for i in range(n) if forced[i]]
    order += sorted((i for i in range(n) if not forced[i]), key=lambda i: -scores[i])
    quality, error, value = [run.quality()], [run.error(new_items) if margin else 0.0], [math.inf]
    for i in order:
        run.move(weak[i], strong[i])
        quality.append(run.quality())
        error.append(run.error(new_items) if margin else 0.0)
        value.append(math.inf if forced[i] else scores[i])
    return quality, error, value


def curve_area(scores: Sequence[float], weak: Sequence[bool], strong: Sequence[bool]) -> float:
    """The mean quality (fraction of always-strong accuracy) of routing 0, 1, ..., n items
    strong in descending score order: the area under the routing curve, one number for how
    well scores rank items by the strong model's gain, whatever the target."""
    n = len(scores)
    quality, _, _ = _curve(scores, weak, strong, [False] * n, n, False)
    return sum(quality) / len(quality)


def _fit_averaged(
    score_sets: Sequence[Sequence[float]],
    weak: Sequence[bool],
    strong: Sequence[bool],
    target: float,
    forced: Sequence[bool] | None,
    confidence: float | None,
    new_items: int | None,
) -> Threshold:
    """`fit_threshold` over the average curve of several score lists (see there)."""
    from statistics import median

    n = len(weak)
    forced = forced or [False] * n
    m = new_items or n
    margin = confidence is not None
    z = z_of(confidence) if confidence is not None else 0.0
    curves = [_curve(s, weak, strong, forced, m, margin) for s in score_sets]
    quality = [sum(c[0][k] for c in curves) / len(curves) for k in range(n + 1)]
    error = [sum(c[1][k] for c in curves) / len(curves) for k in range(n + 1)]
    first = sum(forced)
    goal = target - 1e-12
    chosen = None
    for k in range(n, first - 1, -1):
        if quality[k] - z * error[k] < goal:
            break
        chosen = k
    reached = chosen is not None
    if chosen is None:  # unreachable: the best setting there is, the cheaper on ties
        chosen = max(range(first, n + 1), key=lambda k: (quality[k] - z * error[k], -k))
    value = median(c[2][chosen] for c in curves)
    return _threshold(value, chosen / n, quality[chosen], error[chosen], reached, confidence, m)


def expected_curve(
    score_sets: Sequence[Sequence[float]],
    weak: Sequence[bool],
    strong: Sequence[bool],
    forced: Sequence[bool] | None,
    shares: Sequence[float],
    *,
    confidence: float = 0.9,
    new_items: int | None = None,
) -> list[dict[str, float]]:
    """The trade a family offers: for each strong share, the expected quality on a batch of
    `new_items` new items (out-of-fold, averaged over the score lists), its 95% interval and
    its lower bound at `confidence` (what `fit_threshold` compares with the target)."""
    n = len(weak)
    if n == 0 or not score_sets:
        return []
    forced = forced or [False] * n
    m = new_items or n
    curves = [_curve(s, weak, strong, forced, m, True) for s in score_sets]
    z = z_of(confidence)
    rows = []
    for share in shares:
        k = max(sum(forced), min(n, round(share * n)))
        q = sum(c[0][k] for c in curves) / len(curves)
        err = sum(c[1][k] for c in curves) / len(curves)
        rows.append(
            {
                "strong_share": k / n,
                "expected_quality": q,
                "low": q - 1.959964 * err,
                "high": q + 1.959964 * err,
                "bound": q - z * err,
            }
        )
    return rows


def share_thresholds(scores: Sequence[float], shares: Sequence[float]) -> list[float]:
    """Thresholds sending about each share of these scores to the strong model."""
    ordered = sorted(scores, reverse=True)
    out = []
    for share in shares:
        k = round(share * len(ordered))
        out.append(math.inf if k <= 0 else ordered[min(k, len(ordered)) - 1])
    return out
