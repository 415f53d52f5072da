"""One router process of the multi-process tests: calls in a loop and reports as JSON lines.

``python -m tests.redis.worker SPEC`` where SPEC is JSON: ``{"name": "w0", "config": {...},
"interval": 0.02}``. It builds a `Router` from the config (``[state] backend = "redis"``),
calls group ``chat`` every `interval` seconds and prints to stdout, one JSON object a line:

- ``{"kind": "call", "w", "t0", "t1", "ok", "served", "error", "attempts": [{"d", "o",
  "t", "probe"}], "events": [{"d", "after", "t"}]}``, times as wall-clock seconds (one host:
  comparable across processes);
- ``{"kind": "status", "w", "t", "degraded", "connected", "states": {deployment: state},
  "peer": {deployment: origin}}`` every 50 ms;
- ``{"kind": "ready", "w", "t", "origin"}`` after the first call and a connected store.

It stops when its stdin closes (the test ends it) and logs the ``router`` logger to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from typing import Any

from router import Router, get_decision
from router._redis_state import RedisState

MSG = [{"role": "user", "content": "hello"}]


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _main(spec: dict[str, Any]) -> None:
    name = str(spec["name"])
    interval = float(spec.get("interval", 0.02))
    router = Router(spec["config"], seed=int(spec.get("seed", 0)), telemetry=False)
    store = router.state
    assert isinstance(store, RedisState)
    # Wall time of a monotonic reading: the engine's clock is time.monotonic.
    offset = time.time() - time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the test closed our stdin
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()

    async def report_status() -> None:
        while not stop.is_set():
            health = router.health()
            _emit(
                {
                    "kind": "status",
                    "w": name,
                    "t": time.time(),
                    "degraded": store.degraded,
                    "connected": store.connected,
                    "states": {h.deployment: h.state for h in health},
                    "peer": {
                        h.deployment: getattr(h, "from_peer", None)
                        for h in health
                        if getattr(h, "from_peer", None)
                    },
                }
            )
            await asyncio.sleep(0.05)

    status = asyncio.create_task(report_status())
    ready = False
    while not stop.is_set():
        t0 = time.time()
        ok, error, decision = True, None, None
        try:
            response = await router.acompletion("chat", MSG)
            decision = get_decision(response)
        except Exception as exc:  # reported, not raised: the test counts failed calls
            ok, error, decision = False, f"{type(exc).__name__}: {exc}"[:300], get_decision(exc)
        t1 = time.time()
        attempts = []
        events = []
        if decision is not None:
            attempts = [
                {
                    "d": a.deployment,
                    "o": str(a.outcome),
                    "t": decision.started_at + a.started_s,
                    "probe": a.probe,
                }
                for a in decision.attempts
            ]
            events = [
                {"d": e.deployment, "after": e.after.value, "t": e.at + offset}
                for e in decision.events
            ]
        _emit(
            {
                "kind": "call",
                "w": name,
                "t0": t0,
                "t1": t1,
                "ok": ok,
                "served": None if decision is None else decision.deployment,
                "error": error,
                "attempts": attempts,
                "events": events,
            }
        )
        if not ready and ok and store.connected:
            ready = True
            _emit({"kind": "ready", "w": name, "t": time.time(), "origin": store.origin})
        await asyncio.sleep(interval)
    status.cancel()
    await store.aclose()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(created).3f %(name)s %(message)s"
    )
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(_main(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
