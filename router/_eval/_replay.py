"""The replay backend: recorded answers in place of live providers, behind the real engine.

`ReplayBackend` implements the `router._backend.Backend` protocol (transport and catalogue),
so a `Router` built over it runs every layer a production call runs (rules, classifiers,
context checks, the engine's selection and breakers, escalation, decision records, observers).
Only the provider call is replaced:

- each deployment is *bound* to a dataset model (``bindings``: deployment name -> model key;
  by default the deployment's own name);
- the request's ``metadata["eval_item"]`` names the item; the call returns that item's
  recorded answer for the bound model as a litellm `ModelResponse`;
- usage is litellm's token counter on the prompt and on the recorded text, with the
  deployment's model, so the engine prices the call from the config's per-token prices
  exactly as it prices a live call.

Datasets with labels but no answer text (RouteLLM's MMLU) get a fixed placeholder answer,
the same for every item and model: it carries no information about correctness, so output
checks cannot peek at the labels.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from router._catalogue import configured_cost, estimate_tokens, text_tokens

if TYPE_CHECKING:
    from router._config import Deployment
    from router._eval._data import Item

__all__ = ["ITEM_KEY", "PLACEHOLDER", "ReplayBackend", "UnknownItem"]

ITEM_KEY = "eval_item"
"""The request ``metadata`` key naming the dataset item of a replayed call."""
PLACEHOLDER = "[replay: this dataset records no answer text]"
"""The answer text of items without a recorded answer (labels only)."""


class UnknownItem(LookupError):
    """A replayed call named no item, or an item or model the dataset does not have.

    It carries HTTP status 400 so the engine treats it as the caller's error: raised at
    once, never retried on another deployment, and never counted against a breaker.
    """

    status_code = 400


class ReplayBackend:
    """Answers each call with the bound model's recorded answer to the named item."""

    def __init__(
        self, items: Mapping[str, Item] | list[Item], bindings: Mapping[str, str] | None = None
    ) -> None:
        self.items: dict[str, Item] = (
            {it.id: it for it in items} if isinstance(items, list) else dict(items)
        )
        self.bindings: dict[str, str] = dict(bindings or {})
        self.calls: dict[str, int] = {}
        """Calls served per deployment name."""
        self._ids = itertools.count(1)
        # Token counts are memoised: the same prompt is replayed under many policies.
        self._prompt_tokens: dict[tuple[str, str], int] = {}
        self._text_tokens: dict[tuple[str, str], int] = {}

    def model_for(self, deployment: Deployment) -> str:
        """The dataset model a deployment is bound to."""
        return self.bindings.get(deployment.name, deployment.name)

    def item_for(self, request: Mapping[str, Any]) -> Item:
        """The item a request names in ``metadata["eval_item"]``."""
        metadata = request.get("metadata")
        key = metadata.get(ITEM_KEY) if isinstance(metadata, Mapping) else None
        if key is None:
            raise UnknownItem(f"a replayed call needs metadata={{'{ITEM_KEY}': <item id>}}")
        item = self.items.get(str(key))
        if item is None:
            raise UnknownItem(f"no item {key!r} in the replayed dataset")
        return item

    def answer(self, deployment: Deployment, item: Item) -> str:
        """The recorded answer of the deployment's model to `item` (or the placeholder)."""
        model = self.model_for(deployment)
        if model in item.answers:
            return item.answers[model]
        if model in item.correct:
            return PLACEHOLDER
        raise UnknownItem(f"item {item.id!r} has no answer or label for model {model!r}")

    def _count_text(self, deployment: Deployment, item: Item, text: str) -> int:
        key = (deployment.model, f"{item.id}\x00{self.model_for(deployment)}")
        count = self._text_tokens.get(key)
        if count is None:
            import litellm

            try:
                count = int(litellm.token_counter(model=deployment.model, text=text))
            except Exception:  # a tokenizer problem must not fail the replay; estimate instead
                count = text_tokens(len(text))
            self._text_tokens[key] = count
        return count

    def _response(self, deployment: Deployment, request: Mapping[str, Any]) -> Any:
        import litellm

        item = self.item_for(request)
        text = self.answer(deployment, item)
        prompt = self.count_tokens(deployment, request.get("messages"))
        completion = self._count_text(deployment, item, text)
        self.calls[deployment.name] = self.calls.get(deployment.name, 0) + 1
        return litellm.ModelResponse(
            id=f"chatcmpl-replay-{next(self._ids)}",
            model=deployment.model,
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        )

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        """The recorded answer as a `ModelResponse` with usage from litellm's counter."""
        return self._response(deployment, request)

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        """The recorded answer as one content chunk and a final chunk carrying usage."""
        response = self._response(deployment, request)
        return self._chunks(response)

    async def _chunks(self, response: Any) -> AsyncIterator[Any]:
        import litellm

        content = response.choices[0].message.content
        yield litellm.ModelResponseStream(
            id=response.id,
            model=response.model,
            choices=[{"index": 0, "delta": {"role": "assistant", "content": content}}],
        )
        yield litellm.ModelResponseStream(
            id=response.id,
            model=response.model,
            choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
            usage=response.usage,
        )

    def price(
        self, deployment: Deployment, prompt_tokens: int, completion_tokens: int
    ) -> float | None:
        """Tokens times the config's prices (a replay has no other price source)."""
        return configured_cost(deployment, prompt_tokens, completion_tokens)

    def context_window(self, deployment: Deployment) -> int | None:
        """The config's ``max_context_tokens`` (the replay never looks up litellm's map)."""
        return deployment.max_context_tokens

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        """litellm's token counter for the deployment's model, memoised per prompt."""
        text = "\n".join(str(m.get("content")) for m in messages or () if isinstance(m, Mapping))
        key = (deployment.model, text)
        count = self._prompt_tokens.get(key)
        if count is None:
            import litellm

            try:
                count = int(litellm.token_counter(model=deployment.model, messages=messages))
            except Exception:  # as LiteLLMBackend: estimate rather than fail the call
                count = estimate_tokens(messages)
            self._prompt_tokens[key] = count
        return count
