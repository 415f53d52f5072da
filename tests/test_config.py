"""providers.toml: the models, the loader, env overrides and every error message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from router._config import Config, ConfigError, Deployment, GroupSettings, RouterSettings
from router._loading import check_config, load_config

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-LEAK-CANARY-0123456789"

ALPHA = """
[[deployments]]
name = "alpha"
model = "openai/a"
groups = ["chat"]
"""
BETA = """
[[deployments]]
name = "beta"
model = "openai/b"
groups = ["chat"]
"""
VALID = f"""
[router]
deadline = 30.0
max_attempts = 3
{ALPHA}
api_key = "os.environ/ALPHA_KEY"
input_cost_per_token = 0.00000015
output_cost_per_token = 0.0000006
timeout = 20.0
max_context_tokens = 128000
tags = ["fast"]
[deployments.litellm_params]
api_version = "2024-10-21"
secret = "os.environ/ALPHA_SECRET"
[[deployments]]
name = "beta"
model = "openai/b"
api_base = "os.environ/BETA_BASE"
weight = 2.5
groups = ["chat", "big"]

[[deployments]]
name = "solo"
model = "ollama/llama3"

[groups.chat]
deadline = 20.0
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in an empty directory; messages then name the file as `providers.toml`."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("ROUTER_")]:
        monkeypatch.delenv(name)
    return tmp_path


def write(directory: Path, text: str, name: str = "providers.toml") -> str:
    (directory / name).write_text(text, encoding="utf-8")
    return name


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(Path.cwd(), text), env=env or {})
    return info.value.problems


