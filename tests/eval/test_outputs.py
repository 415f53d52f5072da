"""The command line: the plot file, CSVs, JSON and README section are produced."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from router._eval import main
from router._eval._data import routellm_dir


def small_copy(tmp_path: Path, rows: int = 120) -> Path:
    """The first rows of the shipped GSM8K file (the real columns, a quick run)."""
    source = routellm_dir() / "gsm8k.csv"
    csv.field_size_limit(1 << 24)
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        kept = [row for _, row in zip(range(rows), reader, strict=False)]
        fields = reader.fieldnames
    assert fields is not None
    data = tmp_path / "data"
    data.mkdir()
    with (data / "gsm8k.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(kept)
    return data


def test_routellm_writes_the_plot_csv_json_and_readme_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = small_copy(tmp_path)
    out = tmp_path / "out"
    records = tmp_path / "records"
    code = main(
        [
            "routellm",
            "--dataset",
            "gsm8k",
            "--data",
            str(data),
            "--out",
            str(out),
            "--splits",
            "2",
            "--records",
            str(records),
            "--no-progress",
        ]
    )
    assert code == 0
    png = (out / "gsm8k.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    with (out / "gsm8k-curve.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    families = {row["family"] for row in curve}
    assert {"always-weak", "always-strong", "random", "classifier", "cascade"} <= families
    report = json.loads((out / "results.json").read_text())["datasets"][0]
    assert report["items"]["train"] + report["items"]["test"] == 120
    assert len(report["splits"]["seeds"]) == 2
    section = (out / "README_SECTION.md").read_text()
    assert "![GSM8K: quality against cost]" in section and "| policy |" in section
    assert any(records.glob("gsm8k-cascade-fitted-for-95.jsonl"))
    printed = capsys.readouterr().out
    assert "cascade (fitted for 95%)" in printed and "GSM8K goal" in printed


def test_json_goes_to_stdout_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = small_copy(tmp_path, rows=80)
    assert (
        main(["routellm", "--dataset", "gsm8k", "--data", str(data), "--splits", "1", "--json"])
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    table = document["datasets"][0]["table"]
    assert table[1]["policy"] == "always-strong" and table[1]["strong_share"] == 1.0


def test_usage_and_data_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["routellm", "--dataset", "nope"]) == 2
    assert main(["routellm", "--dataset", "mmlu", "--data", str(tmp_path)]) == 1
    assert "mmlu.csv: file not found" in capsys.readouterr().err


def test_one_dataset_per_run_adds_up_to_one_results_file(tmp_path: Path) -> None:
    from router._eval._cli import _kept_reports

    path = tmp_path / "results.json"
    assert _kept_reports(path, {"gsm8k"}) == []  # no earlier run
    path.write_text(json.dumps({"datasets": [{"dataset": "gsm8k", "v": 1}, {"dataset": "mmlu"}]}))
    assert _kept_reports(path, {"gsm8k"}) == [{"dataset": "mmlu"}]
    path.write_text("{not json")
    assert _kept_reports(path, {"gsm8k"}) == []
