"""What a simulated OpenAI-compatible provider says: answers, tokens, logprobs, errors, SSE.

Pure functions of the request and the knobs; the server (:mod:`router._sim._openai`) decides
when to send them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from router._catalogue import CHARS_PER_TOKEN, text_tokens
from router._sim._knobs import Behavior

__all__ = ["estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text`` the way the simulator does (`text_tokens`)."""
    return text_tokens(len(text))


def _prompt_parts(messages: list[Any]) -> list[str]:
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            # Multi-part content (OpenAI's [{"type": "text", "text": ...}, ...]).
            parts.extend(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return parts


def _prompt_text(messages: list[Any]) -> str:
    return "".join(_prompt_parts(messages))


@dataclass(frozen=True)
class _Answer:
    """What one request is answered with: the reply or the script that matched it."""

    content: str | None
    finish_reason: str = "stop"
    logprobs: float | None = None
    refusal: str | None = None

    @property
    def text(self) -> str:
        """The text the answer is billed for (content, else the refusal)."""
        return self.content or self.refusal or ""


def _answer(b: Behavior, messages: list[Any], provider: str) -> _Answer:
    if b.scripts:
        # Joined with newlines (unlike the token estimate) so ^/$ with (?m) see each message.
        text = "\n".join(_prompt_parts(messages))
        for script in b.scripts:
            if script.matches(text):
                reply = script.reply.replace("{provider}", provider)
                return _Answer(
                    # OpenAI sends content null with a refusal; an explicit reply is kept.
                    None if script.refusal is not None and not reply else reply,
                    script.finish_reason,
                    script.logprobs,
                    script.refusal,
                )
    return _Answer(b.reply.replace("{provider}", provider))


def _tokens(text: str) -> list[str]:
    """The reply cut into the simulator's tokens: 4 characters each, as `estimate_tokens`."""
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


class _Logprobs:
    """Per-token logprobs whose mean over the whole answer is exactly `mean`.

    Tokens alternate mean ± spread (spread = |mean| / 2, so values stay <= 0) and an odd
    last token gets the mean itself: however the tokens are split into stream chunks, the
    values average to `mean`, while not being suspiciously constant.
    """

    def __init__(self, mean: float, total: int, top: int) -> None:
        self._mean = mean
        self._spread = abs(mean) / 2
        self._total = total
        self._top = top
        self._index = 0

    def entries(self, tokens: list[str]) -> list[dict[str, Any]]:
        out = []
        for token in tokens:
            i = self._index
            self._index += 1
            if i == self._total - 1 and self._total % 2 == 1:
                value = self._mean
            else:
                value = self._mean + (self._spread if i % 2 == 0 else -self._spread)
            encoded = list(token.encode())
            top = [{"token": token, "logprob": value, "bytes": encoded}] if self._top else []
            out.append({"token": token, "logprob": value, "bytes": encoded, "top_logprobs": top})
        return out


def _split(text: str, parts: int) -> list[str]:
    size = len(text)
    return [text[i * size // parts : (i + 1) * size // parts] for i in range(parts)]


def _split_list(items: list[str], parts: int) -> list[list[str]]:
    size = len(items)
    return [items[i * size // parts : (i + 1) * size // parts] for i in range(parts)]


def _top_logprobs(body: Mapping[str, Any]) -> int:
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0


def _error_type(status: int) -> str:
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {
        "error": {"message": message, "type": _error_type(status), "param": param, "code": code}
    }
    return web.json_response(body, status=status, headers=headers)


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
