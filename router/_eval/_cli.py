"""The ``router eval`` command line: `main(argv)` (argv without the leading ``eval``).

::

    router eval routellm [--dataset gsm8k|mmlu|all] [--out DIR] [--json] [--seed N]
                         [--test-fraction F] [--splits N] [--data DIR] [--records DIR]
                         [--confidence C] [--new-items N] [--train FILE --test FILE]
    router eval run FILE --config PROVIDERS.toml [--scorer SPEC] [--live] [--policy MODEL]...
                         [--strong GROUP] [--bind DEPLOYMENT=MODEL]... [--import MODULE]...
                         [--concurrency N] [--out DIR] [--json] [--records FILE]
                         [--train FILE [--target T] [--confidence C] [--weak-group G]
                          [--strong-group G]]
    router eval fit DATA --policy classifier-first|cascade [--target 0.95] [--confidence C]
                         [--new-items N] --out DIR [--name NAME]
    router eval compare A.toml B.toml DATA [--model MODEL] [--max-drop POINTS] [--json] ...
    router eval split DATA --out DIR [--test-fraction F] [--seed N]

DATA is a dataset file (JSONL or CSV), ``gsm8k`` / ``mmlu`` (the shipped RouteLLM files), or
a router record file with outcomes (see `router._eval._records`).

Exit codes: 0 done; 1 a dataset, config or scorer problem (one line on stderr); 2 usage;
3 (compare) B's quality drop is significant beyond ``--max-drop``.
A progress bar goes to stderr when it is a terminal (``--no-progress`` turns it off);
``--json`` prints one JSON object on stdout and nothing else there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from router._eval._inputs import binding as _binding
from router._eval._inputs import load_data

__all__ = ["build_parser", "main"]

ROUTELLM_COMMAND = "./dev router eval routellm --dataset all --out docs/eval"
DEFAULT_SPLITS = {"gsm8k": 10, "mmlu": 3}
"""Repeated splits per dataset when --splits is not given: GSM8K's 425-item test side moves
a quality figure by about two points from one split to the next; MMLU's 4,700 by under one."""


