"""What a learned route classifier costs per call: scoring one prompt with an exported artifact.

Fits classifier-first's model on 1,500 MMLU items twice, with word TF-IDF (the baseline) and
with character n-grams within words, exports each as a `router._learned` artifact and times
`LearnedPolicy.score` (plain Python: what a production `kind = "learned"` classifier runs
per request) over 300 prompts, cold (the first round) and warm (later rounds; a char_wb
block remembers each word's grams). Prints median and spread over rounds, per prompt.

    ./dev python scripts/bench_learned.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from router._eval._data import load_routellm
from router._eval._families import route_document
from router._eval._models import PromptGainModel
from router._learned import LearnedPolicy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    items = list(load_routellm("mmlu").items[:1500])
    prompts = [it.prompt for it in items]
    metadata = [it.metadata for it in items]
    weak = [bool(it.correct["weak"]) for it in items]
    strong = [bool(it.correct["strong"]) for it in items]
    sample = list(zip(prompts[:300], metadata[:300], strict=True))
    print(f"scoring one MMLU prompt (mean {statistics.mean(len(p) for p, _ in sample):.0f} chars)")
    for text in (("words",), ("chars",)):
        model = PromptGainModel(("subject",), 0, text).fit(prompts, metadata, weak, strong)
        document = json.loads(json.dumps(route_document(model, 0.1)))
        policy = LearnedPolicy(document)
        rounds = []
        for _ in range(max(2, args.rounds)):
            started = time.perf_counter()
            for prompt, meta in sample:
                policy.score(prompt, meta)
            rounds.append((time.perf_counter() - started) / len(sample) * 1e6)
        warm = rounds[1:]
        print(
            f"  {'+'.join(text):6s} artifact {len(json.dumps(document)) / 1e6:.2f} MB; "
            f"cold {rounds[0]:.0f} us; warm median {statistics.median(warm):.0f} us "
            f"(range {min(warm):.0f}-{max(warm):.0f}) per prompt"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
