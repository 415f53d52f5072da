"""The config's raw sources: the TOML file alone is read without pydantic-settings, and gives
exactly what the pydantic-settings merge gives when no ``ROUTER_*`` variable overrides a value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router._env_sources import _SourcedConfig, gather
from router._loading import TOP_LEVEL, _overridden, _read

REPO = Path(__file__).resolve().parent.parent

FILES = {
    "repo": (REPO / "providers.toml").read_text(encoding="utf-8"),
    "demo": (REPO / "router" / "demo_providers.toml").read_text(encoding="utf-8"),
    "odd keys": """
unknown = 1
[Router]
deadline = 3
[[deployments]]
name = "a"
model = "m"
groups = ["g"]
[groups.g]
deadline = 2
[router]
max_attempts = "two"
""",
    "gateway first": """
[gateway]
port = 0
[[deployments]]
name = "a"
model = "m"
""",
    "empty": "",
}

NOT_OVERRIDES = {
    "ROUTER_CONFIG": "x.toml",
    "ROUTER_LITELLM_LOGGING": "1",
    "ROUTER_LITELLM_DEBUG_INFO": "1",
    "ROUTER_FOO": "1",
    "ROUTER_DEADLINE": "",  # empty counts as unset
    "ROUTER_ROUTER__DEADLINE": "",
    "OTHER_ROUTER_DEADLINE": "5",
    "ROUTERDEADLINE": "5",
}


def test_top_level_tables_match_the_settings_model() -> None:
    assert tuple(_SourcedConfig.model_fields) == TOP_LEVEL


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_alone_reads_as_pydantic_settings_does(name: str, tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text(FILES[name], encoding="utf-8")
    assert not _overridden(NOT_OVERRIDES)
    fast = _read(path, NOT_OVERRIDES, "providers.toml")
    merged = gather(path, NOT_OVERRIDES, "providers.toml")
    assert fast == merged
    assert list(fast) == list(merged)  # the same order: problems are listed in that order


@pytest.mark.parametrize(
    "name",
    [
        "ROUTER_DEADLINE",
        "router_max_attempts",
        "ROUTER_ROUTER",
        "ROUTER_ROUTER__DEADLINE",
        "Router_Groups__chat__deadline",
        "ROUTER_DEPLOYMENTS",
        "ROUTER_TELEMETRY__TRACING",
        "ROUTER_STATE",
        "ROUTER_ROUTES",
        "ROUTER_CLASSIFIERS__X__MODEL",
        "ROUTER_GATEWAY__PORT",
    ],
)
def test_every_override_name_takes_the_merging_path(name: str) -> None:
    assert _overridden({name: "1"})
    assert not _overridden({name: ""})


def test_check_without_overrides_does_not_import_pydantic_settings() -> None:
    code = (
        "import sys; from router.cli import main; "
        f"rc = main(['check', {str(REPO / 'providers.toml')!r}]); "
        "assert 'pydantic_settings' not in sys.modules, 'pydantic_settings was imported'; "
        "raise SystemExit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ROUTER_")}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
