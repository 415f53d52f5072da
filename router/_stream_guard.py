"""The checks the router makes on a litellm stream that litellm does not make itself.

`guard_stream` wraps the `CustomStreamWrapper` that ``litellm.acompletion(stream=True)``
returns (it forwards every other attribute, so code reading ``model``, ``_hidden_params`` or
``response_uptil_now`` still finds them) and enforces, per provider:

* **An error before the first chunk is the provider's error.** litellm raises every stream
  failure as `litellm.MidStreamFallbackError` (a 503 `ServiceUnavailableError`), even a
  Gemini or Bedrock 429 that arrived before any chunk; the real error is its
  ``original_exception``. Before the first chunk the guard raises that original (a
  `RateLimitError` stays a `RateLimitError`: the router pauses the deployment, and
  ``except litellm.RateLimitError`` in a caller's code catches it). After the first chunk
  the wrapper is left alone; the router reports it as `StreamInterrupted`.
* **A finish reason must come from the provider.** litellm closes a stream whose body ended
  without any finish reason with a chunk of its own that says ``finish_reason="stop"``
  (a malformed event, or a body that just stops), and its Gemini parser writes ``"stop"`` on
  every chunk whether or not Gemini sent ``finishReason``. The guard records whether the
  provider really sent one (litellm's own ``received_any_finish_reason``; for Gemini, whether
  a raw chunk carried ``candidates[].finishReason`` or a ``promptFeedback.blockReason``) and
  raises `litellm.APIConnectionError` instead of passing on a synthesized end, so a stream
  never ends as if complete when it was not.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from router._fields import field

__all__ = ["GuardedStream", "guard_stream"]

# litellm's custom_llm_provider names of the Gemini parser (Google AI Studio and Vertex AI).
_GEMINI_PARSERS = frozenset({"gemini", "vertex_ai", "vertex_ai_beta"})


def _gemini_finished(chunk: Any) -> bool:
    if not isinstance(chunk, dict):
        return False
    feedback = chunk.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return True
    candidates = chunk.get("candidates")
    if not isinstance(candidates, list):
        return False
    return any(isinstance(c, dict) and c.get("finishReason") for c in candidates)


class _NativeFinish:
    """Records whether a Gemini stream's raw chunks carried a finish reason."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False

    def install(self, stream: Any) -> bool:
        """Hook the wrapper's lazily opened parser; False if litellm's shape is not known."""
        make_call = getattr(stream, "make_call", None)
        if make_call is None or getattr(stream, "completion_stream", None) is not None:
            return False
        if inspect.iscoroutinefunction(make_call) or inspect.iscoroutinefunction(
            getattr(make_call, "func", None)
        ):

            async def opening(*args: Any, **kwargs: Any) -> Any:
                return self._hook(await make_call(*args, **kwargs))

            stream.make_call = opening
        else:

            def opening_sync(*args: Any, **kwargs: Any) -> Any:
                return self._hook(make_call(*args, **kwargs))

            stream.make_call = opening_sync
        return True

    def _hook(self, iterator: Any) -> Any:
        parser = getattr(iterator, "chunk_parser", None)
        if callable(parser):
            iterator.chunk_parser = self._recording(parser)
        return iterator

    def _recording(self, parser: Callable[..., Any]) -> Callable[..., Any]:
        def chunk_parser(chunk: Any) -> Any:
            if not self.seen and _gemini_finished(chunk):
                self.seen = True
            return parser(chunk=chunk)

        return chunk_parser


class GuardedStream:
    """A litellm stream with the router's checks; see the module docstring."""

    def __init__(self, stream: Any) -> None:
        from litellm.exceptions import MidStreamFallbackError

        # Looked up once per stream, not per chunk (an import statement costs ~0.5 µs).
        self._fallback_error = MidStreamFallbackError
        self._stream = stream
        self._iterator: Any = None
        self._started = False
        self._native: _NativeFinish | None = None
        if getattr(stream, "custom_llm_provider", None) in _GEMINI_PARSERS:
            native = _NativeFinish()
            if native.install(stream):
                self._native = native

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this class does not define: litellm's wrapper has them.
        return getattr(self._stream, name)

    def __aiter__(self) -> GuardedStream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            chunk = await self._iterator.__anext__()
        except self._fallback_error as exc:
            raise self._unwrapped(exc) from exc
        return self._checked(chunk)

    def __iter__(self) -> GuardedStream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._stream)
        try:
            chunk = next(self._iterator)
        except self._fallback_error as exc:
            raise self._unwrapped(exc) from exc
        return self._checked(chunk)

    def _unwrapped(self, exc: BaseException) -> BaseException:
        original = getattr(exc, "original_exception", None)
        if not self._started and isinstance(original, Exception):
            return original
        return exc

    def _checked(self, chunk: Any) -> Any:
        self._started = True
        if _finish_reason(chunk) is not None and not self._provider_finished():
            import litellm

            raise litellm.APIConnectionError(
                message="the provider's stream ended without a finish reason (the 'stop' on "
                "its last chunk was added by litellm)",
                llm_provider=str(getattr(self._stream, "custom_llm_provider", None) or "router"),
                model=str(getattr(self._stream, "model", None) or ""),
            )
        return chunk

    def _provider_finished(self) -> bool:
        if self._native is not None:
            return self._native.seen
        if getattr(self._stream, "is_mock", False):
            return True
        # True unless litellm's wrapper says it never parsed a finish reason (unknown: trust).
        return getattr(self._stream, "received_any_finish_reason", True) is not False

    async def aclose(self) -> None:
        """Close litellm's stream (and its HTTP response)."""
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            await closer()

    def close(self) -> None:
        """Close litellm's sync stream."""
        closer = getattr(self._stream, "close", None)
        if closer is not None:
            closer()


def _finish_reason(chunk: Any) -> str | None:
    # field(): litellm keeps a stream choice's finish_reason in pydantic's extra storage, where
    # getattr costs ~0.5 µs more per chunk (router._fields).
    choices = field(chunk, "choices")
    if not choices:
        return None
    for choice in choices:
        reason = field(choice, "finish_reason")
        if reason:
            return str(reason)
    return None


def guard_stream(stream: Any) -> Any:
    """Wrap a stream from ``litellm.acompletion(stream=True)``; other iterators pass as is."""
    if type(stream).__name__ != "CustomStreamWrapper":
        return stream
    return GuardedStream(stream)
