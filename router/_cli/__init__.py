"""The ``router`` subcommands, one module each; `router.cli` is the entry point."""

from __future__ import annotations

import argparse


def config_argument(parser: argparse.ArgumentParser) -> None:
    """The optional config-file argument of the commands that read providers.toml."""
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help="config file (default: $ROUTER_CONFIG, else ./providers.toml)",
    )
