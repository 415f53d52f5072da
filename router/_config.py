"""The ``providers.toml`` configuration: models, loader and error reporting.

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

import difflib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

__all__ = [
    "CONFIG_PATH_ENV",
    "DEFAULT_CONFIG_PATH",
    "ENV_REF_PREFIX",
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
    "TelemetrySettings",
    "check_config",
    "load_config",
]

ENV_REF_PREFIX: Final = "os.environ/"
"""A string value starting with this names an environment variable (LiteLLM proxy convention)."""
DEFAULT_CONFIG_PATH: Final = "providers.toml"
"""The file read when no path is passed and ``$ROUTER_CONFIG`` is unset."""
CONFIG_PATH_ENV: Final = "ROUTER_CONFIG"
"""The environment variable naming the config file."""

_ENV_PREFIX: Final = "ROUTER_"
_CUSTOM_ERROR: Final = "router_config"  # our own validators' errors: their message is final
_RELATIONS_ERROR: Final = "router_config_relations"
# Never echo values under these ([state] url may carry a Redis password).
_SECRET_KEYS: Final = frozenset({"api_key", "litellm_params", "url", "key", "admin_key"})
_SECRET_PARAM = re.compile(r"(key|secret|password|token|credentials?)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Loc = tuple[int | str, ...]


class ConfigError(ValueError):
    """The config cannot be used. ``problems`` holds one line per problem, all of them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def _not_bool(value: object) -> object:
    # TOML `true` is not a number, but pydantic's lax mode would read it as 1.
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


_Number = Annotated[float, BeforeValidator(_not_bool)]
_Whole = Annotated[int, BeforeValidator(_not_bool)]


_BOOL_WORDS: Final = {"true": True, "false": False, "1": True, "0": False}


def _strict_bool(value: object) -> object:
    # pydantic's lax mode would read "yes" or 2 as true; TOML has real booleans, and from the
    # environment (where everything is a string) only true/false/1/0 are accepted.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise PydanticCustomError(_CUSTOM_ERROR, "must be true or false")


_Flag = Annotated[bool, BeforeValidator(_strict_bool)]


def _hedge_delay(value: object) -> object:
    if value == "p95":
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise PydanticCustomError(_CUSTOM_ERROR, 'must be a number > 0 or "p95"')


_HedgeDelay = Annotated[float | str, BeforeValidator(_hedge_delay)]
Strategy = Literal["balanced", "cost", "latency", "weighted", "ordered"]
"""Selection strategies: see router._select."""


class BalancedWeights(BaseModel):
    """Weights of the ``balanced`` strategy's blend (``weights = {cost = 0.5, ...}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cost: _Number = Field(default=0.5, ge=0, allow_inf_nan=False)
    latency: _Number = Field(default=0.3, ge=0, allow_inf_nan=False)
    health: _Number = Field(default=0.2, ge=0, allow_inf_nan=False)


def _check_triggers(value: list[str]) -> list[str]:
    for trigger in value:
        prefix = trigger.partition(":")[0]
        if trigger not in TRIGGERS and not (
            prefix in ("validator", "learned") and len(trigger) > len(prefix) + 1
        ):
            known = ", ".join(sorted(TRIGGERS))
            raise PydanticCustomError(
                _CUSTOM_ERROR,
                f"unknown trigger '{trigger}'{_suggest(trigger, TRIGGERS)}; use {known}, "
                "validator:NAME or learned:NAME",
            )
    return value


class Match(BaseModel):
    """A route's ``when`` table: every condition given must hold (an empty table always does).

    - ``keywords``: any of them appears (case-insensitive) in the user messages;
    - ``regex``: the pattern matches the user messages (Python syntax);
    - ``metadata``: each key equals the request's ``metadata`` value (a list: any of them);
    - ``step``: shorthand for ``metadata.step``; ``tags``: any in ``metadata.tags``;
    - ``min_prompt_tokens`` / ``max_prompt_tokens``: estimated prompt tokens (litellm's
      token counter), bounds inclusive;
    - ``has_tools`` / ``has_response_format``: the request carries tools / a response_format.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keywords: list[str] = Field(default_factory=list)
    regex: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    step: str | None = None
    tags: list[str] = Field(default_factory=list)
    min_prompt_tokens: _Whole | None = Field(default=None, ge=0)
    max_prompt_tokens: _Whole | None = Field(default=None, ge=0)
    has_tools: _Flag | None = None
    has_response_format: _Flag | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise PydanticCustomError(_CUSTOM_ERROR, f"not a valid regex: {exc}") from None
        return value


