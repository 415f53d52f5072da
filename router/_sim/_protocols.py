"""The wire protocols the simulated fleet speaks, and how litellm is pointed at each.

``PROTOCOLS`` maps a protocol name to its provider class; `litellm_params` gives the
deployment fields (litellm model string, ``api_base``, credentials, ``api_version`` /
``aws_region_name``) that make real litellm talk to a simulated provider through that
provider's own code path: ``openai/`` (OpenAI), ``anthropic/`` (Anthropic Messages),
``gemini/`` (Google AI Studio generateContent), ``azure/`` (Azure OpenAI), and
``bedrock/converse/`` (Bedrock Converse, SigV4-signed locally with dummy credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from router._sim._anthropic import AnthropicProvider
from router._sim._azure import AzureProvider
from router._sim._bedrock import BedrockProvider
from router._sim._gemini import GeminiProvider
from router._sim._openai import SimProvider

__all__ = [
    "MODELS",
    "PROTOCOLS",
    "litellm_params",
    "protocol_for_model",
    "protocol_of",
    "provider_class",
]

PROTOCOLS: Mapping[str, type[SimProvider]] = MappingProxyType(
    {
        "openai": SimProvider,
        "anthropic": AnthropicProvider,
        "gemini": GeminiProvider,
        "azure": AzureProvider,
        "bedrock": BedrockProvider,
    }
)
"""Provider class of each protocol name."""

MODELS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "openai/gpt-4o-mini",
        "anthropic": "anthropic/claude-3-5-haiku-20241022",
        "gemini": "gemini/gemini-2.0-flash",
        "azure": "azure/gpt-4o-mini",
        "bedrock": "bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0",
    }
)
"""The litellm model string used for each protocol's simulated providers by default (real
model names, so litellm applies that model's own transformations and knows its price)."""


def provider_class(protocol: str) -> type[SimProvider]:
    """The provider class of `protocol`; ``ValueError`` naming the known ones otherwise."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        known = ", ".join(PROTOCOLS)
        raise ValueError(f"unknown protocol {protocol!r} (known: {known})") from None


def protocol_for_model(model: str) -> str:
    """The protocol litellm speaks for a model string (``anthropic/...`` -> ``"anthropic"``).

    Prefixes other than the five simulated ones (``hosted_vllm/``, ``openai_like/``, ...) are
    served by the OpenAI-compatible simulator.
    """
    prefix = model.partition("/")[0]
    return prefix if prefix in PROTOCOLS else "openai"


def protocol_of(provider: SimProvider) -> str:
    """The protocol a simulated provider speaks."""
    return str(getattr(provider, "protocol", "openai"))


def litellm_params(provider: SimProvider, model: str | None = None) -> dict[str, Any]:
    """Deployment fields that point litellm at `provider` through its protocol's handler.

    ``model`` overrides the default model string of the protocol (keep its prefix). The
    credentials are dummies: the simulated providers require one to be sent, never check it.
    """
    protocol = protocol_of(provider)
    entry: dict[str, Any] = {
        "model": model or MODELS[protocol],
        "api_base": provider.base_url,
    }
    if protocol == "bedrock":
        entry["litellm_params"] = {
            "aws_access_key_id": "AKIDSIMULATED0000000",
            "aws_secret_access_key": "simulated-secret-not-checked",
            "aws_region_name": "us-east-1",
        }
        return entry
    entry["api_key"] = f"sk-sim-{protocol}"
    if protocol == "azure":
        entry["litellm_params"] = {"api_version": "2024-10-21"}
    return entry
