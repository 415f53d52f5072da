"""Rendering: tables (terminal and Markdown), CSV, the quality-cost plot, the README section.

Every figure rendered here was computed by the harness from decision records on the test
split; this module only formats. Rates are shown as percentages, costs in US dollars.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CURVE_COLUMNS",
    "RESULT_COLUMNS",
    "TABLE_COLUMNS",
    "aligned",
    "calibration_lines",
    "markdown_table",
    "plot",
    "plot_points",
    "readme_section",
    "table_cells",
    "text_report",
    "write_csv",
]

RESULT_COLUMNS = (
    "policy",
    "setting",
    "accuracy",
    "% of strong",
    "$ / item",
    "$ / correct",
    "strong calls",
    "escalated",
    "review",
)
"""A run's columns (``router eval run``: nothing fitted)."""
TABLE_COLUMNS = (*RESULT_COLUMNS[:2], "train", "expected on new data", *RESULT_COLUMNS[2:])
"""``router eval routellm``'s: the fitted rows' training figures beside the test's."""
CURVE_COLUMNS = (
    "dataset",
    "family",
    "policy",
    "setting",
    "items",
    "accuracy",
    "quality_vs_strong",
    "strong_share",
    "escalation_rate",
    "review_rate",
    "cost_per_item_usd",
    "cost_per_correct_usd",
    "train_share",
    "target",
)
_FAMILY_STYLE: Mapping[str, tuple[str, str]] = {
    "random": ("random mix", "tab:gray"),
    "rule:length": ("rule: prompt length", "tab:orange"),
    "rule:subject": ("rule: subject", "tab:purple"),
    "classifier": ("classifier-first", "tab:blue"),
    "cascade": ("cascade", "tab:green"),
}


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage, ``-`` for None."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def usd(value: float | None) -> str:
    """Dollars with four significant digits, ``-`` for None."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    digits = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:.{digits}f}"


def expected_cell(row: Mapping[str, Any]) -> str:
    """The cross-validated quality on train and its 95% interval for new data, or '-'."""
    if row.get("train_quality") is None:
        return "-"
    if row.get("expected_low") is None:
        return pct(row["train_quality"])
    return (
        f"{pct(row['train_quality'])} ({100 * row['expected_low']:.1f}-"
        f"{100 * row['expected_high']:.1f})"
    )


def table_cells(row: Mapping[str, Any]) -> dict[str, str]:
    """One result row (`RunResult.row`) as display strings."""
    return {
        "policy": str(row["policy"]),
        "setting": str(row["setting"]),
        "train": pct(row.get("in_sample_quality")),
        "expected on new data": expected_cell(row),
        "accuracy": pct(row["accuracy"]),
        "% of strong": pct(row["quality_vs_strong"]),
        "$ / item": usd(row["cost_per_item_usd"]),
        "$ / correct": usd(row["cost_per_correct_usd"]),
        "strong calls": pct(row["strong_share"]),
        "escalated": pct(row["escalation_rate"]),
        "review": pct(row["review_rate"]),
    }


def markdown_table(rows: Iterable[Mapping[str, str]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table; text columns left-aligned, figures right-aligned."""
    rows = list(rows)
    left = {"policy", "setting", "target", "family"}
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join(":---" if c in left else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(r.get(c, "") for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def aligned(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> list[str]:
    widths = [max(len(c), *(len(r.get(c, "")) for r in rows)) for c in columns]
    left = {"policy", "setting", "target", "family"}

    def cell(text: str, column: str, width: int) -> str:
        return text.ljust(width) if column in left else text.rjust(width)

    lines = ["  ".join(cell(c, c, w) for c, w in zip(columns, widths, strict=True))]
    for row in rows:
        lines.append(
            "  ".join(cell(row.get(c, ""), c, w) for c, w in zip(columns, widths, strict=True))
        )
    return lines


_CALIBRATION_COLUMNS = (
    "target",
    "policy",
    "setting",
    "train: strong calls",
    "train",
    "expected on new data",
    "% of strong",
    "strong calls",
    "$ / item",
)


def calibration_rows(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """The calibration as display rows: per target, every family's train-fitted setting."""
    rows = []
    for row in sorted(
        report["calibration"], key=lambda r: (r["target"] or 0.0, r["train_share"] or 0.0)
    ):
        rows.append(
            {
                "target": pct(row["target"], 0),
                "policy": str(row["policy"]).split(" (fitted")[0],
                "setting": str(row["setting"]),
                "train: strong calls": pct(row["train_share"]),
                "train": pct(row.get("in_sample_quality")),
                "expected on new data": expected_cell(row),
                "% of strong": pct(row["quality_vs_strong"]),
                "strong calls": pct(row["strong_share"]),
                "$ / item": usd(row["cost_per_item_usd"]),
            }
        )
    return rows


def calibration_lines(report: Mapping[str, Any]) -> list[str]:
    """ "The cheapest setting that reaches X% of strong quality", one sentence per target."""
    out = []
    targets = sorted({r["target"] for r in report["calibration"] if r["target"] is not None})
    for target in targets:
        rows = [r for r in report["calibration"] if r["target"] == target]
        rows = [r for r in rows if r["family"] != "random"] or rows
        best = min(rows, key=lambda r: r["train_share"] if r["train_share"] is not None else 1.0)
        verdict = "reached" if (best["quality_vs_strong"] or 0.0) >= target else "missed"
        out.append(
            f"{pct(target, 0)} of strong quality: cheapest on train is "
            f"{str(best['policy']).split(' (fitted')[0]} ({best['setting']}), "
            f"{pct(best['train_share'])} strong calls on train; on test "
            f"{pct(best['quality_vs_strong'])} of strong ({verdict}) with "
            f"{pct(best['strong_share'])} strong calls, {usd(best['cost_per_item_usd'])} per item"
        )
    return out


_SPLIT_COLUMNS = (
    "policy",
    "mean % of strong",
    "lowest",
    "mean strong calls",
    "highest",
    "quality target held",
    "splits meeting goal",
)


def split_rows(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """The repeated-split check as display rows."""
    splits = report.get("splits")
    if not splits:
        return []
    count = len(splits["seeds"])
    rows = []
    for name, entry in splits["policies"].items():
        rows.append(
            {
                "policy": name,
                "mean % of strong": pct(entry["mean_quality"]),
                "lowest": pct(entry["min_quality"]),
                "mean strong calls": pct(entry["mean_strong_share"]),
                "highest": pct(entry["max_strong_share"]),
                "quality target held": f"{entry.get('splits_quality_held', '-')} of {count}",
                "splits meeting goal": f"{entry['splits_meeting_goal']} of {count}",
            }
        )
    return rows


def goal_lines(report: Mapping[str, Any]) -> list[str]:
    """The goal and whether it was met, with the baselines beside it."""
    goal = report["goal"]
    pick = goal["pick"]
    name = report["dataset"].upper() if report["dataset"] == "mmlu" else "GSM8K"
    head = (
        f"{name} goal: >= {pct(goal['quality'], 0)} of strong quality with <= "
        f"{pct(goal['max_strong_share'], 0)} of calls reaching the strong model (a random mix "
        f"needs {pct(goal['random_mix_share'], 0)}; RouteLLM's pre-call routers about "
        f"{pct(goal['routellm_share'], 0)})."
    )
    lines = [head]
    if pick is not None:
        verdict = "MET" if goal["met"] else "NOT MET"
        expected = ""
        if pick.get("expected_low") is not None:
            expected = (
                f" (expected on new data {expected_cell(pick)}"
                f", fitted at confidence {pick['confidence']:g}; {pct(pick['train_share'])} "
                "strong calls on train)"
            )
        lines.append(
            f"Seed-{report['seed']} split, the policy the training split picks "
            f"({pick['policy']}): {pct(pick['quality'])} of strong with "
            f"{pct(pick['strong_share'])} strong calls: {verdict}{expected}."
        )
        splits = report.get("splits")
        entry = splits["policies"].get(pick["policy"]) if splits else None
        if splits and entry is not None:
            mean = "met" if entry["mean_meets_goal"] else "not met"
            lines.append(
                f"Over {len(splits['seeds'])} splits (seeds {splits['seeds'][0]}-"
                f"{splits['seeds'][-1]}, each fitted on its own train side): mean "
                f"{pct(entry['mean_quality'])} of strong with {pct(entry['mean_strong_share'])} "
                f"strong calls ({mean} on average); the quality target held on "
                f"{entry.get('splits_quality_held', '-')} of {len(splits['seeds'])} splits, "
                f"both limits on {entry['splits_meeting_goal']}."
            )
    return lines


def text_report(report: Mapping[str, Any]) -> list[str]:
    """The whole report of one dataset as plain text lines."""
    items = report["items"]
    lines = [
        f"== {report['dataset']}: {items['train']} train / {items['test']} test items "
        f"(split by prompt, seed {report['seed']}); figures on the test split",
    ]
    lines += [
        "  " + line for line in aligned([table_cells(r) for r in report["table"]], TABLE_COLUMNS)
    ]
    lines.append("")
    lines.append("Calibration (settings fitted on train, figures on test):")
    lines += ["  " + line for line in calibration_lines(report)]
    rows = split_rows(report)
    if rows:
        lines.append("")
        lines.append("Repeated splits (the 95% policies):")
        lines += ["  " + line for line in aligned(rows, _SPLIT_COLUMNS)]
    lines.append("")
    lines += goal_lines(report)
    repro = report["reproduction"]
    if repro:
        lines.append(
            f"Reproduction on all {repro['items']} items: weak {pct(repro['weak'])}, strong "
            f"{pct(repro['strong'])}, oracle {pct(repro['oracle'])}, random mix needs "
            f"{pct(repro['random_share_95'], 0)} for 95% "
            f"({'matches' if repro['matches'] else 'DIFFERS FROM'} data/routellm/README.md)"
        )
    lines += [f"Note: {n}" for n in report["notes"]]
    return lines


def write_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """The curve (or table) rows as CSV with `CURVE_COLUMNS`."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, CURVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in CURVE_COLUMNS})


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def plot(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The quality-cost curve: % of strong quality against cost per item and strong share."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    curve = report["curve"]
    ends = {r["family"]: r for r in curve if r["family"] in ("always-weak", "always-strong")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for axis, x_key, x_label in (
        (axes[0], "cost_per_item_usd", "cost per item (USD)"),
        (axes[1], "strong_share", "share of calls reaching the strong model"),
    ):
        for family, (label, color) in _FAMILY_STYLE.items():
            points = [r for r in curve if r["family"] == family]
            if not points:
                continue
            line = [ends["always-weak"], *points, ends["always-strong"]] if ends else points
            line = sorted(line, key=lambda r: (r["strong_share"], r[x_key]))
            axis.plot(
                [r[x_key] for r in line],
                [100 * r["quality_vs_strong"] for r in line],
                marker="o",
                markersize=3,
                linewidth=1.4,
                color=color,
                label=label,
            )
            fitted = [r for r in points if r["target"] == 0.95]
            axis.scatter(
                [r[x_key] for r in fitted],
                [100 * r["quality_vs_strong"] for r in fitted],
                s=70,
                facecolors="none",
                edgecolors=color,
                linewidths=1.6,
            )
        oracle = [r for r in report["table"] if r["family"] == "oracle"]
        for r in oracle:
            axis.scatter(
                [r[x_key]],
                [100 * r["quality_vs_strong"]],
                marker="*",
                s=140,
                color="gold",
                edgecolors="black",
                linewidths=0.6,
                zorder=5,
                label="oracle (reads labels)",
            )
        for key, marker in (("always-weak", "s"), ("always-strong", "D")):
            if key in ends:
                r = ends[key]
                axis.scatter(
                    [r[x_key]],
                    [100 * r["quality_vs_strong"]],
                    marker=marker,
                    s=45,
                    color="black",
                    zorder=5,
                    label=key,
                )
        axis.axhline(95, color="red", linestyle="--", linewidth=0.9, label="95% of strong")
        goal = report["goal"]["max_strong_share"]
        if x_key == "strong_share":
            axis.axvline(
                goal,
                color="red",
                linestyle=":",
                linewidth=0.9,
                label=f"goal: <= {goal:.0%} strong calls",
            )
            axis.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        axis.set_xlabel(x_label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy, % of always-strong")
    name = "GSM8K" if report["dataset"] == "gsm8k" else report["dataset"].upper()
    items = report["items"]
    fig.suptitle(
        f"{name}: quality against cost on the test split ({items['test']} items; "
        f"settings fitted on {items['train']} train items; circles: fitted for 95%)",
        fontsize=10,
    )
    handles, labels = axes[1].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_points(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """A user dataset's policies as points: accuracy against cost per item."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.5, 4.4))
    for row in report["table"]:
        axis.scatter([row["cost_per_item_usd"]], [100 * row["accuracy"]], s=50)
        axis.annotate(
            str(row["policy"]),
            (row["cost_per_item_usd"], 100 * row["accuracy"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    axis.set_xlabel("cost per item (USD)")
    axis.set_ylabel("accuracy (%)")
    axis.grid(alpha=0.3)
    axis.set_title(
        f"{report['dataset']}: {report['items']['test']} items, {report['mode']}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def readme_section(
    reports: Sequence[Mapping[str, Any]], command: str, out: str = "docs/eval"
) -> str:
    """The README section: how to reproduce, the tables, the plots, the goals, honestly."""
    prices = reports[0]["prices"] if reports else {}
    price_lines = [
        f"{name}: ${1e6 * p['input_cost_per_token']:.2f} / ${1e6 * p['output_cost_per_token']:.2f}"
        f" per 1M input / output tokens ({p['source']})"
        for name, p in prices.items()
    ]
    lines = [
        "### Measure before you route: `router eval`",
        "",
        "`router eval` replays labelled data through the same `Router` a production call goes "
        "through (rules, classifiers, escalation, engine, decision records, observers), with a "
        "replay backend in place of the providers: each deployment answers with its model's "
        "recorded answer and costs what that answer's tokens cost (litellm's token counter on "
        "the prompt and the recorded text, times the config's per-token prices). Every "
        "figure below comes out of the calls' decision records. Every tunable setting is "
        "fitted on a training split; every figure is on the test split (split by prompt, so a "
        "question never sits on both sides; seed 0).",
        "",
        "Reproduce the tables and plots from the shipped data (10 minutes on this shared "
        "2-core machine, under load; "
        "`data/routellm/README.md` gives the data's provenance):",
        "",
        "```sh",
        command,
        "# the same without the CLI entry: ./dev python scripts/eval_routellm.py --out docs/eval",
        "```",
        "",
        "The policies, each a router config:",
        "",
        '- **always-weak / always-strong**: `model="weak"` / `model="strong"`.',
        "- **random mix**: a route classifier flipping a seeded coin per item; its share is "
        "fitted like any other setting.",
        "- **oracle**: reads each item's labels (the weak model when it is right, else the "
        "strong one): the upper bound, not a policy.",
        "- **rule: prompt length**: `[[routes]] when.min_prompt_tokens = N` to the strong "
        "group; **rule: subject** (MMLU): `when.metadata.subject = [...]`, the subjects whose "
        "training gain (strong accuracy minus weak accuracy) clears the fitted bar.",
        "- **classifier-first**: a route classifier scoring P(strong right) - P(weak right) "
        "from the prompt (two logistic regressions on TF-IDF of the prompt, its length and, "
        "for MMLU, the subject), the expected gain of paying for the strong model; fitted "
        "with scikit-learn, exported as a JSON artifact and scored by `router._learned` in "
        'plain Python, the code production runs (`kind = "learned"`). No embedding model '
        "could be loaded offline from a trustworthy package, so none is used.",
        "- **cascade** (GSM8K): the weak group answers; the answer escalates to the strong "
        "group when a hard check fails (empty, a calculator annotation `<<48/2=24>>` that does "
        "not recompute, no whole-number final answer) or when the expected gain of escalating, "
        "P(strong right | prompt) - P(weak right | prompt, answer), clears the fitted bar "
        "(gradient-boosted trees over 50 features of the answer and question, logistic "
        "regression on the prompt). The strong answer gets the hard checks again and goes to "
        "human review if it fails (the review column). Production runs it as "
        '`escalate_on = ["learned:NAME"]`. MMLU records no answer text, so no output check '
        "has anything to read there: its cascade row equals always-weak.",
        "",
        "**Calibration with a margin.** The cheapest setting that reaches 95% on the training "
        "items lands below 95% on new items about half the time. Every fitted setting here is "
        "the cheapest whose *lower confidence bound* reaches the target: the quality "
        "estimated from out-of-fold scores on the training split (5 folds by prompt), minus "
        "z(confidence) times its standard error on a new batch as large as the training "
        "split (the estimate's own uncertainty plus the new batch's sampling noise; "
        "`--confidence 0.9`, `--new-items N`). Columns *train* (the final model on its own "
        "training items: optimistic) and *expected on new data* (the cross-validated "
        "estimate with its 95% interval for such a batch) sit beside the test figures; rows "
        "marked *no margin* and *confidence 0.75* are the same family fitted without the "
        "margin or with a smaller one.",
        "",
        "Columns: accuracy on the test split; % of strong = accuracy / always-strong accuracy; "
        "cost per item and per correct item; strong calls = share of calls with an attempt on "
        "the strong model, escalated ones included; escalated and review rates. Prices:",
        "",
        *[f"- {line}" for line in price_lines],
        "",
    ]
    for report in reports:
        name = "GSM8K" if report["dataset"] == "gsm8k" else report["dataset"].upper()
        items = report["items"]
        repro = report["reproduction"]
        lines += [
            f"#### {name} ({items['train']} train / {items['test']} test items)",
            "",
            markdown_table([table_cells(r) for r in report["table"]], TABLE_COLUMNS),
            "",
            f"![{name}: quality against cost]({out}/{report['dataset']}.png)",
            "",
            *[f"{line}  " for line in goal_lines(report)],
            "",
            f"Reproduction on all {repro['items']} items: weak {pct(repro['weak'])}, strong "
            f"{pct(repro['strong'])}, oracle {pct(repro['oracle'])}; a random mix needs "
            f"{pct(repro['random_share_95'], 0)} strong calls for 95% of strong quality "
            f"({'as' if repro['matches'] else 'NOT as'} data/routellm/README.md states).",
            "",
            "Calibration, the cheapest setting whose lower confidence bound reaches X% of "
            "strong quality (fitted on train, measured on test):",
            "",
            markdown_table(calibration_rows(report), _CALIBRATION_COLUMNS),
            "",
        ]
        rows = split_rows(report)
        if rows:
            lines += [
                "Repeated splits (each fitted on its own train side, measured on its test "
                "side; how much of one split's result is luck; *quality target held*: the "
                "95% target reached on the test side):",
                "",
                markdown_table(rows, _SPLIT_COLUMNS),
                "",
            ]
        lines += [f"- {n}" for n in report["notes"]]
        lines.append("")
    lines += [
        "Your own data: a JSONL or CSV file (`prompt`, optional `id`, `reference`, `metadata`, "
        "per-model `answers` and `correct`) runs through your providers.toml, replayed from "
        "recorded answers or `--live` against the real providers with a scorer (`exact`, "
        "`regex:PATTERN`, `jsonschema:PATH` or `module:function`); `--json` prints the "
        "figures for machines, `--records FILE` keeps every decision for `router report`. "
        "A four-line example against the demo fleet is in `docs/eval/example/`:",
        "",
        "```sh",
        "./dev python scripts/fleet.py &",
        "./dev router eval run docs/eval/example/questions.jsonl "
        "--config router/demo_providers.toml \\",
        "    --live --scorer 'regex:(?i)hello from (\\w+)' --policy chat --policy alpha "
        "--policy beta --policy gamma",
        "```",
        "",
    ]
    return "\n".join(lines)


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and parents) if needed."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