class Route(BaseModel):
    """One ``[[routes]]`` entry: first match wins; a route without ``when`` matches all.

    Either ``group`` (the target) or ``classifier`` with ``classes`` (label → group) is set.
    Rules apply to calls whose ``model`` is the router's ``auto_model`` (``"auto"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    when: Match = Field(default_factory=lambda: Match())
    group: str | None = None
    classifier: str | None = None
    classes: dict[str, str] = Field(default_factory=dict)


class ClassifierSettings(BaseModel):
    """A ``[classifiers.NAME]`` table.

    - ``kind = "keywords"``: ``labels = {label = ["word", ...]}``, the label with most hits
      (ties: first listed); no hit → uncertain.
    - ``kind = "regex"``: ``labels = {label = ["pattern", ...]}``, the first label matching.
    - ``kind = "llm"``: ``group`` answers with one of ``labels = ["a", "b"]``; an unparseable
      answer, or a confidence (first-token probability, when logprobs come back) under
      ``min_confidence``, is uncertain.
    - ``kind = "python"``: ``callable = "package.module:function"`` or a name registered with
      `router.register_classifier`; it gets the request and returns a label or (label,
      confidence), sync or async.
    - ``kind = "learned"``: ``path = "policy/NAME.json"``, an artifact ``router eval fit``
      wrote (JSON data, never code; relative paths are from the config file's folder). A
      ``route`` artifact labels requests before the call (``strong`` / ``weak``); an
      ``answer`` artifact is an escalation check, ``escalate_on = ["learned:NAME"]``, whose
      score judges the answers of ``group`` (its hard rules judge every answer).
    Uncertain, failing or unknown labels fall through to the next route (the default last).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["keywords", "regex", "llm", "python", "learned"]
    labels: dict[str, list[str]] | list[str] = Field(default_factory=list)
    group: str | None = None
    prompt: str | None = None
    callable: str | None = None
    path: str | None = None
    min_confidence: _Number = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)


Trigger = str
"""An escalation trigger: schema, invalid_json, length, empty, refusal, low_confidence, or
``validator:NAME`` (a callable registered with `router.register_validator`)."""
TRIGGERS: Final = frozenset(
    {"schema", "invalid_json", "length", "empty", "refusal", "low_confidence"}
)


