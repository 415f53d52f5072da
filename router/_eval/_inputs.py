"""What ``router eval`` commands read from their arguments: datasets and ``--bind`` pairs.

Shared by the eval CLI (router._eval._cli) and ``router eval compare`` (router._eval._compare).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["binding", "load_data"]


def load_data(spec: str) -> Any:
    """A dataset from a file (JSONL/CSV or a record file), or ``gsm8k`` / ``mmlu``."""
    from router._eval._data import ROUTELLM, load_dataset, load_routellm
    from router._eval._records import is_record_file, load_records

    if spec in ROUTELLM and not Path(spec).exists():
        return load_routellm(spec)
    if is_record_file(spec):
        return load_records(spec)
    return load_dataset(spec)


def binding(text: str) -> tuple[str, str]:
    deployment, sep, model = text.partition("=")
    if not sep or not deployment or not model:
        raise ValueError(f"--bind {text!r}: use DEPLOYMENT=MODEL")
    return deployment, model
