"""The request pipeline shared by the simulated providers that speak another wire protocol.

:class:`ProtocolProvider` is a :class:`~router._sim._openai.SimProvider` (same knobs, stats,
control plane, outage and hang handling) whose chat endpoint speaks a provider's own protocol
(Anthropic Messages, Gemini generateContent, Azure OpenAI, Bedrock Converse). The order of the
checks is the one :class:`~router._sim._knobs.Behavior` documents, and the random draws are
made in the same order as the OpenAI server's, so one seed gives the same fault sequence
whatever protocol a provider speaks. A subclass says how a request is parsed and how each
outcome is written on its wire; this module decides which outcome a request gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._openai import SimProvider
from router._sim._payloads import _Answer, _answer, _prompt_text, _split, estimate_tokens

__all__ = ["ProtocolProvider", "Reply", "Turn"]


@dataclass(frozen=True)
class Turn:
    """One chat request, parsed from the protocol's own body into what the pipeline needs.

    ``messages`` are OpenAI-shaped (``[{"content": str | [{"text": ...}]}]``) so scripts and
    token estimates work the same for every protocol.
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int = 0
    temperature: float | None = None
    include_usage: bool = True
    deployment: str | None = None


@dataclass(frozen=True)
class Reply:
    """What a successful answer is made of, ready for a protocol to write."""

    id: str
    model: str
    answer: _Answer
    prompt_tokens: int
    completion_tokens: int
    turn: Turn
    blocked: bool = False
    """The prompt was blocked by the provider's content filter (``content_filter`` knob)."""

    @property
    def finish(self) -> str:
        """The finish reason in OpenAI's vocabulary; each protocol maps it to its own."""
        return self.answer.finish_reason


