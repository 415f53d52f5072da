"""The operations routes and validated hot reload.

- ``GET /healthz``: the process answers (with its pid: ``--workers N`` share one socket);
- ``GET /readyz``: a config is loaded and the gateway is not draining (never fails because
  Redis or a provider is down);
- ``GET /metrics``: Prometheus text; ``GET /dashboard`` and ``GET /dashboard.json``;
- ``POST /admin/reload`` (admin key), SIGHUP, or a change of the file (``watch``): `reload`
  validates the config file and swaps it in, or refuses it with the problems and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from router._serve._asgi import Answer
from router._serve._errors import GatewayError
from router._serve._keys import Keys
from router._serve._options import options_for

if TYPE_CHECKING:
    from router._diff import ConfigDiff
    from router._serve._app import Gateway
    from router._serve._options import ServeOptions

__all__ = ["admin_reload", "dashboard", "dashboard_json", "healthz", "metrics", "readyz",
           "reload", "watch"]  # fmt: skip

_log = logging.getLogger("router.gateway")


async def healthz(gw: Gateway, request: Request) -> Answer:
    # The pid tells apart the workers of ``--workers N`` (one socket, N processes).
    return JSONResponse({"status": "ok", "pid": os.getpid(), "in_flight": gw.in_flight})


async def readyz(gw: Gateway, request: Request) -> Answer:
    # Ready means: a config is loaded and we are not draining. Redis or a provider being
    # down is not a reason to drop this replica from the load balancer: every replica
    # would see the same thing, and the router already fails over (or answers 503).
    if gw.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    config = gw.router.config
    state = gw.router.state
    ready: dict[str, Any] = {
        "status": "ready",
        "config": config.source,
        "deployments": len(config.deployments),
        "groups": len(config.group_names()),
        "state_degraded": bool(getattr(state, "degraded", False)),
    }
    if not _detail(gw, request):  # probes send no key: the file's path is for the admin
        del ready["config"]
    return JSONResponse(ready)


async def metrics(gw: Gateway, request: Request) -> Answer:
    gauges = {
        "router_gateway_in_flight": float(gw.in_flight),
        "router_gateway_draining": 1.0 if gw.draining else 0.0,
        "router_gateway_config_loaded_timestamp_seconds": gw.loaded_at,
    }
    text = gw.observer.render(gw.router.health(), gauges)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def dashboard(gw: Gateway, request: Request) -> Answer:
    from router._serve._dashboard import page

    return HTMLResponse(page())


async def dashboard_json(gw: Gateway, request: Request) -> Answer:
    from router._serve._dashboard import snapshot

    detail = _detail(gw, request)
    if not detail:  # a caller key sees the fleet, not the config's file or its problems
        try:
            gw.keys.authenticate(Keys.presented(request.headers))
        except GatewayError as error:
            return gw.error(error, route="dashboard")
    return JSONResponse(snapshot(gw, detail=detail))


def _detail(gw: Gateway, request: Request) -> bool:
    """Whether `request` may see the config's detail (its file's path, a refused reload's
    problems, a reload's diff): with the admin key, or on a gateway with no keys at all
    (local development: anyone who can reach it may reload it from this machine too)."""
    if not gw.keys.required and not gw.keys.has_admin:
        return True
    return gw.keys.is_admin(Keys.presented(request.headers))


async def admin_reload(gw: Gateway, request: Request) -> Answer:
    presented = Keys.presented(request.headers)
    allowed = gw.keys.is_admin(presented)
    if not gw.keys.has_admin and not gw.keys.required:
        # An open gateway (no keys at all): reload only from this machine.
        client = request.client.host if request.client else ""
        allowed = client in ("127.0.0.1", "::1", "localhost")
    if not allowed:
        return gw.error(
            GatewayError(401, "admin key required", "authentication_error", "invalid_api_key"),
            route="admin",
        )
    result = await reload(gw, "admin")
    return JSONResponse(result, status_code=200 if result["ok"] else 422)


async def reload(gw: Gateway, why: str) -> dict[str, Any]:
    """Validate the config file and swap it in (see router._reload); never raises."""
    from router._config import ConfigError

    async with gw.reload_lock:
        path = gw.options.config_path or gw.router.config.source
        try:
            from router._loading import load_config

            config = load_config(path)
            options = options_for(config, path)  # keys resolvable, else refused
            diff: ConfigDiff = gw.router.reload(config)
            _apply_options(gw, options)
        except ConfigError as exc:
            gw.observer.reloads.add((("result", "invalid"),))
            for problem in exc.problems:
                _log.error("reload (%s) refused: %s", why, problem)
            print(f"router serve: reload ({why}) refused; the old config stays:", flush=True)
            for problem in exc.problems:
                print(f"  {problem}", flush=True)
            result: dict[str, Any] = {"ok": False, "problems": exc.problems}
        except Exception as exc:  # never take the gateway down over a reload
            gw.observer.reloads.add((("result", "error"),))
            _log.exception("reload (%s) failed", why)
            result = {"ok": False, "problems": [f"{type(exc).__name__}: {exc}"]}
        else:
            gw.observer.reloads.add((("result", "ok"),))
            gw.loaded_at = time.time()
            print(f"router serve: reloaded {path} ({why}):", flush=True)
            for line in diff.lines():
                print(f"  {line}", flush=True)
            result = {"ok": True, "diff": diff.as_dict()}
        result["at"] = time.time()
        result["trigger"] = why
        gw.last_reload = result
        return result


def _apply_options(gw: Gateway, options: ServeOptions) -> None:
    """Swap in the edge's options of a reloaded config (keys, limits)."""
    old = gw.keys
    options.watch = gw.options.watch  # the watcher is already running (or not)
    gw.options = options
    gw.keys = Keys(
        options.keys,
        options.admin_key,
        redis_url=options.redis_url,
        prefix=options.redis_prefix,
    )
    gw.keys.adopt(old)


async def watch(gw: Gateway, interval: float = 1.0) -> None:
    """Reload whenever the config file's mtime or size changes (polled; runs forever)."""
    path = gw.options.config_path or gw.router.config.source

    def stamp() -> tuple[float, int] | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        return (info.st_mtime, info.st_size)

    seen = stamp()
    while True:
        await asyncio.sleep(interval)
        now = stamp()
        if now is not None and now != seen:
            seen = now
            await reload(gw, "file change")