def build_parser() -> argparse.ArgumentParser:
    """The ``router eval`` parser (its subcommands: routellm, run)."""
    parser = argparse.ArgumentParser(
        prog="router eval",
        description="Replay labelled data through the real routing path and compare policies "
        "on quality, cost and escalation.",
    )
    sub = parser.add_subparsers(dest="what", metavar="COMMAND")
    rl = sub.add_parser(
        "routellm",
        help="RouteLLM's GSM8K and MMLU data (data/routellm): fit on train, report on test",
        description="Fit every policy on the training split of RouteLLM's data and replay the "
        "test split through the router; print the table, calibration and goals.",
    )
    rl.add_argument("--dataset", choices=("gsm8k", "mmlu", "all"), default="all")
    rl.add_argument(
        "--data",
        default=None,
        help="directory of gsm8k.csv and mmlu.csv (default: ./data/routellm, else the checkout's)",
    )
    rl.add_argument("--seed", type=int, default=0, help="split and model seed (0)")
    rl.add_argument("--test-fraction", type=float, default=0.5, help="test share (0.5)")
    _margin(rl)
    rl.add_argument(
        "--train",
        default=None,
        metavar="FILE",
        help="fit on this file instead of a split (with --test; any dataset with weak and "
        "strong labels, e.g. last month's records)",
    )
    rl.add_argument(
        "--test", default=None, metavar="FILE", help="measure on this file (with --train)"
    )
    rl.add_argument(
        "--splits",
        type=int,
        default=None,
        help="also fit and measure the 95%% policies on this many splits (seeds SEED..); "
        f"default {DEFAULT_SPLITS['gsm8k']} for gsm8k, {DEFAULT_SPLITS['mmlu']} for mmlu; "
        "1 = the main split only",
    )
    _common(rl, records="a directory: one JSONL record file per policy (router report reads them)")

    run = sub.add_parser(
        "run",
        help="your JSONL/CSV dataset through your config, replayed or --live",
        description="Run a dataset (JSONL or CSV: prompt, optional id, reference, metadata, "
        "answers, correct) through a providers.toml, recorded answers replayed or live.",
    )
    run.add_argument("file", metavar="FILE", help="the dataset (.jsonl or .csv)")
    run.add_argument("--config", required=True, help="a providers.toml (the eval config)")
    run.add_argument(
        "--scorer", default=None, help="exact | regex:PATTERN | jsonschema:PATH | module:function"
    )
    run.add_argument("--live", action="store_true", help="call the real providers")
    run.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="MODEL",
        help="a model string to evaluate (repeatable; default: 'auto' when the "
        "config has routes, then every group)",
    )
    run.add_argument(
        "--strong",
        default=None,
        metavar="GROUP",
        help="the group counted as strong (default: the top of the escalation "
        "chain, else the priciest group)",
    )
    run.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="DEPLOYMENT=MODEL",
        help="replay: which dataset model a deployment answers as",
    )
    run.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module first (to register validators or classifiers)",
    )
    run.add_argument(
        "--train",
        default=None,
        metavar="FILE",
        help="also fit classifier-first (and the cascade, given weak answers) on FILE and "
        "measure them on the dataset beside the config's policies (train here, measure there)",
    )
    run.add_argument("--target", type=float, default=0.95, help="--train: quality target (0.95)")
    run.add_argument("--weak-group", default="weak", help="--train: the cheap group (weak)")
    run.add_argument("--strong-group", default="strong", help="--train: the strong group (strong)")
    _margin(run)
    run.add_argument("--concurrency", type=int, default=1, help="live: calls in flight (1)")
    run.add_argument("--seed", type=int, default=0, help="the routers' seed (0)")
    _common(run, records="a JSONL record file for every call (router report reads it)")

    ft = sub.add_parser(
        "fit",
        help="fit classifier-first or cascade on DATA and export it for providers.toml",
        description="Fit a learned policy on every item of DATA, calibrated so the target "
        "holds on new data at the given confidence; write the JSON artifact (no pickle), the "
        "providers.toml snippet that uses it, and a complete example config.",
    )
    ft.add_argument("data", metavar="DATA", help="dataset file, gsm8k / mmlu, or a record file")
    ft.add_argument("--policy", required=True, choices=("classifier-first", "cascade"))
    ft.add_argument("--target", type=float, default=0.95, help="fraction of strong quality (0.95)")
    _margin(ft)
    ft.add_argument("--out", required=True, metavar="DIR", help="where to write the files")
    ft.add_argument("--name", default=None, help="classifier name (default DATASET-POLICY)")
    ft.add_argument("--seed", type=int, default=0, help="fold and model seed (0)")
    ft.add_argument("--json", action="store_true", help="print the fit's figures as JSON")

    sp = sub.add_parser(
        "split",
        help="split DATA by prompt into train.jsonl and test.jsonl (to fit on one, measure "
        "on the other)",
        description="Split a dataset by prompt (seeded hash: a question never sits on both "
        "sides) and write DIR/NAME-train.jsonl and DIR/NAME-test.jsonl in the dataset format.",
    )
    sp.add_argument("data", metavar="DATA", help="dataset file, gsm8k / mmlu, or a record file")
    sp.add_argument("--out", required=True, metavar="DIR")
    sp.add_argument("--test-fraction", type=float, default=0.5, help="test share (0.5)")
    sp.add_argument("--seed", type=int, default=0)

    cp = sub.add_parser(
        "compare",
        help="two configs over the same items, paired: differences with 95% intervals",
        description="Replay DATA through config A and config B (same items, paired) and "
        "report the change in quality, cost per item, strong share, escalation and review "
        "rates with paired-bootstrap 95% intervals, and a one-line verdict.",
    )
    cp.add_argument("a", metavar="A.toml")
    cp.add_argument("b", metavar="B.toml")
    cp.add_argument("data", metavar="DATA", help="dataset file, gsm8k / mmlu, or a record file")
    cp.add_argument(
        "--model",
        default=None,
        help="the model string both configs are called with (default per config: 'auto' "
        "when it has routes, else its escalating group, else its first group)",
    )
    cp.add_argument("--model-a", default=None, help="override --model for A")
    cp.add_argument("--model-b", default=None, help="override --model for B")
    cp.add_argument(
        "--max-drop",
        type=float,
        default=0.0,
        metavar="POINTS",
        help="exit 3 when B's accuracy is lower than A's by more than this many percentage "
        "points with 95%% confidence (the whole interval below -POINTS; default 0)",
    )
    cp.add_argument("--bind", action="append", default=[], metavar="DEPLOYMENT=MODEL")
    cp.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE")
    cp.add_argument("--scorer", default=None, help="for items without labels")
    cp.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (2000)")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--json", action="store_true", help="print one JSON object")
    cp.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _margin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.9,
        help="calibrate so the target holds on new data with this probability (0.9); "
        "0 = no margin (the cheapest setting reaching the target on the training items)",
    )
    parser.add_argument(
        "--new-items",
        type=int,
        default=None,
        metavar="N",
        help="the size of the new batch the target must hold on (default: the training size)",
    )


