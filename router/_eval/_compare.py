"""``router eval compare A.toml B.toml DATA``: two configs over the same items, paired.

Each config is loaded as production loads it and replays every item of DATA (the recorded
answers, through a fresh `Router` per config; the replay is deterministic). Because both see
the same items, the comparison is *paired*: the bootstrap resamples items, and each resample
measures B minus A on the same draw, so the intervals are much tighter than two separate
intervals would be. Figures, each with its paired-bootstrap 95% interval (percentile):

- accuracy change, in percentage points;
- cost per item change, relative to A (%);
- strong share, escalation rate and review rate changes, in points.

The verdict is one line, e.g. ``B is cheaper by 18% (12%..24%); quality change -0.4 points
(-1.3..+0.5), not significant``. A change is *significant* when its interval excludes 0.

Exit status: 0; 3 when B's accuracy drop is significant beyond ``--max-drop`` points (the
whole interval below ``-max_drop``), so CI can block a config change that costs quality;
1 a config or data problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router._eval._harness import ItemResult, Runner, replay_judge
from router._eval._policies import PolicySpec
from router._eval._replay import ReplayBackend

__all__ = ["Comparison", "compare_results", "run_compare"]

METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "points"),
    ("cost_per_item", "relative"),
    ("strong_share", "points"),
    ("escalation_rate", "points"),
    ("review_rate", "points"),
)
EXIT_QUALITY_DROP = 3


@dataclass(frozen=True)
class Comparison:
    """The paired figures (see the module docstring); `changes[metric]` = (point, low, high)."""

    items: int
    a: dict[str, float]
    b: dict[str, float]
    changes: dict[str, tuple[float, float, float]]
    resamples: int
    verdict: str
    quality_drop: bool
    """B's accuracy is lower with 95% confidence by more than the allowed drop."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "a": self.a,
            "b": self.b,
            "changes": {
                k: {"change": v[0], "low": v[1], "high": v[2], "unit": dict(METRICS)[k]}
                for k, v in self.changes.items()
            },
            "resamples": self.resamples,
            "verdict": self.verdict,
            "quality_drop": self.quality_drop,
        }


def _columns(results: Sequence[ItemResult]) -> dict[str, list[float]]:
    return {
        "accuracy": [float(r.correct) for r in results],
        "cost_per_item": [r.cost_usd for r in results],
        "strong_share": [float(r.reached_strong) for r in results],
        "escalation_rate": [float(r.escalated) for r in results],
        "review_rate": [float(r.review) for r in results],
    }


def _change(metric: str, a: float, b: float) -> float:
    if dict(METRICS)[metric] == "relative":
        return (b - a) / a if a else 0.0
    return b - a


