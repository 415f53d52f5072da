"""Reading and checking a request: the body within its size and time limits, its JSON, the
types of the OpenAI parameters the gateway checks, and the model it names.

Every failure is a `GatewayError` with the caller's status (400, 404, 408, 413): a caller's
mistake is answered here and never becomes an attempt that counts against a provider.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request

from router._serve._errors import GatewayError

if TYPE_CHECKING:
    from router._config import Config

__all__ = ["check_model", "check_types", "read_json"]

# OpenAI parameters whose type the gateway checks (a wrong type is the caller's 400, never an
# attempt that counts against a provider). Everything else passes through unchecked.
_NUMBER = (float, int)
_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER,
    "top_p": _NUMBER,
    "presence_penalty": _NUMBER,
    "frequency_penalty": _NUMBER,
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "n": (int,),
    "seed": (int,),
    "stream": (bool,),
    "stream_options": (dict,),
    "tools": (list,),
    "stop": (str, list),
    "user": (str,),
    "metadata": (dict,),
    "response_format": (dict,),
    "logprobs": (bool,),
    "top_logprobs": (int,),
}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "a boolean", dict: "an object",
               list: "an array", str: "a string"}  # fmt: skip


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"request body over the {limit} byte limit", "invalid_request_error",
        "request_too_large",
    )  # fmt: skip


def check_types(body: Mapping[str, Any]) -> None:
    """Raise a 400 naming the first checked parameter of the wrong type."""
    for key, types in _TYPES.items():
        value = body.get(key)
        if value is None:
            continue
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = (
                "a number"
                if types == _NUMBER
                else " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            )
            raise GatewayError(
                400, f"'{key}' must be {want}", "invalid_request_error", "invalid_type", key
            )


async def read_json(request: Request, limit: int, timeout: float) -> dict[str, Any]:
    """The body as a JSON object, within `limit` bytes and `timeout` seconds."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    raw = await _read(request, limit, timeout)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(
            400, f"malformed JSON body: {exc}", "invalid_request_error", "invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise GatewayError(400, "the body must be a JSON object", "invalid_request_error")
    return body


async def _read(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, within `limit` bytes and `timeout` seconds."""
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                if not chunks and not message.get("more_body", False):
                    if len(chunk) > limit:  # the usual case: the body came whole
                        raise _too_large(limit)
                    return bytes(chunk)
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise GatewayError(
            408,
            f"request body not received within {timeout:g} s",
            "invalid_request_error",
            "request_timeout",
        ) from None


def check_model(config: Config, body: Mapping[str, Any]) -> str:
    """The body's ``model``: a group, a deployment or the auto model of `config` (else a 404
    with the closest name)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(
            400, "'model' is required and must be a string", "invalid_request_error",
            "invalid_type", "model",
        )  # fmt: skip
    if config.is_routable(model) or (model == config.router.auto_model and config.routes):
        return model
    import difflib

    known = [*config.group_names(), *(d.name for d in config.deployments)]
    close = difflib.get_close_matches(model, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise GatewayError(
        404,
        f"The model '{model}' does not exist: no group or deployment of this gateway{hint}",
        "invalid_request_error",
        "model_not_found",
        "model",
    )
