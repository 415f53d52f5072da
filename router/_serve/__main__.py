"""``python -m router._serve``: the same as ``router serve``."""

from router._serve._server import run_cli

raise SystemExit(run_cli())
