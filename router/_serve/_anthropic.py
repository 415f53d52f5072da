"""``POST /v1/messages``: Anthropic's Messages API over the same router.

A client written for Anthropic (its SDKs, litellm's ``anthropic/`` provider, Claude-style agent
frameworks that take a base URL) sends a Messages request; the gateway translates it to the
OpenAI-format call every other route makes (`Router.acompletion`, so the same groups, rules,
failover and decision), and translates the answer back: a ``message`` object, or Anthropic's
named SSE events for a stream.

Request, Anthropic -> OpenAI:

- ``system`` (a string or text blocks) -> a leading system message;
- ``messages``: text blocks -> text parts, ``image`` blocks (base64 or URL sources) ->
  ``image_url`` parts, an assistant's ``tool_use`` blocks -> ``tool_calls`` (``input`` as JSON
  ``arguments``), a user's ``tool_result`` blocks -> ``tool`` messages (before the rest of that
  user turn), ``thinking`` / ``redacted_thinking`` blocks are dropped (they are the provider's);
- ``max_tokens`` (required, as with Anthropic), ``temperature``, ``top_p``, ``top_k``,
  ``stop_sequences`` -> ``stop``, ``metadata.user_id`` -> ``user``, ``tools`` (``input_schema``
  -> ``parameters``), ``tool_choice`` (``auto`` / ``any`` -> ``required`` / ``tool`` -> that
  function / ``none``; ``disable_parallel_tool_use`` -> ``parallel_tool_calls = false``);
  ``thinking`` and any other field pass through as they are.

Response, OpenAI -> Anthropic: text -> a ``text`` block, tool calls -> ``tool_use`` blocks,
``finish_reason`` -> ``stop_reason`` (``stop`` -> ``end_turn``, ``length`` -> ``max_tokens``,
``tool_calls`` -> ``tool_use``, ``content_filter`` -> ``refusal``), usage -> ``input_tokens`` /
``output_tokens``. A stream is ``message_start``, ``ping``, per block ``content_block_start`` /
``content_block_delta`` (``text_delta`` or ``input_json_delta``) / ``content_block_stop``, then
``message_delta`` (``stop_reason``, cumulative usage) and ``message_stop``. Token counts are
known only at the end (the provider sends usage last), so ``message_start`` says 0 and
``message_delta`` carries both counts, as its usage is cumulative in Anthropic's protocol. The
cost trailer (SSE comments, see router._serve._sse) comes just before ``message_stop``.

Errors are Anthropic's ``{"type": "error", "error": {"type", "message"}}`` with the same
statuses as the OpenAI routes; a stream that breaks after its first event ends with ``event:
error`` and no ``message_stop``, so Anthropic clients raise instead of returning a truncated
message.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

from router._decision import Decision
from router._fields import field
from router._serve._errors import GatewayError

__all__ = ["error_json", "events", "response_json", "to_openai"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
         "function_call": "tool_use", "content_filter": "refusal"}  # fmt: skip
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 408: "timeout_error",
                413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error",
                504: "timeout_error"}  # fmt: skip
_DROPPED_BLOCKS = ("thinking", "redacted_thinking")
_RENAMED = {"stop_sequences": "stop"}
_HANDLED = frozenset(
    {"model", "messages", "system", "stream", "metadata", "tools", "tool_choice", *_RENAMED}
)


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", "invalid_type", param)


def error_json(error: GatewayError) -> dict[str, Any]:
    """The Anthropic error object for `error`."""
    kind = _ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


# -- request ---------------------------------------------------------------------------------


def to_openai(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """``(messages, kwargs, stream)`` for `Router.acompletion` from a Messages request body
    (``model`` already taken out). Raises `GatewayError` (400) on a malformed request."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _bad("'max_tokens' is required and must be a positive integer", "max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad("'messages' is required and must be a non-empty array", "messages")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _text_of(system, "system")})
    for i, message in enumerate(raw):
        messages.extend(_message(message, f"messages.{i}"))
    kwargs = {k: v for k, v in body.items() if k not in _HANDLED}
    for theirs, ours in _RENAMED.items():
        if body.get(theirs) is not None:
            kwargs[ours] = body[theirs]
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        kwargs["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools is not None:
        kwargs["tools"] = _tools(tools)
    choice = body.get("tool_choice")
    if choice is not None:
        kwargs.update(_tool_choice(choice))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean", "stream")
    return messages, kwargs, stream


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, Mapping) or block.get("type") != "text":
                raise _bad(f"'{where}' may hold only text blocks", where)
            parts.append(str(block.get("text", "")))
        return "\n".join(parts)
    raise _bad(f"'{where}' must be a string or an array of text blocks", where)


def _message(message: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(message, Mapping):
        raise _bad(f"'{where}' must be an object", where)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _bad(f"'{where}.role' must be 'user' or 'assistant'", f"{where}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad(f"'{where}.content' must be a string or an array of blocks", where)
    if role == "assistant":
        return [_assistant(content, where)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image(block.get("source"), f"{where}.content.{j}"))
        elif kind == "tool_result":
            result = block.get("content", "")
            text = result if isinstance(result, str) else _result_text(result)
            if block.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
                        "content": text})  # fmt: skip
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise _bad(f"'{where}.content.{j}': unsupported block type {kind!r}", where)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        joined = "\n".join(p["text"] for p in parts) if only_text else parts
        out.append({"role": "user", "content": joined})
    return out


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise _bad(f"'{where}.content.{j}': unsupported block type {kind!r}", where)
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _result_text(result: Any) -> str:
    if isinstance(result, list):
        return "\n".join(
            str(b.get("text", "")) for b in result if isinstance(b, Mapping) and "text" in b
        )
    return json.dumps(result)