def _common(parser: argparse.ArgumentParser, *, records: str) -> None:
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="write the plot (PNG), CSV and JSON here"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--records", default=None, help=records)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Bar:
    """A rich progress bar on stderr, or nothing (not a terminal, or turned off)."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    @contextmanager
    def running(self) -> Iterator[_Bar]:
        if self._progress is None:
            yield self
            return
        with self._progress:
            self._task = self._progress.add_task("starting", total=None)
            yield self

    def phase(self, description: str, total: int | None = None) -> None:
        """Start a phase: a new description and, if known, the calls it will make."""
        if self._progress is not None:
            self._progress.update(self._task, description=description, total=total, completed=0)

    def grow(self, calls: int) -> None:
        """More calls to come in this phase."""
        if self._progress is not None:
            task = self._progress.tasks[0]
            self._progress.update(self._task, total=(task.total or 0) + calls)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


def _recorders(directory: str | None, prefix: str) -> Callable[[Any], Any] | None:
    if directory is None:
        return None
    from router._records import Recorder

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)

    def observer(spec: Any) -> Any:
        slug = "".join(c if c.isalnum() else "-" for c in spec.name.lower()).strip("-")
        while "--" in slug:
            slug = slug.replace("--", "-")
        path = folder / f"{prefix}-{slug}.jsonl"
        path.unlink(missing_ok=True)  # one run per file: a rerun replaces it
        return Recorder(path, capture_content=True)  # the dataset's own text

    return observer


def _run_routellm(args: argparse.Namespace) -> int:
    from router._eval import _report
    from router._eval._data import DatasetError, load_routellm
    from router._eval._experiment import evaluate, plan, repeated

    names = ["gsm8k", "mmlu"] if args.dataset == "all" else [args.dataset]
    confidence = args.confidence or None
    bar = _Bar(not args.no_progress and sys.stderr.isatty() and not args.json)
    reports: list[dict[str, Any]] = []
    if (args.train is None) != (args.test is None):
        print("router eval: --train and --test go together", file=sys.stderr)
        return 2
    try:
        if confidence is not None and not 0 < confidence < 1:
            raise ValueError(f"--confidence {confidence}: a probability in (0, 1)")
        parts = None
        if args.train is not None:
            from router._eval._data import Split

            train, test = load_data(args.train), load_data(args.test)
            parts = Split(train.items, test.items, args.seed, 0.0)
            names = [args.dataset if args.dataset != "all" else _guess(train.name)]
        with bar.running():
            for name in names:
                bar.phase(f"{name}: loading and fitting on the training split")
                dataset = train if parts is not None else load_routellm(name, args.data)
                work = plan(
                    name,
                    seed=args.seed,
                    test_fraction=args.test_fraction,
                    dataset=dataset,
                    confidence=confidence,
                    new_items=args.new_items,
                    parts=parts,
                )
                bar.phase(f"{name}: replaying the test split", work.calls)
                report = asyncio.run(
                    evaluate(
                        name,
                        seed=args.seed,
                        test_fraction=args.test_fraction,
                        advance=bar.advance,
                        observer=_recorders(args.records, name),
                        prepared=work,
                    )
                )
                count = args.splits if args.splits is not None else DEFAULT_SPLITS[name]
                if count > 1 and parts is None:
                    bar.phase(f"{name}: {count} splits, fitting and replaying", 0)
                    report.splits = asyncio.run(
                        repeated(
                            report,
                            range(args.seed, args.seed + count),
                            dataset=dataset,
                            advance=bar.advance,
                            planned=bar.grow,
                        )
                    )
                reports.append(report.as_dict())
    except (DatasetError, ValueError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 1
    if args.out:
        out = _report.ensure_dir(args.out)
        for report_dict in reports:
            name = report_dict["dataset"]
            _report.plot(report_dict, out / f"{name}.png")
            _report.write_csv(out / f"{name}-curve.csv", report_dict["curve"])
            rows = [*report_dict["table"], *report_dict["calibration"]]
            _report.write_csv(out / f"{name}-results.csv", rows)
        kept = _kept_reports(out / "results.json", {r["dataset"] for r in reports})
        merged = sorted([*kept, *reports], key=lambda r: str(r["dataset"]))
        (out / "results.json").write_text(json.dumps({"datasets": merged}, indent=2) + "\n")
        section = _report.readme_section(merged, ROUTELLM_COMMAND, _relative(out))
        (out / "README_SECTION.md").write_text(section)
    if args.json:
        print(json.dumps({"datasets": reports}, indent=2))
        return 0
    for report_dict in reports:
        print("\n".join(_report.text_report(report_dict)))
        print()
    if args.out:
        print(
            f"wrote {args.out}/: PNG plots, CSV curves and tables, results.json, README_SECTION.md"
        )
    return 0


def _kept_reports(path: Path, replaced: set[str]) -> list[dict[str, Any]]:
    """The other datasets' reports of an earlier run into the same --out (one dataset per
    run, e.g. ``--dataset gsm8k`` then ``--dataset mmlu``, adds up to one results.json)."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")).get("datasets") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in earlier if isinstance(r, dict) and r.get("dataset") not in replaced]


