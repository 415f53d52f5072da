"""``router check``: validate the config and print the routing table (never imports litellm)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from router._cli import config_argument
from router._config import ENV_REF_PREFIX, Config, ConfigError, Deployment, RouterSettings
from router._loading import check_config, load_config
from router._redact import safe_url
from router._tables import Section, print_sections

if TYPE_CHECKING:
    pass

__all__ = ["check_arguments", "run_check"]

_COLUMNS = (
    "deployment",
    "model",
    "api_base",
    "in $/1M",
    "out $/1M",
    "timeout",
    "max ctx",
    "key",
    "weight",
    "tags",
    "params",
)
# Columns shown only when some row of the table differs from this value.
_OPTIONAL = {"weight": "1", "tags": "-", "params": "-"}
_NAMES = ("deployment", "model", "api_base", "key", "tags", "params")
"""Columns of names (left-aligned on a terminal; the others are figures)."""


def _per_million(cost: float | None) -> str:
    if cost is None:
        return "litellm map"
    per_million = float(f"{cost * 1_000_000:.6g}")  # drop float noise: 1e-7 * 1e6 != 0.1
    cents = per_million * 100
    return f"{per_million:.2f}" if abs(cents - round(cents)) < 1e-9 else f"{per_million:g}"


def _api_base(value: str | None) -> str:
    if value is None:
        return "provider default"
    if value.startswith(ENV_REF_PREFIX):
        return f"env {value[len(ENV_REF_PREFIX) :]}"
    # Credentials in a URL are as secret as a key: show the host only.
    return safe_url(value, user=False)


def _row(dep: Deployment, settings: RouterSettings) -> dict[str, str]:
    timeout = f"{dep.timeout:g} s" if dep.timeout else f"{settings.timeout:g} s (default)"
    context = f"{dep.max_context_tokens:,}" if dep.max_context_tokens else "litellm map"
    return {
        "deployment": dep.name,
        "model": dep.model,
        "api_base": _api_base(dep.api_base),
        "in $/1M": _per_million(dep.input_cost_per_token),
        "out $/1M": _per_million(dep.output_cost_per_token),
        "timeout": timeout,
        "max ctx": context,
        "key": dep.key_source(),
        "weight": f"{dep.weight:g}",
        "tags": ", ".join(dep.tags) or "-",
        "params": ", ".join(dep.litellm_params) or "-",  # keys only: values may be secrets
    }


def _section(title: str, rows: list[dict[str, str]]) -> Section:
    return Section(title, _columns(rows), rows, left=_NAMES, no_wrap=("deployment", "key"))


def _sections(config: Config) -> list[Section]:
    """A table per group, then one of the deployments that are in no group."""
    sections = []
    for group in config.group_names():
        s = config.settings_for(group)
        title = f"group {group}: deadline {s.deadline:g} s, max_attempts {s.max_attempts}"
        sections.append(_section(title, [_row(d, s) for d in config.deployments_in(group)]))
    loose = [d for d in config.deployments if not d.groups]
    if loose:
        s = config.router
        title = (
            f"no group (callers use the deployment's name): deadline {s.deadline:g} s,"
            f" max_attempts {s.max_attempts}"
        )
        sections.append(_section(title, [_row(d, s) for d in loose]))
    return sections


def _columns(rows: list[dict[str, str]]) -> tuple[str, ...]:
    return tuple(
        c for c in _COLUMNS if c not in _OPTIONAL or any(r[c] != _OPTIONAL[c] for r in rows)
    )


def check_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument(
        "--diff",
        nargs=2,
        metavar=("OLD", "NEW"),
        default=None,
        help="print what a reload from OLD to NEW would change (exit 1 if NEW is invalid)",
    )


def _run_check_diff(old_path: str, new_path: str) -> int:
    from router._diff import diff_configs

    try:
        old = load_config(old_path)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    try:
        new = load_config(new_path)
    except ConfigError as exc:
        print(
            f"{new_path}: invalid; a reload would be refused and change nothing:", file=sys.stderr
        )
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    print("\n".join(diff_configs(old, new).lines()))
    return 0


def run_check(args: argparse.Namespace) -> int:
    """``router check``: 0 if the config is usable (warnings allowed), 1 on any problem."""
    if getattr(args, "diff", None):
        return _run_check_diff(*args.diff)
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print_sections(_sections(config))
    findings = check_config(config)
    errors = sum(1 for f in findings if f.startswith("error:"))
    groups = len(config.group_names())
    print(
        f"{config.source}: {len(config.deployments)} deployment(s), {groups} group(s);"
        f" {errors} problem(s), {len(findings) - errors} warning(s)"
    )
    sys.stdout.flush()  # the table first, then the findings, when both go to a terminal
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if errors else 0
