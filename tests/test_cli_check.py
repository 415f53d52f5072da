"""`router check`: the routing table, warnings, exit codes, no secrets, no litellm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-LEAK-CANARY-0123456789"

GOOD = """
[router]
deadline = 30.0
max_attempts = 4

[[deployments]]
name = "cheap"
model = "openai/gpt-4o-mini"
api_key = "os.environ/CHEAP_KEY"
input_cost_per_token = 0.00000015
output_cost_per_token = 0.0000006
timeout = 20.0
max_context_tokens = 128000
groups = ["chat"]

[[deployments]]
name = "mapped"
model = "anthropic/claude-3-5-haiku-20241022"
api_base = "https://user:hunter2@proxy.example:8443/v1"
groups = ["chat"]
weight = 2.0
[deployments.litellm_params]
api_version = "2024-10-21"

[[deployments]]
name = "loose"
model = "ollama/llama3"

[groups.chat]
deadline = 20.0
"""


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("ROUTER_") or n == "CHEAP_KEY"]:
        monkeypatch.delenv(name)


def write(text: str, name: str = "providers.toml") -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "router.cli", *args],
        capture_output=True, text=True, env={**base, **(env or {})}, timeout=60, check=False,
    )  # fmt: skip


def test_check_prints_the_routing_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHEAP_KEY", "k")
    assert main(["check", write(GOOD)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "group chat: deadline 20 s, max_attempts 4"
    header, cheap, mapped = lines[1:4]
    for column in ("deployment", "model", "api_base", "in $/1M", "out $/1M", "timeout",
                   "max ctx", "key", "weight", "params"):  # fmt: skip
        assert column in header
    assert "tags" not in header  # an optional column that no deployment uses
    # Columns are aligned: each value starts where its header does.
    assert cheap.index("openai/gpt-4o-mini") == header.index("model")
    assert mapped.index("60 s (default)") == header.index("timeout") == cheap.index("20 s")
    assert cheap.split() == ["cheap", "openai/gpt-4o-mini", "provider", "default", "0.15", "0.60",
                             "20", "s", "128,000", "env", "CHEAP_KEY", "1", "-"]  # fmt: skip
    assert "litellm map" in mapped and "env" not in mapped.split()
    assert "https://***@proxy.example:8443/v1" in mapped and "hunter2" not in out
    assert "api_version" in mapped and "2024-10-21" not in out  # params: keys only
    assert "no group (callers use the deployment's name): deadline 30 s, max_attempts 4" in out
    assert "loose" in out
    summary = "providers.toml: 3 deployment(s), 1 group(s); 0 problem(s), 1 warning(s)"
    assert out.rstrip().endswith(summary)
    assert err.splitlines() == [
        "warning: providers.toml: deployments[2] (loose).groups: in no group; callers can reach"
        " it only by its own name 'loose'"
    ]


def test_check_exits_1_when_an_env_reference_is_unset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", write(GOOD)]) == 1
    out, err = capsys.readouterr()
    assert "error: providers.toml: deployments[0] (cheap).api_key: environment variable" \
           " CHEAP_KEY is not set" in err.splitlines()  # fmt: skip
    assert "1 problem(s)" in out


def test_check_reports_every_config_error_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    bad = GOOD.replace("deadline = 30.0", "dedline = 30.0")
    bad = bad.replace("timeout = 20.0", "timeout = -1")
    assert main(["check", write(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "providers.toml: router: unknown key 'dedline' (did you mean 'deadline'?)",
        "providers.toml: deployments[0] (cheap).timeout: must be a number > 0 (got -1)",
    ]


def test_literal_key_never_appears_in_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.replace('"os.environ/CHEAP_KEY"', f'"{SECRET}"')
    text = text.replace('api_version = "2024-10-21"', f'aws_secret_access_key = "{SECRET}"')
    assert main(["check", write(text)]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out and SECRET not in err
    assert "literal" in out
    assert "deployments[0] (cheap).api_key: a literal key is in the file" in err
    assert "deployments[1] (mapped).litellm_params.aws_secret_access_key: a literal secret" in err
    # ...and not on the error path either.
    assert main(["check", write(text.replace("weight = 2.0", "weight = -2.0"))]) == 1
    out, err = capsys.readouterr()
    assert SECRET not in out and SECRET not in err


def test_rich_table_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHEAP_KEY", "k")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["check", write(GOOD)]) == 0
    out, _ = capsys.readouterr()
    assert "┃" in out or "│" in out  # a rich box, not plain text
    for text in ("group chat", "cheap", "openai/gpt-4o-mini", "0.15", "litellm map"):
        assert text in out
    assert "env CHEAP_KEY" in out


def test_path_defaults_to_router_config_then_providers_toml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHEAP_KEY", "k")
    write(GOOD, "other.toml")
    monkeypatch.setenv("ROUTER_CONFIG", "other.toml")
    assert main(["check"]) == 0
    assert "other.toml: 3 deployment(s)" in capsys.readouterr().out
    monkeypatch.delenv("ROUTER_CONFIG")
    assert main(["check"]) == 1
    assert capsys.readouterr().err.startswith("providers.toml: file not found")
    write(GOOD)
    assert main(["check"]) == 0


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["nope"]) == 2
    assert main(["check", "a.toml", "b.toml"]) == 2
    assert main(["check", "--help"]) == 0
    assert "ROUTER_CONFIG" in capsys.readouterr().out


def test_subcommands_come_from_the_command_table() -> None:
    assert [c.name for c in COMMANDS] == [
        "check",
        "health",
        "demo",
        "report",
        "eval",
        "review",
        "serve",
    ]
    help_text = build_parser().format_help()
    assert "check" in help_text and "routing table" in help_text
    assert "demo" in help_text and "simulated fleet" in help_text
    assert "health" in help_text and "health and breaker" in help_text


def test_subprocess_check_of_the_demo_config() -> None:
    result = run_cli("check", str(REPO / "providers.toml"))
    assert result.returncode == 0, result.stderr
    assert "group chat: deadline 8 s, max_attempts 3" in result.stdout
    # The mixed demo fleet: OpenAI (/v1), Anthropic, Gemini, Azure (litellm adds the paths).
    for name, port, cin, cout in [("alpha", 4101, "0.10", "0.40"), ("beta", 4102, "0.25", "1.00"),
                                  ("gamma", 4103, "0.50", "2.00"),
                                  ("delta", 4104, "0.75", "3.00")]:  # fmt: skip
        row = next(line for line in result.stdout.splitlines() if line.split()[:1] == [name])
        assert f"http://127.0.0.1:{port}" in row
        assert row.split()[3:5] == [cin, cout]
        assert "2 s" in row and "literal" in row
    assert "sk-sim-local" not in result.stdout + result.stderr
    assert result.stderr.count("a literal key is in the file") == 4


def test_subprocess_errors_have_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[router]\ndeadline = \n", encoding="utf-8")
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{path}: line 2, column 12: invalid TOML: ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    result = run_cli("check", str(path), env={"ROUTER_DEADLINE": "abc"})
    assert "Traceback" not in result.stderr
    missing = run_cli("check", str(tmp_path / "missing.toml"))
    assert missing.returncode == 1 and "file not found" in missing.stderr
    assert run_cli("check", "--bogus").returncode == 2


def test_check_does_not_import_litellm() -> None:
    code = (
        "import sys; from router.cli import main; "
        f"rc = main(['check', {str(REPO / 'providers.toml')!r}]); "
        "assert 'litellm' not in sys.modules, 'litellm was imported'; "
        "raise SystemExit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
