"""One simulated OpenAI-compatible provider: an aiohttp server of ``/v1/chat/completions``.

Plain and streamed answers, and ``/v1/embeddings``, with the failure modes
:class:`~router._sim._knobs.Behavior` drives; the listener, lifecycle, knobs and control
plane are :class:`~router._sim._server.SimServer`'s. Providers are created and run by a
:class:`~router._sim._fleet.Fleet`.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from typing import Any

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._payloads import (
    _Answer,
    _answer,
    _Logprobs,
    _prompt_text,
    _split,
    _split_list,
    _sse,
    _tokens,
    _top_logprobs,
    estimate_tokens,
)
from router._sim._server import SimServer

__all__ = ["SimProvider"]


class SimProvider(SimServer):
    """One simulated OpenAI-compatible provider; see :class:`Behavior` for its knobs."""

    def _routes(self, app: web.Application) -> None:
        """Register the provider's API routes; other wire protocols override this."""
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)

    # --- chat completions ----------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        arrived = await self._arrive(request)
        if arrived is None:
            # Only reached while stopping; the connection is being aborted, so not counted.
            return web.Response(status=503)
        b, seq, rate_limit_draw, error_draw, body = arrived
        completion_id = f"chatcmpl-sim-{self.name}-{seq}"

        refused = self._refused(b)
        if refused is not None:
            return refused
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._fail(
                400, "Request body must be a JSON object with a 'messages' list.", param="messages"
            )
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
            # OpenAI's answer to an out-of-range parameter: the caller's mistake, a plain 400.
            return self._fail(
                400,
                f"{temperature} is greater than the maximum of 2 - 'temperature'",
                param="temperature",
            )
        model = body.get("model")
        model = model if isinstance(model, str) else "sim"
        prompt_tokens = estimate_tokens(_prompt_text(body["messages"]))
        if b.context_window is not None:
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 0
            requested = prompt_tokens + (max_tokens if isinstance(max_tokens, int) else 0)
            if requested > b.context_window:
                return self._fail(
                    400,
                    f"This model's maximum context length is {b.context_window} tokens. However, "
                    f"you requested {requested} tokens ({prompt_tokens} in the messages, "
                    f"{requested - prompt_tokens} in the completion). Please reduce the length "
                    "of the messages or completion.",
                    code="context_length_exceeded",
                    param="messages",
                )
        pressed = self._pressure(b, model, rate_limit_draw, error_draw)
        if pressed is not None:
            return pressed

        # OpenAI's output filter: an empty answer that finishes with content_filter.
        answer = (
            _Answer("", "content_filter")
            if b.content_filter
            else _answer(b, body["messages"], self.name)
        )
        created = int(time.time())
        # Logprobs only when asked for and scripted, as a provider returns them only when asked.
        logprobs = (
            _Logprobs(answer.logprobs, len(_tokens(answer.text)), _top_logprobs(body))
            if answer.logprobs is not None and body.get("logprobs") is True
            else None
        )
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            usage = self._usage(prompt_tokens, answer.text)
            return await self._stream(
                request, b, completion_id, created, model, answer, usage, include_usage, logprobs
            )
        if b.malformed:
            self.stats.malformed += 1
            # Looks like the start of a real answer, then stops: not parseable JSON.
            text = f'{{"id": "{completion_id}", "object": "chat.completion", "choices": [{{'
            return web.Response(status=200, text=text, content_type="application/json")
        self.stats.ok += 1
        message: dict[str, Any] = {"role": "assistant", "content": answer.content}
        if answer.refusal is not None:
            message["refusal"] = answer.refusal
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": answer.finish_reason,
        }
        if logprobs is not None:
            choice["logprobs"] = {
                "content": logprobs.entries(_tokens(answer.text)),
                "refusal": None,
            }
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": self._usage(prompt_tokens, answer.text),
            }
        )

    def _refused(self, b: Behavior) -> web.Response | None:
        """An outage or a refused key: the answers that come before reading the request."""
        if b.outage is not None:
            return self._fail(
                503, f"Simulated outage of provider {self.name}.", code="service_unavailable"
            )
        if b.auth_fail:
            return self._fail(
                401,
                "Incorrect API key provided (simulated provider rejects every key).",
                code="invalid_api_key",
            )
        return None

    def _pressure(
        self, b: Behavior, model: str, rate_limit_draw: float, error_draw: float
    ) -> web.Response | None:
        """A 429 or an ``error_rate`` error, by this request's draws."""
        if rate_limit_draw < b.rate_limit_rate:
            self.stats.rate_limited += 1
            return self._fail(
                429,
                f"Rate limit reached for {model} on provider {self.name} (simulated). "
                f"Please try again in {b.retry_after_s:g}s.",
                code="rate_limit_exceeded",
                # litellm parses Retry-After with int(); the exact value goes in the -ms header.
                headers={
                    "Retry-After": str(math.ceil(b.retry_after_s)),
                    "retry-after-ms": str(round(b.retry_after_s * 1000)),
                }
                if b.retry_after_header
                else None,
            )
        if error_draw < b.error_rate:
            return self._fail(
                b.error_status, f"Simulated error {b.error_status} from provider {self.name}."
            )
        return None

    # --- embeddings ----------------------------------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        """``/v1/embeddings``: deterministic vectors (the same text and model give the same
        vector on every provider, see `router._embeddings.simulated_vector`), with the same
        faults as chat: hang, latency, outage, 401, 429, ``error_rate``, ``malformed``."""
        from router._embeddings import simulated_vector

        arrived = await self._arrive(request)
        if arrived is None:  # a hung request released by the fleet stopping
            return web.Response(status=503)
        b, _, rate_limit_draw, error_draw, body = arrived
        refused = self._refused(b)
        if refused is not None:
            return refused
        raw = body.get("input") if isinstance(body, dict) else None
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts:
            return self._fail(400, "'input' must be a string or a non-empty list.", param="input")
        assert isinstance(body, dict)
        model = body.get("model")
        model = model if isinstance(model, str) else "sim"
        dims = body.get("dimensions")
        dims = dims if isinstance(dims, int) and 0 < dims <= 4096 else b.embedding_dimensions
        pressed = self._pressure(b, model, rate_limit_draw, error_draw)
        if pressed is not None:
            return pressed
        if b.malformed:
            self.stats.malformed += 1
            text = '{"object": "list", "data": [{"object": "embedding", "embedding": [0.1, '
            return web.Response(status=200, text=text, content_type="application/json")
        self.stats.ok += 1
        strings = [t if isinstance(t, str) else " ".join(map(str, t)) for t in texts]
        tokens = sum(estimate_tokens(t) for t in strings)
        vectors = [simulated_vector(model, t, dims) for t in strings]
        if body.get("encoding_format") == "base64":  # OpenAI's: little-endian float32, base64
            import base64

            encoded: list[Any] = [
                base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors
            ]
        else:
            encoded = vectors
        data = [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(encoded)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @staticmethod
    def _usage(prompt_tokens: int, reply: str) -> dict[str, int]:
        completion_tokens = estimate_tokens(reply)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    async def _stream(
        self,
        request: web.Request,
        b: Behavior,
        completion_id: str,
        created: int,
        model: str,
        answer: _Answer,
        usage: dict[str, int],
        include_usage: bool,
        logprobs: _Logprobs | None = None,
    ) -> web.StreamResponse:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": choices,
                    **extra,
                }
            )

        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        # Headers go out first, then the first token is late: that is what a slow model looks like.
        await response.prepare(request)
        self.stats.streams += 1
        await asyncio.sleep(b.first_chunk_delay_ms / 1000.0)
        if b.malformed:
            self.stats.malformed += 1
            await response.write(
                b'data: {"id": "' + completion_id.encode() + b'", "choices": [\n\n'
            )
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        # A refusal with no content streams in delta.refusal, as OpenAI streams one.
        key = "content" if answer.content is not None else "refusal"
        # With logprobs, chunks are cut on token boundaries so every token is sent once.
        groups = _split_list(_tokens(answer.text), b.stream_chunks) if logprobs else None
        parts = ["".join(g) for g in groups] if groups else _split(answer.text, b.stream_chunks)
        for index, part in enumerate(parts):
            if b.cut_stream_after is not None and index >= b.cut_stream_after:
                return await self._cut(request, response)
            if b.stream_error_after is not None and index >= b.stream_error_after:
                return await self._stream_error(response)
            if index:
                await asyncio.sleep(b.chunk_delay_ms / 1000.0)
            delta: dict[str, Any] = {"role": "assistant", key: part} if index == 0 else {key: part}
            if index == 0 and key == "content" and answer.refusal is not None:
                delta["refusal"] = answer.refusal
            piece: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            if logprobs is not None and groups is not None:
                piece["logprobs"] = {"content": logprobs.entries(groups[index]), "refusal": None}
            await response.write(chunk([piece]))
        if b.cut_stream_after is not None:
            return await self._cut(request, response)
        if b.stream_error_after is not None:
            return await self._stream_error(response)
        if b.stream_no_finish:
            # A clean end without any finish_reason: litellm must not take it as complete.
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        await response.write(
            chunk([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}])
        )
        if include_usage:
            await response.write(chunk([], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.stats.ok += 1
        return response

    async def _stream_error(self, response: web.StreamResponse) -> web.StreamResponse:
        # OpenAI-compatible servers report a failure mid-stream as an ``error`` data line.
        self.stats.cut += 1
        error = {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        await response.write(_sse({"error": error}))
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "sim", "object": "model", "owned_by": self.name}]}
        )
