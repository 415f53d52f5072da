"""``ROUTER_*`` variables merged over the TOML file, with pydantic-settings.

Imported by router._loading only when some variable overrides a config value: pydantic-settings
costs about a tenth of a second to import, a third of ``router check``'s start-up.
"""

from __future__ import annotations

import re
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
    ClassifierSettings,
    Deployment,
    GatewaySettings,
    GroupSettings,
    Route,
    RouterSettings,
    StateSettings,
    TelemetrySettings,
)
from router._problems import ENV_PREFIX, ConfigError

__all__ = ["gather"]


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


def gather(file: Path, environ: Mapping[str, str], label: str) -> dict[str, Any]:
    """The raw config (tables, then unknown keys): the file, the variables merged over it.

    Raises what reading the TOML raises (router._loading reports it), or `ConfigError` for a
    variable holding a table that is not valid JSON.
    """
    token = _LOAD.set((file, environ))
    try:
        settings = _SourcedConfig()
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
    return raw
