"""`Router`: the drop-in `completion` / `acompletion` over a providers.toml config."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from router._backend import LiteLLMTransport, Transport
from router._budget import RetryBudget
from router._call import NO_CONTEXT, CallContext, escalated, needs_review
from router._catalogue import Catalogue, LiteLLMCatalogue
from router._clock import Clock, SystemClock
from router._config import Config, Deployment, RouterSettings
from router._decision import Escalation, get_decision
from router._embeddings import EMBEDDING
from router._engine import Engine
from router._errors import reattach
from router._escalate import first_failure
from router._jobs import Job, JobAccounting, current_job
from router._loading import load_config
from router._observe import Fanout
from router._policy import Policy
from router._state import DeploymentHealth, MemoryState, StateStore
from router._stream import RoutedStream
from router._sync import SyncStream, run_sync
from router._threaded import mark_sync, unmark_sync

if TYPE_CHECKING:
    from router._diff import ConfigDiff
    from router._escalate import Validator
    from router._observe import Observer
    from router._policy import ClassifierFn

# Routes are cached per model string; a caller passing endless distinct raw model strings must
# not grow memory without bound.
_MAX_ADHOC_ROUTES = 1024
# Keywords that belong to the router, not to the provider call.
_OURS = frozenset({"num_retries", "max_retries"})
# Keywords that say which endpoint a call goes to (and with whose account). Passed with a raw
# model string they are part of the call and of its health key; passed with a group (or a
# deployment's name) they are refused: the group's deployments say where they go.
_ENDPOINT = (
    "api_base",
    "base_url",
    "api_version",
    "custom_llm_provider",
    "organization",
    "aws_region_name",
    "aws_bedrock_runtime_endpoint",
    "vertex_project",
    "vertex_location",
)
_SECRETS = (
    "api_key",
    "azure_ad_token",
    "azure_ad_token_provider",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_profile_name",
    "aws_role_name",
    "vertex_credentials",
)
_CREDENTIALS = frozenset((*_ENDPOINT, *_SECRETS))



def _state_for(config: Config, clock: Clock, seed: int | None) -> StateStore:
    """The state store the ``[state]`` table asks for."""
    if config.state.backend == "redis":
        from router._redis_state import RedisState

        return RedisState.from_settings(
            config.state, clock=clock, seed=seed, deployments=[d.name for d in config.deployments]
        )
    return MemoryState(seed)


def _show_level(response: Any, decision: Any) -> None:
    from router._fields import field

    hidden = field(response, "_hidden_params")
    if isinstance(hidden, dict):
        hidden["router_decision"] = decision


def _said(response: Any) -> str:
    from router._answers import content_of

    return content_of(response)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _refuse_credentials(model: str, given: Iterable[str]) -> BaseException:
    import litellm

    names = ", ".join(sorted(given))
    error: BaseException = litellm.UnsupportedParamsError(
        f"router: {names} cannot be passed on a call to '{model}': its deployments' endpoints "
        f"and keys are set in providers.toml (a group may mix providers, and a caller's key or "
        f"URL must not count against a deployment's health). Set them there, or call the "
        f"model string directly (e.g. model='openai/gpt-4o-mini', {names}=...).",
        llm_provider="router",
        model=model,
    )
    return error


def _wrong_kind(model: str, call: str, use: str) -> BaseException:
    import litellm

    what = "embedding" if call != "embedding" else "chat"
    error: BaseException = litellm.UnsupportedParamsError(
        f"router: '{model}' is a group of {what} deployments and cannot serve a {call} call; "
        f"use {use}, or set mode = \"{'embedding' if call == 'embedding' else 'chat'}\" on "
        f"deployments meant for it (router._embeddings)",
        llm_provider="router",
        model=model,
    )
    return error


def _refuse_dimensions(model: str, asked: Any, deployments: Sequence[Deployment]) -> BaseException:
    import litellm

    declared = next(d.dimensions for d in deployments if d.dimensions is not None)
    error: BaseException = litellm.UnsupportedParamsError(
        f"router: dimensions={asked} asked of '{model}', whose deployments produce {declared}-"
        f"dimensional vectors (dimensions in providers.toml)",
        llm_provider="router",
        model=model,
    )
    return error


def _endpoint_name(model: str, request: Mapping[str, Any]) -> str:
    """The health key of a pass-through call: the model string plus what picks its endpoint.

    Two calls with one model string and different ``api_base`` (or region, API version, key)
    are different endpoints: one hanging must not open the other's breaker. A key is shown
    only as a short fingerprint, never in clear.
    """
    parts = [
        str(request[k]) if k in ("api_base", "base_url") else f"{k}={request[k]}"
        for k in _ENDPOINT
        if request.get(k) is not None
    ]
    secret = next((request[k] for k in _SECRETS if request.get(k) is not None), None)
    if isinstance(secret, str):
        import hashlib

        parts.append("key#" + hashlib.sha256(secret.encode()).hexdigest()[:8])
    elif secret is not None:
        parts.append(f"credentials#{id(secret):x}")
    return model if not parts else f"{model} @ {' '.join(parts)}"



class Router:
    """Routes litellm calls over the deployments of a config.

    ``model`` naming a group (or a deployment) is routed over its deployments with failover
    under one deadline; any other model string goes straight to litellm as a one-deployment
    call, still under the ``[router]`` deadline and attempt rules. Every other keyword
    (temperature, tools, response_format, metadata, ...) is passed through to litellm, except:

    - ``timeout``: caps the call's deadline (it never extends the configured one);
    - ``num_retries`` / ``max_retries``: ignored, the router is the only retry layer.

    The collaborators are injectable seams: `backend`, the transport that sends attempts
    (default: litellm), `catalogue` for prices, context windows and token counts (default: the
    backend itself when it is one, e.g. `router.testing.FakeBackend`, else the config and
    litellm's model map), `clock`, `state` (where health and breakers live) and `seed` for every
    random draw (jitter, P2C, weights).

    Telemetry: `observer` receives every decision record and breaker transition (e.g. a
    ``router.telemetry.Telemetry``). Without one, and unless ``telemetry=False``, the
    ``[telemetry]`` table and the ``OTEL_*`` variables decide
    (``router.telemetry.observer_for``); when they leave it off, no observer is attached and the
    OpenTelemetry SDK is never imported.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        backend: Transport | None = None,
        catalogue: Catalogue | None = None,
        clock: Clock | None = None,
        state: StateStore | None = None,
        seed: int | None = None,
        observer: Observer | None = None,
        telemetry: bool = True,
        classifiers: Mapping[str, ClassifierFn] | None = None,
        validators: Mapping[str, Validator] | None = None,
    ) -> None:
        if config is None or isinstance(config, str | os.PathLike):
            config = load_config(config)
        elif not isinstance(config, Config):
            config = Config.from_dict(config)
        self.config: Config = config
        self.transport: Transport = backend if backend is not None else LiteLLMTransport()
        if catalogue is None:
            catalogue = backend if isinstance(backend, Catalogue) else LiteLLMCatalogue()
        self.catalogue: Catalogue = catalogue
        self.clock: Clock = clock if clock is not None else SystemClock()
        if state is None:
            state = _state_for(config, self.clock, seed)
        self.state: StateStore = state
        if any(d.rpm is not None or d.tpm is not None for d in config.deployments):
            from router._limits import LimitedBackend

            # RPM/TPM limits are checked where each attempt is sent (fleet-wide with Redis).
            self.transport = LimitedBackend(self.transport, self.catalogue, state, self.clock)
        base = config.router
        self.budget = RetryBudget(
            base.retry_budget_ratio, base.retry_budget_window, base.retry_budget_floor
        )
        if observer is None and telemetry:
            from router.telemetry import observer_for

            observer = observer_for(config.telemetry)
        outer: list[Observer] = [] if observer is None else [observer]
        record_file = os.environ.get("ROUTER_RECORD_FILE") or base.record_file
        self.record_file: str | None = record_file or None
        """Where this router appends its records (and `router.record_outcome` its outcomes)."""
        if record_file:
            from router._records import Recorder

            capture = config.telemetry.capture_content or os.environ.get(
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", ""
            ).strip().lower() in ("1", "true", "yes")
            outer.append(Recorder(record_file, capture_content=capture))
        self.observer: Observer | None = (
            None if not outer else outer[0] if len(outer) == 1 else Fanout(outer)
        )
        # Job accounting always listens (one contextvar read per call when no job is open).
        accounting = JobAccounting(self.observer)
        self.engine = Engine(
            self.transport,
            self.catalogue,
            self.clock,
            self.state,
            random.Random(seed),
            self.budget,
            observer=Fanout([accounting, *outer]) if outer else accounting,
        )
        self.validators: dict[str, Validator] = dict(validators or {})
        if config.classifiers:
            from router._learned import config_checks

            # ``learned:NAME`` checks come from the config (rebuilt by `reload`).
            self.validators.update(config_checks(config))
        self.policy = Policy(config, self.catalogue, self._classify_call, dict(classifiers or {}))
        self._policy_free: dict[str, bool] = {}
        self._routes: dict[Any, tuple[Sequence[Deployment], RouterSettings]] = {}
        self._kinds: dict[str, str] = {}

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **kwargs: Any) -> Router:
        """A router over the config file at `path` (see `Router` for keyword arguments)."""
        return cls(load_config(path), **kwargs)

    def _route(
        self, model: str, request: Mapping[str, Any] | None = None
    ) -> tuple[Sequence[Deployment], RouterSettings]:
        """The deployments and settings a call to `model` is routed over.

        A raw model string (neither a group nor a deployment) is one ad-hoc deployment whose
        name, the key of its health and breaker, includes what `request` says about its
        endpoint (see `_endpoint_name`).
        """
        key: Any = model
        if request is not None and not _CREDENTIALS.isdisjoint(request):
            key = _endpoint_name(model, request)
        route = self._routes.get(key)
        if route is None:
            config = self.config
            if config.is_routable(model):
                route = (config.deployments_in(model), config.settings_for(model))
            else:
                route = ((Deployment(name=key, model=model),), config.router)
            if len(self._routes) < _MAX_ADHOC_ROUTES:
                self._routes[key] = route
        return route

    async def acompletion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Async drop-in for `litellm.acompletion`: a `ModelResponse`, or a `RoutedStream`."""
        deadline = kwargs.pop("timeout", None)
        if not _OURS.isdisjoint(kwargs):
            for key in _OURS:
                kwargs.pop(key, None)
        given = None if _CREDENTIALS.isdisjoint(kwargs) else _CREDENTIALS.intersection(kwargs)
        if given and self.config.is_routable(model):
            raise _refuse_credentials(model, given)
        if self._kind(model) == EMBEDDING:
            raise _wrong_kind(model, "chat completion", "router.embedding / aembedding")
        kwargs["messages"] = messages if messages is not None else []
        cap = float(deadline) if isinstance(deadline, int | float) else None
        job = current_job()
        if job is None and self._is_policy_free(model):
            deployments, settings = self._route(model, kwargs)
            if stream:
                return await self._stream(model, deployments, settings, kwargs, cap, NO_CONTEXT)
            if not settings.escalate_on:
                return await self._complete(model, deployments, settings, kwargs, cap, NO_CONTEXT)
            return await self._escalating(model, kwargs, cap, NO_CONTEXT, None)
        choice = await self.policy.choose(model, kwargs)
        metadata = kwargs.get("metadata")
        step = metadata.get("step") if isinstance(metadata, Mapping) else None
        context = CallContext(
            route=choice.route,
            reason=choice.reason,
            skipped=choice.skipped,
            job=None if job is None else job.id,
            step=None if step is None else str(step),
        )
        group = choice.group
        if given and self.config.is_routable(group):
            raise _refuse_credentials(group, given)
        deployments, settings = self._route(group, kwargs)
        if choice.deployments is not None:
            deployments = choice.deployments
        if stream:
            return await self._stream(group, deployments, settings, kwargs, cap, context)
        if not settings.escalate_on:
            return await self._complete(group, deployments, settings, kwargs, cap, context)
        return await self._escalating(group, kwargs, cap, context, choice.deployments)

    async def _complete(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: dict[str, Any],
        cap: float | None,
        context: CallContext,
    ) -> Any:
        """One engine call that leaves the router as it is: its record attached, reported."""
        engine = self.engine
        try:
            response, decision = await engine.complete(
                group, deployments, settings, request, cap, context
            )
        except BaseException as exc:
            engine.failed(exc)
            raise
        return engine.deliver(response, decision, request.get("messages"))

    async def _stream(
        self,
        group: str,
        deployments: Sequence[Deployment],
        settings: RouterSettings,
        request: dict[str, Any],
        cap: float | None,
        context: CallContext,
    ) -> RoutedStream:
        """A stream; it reports itself when it ends (see `RoutedStream`)."""
        try:
            return await self.engine.stream(group, deployments, settings, request, cap, context)
        except BaseException as exc:
            self.engine.failed(exc)
            raise

    def _kind(self, model: str) -> str:
        """``"embedding"`` for a group of embedding deployments, else ``"chat"`` (cached)."""
        kind = self._kinds.get(model)
        if kind is None:
            config = self.config
            deployments = config.deployments_in(model) if config.is_routable(model) else ()
            kind = EMBEDDING if deployments and deployments[0].mode == EMBEDDING else "chat"
            if len(self._kinds) < _MAX_ADHOC_ROUTES:
                self._kinds[model] = kind
        return kind

    async def aembedding(self, model: str, input: Any = None, **kwargs: Any) -> Any:
        """Async drop-in for `litellm.aembedding`: an `EmbeddingResponse` with its decision.

        `model` names a group of embedding deployments (``mode = "embedding"``; all produce
        the same vectors, see router._embeddings), one of its deployments, or a raw model
        string. Same deadline, failover, breakers, retry budget and decision record as chat;
        failover stays among the group's deployments, whose vectors are interchangeable.
        """
        deadline = kwargs.pop("timeout", None)
        for key in _OURS:
            kwargs.pop(key, None)
        given = _CREDENTIALS.intersection(kwargs)
        config = self.config
        if config.is_routable(model):
            if given:
                raise _refuse_credentials(model, given)
            if self._kind(model) != EMBEDDING:
                raise _wrong_kind(model, "embedding", "router.completion / acompletion")
        request = {**kwargs, "input": input}
        cap = float(deadline) if isinstance(deadline, int | float) else None
        deployments, settings = self._route(model, request)
        asked = kwargs.get("dimensions")
        if asked is not None and any(d.dimensions not in (None, asked) for d in deployments):
            raise _refuse_dimensions(model, asked, deployments)
        job = current_job()
        context = NO_CONTEXT if job is None else CallContext(job=job.id)
        engine = self.engine
        try:
            response, decision = await engine.embed(
                model, deployments, settings, request, cap, context
            )
        except BaseException as exc:
            engine.failed(exc)
            raise
        return engine.deliver(response, decision)

    def embedding(self, model: str, input: Any = None, **kwargs: Any) -> Any:
        """Sync drop-in for `litellm.embedding` (see `aembedding`); litellm's sync API per
        attempt, like `completion`."""
        token = mark_sync()
        try:
            return run_sync(self.aembedding(model, input, **kwargs))
        finally:
            unmark_sync(token)

    def _is_policy_free(self, model: str) -> bool:
        """True when neither rules nor a context check can change where `model` goes."""
        free = self._policy_free.get(model)
        if free is None:
            config = self.config
            routed = model == config.router.auto_model and bool(config.routes)
            windows = config.is_routable(model) and any(
                self.catalogue.context_window(d) is not None for d in config.deployments_in(model)
            )
            free = self._policy_free[model] = not routed and not windows
        return free

    async def _escalating(
        self,
        group: str,
        request: dict[str, Any],
        cap: float | None,
        context: CallContext,
        subset: Sequence[Deployment] | None,
    ) -> Any:
        """A call whose group checks its answers and escalates the ones that fail.

        Each level is its own engine call; their records are composed (`router._call.escalated`)
        into the one logical call's, which is attached and reported once, at the end. All levels
        share the first one's deadline.
        """
        config, validators = self.config, self.validators  # a reload mid-call changes neither
        engine = self.engine
        origin = config.settings_for(group) if config.is_routable(group) else config.router
        if "low_confidence" in origin.escalate_on and origin.min_logprob is not None:
            request.setdefault("logprobs", True)
        messages = request.get("messages")
        deployments, settings = self._route(group, request)
        started = self.clock.now()
        try:
            response, decision = await engine.complete(
                group, subset or deployments, settings, request, cap, context
            )
        except BaseException as exc:
            engine.failed(exc)
            raise
        escalations: list[Escalation] = []
        while True:
            # The origin's checks are the task's; a level's own checks apply on top of them.
            level_settings = config.settings_for(group) if config.is_routable(group) else origin
            triggers = list(dict.fromkeys([*origin.escalate_on, *level_settings.escalate_on]))
            # Checks may ask which deployment answered (get_decision): the level's record is
            # on the response while they run; deliver() replaces it with the whole call's.
            _show_level(response, decision)
            failure = await first_failure(
                response,
                request,
                triggers,
                min_logprob=_first(level_settings.min_logprob, origin.min_logprob),
                min_confidence=_first(level_settings.min_confidence, origin.min_confidence),
                validators=validators,
            )
            if failure is None:
                return engine.deliver(response, decision, messages)
            trigger, detail = failure
            spent = decision.cost_usd - sum(e.cost_usd for e in escalations)
            said = _said(response) if engine.capture_content else None
            target = level_settings.escalate_to
            limit = origin.escalation_cost_cap
            if limit is not None and decision.cost_usd >= limit:
                detail += f"; escalation cost cap ${limit:g} reached"
                target = None
            if target is None or len(escalations) >= origin.max_escalations:
                final = needs_review(
                    decision, Escalation(group, None, trigger, detail, spent, said)
                )
                engine.deliver(response, final, messages)
                exhausted = (level_settings if level_settings.escalate_on else origin).on_exhausted
                if exhausted == "raise":
                    from router._errors import NeedsReview, attach

                    raise attach(NeedsReview(group, trigger, detail, response), final)
                return response
            escalations.append(Escalation(group, target, trigger, detail, spent, said))
            group = target
            deployments, settings = self._route(group)
            # One deadline for the logical call: this level gets what the first left.
            full = settings.deadline if cap is None else min(cap, settings.deadline)
            offset = self.clock.now() - started
            level_context = replace(context, reason=None, skipped=())
            try:
                response, level = await engine.complete(
                    group, deployments, settings, request, max(full - offset, 0.0), level_context
                )
            except BaseException as exc:
                failed = get_decision(exc)
                if failed is not None:
                    whole = escalated(
                        decision, failed, tuple(escalations), offset, full, context.reason
                    )
                    reattach(exc, whole)
                engine.failed(exc)
                raise
            decision = escalated(decision, level, tuple(escalations), offset, full, context.reason)

    async def _classify_call(
        self, group: str, messages: list[dict[str, Any]], name: str, logprobs: bool
    ) -> Any:
        """The llm classifier's call: short and cold, recorded (and paid) as its own call."""
        deployments, settings = self._route(group)
        request: dict[str, Any] = {"messages": messages, "max_tokens": 8, "temperature": 0}
        if logprobs:
            request["logprobs"] = True
        job = current_job()
        context = CallContext(
            route=f"classifier:{name}",
            reason=f"classifier {name}",
            job=None if job is None else job.id,
            step="classify",
        )
        return await self._complete(group, deployments, settings, request, None, context)

    def reload(
        self, config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None
    ) -> ConfigDiff:
        """Validate a new config and swap it in; returns what changed (see router._reload).

        An invalid config raises `ConfigError` and changes nothing. Calls already running
        finish on the old config; unchanged deployments keep their health and breakers.
        """
        from router._reload import reload_router

        return reload_router(self, config)

    def job(self, name: str, **metadata: Any) -> Job:
        """A job whose span and records go to this router's observers (see `router.job`)."""
        return Job(name, observer=self.observer, **metadata)

    def health(self) -> list[DeploymentHealth]:
        """A snapshot of every deployment's health and breaker, in config order."""
        now = self.clock.now()
        known = {h.deployment: h for h in self.state.snapshot(now)}
        from router._state import snapshot_of

        return [
            known.get(d.name) or snapshot_of(self.state.get(d.name), now)
            for d in self.config.deployments
        ]

    def completion(
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Sync drop-in for `litellm.completion`: a `ModelResponse`, or an iterator of chunks.

        Each attempt calls litellm's sync API (`litellm.completion`) in a worker thread, so
        litellm fires the callbacks of a sync call, as without the router (router._threaded).
        """
        token = mark_sync()
        try:
            result = run_sync(self.acompletion(model, messages, stream=stream, **kwargs))
        finally:
            unmark_sync(token)
        if isinstance(result, RoutedStream):
            return SyncStream(result)
        return result