class _Invalid(Exception):
    """The request is malformed for this protocol; answered with the protocol's own 400."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


class ProtocolProvider(SimProvider):
    """A simulated provider whose chat endpoint speaks a non-OpenAI protocol.

    Subclasses set ``protocol`` and implement the ``parse``/``error_*``/``render_*``/
    ``frames_*`` hooks; the fault pipeline, stream pacing, cuts and in-band errors are here.
    """

    protocol: ClassVar[str] = "openai"
    stream_content_type: ClassVar[str] = "text/event-stream"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, port={self.port}, behavior={self.behavior!r})"

    @property
    def base_url(self) -> str:
        """The ``api_base`` litellm is given for this provider (no ``/v1``: litellm adds it)."""
        return f"http://{self.host}:{self.port}"

    # --- hooks a protocol implements ------------------------------------------------------

    def paths(self) -> list[str]:
        """The POST paths (aiohttp route patterns) of the chat endpoint."""
        raise NotImplementedError

    def parse(self, request: web.Request, body: Any) -> Turn:
        """Read a request; raise `_Invalid` for one this protocol would reject with a 400."""
        raise NotImplementedError

    def error(self, kind: str, b: Behavior, turn: Turn | None, **detail: Any) -> web.Response:
        """The protocol's error answer for ``kind``.

        Kinds: ``outage``, ``auth``, ``invalid`` (``message``, ``param``, ``status``),
        ``context`` (``requested``, ``window``), ``rate_limit``, ``status`` (``status``),
        ``content_filter`` (only for protocols whose content filter answers with an error).
        """
        raise NotImplementedError

    def blocks_with_error(self) -> bool:
        """Whether ``content_filter`` answers with an error (else a filtered answer)."""
        return False

    def render(self, reply: Reply) -> web.Response:
        """A complete, non-streamed answer."""
        raise NotImplementedError

    def render_malformed(self, reply: Reply) -> web.Response:
        """A 200 whose body is not valid JSON (the start of a real answer, cut)."""
        return web.Response(
            status=200,
            text='{"id": "' + reply.id + '", "content": [',
            content_type="application/json",
        )

    def frames_open(self, reply: Reply) -> list[bytes]:
        """Stream frames before the first content delta."""
        return []

    def frames_delta(self, reply: Reply, index: int, text: str, last: bool) -> list[bytes]:
        """Frames of one content delta; ``last`` when it is the final one of a finished stream."""
        raise NotImplementedError

    def frames_close(self, reply: Reply) -> list[bytes]:
        """Frames that finish the stream properly (finish reason, usage, terminator)."""
        return []

    def frames_unfinished(self, reply: Reply) -> list[bytes]:
        """Frames of a clean end *without* a finish reason (``stream_no_finish``)."""
        return []

    def frame_error(self, reply: Reply) -> bytes:
        """The protocol's in-band stream error event (``stream_error_after``)."""
        raise NotImplementedError

    def frame_malformed(self, reply: Reply) -> bytes:
        """A stream event whose payload is not valid JSON."""
        raise NotImplementedError

    def stream_headers(self) -> dict[str, str]:
        """Response headers of a stream."""
        return {"Content-Type": self.stream_content_type, "Cache-Control": "no-cache"}

    # --- the pipeline ---------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        for path in self.paths():
            app.router.add_post(path, self._protocol_chat)

    def _refuse(self, response: web.Response) -> web.Response:
        self._count_error(response.status)
        return response

    async def _protocol_chat(self, request: web.Request) -> web.StreamResponse:
        arrived = await self._arrive(request)  # the OpenAI server's draws, hang and latency
        if arrived is None:
            return web.Response(status=503)  # a hung request, released by the fleet stopping
        b, seq, rate_limit_draw, error_draw, body = arrived

        if b.outage is not None:
            return self._refuse(self.error("outage", b, None))
        if b.auth_fail:
            return self._refuse(self.error("auth", b, None))
        try:
            if not isinstance(body, dict):
                raise _Invalid("Request body must be a JSON object.")
            turn = self.parse(request, body)
        except _Invalid as exc:
            return self._refuse(
                self.error(
                    "invalid", b, None, message=exc.message, param=exc.param, status=exc.status
                )
            )
        if turn.temperature is not None and not 0 <= turn.temperature <= 2:
            return self._refuse(
                self.error(
                    "invalid",
                    b,
                    turn,
                    message=f"temperature: {turn.temperature} is out of range [0, 2]",
                    param="temperature",
                    status=400,
                )
            )
        if b.content_filter and self.blocks_with_error():
            return self._refuse(self.error("content_filter", b, turn))
        prompt_tokens = estimate_tokens(_prompt_text(turn.messages))
        if b.context_window is not None:
            requested = prompt_tokens + turn.max_tokens
            if requested > b.context_window:
                return self._refuse(
                    self.error("context", b, turn, requested=requested, window=b.context_window)
                )
        if rate_limit_draw < b.rate_limit_rate:
            self.stats.rate_limited += 1
            return self._refuse(self.error("rate_limit", b, turn))
        if error_draw < b.error_rate:
            return self._refuse(self.error("status", b, turn, status=b.error_status))

        if b.content_filter:
            answer = _Answer("", "content_filter")
        else:
            answer = _answer(b, turn.messages, self.name)
        reply = Reply(
            id=f"sim-{self.protocol}-{self.name}-{seq}",
            model=turn.model,
            answer=answer,
            prompt_tokens=prompt_tokens,
            completion_tokens=estimate_tokens(answer.text) if answer.text else 0,
            turn=turn,
            blocked=b.content_filter,
        )
        if turn.stream:
            return await self._protocol_stream(request, b, reply)
        if b.malformed:
            self.stats.malformed += 1
            return self.render_malformed(reply)
        self.stats.ok += 1
        return self.render(reply)

    async def _protocol_stream(
        self, request: web.Request, b: Behavior, reply: Reply
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=self.stream_headers())
        await response.prepare(request)
        self.stats.streams += 1
        await asyncio.sleep(b.first_chunk_delay_ms / 1000.0)
        if b.malformed:
            self.stats.malformed += 1
            await response.write(self.frame_malformed(reply))
            await response.write_eof()
            return response
        for frame in self.frames_open(reply):
            await response.write(frame)
        text = reply.answer.text
        parts = _split(text, b.stream_chunks) if text else [""]
        finishing = b.cut_stream_after is None and b.stream_error_after is None
        for index, part in enumerate(parts):
            if b.cut_stream_after is not None and index >= b.cut_stream_after:
                return await self._cut(request, response)
            if b.stream_error_after is not None and index >= b.stream_error_after:
                return await self._in_band_error(response, reply)
            if index:
                await asyncio.sleep(b.chunk_delay_ms / 1000.0)
            last = finishing and not b.stream_no_finish and index == len(parts) - 1
            for frame in self.frames_delta(reply, index, part, last):
                await response.write(frame)
        if b.cut_stream_after is not None:
            return await self._cut(request, response)
        if b.stream_error_after is not None:
            return await self._in_band_error(response, reply)
        if b.stream_no_finish:
            for frame in self.frames_unfinished(reply):
                await response.write(frame)
            await response.write_eof()
            return response
        for frame in self.frames_close(reply):
            await response.write(frame)
        await response.write_eof()
        self.stats.ok += 1
        return response

    async def _in_band_error(
        self, response: web.StreamResponse, reply: Reply
    ) -> web.StreamResponse:
        self.stats.cut += 1
        await response.write(self.frame_error(reply))
        await response.write_eof()
        return response


def finish_name(finish: str, names: Mapping[str, str], default: str) -> str:
    """A finish reason in OpenAI's vocabulary mapped to a protocol's own name."""
    return names.get(finish, default)
