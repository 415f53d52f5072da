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
                         [--new-items N] --out DIR [--name NAME] [--check DATA|fitted]
    router eval compare A.toml B.toml DATA [--model MODEL] [--max-drop POINTS] [--json] ...
    router eval split DATA --out DIR [--test-fraction F] [--seed N]

DATA is a dataset file (JSONL or CSV), ``gsm8k`` / ``mmlu`` (the shipped RouteLLM files), or
a router record file with outcomes (see `router._eval._records`).

Exit codes: 0 done; 1 a dataset, config or scorer problem (one line on stderr); 2 usage;
3 (compare) B's quality drop is significant beyond ``--max-drop``; 4 (fit ``--check``) the
production router loaded from the export decided an item differently from the eval replay.
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

from router._eval._args import DEFAULT_SPLITS, build_parser
from router._eval._inputs import binding as _binding
from router._eval._inputs import load_data

__all__ = ["build_parser", "main"]

ROUTELLM_COMMAND = "./dev router eval routellm --dataset all --out docs/eval"


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
    check = None
    if args.check is not None:
        from router._eval._fit import check_export

        try:
            source = dataset if args.check == "fitted" else load_data(args.check)
            items = [it for it in source.items if {"weak", "strong"} <= set(it.correct)]
            check = asyncio.run(check_export(done, items))
        except (DatasetError, LookupError, ValueError, OSError) as exc:
            print(f"router eval: --check: {exc}", file=sys.stderr)
            return 1
    code = 0 if check is None or check.ok else 4
    if args.json:
        payload = {
            "artifact": str(done.artifact),
            "snippet": str(done.snippet),
            "example": str(done.example),
            "fitted": figures,
        }
        if check is not None:
            payload["check"] = {
                "items": check.items,
                "same_decisions": check.same,
                "config": str(check.config),
                "differences": list(check.differences),
            }
        print(json.dumps(payload, indent=2))
        return code
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
    if figures.get("chosen"):
        print(f"  chosen by cross-validation on these items: {figures['chosen']}")
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
    if check is not None:
        print(
            f"check: {check.config} loaded as production loads it made the eval replay's "
            f"decisions on {check.same} of {check.items} items ({args.check}): "
            + ("the same" if check.ok else "NOT the same")
        )
        for line in check.differences:
            print(f"  differs: {line}")
    return code