def _image(source: Any, where: str) -> dict[str, Any]:
    if isinstance(source, Mapping):
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
            return {"type": "image_url", "image_url": {"url": url}}
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _bad(f"'{where}.source' must be a base64 or url image source", where)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise _bad(f"'tools.{i}' must be an object with a 'name'", f"tools.{i}")
        function: dict[str, Any] = {
            "name": tool["name"],
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if not isinstance(choice, Mapping):
        raise _bad("'tool_choice' must be an object", "tool_choice")
    kind = choice.get("type")
    out: dict[str, Any]
    if kind == "auto":
        out = {"tool_choice": "auto"}
    elif kind == "any":
        out = {"tool_choice": "required"}
    elif kind == "none":
        out = {"tool_choice": "none"}
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    else:
        raise _bad("'tool_choice.type' must be auto, any, tool (with a name) or none")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


# -- response --------------------------------------------------------------------------------


def _message_id(response_id: Any) -> str:
    return (
        f"msg_{response_id}"
        if isinstance(response_id, str) and response_id
        else (f"msg_{secrets.token_hex(12)}")
    )


def _usage(usage: Any) -> dict[str, int]:
    return {
        "input_tokens": int(field(usage, "prompt_tokens") or 0),
        "output_tokens": int(field(usage, "completion_tokens") or 0),
    }


def _arguments(text: Any) -> Any:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def response_json(response: Any, model: str) -> bytes:
    """An OpenAI-format `ModelResponse` as Anthropic's ``message`` object (JSON bytes)."""
    choices = field(response, "choices") or []
    choice = choices[0] if choices else None
    message = field(choice, "message")
    content: list[dict[str, Any]] = []
    text = field(message, "content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in field(message, "tool_calls") or []:
        function = field(call, "function")
        content.append(
            {
                "type": "tool_use",
                "id": field(call, "id") or f"toolu_{secrets.token_hex(12)}",
                "name": field(function, "name") or "",
                "input": _arguments(field(function, "arguments")),
            }
        )
    if not content:
        content.append({"type": "text", "text": ""})
    finish = field(choice, "finish_reason")
    body = {
        "id": _message_id(field(response, "id")),
        "type": "message",
        "role": "assistant",
        "model": field(response, "model") or model,
        "content": content,
        "stop_reason": _STOP.get(str(finish), "end_turn") if finish else "end_turn",
        "stop_sequence": None,
        "usage": _usage(field(response, "usage")),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    return (
        f"event: {name}\ndata: ".encode()
        + json.dumps(data, separators=(",", ":")).encode()
        + (b"\n\n")
    )


class _Blocks:
    """The content blocks of a streamed message: which one is open, and its index."""

    def __init__(self) -> None:
        self.index = -1
        self.open: tuple[str, Any] | None = None
        self.tool_id: str | None = None

    def close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def start(self, key: tuple[str, Any], block: Mapping[str, Any]) -> bytes:
        closed = self.close()
        self.index += 1
        self.open = key
        return closed + _event(
            "content_block_start",
            {"type": "content_block_start", "index": self.index, "content_block": block},
        )

    def delta(self, delta: Mapping[str, Any]) -> bytes:
        return _event(
            "content_block_delta", {"type": "content_block_delta", "index": self.index,
                                    "delta": delta},
        )  # fmt: skip


async def events(stream: Any, model: str, end: Any) -> AsyncIterator[bytes]:
    """Anthropic's SSE events for a routed OpenAI-format stream.

    `end(decision)` gives the bytes to send just before ``message_stop`` (the cost trailer).
    """
    blocks = _Blocks()
    usage: Any = None
    finish: Any = None
    started = False
    async for chunk in stream:
        out = b""
        if not started:
            started = True
            out += _start(chunk, model)
        found = field(chunk, "usage")
        if found is not None:
            usage = found
        for choice in field(chunk, "choices") or []:
            delta = field(choice, "delta")
            text = field(delta, "content")
            if text:
                if blocks.open is None or blocks.open[0] != "text":
                    out += blocks.start(("text", None), {"type": "text", "text": ""})
                out += blocks.delta({"type": "text_delta", "text": text})
            for call in field(delta, "tool_calls") or []:
                out += _tool_delta(blocks, call)
            reason = field(choice, "finish_reason")
            if reason:
                finish = reason
        if out:
            yield out
    decision = getattr(stream, "decision", None)
    out = b"" if started else _start(None, model)
    out += blocks.close()
    out += _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP.get(str(finish), "end_turn"), "stop_sequence": None},
            "usage": _usage(usage),
        },
    )
    out += end(decision if isinstance(decision, Decision) else None)
    yield out + _event("message_stop", {"type": "message_stop"})


def _start(chunk: Any, model: str) -> bytes:
    message: dict[str, Any] = {
        "id": _message_id(field(chunk, "id")),
        "type": "message",
        "role": "assistant",
        "model": field(chunk, "model") or model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    return _event("message_start", {"type": "message_start", "message": message}) + _event(
        "ping", {"type": "ping"}
    )


def _tool_delta(blocks: _Blocks, call: Any) -> bytes:
    out = b""
    index = field(call, "index")
    call_id = field(call, "id")
    function = field(call, "function")
    open_ = blocks.open
    if (
        open_ is None
        or open_[0] != "tool"
        or open_[1] != index
        or (call_id and call_id != blocks.tool_id)
    ):
        blocks.tool_id = call_id
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": call_id or f"toolu_{secrets.token_hex(12)}",
            "name": field(function, "name") or "",
            "input": {},
        }
        out += blocks.start(("tool", index), block)
    arguments = field(function, "arguments")
    if arguments:
        out += blocks.delta({"type": "input_json_delta", "partial_json": arguments})
    return out
