"""The ``providers.toml`` configuration: deployments and the whole `Config`.

The rooms: the other tables' models are in router._settings; turning pydantic errors into
one-line problems is router._problems; sources and `load_config`/`check_config` are
router._loading. Everything is re-exported here except the loader (which imports this).

A config names *deployments* (one litellm model string plus its endpoint, key, prices and
timeout) and puts them into *groups*, the logical names callers pass as ``model=``. Every
deployment is also addressable by its own name, as a group of one.

Where values come from, highest precedence first (see :func:`load_config`):

1. ``ROUTER_<TABLE>__<KEY>`` environment variables, pydantic-settings style with
   ``__`` as the nesting delimiter: ``ROUTER_ROUTER__DEADLINE=5`` sets ``[router] deadline``,
   ``ROUTER_GROUPS__CHAT__DEADLINE=5`` sets ``[groups.chat] deadline`` (group names are
   matched lower-cased). A whole table may be given as JSON (``ROUTER_ROUTER='{...}'``);
   nested variables win over it.
2. Shorthand variables for the ``[router]`` table: ``ROUTER_DEADLINE``,
   ``ROUTER_MAX_ATTEMPTS``, ``ROUTER_TIMEOUT``, ``ROUTER_BACKOFF_BASE``,
   ``ROUTER_BACKOFF_MAX``, ``ROUTER_FIRST_CHUNK_TIMEOUT``.

   Variable names are case-insensitive; a variable set to the empty string counts as unset.
3. The TOML file: the ``path`` argument, else ``$ROUTER_CONFIG``, else ``./providers.toml``.
4. The defaults documented on :class:`RouterSettings`.

Per group, ``[groups.NAME]`` values override ``[router]`` (see :meth:`Config.settings_for`).

Errors: every problem is collected (not just the first) into one :class:`ConfigError`, one
line each, ``<file as given>: <key path>: <plain-English message>``, for example::

    providers.toml: deployments[1] (openai-mini).timeout: must be a number > 0 (got -1)
    providers.toml: router: unknown key 'dedline' (did you mean 'deadline'?)
    providers.toml: router.deadline (from env ROUTER_DEADLINE): must be a number > 0 (got 'abc')

Deployment indexes are 0-based, followed by the deployment's name when it has one. Problems
about a whole file (not found, TOML syntax) have no key path. API key values never appear.

This module must not import litellm (``router check`` has to answer in well under a second).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from router._embeddings import embedding_problems
from router._problems import (
    RELATIONS_ERROR,
    ConfigError,
    EnvOrigin,
    Loc,
    suggest,
    validate,
)
from router._settings import (
    ENV_REF_PREFIX,
    BalancedWeights,
    ClassifierSettings,
    GatewayKey,
    GatewaySettings,
    GroupSettings,
    Match,
    Route,
    RouterSettings,
    StateSettings,
    Strategy,
    TelemetrySettings,
    _check_ref,
    _env_ref,
    _Number,
    _param_refs,
    _Whole,
)

__all__ = [
    "CONFIG_PATH_ENV",
    "DEFAULT_CONFIG_PATH",
    "ENV_REF_PREFIX",
    "BalancedWeights",
    "ClassifierSettings",
    "Config",
    "ConfigError",
    "Deployment",
    "GatewayKey",
    "GatewaySettings",
    "GroupSettings",
    "Match",
    "Route",
    "RouterSettings",
    "StateSettings",
    "Strategy",
    "TelemetrySettings",
    "validate_config",
]

DEFAULT_CONFIG_PATH: Final = "providers.toml"
"""The file read when no path is passed and ``$ROUTER_CONFIG`` is unset."""
CONFIG_PATH_ENV: Final = "ROUTER_CONFIG"
"""The environment variable naming the config file."""


class Deployment(BaseModel):
    """One ``[[deployments]]`` entry: a litellm model string and how to reach and price it.

    ``api_key``, ``api_base`` and any string in ``litellm_params`` may be an env reference,
    ``"os.environ/NAME"``; use :meth:`resolve_api_key`, :meth:`resolve_api_base` and
    :meth:`resolve_litellm_params` to get values. ``repr()``/``str()`` never show the key
    (nor ``litellm_params`` values), but **``model_dump()`` returns ``api_key`` and
    ``litellm_params`` verbatim, a literal key included: never log a dump.**
    Hashed by name, so deployments of one config can key dicts and sets.

    ``rpm`` / ``tpm``: optional requests / tokens per minute the provider allows this
    deployment. Counted across every process sharing a ``[state]`` Redis (in this process
    otherwise); at the limit the deployment is skipped, like a 429 pause, until the 60 s window
    has room (router._redis_state).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    input_cost_per_token: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    output_cost_per_token: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    timeout: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_context_tokens: _Whole | None = Field(default=None, gt=0)
    rpm: _Whole | None = Field(default=None, gt=0)
    tpm: _Whole | None = Field(default=None, gt=0)
    groups: list[str] = Field(default_factory=list)
    weight: _Number = Field(default=1.0, ge=0, allow_inf_nan=False)
    tags: list[str] = Field(default_factory=list)
    litellm_params: dict[str, Any] = Field(default_factory=dict, repr=False)
    mode: Literal["chat", "embedding"] = "chat"
    """``"embedding"`` for a deployment `Router.embedding` calls (router._embeddings)."""
    vector_space: str | None = Field(default=None, min_length=1)
    """Embedding deployments with one label produce interchangeable vectors (default: the
    model string); an embedding group only holds one vector space."""
    dimensions: _Whole | None = Field(default=None, gt=0)
    """Embedding deployments: the vector size; a response of another size is a failure."""

    _source: str = PrivateAttr("<dict>")
    _where: str = PrivateAttr("")

    @field_validator("api_key", "api_base")
    @classmethod
    def _valid_ref(cls, value: str | None) -> str | None:
        if value is not None:
            _check_ref(value)
        return value

    @field_validator("litellm_params")
    @classmethod
    def _valid_param_refs(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path, var in _param_refs(value, ""):
            _check_ref(ENV_REF_PREFIX + var, path.lstrip("."))
        return value

    def model_post_init(self, context: Any, /) -> None:
        # Replaced by "deployments[i] (name)" when a Config takes this deployment in.
        self._where = f"deployment ({self.name})"

    def __hash__(self) -> int:
        return hash((Deployment, self.name))

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        yield from super().__repr_args__()
        yield "api_key", self.key_source()
        yield "litellm_params", sorted(self.litellm_params)

    @property
    def location(self) -> str:
        """Where this deployment is in its file, e.g. ``deployments[1] (openai-mini)``."""
        return self._where

    @property
    def source(self) -> str:
        """The config file this deployment came from, as given, or ``"<dict>"``."""
        return self._source

    def key_source(self) -> str:
        """``"env NAME"`` for an env reference, ``"literal"`` or ``"none"``; never the key."""
        var = _env_ref(self.api_key)
        if var is not None:
            return f"env {var}"
        return "none" if self.api_key is None else "literal"

    def env_refs(self) -> list[tuple[str, str]]:
        """(key path, variable name) of every env reference in this deployment."""
        refs = [(k, v) for k in ("api_base", "api_key") if (v := _env_ref(getattr(self, k)))]
        return refs + _param_refs(self.litellm_params, "litellm_params")

    def unset_env_message(self, key: str, var: str) -> str:
        """The one-line problem for env reference ``var`` at ``key`` being unset."""
        return f"{self._source}: {self._where}.{key}: environment variable {var} is not set"

    def _resolve(self, value: Any, key: str, env: Mapping[str, str] | None) -> Any:
        var = _env_ref(value)
        if var is None:
            return value
        # An empty variable is as unusable as an unset one (a stray `export KEY=`).
        resolved = (os.environ if env is None else env).get(var)
        if not resolved:
            raise ConfigError([self.unset_env_message(key, var)])
        return resolved

    def resolve_api_key(self, *, env: Mapping[str, str] | None = None) -> str | None:
        """The API key, an env reference looked up now; raises :class:`ConfigError` if unset."""
        result: str | None = self._resolve(self.api_key, "api_key", env)
        return result

    def resolve_api_base(self, *, env: Mapping[str, str] | None = None) -> str | None:
        """The API base URL, an env reference looked up now; raises :class:`ConfigError`."""
        result: str | None = self._resolve(self.api_base, "api_base", env)
        return result

    def resolve_litellm_params(self, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A fresh copy of ``litellm_params`` with every env reference (nested too) resolved."""

        def walk(value: Any, path: str) -> Any:
            if isinstance(value, Mapping):
                return {k: walk(v, f"{path}.{k}") for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return self._resolve(value, path, env)

        return {k: walk(v, f"litellm_params.{k}") for k, v in self.litellm_params.items()}


class Config(BaseModel):
    """A whole validated ``providers.toml``. Build it with :func:`load_config` or
    :meth:`from_dict` (which give :class:`ConfigError` with readable problems).

    Lookups used on every call (:meth:`settings_for`, :meth:`deployments_in`,
    :meth:`is_routable`) are dict lookups on tables built once at validation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: RouterSettings = Field(default_factory=RouterSettings)
    deployments: list[Deployment] = Field(min_length=1)
    groups: dict[str, GroupSettings] = Field(default_factory=dict)
    telemetry: TelemetrySettings = Field(default_factory=lambda: TelemetrySettings())
    state: StateSettings = Field(default_factory=lambda: StateSettings())
    routes: list[Route] = Field(default_factory=list)
    classifiers: dict[str, ClassifierSettings] = Field(default_factory=dict)
    gateway: GatewaySettings = Field(default_factory=lambda: GatewaySettings())

    _source: str = PrivateAttr("<dict>")
    _by_name: dict[str, Deployment] = PrivateAttr(default_factory=dict)
    _routes: dict[str, list[Deployment]] = PrivateAttr(default_factory=dict)
    _settings: dict[str, RouterSettings] = PrivateAttr(default_factory=dict)
    _group_names: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check_and_index(self, info: ValidationInfo) -> Config:
        problems = _relation_problems([(d.name, d.groups) for d in self.deployments], self.groups)
        problems += _policy_problems(self)
        problems += embedding_problems(self.deployments)
        if problems:
            raise PydanticCustomError(
                RELATIONS_ERROR,
                "{summary}",
                {"summary": "; ".join(m for _, m in problems), "problems": problems},
            )
        context = info.context if isinstance(info.context, Mapping) else {}
        self._source = str(context.get("source", "<dict>"))
        members: dict[str, list[Deployment]] = {}
        for index, dep in enumerate(self.deployments):
            dep._source = self._source
            dep._where = f"deployments[{index}] ({dep.name})"
            for group in dict.fromkeys(dep.groups):  # a group listed twice counts once
                members.setdefault(group, []).append(dep)
        self._by_name = {d.name: d for d in self.deployments}
        self._group_names = list(members)
        self._routes = {**members, **{d.name: [d] for d in self.deployments}}
        self._settings = {name: self.router for name in self._routes}
        base = self.router.model_dump()
        for group, overrides in self.groups.items():
            merged = {**base, **overrides.model_dump(exclude_none=True)}
            self._settings[group] = RouterSettings.model_validate(merged)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Config:
        """Validate an already-parsed config; ``source`` labels problems and env-ref errors."""
        return validate_config(data, source)

    @classmethod
    def empty(cls, router: RouterSettings | None = None) -> Config:
        """A config with no deployments (nothing is routable), for running without a file.

        Not reachable from a file or :meth:`from_dict`, where no deployments is an error.
        """
        # model_construct skips validation (min_length=1); private attrs get empty tables.
        return cls.model_construct(router=router or RouterSettings(), deployments=[], groups={})

    @property
    def source(self) -> str:
        """The file path as given to the loader, or ``"<dict>"``."""
        return self._source

    def settings_for(self, group: str) -> RouterSettings:
        """``[router]`` merged with ``[groups.<group>]``; a deployment name gets ``[router]``.

        Raises KeyError for a name that is neither a group nor a deployment.
        """
        try:
            return self._settings[group]
        except KeyError:
            raise KeyError(self._unknown(group)) from None

    def group_names(self) -> list[str]:
        """Logical group names in order of first appearance (deployment names excluded)."""
        return list(self._group_names)

    def deployments_in(self, group: str) -> list[Deployment]:
        """The deployments of a group in config order, or ``[d]`` for deployment name ``d``.

        The list is shared (built once): do not mutate it. Raises KeyError if unknown.
        """
        try:
            return self._routes[group]
        except KeyError:
            raise KeyError(self._unknown(group)) from None

    def deployment(self, name: str) -> Deployment:
        """The deployment called ``name``; raises KeyError if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no deployment named {name!r}{suggest(name, self._by_name)}") from None

    def is_routable(self, model: str) -> bool:
        """Whether ``model`` names a group or a deployment of this config."""
        return model in self._routes

    def _unknown(self, name: str) -> str:
        return f"no group or deployment named {name!r}{suggest(name, self._routes)}"


def _relation_problems(
    entries: Sequence[tuple[str | None, Sequence[str]]], group_tables: Iterable[str]
) -> list[tuple[Loc, str]]:
    """Problems between deployments and groups; ``entries`` are (name, groups) per deployment."""
    problems: list[tuple[Loc, str]] = []
    first: dict[str, int] = {}
    for i, (name, _) in enumerate(entries):
        if name is None:
            continue
        if name in first:
            msg = f"duplicate deployment name '{name}' (also deployments[{first[name]}])"
            problems.append((("deployments", i, "name"), msg))
        else:
            first[name] = i
    used: dict[str, int] = {}
    for i, (_, groups) in enumerate(entries):
        for group in groups:
            if group in first and group not in used:
                msg = (
                    f"group '{group}' has the name of a deployment (deployments[{first[group]}]);"
                    " every deployment is already a group of its own name, so rename one"
                )
                problems.append((("deployments", i, "groups"), msg))
            used.setdefault(group, i)
    for group in group_tables:
        if group in first:
            msg = (
                f"'{group}' is a deployment, not a group; per-deployment settings belong in"
                f" its [[deployments]] entry (deployments[{first[group]}])"
            )
            problems.append((("groups", group), msg))
        elif group not in used:
            msg = f"no deployment is in group '{group}'{suggest(group, used)}"
            problems.append((("groups", group), msg))
    return problems


def _policy_problems(config: Config) -> list[tuple[Loc, str]]:
    """Routes, classifiers and escalation settings must name things that exist."""
    routable = {d.name for d in config.deployments}
    routable.update(g for d in config.deployments for g in d.groups)
    problems: list[tuple[Loc, str]] = []

    def target(loc: Loc, name: str | None) -> None:
        if name is not None and name not in routable:
            problems.append(
                (loc, f"no group or deployment named '{name}'{suggest(name, routable)}")
            )

    seen: dict[str, int] = {}
    for i, route in enumerate(config.routes):
        if route.name in seen:
            problems.append(
                (
                    ("routes", i, "name"),
                    f"duplicate route name '{route.name}' (also routes[{seen[route.name]}])",
                )
            )
        seen.setdefault(route.name, i)
        if (route.group is None) == (route.classifier is None):
            problems.append((("routes", i), "set exactly one of 'group' and 'classifier'"))
        target(("routes", i, "group"), route.group)
        if route.classifier is not None:
            if route.classifier not in config.classifiers:
                hint = suggest(route.classifier, config.classifiers)
                problems.append(
                    (("routes", i, "classifier"), f"no classifier named '{route.classifier}'{hint}")
                )
            if not route.classes:
                problems.append(
                    (
                        ("routes", i, "classes"),
                        'a classifier route needs classes = {label = "group"}',
                    )
                )
        for label, group in route.classes.items():
            target(("routes", i, "classes", label), group)
    for name, classifier in config.classifiers.items():
        if classifier.kind == "llm":
            if classifier.group is None:
                problems.append((("classifiers", name, "group"), "an llm classifier needs a group"))
            target(("classifiers", name, "group"), classifier.group)
            if not classifier.labels:
                problems.append((("classifiers", name, "labels"), "list the labels to choose from"))
        elif classifier.kind == "python" and not classifier.callable:
            problems.append(
                (
                    ("classifiers", name, "callable"),
                    'a python classifier needs callable = "module:function" or a name',
                )
            )
        elif classifier.kind in ("keywords", "regex") and not isinstance(classifier.labels, dict):
            problems.append(
                (("classifiers", name, "labels"), 'must be a table: label = ["word", ...]')
            )
        elif classifier.kind == "learned":
            if not classifier.path:
                problems.append(
                    (
                        ("classifiers", name, "path"),
                        'a learned classifier needs path = "policy/NAME.json" (router eval fit)',
                    )
                )
            target(("classifiers", name, "group"), classifier.group)
    tables: list[tuple[Loc, RouterSettings | GroupSettings]] = [(("router",), config.router)]
    tables += [(("groups", g), t) for g, t in config.groups.items()]
    learned = {n for n, c in config.classifiers.items() if c.kind == "learned"}
    for loc, table in tables:
        target((*loc, "escalate_to"), table.escalate_to)
        target((*loc, "long_context"), table.long_context)
        for i, trigger in enumerate(table.escalate_on or ()):
            name = trigger.partition(":")[2]
            if trigger.startswith("learned:") and name not in learned:
                problems.append(
                    (
                        (*loc, "escalate_on", i),
                        f"no learned classifier named '{name}'{suggest(name, learned)}",
                    )
                )
    return problems


def _raw_relations(raw: object) -> list[tuple[Loc, str]]:
    """:func:`_relation_problems` on unvalidated data, skipping whatever is malformed."""
    if not isinstance(raw, Mapping):
        return []
    deployments = raw.get("deployments")
    if not isinstance(deployments, list):
        return []  # already reported; every [groups.X] would look empty
    entries: list[tuple[str | None, Sequence[str]]] = []
    for item in deployments:
        item = item if isinstance(item, Mapping) else {}
        name = item.get("name")
        groups = item.get("groups")
        groups = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
        entries.append((name if isinstance(name, str) and name else None, groups))
    tables = raw.get("groups")
    return _relation_problems(
        entries, [str(k) for k in tables] if isinstance(tables, Mapping) else []
    )


def validate_config(raw: Any, source: str, origin: EnvOrigin | None = None) -> Config:
    """A `Config` from raw data, or a `ConfigError` listing every problem (router._problems)."""
    return validate(Config, raw, source, origin, _raw_relations)