class TelemetrySettings(BaseModel):
    """The ``[telemetry]`` table: spans, metrics and decision logs (see the telemetry package).

    - ``enabled``: None (default) means on exactly when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
      and ``OTEL_SDK_DISABLED`` is not true; ``true``/``false`` decide outright.
    - ``endpoint``, ``protocol`` (``"http/protobuf"`` or ``"grpc"``), ``service_name``: unset
      values come from the standard ``OTEL_*`` variables, then the OTLP defaults.
    - ``capture_content = false``: prompts and completions are never recorded unless this is
      true (or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).
    - ``metrics = true``, ``logs = true``: OTel metrics and structlog decision events.
    - ``log_format = "auto"`` (JSON when stderr is not a terminal, console otherwise),
      ``log_level = "info"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: _Flag | None = None
    endpoint: str | None = None
    protocol: Literal["http/protobuf", "grpc"] | None = None
    service_name: str | None = None
    capture_content: _Flag = False
    metrics: _Flag = True
    logs: _Flag = True
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class StateSettings(BaseModel):
    """The ``[state]`` table: where breaker and health state live (router._state).

    - ``backend = "memory"``: in this process only. ``"redis"``: shared by every process using
      the same Redis ``url`` and ``key_prefix`` (router._redis_state; needs the ``redis``
      extra): breaker trips, 429 pauses and health summaries are published and peers' applied,
      while each decision still reads local state (no Redis round trip on a call).
    - ``url``: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path``;
      may be an env reference, ``"os.environ/REDIS_URL"``. Required with ``backend = "redis"``.
    - ``key_prefix = "router:"``: every key and the channel start with it (one fleet per prefix).
    - ``ttl = 30`` s: a process's published health summary expires this long after its last
      refresh (refreshed every second), so a dead process leaves the shared view.
    - ``timeout = 0.25`` s per Redis operation; slower counts as unreachable (fail open).
    - ``reconcile_interval = 5`` s between full reads of the shared keys (missed messages).
    - ``probe_grace = 1`` s: a breaker opened on a peer's word stays open this much longer than
      the peer's, so the process that tripped it probes first and the fleet sends one probe.
    - ``reconnect_max = 5`` s: the cap of the jittered exponential reconnect backoff.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["memory", "redis"] = "memory"
    url: str | None = Field(default=None, repr=False)
    key_prefix: str = Field(default="router:", min_length=1)
    ttl: _Number = Field(default=30.0, gt=0, allow_inf_nan=False)
    timeout: _Number = Field(default=0.25, gt=0, allow_inf_nan=False)
    reconcile_interval: _Number = Field(default=5.0, gt=0, allow_inf_nan=False)
    probe_grace: _Number = Field(default=1.0, ge=0, allow_inf_nan=False)
    reconnect_max: _Number = Field(default=5.0, gt=0, allow_inf_nan=False)

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_ref(value)
        if _env_ref(value) is None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise PydanticCustomError(
                _CUSTOM_ERROR, "must start with redis://, rediss:// or unix:// (or os.environ/NAME)"
            )
        return value

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateSettings:
        if self.backend == "redis" and self.url is None:
            raise PydanticCustomError(_CUSTOM_ERROR, "backend 'redis' needs a url")
        return self

    def resolve_url(self, *, env: Mapping[str, str] | None = None) -> str | None:
        """The Redis URL, an env reference looked up now; raises :class:`ConfigError` if unset."""
        var = _env_ref(self.url)
        if var is None:
            return self.url
        resolved = (os.environ if env is None else env).get(var)
        if not resolved:
            raise ConfigError([f"[state] url: environment variable {var} is not set"])
        return resolved


