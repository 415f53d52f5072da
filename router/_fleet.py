"""A simulated fleet of OpenAI-compatible providers, for the demo, tests and benchmarks.

Each provider is a small aiohttp server speaking ``POST /v1/chat/completions`` (plain and
streamed) whose failure modes are run-time knobs (:class:`Behavior`): latency, error and
rate-limit rates, outages (503 or connection refused), hangs, slow or cut streams, malformed
bodies, auth failures and context-window limits. Every provider also serves a small control
plane (``/_sim/stats``, ``/_sim/knobs``, ``/_sim/reset``) so knobs can be changed over HTTP.

What a provider *says* can be scripted too (``Behavior.scripts``, a list of :class:`Script`):
per prompt pattern, the reply text (valid or invalid JSON, wrong totals, ...), the finish
reason (``length`` for a cut answer), OpenAI-shaped token logprobs and a ``refusal``, so the
router's output checks (schema, validators, refusal, low confidence, length) run end to end
through real litellm.

A :class:`Fleet` runs either on the caller's event loop (``async with Fleet(...)``) or on its
own loop in a daemon thread (``with Fleet(...).threaded()``) for synchronous callers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, TypedDict, TypeVar

from aiohttp import web

__all__ = [
    "DEFAULT_FLEET",
    "FINISH_REASONS",
    "KNOBS",
    "Behavior",
    "Fleet",
    "ProviderSpec",
    "ProviderStats",
    "Script",
    "SimProvider",
    "StatsSnapshot",
    "default_fleet",
    "estimate_tokens",
    "parse_provider_spec",
]

_T = TypeVar("_T")

# How long a thread-mode caller waits for the fleet's loop before giving up; generous because
# the CI machine is slow, and only reached if the loop is wedged.
_THREAD_HOP_TIMEOUT_S = 30.0
# Bound on aiohttp's graceful wait for in-flight handlers at shutdown; ours are aborted or
# released before that, so this only caps a misbehaving handler.
_SHUTDOWN_TIMEOUT_S = 1.0


FINISH_REASONS: frozenset[str] = frozenset(
    {"stop", "length", "content_filter", "tool_calls", "function_call"}
)
"""The ``finish_reason`` values OpenAI sends, the ones a :class:`Script` may choose."""

_SCRIPT_KEYS: frozenset[str] = frozenset(
    {"pattern", "reply", "finish_reason", "logprobs", "refusal"}
)


@dataclass(frozen=True)
class Script:
    """What a provider answers to prompts matching ``pattern`` (see ``Behavior.scripts``).

    ``pattern`` is a Python regex searched (``re.search``, case-sensitive unless the pattern
    says ``(?i)``) in the request's message contents, every role, joined with newlines.
    ``reply`` is the answer's content (``{provider}`` becomes the provider's name); with a
    ``refusal`` and an empty ``reply`` the content is ``null``, as OpenAI sends a refusal.
    ``finish_reason`` is sent as given (``"length"`` plays an answer cut at max_tokens).
    ``logprobs``, when set and the request asks ``logprobs: true``, is the mean of the
    per-token logprobs returned in ``choices[0].logprobs.content`` (must be <= 0).
    ``refusal`` fills the OpenAI ``message.refusal`` field.
    """

    pattern: str
    reply: str
    finish_reason: str = "stop"
    logprobs: float | None = None
    refusal: str | None = None

    def __post_init__(self) -> None:
        # Checked here so that a bad script fails where it is written, not on a request.
        if not isinstance(self.pattern, str):
            raise ValueError(f"script pattern must be a string, got {self.pattern!r}")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(
                f"script pattern {self.pattern!r} is not a valid regex: {exc}"
            ) from None
        if not isinstance(self.reply, str):
            raise ValueError(f"script reply must be a string, got {self.reply!r}")
        if self.finish_reason not in FINISH_REASONS:
            known = ", ".join(sorted(FINISH_REASONS))
            raise ValueError(
                f"script finish_reason must be one of {known}, got {self.finish_reason!r}"
            )
        if self.logprobs is not None:
            _number("logprobs", self.logprobs, low=-math.inf, high=0.0)
        if self.refusal is not None and not isinstance(self.refusal, str):
            raise ValueError(f"script refusal must be a string or None, got {self.refusal!r}")

    def matches(self, text: str) -> bool:
        """Whether this script answers a request whose joined message contents are `text`."""
        return re.search(self.pattern, text) is not None


@dataclass
class Behavior:
    """Run-time knobs of one simulated provider (all may be changed while it serves).

    Checks are applied in this order: ``hang``, then latency, then ``outage="503"``,
    ``auth_fail``, request validation, ``context_window``, ``rate_limit_rate``,
    ``error_rate``, ``malformed``; otherwise a normal answer: the first of ``scripts`` whose
    pattern matches the prompt, else ``reply``. Latency applies to every answer, errors
    included, so a failing provider is not unrealistically fast.
    """

    latency_ms: float = 5.0
    """Base delay before any answer (for streams: before the response headers)."""
    latency_jitter_ms: float = 0.0
    """Extra delay drawn uniformly from [0, jitter]."""
    error_rate: float = 0.0
    """Fraction of requests answered with ``error_status``."""
    error_status: int = 500
    """Status of ``error_rate`` errors (400-599), e.g. 500, 502, 503."""
    rate_limit_rate: float = 0.0
    """Fraction of requests answered 429 with ``Retry-After``."""
    retry_after_s: float = 1.0
    """Advertised wait: ``Retry-After`` rounded up to whole seconds, exact in ``retry-after-ms``."""
    outage: str | None = None
    """``None``; ``"503"`` (every request 503); ``"refused"`` (port closed)."""
    hang: bool = False
    """Accept requests and never answer, until the client gives up or the fleet stops."""
    first_chunk_delay_ms: float = 0.0
    """Extra delay between a stream's headers and its first chunk (slow first token)."""
    chunk_delay_ms: float = 1.0
    """Delay between stream chunks."""
    stream_chunks: int = 5
    """Number of content chunks the reply is split into when streamed."""
    cut_stream_after: int | None = None
    """Stream only: send this many content chunks, then abort the connection (no [DONE])."""
    malformed: bool = False
    """Answer 200 with a body (or a stream event) that is not valid JSON."""
    auth_fail: bool = False
    """Answer 401 ``invalid_api_key``."""
    context_window: int | None = None
    """Answer 400 ``context_length_exceeded`` when prompt + max_tokens estimates exceed it."""
    reply: str = "Hello from {provider}."
    """Answer text; ``{provider}`` becomes the provider's name."""
    scripts: list[Script] = field(default_factory=list)
    """Scripted answers by prompt pattern, first match wins (else ``reply``); plain and
    streamed. Dicts with :class:`Script`'s fields are accepted (the control plane sends JSON)."""

    def __post_init__(self) -> None:
        # A Behavior built with dicts (as from JSON) holds Scripts like one set through knobs.
        self.scripts = _scripts("scripts", self.scripts)


