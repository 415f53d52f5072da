"""GSM8K output checks, scorers and the dataset format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router._answers import (
    FEATURE_NAMES,
    answer_features,
    arithmetic_problem,
    evaluate,
    final_answer,
    final_answer_problem,
)
from router._eval._data import DatasetError, Item, load_dataset
from router._eval._scorers import ScorerError, make_scorer

ITEM = Item(id="q", prompt="p", reference="72")


def test_calculator_annotations_are_recomputed() -> None:
    assert arithmetic_problem("half is <<48/2=24>>24, then <<24+48=72>>72\n#### 72") is None
    assert arithmetic_problem("money <<1,200*3=3,600>> and <<10/3=3.33>>") is None
    assert "is wrong" in (arithmetic_problem("so <<48/2=25>>25") or "")
    assert "cut off" in (arithmetic_problem("so 15 + 25 = <<15+2") or "")
    assert arithmetic_problem("<<20%*50=10>> units are not plain arithmetic") is None
    assert evaluate("2*(3+4)-1") == 13 and evaluate("1/0") is None
    assert evaluate("__import__('os')") is None  # text from a model is never eval'd


def test_final_answer() -> None:
    assert final_answer("steps...\n#### 1,234") == 1234
    assert final_answer("so she pays $64.") == 64
    assert final_answer_problem("#### 64") is None
    assert "not a whole number" in (final_answer_problem("#### 12.5") or "")
    assert final_answer_problem("I cannot tell.") == "no final answer"
    features = answer_features("Tom has 3 apples and 4 pears.", "3 + 4 = <<3+4=7>>7\n#### 7")
    assert len(features) == len(FEATURE_NAMES)
    named = dict(zip(FEATURE_NAMES, features, strict=True))
    assert named["question_numbers_unused"] == 0.0 and named["steps"] == 1.0


def test_scorers(tmp_path: Path) -> None:
    assert make_scorer("exact")("  72 ", ITEM)
    assert not make_scorer("exact")("71", ITEM)
    with pytest.raises(ScorerError, match="no 'reference'"):
        make_scorer("exact")("x", Item(id="n", prompt="p"))
    assert make_scorer(r"regex:#### (\d+)")("...\n#### 72", ITEM)
    assert not make_scorer(r"regex:#### (\d+)")("#### 70", ITEM)
    assert make_scorer("regex:(?i)hello")("Hello there", ITEM)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["total"]}))
    json_scorer = make_scorer(f"jsonschema:{schema}")
    assert json_scorer('{"total": 3}', ITEM)
    assert json_scorer('```json\n{"total": 3}\n```', ITEM)
    assert not json_scorer('{"sum": 3}', ITEM) and not json_scorer("total: 3", ITEM)
    assert make_scorer("tests.eval.test_checks_and_scorers:ends_with_reference")("is 72", ITEM)
    for bad in ("nope", "regex:(", "jsonschema:/no/such.json", "os.path:no_such_function"):
        with pytest.raises(ScorerError):
            make_scorer(bad)


def ends_with_reference(answer: str, item: Item) -> bool:
    """A `module:function` scorer for the test above."""
    return answer.endswith(item.reference or "")


def test_jsonl_and_csv_formats(tmp_path: Path) -> None:
    jsonl = tmp_path / "mine.jsonl"
    lines = [
        {
            "prompt": "2+2?",
            "reference": "4",
            "metadata": {"topic": "math"},
            "answers": {"cheap": "4", "big": "4"},
            "correct": {"cheap": True, "big": True},
        },
        {"id": "two", "prompt": "Capital of France?", "reference": "Paris"},
    ]
    jsonl.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    data = load_dataset(jsonl)
    assert [it.id for it in data.items] == ["mine-1", "two"]
    assert data.models == ("cheap", "big")
    assert data.items[0].metadata == {"topic": "math"}

    table = tmp_path / "mine.csv"
    table.write_text(
        "prompt,subject,weak_correct,weak_response,strong_correct\n"
        "q1,law,True,A,False\nq2,art,false,,1\n"
    )
    data = load_dataset(table)
    assert data.models == ("weak", "strong")
    assert data.items[1].correct == {"weak": False, "strong": True}
    assert data.items[0].metadata == {"subject": "law"}

    for text, message in (
        ('{"prompt": ""}', "non-empty"),
        ('{"prompt": "x", "extra": 1}', "unknown field"),
        ('{"prompt": "x", "correct": {"a": "maybe"}}', "true or false"),
        ("not json", "not JSON"),
    ):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text + "\n")
        with pytest.raises(DatasetError, match=message):
            load_dataset(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    with pytest.raises(DatasetError, match="duplicate id"):
        load_dataset(dup)
