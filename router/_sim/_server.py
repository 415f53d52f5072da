"""The server every simulated provider is: its listener, loop and lifecycle, knobs and stats.

:class:`SimServer` starts and stops an aiohttp application on its own port (closing the
listener for ``outage = "refused"`` and reopening it on the same port), takes knob changes
from any thread, serves the control plane (``/_sim/stats``, ``/_sim/knobs``, ``/_sim/reset``)
and makes every request's random draws, hang and latency (`_arrive`) in one order, so one seed
gives one fault sequence whatever protocol a provider speaks. The OpenAI server
(:class:`~router._sim._openai.SimProvider`) and the other protocols' servers
(router._sim._protocol) answer the requests. Providers are created and run by a
:class:`~router._sim._fleet.Fleet`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import random
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from aiohttp import web

from router._sim._knobs import Behavior, _validate
from router._sim._payloads import (
    _error,
)
from router._sim._stats import ProviderStats, StatsSnapshot

__all__ = ["SimServer"]

_T = TypeVar("_T")

# How long a thread-mode caller waits for the fleet's loop before giving up; generous because
# the CI machine is slow, and only reached if the loop is wedged.
_THREAD_HOP_TIMEOUT_S = 30.0
# Bound on aiohttp's graceful wait for in-flight handlers at shutdown; ours are aborted or
# released before that, so this only caps a misbehaving handler.
_SHUTDOWN_TIMEOUT_S = 1.0


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


class _Arrival(NamedTuple):
    """A chat request as it arrived: knobs at arrival, its number, its draws, its JSON body."""

    behavior: Behavior
    seq: int
    rate_limit_draw: float
    error_draw: float
    body: Any


class SimServer:
    """What every simulated provider is, whatever its wire protocol; see :class:`Behavior` for
    its knobs. Subclasses register their endpoints (`_routes`) and answer them.

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
        # The slow tail's own draws: adding it leaves every other draw's sequence as it was.
        self._slow_rng = random.Random(f"{seed}:{name}:slow")
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

    def set(self, *, drain: bool = False, **knobs: Any) -> None:
        """Change knobs; unknown names or bad values raise ``ValueError`` and change nothing.

        Switching ``outage`` to ``"refused"`` closes the listening socket and aborts open
        connections (a crash: a stream being answered is cut); with ``drain=True`` it closes
        idle connections at once and lets the answers already being sent finish, each
        connection closing after its answer (a provider taken out of service: every new
        request is refused, none in flight is cut). Switching away reopens it on the same port.
        """
        checked = _validate(knobs)
        self._on_loop(lambda: self._apply(checked, spare=None, drain=drain))

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

    def _apply(
        self,
        knobs: Mapping[str, Any],
        *,
        spare: asyncio.BaseTransport | None,
        drain: bool = False,
    ) -> None:
        for name, value in knobs.items():
            setattr(self.behavior, name, value)
        self._sync_listener(spare, drain)

    def _reset(self, *, spare: asyncio.BaseTransport | None) -> None:
        self.behavior = dataclasses.replace(self._initial)
        self.stats.clear()
        self.last_request = None
        self._seq = 0
        self._rng.seed(f"{self._seed}:{self.name}")
        self._slow_rng.seed(f"{self._seed}:{self.name}:slow")
        self._sync_listener(spare)

    def _sync_listener(self, spare: asyncio.BaseTransport | None, drain: bool = False) -> None:
        if self._runner is None:
            return
        want_open = self.behavior.outage != "refused"
        if want_open and self._sock is None:
            self._open()
        elif not want_open and self._sock is not None:
            self._close_listener()
            if drain:
                self._drain_connections()
            else:
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

    def _drain_connections(self) -> None:
        """Close idle connections now and busy ones after their answer (aiohttp's own
        graceful close: it stops reading new requests on the connection)."""
        if self._runner is None or self._runner.server is None:
            return
        for handler in self._runner.server.connections:
            handler.close()

    def _routes(self, app: web.Application) -> None:
        """Register the provider's API routes (its wire protocol's endpoints)."""
        raise NotImplementedError

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._routes(app)
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

    # --- every request -------------------------------------------------------------------

    def _count_error(self, status: int) -> None:
        self.stats.errors_by_status[status] = self.stats.errors_by_status.get(status, 0) + 1

    def _fail(self, status: int, message: str, **kwargs: Any) -> web.Response:
        self._count_error(status)
        return _error(status, message, **kwargs)

    async def _arrive(self, request: web.Request) -> _Arrival | None:
        """Count a chat request, draw its numbers, read its body, then hang or wait its latency.

        None for a hung request released by the fleet stopping. Every protocol's server starts
        here, so one seed gives one fault sequence whatever protocol a provider speaks.
        """
        b = dataclasses.replace(self.behavior)  # knobs as they were when the request arrived
        self.stats.requests += 1
        self._seq += 1
        seq = self._seq
        # Always draw the same numbers in the same order, so a seed fixes the outcome sequence
        # whatever the knobs are.
        jitter_ms = self._rng.uniform(0.0, b.latency_jitter_ms)
        rate_limit_draw = self._rng.random()
        error_draw = self._rng.random()
        if b.slow_rate > 0.0 and self._slow_rng.random() < b.slow_rate:
            jitter_ms += b.slow_ms
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
            return None

        await asyncio.sleep((b.latency_ms + jitter_ms) / 1000.0)
        return _Arrival(b, seq, rate_limit_draw, error_draw, body)

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

    # --- control plane -------------------------------------------------------------------

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _ctl_get_knobs(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.behavior))

    async def _ctl_set_knobs(self, request: web.Request) -> web.Response:
        return await _control_set(self, request, own_port=True)

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        return _control_reset(self, request, own_port=True)


def _control_response(provider: SimServer, *, own_port: bool) -> web.Response:
    response = web.json_response(dataclasses.asdict(provider.behavior))
    if own_port and provider.behavior.outage == "refused":
        # The listener is gone; do not leave this connection open as a way in.
        response.force_close()
    return response


async def _control_set(
    provider: SimServer, request: web.Request, *, own_port: bool
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


def _control_reset(provider: SimServer, request: web.Request, *, own_port: bool) -> web.Response:
    provider._reset(spare=request.transport if own_port else None)
    return _control_response(provider, own_port=own_port)
