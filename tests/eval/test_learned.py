"""Learned policies: the JSON artifact scores exactly as the scikit-learn models it came from,
loads without scikit-learn, and the calibration margin behaves as documented."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from router._eval._data import Item, load_routellm
from router._eval._fit import export_policy
from router._eval._learn import fit_threshold
from router._eval._models import AnswerConfidence, PromptGainModel
from router._learned import LearnedError, LearnedPolicy, char_grams, load_policy, tokens


def _items(n: int = 160) -> list[Item]:
    return list(load_routellm("gsm8k").items[:n])


def test_tokens_are_what_scikit_learn_vocabularies_are_built_from() -> None:
    assert tokens("Wendi's 3 chickens, 25 cups!") == ["wendi", "chickens", "25", "cups"]
    assert tokens("a b cd ef gh", ngrams=2) == ["cd", "ef", "gh", "cd ef", "ef gh"]


def test_char_grams_stay_within_words_and_mark_their_edges() -> None:
    assert char_grams("Ab cd", 2, 3) == [" a", "ab", "b ", " ab", "ab ", " c", "cd", "d ",
                                         " cd", "cd "]  # fmt: skip
    assert char_grams("x", 2, 5) == [" x", "x ", " x "] and char_grams("  ", 2, 5) == []


@pytest.mark.parametrize("text", [("words",), ("chars",), ("words", "chars")])
def test_the_artifact_scores_as_the_fitted_scikit_learn_models(text: tuple[str, ...]) -> None:
    items = _items()
    prompts = [it.prompt for it in items]
    weak = [it.correct["weak"] for it in items]
    strong = [it.correct["strong"] for it in items]
    model = PromptGainModel((), seed=0, text=text).fit(prompts, [{}] * len(items), weak, strong)
    document = {
        "format": "router.learned/1",
        "role": "route",
        "threshold": 0.1,
        "score": {"plus": "strong", "minus": "weak"},
        "features": model.blocks(),
        "models": model.models(),
    }
    runtime = LearnedPolicy(json.loads(json.dumps(document)))
    expected = model.score(prompts, [{}] * len(items))
    assert [runtime.score(p) for p in prompts] == pytest.approx(expected, abs=1e-9)
    # Unseen text too (words outside the vocabulary are ignored, as scikit-learn does).
    other = ["How many legs do 7 spiders and 3 zebras have?", ""]
    assert [runtime.score(p) for p in other] == pytest.approx(
        model.score(other, [{}, {}]), abs=1e-9
    )


def test_exported_trees_predict_as_the_gradient_boosted_model() -> None:
    rng = random.Random(3)
    rows = [[rng.random(), rng.random() * 10, float(rng.random() < 0.3)] for _ in range(300)]
    labels = [r[0] + 0.1 * r[1] - r[2] > 0.7 for r in rows]
    model = AnswerConfidence(seed=0).fit(rows, labels)
    document = {
        "format": "router.learned/1",
        "role": "answer",
        "threshold": 0.5,
        "score": {"minus": "right"},
        "features": [],
        "models": {"right": model.export(offset=0)},
    }
    runtime = LearnedPolicy(document)
    for row, p in zip(rows[:60], model.probability(rows[:60]), strict=True):
        x = {i: v for i, v in enumerate(row) if v}
        assert runtime.models["right"].probability(x) == pytest.approx(p, abs=1e-9)


def test_bad_artifacts_get_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(LearnedError, match=r"bad\.json: not a learned policy"):
        load_policy(bad)
    bad.write_text("not json")
    with pytest.raises(LearnedError, match="not a JSON learned policy"):
        load_policy(bad)
    with pytest.raises(LearnedError, match="cannot read"):
        load_policy(tmp_path / "missing.json")
    document = {
        "format": "router.learned/1",
        "role": "route",
        "threshold": 0,
        "score": {"plus": "s"},
        "features": [{"type": "pickle"}],
    }
    with pytest.raises(LearnedError, match=r"features\[0\]: unknown type 'pickle'"):
        LearnedPolicy(document)
    tfidf = {"type": "tfidf", "vocabulary": ["ab"], "idf": [1.0]}
    document["features"] = [{**tfidf, "analyzer": "bytes"}]
    with pytest.raises(LearnedError, match=r"features\[0\]: unknown analyzer 'bytes'"):
        LearnedPolicy(document)
    document["features"] = [{**tfidf, "analyzer": "char_wb", "ngram_range": [5, 2]}]
    with pytest.raises(LearnedError, match=r"'ngram_range' must be \[low, high\]"):
        LearnedPolicy(document)


def test_a_wider_margin_costs_more_strong_calls_and_none_is_the_old_rule() -> None:
    rng = random.Random(0)
    n = 400
    scores = [rng.random() for _ in range(n)]
    strong = [rng.random() < 0.85 for _ in range(n)]
    weak = [s and rng.random() > sc for s, sc in zip(strong, scores, strict=True)]
    plain = fit_threshold(scores, weak, strong, 0.95)
    assert plain.low is None and plain.bound is None
    shares = []
    for confidence in (0.5, 0.75, 0.9, 0.97):
        found = fit_threshold(scores, weak, strong, 0.95, confidence=confidence)
        assert found.bound is not None and found.low is not None and found.high is not None
        assert found.low < found.train_quality < found.high
        if found.reached:
            assert found.bound >= 0.95 - 1e-12
        shares.append(found.train_share)
    assert shares == sorted(shares) and shares[-1] > shares[0]
    # Confidence 0.5 is z = 0: the same setting as no margin.
    assert fit_threshold(scores, weak, strong, 0.95, confidence=0.5).value == plain.value
    # A bigger new batch is a smaller margin.
    small = fit_threshold(scores, weak, strong, 0.95, confidence=0.9, new_items=100)
    large = fit_threshold(scores, weak, strong, 0.95, confidence=0.9, new_items=100_000)
    assert small.train_share >= large.train_share


def test_fit_exports_data_only_and_the_runtime_loads_it_without_scikit_learn(
    tmp_path: Path,
) -> None:
    from router._eval._data import Dataset

    items = _items(200)
    dataset = Dataset("gsm8k-small", tuple(items), ("weak", "strong"), "<test>")
    done = export_policy(dataset, "cascade", tmp_path / "policy", confidence=0.9)
    document = json.loads(done.artifact.read_text())
    assert document["format"] == "router.learned/1" and document["role"] == "answer"
    assert document["fitted"]["items"] == 200 and document["fitted"]["confidence"] == 0.9
    low, high = document["fitted"]["expected_interval_95"]
    assert low < document["fitted"]["expected_quality"] < high
    curve = document["fitted"]["curve"]  # the trade: share -> expected quality on new data
    assert [r["strong_share"] for r in curve] == sorted(r["strong_share"] for r in curve)
    assert all(r["low"] < r["bound"] < r["expected_quality"] < r["high"] for r in curve)
    assert math.isfinite(document["threshold"])
    snippet = done.snippet.read_text()
    assert 'kind = "learned"' in snippet and "learned:gsm8k-small-cascade" in snippet
    assert f'path = "{done.artifact.as_posix()}"' in snippet
    # The production side: load and score in a process where scikit-learn cannot import.
    code = (
        "import sys; sys.modules['sklearn'] = None; sys.modules['numpy'] = None\n"
        "import router\n"
        "from router._learned import load_policy\n"
        f"p = load_policy({str(done.artifact)!r})\n"
        "print(p.role, p.answer_problem('What is 2+3?', {}, 'It is 2+3 = <<2+3=6>>6. #### 6'))\n"
        "assert 'litellm' not in sys.modules and 'sklearn' not in sys.modules or "
        "sys.modules['sklearn'] is None\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.startswith("answer arithmetic: <<2+3=6>> is wrong"), out.stdout


@pytest.mark.parametrize("policy", ["classifier-first", "cascade"])
async def test_the_exported_policy_makes_the_decisions_the_eval_replay_made(
    tmp_path: Path, policy: str
) -> None:
    """Fit -> export -> serve: a production Router loading the exported providers.toml
    (``kind = "learned"``, the artifact read from its path) routes and escalates every item
    exactly as the eval replay of the fitted policy did."""
    from router._eval._data import Dataset
    from router._eval._harness import Runner, replay_judge
    from router._eval._policies import BINDINGS, STRONG_DEPLOYMENT, PolicySpec
    from router._eval._replay import ReplayBackend
    from router._loading import load_config

    items = _items(200)
    dataset = Dataset("small", tuple(items), ("weak", "strong"), "<test>")
    done = export_policy(dataset, policy, tmp_path / "policy", confidence=0.9)
    config = load_config(done.example)
    assert [c.kind for c in config.classifiers.values()] == ["learned"]

    def runner() -> Runner:
        backend = ReplayBackend(items, BINDINGS)
        return Runner(backend, strong={STRONG_DEPLOYMENT}, judge=replay_judge(BINDINGS))

    replayed = await runner().run(done.spec, items)
    served = await runner().run(
        PolicySpec("production", "configured", "-", done.spec.model, config), items
    )

    def decisions(run: object) -> list[tuple[object, ...]]:
        return [
            (r.id, r.deployment, r.reached_strong, r.escalated, r.review, r.correct)
            for r in run.items  # type: ignore[attr-defined]
        ]

    assert decisions(served) == decisions(replayed)
    strong = sum(r.reached_strong for r in served.items)
    assert 0 < strong < len(items)  # it does route: some items each way
    if policy == "cascade":  # and the learned score decides, not only the hard rules
        from router._learned import rule_problem

        rules = json.loads(done.artifact.read_text())["rules"]
        ruled = sum(rule_problem(it.answers["weak"], rules) is not None for it in items)
        assert strong > ruled


def test_config_problems_with_learned_classifiers_name_the_key(tmp_path: Path) -> None:
    from router import Router
    from router._config import Config, ConfigError

    base = {
        "deployments": [
            {"name": "w", "model": "openai/w", "groups": ["weak"]},
            {"name": "s", "model": "openai/s", "groups": ["strong"]},
        ]
    }
    with pytest.raises(ConfigError, match=r"classifiers\.gate\.path: a learned classifier needs"):
        Config.from_dict({**base, "classifiers": {"gate": {"kind": "learned"}}})
    groups = {"weak": {"escalate_to": "strong", "escalate_on": ["learned:gaet"]}}
    with pytest.raises(ConfigError, match="no learned classifier named 'gaet'"):
        Config.from_dict({**base, "groups": groups})
    missing = {"gate": {"kind": "learned", "path": str(tmp_path / "nope.json")}}
    groups = {"weak": {"escalate_to": "strong", "escalate_on": ["learned:gate"]}}
    config = Config.from_dict({**base, "groups": groups, "classifiers": missing})
    with pytest.raises(ConfigError, match=r"classifiers\.gate: .*nope\.json: cannot read"):
        Router(config, telemetry=False)


async def test_reload_rebuilds_the_learned_answer_checks(tmp_path: Path) -> None:
    """Router.reload re-reads a cascade's artifact: a refit (here: the threshold moved to
    "always", then to "never", where only the hard rules escalate) takes effect without a
    restart; a reload whose artifact cannot load raises ConfigError and the old checks keep
    working."""
    from router import Router
    from router._config import ConfigError
    from router._decision import get_decision
    from router._eval._data import Dataset
    from router._eval._policies import BINDINGS
    from router._eval._replay import ITEM_KEY, ReplayBackend
    from router._learned import rule_problem
    from router._loading import load_config
    from router.testing import FakeClock

    items = _items(120)
    dataset = Dataset("small", tuple(items), ("weak", "strong"), "<test>")
    done = export_policy(dataset, "cascade", tmp_path / "policy", confidence=0.9)
    router = Router(
        load_config(done.example),
        backend=ReplayBackend(items, BINDINGS),
        clock=FakeClock(),
        telemetry=False,
    )

    async def escalated() -> int:
        count = 0
        for item in items:
            messages = [{"role": "user", "content": item.prompt}]
            response = await router.acompletion(
                "weak", messages, metadata={**item.metadata, ITEM_KEY: item.id}
            )
            decision = get_decision(response)
            assert decision is not None
            count += bool(decision.escalations)
        return count

    document = json.loads(done.artifact.read_text())
    rules = document["rules"]
    rules_only = sum(rule_problem(it.answers["weak"], rules) is not None for it in items)
    assert await escalated() >= rules_only
    for mtime, (threshold, want) in enumerate(((-1e9, len(items)), (1e9, rules_only)), 1):
        done.artifact.write_text(json.dumps({**document, "threshold": threshold}))
        os.utime(done.artifact, (mtime, mtime))  # a new mtime on a coarse file system too
        router.reload(load_config(done.example))
        assert await escalated() == want
    assert 0 < rules_only < len(items)

    done.artifact.write_text("{not json")
    os.utime(done.artifact, (3, 3))
    with pytest.raises(ConfigError, match=r"classifiers\.small-cascade: .*not a JSON"):
        router.reload(load_config(done.example))
    assert await escalated() == rules_only  # the old config and its checks still serve


def test_fit_check_says_the_production_router_decides_as_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``router eval fit --check``: the same decisions on every item; and the check sees a
    difference when the artifact production loads is not the one the replay fitted."""
    from router._eval import main
    from router._eval._data import Dataset, write_jsonl
    from router._eval._fit import check_export

    items = _items(120)
    data = tmp_path / "train.jsonl"
    write_jsonl(data, items)
    out = tmp_path / "policy"
    argv = ["fit", str(data), "--policy", "cascade", "--out", str(out), "--check", "fitted"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "made the eval replay's decisions on 120 of 120 items (fitted): the same" in printed

    done = export_policy(Dataset("small", tuple(items), ("weak", "strong")), "cascade", out)
    assert asyncio.run(check_export(done, items)).ok
    document = json.loads(done.artifact.read_text())
    document["threshold"] = -1.0  # production now escalates every weak answer
    done.artifact.write_text(json.dumps(document))
    check = asyncio.run(check_export(done, items))
    assert not check.ok and check.same < check.items and check.differences
    assert "escalated False vs True" in check.differences[0]
