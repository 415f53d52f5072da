"""Embeddings through real litellm against the simulated fleet's ``/v1/embeddings``."""

from __future__ import annotations

from typing import Any

import litellm
import pytest

import router as router_module
from router import Router, get_decision
from router._sim import Fleet

TEXTS = ["the cat sat", "on the mat"]


def embed_config(fleet: Fleet, **per: dict[str, Any]) -> dict[str, Any]:
    deployments = []
    for rank, provider in enumerate(fleet):
        entry: dict[str, Any] = {
            "name": provider.name,
            "model": "openai/text-embedding-sim",
            "mode": "embedding",
            "dimensions": 16,
            "api_base": provider.base_url,
            "api_key": "sk-sim-test",
            "input_cost_per_token": (rank + 1) * 1e-8,
            "timeout": 5.0,
            "groups": ["embed"],
        }
        entry.update(per.get(provider.name, {}))
        deployments.append(entry)
    return {"router": {"deadline": 10.0, "max_attempts": 3}, "deployments": deployments}


async def test_aembedding_fails_over_to_a_deployment_with_the_same_vectors(fleet: Fleet) -> None:
    router = Router(embed_config(fleet), seed=0)
    first = await router.aembedding("embed", TEXTS)
    assert isinstance(first, litellm.EmbeddingResponse)
    assert get_decision(first).deployment == "a"  # type: ignore[union-attr]
    fleet["a"].set(outage="503")
    second = await router.aembedding("embed", TEXTS)
    decision = get_decision(second)
    assert decision is not None and decision.deployment == "b"
    assert [a.outcome for a in decision.attempts] == ["failure", "success"]
    assert [d["embedding"] for d in second.data] == [d["embedding"] for d in first.data]
    tokens = second.usage.prompt_tokens
    assert second._hidden_params["response_cost"] == pytest.approx(tokens * 2e-8)
    assert decision.cost_usd == pytest.approx(tokens * 2e-8)


async def test_wrong_size_vectors_fail_over(fleet: Fleet) -> None:
    router = Router(embed_config(fleet), seed=0)
    fleet["a"].set(embedding_dimensions=8)
    response = await router.aembedding("embed", "hello")
    decision = get_decision(response)
    assert decision is not None and decision.deployment == "b"
    assert len(response.data[0]["embedding"]) == 16


async def test_every_deployment_429_raises_rate_limit_error(fleet: Fleet) -> None:
    router = Router(embed_config(fleet), seed=0)
    for provider in fleet:
        provider.set(rate_limit_rate=1.0, retry_after_s=3.0)
    with pytest.raises(litellm.RateLimitError):
        await router.aembedding("embed", "hello")


def test_sync_and_module_level_embedding(threaded_fleet: Fleet) -> None:
    router = router_module.configure(embed_config(threaded_fleet), seed=0)
    response = router_module.embedding(model="embed", input=TEXTS)
    assert isinstance(response, litellm.EmbeddingResponse) and len(response.data) == 2
    assert get_decision(response).deployment == "a"  # type: ignore[union-attr]
    assert router.embedding("embed", "x").data[0]["embedding"] == (
        router_module.embedding("embed", "x").data[0]["embedding"]
    )
