"""Reproduce the README's model-routing table and plots from the shipped RouteLLM data.

    python scripts/eval_routellm.py                      # both datasets, printed
    python scripts/eval_routellm.py --out docs/eval      # and the PNG, CSV, JSON, README text

The same as ``router eval routellm --dataset all [...]``; any of that command's options may
be given (``--dataset gsm8k``, ``--seed``, ``--splits``, ``--json``...).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from router._eval import main
except ImportError:
    # Run from a checkout without `pip install -e .`: the package sits next to scripts/.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from router._eval import main


if __name__ == "__main__":
    raise SystemExit(main(["routellm", *sys.argv[1:]]))
