"""Process environment defaults that must hold before litellm is first imported."""

from __future__ import annotations

import os


def prepare_litellm_env() -> None:
    """Keep litellm off the network at import: use its bundled price map.

    litellm downloads its model price map at import unless `LITELLM_LOCAL_MODEL_COST_MAP` is set.
    A value the user already set is respected.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
