"""A set of simulated providers started and stopped together, on the caller's loop or a thread.

:class:`Fleet` owns the providers' lifecycle and an optional fleet-wide control server
(``/_sim/{name}/stats|knobs|reset``) that still answers while a provider's own port is closed;
:func:`default_fleet` builds the demo's three providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType, TracebackType

from aiohttp import web

from router._sim._knobs import Behavior
from router._sim._openai import SimProvider
from router._sim._protocols import provider_class
from router._sim._server import _SHUTDOWN_TIMEOUT_S, _control_reset, _control_set
from router._sim._stats import StatsSnapshot

__all__ = ["DEFAULT_FLEET", "Fleet", "ProviderSpec", "default_fleet", "parse_provider_spec"]


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
    provider's own port is closed. ``protocols`` maps provider names to the wire protocol
    each speaks (``"openai"`` unless named: ``"anthropic"``, ``"gemini"``, ``"azure"``,
    ``"bedrock"``; see :mod:`router._sim._protocols` and its ``litellm_params``).
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderSpec] | Iterable[str],
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        control_port: int | None = None,
        protocols: Mapping[str, str] | None = None,
    ) -> None:
        self.seed = seed
        self.host = host
        specs = _normalize(providers)
        wires = dict(protocols or {})
        unknown = sorted(set(wires) - {name for name, _, _ in specs})
        if unknown:
            raise ValueError(f"protocols given for unknown provider(s): {', '.join(unknown)}")
        self._providers: dict[str, SimProvider] = {
            name: provider_class(wires.get(name, "openai"))(
                name, port, behavior, seed=seed, host=host
            )
            for name, port, behavior in specs
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