KNOBS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Behavior))
"""Names accepted by :meth:`SimProvider.set` and ``POST /_sim/knobs``."""


def _number(name: str, value: Any, *, low: float = 0.0, high: float = math.inf) -> float:
    # bool is an int subclass; True as a latency is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"knob {name!r} must be a number, got {value!r}")
    if not low <= value <= high:  # also rejects NaN
        raise ValueError(f"knob {name!r} must be within [{low}, {high}], got {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"knob {name!r} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"knob {name!r} must be within [{low}, {high}], got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"knob {name!r} must be a boolean, got {value!r}")
    return value


def _outage(name: str, value: Any) -> str | None:
    # Accept 503 as a number too: it is what people type in JSON and on the command line.
    if value is None or value in ("503", "refused"):
        return value  # type: ignore[no-any-return]
    if value == 503 and not isinstance(value, bool):
        return "503"
    raise ValueError(f"knob {name!r} must be None, '503' or 'refused', got {value!r}")


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"knob {name!r} must be a string, got {value!r}")
    return value


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _script(name: str, value: Any) -> Script:
    if isinstance(value, Script):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"knob {name!r}: each script must be a Script or an object, got {value!r}")
    unknown = sorted(set(value) - _SCRIPT_KEYS)
    if unknown:
        known = ", ".join(sorted(_SCRIPT_KEYS))
        raise ValueError(f"knob {name!r}: unknown script key(s) {', '.join(unknown)} ({known})")
    missing = sorted({"pattern", "reply"} - set(value))
    if missing:
        raise ValueError(f"knob {name!r}: a script needs {' and '.join(missing)}")
    try:
        return Script(**value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"knob {name!r}: {exc}") from None


