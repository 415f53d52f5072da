"""``POST /v1/messages`` (Anthropic's Messages API) through `router serve`, with clients nobody
here wrote: litellm's own Anthropic provider (``anthropic/...`` with the gateway as its
``api_base``: real Anthropic wire format, its own request building and SSE parsing) and curl.
The ``anthropic`` SDK is not in the locked dependency set."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import litellm
import openai
import pytest

from router._sim import Fleet

from .conftest import KEY, GatewayProcess

HI: Any = [{"role": "user", "content": "hi"}]


async def ask(gateway: GatewayProcess, model: str = "chat", **kwargs: Any) -> Any:
    return await litellm.acompletion(
        model=f"anthropic/{model}", api_base=gateway.url, api_key=KEY, messages=HI,
        max_tokens=64, num_retries=0, **kwargs,
    )  # fmt: skip


async def test_litellm_anthropic_client_plain(gateway: GatewayProcess, fresh: Fleet) -> None:
    reply = await ask(gateway, system="Be brief.", temperature=0.3, stop=["zzz"])
    assert reply.choices[0].message.content == "Hello from a."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    sent = fresh["a"].last_request  # what the provider got, in OpenAI's format
    assert sent is not None
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.3 and sent["stop"] == ["zzz"] and sent["max_tokens"] == 64
    headers = reply._hidden_params.get("additional_headers") or {}
    found = {k.removeprefix("llm_provider-"): v for k, v in headers.items()}
    assert found.get("x-router-deployment") == "a"


async def test_litellm_anthropic_client_stream(gateway: GatewayProcess, fresh: Fleet) -> None:
    stream = await ask(gateway, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from a."
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usage and usage[-1].completion_tokens > 0 and usage[-1].prompt_tokens > 0


async def test_litellm_anthropic_client_errors(gateway: GatewayProcess, fresh: Fleet) -> None:
    with pytest.raises(litellm.NotFoundError):
        await ask(gateway, model="no-such-group")
    with pytest.raises(litellm.AuthenticationError):
        await litellm.acompletion(
            model="anthropic/chat", api_base=gateway.url, api_key="sk-wrong", messages=HI,
            max_tokens=8, num_retries=0,
        )  # fmt: skip


async def test_litellm_anthropic_client_stream_cut_raises(
    gateway: GatewayProcess, fresh: Fleet
) -> None:
    fresh["acut"].set(cut_stream_after=2, stream_chunks=6)
    stream = await ask(gateway, model="acut", stream=True)
    # litellm raises its mid-stream error (an openai.APIError) with the gateway's message.
    with pytest.raises(openai.APIError) as caught:
        async for _ in stream:
            pass
    assert "interrupted after 2 chunk" in str(caught.value)


def _curl(gateway: GatewayProcess, body: dict[str, Any], *extra: str) -> str:
    return subprocess.run(
        ["curl", "-sS", "-N", *extra, "-H", "content-type: application/json",
         "-H", f"x-api-key: {KEY}", "-H", "anthropic-version: 2023-06-01",
         "-d", json.dumps(body), f"{gateway.url}/v1/messages"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip


def test_curl_messages_plain_stream_and_errors(gateway: GatewayProcess, fresh: Fleet) -> None:
    body = {"model": "chat", "max_tokens": 32, "messages": HI}
    reply = json.loads(_curl(gateway, body))
    assert reply["type"] == "message" and reply["role"] == "assistant"
    assert reply["content"] == [{"type": "text", "text": "Hello from a."}]
    assert reply["stop_reason"] == "end_turn" and reply["id"].startswith("msg_")
    assert reply["usage"]["input_tokens"] > 0 and reply["usage"]["output_tokens"] > 0
    raw = _curl(gateway, {**body, "stream": True})
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    datas = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "Hello from a."
    final = next(d for d in datas if d["type"] == "message_delta")
    assert final["delta"]["stop_reason"] == "end_turn" and final["usage"]["output_tokens"] > 0
    assert ": x-router-deployment: a" in raw  # the decision trailer, before message_stop
    # Errors in Anthropic's shape.
    missing = json.loads(_curl(gateway, {"model": "chat", "messages": HI}))
    assert missing["type"] == "error"
    assert missing["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing["error"]["message"]
    unknown = json.loads(_curl(gateway, {**body, "model": "nope"}))
    assert unknown["error"]["type"] == "not_found_error"


def test_curl_messages_stream_cut_ends_with_an_error_event(
    gateway: GatewayProcess, fresh: Fleet
) -> None:
    fresh["acut"].set(cut_stream_after=2, stream_chunks=6)
    raw = _curl(gateway, {"model": "acut", "max_tokens": 32, "messages": HI, "stream": True})
    names = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "error"
    assert "message_stop" not in names
