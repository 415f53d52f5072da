"""Where a config comes from: the TOML file, ``ROUTER_*`` variables, and `load_config`.

Precedence and the error format are described in router._config; `check_config` is
``router check``'s look at a loaded config (env references that do not resolve, plain secrets).
This module must not import litellm.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from router._config import CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH, Config, validate_config
from router._problems import ENV_PREFIX, ConfigError, EnvOrigin
from router._settings import _SECRET_PARAM, RouterSettings, _env_ref

__all__ = ["check_config", "load_config"]

TOP_LEVEL = (
    "router",
    "deployments",
    "groups",
    "telemetry",
    "state",
    "routes",
    "classifiers",
    "gateway",
)
"""The config's tables, in the order `Config` declares them (router._env_sources checks this)."""


def _overridden(environ: Mapping[str, str]) -> bool:
    """Whether some ``ROUTER_*`` variable overrides a config value.

    The names pydantic-settings reads for the tables (``ROUTER_<TABLE>`` and
    ``ROUTER_<TABLE>__...``, any case) and the ``[router]`` shorthands (``ROUTER_DEADLINE``);
    an empty value counts as unset. ``ROUTER_CONFIG`` and the other switches are not values.
    """
    prefix = ENV_PREFIX.lower()
    for name, value in environ.items():
        if not value:
            continue
        low = name.lower()
        if not low.startswith(prefix):
            continue
        key = low[len(prefix) :]
        table = key.split("__", 1)[0]
        if table in TOP_LEVEL or (key == table and key in RouterSettings.model_fields):
            return True
    return False


def _read(file: Path, environ: Mapping[str, str], label: str) -> dict[str, Any]:
    """The raw config: the TOML file, with any ``ROUTER_*`` overrides merged in.

    Without overrides the file is the whole answer, read here with tomllib: pydantic-settings
    (a tenth of a second to import) is only loaded when some variable needs its merging.
    """
    if _overridden(environ):
        from router._env_sources import gather

        return gather(file, environ, label)
    with file.open("rb") as handle:
        data = tomllib.load(handle)
    # The order pydantic-settings gives (the tables, then unknown keys): problems are listed
    # in the same order either way.
    raw = {n: data[n] for n in TOP_LEVEL if n in data}
    raw.update((k, v) for k, v in data.items() if k not in raw)
    return raw


def _toml_problem(exc: tomllib.TOMLDecodeError) -> str:
    text = str(exc)
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", text, re.DOTALL)
    if match:
        return f"line {match[2]}, column {match[3]}: invalid TOML: {match[1]}"
    return f"invalid TOML: {text}"


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Config:
    """Load and validate the config (see the module docstring for where values come from).

    ``path`` defaults to ``$ROUTER_CONFIG``, else ``./providers.toml``. ``env`` replaces
    ``os.environ`` for both the overrides and ``ROUTER_CONFIG``. Env references in keys are
    not resolved here: use :func:`check_config` or resolve them at first use.

    Raises :class:`ConfigError` listing every problem found.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    given = os.fspath(path) if path is not None else environ.get(CONFIG_PATH_ENV) or ""
    label = given or DEFAULT_CONFIG_PATH
    file = Path(label).expanduser()
    if file.is_dir():
        raise ConfigError([f"{label}: is a directory, not a config file"])
    if not file.is_file():
        hint = "pass a path or set ROUTER_CONFIG"
        raise ConfigError([f"{label}: file not found (looked for {file.absolute()}; {hint})"])
    try:
        raw = _read(file, environ, label)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: {_toml_problem(exc)}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{label}: invalid TOML: the file is not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read the file ({exc.strerror})"]) from None
    return validate_config(raw, label, EnvOrigin(environ))


def check_config(config: Config, *, env: Mapping[str, str] | None = None) -> list[str]:
    """Findings that do not stop loading, one line each, ``error: ...`` or ``warning: ...``.

    Errors: env references to variables that are unset or empty (the deployment will fail at
    first use). Warnings: literal API keys or literal secrets in ``litellm_params``, and
    deployments in no group (still addressable by name). Values are never included.
    """
    environ = os.environ if env is None else env
    found: list[str] = []
    for dep in config.deployments:
        where = f"{config.source}: {dep.location}"
        for key, var in dep.env_refs():
            if not environ.get(var):
                found.append(f"error: {dep.unset_env_message(key, var)}")
        if dep.key_source() == "literal":
            found.append(
                f"warning: {where}.api_key: a literal key is in the file; prefer os.environ/NAME"
            )
        for key, value in dep.litellm_params.items():
            if isinstance(value, str) and _env_ref(value) is None and _SECRET_PARAM.search(key):
                found.append(
                    f"warning: {where}.litellm_params.{key}: a literal secret is in the file;"
                    " prefer os.environ/NAME"
                )
        if not dep.groups:
            found.append(
                f"warning: {where}.groups: in no group; callers can reach it only by its"
                f" own name '{dep.name}'"
            )
    from router._provider_checks import provider_findings

    found.extend(provider_findings(config, environ))
    return found