def _scripts(name: str, value: Any) -> list[Script]:
    # A fresh list: the provider's copy must not change when the caller's list does.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"knob {name!r} must be a list of scripts, got {value!r}")
    return [_script(name, item) for item in value]


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _number,
    "latency_jitter_ms": _number,
    "error_rate": lambda n, v: _number(n, v, high=1.0),
    "error_status": lambda n, v: _integer(n, v, low=400, high=599),
    "rate_limit_rate": lambda n, v: _number(n, v, high=1.0),
    "retry_after_s": _number,
    "outage": _outage,
    "hang": _flag,
    "first_chunk_delay_ms": _number,
    "chunk_delay_ms": _number,
    "stream_chunks": lambda n, v: _integer(n, v, low=1),
    "cut_stream_after": _optional(lambda n, v: _integer(n, v, low=0)),
    "malformed": _flag,
    "auth_fail": _flag,
    "context_window": _optional(lambda n, v: _integer(n, v, low=1)),
    "reply": _text,
    "scripts": _scripts,
}
assert set(_CHECKS) == KNOBS, "every Behavior field needs a validator"


def _validate(knobs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(knobs) - KNOBS)
    if unknown:
        raise ValueError(
            f"unknown knob(s): {', '.join(unknown)} (known: {', '.join(sorted(KNOBS))})"
        )
    return {name: _CHECKS[name](name, value) for name, value in knobs.items()}


class StatsSnapshot(TypedDict):
    """A point-in-time copy of :class:`ProviderStats`."""

    requests: int
    ok: int
    streams: int
    errors_by_status: dict[int, int]
    rate_limited: int
    hung: int
    cut: int
    malformed: int


@dataclass
class ProviderStats:
    """Counters of one provider's chat-completion traffic (the control plane is not counted).

    ``requests`` counts every chat request received; ``ok`` the ones answered completely and
    well (a stream counts once it reached ``[DONE]``); ``streams`` the streams started with a
    200; ``errors_by_status`` every non-200 answer by status, 429s and 400s included;
    ``rate_limited``, ``hung``, ``cut`` and ``malformed`` count those behaviours.
    """

    requests: int = 0
    ok: int = 0
    streams: int = 0
    errors_by_status: dict[int, int] = field(default_factory=dict)
    rate_limited: int = 0
    hung: int = 0
    cut: int = 0
    malformed: int = 0

    def as_dict(self) -> StatsSnapshot:
        """Return a snapshot that later traffic will not change."""
        return StatsSnapshot(
            requests=self.requests,
            ok=self.ok,
            streams=self.streams,
            errors_by_status=dict(self.errors_by_status),
            rate_limited=self.rate_limited,
            hung=self.hung,
            cut=self.cut,
            malformed=self.malformed,
        )

    def clear(self) -> None:
        """Zero every counter in place, so references held by callers stay live."""
        self.requests = self.ok = self.streams = 0
        self.rate_limited = self.hung = self.cut = self.malformed = 0
        self.errors_by_status.clear()


def estimate_tokens(text: str) -> int:
    """Estimate the token count of ``text`` the way the simulator does: ~4 chars a token, >= 1."""
    return max(1, math.ceil(len(text) / 4))


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
    return [text[i : i + 4] for i in range(0, len(text), 4)]


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