def _resampled_sums(
    columns: Mapping[str, Sequence[float]], resamples: int, seed: int
) -> dict[str, list[float]]:
    """Per metric, the sum over each bootstrap resample of the items (same draws for all)."""
    n = len(next(iter(columns.values())))
    try:
        import numpy
    except ImportError:
        rng = random.Random(seed)
        out: dict[str, list[float]] = {k: [] for k in columns}
        for _ in range(resamples):
            draw = rng.choices(range(n), k=n)
            for k, values in columns.items():
                out[k].append(sum(values[i] for i in draw))
        return out
    generator = numpy.random.default_rng(seed)
    arrays: dict[str, Any] = {k: numpy.asarray(v, dtype=float) for k, v in columns.items()}
    sums: dict[str, list[float]] = {k: [] for k in columns}
    chunk = max(1, 2_000_000 // max(1, n))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        draws = generator.integers(0, n, size=(size, n))
        for k, values in arrays.items():
            sums[k].extend(float(x) for x in values[draws].sum(axis=1))
        done += size
    return sums


def _interval(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    low = ordered[int(0.025 * (len(ordered) - 1))]
    high = ordered[round(0.975 * (len(ordered) - 1))]
    return low, high


def compare_results(
    a: Sequence[ItemResult],
    b: Sequence[ItemResult],
    *,
    resamples: int = 2000,
    seed: int = 0,
    max_drop: float = 0.0,
) -> Comparison:
    """The paired comparison of two runs over the same items (in the same order)."""
    if len(a) != len(b) or not a:
        raise ValueError("compare: both runs need the same, non-empty list of items")
    if [r.id for r in a] != [r.id for r in b]:
        raise ValueError("compare: the runs are not over the same items in the same order")
    n = len(a)
    columns_a, columns_b = _columns(a), _columns(b)
    means_a = {k: sum(v) / n for k, v in columns_a.items()}
    means_b = {k: sum(v) / n for k, v in columns_b.items()}
    joined = {f"a:{k}": v for k, v in columns_a.items()} | {
        f"b:{k}": v for k, v in columns_b.items()
    }
    sums = _resampled_sums(joined, resamples, seed)
    changes: dict[str, tuple[float, float, float]] = {}
    for metric, _ in METRICS:
        draws = [
            _change(metric, sa / n, sb / n)
            for sa, sb in zip(sums[f"a:{metric}"], sums[f"b:{metric}"], strict=True)
        ]
        low, high = _interval(draws)
        changes[metric] = (_change(metric, means_a[metric], means_b[metric]), low, high)
    drop = changes["accuracy"][2] < -max_drop / 100.0
    return Comparison(
        n, means_a, means_b, changes, resamples, _verdict(changes, max_drop, drop), drop
    )


def _significant(low: float, high: float) -> bool:
    return low > 0 or high < 0


def _verdict(changes: Mapping[str, tuple[float, float, float]], max_drop: float, drop: bool) -> str:
    cost, c_low, c_high = changes["cost_per_item"]
    if _significant(c_low, c_high):
        word = "cheaper" if cost < 0 else "dearer"
        lo, hi = sorted((abs(c_low), abs(c_high)))
        head = f"B is {word} by {abs(cost):.0%} ({lo:.0%}..{hi:.0%})"
    else:
        head = f"cost change {cost:+.0%} ({c_low:+.0%}..{c_high:+.0%}), not significant"
    q, q_low, q_high = (100 * x for x in changes["accuracy"])
    quality = f"quality change {q:+.1f} points ({q_low:+.1f}..{q_high:+.1f})"
    if not _significant(q_low, q_high):
        quality += ", not significant"
    elif q > 0:
        quality += ", B is better"
    else:
        quality += ", B is worse"
        if drop:
            quality += f" beyond the allowed {max_drop:g} point(s)"
    return f"{head}; {quality}"


def _model_for(config: Any) -> str:
    """'auto' when the config has routes, else its escalating group, else its first group."""
    if config.routes:
        return str(config.router.auto_model)
    groups = config.group_names()
    for group in groups:
        if config.settings_for(group).escalate_to is not None:
            return str(group)
    if not groups:
        raise ValueError(f"{config.source}: no groups and no routes to call")
    return str(groups[0])


async def _run_one(
    config: Any,
    model: str,
    dataset: Any,
    bindings: Mapping[str, str],
    scorer: Any,
    seed: int,
    label: str,
) -> list[ItemResult]:
    from router._eval._run import default_bindings, default_strong

    bound = {**default_bindings(config, dataset), **bindings}
    strong_group = default_strong(config)
    strong = (
        set() if strong_group is None else {d.name for d in config.deployments_in(strong_group)}
    )
    runner = Runner(
        ReplayBackend(list(dataset.items), bound),
        strong=strong,
        judge=replay_judge(bound, scorer),
        seed=seed,
    )
    spec = PolicySpec(label, "configured", f"model={model!r}", model, config)
    result = await runner.run(spec, dataset.items)
    return result.items


_ROWS = (
    ("accuracy", "accuracy"),
    ("cost_per_item", "$ / item"),
    ("strong_share", "strong calls"),
    ("escalation_rate", "escalated"),
    ("review_rate", "review"),
)


def _cell(metric: str, value: float) -> str:
    if metric == "cost_per_item":
        from router._eval._report import usd

        return usd(value)
    return f"{100 * value:.1f}%"


def _change_cell(metric: str, change: tuple[float, float, float]) -> str:
    point, low, high = change
    if metric == "cost_per_item":
        return f"{point:+.1%} ({low:+.1%}..{high:+.1%})"
    return f"{100 * point:+.1f} ({100 * low:+.1f}..{100 * high:+.1f}) pts"


def run_compare(args: argparse.Namespace) -> int:
    """The ``compare`` command (arguments from `router._eval._cli.build_parser`)."""
    from router._config import ConfigError
    from router._eval._data import DatasetError
    from router._eval._inputs import binding, load_data
    from router._eval._scorers import ScorerError, make_scorer
    from router._loading import load_config

    try:
        import importlib

        for module in args.imports:
            importlib.import_module(module)
        config_a, config_b = load_config(args.a), load_config(args.b)
        dataset = load_data(args.data)
        bindings = dict(binding(b) for b in args.bind)
        scorer = make_scorer(args.scorer) if args.scorer else None
        model_a = args.model_a or args.model or _model_for(config_a)
        model_b = args.model_b or args.model or _model_for(config_b)
        if args.resamples < 100:
            raise ValueError("--resamples: use 100 or more")
        results_a = asyncio.run(
            _run_one(config_a, model_a, dataset, bindings, scorer, args.seed, "A")
        )
        results_b = asyncio.run(
            _run_one(config_b, model_b, dataset, bindings, scorer, args.seed, "B")
        )
        comparison = compare_results(
            results_a, results_b, resamples=args.resamples, seed=args.seed, max_drop=args.max_drop
        )
    except (ConfigError, DatasetError, ScorerError, ValueError, LookupError, ImportError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 1
    status = EXIT_QUALITY_DROP if comparison.quality_drop else 0
    if args.json:
        payload = {
            "a": {"config": str(args.a), "model": model_a},
            "b": {"config": str(args.b), "model": model_b},
            "data": str(args.data),
            **comparison.as_dict(),
            "max_drop_points": args.max_drop,
            "exit_status": status,
        }
        print(json.dumps(payload, indent=2))
        return status
    print(
        f"== {dataset.name}: {comparison.items} items, paired; A = {args.a} (model={model_a!r}),"
        f" B = {args.b} (model={model_b!r})"
    )
    rows = [
        {
            "figure": title,
            "A": _cell(metric, comparison.a[metric]),
            "B": _cell(metric, comparison.b[metric]),
            "B - A (95% interval)": _change_cell(metric, comparison.changes[metric]),
        }
        for metric, title in _ROWS
    ]
    columns = ("figure", "A", "B", "B - A (95% interval)")
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(row[c].ljust(w) for c, w in zip(columns, widths, strict=True)))
    print(f"({comparison.resamples} paired bootstrap resamples; cost change relative to A)")
    print(comparison.verdict)
    return status