class RouterSettings(BaseModel):
    """Call-wide defaults: the ``[router]`` table, also the result of :meth:`Config.settings_for`.

    - ``deadline = 120.0`` s for the whole call: every attempt, failover, backoff and stream.
      An overall budget including retries, as Envoy's route timeout is.
    - ``max_attempts = 3`` attempts in all (first try included): the SRE book's and the AWS
      SDKs' default.
    - ``timeout = 60.0`` s per attempt, for deployments that set no ``timeout`` of their own.
    - ``backoff_base = 0.5`` and ``backoff_max = 10.0`` s: before attempt n+1 sleep
      U(0, min(backoff_max, backoff_base·2^(n−1))), "full jitter" as in botocore and Envoy.
    - ``first_chunk_timeout = None``: streaming, the time to the first chunk per attempt;
      None means the attempt timeout.
    - ``strategy = "balanced"``: how candidates are ranked (``cost``, ``latency``,
      ``balanced``, ``weighted``, ``ordered``; see router._select), ``weights`` the balanced
      blend (cost 0.5, latency 0.3, health 0.2).
    - Breaker (router._breaker): trips at ``breaker_failure_rate = 0.5`` over the last
      ``breaker_window = 20`` results with at least ``breaker_min_calls = 10``, or after
      ``breaker_consecutive_failures = 5`` (resilience4j, Hystrix; Envoy, Finagle); open for
      ``breaker_open_base = 30`` s · 2^(k−1), at most ``breaker_open_max = 300`` s, +0–10%
      jitter (Envoy ejection, Finagle jitter); ``misconfigured_open = 300`` s after 401/403/404.
    - ``hedge = false``; when on, one hedge after ``hedge_delay`` (seconds, or ``"p95"``: the
      first candidate's observed p95 of completed attempts, at most twice its median; see
      `router._health.Health.hedge_delay`) to the next candidate (The Tail at Scale).
    - Retry budget (router._budget): ``retry_budget_ratio = 0.2`` of calls over
      ``retry_budget_window = 10`` s, plus ``retry_budget_floor = 10`` (Finagle, Linkerd, Envoy
      for the 20%). The floor is 10, not the 3 first proposed, for a measured reason: failovers
      are charged too, and a breaker needs 5 failures to trip, so with a floor of 3 a router
      with no traffic history lost calls 4 and 5 of an outage while two healthy deployments
      were up (tests/integration/test_breakers_and_hedges_http.py).
      Per router, read from ``[router]``.
    - ``wait_for_recovery = false``: when every candidate is unavailable, fail fast; when true,
      wait for the soonest recovery if it comes within the deadline.
    - ``rate_limit_pause_after = 2``: a 429 always makes the call that got it fail over; the
      deployment is paused for every caller until Retry-After once this many 429s arrive in a
      row (no success between; failures do not break the streak). A key-wide rate limit
      answers everything with 429, so it pauses after one wasted (fast, unbilled) call; a
      provider that sheds a few percent of requests with 429 keeps its traffic instead of
      being benched for a second at every one (measured in scripts/bench_chaos.py). ``1``
      pauses on the first 429. Fleet limits (``rpm``/``tpm``) pause at once regardless.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline: _Number = Field(default=120.0, gt=0, allow_inf_nan=False)
    max_attempts: _Whole = Field(default=3, ge=1)
    timeout: _Number = Field(default=60.0, gt=0, allow_inf_nan=False)
    backoff_base: _Number = Field(default=0.5, ge=0, allow_inf_nan=False)
    backoff_max: _Number = Field(default=10.0, ge=0, allow_inf_nan=False)
    first_chunk_timeout: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    strategy: Strategy = "balanced"
    weights: BalancedWeights = Field(default_factory=lambda: BalancedWeights())
    breaker_failure_rate: _Number = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    breaker_window: _Whole = Field(default=20, ge=1)
    breaker_min_calls: _Whole = Field(default=10, ge=1)
    breaker_consecutive_failures: _Whole = Field(default=5, ge=1)
    breaker_open_base: _Number = Field(default=30.0, gt=0, allow_inf_nan=False)
    breaker_open_max: _Number = Field(default=300.0, gt=0, allow_inf_nan=False)
    misconfigured_open: _Number = Field(default=300.0, gt=0, allow_inf_nan=False)
    hedge: _Flag = False
    hedge_delay: _HedgeDelay = "p95"
    retry_budget_ratio: _Number = Field(default=0.2, ge=0, allow_inf_nan=False)
    retry_budget_window: _Number = Field(default=10.0, gt=0, allow_inf_nan=False)
    retry_budget_floor: _Whole = Field(default=10, ge=0)
    wait_for_recovery: _Flag = False
    rate_limit_pause_after: _Whole = Field(default=2, ge=1)
    escalate_to: str | None = None
    escalate_on: list[Trigger] = Field(default_factory=list)
    min_logprob: _Number | None = Field(default=None, allow_inf_nan=False)
    min_confidence: _Number | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    max_escalations: _Whole = Field(default=1, ge=0)
    escalation_cost_cap: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    on_exhausted: Literal["review", "raise"] = "review"
    long_context: str | None = None
    auto_model: str = "auto"
    record_file: str | None = None

    @field_validator("escalate_on")
    @classmethod
    def _known_triggers(cls, value: list[str]) -> list[str]:
        return _check_triggers(value)


class GroupSettings(BaseModel):
    """A ``[groups.NAME]`` table: the :class:`RouterSettings` fields, None meaning inherit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_attempts: _Whole | None = Field(default=None, ge=1)
    timeout: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff_base: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    backoff_max: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    first_chunk_timeout: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    strategy: Strategy | None = None
    weights: BalancedWeights | None = None
    breaker_failure_rate: _Number | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    breaker_window: _Whole | None = Field(default=None, ge=1)
    breaker_min_calls: _Whole | None = Field(default=None, ge=1)
    breaker_consecutive_failures: _Whole | None = Field(default=None, ge=1)
    breaker_open_base: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    breaker_open_max: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    misconfigured_open: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    hedge: _Flag | None = None
    hedge_delay: _HedgeDelay | None = None
    retry_budget_ratio: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    retry_budget_window: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    retry_budget_floor: _Whole | None = Field(default=None, ge=0)
    wait_for_recovery: _Flag | None = None
    rate_limit_pause_after: _Whole | None = Field(default=None, ge=1)
    escalate_to: str | None = None
    escalate_on: list[Trigger] | None = None
    min_logprob: _Number | None = Field(default=None, allow_inf_nan=False)
    min_confidence: _Number | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    max_escalations: _Whole | None = Field(default=None, ge=0)
    escalation_cost_cap: _Number | None = Field(default=None, ge=0, allow_inf_nan=False)
    on_exhausted: Literal["review", "raise"] | None = None
    long_context: str | None = None

    @field_validator("escalate_on")
    @classmethod
    def _known_triggers(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_triggers(value)


def _env_ref(value: object) -> str | None:
    """The variable name if ``value`` is an ``os.environ/NAME`` reference, else None."""
    if isinstance(value, str) and value.startswith(ENV_REF_PREFIX):
        return value[len(ENV_REF_PREFIX) :]
    return None


def _param_refs(value: object, path: str) -> list[tuple[str, str]]:
    """(key path, variable) for every env reference in a litellm_params value, nested too."""
    if (var := _env_ref(value)) is not None:
        return [(path, var)]
    if isinstance(value, Mapping):
        return [ref for k, v in value.items() for ref in _param_refs(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [ref for i, v in enumerate(value) for ref in _param_refs(v, f"{path}[{i}]")]
    return []


def _check_ref(value: str, where: str | None = None) -> None:
    var = _env_ref(value)
    if var is not None and not _ENV_NAME.fullmatch(var):
        at = f" at {where}" if where else ""
        raise PydanticCustomError(
            _CUSTOM_ERROR,
            f"'{ENV_REF_PREFIX}'{at} must be followed by an environment variable name",
        )


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


class GatewayKey(BaseModel):
    """One ``[[gateway.keys]]`` entry: a caller of ``router serve`` (router._serve._keys).

    - ``name``: what logs, metrics and errors show (the key itself never appears);
    - ``key``: an env reference, ``"os.environ/TEAM_A_KEY"`` (a literal key is refused);
    - ``rpm``: requests per minute for this key (optional);
    - ``daily_budget_usd``: spend per UTC day for this key (optional); counted in Redis when
      ``[state] backend = "redis"``, else per process.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    key: str = Field(repr=False)
    rpm: _Whole | None = Field(default=None, gt=0)
    daily_budget_usd: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)

    @field_validator("key")
    @classmethod
    def _by_reference(cls, value: str) -> str:
        return _gateway_secret(value)

    def resolve(self, *, env: Mapping[str, str] | None = None) -> str | None:
        """The key's value from the environment (None if the variable is unset or empty)."""
        var = _env_ref(self.key)
        return None if var is None else (os.environ if env is None else env).get(var) or None


def _gateway_secret(value: str) -> str:
    if _env_ref(value) is None:
        raise PydanticCustomError(
            _CUSTOM_ERROR,
            f'must be an env reference, "{ENV_REF_PREFIX}NAME" (gateway keys never go in the file)',
        )
    _check_ref(value)
    return value


class GatewaySettings(BaseModel):
    """The ``[gateway]`` table: ``router serve``'s edge (see the README's Gateway section).

    - ``keys``: ``[[gateway.keys]]`` entries (`GatewayKey`); none means an open gateway;
    - ``admin_key``: env reference of the key for ``POST /admin/reload`` (without one, reload
      over HTTP is allowed from loopback only, and only on a gateway without keys);
    - ``max_body_bytes = 4194304``: larger request bodies get 413;
    - ``max_concurrency = 512``: calls in flight beyond it get 503 + ``Retry-After``;
    - ``body_timeout = 30`` s: a client slower than this to send its body gets 408;
    - ``drain_timeout = 30`` s: on SIGTERM, in-flight calls and streams get this long;
    - ``watch = false``: reload when the config file changes (polled every second).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[GatewayKey] = Field(default_factory=list)
    admin_key: str | None = Field(default=None, repr=False)
    max_body_bytes: _Whole = Field(default=4 * 1024 * 1024, gt=0)
    max_concurrency: _Whole = Field(default=512, gt=0)
    body_timeout: _Number = Field(default=30.0, gt=0, allow_inf_nan=False)
    drain_timeout: _Number = Field(default=30.0, gt=0, allow_inf_nan=False)
    watch: _Flag = False

    @field_validator("admin_key")
    @classmethod
    def _admin_by_reference(cls, value: str | None) -> str | None:
        return None if value is None else _gateway_secret(value)

    @field_validator("keys")
    @classmethod
    def _unique_names(cls, value: list[GatewayKey]) -> list[GatewayKey]:
        seen: set[str] = set()
        for entry in value:
            if entry.name in seen:
                raise PydanticCustomError(_CUSTOM_ERROR, f"duplicate key name '{entry.name}'")
            seen.add(entry.name)
        return value

    def resolve_admin_key(self, *, env: Mapping[str, str] | None = None) -> str | None:
        var = None if self.admin_key is None else _env_ref(self.admin_key)
        return None if var is None else (os.environ if env is None else env).get(var) or None

    def unset(self, *, env: Mapping[str, str] | None = None) -> list[str]:
        """Problems: env references whose variable is unset (the gateway then refuses to
        start rather than serve without the key)."""
        problems = [
            f"gateway.keys ({k.name}).key: environment variable {_env_ref(k.key)} is not set"
            for k in self.keys
            if k.resolve(env=env) is None
        ]
        if self.admin_key is not None and self.resolve_admin_key(env=env) is None:
            problems.append(
                f"gateway.admin_key: environment variable {_env_ref(self.admin_key)} is not set"
            )
        return problems


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
        if problems:
            raise PydanticCustomError(
                _RELATIONS_ERROR,
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
        return _validate(data, source, None)

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
            raise KeyError(f"no deployment named {name!r}{_suggest(name, self._by_name)}") from None

    def is_routable(self, model: str) -> bool:
        """Whether ``model`` names a group or a deployment of this config."""
        return model in self._routes

    def _unknown(self, name: str) -> str:
        return f"no group or deployment named {name!r}{_suggest(name, self._routes)}"


# --- problems ------------------------------------------------------------------------------


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


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
            msg = f"no deployment is in group '{group}'{_suggest(group, used)}"
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
                (loc, f"no group or deployment named '{name}'{_suggest(name, routable)}")
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
                hint = _suggest(route.classifier, config.classifiers)
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
                        f"no learned classifier named '{name}'{_suggest(name, learned)}",
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


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that carries meaning."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not NoneType]
            annotation = args[0]
        else:
            return annotation


def _child_model(field: FieldInfo) -> tuple[type[BaseModel] | None, int]:
    """The model below a field and how many loc items (list index, dict key) lead to it."""
    ann = _unwrap(field.annotation)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, 0
    args = get_args(ann)
    inner = _unwrap(args[-1]) if args else None
    if get_origin(ann) in (list, dict) and isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner, 1
    return None, 0


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model whose table sits at ``loc`` (``()`` is the whole file), if there is one."""
    model: type[BaseModel] | None = Config
    i = 0
    while model is not None and i < len(loc):
        field = model.model_fields.get(str(loc[i]))
        if field is None:
            return None
        model, skip = _child_model(field)
        i += 1 + skip
    return model if i == len(loc) else None


def _field_at(loc: Loc) -> FieldInfo | None:
    """The model field a key path ends on, if it ends on one."""
    model = _model_at(loc[:-1]) if loc else None
    return model.model_fields.get(str(loc[-1])) if model else None


def _noun(annotation: Any) -> str:
    ann = _unwrap(annotation)
    origin, args = get_origin(ann), get_args(ann)
    if origin is Literal:
        return "one of " + ", ".join(f"'{a}'" for a in args)
    if ann is float:
        return "a number"
    if ann is int:
        return "a whole number"
    if ann is str:
        return "a string"
    if origin is list and args and _unwrap(args[0]) is str:
        return "a list of strings"
    if origin is list:
        return "an array of tables"
    return "a table"


def _requirement(field: FieldInfo) -> str:
    noun = _noun(field.annotation)
    bound = ""
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Gt):
            bound = f" > {meta.gt}"
        elif isinstance(meta, annotated_types.Ge):
            bound = f" >= {meta.ge}"
        elif isinstance(meta, annotated_types.MinLen) and noun == "a string":
            noun = "a non-empty string"
    return f"must be {noun}{bound}"


_BY_TYPE: Final = {
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def _show(value: object) -> str:
    """A value as TOML would spell it, short, for "(got ...)"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float) or value is None:
        return repr(value)
    return "a table" if isinstance(value, Mapping) else "an array"


def _render_path(loc: Loc, raw: object) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            label = f"[{item}]"
            if loc[:i] == ("deployments",) and isinstance(raw, Mapping):
                deps = raw.get("deployments")
                entry = deps[item] if isinstance(deps, list) and item < len(deps) else None
                name = entry.get("name") if isinstance(entry, Mapping) else None
                if isinstance(name, str) and name:
                    label += f" ({name})"
            parts.append(label)
        else:
            key = item if re.fullmatch(r"[A-Za-z0-9_-]+", item) else f'"{item}"'
            parts.append(f".{key}" if parts else key)
    return "".join(parts)


class _EnvOrigin:
    """Tells which ``ROUTER_*`` variable a value at a key path came from, if any."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._names = {
            k.upper(): k for k, v in env.items() if v and k.upper().startswith(_ENV_PREFIX)
        }

    def var_for(self, loc: Loc, *, below: bool = False) -> str | None:
        keys = [str(k).upper() for k in loc]
        # Same order as the sources' precedence: the most specific nested variable wins.
        for n in range(len(keys), 0, -1):
            if (name := _ENV_PREFIX + "__".join(keys[:n])) in self._names:
                return self._names[name]
        if len(keys) >= 2 and keys[0] == "ROUTER" and _ENV_PREFIX + keys[1] in self._names:
            return self._names[_ENV_PREFIX + keys[1]]
        if below:  # e.g. a [groups.x] table that only ROUTER_GROUPS__X__... created
            prefix = _ENV_PREFIX + "__".join(keys) + "__"
            return next((v for k, v in self._names.items() if k.startswith(prefix)), None)
        return None


def _line(
    source: str,
    loc: Loc,
    msg: str,
    raw: object,
    origin: _EnvOrigin | None,
    probe: Loc | None = None,
    below: bool = False,
) -> str:
    path = _render_path(loc, raw)
    var = origin.var_for(probe or loc, below=below) if origin else None
    if var:
        path = f"{path} (from env {var})" if path else f"(from env {var})"
    return f"{source}: {path}: {msg}" if path else f"{source}: {msg}"


def _describe(err: ErrorDetails, raw: object, source: str, origin: _EnvOrigin | None) -> str:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        msg = f"unknown key '{loc[-1]}'{_suggest(str(loc[-1]), allowed)}"
        return _line(source, loc[:-1], msg, raw, origin, probe=loc)
    if kind == "missing" and loc and loc != ("deployments",):
        return _line(source, loc[:-1], f"missing required key '{loc[-1]}'", raw, origin, probe=loc)
    if loc == ("deployments",) and kind in ("missing", "too_short"):
        return _line(source, loc, "at least one [[deployments]] entry is required", raw, origin)
    field = _field_at(loc)
    if kind == _CUSTOM_ERROR:
        msg = err["msg"]
    elif field is not None:
        msg = _requirement(field)
    else:
        msg = _BY_TYPE.get(kind) or err["msg"][:1].lower() + err["msg"][1:]
    if not _SECRET_KEYS.intersection(str(k) for k in loc):
        msg += f" (got {_show(err['input'])})"
    return _line(source, loc, msg, raw, origin)


def _validate(raw: Any, source: str, origin: _EnvOrigin | None) -> Config:
    try:
        return Config.model_validate(raw, context={"source": source})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems: list[str] = []
    relations: list[tuple[Loc, str]] | None = None
    for err in errors:
        if err["type"] == _RELATIONS_ERROR:
            relations = err.get("ctx", {}).get("problems", [])
        else:
            problems.append(_describe(err, raw, source, origin))
    # Cross-field checks only run on valid fields; run them on the raw data to report all.
    for loc, msg in _raw_relations(raw) if relations is None else relations:
        problems.append(_line(source, loc, msg, raw, origin, below=True))
    raise ConfigError(problems) from None


# --- loading -------------------------------------------------------------------------------

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
        found = {n: self._env[var] for n in names if (var := _ENV_PREFIX + n.upper()) in self._env}
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
        env_prefix=_ENV_PREFIX,
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
        var = _ENV_PREFIX + (match[1].upper() if match else "*")
        raise ConfigError([f"{label}: (from env {var}): not valid JSON"]) from None
    finally:
        _LOAD.reset(token)
    raw = {
        n: getattr(settings, n)
        for n in type(settings).model_fields
        if n in settings.model_fields_set
    }
    raw.update(settings.model_extra or {})
    return _validate(raw, label, _EnvOrigin(environ))


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