def _kill(transport: asyncio.Transport) -> None:
    """Drop a connection the way a crashed server would, effective before this returns."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # abort() only closes the socket on a later loop iteration; a client that reuses a
            # pooled connection in between would hit a reset mid-request instead of seeing the
            # connection gone. Shutting down now sends the FIN at once; linger 0 makes the
            # eventual close a RST, like a dead peer.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
    transport.abort()


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class SimProvider:
    """One simulated OpenAI-compatible provider; see :class:`Behavior` for its knobs.

    Providers are created and started by a :class:`Fleet`. ``set``/``reset`` may be called from
    any thread; when the fleet runs in thread mode they hop onto the fleet's loop.
    """

    def __init__(
        self,
        name: str,
        port: int = 0,
        behavior: Behavior | None = None,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        initial = dataclasses.replace(behavior) if behavior is not None else Behavior()
        _validate(dataclasses.asdict(initial))
        self.name = name
        self.host = host
        self.port = port
        """Listening port; resolved from 0 at first start, then kept across restarts."""
        self.behavior = initial
        """Live knobs; prefer :meth:`set`, which validates and handles ``outage='refused'``."""
        self.stats = ProviderStats()
        self.last_request: dict[str, Any] | None = None
        """JSON body of the most recent chat request, to check what a client really sent."""
        self._initial = dataclasses.replace(initial)
        self._seed = seed
        self._rng = random.Random(f"{seed}:{name}")
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._released: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"SimProvider({self.name!r}, port={self.port}, behavior={self.behavior!r})"

    @property
    def base_url(self) -> str:
        """OpenAI base URL of this provider, e.g. ``http://127.0.0.1:4101/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Whether the provider has been started and not stopped (listening or "refused")."""
        return self._runner is not None

    def set(self, **knobs: Any) -> None:
        """Change knobs; unknown names or bad values raise ``ValueError`` and change nothing.

        Switching ``outage`` to ``"refused"`` closes the listening socket and aborts open
        connections; switching away reopens it on the same port.
        """
        checked = _validate(knobs)
        self._on_loop(lambda: self._apply(checked, spare=None))

    def reset(self) -> None:
        """Restore the behaviour the provider was created with, zero counters, reseed."""
        self._on_loop(lambda: self._reset(spare=None))

    def snapshot(self) -> StatsSnapshot:
        """Return a consistent copy of the counters (taken on the fleet's loop if threaded)."""
        return self._on_loop(self.stats.as_dict)

    # --- loop plumbing -------------------------------------------------------------------

    def _on_loop(self, fn: Callable[[], _T]) -> _T:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return fn()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            return fn()
        # Socket and server objects belong to the loop's thread; touching them from here races.
        result: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout=_THREAD_HOP_TIMEOUT_S)

    def _apply(self, knobs: Mapping[str, Any], *, spare: asyncio.BaseTransport | None) -> None:
        for name, value in knobs.items():
            setattr(self.behavior, name, value)
        self._sync_listener(spare)

    def _reset(self, *, spare: asyncio.BaseTransport | None) -> None:
        self.behavior = dataclasses.replace(self._initial)
        self.stats.clear()
        self.last_request = None
        self._seq = 0
        self._rng.seed(f"{self._seed}:{self.name}")
        self._sync_listener(spare)

    def _sync_listener(self, spare: asyncio.BaseTransport | None) -> None:
        if self._runner is None:
            return
        want_open = self.behavior.outage != "refused"
        if want_open and self._sock is None:
            self._open()
        elif not want_open and self._sock is not None:
            self._close_listener()
            self._abort_connections(spare)

    def _open(self) -> None:
        assert self._loop is not None and self._runner is not None
        # Bound and listening synchronously, so the port accepts connections (into the
        # backlog) the moment set() returns, even before the serving task has run.
        sock = self._bind()
        self._sock = sock
        self._serve_task = self._loop.create_task(self._serve(sock))

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Aborted connections leave TIME_WAIT entries on this port; reopening must not fail.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return sock

    async def _serve(self, sock: socket.socket) -> None:
        assert self._loop is not None and self._runner is not None and self._runner.server
        # start_serving=False makes create_server finish without suspending, so _server is
        # recorded before any cancellation by _close_listener could land.
        server = await self._loop.create_server(self._runner.server, sock=sock, start_serving=False)
        self._server = server
        await server.start_serving()

    def _close_listener(self) -> None:
        task, server, sock = self._serve_task, self._server, self._sock
        self._serve_task = self._server = self._sock = None
        if task is not None and not task.done():
            task.cancel()
        if server is not None:
            server.close()
        if sock is not None:
            sock.close()

    def _abort_connections(self, spare: asyncio.BaseTransport | None) -> None:
        if self._runner is None or self._runner.server is None:
            return
        for handler in self._runner.server.connections:
            transport = handler.transport
            if transport is not None and transport is not spare:
                _kill(transport)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_sim/stats", self._ctl_stats)
        app.router.add_get("/_sim/knobs", self._ctl_get_knobs)
        app.router.add_post("/_sim/knobs", self._ctl_set_knobs)
        app.router.add_post("/_sim/reset", self._ctl_reset)
        # handler_cancellation: a client that gives up on a hung request ends its handler.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self._loop = loop
        self._runner = runner
        self._released = asyncio.Event()
        try:
            if self.behavior.outage == "refused":
                if self.port == 0:
                    # Fix the port now so a later reopen lands where clients were pointed.
                    self._bind().close()
            else:
                self._open()
                assert self._serve_task is not None
                await self._serve_task
        except BaseException:
            await self._stop()
            raise

    async def _stop(self) -> None:
        runner = self._runner
        if runner is None:
            return
        self._close_listener()
        if self._released is not None:
            self._released.set()
        self._abort_connections(None)
        try:
            await runner.cleanup()
        finally:
            self._runner = None
            self._loop = None
            self._released = None

    # --- chat completions ----------------------------------------------------------------

    def _count_error(self, status: int) -> None:
        self.stats.errors_by_status[status] = self.stats.errors_by_status.get(status, 0) + 1

    def _fail(self, status: int, message: str, **kwargs: Any) -> web.Response:
        self._count_error(status)
        return _error(status, message, **kwargs)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        b = dataclasses.replace(self.behavior)  # knobs as they were when the request arrived
        self.stats.requests += 1
        self._seq += 1
        completion_id = f"chatcmpl-sim-{self.name}-{self._seq}"
        # Always draw the same numbers in the same order, so a seed fixes the outcome sequence
        # whatever the knobs are.
        jitter_ms = self._rng.uniform(0.0, b.latency_jitter_ms)
        rate_limit_draw = self._rng.random()
        error_draw = self._rng.random()
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            self.last_request = body

        if b.hang:
            self.stats.hung += 1
            assert self._released is not None
            await self._released.wait()
            # Only reached while stopping; the connection is being aborted, so not counted.
            return web.Response(status=503)

        await asyncio.sleep((b.latency_ms + jitter_ms) / 1000.0)

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
                },
            )
        if error_draw < b.error_rate:
            return self._fail(
                b.error_status, f"Simulated error {b.error_status} from provider {self.name}."
            )

        answer = _answer(b, body["messages"], self.name)
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
        await response.write(
            chunk([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}])
        )
        if include_usage:
            await response.write(chunk([], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.stats.ok += 1
        return response

    async def _cut(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        self.stats.cut += 1
        transport = request.transport
        if transport is not None:
            _kill(transport)
        # The abort cancels this handler (handler_cancellation); wait for that rather than let
        # aiohttp try to finish a response on a dead connection.
        assert self._released is not None
        await self._released.wait()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "sim", "object": "model", "owned_by": self.name}]}
        )

    # --- control plane -------------------------------------------------------------------

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _ctl_get_knobs(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.behavior))

    async def _ctl_set_knobs(self, request: web.Request) -> web.Response:
        return await _control_set(self, request, own_port=True)

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        return _control_reset(self, request, own_port=True)


