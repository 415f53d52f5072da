"""The public surface: a pinned, sorted __all__, every name importable, a cheap import."""

from __future__ import annotations

import subprocess
import sys

import router

EXPECTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert router.__all__ == EXPECTED
    assert router.__all__ == sorted(router.__all__)


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in router.__all__:
        value = getattr(router, name)
        assert getattr(value, "__doc__", None), name


def test_import_is_cheap_and_offline_by_default() -> None:
    code = (
        "import os, sys; os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None); import router;"
        "assert 'litellm' not in sys.modules; assert 'opentelemetry.sdk' not in sys.modules;"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_a_value_the_user_set_is_respected() -> None:
    code = (
        "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'False'; import router;"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_deadline_exceeded_is_also_a_builtin_timeout() -> None:
    import litellm

    assert issubclass(router.DeadlineExceeded, TimeoutError)
    assert issubclass(router.DeadlineExceeded, litellm.Timeout)