# Each row: a malformed config, the env, and the exact problems reported (in order).
P = "providers.toml"
MALFORMED: list[tuple[str, str, dict[str, str], list[str]]] = [
    ("unknown router key", f"[router]\ndedline = 5\n{ALPHA}", {},
     [f"{P}: router: unknown key 'dedline' (did you mean 'deadline'?)"]),
    ("unknown key, nothing close", f"[router]\ncolour = 5\n{ALPHA}", {},
     [f"{P}: router: unknown key 'colour'"]),
    ("unknown top-level table", f"[routr]\ndeadline = 5\n{ALPHA}", {},
     [f"{P}: unknown key 'routr' (did you mean 'router'?)"]),
    ("top-level key case", f"[Router]\ndeadline = 5\n{ALPHA}", {},
     [f"{P}: unknown key 'Router' (did you mean 'router'?)"]),
    ("unknown deployment key", f'{ALPHA}api_bsae = "http://x"\n', {},
     [f"{P}: deployments[0] (alpha): unknown key 'api_bsae' (did you mean 'api_base'?)"]),
    ("unknown group key", f"{ALPHA}[groups.chat]\ndedline = 5\n", {},
     [f"{P}: groups.chat: unknown key 'dedline' (did you mean 'deadline'?)"]),
    ("source is not a key", f'source = "x"\n{ALPHA}', {},
     [f"{P}: unknown key 'source'"]),
    ("duplicate deployment names", ALPHA + ALPHA, {},
     [f"{P}: deployments[1] (alpha).name: duplicate deployment name 'alpha' "
      "(also deployments[0])"]),
    ("group table with no deployment", f"{ALPHA}[groups.chta]\ndeadline = 5\n", {},
     [f"{P}: groups.chta: no deployment is in group 'chta' (did you mean 'chat'?)"]),
    ("deployment without name", '[[deployments]]\nmodel = "openai/a"\n', {},
     [f"{P}: deployments[0]: missing required key 'name'"]),
    ("deployment without model", '[[deployments]]\nname = "alpha"\n', {},
     [f"{P}: deployments[0] (alpha): missing required key 'model'"]),
    ("empty name", '[[deployments]]\nname = ""\nmodel = "m"\n', {},
     [f"{P}: deployments[0].name: must be a non-empty string (got '')"]),
    ("negative price", f"{ALPHA}input_cost_per_token = -1\n", {},
     [f"{P}: deployments[0] (alpha).input_cost_per_token: must be a number >= 0 (got -1)"]),
    ("non-numeric price", f'{ALPHA}output_cost_per_token = "cheap"\n', {},
     [f"{P}: deployments[0] (alpha).output_cost_per_token: must be a number >= 0 (got 'cheap')"]),
    ("negative timeout", f"{ALPHA}timeout = -1\n", {},
     [f"{P}: deployments[0] (alpha).timeout: must be a number > 0 (got -1)"]),
    ("zero deadline", f"[router]\ndeadline = 0\n{ALPHA}", {},
     [f"{P}: router.deadline: must be a number > 0 (got 0)"]),
    ("infinite deadline", f"[router]\ndeadline = inf\n{ALPHA}", {},
     [f"{P}: router.deadline: must be a number > 0 (got inf)"]),
    ("boolean deadline", f"[router]\ndeadline = true\n{ALPHA}", {},
     [f"{P}: router.deadline: must be a number > 0 (got true)"]),
    ("max_attempts zero", f"[router]\nmax_attempts = 0\n{ALPHA}", {},
     [f"{P}: router.max_attempts: must be a whole number >= 1 (got 0)"]),
    ("max_attempts fractional", f"{ALPHA}[groups.chat]\nmax_attempts = 1.5\n", {},
     [f"{P}: groups.chat.max_attempts: must be a whole number >= 1 (got 1.5)"]),
    ("groups not a list", '[[deployments]]\nname = "a"\nmodel = "m"\ngroups = "chat"\n', {},
     [f"{P}: deployments[0] (a).groups: must be a list of strings (got 'chat')"]),
    ("groups with a number", '[[deployments]]\nname = "a"\nmodel = "m"\ngroups = ["x", 1]\n', {},
     [f"{P}: deployments[0] (a).groups[1]: must be a string (got 1)"]),
    ("negative weight", f"{ALPHA}weight = -0.5\n", {},
     [f"{P}: deployments[0] (alpha).weight: must be a number >= 0 (got -0.5)"]),
    ("zero max context", f"{ALPHA}max_context_tokens = 0\n", {},
     [f"{P}: deployments[0] (alpha).max_context_tokens: must be a whole number > 0 (got 0)"]),
    ("group named like a deployment", f'{ALPHA}{BETA.replace("chat", "alpha")}', {},
     [f"{P}: deployments[1] (beta).groups: group 'alpha' has the name of a deployment "
      "(deployments[0]); every deployment is already a group of its own name, so rename one"]),
    ("group table for a deployment", f"{ALPHA}[groups.alpha]\ndeadline = 5\n", {},
     [f"{P}: groups.alpha: 'alpha' is a deployment, not a group; per-deployment settings "
      "belong in its [[deployments]] entry (deployments[0])"]),
    ("empty deployments list", "deployments = []\n", {},
     [f"{P}: deployments: at least one [[deployments]] entry is required"]),
    ("no deployments at all", "[router]\ndeadline = 5\n", {},
     [f"{P}: deployments: at least one [[deployments]] entry is required"]),
    ("deployments as a table", '[deployments]\nname = "a"\nmodel = "m"\n', {},
     [f"{P}: deployments: must be an array of tables (got a table)"]),
    ("router not a table", f"router = 5\n{ALPHA}", {},
     [f"{P}: router: must be a table (got 5)"]),
    ("api_key not a string: value hidden", f"{ALPHA}api_key = 12345\n", {},
     [f"{P}: deployments[0] (alpha).api_key: must be a string"]),
    ("empty env reference", f'{ALPHA}api_key = "os.environ/"\n', {},
     [f"{P}: deployments[0] (alpha).api_key: 'os.environ/' must be followed by an "
      "environment variable name"]),
    ("litellm_params not a table", f'{ALPHA}litellm_params = "{SECRET}"\n', {},
     [f"{P}: deployments[0] (alpha).litellm_params: must be a table"]),
    ("shorthand env does not parse", ALPHA, {"ROUTER_DEADLINE": "abc"},
     [f"{P}: router.deadline (from env ROUTER_DEADLINE): must be a number > 0 (got 'abc')"]),
    ("nested env does not parse", ALPHA, {"ROUTER_ROUTER__MAX_ATTEMPTS": "0"},
     [f"{P}: router.max_attempts (from env ROUTER_ROUTER__MAX_ATTEMPTS): "
      "must be a whole number >= 1 (got '0')"]),
    ("group env does not parse", ALPHA, {"ROUTER_GROUPS__CHAT__TIMEOUT": "-2"},
     [f"{P}: groups.chat.timeout (from env ROUTER_GROUPS__CHAT__TIMEOUT): "
      "must be a number > 0 (got '-2')"]),
    ("env names a group that has no deployment", ALPHA, {"ROUTER_GROUPS__NOPE__DEADLINE": "1"},
     [f"{P}: groups.nope (from env ROUTER_GROUPS__NOPE__DEADLINE): "
      "no deployment is in group 'nope'"]),
    ("env sets an unknown key", ALPHA, {"ROUTER_ROUTER__DEDLINE": "1"},
     [f"{P}: router (from env ROUTER_ROUTER__DEDLINE): "
      "unknown key 'dedline' (did you mean 'deadline'?)"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "env", "expected"), [row[1:] for row in MALFORMED],
                         ids=[row[0] for row in MALFORMED])  # fmt: skip
def test_malformed_config_is_reported_in_one_plain_line(
    in_tmp: Path, text: str, env: dict[str, str], expected: list[str]
) -> None:
    problems = problems_of(text, env)
    assert problems == expected
    for line in problems:
        assert "\n" not in line
        assert "pydantic" not in line and "For further information" not in line
        assert SECRET not in line and "12345" not in line


def test_all_problems_are_collected_not_just_the_first(in_tmp: Path) -> None:
    text = f"""
[router]
dedline = 5
max_attempts = 0
{ALPHA}
timeout = -1
api_key = "{SECRET}"
{ALPHA}
[groups.empty]
deadline = 1
"""
    problems = problems_of(text)
    assert problems == [
        f"{P}: router.max_attempts: must be a whole number >= 1 (got 0)",
        f"{P}: router: unknown key 'dedline' (did you mean 'deadline'?)",
        f"{P}: deployments[0] (alpha).timeout: must be a number > 0 (got -1)",
        # Cross-field problems are found even though fields are invalid too.
        f"{P}: deployments[1] (alpha).name: duplicate deployment name 'alpha'"
        " (also deployments[0])",
        f"{P}: groups.empty: no deployment is in group 'empty'",
    ]
    assert SECRET not in str(ConfigError(problems))


def test_toml_syntax_error_gives_line_and_column(in_tmp: Path) -> None:
    problems = problems_of(f"{ALPHA}\n[router]\ndeadline = \n")
    assert len(problems) == 1
    assert problems[0].startswith(f"{P}: line 8, column 12: invalid TOML: ")


def test_file_not_found_names_the_path_as_given(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("nope/providers.toml", env={})
    assert info.value.problems == [
        f"nope/providers.toml: file not found (looked for {in_tmp / 'nope/providers.toml'};"
        " pass a path or set ROUTER_CONFIG)"
    ]


def test_a_directory_is_not_a_config(in_tmp: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\.: is a directory, not a config file$"):
        load_config(".", env={})


def test_config_error_is_a_value_error_with_problem_lines() -> None:
    err = ConfigError(["a: b: one", "a: c: two"])
    assert isinstance(err, ValueError)
    assert err.problems == ["a: b: one", "a: c: two"]
    assert str(err) == "a: b: one\na: c: two"


# --- a valid config --------------------------------------------------------------------------


@pytest.fixture
def config(in_tmp: Path) -> Config:
    return load_config(write(in_tmp, VALID), env={})


def test_defaults_are_documented_values() -> None:
    s = RouterSettings()
    assert (s.deadline, s.max_attempts, s.timeout) == (120.0, 3, 60.0)
    assert (s.backoff_base, s.backoff_max, s.first_chunk_timeout) == (0.025, 10.0, None)
    assert (s.strategy, s.breaker_open_base, s.breaker_open_max) == ("cost", 1.0, 1.0)
    router_only = {"auto_model", "record_file"}  # router-wide: the [[routes]] entry, the JSONL
    expected = dict.fromkeys(set(RouterSettings.model_fields) - router_only)
    assert GroupSettings().model_dump() == expected


def test_valid_config_loads_every_field(config: Config) -> None:
    assert config.source == "providers.toml"
    alpha = config.deployment("alpha")
    assert alpha.model == "openai/a"
    assert alpha.input_cost_per_token == pytest.approx(0.15e-6)
    assert alpha.output_cost_per_token == pytest.approx(0.6e-6)
    assert (alpha.timeout, alpha.max_context_tokens, alpha.tags) == (20.0, 128000, ["fast"])
    params = {"api_version": "2024-10-21", "secret": "os.environ/ALPHA_SECRET"}
    assert alpha.litellm_params == params
    assert alpha.location == "deployments[0] (alpha)" and alpha.source == "providers.toml"
    assert config.deployment("beta").weight == 2.5
    solo = config.deployment("solo")
    assert (solo.groups, solo.weight, solo.timeout, solo.api_key) == ([], 1.0, None, None)


def test_groups_routes_and_merged_settings(config: Config) -> None:
    assert config.group_names() == ["chat", "big"]
    assert [d.name for d in config.deployments_in("chat")] == ["alpha", "beta"]
    assert [d.name for d in config.deployments_in("big")] == ["beta"]
    assert [d.name for d in config.deployments_in("solo")] == ["solo"]  # a group of one
    chat = config.settings_for("chat")
    assert (chat.deadline, chat.max_attempts) == (20.0, 3)  # group override, then [router]
    assert config.settings_for("big") == config.router
    assert config.settings_for("solo") == config.router
    assert config.router.deadline == 30.0
    for name in ("chat", "big", "alpha", "beta", "solo"):
        assert config.is_routable(name)
    assert not config.is_routable("openai/a")
    assert not config.is_routable("nope")


def test_hot_path_lookups_are_precomputed(config: Config) -> None:
    assert config.settings_for("chat") is config.settings_for("chat")
    assert config.deployments_in("chat") is config.deployments_in("chat")
    assert config.deployments_in("alpha")[0] is config.deployment("alpha")


def test_unknown_names_raise_key_error_with_a_suggestion(config: Config) -> None:
    with pytest.raises(KeyError, match="did you mean 'chat'"):
        config.settings_for("chta")
    with pytest.raises(KeyError, match="no group or deployment named 'nope'"):
        config.deployments_in("nope")
    with pytest.raises(KeyError, match="did you mean 'alpha'"):
        config.deployment("alpah")


def test_config_is_frozen(config: Config) -> None:
    with pytest.raises(ValidationError):
        config.router = RouterSettings()
    with pytest.raises(ValidationError):
        config.deployments[0].timeout = 1.0


def test_deployments_hash_by_name(config: Config) -> None:
    alpha = config.deployment("alpha")
    assert {alpha: 1}[config.deployments_in("alpha")[0]] == 1


def test_empty_config_routes_nothing() -> None:
    empty = Config.empty()
    assert empty.deployments == [] and empty.group_names() == []
    assert not empty.is_routable("gpt-4o")
    assert empty.router == RouterSettings()


def test_direct_construction_still_checks_relations() -> None:
    alpha = Deployment(name="alpha", model="m")
    with pytest.raises(ValidationError, match="duplicate deployment name"):
        Config(deployments=[alpha, Deployment(name="alpha", model="n")])


# --- where the file and the values come from ------------------------------------------------


def test_path_defaults_to_router_config_then_providers_toml(in_tmp: Path) -> None:
    write(in_tmp, ALPHA)
    write(in_tmp, BETA, "other.toml")
    assert load_config(env={}).deployments[0].name == "alpha"
    assert load_config(env={"ROUTER_CONFIG": "other.toml"}).source == "other.toml"
    assert load_config(in_tmp / "other.toml", env={}).deployments[0].name == "beta"


def test_env_defaults_to_os_environ(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(in_tmp, ALPHA)
    monkeypatch.setenv("ROUTER_DEADLINE", "7")
    assert load_config().router.deadline == 7.0
    assert load_config(env={}).router.deadline == 120.0  # env= replaces os.environ


def test_env_beats_file_and_nested_beats_shorthand(in_tmp: Path) -> None:
    write(in_tmp, VALID)
    env = {"ROUTER_DEADLINE": "5", "ROUTER_MAX_ATTEMPTS": "4", "ROUTER_TIMEOUT": "9",
           "ROUTER_FIRST_CHUNK_TIMEOUT": "1.5", "ROUTER_ROUTER__MAX_ATTEMPTS": "6",
           "ROUTER_GROUPS__CHAT__MAX_ATTEMPTS": "2"}  # fmt: skip
    config = load_config(env=env)
    assert config.router.deadline == 5.0
    assert config.router.max_attempts == 6
    assert config.router.timeout == 9.0
    assert config.router.first_chunk_timeout == 1.5
    chat = config.settings_for("chat")
    assert (chat.deadline, chat.max_attempts, chat.timeout) == (20.0, 2, 9.0)


def test_whole_table_json_and_empty_variables(in_tmp: Path) -> None:
    write(in_tmp, f"[router]\ndeadline = 30.0\n{ALPHA}")
    env = {"ROUTER_ROUTER": '{"deadline": 2, "timeout": 1}', "ROUTER_DEADLINE": "3"}
    router = load_config(env=env).router
    assert (router.deadline, router.timeout) == (2.0, 1.0)  # the [router] JSON beats shorthand
    assert load_config(env={"ROUTER_DEADLINE": ""}).router.deadline == 30.0  # empty = unset
    assert load_config(env={"ROUTER_ROUTER__DEADLINE": ""}).router.deadline == 30.0


def test_env_names_are_case_insensitive(in_tmp: Path) -> None:
    write(in_tmp, ALPHA)
    assert load_config(env={"router_router__deadline": "3"}).router.deadline == 3.0


def test_from_dict(in_tmp: Path) -> None:
    data = {"deployments": [{"name": "a", "model": "m", "groups": ["g"]}]}
    assert Config.from_dict(data).source == "<dict>"
    assert Config.from_dict(data).deployment("a").location == "deployments[0] (a)"
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"deployments": [{"name": "a", "model": "m", "timeout": "x"}]}, "cfg")
    expected = "cfg: deployments[0] (a).timeout: must be a number > 0 (got 'x')"
    assert info.value.problems == [expected]


# --- keys and env references -----------------------------------------------------------------


def test_key_sources() -> None:
    assert Deployment(name="a", model="m", api_key="os.environ/K").key_source() == "env K"
    assert Deployment(name="a", model="m", api_key=SECRET).key_source() == "literal"
    assert Deployment(name="a", model="m").key_source() == "none"


def test_env_references_resolve_at_use(config: Config) -> None:
    alpha, beta, solo = (config.deployment(n) for n in ("alpha", "beta", "solo"))
    env = {"ALPHA_KEY": "k1", "ALPHA_SECRET": "s1", "BETA_BASE": "http://b"}
    assert alpha.resolve_api_key(env=env) == "k1"
    assert alpha.resolve_api_base(env=env) is None
    assert alpha.resolve_litellm_params(env=env) == {"api_version": "2024-10-21", "secret": "s1"}
    assert beta.resolve_api_base(env=env) == "http://b"
    assert solo.resolve_api_key(env={}) is None
    assert Deployment(name="a", model="m", api_key=SECRET).resolve_api_key(env={}) == SECRET


def test_resolve_reads_os_environ_by_default(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHA_KEY", "from-os")
    assert config.deployment("alpha").resolve_api_key() == "from-os"


def test_unset_env_reference_is_not_a_load_error_but_raises_at_use(config: Config) -> None:
    alpha = config.deployment("alpha")
    with pytest.raises(ConfigError) as info:
        alpha.resolve_api_key(env={"ALPHA_KEY": ""})
    assert info.value.problems == [
        "providers.toml: deployments[0] (alpha).api_key: environment variable ALPHA_KEY is not set"
    ]
    with pytest.raises(ConfigError, match=r"\(beta\)\.api_base: environment variable BETA_BASE"):
        config.deployment("beta").resolve_api_base(env={})
    with pytest.raises(ConfigError, match=r"litellm_params\.secret: .* ALPHA_SECRET is not set"):
        alpha.resolve_litellm_params(env={})


def test_nested_litellm_params_references() -> None:
    dep = Deployment(name="a", model="m", litellm_params={"h": {"x": "os.environ/X"}, "l": [1]})
    assert dep.resolve_litellm_params(env={"X": "v"}) == {"h": {"x": "v"}, "l": [1]}
    assert dep.env_refs() == [("litellm_params.h.x", "X")]


def test_repr_and_str_never_show_key_or_params_values() -> None:
    dep = Deployment(name="a", model="m", api_key=SECRET, litellm_params={"aws_secret": SECRET})
    config = Config(deployments=[dep])
    for text in (repr(dep), str(dep), repr(config), str(config)):
        assert SECRET not in text
    assert "api_key='literal'" in repr(dep)
    assert "litellm_params=['aws_secret']" in repr(dep)


def test_check_config_findings(config: Config) -> None:
    text = VALID.replace('"os.environ/ALPHA_KEY"', f'"{SECRET}"')
    text = text.replace('secret = "os.environ/ALPHA_SECRET"', f'aws_secret_key = "{SECRET}"')
    write(Path.cwd(), text)
    findings = check_config(load_config(env={}), env={})
    assert findings == [
        "warning: providers.toml: deployments[0] (alpha).api_key: a literal key is in the file;"
        " prefer os.environ/NAME",
        "warning: providers.toml: deployments[0] (alpha).litellm_params.aws_secret_key:"
        " a literal secret is in the file; prefer os.environ/NAME",
        "error: providers.toml: deployments[1] (beta).api_base: environment variable BETA_BASE"
        " is not set",
        "warning: providers.toml: deployments[2] (solo).groups: in no group; callers can reach"
        " it only by its own name 'solo'",
    ]
    assert all(SECRET not in f for f in findings)
    all_set = {"ALPHA_KEY": "x", "ALPHA_SECRET": "y", "BETA_BASE": "z"}
    assert [f for f in check_config(config, env=all_set) if f.startswith("error")] == []


def test_demo_providers_toml_at_the_repo_root() -> None:
    config = load_config(REPO / "providers.toml", env={})
    # A mixed fleet: one simulated provider per wire protocol, cheapest first.
    assert [d.name for d in config.deployments] == ["alpha", "beta", "gamma", "delta", "epsilon"]
    assert [d.model.split("/")[0] for d in config.deployments] == [
        "openai", "anthropic", "gemini", "azure", "bedrock"
    ]  # fmt: skip
    assert config.group_names() == ["chat"]
    assert (config.router.deadline, config.router.max_attempts) == (10.0, 3)
    assert config.settings_for("chat").deadline == 8.0
    prices = [(d.input_cost_per_token, d.output_cost_per_token) for d in config.deployments]
    assert [p for pair in prices for p in pair] == pytest.approx(
        [0.10e-6, 0.40e-6, 0.25e-6, 1.0e-6, 0.5e-6, 2.0e-6, 0.75e-6, 3.0e-6, 1.0e-6, 4.0e-6]
    )
    for i, dep in enumerate(config.deployments):
        assert dep.api_base is not None
        assert dep.api_base.startswith(f"http://127.0.0.1:{4101 + i}")
        assert dep.timeout == 2.0
        if dep.name != "epsilon":  # Bedrock signs with dummy AWS credentials instead
            assert dep.resolve_api_key(env={}) == "sk-sim-local"  # runs with no env set
    assert all(f.startswith("warning:") for f in check_config(config, env={}))


def test_config_module_does_not_import_litellm() -> None:
    code = "import sys, router._config; assert 'litellm' not in sys.modules, 'litellm imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