def _control_response(provider: SimProvider, *, own_port: bool) -> web.Response:
    response = web.json_response(dataclasses.asdict(provider.behavior))
    if own_port and provider.behavior.outage == "refused":
        # The listener is gone; do not leave this connection open as a way in.
        response.force_close()
    return response


async def _control_set(
    provider: SimProvider, request: web.Request, *, own_port: bool
) -> web.Response:
    try:
        knobs = await request.json()
    except ValueError:
        knobs = None
    if not isinstance(knobs, dict):
        return _error(400, "Body must be a JSON object of knobs.")
    try:
        checked = _validate(knobs)
    except ValueError as exc:
        return _error(400, str(exc))
    # Handlers run on the provider's loop, so apply directly; spare this request's connection
    # so the caller still gets its answer when it switches the provider to "refused".
    provider._apply(checked, spare=request.transport if own_port else None)
    return _control_response(provider, own_port=own_port)


def _control_reset(provider: SimProvider, request: web.Request, *, own_port: bool) -> web.Response:
    provider._reset(spare=request.transport if own_port else None)
    return _control_response(provider, own_port=own_port)


ProviderSpec = int | Behavior | tuple[int, Behavior]
"""How a provider is described to :class:`Fleet`: a port, a Behavior (ephemeral port), or both."""


