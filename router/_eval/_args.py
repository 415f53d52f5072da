"""The ``router eval`` argument parser: its subcommands and options (usage: `router._eval._cli`)."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_SPLITS", "build_parser"]

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
    ft.add_argument(
        "--check",
        default=None,
        metavar="DATA",
        help="then replay DATA (a dataset, gsm8k / mmlu, a record file, or 'fitted' for the "
        "items just fitted) through the eval's policy and through a Router loaded from the "
        "written example config, as production loads it; print how many decisions agree "
        "(exit 4 when one differs)",
    )

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
