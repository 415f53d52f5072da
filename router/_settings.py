"""The config's tables other than deployments: ``[router]``/``[groups.X]`` settings, routes,
classifiers, ``[state]`` and ``[telemetry]``, with their field checks and env references.

Defaults and meanings are documented on each field (README's settings table mirrors them).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from router._problems import CUSTOM_ERROR, ConfigError, suggest

__all__ = [
    "ENV_REF_PREFIX",
    "BalancedWeights",
    "ClassifierSettings",
    "GatewayKey",
    "GatewaySettings",
    "GroupSettings",
    "Match",
    "Route",
    "RouterSettings",
    "StateSettings",
    "Strategy",
    "TelemetrySettings",
]

ENV_REF_PREFIX: Final = "os.environ/"
"""A string value starting with this names an environment variable (LiteLLM proxy convention)."""
_SECRET_PARAM = re.compile(r"(key|secret|password|token|credentials?)$", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    raise PydanticCustomError(CUSTOM_ERROR, "must be true or false")


_Flag = Annotated[bool, BeforeValidator(_strict_bool)]


def _hedge_delay(value: object) -> object:
    if value == "p95":
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise PydanticCustomError(CUSTOM_ERROR, 'must be a number > 0 or "p95"')


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
                CUSTOM_ERROR,
                f"unknown trigger '{trigger}'{suggest(trigger, TRIGGERS)}; use {known}, "
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
                raise PydanticCustomError(CUSTOM_ERROR, f"not a valid regex: {exc}") from None
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
                CUSTOM_ERROR, "must start with redis://, rediss:// or unix:// (or os.environ/NAME)"
            )
        return value

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateSettings:
        if self.backend == "redis" and self.url is None:
            raise PydanticCustomError(CUSTOM_ERROR, "backend 'redis' needs a url")
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
    - ``backoff_base = 0.025`` and ``backoff_max = 10.0`` s: before attempt n+1 on a deployment
      already tried, sleep U(0, min(backoff_max, backoff_base·2^(n−1))), "full jitter" as in
      botocore, with Envoy's 25 ms base.
    - ``first_chunk_timeout = None``: streaming, the time to the first chunk per attempt;
      None means the attempt timeout.
    - ``strategy = "cost"``: how candidates are ranked (``cost``, ``latency``,
      ``balanced``, ``weighted``, ``ordered``; see router._select), ``weights`` the balanced
      blend (cost 0.5, latency 0.3, health 0.2).
    - Breaker (router._breaker): trips at ``breaker_failure_rate = 0.5`` over the last
      ``breaker_window = 20`` results with at least ``breaker_min_calls = 10``, or after
      ``breaker_consecutive_failures = 5`` (resilience4j, Hystrix; Envoy, Finagle); open for
      ``breaker_open_base = 1`` s · 2^(k−1), at most ``breaker_open_max = 1`` s (so by default
      a constant 1 s: no doubling; README "Breaker open period" has the measurements), +0–10%
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
    - Latency objectives (router._slo), off by default: ``latency_slo`` (seconds, a whole
      call; for a stream, its whole time) and ``first_chunk_slo`` (seconds, a stream's first
      chunk), each at the ``slo_percentile`` (0.95) of the deployment's recent completed
      attempts. With one set, the group prefers, in the strategy's order (so under ``cost``
      the cheapest), the deployments expected to meet it; when none is, the fastest expected
      first; a deployment that misses gets one probe call a second so its recovery is seen.
    - ``rate_limit_pause_after = 2``: a 429 always makes the call that got it fail over; the
      deployment is paused for every caller once this many 429s arrive in a row (no success
      between; failures do not break the streak), until Retry-After or, sooner, the breaker's
      open period, when one probe goes through (router._limits ``pause_for``). A key-wide rate limit
      answers everything with 429, so it pauses after one wasted (fast, unbilled) call; a
      provider that sheds a few percent of requests with 429 keeps its traffic instead of
      being benched for a second at every one (measured in scripts/bench_chaos.py). ``1``
      pauses on the first 429. Fleet limits (``rpm``/``tpm``) pause at once regardless.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline: _Number = Field(default=120.0, gt=0, allow_inf_nan=False)
    max_attempts: _Whole = Field(default=3, ge=1)
    timeout: _Number = Field(default=60.0, gt=0, allow_inf_nan=False)
    backoff_base: _Number = Field(default=0.025, ge=0, allow_inf_nan=False)
    backoff_max: _Number = Field(default=10.0, ge=0, allow_inf_nan=False)
    first_chunk_timeout: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    strategy: Strategy = "cost"
    weights: BalancedWeights = Field(default_factory=lambda: BalancedWeights())
    breaker_failure_rate: _Number = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    breaker_window: _Whole = Field(default=20, ge=1)
    breaker_min_calls: _Whole = Field(default=10, ge=1)
    breaker_consecutive_failures: _Whole = Field(default=5, ge=1)
    breaker_open_base: _Number = Field(default=1.0, gt=0, allow_inf_nan=False)
    breaker_open_max: _Number = Field(default=1.0, gt=0, allow_inf_nan=False)
    misconfigured_open: _Number = Field(default=300.0, gt=0, allow_inf_nan=False)
    hedge: _Flag = False
    hedge_delay: _HedgeDelay = "p95"
    retry_budget_ratio: _Number = Field(default=0.2, ge=0, allow_inf_nan=False)
    retry_budget_window: _Number = Field(default=10.0, gt=0, allow_inf_nan=False)
    retry_budget_floor: _Whole = Field(default=10, ge=0)
    wait_for_recovery: _Flag = False
    rate_limit_pause_after: _Whole = Field(default=2, ge=1)
    latency_slo: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    first_chunk_slo: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    slo_percentile: _Number = Field(default=0.95, ge=0.5, le=0.99, allow_inf_nan=False)
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
    latency_slo: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    first_chunk_slo: _Number | None = Field(default=None, gt=0, allow_inf_nan=False)
    slo_percentile: _Number | None = Field(default=None, ge=0.5, le=0.99, allow_inf_nan=False)
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
            CUSTOM_ERROR,
            f"'{ENV_REF_PREFIX}'{at} must be followed by an environment variable name",
        )


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
            CUSTOM_ERROR,
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
                raise PydanticCustomError(CUSTOM_ERROR, f"duplicate key name '{entry.name}'")
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
