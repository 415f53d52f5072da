"""`Router.reload`: swap in a new config, validated first, keeping what is still true.

The new config is loaded and validated completely before anything changes; an invalid one
raises `ConfigError` (every problem, one line each) and the router goes on with the old
config. A valid one is swapped in with a few attribute assignments and no ``await`` between
them, so on the router's event loop no call ever sees half of it:

- calls already running finish on the old config (they hold its deployments and settings);
- deployments present in both configs with the same settings keep their health and breaker
  (the state store is keyed by deployment name and is not replaced);
- a deployment whose settings changed (model, endpoint, key, timeout, ...) starts with a fresh
  health and breaker: the old evidence was about something else;
- learned answer checks (``escalate_on = ["learned:NAME"]``) are rebuilt from the new
  config, so a refitted artifact or a new threshold takes effect;
- ``[state]`` and ``[telemetry]`` are read only at start: a change to them is reported in
  `ConfigDiff.restart_needed` and not applied.

Returns the `ConfigDiff` (router._diff). This module does not import litellm.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router._config import Config
from router._diff import ConfigDiff, diff_configs
from router._loading import load_config

if TYPE_CHECKING:
    from router._router import Router

__all__ = ["load_any", "reload_router"]


def load_any(source: Config | Mapping[str, Any] | str | os.PathLike[str] | None) -> Config:
    """A validated config from a `Config`, a mapping or a path (None: ``$ROUTER_CONFIG``...)."""
    if isinstance(source, Config):
        return source
    if source is None or isinstance(source, str | os.PathLike):
        return load_config(source)
    return Config.from_dict(source)


def reload_router(
    router: Router, source: Config | Mapping[str, Any] | str | os.PathLike[str] | None
) -> ConfigDiff:
    """Validate `source` and swap it into `router` (see the module docstring)."""
    from router._breaker import Breaker, BreakerPolicy
    from router._budget import RetryBudget
    from router._health import Health
    from router._policy import Policy

    new = load_any(source)  # raises ConfigError: nothing has changed
    # The config's learned answer checks (``learned:NAME``), rebuilt from the new config's
    # artifacts (re-read when the file changed); one that cannot load raises here, before
    # anything changed. Validators the caller passed to Router(...) are kept.
    validators = {k: v for k, v in router.validators.items() if not k.startswith("learned:")}
    if new.classifiers:
        from router._learned import config_checks

        validators.update(config_checks(new))
    old = router.config
    diff = diff_configs(old, new)
    transport = router.transport
    if any(d.rpm is not None or d.tpm is not None for d in new.deployments):
        from router._limits import LimitedBackend

        if not isinstance(transport, LimitedBackend):
            transport = LimitedBackend(transport, router.catalogue, router.state, router.clock)
    policy = Policy(new, router.catalogue, router._classify_call, dict(router.policy.classifiers))
    budget = router.budget
    base_old, base_new = old.router, new.router
    if (
        base_old.retry_budget_ratio,
        base_old.retry_budget_window,
        base_old.retry_budget_floor,
    ) != (base_new.retry_budget_ratio, base_new.retry_budget_window, base_new.retry_budget_floor):
        budget = RetryBudget(
            base_new.retry_budget_ratio, base_new.retry_budget_window, base_new.retry_budget_floor
        )
    # The swap: plain assignments, no await in between.
    for name in (*diff.changed, *diff.added):
        state = router.state.get(name)
        state.health = Health()
        hook = state.breaker.on_streak  # a shared store's (router._redis_state)
        state.breaker = Breaker(name, BreakerPolicy(), router.engine.rng)
        state.breaker.on_streak = hook
    router.transport = transport
    router.engine.transport = transport
    router.engine.budget = router.budget = budget
    router.config = new
    router.validators = validators
    router.policy = policy
    router._policy_free = {}
    router._routes = {}
    return diff
