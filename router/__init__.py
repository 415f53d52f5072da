"""router: a resilience and routing layer over litellm.

``from router import completion`` is a drop-in for ``litellm.completion``: same arguments, same
response types, same exception classes, with failover across the deployments of a group under
one deadline, and a decision record on every response saying why it went where it went.

Importing this package is cheap: litellm (a 3-4 s import) is loaded on the first call that
needs it, and ``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set (unless you set it) so that import
never reaches for the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router._env import prepare_litellm_env

prepare_litellm_env()

if TYPE_CHECKING:
    from router._config import Config, ConfigError, Deployment, RouterSettings
    from router._decision import (
        AttemptRecord,
        Candidate,
        Decision,
        Escalation,
        JobRecord,
        Skip,
        get_decision,
    )
    from router._default import (
        acompletion,
        aembedding,
        completion,
        configure,
        default_router,
        embedding,
    )
    from router._errors import (
        AllRateLimited,
        AllUnauthorized,
        DeadlineExceeded,
        NeedsReview,
        NoDeploymentAvailable,
        StreamInterrupted,
    )
    from router._escalate import register_validator
    from router._jobs import Job, current_job, job
    from router._loading import load_config
    from router._observe import BaseObserver
    from router._outcomes import record_outcome
    from router._policy import register_classifier
    from router._pool import Pool, PoolSettings, Routed
    from router._router import Router
    from router._state import DeploymentHealth
    from router._stream import RoutedStream

__all__ = [
    "AllRateLimited",
    "AllUnauthorized",
    "AttemptRecord",
    "BaseObserver",
    "Candidate",
    "Config",
    "ConfigError",
    "DeadlineExceeded",
    "Decision",
    "Deployment",
    "DeploymentHealth",
    "Escalation",
    "Job",
    "JobRecord",
    "NeedsReview",
    "NoDeploymentAvailable",
    "Pool",
    "PoolSettings",
    "Routed",
    "RoutedStream",
    "Router",
    "RouterSettings",
    "Skip",
    "StreamInterrupted",
    "acompletion",
    "aembedding",
    "completion",
    "configure",
    "current_job",
    "default_router",
    "embedding",
    "get_decision",
    "job",
    "load_config",
    "record_outcome",
    "register_classifier",
    "register_validator",
]

_WHERE = {
    "AllRateLimited": "router._errors",
    "AllUnauthorized": "router._errors",
    "AttemptRecord": "router._decision",
    "BaseObserver": "router._observe",
    "Candidate": "router._decision",
    "Config": "router._config",
    "ConfigError": "router._config",
    "DeadlineExceeded": "router._errors",
    "Decision": "router._decision",
    "Deployment": "router._config",
    "DeploymentHealth": "router._state",
    "Escalation": "router._decision",
    "Job": "router._jobs",
    "JobRecord": "router._decision",
    "NeedsReview": "router._errors",
    "NoDeploymentAvailable": "router._errors",
    "Pool": "router._pool",
    "PoolSettings": "router._pool",
    "Routed": "router._pool",
    "RoutedStream": "router._stream",
    "Router": "router._router",
    "RouterSettings": "router._config",
    "Skip": "router._decision",
    "StreamInterrupted": "router._errors",
    "acompletion": "router._default",
    "aembedding": "router._default",
    "completion": "router._default",
    "configure": "router._default",
    "current_job": "router._jobs",
    "default_router": "router._default",
    "embedding": "router._default",
    "get_decision": "router._decision",
    "job": "router._jobs",
    "load_config": "router._loading",
    "record_outcome": "router._outcomes",
    "register_classifier": "router._policy",
    "register_validator": "router._escalate",
}


def __getattr__(name: str) -> Any:
    # Lazy: the public names live in modules that import litellm; load them on first access.
    module_name = _WHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module 'router' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
