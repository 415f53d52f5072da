"""compare (paired bootstrap, CI exit status), outcomes on record files, and review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router._eval import main
from router._eval._compare import compare_results
from router._eval._data import Dataset
from router._eval._harness import ItemResult
from router._eval._records import load_records
from router._review import cases, load, render_html
from router._review import review as review_file
from tests.eval.conftest import BINDINGS, tiny_config
from tests.eval.test_outputs import small_copy

CONFIG = """
[[deployments]]
name = "mixtral-8x7b"
model = "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1"
input_cost_per_token = 6e-07
output_cost_per_token = 6e-07
groups = ["weak"]

[[deployments]]
name = "gpt-4-1106"
model = "gpt-4-1106-preview"
input_cost_per_token = 1e-05
output_cost_per_token = 3e-05
groups = ["strong"]
"""


def _result(i: int, correct: bool, cost: float, strong: bool) -> ItemResult:
    return ItemResult(str(i), correct, cost, "x", strong, False, False, False)


def test_paired_intervals_see_a_small_consistent_change() -> None:
    # B is right on exactly the items A is, plus 10 of 400: a +2.5 point change that two
    # unpaired intervals (each about +-4.5 points wide) could not tell from noise.
    a = [_result(i, i % 3 != 0, 0.01, True) for i in range(400)]
    b = [_result(i, i % 3 != 0 or i in range(0, 30, 3), 0.005, False) for i in range(400)]
    found = compare_results(a, b, resamples=500, seed=1)
    point, low, high = found.changes["accuracy"]
    assert point == pytest.approx(0.025) and 0 < low <= point <= high < 0.05
    assert found.changes["cost_per_item"][0] == pytest.approx(-0.5)
    assert found.changes["strong_share"][:1] == (-1.0,)
    assert found.verdict.startswith("B is cheaper by 50% (50%..50%)")
    assert "B is better" in found.verdict and not found.quality_drop
    with pytest.raises(ValueError, match="same items"):
        compare_results(a, list(reversed(b)))


def test_compare_cli_exit_status_blocks_a_significant_quality_drop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_copy(tmp_path, rows=60) / "gsm8k.csv"
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(CONFIG)
    b.write_text(CONFIG)
    args = ["compare", str(a), str(b), str(data), "--model-a", "strong", "--model-b", "weak"]
    assert main([*args, "--max-drop", "5", "--resamples", "200"]) == 3
    printed = capsys.readouterr().out
    assert "B is cheaper by" in printed and "B is worse beyond the allowed 5 point(s)" in printed
    assert main([*args, "--max-drop", "60", "--resamples", "200", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    change = document["changes"]["accuracy"]
    assert change["high"] < 0 and document["exit_status"] == 0 and document["items"] == 60
    # The same config against itself: no change at all.
    assert main(["compare", str(a), str(a), str(data), "--model", "weak"]) == 0
    assert "quality change +0.0 points (+0.0..+0.0), not significant" in capsys.readouterr().out


async def _recorded(tmp_path: Path, tiny: Dataset, capture: bool = True) -> Path:
    """The tiny dataset through a cascade, recorded with content capture, plus outcomes."""
    import router
    from router._eval._replay import ReplayBackend
    from router._records import Recorder

    path = tmp_path / "records.jsonl"
    groups = {
        "weak": {"escalate_to": "strong", "escalate_on": ["validator:says_yes"]},
    }
    config = tiny_config(groups=groups)
    config["telemetry"] = {"enabled": False}

    def says_yes(response: object, request: object) -> str | None:
        text = response.choices[0].message.content  # type: ignore[attr-defined]
        return None if text == "yes" else f"said {text!r}"

    backend = ReplayBackend(list(tiny.items), BINDINGS)
    r = router.Router(
        config,
        backend=backend,
        observer=Recorder(path, capture_content=capture),
        telemetry=False,
        validators={"says_yes": says_yes},
    )
    responses = {}
    for it in tiny.items:
        prompt = it.prompt + (" <script>alert(1)</script>" if it.id == "c" else "")
        responses[it.id] = await r.acompletion(
            "weak", [{"role": "user", "content": prompt}], metadata={"eval_item": it.id}
        )
    router.record_outcome(responses["a"], "correct", path=path)
    router.record_outcome(responses["d"], "wrong", label="no", note="the user said so", path=path)
    router.record_outcome(responses["b"], "accepted", path=path)
    return path


async def test_outcomes_make_a_record_file_a_dataset_and_review_lists_the_cases(
    tmp_path: Path, tiny: Dataset
) -> None:
    path = await _recorded(tmp_path, tiny)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines].count("outcome") == 3
    assert all(line.get("response_id") for line in lines if line["type"] == "call")
    dataset = load_records(path)
    by_prompt = {it.prompt: it for it in dataset.items}
    assert by_prompt["question a"].correct == {"weak": True}
    assert by_prompt["question d"].correct == {"weak": False}
    assert by_prompt["question d"].reference == "no"
    # b escalated: the served answer (the strong group's) is the one the outcome is about;
    # what the weak group said first is recorded with the escalation (text, no label).
    weak_said = next(it for it in tiny.items if it.id == "b").answers["weak"]
    assert by_prompt["question b"].answers == {"strong": "yes", "weak": weak_said}
    assert by_prompt["question b"].correct == {"strong": True}
    (b_line,) = [c for c in lines if c.get("prompt") == "question b"]
    assert b_line["escalations"][0]["answer"] == weak_said
    assert any("no outcome" in note for note in dataset.notes)

    found = cases(load(path))
    kinds = sorted((c.kind, c.call.prompt) for c in found)
    assert ("wrong", "question d") in kinds
    escalated = [c for c in found if c.kind == "escalated"]
    assert {c.call.prompt for c in escalated} >= {"question b"}
    assert all(c.path.startswith("weak -> strong") for c in escalated)
    text, code = review_file(str(path), html_out=str(tmp_path / "review.html"))
    assert code == 0 and "== wrong: route (explicit group): marked wrong (1)" in text
    assert "label 'no': the user said so" in text
    assert f"weak said: {weak_said}" in text
    page = (tmp_path / "review.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page


async def test_without_content_capture_no_answer_text_is_recorded(
    tmp_path: Path, tiny: Dataset
) -> None:
    path = await _recorded(tmp_path, tiny, capture=False)
    calls = [json.loads(line) for line in path.read_text().splitlines()]
    calls = [c for c in calls if c["type"] == "call"]
    escalations = [e for c in calls for e in c["escalations"]]
    assert escalations and all("answer" not in e for e in escalations)
    assert all("prompt" not in c and "output" not in c for c in calls)


def test_review_without_content_says_so_and_bad_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    call = {
        "type": "call",
        "ts": 1.0,
        "group": "cheap",
        "route": "triage",
        "deployment": None,
        "outcome": "deadline_exceeded",
        "reason": "every deployment timed out",
        "escalations": [],
    }
    path.write_text(json.dumps(call) + "\n")
    text, code = review_file(str(path))
    assert code == 0 and "no content recorded (capture_content off)" in text
    assert "== failed: route triage: deadline_exceeded (1)" in text
    html_page = render_html(load(path), cases(load(path)), str(path))
    assert html_page.startswith("<!doctype html>")
    path.write_text("{not json\n")
    text, code = review_file(str(path))
    assert code == 1 and "line 1: not valid JSON" in text


def test_router_review_command_writes_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from router.cli import main as cli

    path = tmp_path / "r.jsonl"
    lines = [
        {
            "type": "call",
            "ts": 100.0 + i,
            "group": "strong",
            "route": "by-kind",
            "deployment": "large",
            "outcome": "success",
            "reason": "route 'by-kind': classifier said 'billing'",
            "escalations": [{"from": "cheap", "to": "strong", "trigger": "schema", "detail": "x"}],
            "response_id": f"r{i}",
        }
        for i in range(3)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "review.html"
    assert cli(["review", str(path), "--html", str(out), "--limit", "2"]) == 0
    printed = capsys.readouterr().out
    assert "== escalated: route by-kind: schema (3)" in printed
    assert "1 older case(s)" in printed
    # Newest first.
    assert printed.index("1970-01-01 00:01:42") < printed.index("1970-01-01 00:01:41")
    page = out.read_text()
    assert page.count("<details>") == 3 and "cheap -&gt; strong" in page
    assert cli(["review", str(tmp_path / "missing.jsonl")]) == 1


def test_split_then_train_here_measure_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_copy(tmp_path, rows=50) / "gsm8k.csv"
    assert main(["split", str(data), "--out", str(tmp_path / "split")]) == 0
    train, test = tmp_path / "split" / "gsm8k-train.jsonl", tmp_path / "split" / "gsm8k-test.jsonl"
    assert "wrote" in capsys.readouterr().out
    args = ["routellm", "--dataset", "gsm8k", "--train", str(train), "--test", str(test)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["datasets"][0]
    assert report["items"] == {"train": 25, "test": 25}
    assert report["reproduction"] is None and report["splits"] is None
    fitted = [r for r in report["table"] if r["policy"] == "cascade (fitted for 95%)"]
    assert fitted and fitted[0]["expected_low"] <= fitted[0]["train_quality"] <= 1.5
    assert main(["routellm", "--train", str(train)]) == 2


def test_run_fits_on_train_and_measures_on_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_copy(tmp_path, rows=50) / "gsm8k.csv"
    assert main(["split", str(data), "--out", str(tmp_path / "split")]) == 0
    config = tmp_path / "providers.toml"
    config.write_text(CONFIG)
    train, test = tmp_path / "split" / "gsm8k-train.jsonl", tmp_path / "split" / "gsm8k-test.jsonl"
    capsys.readouterr()
    args = ["run", str(test), "--config", str(config), "--train", str(train), "--json"]
    assert main([*args, "--out", str(tmp_path / "fitted")]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [row["policy"] for row in report["table"]]
    assert names[-2:] == [
        "classifier-first (fitted on gsm8k-train)",
        "cascade (fitted on gsm8k-train)",
    ]
    assert all(row["items"] == 25 for row in report["table"])
    assert (tmp_path / "fitted" / "gsm8k-train-cascade.json").is_file()
    # With --records, every call's verdict is recorded beside it: review lists the wrong ones.
    records = tmp_path / "records.jsonl"
    assert (
        main(
            [
                "run",
                str(test),
                "--config",
                str(config),
                "--policy",
                "weak",
                "--records",
                str(records),
            ]
        )
        == 0
    )
    text, code = review_file(str(records))
    wrong = sum(1 for line in records.read_text().splitlines() if '"outcome":"wrong"' in line)
    assert code == 0 and wrong > 0 and f"marked wrong ({wrong})" in text
