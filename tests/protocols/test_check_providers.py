"""`router check`: provider blocks that load but cannot work, one line each naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from router._config import Config
from router._loading import check_config

SECRET = "sk-LEAK-CANARY-protocols-0123"


def _config(*deployments: dict[str, Any]) -> Config:
    entries = [{"groups": ["chat"], **d} for d in deployments]
    return Config.from_dict({"deployments": entries}, source="providers.toml")


def _errors(config: Config, env: dict[str, str] | None = None) -> list[str]:
    return [f for f in check_config(config, env=env or {}) if f.startswith("error:")]


def test_azure_without_api_version_is_reported() -> None:
    config = _config({"name": "az", "model": "azure/gpt-4o", "api_key": SECRET})
    [line] = _errors(config)
    assert "deployments[0] (az).litellm_params.api_version" in line
    assert _errors(config, {"AZURE_API_VERSION": "2024-10-21"}) == []
    pinned = _config(
        {"name": "az", "model": "azure/gpt-4o", "api_key": SECRET,
         "litellm_params": {"api_version": "2024-10-21"}}
    )  # fmt: skip
    assert _errors(pinned) == []


def test_bedrock_without_region_is_reported() -> None:
    config = _config(
        {"name": "br", "model": "bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0",
         "litellm_params": {"aws_access_key_id": "os.environ/AWS_KEY"}}
    )  # fmt: skip
    env = {"AWS_KEY": "x"}
    [line] = _errors(config, env)
    assert "deployments[0] (br).litellm_params.aws_region_name" in line
    assert _errors(config, {**env, "AWS_REGION": "eu-west-1"}) == []


def test_unknown_model_string_is_reported() -> None:
    config = _config(
        {"name": "typo", "model": "anthropc/claude-3-5-haiku-20241022", "api_key": SECRET},
        {"name": "bare", "model": "gpt-4o-mini", "api_key": SECRET},
    )
    lines = _errors(config)
    assert len(lines) == 1  # a bare OpenAI model name is one litellm knows
    assert "deployments[0] (typo).model" in lines[0]
    assert "anthropc/claude-3-5-haiku-20241022" in lines[0]


def _warnings(config: Config, env: dict[str, str] | None = None) -> list[str]:
    return [f for f in check_config(config, env=env or {}) if "api_key: not set" in f]


def test_missing_provider_key_is_named_by_its_variable() -> None:
    config = _config({"name": "claude", "model": "anthropic/claude-3-5-haiku-20241022"})
    [line] = _warnings(config)
    assert line.startswith("warning:")
    assert "deployments[0] (claude).api_key" in line and "ANTHROPIC_API_KEY" in line
    assert _warnings(config, {"ANTHROPIC_API_KEY": "x"}) == []
    proxied = _config(
        {"name": "claude", "model": "anthropic/claude-3-5-haiku-20241022",
         "api_base": "https://gateway.internal"}
    )  # fmt: skip
    assert _warnings(proxied) == []  # a gateway brings its own auth


def test_unset_env_reference_is_reported() -> None:
    config = _config(
        {"name": "g", "model": "gemini/gemini-2.0-flash", "api_key": "os.environ/GEMINI_KEY_X"}
    )
    [line] = _errors(config)
    assert "deployments[0] (g).api_key" in line and "GEMINI_KEY_X" in line


def test_local_servers_need_no_key() -> None:
    config = _config(
        {"name": "ollama", "model": "ollama/llama3.2", "api_base": "http://127.0.0.1:11434"},
        {"name": "vllm", "model": "hosted_vllm/qwen", "api_base": "http://127.0.0.1:8000/v1"},
    )
    assert _errors(config) == []


def test_check_names_keys_never_values_and_skips_litellm(tmp_path: Path) -> None:
    (tmp_path / "providers.toml").write_text(
        f"""
[[deployments]]
name = "az"
model = "azure/gpt-4o"
api_key = "{SECRET}"
groups = ["chat"]

[[deployments]]
name = "br"
model = "bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0"
groups = ["chat"]
[deployments.litellm_params]
aws_secret_access_key = "{SECRET}"
""",
        encoding="utf-8",
    )
    code = (
        "import sys; from router.cli import main; rc = main(['check']); "
        "print('LITELLM' if 'litellm' in sys.modules else 'NO-LITELLM'); sys.exit(rc)"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "NO-LITELLM" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert "(az).litellm_params.api_version" in done.stderr
    assert "(br).litellm_params.aws_region_name" in done.stderr
