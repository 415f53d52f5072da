"""The model catalogue seam: what a deployment costs, how much it holds, how long a prompt is.

The engine asks the catalogue (never the transport) for a served call's price, the selector
for the reference price it ranks by, the policy for prompt lengths and context windows.
`LiteLLMCatalogue` answers from the config first (``input_cost_per_token``,
``max_context_tokens``) and then from litellm's bundled model map; fakes answer from the config.

A price is ``float | None``: ``None`` means *unknown* (the model is in neither the config nor
litellm's map), ``0.0`` means *free*. The selector ranks unknown prices last, free ones first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from router._fields import field

if TYPE_CHECKING:
    from router._config import Deployment

__all__ = [
    "Catalogue",
    "LiteLLMCatalogue",
    "configured_cost",
    "estimate_tokens",
    "tokens_cost",
    "usage_cost",
]


@runtime_checkable
class Catalogue(Protocol):
    """Prices, context windows and token counts of deployments."""

    def price(
        self, deployment: Deployment, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        """USD of the given usage on this deployment; None when the price is unknown."""

    def context_window(self, deployment: Deployment) -> int | None:
        """Maximum input tokens of the deployment, if known."""

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        """Estimated prompt tokens of `messages` for this deployment's model."""


class LiteLLMCatalogue:
    """The config's prices and windows, then litellm's model map; litellm's token counter."""

    def __init__(self) -> None:
        from router._env import prepare_litellm_env

        prepare_litellm_env()
        import litellm

        if not os.environ.get("ROUTER_LITELLM_DEBUG_INFO"):
            litellm.suppress_debug_info = True  # see LiteLLMTransport
        self._litellm = litellm
        self._price_known: dict[str, bool] = {}
        self._windows: dict[str, int | None] = {}

    def price(
        self, deployment: Deployment, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        configured = configured_cost(deployment, prompt_tokens, completion_tokens)
        if configured is not None:
            return configured
        model = deployment.model
        if self._price_known.get(model) is False:
            return None
        try:
            prompt_cost, completion_cost = self._litellm.cost_per_token(
                model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception:  # litellm raises for models missing from its price map
            self._price_known[model] = False
            return None
        self._price_known[model] = True
        return float(prompt_cost) + float(completion_cost)

    def context_window(self, deployment: Deployment) -> int | None:
        if deployment.max_context_tokens is not None:
            return deployment.max_context_tokens
        model = deployment.model
        if model not in self._windows:
            try:
                info = self._litellm.get_model_info(model)
                window = info.get("max_input_tokens") or info.get("max_tokens")
                self._windows[model] = int(window) if window else None
            except Exception:  # unknown to litellm's map
                self._windows[model] = None
        return self._windows[model]

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        try:
            return int(self._litellm.token_counter(model=deployment.model, messages=messages))
        except Exception:  # a tokenizer problem must not fail the call; estimate instead
            return estimate_tokens(messages)


def configured_cost(
    deployment: Deployment, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """Cost from the prices in providers.toml, or None when the deployment sets none."""
    cin = deployment.input_cost_per_token
    cout = deployment.output_cost_per_token
    if cin is None and cout is None:
        return None
    return prompt_tokens * (cin or 0.0) + completion_tokens * (cout or 0.0)


CHARS_PER_TOKEN: Final = 4
"""The one rule of thumb for a token count without a tokenizer (English text averages about
four characters a token)."""


def text_tokens(chars: int) -> int:
    """The token estimate of `chars` characters of text: ~4 a token, rounded up, at least 1.

    Every estimate without a tokenizer goes through here: the router's prompt counts when
    litellm's counter fails (`estimate_tokens`), a stream's output without a usage chunk
    (`router._limits`), the simulated providers' usage (`router._sim`) and the eval replay.
    Rounded up: a context-window or TPM check errs on the side of fitting fewer tokens.
    """
    return max(1, -(-chars // CHARS_PER_TOKEN))


def estimate_tokens(messages: Any) -> int:
    """A cheap token estimate (`text_tokens`) over message contents."""
    chars = 0
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        chars += len(part["text"])
    return text_tokens(chars)


def usage_cost(catalogue: Catalogue, deployment: Deployment, usage: Any) -> float:
    """What a response's usage cost on `deployment`; 0.0 in the record when the price is unknown."""
    if usage is None:
        return 0.0
    return tokens_cost(
        catalogue, deployment, field(usage, "prompt_tokens"), field(usage, "completion_tokens")
    )


def tokens_cost(
    catalogue: Catalogue, deployment: Deployment, prompt: Any, completion: Any
) -> float:
    """`usage_cost` from the usage's two token counts (None when absent: no usage is free)."""
    if prompt is None and completion is None:
        return 0.0
    price = catalogue.price(deployment, int(prompt or 0), int(completion or 0))
    return 0.0 if price is None else price
