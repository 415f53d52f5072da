"""`router check`'s provider checks: deployment blocks that load but cannot work.

One line per finding, naming the file, the deployment and the key:

* an Azure deployment (``azure/...``) without ``litellm_params.api_version`` (and no
  ``AZURE_API_VERSION`` in the environment): litellm would send its own built-in default,
  which changes between litellm releases and may not serve the deployment;
* a Bedrock deployment (``bedrock/...``) without ``litellm_params.aws_region_name`` (and no
  ``AWS_REGION_NAME`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``): the request cannot be signed;
* a model string litellm does not know: the provider prefix is checked against litellm's
  own model map (read from the installed package's JSON, without importing litellm); only a
  prefix that map does not list makes the check import litellm and ask
  ``litellm.get_llm_provider``, so a config of known providers is checked in milliseconds;
* (a warning) a deployment with neither ``api_key`` nor ``api_base`` whose provider's key
  variable is unset (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``,
  ``AZURE_API_KEY``, ...: the variables litellm's ``validate_environment`` names for those
  providers); Bedrock credentials may also come from an instance role or a profile.

Unset ``os.environ/NAME`` references are reported by `router._config.check_config` itself.
Values are never printed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router._config import Config, Deployment

__all__ = ["provider_findings"]

_PROVIDER_FIELD = re.compile(r'"litellm_provider"\s*:\s*"([A-Za-z0-9_.-]+)"')

_REGION_VARS = ("AWS_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION")

# The key variables litellm.validate_environment reports for these providers' model strings.
_KEY_VARS: Mapping[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY",),
    "azure": ("AZURE_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY",),
    "xai": ("XAI_API_KEY",),
}

# Providers that need no key, or whose models are not listed in litellm's map (self-hosted,
# OpenAI-compatible servers): known to litellm without asking it.
_KEYLESS = frozenset(
    {"ollama", "ollama_chat", "hosted_vllm", "vllm", "lm_studio", "llamafile", "openai_like",
     "custom_openai", "litellm_proxy", "text-completion-openai", "huggingface", "sagemaker",
     "vertex_ai", "vertex_ai_beta", "bedrock", "bedrock_converse"}
)  # fmt: skip


def provider_findings(config: Config, environ: Mapping[str, str]) -> list[str]:
    """Findings (``error: ...`` / ``warning: ...``) for deployments that cannot work."""
    found: list[str] = []
    unknown: list[tuple[Deployment, str]] = []
    for dep in config.deployments:
        where = f"{config.source}: {dep.location}"
        provider, _, rest = dep.model.partition("/")
        params = dep.litellm_params
        azure_version = params.get("api_version") or environ.get("AZURE_API_VERSION")
        if provider == "azure" and not azure_version:
            found.append(
                f"error: {where}.litellm_params.api_version: an Azure deployment needs an "
                'api_version (e.g. "2024-10-21"); litellm would otherwise send its own default'
            )
        region = params.get("aws_region_name") or any(environ.get(v) for v in _REGION_VARS)
        if provider == "bedrock" and not region:
            found.append(
                f"error: {where}.litellm_params.aws_region_name: a Bedrock deployment needs "
                "a region (or AWS_REGION_NAME / AWS_REGION in the environment)"
            )
        if not rest or (provider not in _STATIC and provider not in _known_providers()):
            unknown.append((dep, where))
            continue
        found.extend(_credential_findings(dep, where, provider, environ))
    if unknown:
        found.extend(_ask_litellm(unknown))
    return found


def _credential_findings(
    dep: Deployment, where: str, provider: str, environ: Mapping[str, str]
) -> list[str]:
    if dep.api_key is not None or dep.litellm_params.get("api_key"):
        return []
    if dep.api_base is not None and provider != "bedrock":
        return []  # a proxy, gateway or local server: its own auth, maybe none
    if provider == "bedrock":
        params = dep.litellm_params
        in_params = params.get("aws_access_key_id") or params.get("aws_profile_name")
        in_env = environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE")
        if in_params or in_env or params.get("aws_role_name"):
            return []
        return [
            f"warning: {where}.litellm_params.aws_access_key_id: no AWS credentials in the block "
            "or the environment; fine only if an instance role or profile supplies them"
        ]
    names = _KEY_VARS.get(provider)
    if not names or any(environ.get(name) for name in names):
        return []
    return [
        f"warning: {where}.api_key: not set, and {' / '.join(names)} (what litellm reads for "
        f"'{provider}/' models) is not in the environment"
    ]


def _ask_litellm(unknown: list[tuple[Deployment, str]]) -> list[str]:
    from router._env import prepare_litellm_env

    prepare_litellm_env()
    import litellm

    found = []
    for dep, where in unknown:
        try:
            # litellm prints a provider list to stdout before raising; keep output ours.
            with contextlib.redirect_stdout(io.StringIO()):
                litellm.get_llm_provider(model=dep.model, api_base=dep.api_base)
        except Exception:  # litellm raises BadRequestError (or others) for what it cannot route
            found.append(
                f"error: {where}.model: litellm does not know the model string '{dep.model}' "
                "(expected '<provider>/<model>', e.g. 'openai/gpt-4o-mini')"
            )
    return found


_STATIC = _KEYLESS | frozenset(_KEY_VARS)


@functools.cache
def _known_providers() -> frozenset[str]:
    """Provider prefixes litellm's bundled model map lists, read without importing litellm."""
    known = set(_STATIC)
    path = _model_map_path()
    if path is None:
        return frozenset(known)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return frozenset(known)
    # A scan, not json.loads: the map is ~3.5 MB and parsing it would cost `router check` a
    # few hundred milliseconds; the provider names are all this needs.
    known.update(_PROVIDER_FIELD.findall(text))
    return frozenset(known)


def _model_map_path() -> Path | None:
    override = os.environ.get("ROUTER_LITELLM_MODEL_MAP")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("litellm")  # locates the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model_prices_and_context_window_backup.json"
        if candidate.is_file():
            return candidate
    return None
