"""Shared test setup: litellm must never reach for the network (its price map) in tests."""

from __future__ import annotations

import sys
from pathlib import Path

import router  # noqa: F401  (sets LITELLM_LOCAL_MODEL_COST_MAP before any test imports litellm)

# The benchmarks' development helpers (scripts/_redis_server.py: the throwaway Redis, ...) are
# imported by their module names, as the scripts themselves import them.
SCRIPTS = str(Path(__file__).resolve().parent.parent / "scripts")
if SCRIPTS not in sys.path:
    sys.path.append(SCRIPTS)
