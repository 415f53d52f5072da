"""Shared test setup: litellm must never reach for the network (its price map) in tests."""

from __future__ import annotations

import router  # noqa: F401  (sets LITELLM_LOCAL_MODEL_COST_MAP before any test imports litellm)
