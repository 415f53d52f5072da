"""Embedding groups: validated compatibility at load, routed like chat (fake backend)."""

from __future__ import annotations

from typing import Any

import litellm
import pytest

from router import ConfigError, Router, get_decision
from router._config import Config
from router._embeddings import simulated_vector
from router.testing import FakeBackend, FakeClock, fail


def _dep(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": "openai/text-embedding-3-small",
        "mode": "embedding",
        "input_cost_per_token": 2e-8,
        "timeout": 2.0,
        "groups": ["embed"],
        **extra,
    }


def _cfg(*deployments: dict[str, Any]) -> dict[str, Any]:
    chat = {"name": "c", "model": "openai/gpt-4o-mini", "groups": ["chat"]}
    return {"router": {"deadline": 10.0, "strategy": "cost"}, "deployments": [*deployments, chat]}


def make(cfg: dict[str, Any]) -> tuple[Router, FakeBackend, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(clock)
    return Router(cfg, backend=backend, clock=clock, seed=1, telemetry=False), backend, clock


@pytest.mark.parametrize(
    ("b", "where", "says"),
    [
        ({"model": "azure/my-embedder"}, "deployments[1] (b).model", "same vectors"),
        (
            {"model": "azure/my-embedder", "vector_space": "other"},
            "deployments[1] (b).vector_space",
            "vector_space 'other'",
        ),
        ({"dimensions": 256}, "deployments[1] (b).dimensions", "dimensions = 256"),
        ({"mode": "chat"}, "deployments[1] (b).groups", "mixes chat deployment 'b'"),
    ],
)
def test_incompatible_embedding_groups_are_refused_at_load(
    b: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(_cfg(_dep("a", dimensions=1536), _dep("b", **b)), source="p.toml")
    text = str(info.value)
    assert f"p.toml: {where}" in text and says in text


def test_deployments_marked_with_one_vector_space_may_share_a_group() -> None:
    config = Config.from_dict(
        _cfg(
            _dep("a", vector_space="te3-small"),
            _dep("b", model="azure/te3-small-eu", vector_space="te3-small"),
        )
    )
    assert [d.name for d in config.deployments_in("embed")] == ["a", "b"]


def test_embedding_keys_on_a_chat_deployment_are_refused() -> None:
    with pytest.raises(ConfigError, match="set mode = \"embedding\""):
        Config.from_dict({"deployments": [{"name": "x", "model": "m", "vector_space": "v"}]})


async def test_embedding_fails_over_like_chat_and_keeps_the_vectors() -> None:
    router, backend, _ = make(_cfg(_dep("a"), _dep("b", input_cost_per_token=4e-8)))
    first = await router.aembedding("embed", ["hello world", "hi"])
    assert isinstance(first, litellm.EmbeddingResponse)
    assert get_decision(first).deployment == "a"  # type: ignore[union-attr]
    backend.script("a", default=fail(503))
    second = await router.aembedding("embed", ["hello world", "hi"])
    decision = get_decision(second)
    assert decision is not None and decision.deployment == "b"
    assert [a.outcome for a in decision.attempts] == ["failure", "success"]
    assert [d["embedding"] for d in second.data] == [d["embedding"] for d in first.data]
    tokens = second.usage.prompt_tokens
    assert decision.cost_usd == pytest.approx(tokens * 4e-8)
    assert second._hidden_params["response_cost"] == pytest.approx(tokens * 4e-8)
    assert second._hidden_params["model_id"] == "b"
    for _ in range(6):
        await router.aembedding("embed", "x")
    health = {h.deployment: h for h in router.health()}
    assert health["a"].state == "open"  # the same breakers as chat


async def test_a_response_of_the_wrong_size_is_a_failure_not_an_answer() -> None:
    router, backend, _ = make(_cfg(_dep("a", dimensions=8), _dep("b", dimensions=8)))

    async def short(deployment: Any, request: Any, timeout: float) -> Any:
        return litellm.EmbeddingResponse(
            model="m", data=[{"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}]
        )

    real = backend.embed

    async def embed(deployment: Any, request: Any, timeout: float) -> Any:
        if deployment.name == "a":
            return await short(deployment, request, timeout)
        return await real(deployment, request, timeout)

    backend.embed = embed  # type: ignore[method-assign]
    response = await router.aembedding("embed", "hello")
    decision = get_decision(response)
    assert decision is not None and decision.deployment == "b"
    assert "APIResponseValidationError" in (decision.attempts[0].error or "")
    assert len(response.data[0]["embedding"]) == 8


async def test_calls_of_the_wrong_kind_are_refused_before_any_attempt() -> None:
    router, backend, _ = make(_cfg(_dep("a")))
    with pytest.raises(litellm.UnsupportedParamsError, match="embedding"):
        await router.acompletion("embed", [{"role": "user", "content": "hi"}])
    with pytest.raises(litellm.UnsupportedParamsError, match="chat"):
        await router.aembedding("chat", "hi")
    with pytest.raises(litellm.UnsupportedParamsError, match="api_key"):
        await router.aembedding("embed", "hi", api_key="sk-caller")
    assert backend.calls == []


def test_simulated_vectors_are_deterministic_unit_vectors() -> None:
    one = simulated_vector("m", "hello world", 16)
    assert one == simulated_vector("m", "hello world", 16)
    assert one != simulated_vector("other", "hello world", 16)
    assert sum(x * x for x in one) == pytest.approx(1.0, abs=1e-4)
    near = simulated_vector("m", "hello there world", 16)
    far = simulated_vector("m", "zebra quantum", 16)
    def dot(u: list[float], v: list[float]) -> float:
        return sum(a * b for a, b in zip(u, v, strict=True))

    assert dot(one, near) > dot(one, far)
