"""`router serve`: run the gateway on uvicorn (uvloop and httptools where installed).

One process (``--workers 1``, the default) runs uvicorn in the foreground. With ``--workers
N`` this process is a small supervisor: it binds the socket once, starts N worker processes
that share it (the kernel spreads connections over them), forwards SIGHUP (reload) and
SIGTERM/SIGINT (drain) to every worker and restarts a worker that died. Each worker has its own
router; give them ``[state] backend = "redis"`` so that they share breakers and health (the
same as several replicas behind a load balancer, see the README).

Signals, per worker:

- SIGHUP: validate the config file and swap it in, or log the problems and keep the old one;
- SIGTERM / SIGINT: stop accepting, answer ``/readyz`` with 503, let in-flight calls and
  streams finish for up to ``[gateway] drain_timeout`` seconds, then exit.

The simulated demo fleet: when every deployment's ``api_base`` is a loopback address with a
port and nothing listens on those ports yet (the shipped providers.toml), ``--fleet auto``
(the default) starts one simulator per deployment on the config's ports, each speaking its
deployment's protocol, before serving, so ``router serve`` works out of the box; ``--fleet
off`` never does, ``--fleet on`` always does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from router._config import Config
    from router._serve._app import Gateway

__all__ = ["bind", "build_gateway", "is_simulated", "main"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_YOUNG_THRESHOLD = 10_000
"""Net new container objects between two young-generation collections in a serving process
(Python's default: 700). Each routed call allocates thousands of short-lived objects (litellm's
request and response, pydantic models, the HTTP client's), and with tens of calls in flight a
collection every 700 mostly traverses live calls' objects, which survive it and get traversed
again a generation up: a wider young generation lets most of them die by reference count first.
At most about this many objects of cyclic garbage wait a little longer (a few MB at worst).
Measured in scripts/bench_gateway.py (README, "Gateway")."""


def is_simulated(config: Config) -> bool:
    """True when the config looks like the local simulated fleet: every deployment's api_base
    is a loopback address with a port, and nothing listens on any of those ports yet (so a
    real local server, an Ollama on 127.0.0.1:11434 say, is never shadowed by a simulator)."""
    ports: list[int] = []
    for d in config.deployments:
        url = urlparse(d.api_base or "")
        if url.hostname not in _LOOPBACK or not url.port:
            return False
        ports.append(url.port)
    return bool(ports) and not any(_listening(port) for port in ports)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def build_gateway(config_path: str | None, **router_kwargs: Any) -> Gateway:
    """A `Gateway` over a new `Router` for the config at `config_path`."""
    from router._loading import load_config
    from router._observe import Fanout
    from router._router import Router
    from router._serve._app import Gateway
    from router._serve._metrics import GatewayObserver
    from router._serve._options import options_for

    config = load_config(config_path)
    mine = GatewayObserver()
    observers: list[Any] = [mine]
    tracer_provider = router_kwargs.pop("tracer_provider", None)
    extra = router_kwargs.pop("observer", None)
    if extra is not None:
        observers.append(extra)
    elif router_kwargs.pop("telemetry", True):
        from router.telemetry import observer_for

        found = observer_for(config.telemetry)
        if found is not None:
            observers.append(found)
    observer = observers[0] if len(observers) == 1 else Fanout(observers)
    router = Router(config, observer=observer, **router_kwargs)
    return Gateway(
        router,
        options_for(config, config_path or config.source),
        observer=mine,
        tracer_provider=tracer_provider,
        tracing=len(observers) > 1,  # spans only when telemetry is on
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: an ephemeral one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(gateway: Gateway, log_level: str) -> Any:
    import uvicorn

    loop = "asyncio"
    http = "h11"
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        loop = "uvloop"
    with contextlib.suppress(ImportError):
        import httptools  # noqa: F401

        http = "httptools"
    return uvicorn.Config(
        gateway.app,
        loop=loop,
        http=http,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(gateway.options.drain_timeout)),
        timeout_keep_alive=5,
        server_header=False,
    )


def _make_server(gateway: Gateway, log_level: str) -> Any:
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            gateway.draining = True  # /readyz says 503 at once; new calls get 503 + Retry-After
            super().handle_exit(sig, frame)

    return _Server(_uvicorn_config(gateway, log_level))


async def _serve_one(gateway: Gateway, sock: socket.socket, log_level: str) -> None:
    """Serve on `sock` until SIGTERM/SIGINT; SIGHUP reloads."""
    import litellm  # noqa: F401  (the 3-4 s import happens before the first request, not in it)

    server = _make_server(gateway, log_level)
    loop = asyncio.get_running_loop()
    # A shared store listens for its peers from the first use on this loop: start it now, so a
    # replica that has served nothing yet already knows the fleet's open breakers. Redis being
    # down is no reason not to serve (the store fails open and reconnects).
    wait_connected = getattr(gateway.router.state, "wait_connected", None)
    if wait_connected is not None and not await wait_connected(5.0):
        print("router serve: shared state (Redis) not reachable yet; serving on local state")
    background: list[asyncio.Task[Any]] = []

    def on_hup() -> None:
        background.append(loop.create_task(gateway.reload("SIGHUP")))

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    if gateway.options.watch:
        background.append(loop.create_task(gateway.watch()))
    host, port = sock.getsockname()[:2]
    config = gateway.router.config
    print(
        f"router serve: listening on http://{_url_host(host)}:{port} "
        f"(config {config.source}: {len(config.deployments)} deployment(s), "
        f"groups {', '.join(config.group_names()) or '-'}; pid {os.getpid()})",
        flush=True,
    )
    # uvicorn re-raises the signal that stopped it once it has drained; with these handlers
    # in place that lands here instead of killing the process before the cleanup below.
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(sig, _ignore)
    # Everything built so far (litellm's tables, the config, the router) lives as long as the
    # process: out of the collector's way, so no collection walks it again.
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_THRESHOLD, middle, old)
    try:
        await server.serve(sockets=[sock])
    finally:
        for task in background:
            task.cancel()
        await gateway.keys.aclose()
        from router._backend import drain_litellm

        await drain_litellm(1.0)
        print(f"router serve: stopped (pid {os.getpid()})", flush=True)


def _ignore(sig: int, frame: Any) -> None:
    return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _run_worker(sock: socket.socket, config_path: str | None, log_level: str) -> None:
    gateway = build_gateway(config_path)
    _run_loop(_serve_one(gateway, sock, log_level))


def _run_loop(main: Any) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)


def _start_fleet(config: Config) -> Any:
    from router._sim import Fleet
    from router._sim._protocols import protocol_for_model

    specs = {d.name: int(urlparse(d.api_base or "").port or 0) for d in config.deployments}
    # Each simulator speaks its deployment's wire protocol (OpenAI, Anthropic, Gemini, ...).
    protocols = {d.name: protocol_for_model(d.model) for d in config.deployments}
    fleet = Fleet(specs, seed=7, control_port=0, protocols=protocols)
    fleet.start_in_thread()
    return fleet


def main(
    config_path: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    fleet: str = "auto",
    log_level: str = "warning",
) -> int:
    """Run ``router serve`` until SIGTERM/SIGINT; returns the exit code."""
    from router._config import ConfigError
    from router._loading import load_config

    path = _resolve(config_path)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    running = None
    if fleet == "on" or (fleet == "auto" and is_simulated(config)):
        try:
            running = _start_fleet(config)
        except OSError as exc:
            print(f"router serve: cannot start the simulated fleet: {exc}", file=sys.stderr)
            return 1
        urls = ", ".join(f"{p.name} {p.base_url}" for p in running)
        print(f"router serve: started the simulated demo fleet: {urls}", flush=True)
        print(
            f"router serve: take a provider down with: curl -X POST "
            f'{running.control_url}/NAME/knobs -d \'{{"outage": "refused"}}\' '
            f"(and back: -d '{{\"outage\": null}}')",
            flush=True,
        )
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"router serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    try:
        if workers <= 1:
            gateway = build_gateway(str(path))
            _run_loop(_serve_one(gateway, sock, log_level))
            return 0
        return _supervise(sock, str(path), workers, log_level)
    finally:
        sock.close()
        if running is not None:
            running.stop_thread()


def _resolve(path: str | None) -> Path:
    from router._sim._demo import resolve_config_path

    return resolve_config_path(path)


def _supervise(sock: socket.socket, path: str, workers: int, log_level: str) -> int:
    """Run `workers` processes on `sock`, forwarding SIGHUP and SIGTERM/SIGINT to them."""
    context = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    stopping = False

    def start() -> Any:
        proc = context.Process(target=_run_worker, args=(sock, path, log_level), daemon=False)
        proc.start()
        return proc

    def forward(sig: int, frame: Any) -> None:
        nonlocal stopping
        if sig != signal.SIGHUP:
            stopping = True
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    procs.extend(start() for _ in range(workers))
    restarts: list[float] = []
    while True:
        time.sleep(0.2)
        alive = [p for p in procs if p.is_alive()]
        if stopping:
            if not alive:
                return 0
            continue
        for i, proc in enumerate(procs):
            if not proc.is_alive():
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60] + [now]
                if len(restarts) > 3 * workers:
                    print("router serve: workers keep dying; stopping", file=sys.stderr)
                    forward(signal.SIGTERM, None)
                    stopping = True
                    break
                print(f"router serve: worker {proc.pid} exited ({proc.exitcode}); restarting")
                procs[i] = start()


def run_cli(args: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    """``python -m router._serve``: the same as ``router serve``."""
    import argparse

    parser = argparse.ArgumentParser(prog="router serve")
    add_arguments(parser)
    ns = parser.parse_args(args)
    return run(ns)


def add_arguments(parser: Any) -> None:
    """``router serve``'s options."""
    parser.add_argument(
        "--config",
        default=None,
        help="config file (default: $ROUTER_CONFIG, else ./providers.toml, else the embedded "
        "demo config)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080; 0 = any free port)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument(
        "--fleet",
        choices=("auto", "on", "off"),
        default="auto",
        help="start the simulated demo fleet: auto = when every deployment is on a loopback "
        "port where nothing listens yet (the shipped providers.toml)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )


def run(args: Any) -> int:
    """Run ``router serve`` from parsed arguments."""
    return main(
        args.config,
        host=args.host,
        port=args.port,
        workers=args.workers,
        fleet=args.fleet,
        log_level=args.log_level,
    )
