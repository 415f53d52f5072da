"""Unit tests of the Messages <-> chat-completions translation (router._serve._anthropic), on
plain objects: tools, images, tool results, and streamed tool calls."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace as NS
from typing import Any

import pytest

from router._serve._anthropic import events, response_json, to_openai
from router._serve._errors import GatewayError


def test_request_with_tools_images_and_results() -> None:
    body = {
        "max_tokens": 100,
        "system": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "top_k": 5,
        "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                             "data": "QUJD"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"q": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "and now?"},
            ]},
        ],
    }  # fmt: skip
    messages, kwargs, stream = to_openai(body)
    assert stream is False
    assert messages == [
        {"role": "system", "content": "one\ntwo"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        ]},
        {"role": "assistant", "content": "checking", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"q": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": "and now?"},
    ]  # fmt: skip
    assert kwargs == {
        "max_tokens": 100, "top_k": 5, "stop": ["END"], "user": "u-1",
        "tools": [{"type": "function", "function": {
            "name": "weather", "parameters": {"type": "object"}, "description": "d"}}],
        "tool_choice": "required", "parallel_tool_calls": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": []}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "messages.0"),
        ({"max_tokens": 5, "stream": "yes", "messages": [{"role": "user", "content": "x"}]},
         "stream"),
    ],
)  # fmt: skip
def test_malformed_requests_are_400s(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        to_openai(body)
    assert caught.value.status == 400 and caught.value.param == param


def _call(index: int, id_: str | None, name: str | None, args: str) -> NS:
    return NS(index=index, id=id_, function=NS(name=name, arguments=args))


def _chunk(content: str | None = None, calls: list[NS] | None = None,
           finish: str | None = None, usage: NS | None = None) -> NS:  # fmt: skip
    usage_only = usage is not None and content is None and calls is None and finish is None
    choices = [] if usage_only else [
        NS(delta=NS(content=content, tool_calls=calls), finish_reason=finish)
    ]  # fmt: skip
    return NS(id="chatcmpl-1", model="m", choices=choices, usage=usage)


class _Stream:
    def __init__(self, chunks: list[NS]) -> None:
        self._chunks = iter(chunks)
        self.decision = None

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> NS:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


def test_stream_of_text_then_two_tool_calls() -> None:
    chunks = [
        _chunk("Let me "), _chunk("check."),
        _chunk(calls=[_call(0, "call_a", "weather", "")]),
        _chunk(calls=[_call(0, None, None, '{"q": ')]),
        _chunk(calls=[_call(0, None, None, '"Oslo"}')]),
        _chunk(calls=[_call(1, "call_b", "time", '{}')]),
        _chunk(finish="tool_calls"),
        _chunk(usage=NS(prompt_tokens=11, completion_tokens=7)),
    ]  # fmt: skip

    async def collect() -> bytes:
        return b"".join([p async for p in events(_Stream(chunks), "chat", lambda d: b"")])

    raw = asyncio.run(collect()).decode()
    parsed = [
        (block.split("\n")[0][7:], json.loads(block.split("\n")[1][6:]))
        for block in raw.strip().split("\n\n")
    ]
    names = [n for n, _ in parsed]
    assert names == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    starts = [d for n, d in parsed if n == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "weather",
                                          "input": {}}  # fmt: skip
    partial = "".join(
        d["delta"]["partial_json"] for n, d in parsed
        if n == "content_block_delta" and d["index"] == 1
    )  # fmt: skip
    assert json.loads(partial) == {"q": "Oslo"}
    final = dict(parsed)["message_delta"]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {"input_tokens": 11, "output_tokens": 7}


def test_response_with_a_tool_call() -> None:
    message = NS(content=None, tool_calls=[
        NS(id="call_1", function=NS(name="weather", arguments='{"q": "Oslo"}'))])  # fmt: skip
    response = NS(id="chatcmpl-9", model="gpt-x", usage=NS(prompt_tokens=3, completion_tokens=4),
                  choices=[NS(message=message, finish_reason="tool_calls")])  # fmt: skip
    body = json.loads(response_json(response, "chat"))
    assert body["id"] == "msg_chatcmpl-9" and body["model"] == "gpt-x"
    assert body["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"q": "Oslo"}}
    ]
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {"input_tokens": 3, "output_tokens": 4}
