"""`router eval run --live`: a user's JSONL file and scorer against the simulated fleet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from router._eval import main
from router._sim import Behavior, Fleet, Script

QUESTIONS = [
    ("What is 2+2?", "4", "4", "4"),
    ("What is 3*5?", "15", "16", "15"),
    ("Capital of France?", "Paris", "Lyon", "Paris"),
    ("Largest planet?", "Jupiter", "I'm not sure.", "Jupiter"),
]
"""(prompt, reference, the cheap provider's reply, the strong provider's reply)."""


def write_dataset(path: Path) -> None:
    with path.open("w") as handle:
        for prompt, reference, _, _ in QUESTIONS:
            handle.write(json.dumps({"prompt": prompt, "reference": reference}) + "\n")


def write_config(path: Path, fleet: Fleet) -> None:
    cheap, strong = fleet["cheap"].base_url, fleet["strong"].base_url
    path.write_text(f"""
[router]
deadline = 10.0

[[deployments]]
name = "cheap"
model = "openai/sim-cheap"
api_base = "{cheap}"
api_key = "sk-sim-local"
input_cost_per_token = 0.0000001
output_cost_per_token = 0.0000004
groups = ["fast"]

[[deployments]]
name = "strong"
model = "openai/sim-strong"
api_base = "{strong}"
api_key = "sk-sim-local"
input_cost_per_token = 0.000005
output_cost_per_token = 0.000015
groups = ["smart"]

[groups.fast]
escalate_to = "smart"
escalate_on = ["validator:not_unsure"]

[[routes]]
name = "arithmetic"
when.regex = "[0-9]"
group = "fast"

[[routes]]
name = "default"
group = "smart"
""")


def not_unsure(response: object, request: object) -> str | None:
    """Registered by --import: escalate answers that hedge."""
    text = response.choices[0].message.content or ""  # type: ignore[attr-defined]
    return "unsure" if "not sure" in text else None


def register() -> None:
    from router import register_validator

    register_validator("not_unsure", not_unsure)


register()


def test_a_users_jsonl_runs_live_against_the_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def scripts(column: int) -> list[Script]:
        return [Script(pattern=f"^{re.escape(q[0])}$", reply=q[column]) for q in QUESTIONS]

    fleet = Fleet(
        {
            "cheap": Behavior(latency_ms=1.0, scripts=scripts(2)),
            "strong": Behavior(latency_ms=1.0, scripts=scripts(3)),
        },
        seed=1,
    )
    data, config, records = tmp_path / "mine.jsonl", tmp_path / "eval.toml", tmp_path / "r.jsonl"
    write_dataset(data)
    with fleet.threaded():
        write_config(config, fleet)
        code = main(
            [
                "run",
                str(data),
                "--config",
                str(config),
                "--scorer",
                "exact",
                "--live",
                "--import",
                "tests.eval.test_live",
                "--records",
                str(records),
                "--out",
                str(tmp_path / "out"),
                "--json",
            ]
        )
        stats = fleet.stats()
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    rows = {r["policy"]: r for r in report["table"]}
    assert report["mode"] == "live" and report["strong_group"] == "smart"
    assert list(rows) == ["auto", "always fast", "always smart"]
    # auto: 2+2 and 3*5 go to fast (3*5 is wrong there); France and Jupiter to smart.
    assert rows["auto"]["accuracy"] == 0.75
    assert rows["auto"]["strong_share"] == 0.5
    # always fast: 4 right, 16 wrong, Lyon wrong, "not sure" escalates to smart: Jupiter.
    assert rows["always fast"]["accuracy"] == 0.5
    assert rows["always fast"]["escalation_rate"] == 0.25
    assert rows["always smart"]["accuracy"] == 1.0
    assert rows["auto"]["quality_vs_strong"] == 0.75
    assert rows["always smart"]["cost_per_item_usd"] > rows["auto"]["cost_per_item_usd"] > 0
    assert stats["cheap"]["requests"] == 2 + 4 and stats["strong"]["requests"] == 2 + 1 + 4
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert [r["type"] for r in lines].count("call") == 12  # one record per call
    assert [r["type"] for r in lines].count("outcome") == 12  # and the scorer's verdict
    assert (tmp_path / "out" / "mine.png").read_bytes().startswith(b"\x89PNG")


def test_replay_of_a_users_file_with_recorded_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rec.jsonl"
    with data.open("w") as handle:
        for prompt, reference, cheap, strong in QUESTIONS:
            handle.write(
                json.dumps(
                    {
                        "prompt": prompt,
                        "reference": reference,
                        "answers": {"fast": cheap, "smart": strong},
                    }
                )
                + "\n"
            )
    config = tmp_path / "eval.toml"
    config.write_text("""
[[deployments]]
name = "cheap"
model = "openai/sim-cheap"
output_cost_per_token = 0.001
groups = ["fast"]

[[deployments]]
name = "strong"
model = "openai/sim-strong"
output_cost_per_token = 0.01
groups = ["smart"]
""")
    code = main(["run", str(data), "--config", str(config), "--scorer", "exact", "--json"])
    assert code == 0, capsys.readouterr().err
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)["table"]}
    assert rows["always fast"]["accuracy"] == 0.25  # only "4"
    assert rows["always smart"]["accuracy"] == 1.0
    assert main(["run", str(data), "--config", str(config), "--policy", "nope"]) == 1


def test_the_shipped_example_runs_live_against_the_demo_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/eval/example as a new user runs it, with the demo config on ephemeral ports."""
    from router._sim import default_fleet

    root = Path(__file__).resolve().parents[2]
    example = root / "docs/eval/example/questions.jsonl"
    demo = (root / "router/demo_providers.toml").read_text()
    with default_fleet(ephemeral=True).threaded() as fleet:
        for name, port in (("alpha", 4101), ("beta", 4102), ("gamma", 4103)):
            demo = demo.replace(f"http://127.0.0.1:{port}/v1", fleet[name].base_url)
        config = tmp_path / "providers.toml"
        config.write_text(demo)
        code = main(["run", str(example), "--config", str(config), "--live",
                     "--scorer", r"regex:(?i)hello from (\w+)", "--policy", "chat",
                     "--policy", "alpha", "--policy", "beta", "--policy", "gamma"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split()[0] + " " + line.split()[1]: line for line in out.splitlines()[2:]}
    assert "100.0%" in rows["always chat"] and "100.0%" in rows["always alpha"]
    assert "0.0%" in rows["always beta"].split()[3]
