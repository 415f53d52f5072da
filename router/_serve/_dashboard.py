"""`/dashboard`: one self-contained page (no build step, no CDN) fed by `/dashboard.json`."""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router._serve._app import Gateway

__all__ = ["page", "snapshot"]


@functools.cache
def page() -> str:
    """The dashboard's HTML (package data: router/_serve/dashboard.html)."""
    return resources.files("router._serve").joinpath("dashboard.html").read_text("utf-8")


_BRIEF = ("ok", "at", "trigger")
"""What anyone who may see the dashboard learns of the last reload: whether it was taken,
when, and what triggered it (not the problems or the diff: they name files and keys)."""


def snapshot(gateway: Gateway, *, detail: bool = True) -> dict[str, Any]:
    """What the page shows: per group, its deployments' health and traffic; latest decisions.

    Without `detail` (a caller key, not the admin's) the config's path is left out, and of the
    last reload only whether it was taken, when and why (`_BRIEF`), with ``"detail": false``.
    """
    router = gateway.router
    config = router.config
    observer = gateway.observer
    health = {h.deployment: h for h in router.health()}
    groups = []
    sections = [(g, config.deployments_in(g)) for g in config.group_names()]
    loose = [d for d in config.deployments if not d.groups]
    if loose:  # deployments in no group: reachable by their own names
        sections.append(("(no group)", loose))
    for group, members in sections:
        served = {d.name: observer.served.get(d.name, 0) for d in members}
        total = sum(served.values())
        if group == "(no group)":
            calls = sum(observer.group_calls.get(d.name, 0) for d in members)
            escalated = sum(observer.group_escalated.get(d.name, 0) for d in members)
        else:
            calls = observer.group_calls.get(group, 0)
            escalated = observer.group_escalated.get(group, 0)
        rows = []
        for d in members:
            h = health.get(d.name)
            rows.append(
                {
                    "name": d.name,
                    "model": d.model,
                    "state": h.state if h else "closed",
                    "score": h.score if h else None,
                    "latency_ms": None
                    if h is None or h.latency_ms is None
                    else round(h.latency_ms, 1),
                    "p95_ms": None if h is None or h.p95_ms is None else round(h.p95_ms, 1),
                    "error_rate": h.error_rate if h else 0.0,
                    "calls": h.calls if h else 0,
                    "in_flight": h.in_flight if h else 0,
                    "open_for_s": h.open_for_s if h else None,
                    "paused_for_s": h.paused_for_s if h else None,
                    "trips": h.trips if h else 0,
                    "served": served[d.name],
                    "share": (served[d.name] / total) if total else 0.0,
                    "cost_usd": observer.served_cost.get(d.name, 0.0),
                }
            )
        groups.append(
            {
                "name": group,
                "calls": calls,
                "escalation_rate": (escalated / calls) if calls else 0.0,
                "deployments": rows,
            }
        )
    last_reload = gateway.last_reload
    if last_reload is not None and not detail:
        last_reload = {k: last_reload[k] for k in _BRIEF if k in last_reload}
    return {
        "config": config.source if detail else None,
        "detail": detail,
        "loaded_at": gateway.loaded_at,
        "in_flight": gateway.in_flight,
        "draining": gateway.draining,
        "groups": groups,
        "decisions": observer.recent_decisions(),
        "last_reload": last_reload,
    }