def parse_provider_spec(text: str) -> tuple[str, int]:
    """Parse ``"name"`` or ``"name:port"`` (port 0 or absent means ephemeral)."""
    name, sep, port_text = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"provider spec {text!r} has no name")
    if not sep:
        return name, 0
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"provider spec {text!r}: port must be an integer") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"provider spec {text!r}: port out of range")
    return name, port


def _normalize(
    providers: Mapping[str, ProviderSpec] | Iterable[str],
) -> list[tuple[str, int, Behavior | None]]:
    out: list[tuple[str, int, Behavior | None]] = []
    if isinstance(providers, Mapping):
        for name, spec in providers.items():
            if isinstance(spec, Behavior):
                out.append((name, 0, spec))
            elif isinstance(spec, tuple):
                port, behavior = spec
                out.append((name, port, behavior))
            elif isinstance(spec, int) and not isinstance(spec, bool):
                out.append((name, spec, None))
            else:
                raise TypeError(
                    f"provider {name!r}: expected port, Behavior or (port, Behavior), got {spec!r}"
                )
    elif isinstance(providers, str):
        raise TypeError("providers must be a mapping or an iterable of names, not a single string")
    else:
        for text in providers:
            name, port = parse_provider_spec(text)
            out.append((name, port, None))
    if not out:
        raise ValueError("a fleet needs at least one provider")
    names = [name for name, _, _ in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate provider name(s): {', '.join(duplicates)}")
    return out


class Fleet:
    """A set of simulated providers started and stopped together.

    ``providers`` is either a mapping ``name -> port | Behavior | (port, Behavior)`` or an
    iterable of ``"name"`` / ``"name:port"`` strings. Port 0 picks an ephemeral port at first
    start; ports are then kept, including across ``outage="refused"`` toggles and restarts.
    Each provider gets its own ``random.Random`` derived from ``seed`` and its name.
    ``control_port`` (0 = ephemeral) adds a control server exposing
    ``/_sim/{name}/stats|knobs|reset`` for every provider, which still answers while a
    provider's own port is closed.
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderSpec] | Iterable[str],
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        control_port: int | None = None,
    ) -> None:
        self.seed = seed
        self.host = host
        self._providers: dict[str, SimProvider] = {
            name: SimProvider(name, port, behavior, seed=seed, host=host)
            for name, port, behavior in _normalize(providers)
        }
        self._control_port = control_port
        self._control_runner: web.AppRunner | None = None
        self._started = False
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Fleet({list(self._providers.values())!r})"

    def __getitem__(self, name: str) -> SimProvider:
        return self._providers[name]

    def __iter__(self) -> Iterator[SimProvider]:
        return iter(self._providers.values())

    def __len__(self) -> int:
        return len(self._providers)

    @property
    def providers(self) -> Mapping[str, SimProvider]:
        """Providers by name, in the order given."""
        return MappingProxyType(self._providers)

    def base_urls(self) -> dict[str, str]:
        """Base URL of every provider, by name."""
        return {name: p.base_url for name, p in self._providers.items()}

    @property
    def control_url(self) -> str | None:
        """Base URL of the fleet control server (``.../_sim``), if one was asked for."""
        if self._control_port is None:
            return None
        return f"http://{self.host}:{self._control_port}/_sim"

    def stats(self) -> dict[str, StatsSnapshot]:
        """Snapshot of every provider's counters, by name."""
        return {name: p.snapshot() for name, p in self._providers.items()}

    def reset(self) -> None:
        """Reset every provider (see :meth:`SimProvider.reset`)."""
        for provider in self._providers.values():
            provider.reset()

    # --- async lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start every provider (and the control server) on the running event loop."""
        if self._started:
            return
        loop = asyncio.get_running_loop()
        self._started = True
        try:
            for provider in self._providers.values():
                await provider._start(loop)
            if self._control_port is not None:
                await self._start_control()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop everything, aborting in-flight (including hung) requests. Idempotent."""
        if not self._started:
            return
        self._started = False
        control, self._control_runner = self._control_runner, None
        if control is not None:
            await control.cleanup()
        await asyncio.gather(*(p._stop() for p in self._providers.values()))

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _start_control(self) -> None:
        app = web.Application()
        app.router.add_get("/_sim/stats", self._ctl_all_stats)
        app.router.add_post("/_sim/reset", self._ctl_all_reset)
        app.router.add_get("/_sim/{name}/stats", self._ctl_stats)
        app.router.add_get("/_sim/{name}/knobs", self._ctl_get_knobs)
        app.router.add_post("/_sim/{name}/knobs", self._ctl_set_knobs)
        app.router.add_post("/_sim/{name}/reset", self._ctl_reset)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        self._control_runner = runner
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._control_port or 0))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        self._control_port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()

    def _provider_or_404(self, request: web.Request) -> SimProvider:
        name = request.match_info["name"]
        provider = self._providers.get(name)
        if provider is None:
            raise web.HTTPNotFound(
                text=json.dumps(
                    {
                        "error": {
                            "message": f"no provider named {name!r}",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    }
                ),
                content_type="application/json",
            )
        return provider

    async def _ctl_all_stats(self, request: web.Request) -> web.Response:
        return web.json_response({name: p.stats.as_dict() for name, p in self._providers.items()})

    async def _ctl_all_reset(self, request: web.Request) -> web.Response:
        for provider in self._providers.values():
            provider._reset(spare=None)
        return web.json_response(
            {name: dataclasses.asdict(p.behavior) for name, p in self._providers.items()}
        )

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._provider_or_404(request).stats.as_dict())

    async def _ctl_get_knobs(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self._provider_or_404(request).behavior))

    async def _ctl_set_knobs(self, request: web.Request) -> web.Response:
        return await _control_set(self._provider_or_404(request), request, own_port=False)

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        return _control_reset(self._provider_or_404(request), request, own_port=False)

    # --- thread mode ---------------------------------------------------------------------

    def start_in_thread(self, timeout: float = 30.0) -> None:
        """Run the fleet on its own event loop in a daemon thread; returns once it serves."""
        if self._thread is not None:
            raise RuntimeError("fleet is already running in a thread")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._thread_main, args=(loop,), name="sim-fleet", daemon=True
        )
        thread.start()
        self._thread, self._thread_loop = thread, loop
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout)
        except BaseException:
            self._end_thread(timeout)
            raise

    def stop_thread(self, timeout: float = 30.0) -> None:
        """Stop a fleet started with :meth:`start_in_thread` and join its thread. Idempotent."""
        loop = self._thread_loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
        finally:
            self._end_thread(timeout)

    @contextlib.contextmanager
    def threaded(self) -> Iterator[Fleet]:
        """``with Fleet(...).threaded() as fleet:`` — run in a daemon thread for the block."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    def _end_thread(self, timeout: float) -> None:
        loop, thread = self._thread_loop, self._thread
        self._thread_loop = self._thread = None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)

    @staticmethod
    def _thread_main(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            # Finish whatever is left (e.g. handlers unwinding) so nothing is destroyed pending.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


DEFAULT_FLEET: Mapping[str, tuple[int, Behavior]] = MappingProxyType(
    {
        "alpha": (4101, Behavior(latency_ms=8.0, latency_jitter_ms=2.0)),
        "beta": (4102, Behavior(latency_ms=15.0, latency_jitter_ms=3.0)),
        "gamma": (4103, Behavior(latency_ms=25.0, latency_jitter_ms=5.0)),
    }
)
"""The demo fleet: alpha (fast, ~8 ms) on 4101, beta (~15 ms) on 4102, gamma (~25 ms) on 4103."""


def default_fleet(
    *, ephemeral: bool = False, seed: int = 0, control_port: int | None = None
) -> Fleet:
    """Build the :data:`DEFAULT_FLEET` (on ephemeral ports if ``ephemeral``, e.g. for tests)."""
    specs = {
        name: (0 if ephemeral else port, behavior)
        for name, (port, behavior) in DEFAULT_FLEET.items()
    }
    return Fleet(specs, seed=seed, control_port=control_port)
