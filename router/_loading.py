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
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import SkipValidation
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from router._config import (
    CONFIG_PATH_ENV,
    DEFAULT_CONFIG_PATH,
    ClassifierSettings,
    Config,
    Deployment,
    GatewaySettings,
    GroupSettings,
    Route,
    RouterSettings,
    StateSettings,
    TelemetrySettings,
    validate_config,
)
from router._problems import ENV_PREFIX, ConfigError, EnvOrigin
from router._settings import _SECRET_PARAM, _env_ref

__all__ = ["check_config", "load_config"]


_LOAD: ContextVar[tuple[Path, Mapping[str, str]]] = ContextVar("router_config_load")


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source reading a given mapping rather than os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # case_sensitive=False lower-cases names; env_ignore_empty drops empty values.
        return {k.lower(): v for k, v in self._mapping.items() if v}


class _ShorthandEnvSource(PydanticBaseSettingsSource):
    """``ROUTER_DEADLINE`` and friends for the ``[router]`` table."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._env = {k.upper(): v for k, v in env.items() if v}  # empty counts as unset

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole mapping

    def __call__(self) -> dict[str, Any]:
        names = RouterSettings.model_fields
        found = {n: self._env[var] for n in names if (var := ENV_PREFIX + n.upper()) in self._env}
        return {"router": found} if found else {}


class _VerbatimTomlSource(TomlConfigSettingsSource):
    """The TOML file, its keys unchanged.

    The base class folds top-level keys onto field names case-insensitively, which would
    silently merge ``[Router]`` into ``[router]``; here Config validation reports it.
    """

    def __call__(self) -> dict[str, Any]:
        return dict(self.toml_data)


class _SourcedConfig(BaseSettings):
    """Gathers the raw config from env and file; :class:`Config` validates it afterwards.

    Fields skip validation so that all problems are reported once, by Config, with key paths.
    Their types still tell pydantic-settings how to explode ``ROUTER_A__B`` variables.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        case_sensitive=False,
        extra="allow",
    )

    router: SkipValidation[RouterSettings | None] = None
    deployments: SkipValidation[list[Deployment] | None] = None
    groups: SkipValidation[dict[str, GroupSettings] | None] = None
    telemetry: SkipValidation[TelemetrySettings | None] = None
    state: SkipValidation[StateSettings | None] = None
    routes: SkipValidation[list[Route] | None] = None
    classifiers: SkipValidation[dict[str, ClassifierSettings] | None] = None
    gateway: SkipValidation[GatewaySettings | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path, env = _LOAD.get()
        return (
            _MappingEnvSource(settings_cls, env),
            _ShorthandEnvSource(settings_cls, env),
            _VerbatimTomlSource(settings_cls, toml_file=path),
        )


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
    token = _LOAD.set((file, environ))
    try:
        settings = _SourcedConfig()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{label}: {_toml_problem(exc)}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{label}: invalid TOML: the file is not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read the file ({exc.strerror})"]) from None
    except SettingsError as exc:
        match = re.search(r'field "(\w+)"', str(exc))
        var = ENV_PREFIX + (match[1].upper() if match else "*")
        raise ConfigError([f"{label}: (from env {var}): not valid JSON"]) from None
    finally:
        _LOAD.reset(token)
    raw = {
        n: getattr(settings, n)
        for n in type(settings).model_fields
        if n in settings.model_fields_set
    }
    raw.update(settings.model_extra or {})
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