def _guess(name: str) -> str:
    lowered = name.lower()
    return "mmlu" if "mmlu" in lowered else "gsm8k"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _run_file(args: argparse.Namespace) -> int:
    from router._config import ConfigError
    from router._eval import _report
    from router._eval._data import DatasetError
    from router._eval._run import run_dataset
    from router._eval._scorers import ScorerError, make_scorer
    from router._loading import load_config

    try:
        dataset = load_data(args.file)
        config = load_config(args.config)
        scorer = make_scorer(args.scorer) if args.scorer else None
        bindings = dict(_binding(b) for b in args.bind) or None
        for name in args.policy or ():
            if name != config.router.auto_model and not config.is_routable(name):
                raise ValueError(f"--policy {name!r}: no group or deployment of that name")
    except (DatasetError, ConfigError, ScorerError, ValueError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 1
    bar = _Bar(not args.no_progress and sys.stderr.isatty() and not args.json)
    observer = None
    if args.records:
        from router._records import Recorder

        recorder = Recorder(args.records, capture_content=True)  # the dataset's own text
        observer = lambda spec: recorder  # noqa: E731  # one file for every policy
    policies = args.policy or None
    extra: list[Any] = []
    if args.train is not None:
        import tempfile

        from router._eval._run import fitted_policies

        try:
            extra = fitted_policies(
                load_data(args.train),
                config,
                target=args.target,
                confidence=args.confidence or None,
                new_items=args.new_items,
                weak=args.weak_group,
                strong=args.strong_group,
                out=args.out or tempfile.mkdtemp(prefix="router-eval-fit-"),
                seed=args.seed,
            )
        except (DatasetError, ConfigError, ValueError) as exc:
            print(f"router eval: {exc}", file=sys.stderr)
            return 1
    try:
        with bar.running():
            from router._eval._run import default_policies

            count = len(policies or default_policies(config)) + len(extra)
            bar.phase(f"{dataset.name}: {'live' if args.live else 'replay'}", count * len(dataset))
            report = asyncio.run(
                run_dataset(
                    dataset,
                    config,
                    scorer=scorer,
                    live=args.live,
                    policies=policies,
                    strong=args.strong,
                    bindings=bindings,
                    imports=args.imports,
                    concurrency=args.concurrency,
                    seed=args.seed,
                    advance=bar.advance,
                    observer=observer,
                    extra=extra,
                )
            )
    except (ScorerError, LookupError, ValueError, ImportError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 1
    if args.out:
        out = _report.ensure_dir(args.out)
        _report.write_csv(out / f"{dataset.name}-results.csv", report["table"])
        _report.plot_points(report, out / f"{dataset.name}.png")
        (out / f"{dataset.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"== {report['dataset']}: {report['items']['test']} items, {report['mode']}, config "
        f"{report['config']}; strong = {report['strong_group'] or '-'}"
    )
    rows = [_report.table_cells(r) for r in report["table"]]
    print("\n".join("  " + line for line in _report.aligned(rows, _report.RESULT_COLUMNS)))
    for row in report["table"]:
        if row.get("note"):
            print(f"  {row['policy']}: {row['note']}")
    for note in report["notes"]:
        print(f"Note: {note}")
    return 0


def main(argv: Sequence[str]) -> int:
    """``router eval ...``: `argv` are the arguments after ``eval``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.what is None:
        parser.print_usage(sys.stderr)
        print(
            "router eval: error: a command is required (routellm, run, fit or compare)",
            file=sys.stderr,
        )
        return 2
    if args.what == "routellm":
        return _run_routellm(args)
    if args.what == "fit":
        return _run_fit(args)
    if args.what == "split":
        return _run_split(args)
    if args.what == "compare":
        from router._eval._compare import run_compare

        return run_compare(args)
    return _run_file(args)


def _run_split(args: argparse.Namespace) -> int:
    from router._eval._data import DatasetError, split, write_jsonl

    try:
        dataset = load_data(args.data)
        parts = split(dataset, args.test_fraction, args.seed)
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        train = folder / f"{dataset.name}-train.jsonl"
        test = folder / f"{dataset.name}-test.jsonl"
        write_jsonl(train, parts.train)
        write_jsonl(test, parts.test)
    except (DatasetError, ValueError, OSError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {train} ({len(parts.train)} items) and {test} ({len(parts.test)} items)")
    return 0


def _run_fit(args: argparse.Namespace) -> int:
    from router._eval._data import DatasetError
    from router._eval._fit import export_policy

    try:
        dataset = load_data(args.data)
        done = export_policy(
            dataset,
            args.policy,
            args.out,
            target=args.target,
            confidence=args.confidence or None,
            new_items=args.new_items,
            name=args.name,
            seed=args.seed,
        )
    except (DatasetError, ValueError, OSError) as exc:
        print(f"router eval: {exc}", file=sys.stderr)
        return 1
    figures = done.fitted
    if args.json:
        payload = {
            "artifact": str(done.artifact),
            "snippet": str(done.snippet),
            "example": str(done.example),
            "fitted": figures,
        }
        print(json.dumps(payload, indent=2))
        return 0
    low, high = figures["expected_interval_95"]
    interval = "" if low is None else f" (95% interval for new data: {low:.1%} to {high:.1%})"
    reached = "" if figures["reached"] else " -- target NOT reached: best setting used"
    print(
        f"fitted {args.policy} on {figures['items']} items of {figures['dataset']}: "
        f"{figures['setting']}{reached}\n"
        f"  strong share on train {figures['train_share']:.1%}; quality on its own training "
        f"items {figures['in_sample_quality']:.1%}; expected on new data "
        f"{figures['expected_quality']:.1%}{interval}"
    )
    curve = figures.get("curve") or []
    if curve:
        level = figures["confidence"] or 0.9
        print(
            f"  the trade (out-of-fold, {figures['new_items'] or figures['items']} new items): "
            f"strong share -> expected quality [95% interval], lower bound at {level:g}"
        )
        share = figures["train_share"]
        nearest = min(range(len(curve)), key=lambda i: abs(curve[i]["strong_share"] - share))
        for i, row in enumerate(curve):
            mark = f" <- nearest the fitted {share:.1%}" if i == nearest else ""
            print(
                f"    {row['strong_share']:5.1%} -> {row['expected_quality']:6.1%} "
                f"[{row['low']:.1%}, {row['high']:.1%}], bound {row['bound']:.1%}{mark}"
            )
    print(f"wrote {done.artifact} (the policy), {done.snippet} (providers.toml snippet),")
    print(f"      {done.example} (a complete config to replay it). The snippet:\n")
    print(done.snippet_text)
    return 0
