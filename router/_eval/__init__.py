"""``router eval``: measure routing policies by replaying labelled data through the real router.

The harness sends every item of a dataset through a `router.Router` built exactly as in
production (rules, classifiers, escalation, engine, decision records, observers) with a
replay backend in place of the providers (`ReplayBackend`): each deployment answers with its
model's recorded answer and is priced by litellm's token counter and the config's prices.
Live mode runs the same harness against real providers, graded by a scorer.

- `router._eval._data`: the dataset format (JSONL or CSV), loaders, the leak-free split;
- `router._eval._replay`: the replay backend;
- `router._eval._policies`: the compared policies as router configs, fitted on train only
  (`_spec`: their shared pieces; `_families`: the learned ones);
- `router._eval._models`: the scikit-learn models; `router._eval._learn`: folds and
  threshold fitting;
- `router._answers` (outside this package: the runtime loads it): GSM8K answer checks;
- `router._eval._harness`: items through routers, figures from decision records;
- `router._eval._experiment`: ``router eval routellm``; `router._eval._run`: ``router eval run``;
- `router._eval._report`: tables, CSV, the plot and the README section;
- `router._eval._cli`: `main(argv)`, the command line (`_args`: its parser; `_fit`: ``fit``
  and its ``--check``; `_compare`: ``compare``).

Needs the ``eval`` extra (scikit-learn, numpy, matplotlib) for ``routellm`` and plots.
"""

from __future__ import annotations

from router._eval._cli import main
from router._eval._data import Dataset, DatasetError, Item, load_dataset, load_routellm, split
from router._eval._replay import ITEM_KEY, ReplayBackend
from router._eval._scorers import make_scorer

__all__ = [
    "ITEM_KEY",
    "Dataset",
    "DatasetError",
    "Item",
    "ReplayBackend",
    "load_dataset",
    "load_routellm",
    "main",
    "make_scorer",
    "split",
]
