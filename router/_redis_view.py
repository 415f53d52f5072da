"""The shared view of a Redis fleet (``router health --redis URL``): read, not printed.

`fleet_view` reads what every router process using a Redis publishes (health summaries,
shared breakers and pauses, fleet rate-limit usage) into one plain mapping; the CLI prints it
(router._cli._health).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from router._limits import WINDOW_S
from router._redact import safe_url
from router._redis_protocol import decode

__all__ = ["fleet_view"]


async def fleet_view(
    url: str, prefix: str = "router:", *, names: Sequence[str] = (), timeout: float = 2.0
) -> dict[str, Any]:
    """What every process reporting to this Redis sees, and the shared breakers and pauses."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        ids = await client.zrange(f"{prefix}procs", 0, -1)
        keys = [f"{prefix}proc:{_text(i)}" for i in ids]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute() if keys else []
        processes: list[dict[str, Any]] = []
        for i in range(len(keys)):
            report = decode(replies[2 * i])
            left = replies[2 * i + 1]
            if report is None:
                continue
            ttl = float(report.get("ttl_s") or 0.0)
            age = max(0.0, ttl - left / 1000) if isinstance(left, int) and left > 0 else None
            report["age_s"] = None if age is None else round(age, 1)
            processes.append(report)
        order = list(dict.fromkeys([*names, *_reported_names(processes)]))
        pipe = client.pipeline(transaction=False)
        for name in order:
            for kind in ("open", "pause"):
                pipe.get(f"{prefix}{kind}:{name}")
                pipe.pttl(f"{prefix}{kind}:{name}")
            pipe.hgetall(f"{prefix}rl:{name}")
        shared = await pipe.execute() if order else []
        now_s = await client.time()
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    sec = int(now_s[0])
    deployments = []
    for j, name in enumerate(order):
        open_value, open_ms, pause_value, pause_ms, buckets = shared[5 * j : 5 * j + 5]
        opened, paused = decode(open_value), decode(pause_value)
        requests = tokens = 0
        for field, count in (buckets or {}).items():
            kind, _, at = str(field).partition(":")
            if at.isdigit() and int(at) > sec - WINDOW_S:
                if kind == "r":
                    requests += int(count)
                else:
                    tokens += int(count)
        views = [
            (p["id"], d)
            for p in processes
            for d in p.get("deployments", [])
            if isinstance(d, dict) and d.get("deployment") == name
        ]
        states: dict[str, int] = {}
        for _, d in views:
            states[str(d.get("state"))] = states.get(str(d.get("state")), 0) + 1
        latencies = [float(d["latency_ms"]) for _, d in views if d.get("latency_ms") is not None]
        deployments.append(
            {
                "deployment": name,
                "shared_state": "open" if opened is not None else "closed",
                "open_for_s": round(open_ms / 1000, 1) if opened and open_ms > 0 else None,
                "opened_by": None if opened is None else opened.get("o"),
                "paused_for_s": round(pause_ms / 1000, 1) if paused and pause_ms > 0 else None,
                "pause_reason": None if paused is None else paused.get("r"),
                "processes": len(views),
                "states": states,
                "min_score": min((float(d.get("score", 0)) for _, d in views), default=None),
                "max_error_rate": max(
                    (float(d.get("error_rate", 0)) for _, d in views), default=None
                ),
                "mean_latency_ms": (
                    round(sum(latencies) / len(latencies), 1) if latencies else None
                ),
                "calls": sum(int(d.get("calls", 0)) for _, d in views),
                "rpm_used": requests,
                "tpm_used": tokens,
            }
        )
    return {
        "redis": safe_url(url),
        "prefix": prefix,
        "processes": [
            {"id": p.get("id"), "host": p.get("host"), "pid": p.get("pid"), "age_s": p["age_s"]}
            for p in processes
        ],
        "deployments": deployments,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reported_names(processes: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        str(d["deployment"])
        for p in processes
        for d in p.get("deployments", [])
        if isinstance(d, dict) and "deployment" in d
    ]
