"""A simulated fleet of providers, for the demo, tests and benchmarks.

Each provider is a small aiohttp server speaking one provider's wire protocol, plain and
streamed: OpenAI ``POST /v1/chat/completions`` by default, or Anthropic Messages, Gemini
generateContent, Azure OpenAI or Bedrock Converse (``Fleet(..., protocols={name: protocol})``,
see :mod:`router._sim._protocols`), whose failure modes are run-time knobs (:class:`Behavior`):
latency, error and rate-limit rates, outages (503 or connection refused), hangs, slow or cut
streams, in-band stream errors, streams without a finish reason, malformed bodies, auth
failures, context-window limits and content filters, each in its protocol's own vocabulary.
Every provider also serves a small control plane (``/_sim/stats``, ``/_sim/knobs``,
``/_sim/reset``) so knobs can be changed over HTTP.

What a provider *says* can be scripted too (``Behavior.scripts``, a list of :class:`Script`):
per prompt pattern, the reply text (valid or invalid JSON, wrong totals, ...), the finish
reason (``length`` for a cut answer), OpenAI-shaped token logprobs and a ``refusal``, so the
router's output checks (schema, validators, refusal, low confidence, length) run end to end
through real litellm.

A :class:`Fleet` runs either on the caller's event loop (``async with Fleet(...)``) or on its
own loop in a daemon thread (``with Fleet(...).threaded()``) for synchronous callers.
"""

from router._sim._fleet import (
    DEFAULT_FLEET,
    Fleet,
    ProviderSpec,
    default_fleet,
    parse_provider_spec,
)
from router._sim._knobs import FINISH_REASONS, KNOBS, Behavior, Script
from router._sim._openai import SimProvider
from router._sim._payloads import estimate_tokens
from router._sim._protocols import MODELS, PROTOCOLS, litellm_params, protocol_of
from router._sim._stats import ProviderStats, StatsSnapshot

__all__ = [
    "DEFAULT_FLEET",
    "FINISH_REASONS",
    "KNOBS",
    "MODELS",
    "PROTOCOLS",
    "Behavior",
    "Fleet",
    "ProviderSpec",
    "ProviderStats",
    "Script",
    "SimProvider",
    "StatsSnapshot",
    "default_fleet",
    "estimate_tokens",
    "litellm_params",
    "parse_provider_spec",
    "protocol_of",
]
