"""Embeddings through `router serve` with the official openai Python SDK: routed, failed over,
priced, and refused clearly when the model or the input is wrong."""

from __future__ import annotations

import base64
import struct
from typing import Any

import openai
import pytest

from router._sim import Fleet

from .conftest import HTTP, KEY, GatewayProcess

TEXTS = ["the cat sat", "on the mat"]


def client(gateway: GatewayProcess) -> Any:
    return openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0)


def test_embeddings_routed_and_failed_over(gateway: GatewayProcess, fresh: Fleet) -> None:
    c = client(gateway)
    raw = c.embeddings.with_raw_response.create(model="embed", input=TEXTS)
    first = raw.parse()
    assert raw.headers["x-router-deployment"] == "embed-a"  # the cheaper of the two
    assert [len(d.embedding) for d in first.data] == [16, 16]
    assert [d.index for d in first.data] == [0, 1]
    tokens = first.usage.prompt_tokens
    assert tokens > 0 and float(raw.headers["x-router-cost"]) == pytest.approx(tokens * 1e-8)
    fresh["a"].set(outage="503")  # embed-a's provider fails: the other deployment answers
    raw = c.embeddings.with_raw_response.create(model="embed", input=TEXTS, encoding_format="float")
    second = raw.parse()
    assert raw.headers["x-router-deployment"] == "embed-b"
    assert raw.headers["x-router-attempts"] == "2"
    # The same vectors (the first came as the SDK's default base64 float32, this one as JSON
    # floats: equal to float32 precision).
    for one, two in zip(first.data, second.data, strict=True):
        assert two.embedding == pytest.approx(one.embedding, rel=1e-6, abs=1e-7)
    assert float(raw.headers["x-router-cost"]) == pytest.approx(tokens * 2e-8)


def test_embeddings_by_deployment_and_base64(gateway: GatewayProcess, fresh: Fleet) -> None:
    # The SDK's own default asks for base64 and decodes it; asking explicitly over raw HTTP
    # returns OpenAI's base64 float32 string as the provider sent it.
    floats = client(gateway).embeddings.create(model="embed-b", input="hello")
    assert len(floats.data[0].embedding) == 16
    r = HTTP.post(
        f"{gateway.base_url}/embeddings",
        json={"model": "embed-b", "input": "hello", "encoding_format": "base64"},
    )
    assert r.status_code == 200 and r.headers["x-router-deployment"] == "embed-b"
    encoded = r.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    vector = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert vector == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_embeddings_bad_requests(gateway: GatewayProcess, fresh: Fleet) -> None:
    c = client(gateway)
    with pytest.raises(openai.NotFoundError) as missing:
        c.embeddings.create(model="embedd", input="x")
    assert isinstance(missing.value.body, dict) and missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as chat_model:
        c.embeddings.create(model="chat", input="x")  # a chat group, not embeddings
    assert "embedding" in str(chat_model.value)
    r = HTTP.post(f"{gateway.base_url}/embeddings", json={"model": "embed", "input": 3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    # None of these was an attempt against a provider: embed-a is still first and healthy.
    raw = c.embeddings.with_raw_response.create(model="embed", input="x")
    assert raw.headers["x-router-deployment"] == "embed-a"
    assert raw.headers["x-router-attempts"] == "1"
