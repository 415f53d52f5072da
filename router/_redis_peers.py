"""What this process tells its peers through Redis, and how it applies what they tell it.

`publish` writes a deployment's current breaker or pause (key + PUBLISH, one script) or its
failure streak (a PUBLISH only) and `report` this process's health summary; `receive` takes
one pub/sub message, `apply` one peer's breaker, pause or streak (the rules in
router._redis_state's docstring), `reconcile` re-reads every shared key (after a reconnect,
and every ``reconcile_interval``) for what pub/sub may have missed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Final

from router._breaker import State

if TYPE_CHECKING:
    from router._redis_state import RedisState

from router._redis_protocol import MISSING, PROTOCOL, PeerEvent, decode

__all__ = ["STREAK_TTL_S", "apply", "message", "publish", "receive", "reconcile", "report"]

log = logging.getLogger("router")

MAX_STATES: Final = 10_000  # deployments peers may announce that this process never used
STREAK_TTL_S: Final = 10.0
"""How long a peer's failure streak counts after its last word: longer than the open periods
of the defaults, and a peer silent that long says nothing about the deployment now."""


def receive(store: RedisState, data: Any) -> None:
    try:
        message = json.loads(data)
        if not isinstance(message, dict) or message.get("v") != PROTOCOL:
            return
        origin = str(message["o"])
        if origin == store.origin:
            return  # our own message, echoed by the channel
        name = str(message["d"])
        if message["k"] != "streak":  # a streak is no key: it cannot make a read stale
            store._heard[name] = store._heard.get(name, 0) + 1
        apply(
            store,
            str(message["k"]),
            str(message["d"]),
            float(message.get("s") or 0.0),
            str(message.get("r") or ""),
            int(message.get("n") or 0),
            origin,
            "pubsub",
        )
    except (ValueError, KeyError, TypeError):
        log.debug("router: ignored a malformed state message: %r", data)


def apply(
    store: RedisState,
    kind: str,
    name: str,
    seconds: float,
    reason: str,
    trips: int,
    origin: str,
    via: str,
) -> str:
    """Apply one peer's state to ours (rules in the module docstring); returns the effect."""
    state = store._states.get(name)
    if state is None:
        if len(store._states) >= MAX_STATES:
            return "ignored"
        state = store._create(name)
    now = store.clock.now()
    breaker = state.breaker
    effect = "ignored"
    if kind == "streak":
        effect = _streak(store, name, origin, trips, now)
    elif kind in ("open", "close"):
        # A trip consumes the fleet's streak; a close says the deployment answers.
        _forget_streaks(store, name)
    if kind == "open" and seconds > 0:
        until = now + seconds + store.probe_grace
        if breaker.state is State.HALF_OPEN and breaker.probe_out:
            pass  # our probe is out: its verdict decides, and is published
        elif breaker.state is State.OPEN:
            # Already open (on our evidence or a peer's): only ever lengthened. The 10 ms
            # slack keeps republished and reconciled copies of one trip from churning it.
            if until > breaker.open_until + 0.01:
                breaker.open_until = until
                breaker.trips = max(breaker.trips, trips)
                effect = "extended"
        else:
            before = breaker.trips
            breaker.force_open(now, seconds + store.probe_grace, f"peer {origin}: {reason}")
            # Force-opening counted a trip; the fleet's count of consecutive trips is the
            # larger of the two, so the next open period grows as if one process saw all.
            breaker.trips = max(before, trips, 1)
            store._peer_open[name] = origin
            effect = "opened"
            log.info(
                "router.breaker_opened_by_peer: %s for %.1f s: %s (from %s)",
                name,
                seconds,
                reason,
                origin,
            )
    elif kind == "half_open":
        if breaker.state is State.OPEN and name in store._peer_open:
            breaker.open_until = max(breaker.open_until, now + store.probe_grace)
            effect = "extended"
    elif kind == "close":
        if breaker.state is State.OPEN and name in store._peer_open:
            # Held open only on a peer's word, which is now withdrawn: close.
            breaker.state = State.CLOSED
            breaker.trips = 0
            breaker.probe_out = False
            store._peer_open.pop(name, None)
            effect = "closed"
            log.info("router.breaker_closed_by_peer: %s (from %s)", name, origin)
        elif breaker.state is State.OPEN and breaker.open_until > now:
            # Our own evidence opened it: not overridden, but due for its probe now.
            breaker.open_until = now
            effect = "due"
    elif kind == "pause" and seconds > 0:
        health = state.health
        until = now + seconds
        if until > health.paused_until:
            # A fleet limit is the fleet's own reason; a peer's 429 is said to be a peer's.
            shown = reason if reason.startswith(("peer", "fleet")) else f"peer: {reason}"
            health.pause(until, shown)
            store._peer_paused[name] = origin
            effect = "paused"
    if store.listeners:
        event = PeerEvent(kind, name, origin, seconds, reason, effect, via)
        for listener in store.listeners:
            listener(event)
    return effect


def _streak(store: RedisState, name: str, origin: str, failures: int, now: float) -> str:
    """A peer's current failure streak on `name`: the breaker counts the sum of the peers'
    fresh ones with its own (router._breaker's fleet streaks)."""
    streaks = store._streaks.setdefault(name, {})
    if failures > 0:
        streaks[origin] = (failures, now + STREAK_TTL_S)
    else:
        streaks.pop(origin, None)
    total = 0
    until = 0.0
    for count, expires in list(streaks.values()):
        if expires > now:
            total += count
            until = expires if until == 0.0 else min(until, expires)
    breaker = store._states[name].breaker
    breaker.peer_failures = total
    breaker.peers_until = until
    return "counted" if failures > 0 else "reset"


def _forget_streaks(store: RedisState, name: str) -> None:
    store._streaks.pop(name, None)
    state = store._states.get(name)
    if state is not None:
        state.breaker.peer_failures = 0


async def reconcile(store: RedisState) -> None:
    """Read every known deployment's shared keys and apply what a lost message would say."""
    client = store._client
    if client is None:
        return
    names = list(store._states)
    if not names:
        return
    heard = dict(store._heard)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(f"{store.prefix}open:{name}")
        pipe.pttl(f"{store.prefix}open:{name}")
        pipe.get(f"{store.prefix}pause:{name}")
        pipe.pttl(f"{store.prefix}pause:{name}")
    replies = await pipe.execute()
    now = store.clock.now()
    for i, name in enumerate(names):
        if store._heard.get(name) != heard.get(name):
            # A message about it arrived during the round trip: it is newer than what was
            # read (e.g. a close after the open key was read), so the read is stale.
            continue
        open_value, open_ms, pause_value, pause_ms = replies[4 * i : 4 * i + 4]
        opened = decode(open_value)
        if opened is not None and isinstance(open_ms, int) and open_ms > 0:
            origin = str(opened.get("o"))
            if origin != store.origin:
                apply(
                    store,
                    "open",
                    name,
                    open_ms / 1000,
                    str(opened.get("r") or ""),
                    int(opened.get("n") or 0),
                    origin,
                    "reconcile",
                )
        elif open_ms == MISSING and name in store._peer_open:
            # No process holds it open any more (closed, or its period ended): wait at most
            # the grace for a verdict we may have missed, then probe for ourselves.
            breaker = store._states[name].breaker
            if breaker.state is State.OPEN:
                breaker.open_until = min(breaker.open_until, now + store.probe_grace)
        paused = decode(pause_value)
        if paused is not None and isinstance(pause_ms, int) and pause_ms > 0:
            origin = str(paused.get("o"))
            if origin != store.origin:
                why = str(paused.get("r") or "")
                apply(store, "pause", name, pause_ms / 1000, why, 0, origin, "reconcile")


# -- publishing ---------------------------------------------------------------------------


def message(
    store: RedisState, kind: str, name: str, seconds: float, reason: str, trips: int
) -> str:
    return json.dumps(
        {
            "v": PROTOCOL,
            "o": store.origin,
            "k": kind,
            "d": name,
            "s": round(seconds, 4),
            "r": reason,
            "n": trips,
        },
        separators=(",", ":"),
    )


async def publish(store: RedisState, name: str, what: str) -> None:
    """Publish the *current* local state of one deployment's breaker or pause."""
    scripts = store._scripts
    state = store._states.get(name)
    if scripts is None or state is None:
        return
    now = store.clock.now()
    if what == "pause":
        if name in store._peer_paused or not state.health.paused(now):
            return
        left = state.health.paused_until - now
        why = state.health.paused_why
        value = json.dumps({"v": PROTOCOL, "o": store.origin, "r": why})
        await scripts.put(
            keys=[f"{store.prefix}pause:{name}"],
            args=[
                value,
                max(1, int(left * 1000)),
                store._channel,
                message(store, "pause", name, left, why, 0),
            ],
        )
        return
    breaker = state.breaker
    if what == "streak":
        client = store._client
        assert client is not None
        streak = breaker.consecutive_failures if breaker.state is State.CLOSED else 0
        await client.publish(store._channel, message(store, "streak", name, 0.0, "", streak))
        return
    if breaker.state is State.OPEN:
        left = breaker.open_until - now
        if name in store._peer_open or left <= 0:
            return
        reason = store._reasons.get(name) or "breaker open"
        value = json.dumps({"v": PROTOCOL, "o": store.origin, "r": reason, "n": breaker.trips})
        await scripts.put(
            keys=[f"{store.prefix}open:{name}"],
            args=[
                value,
                max(1, int(left * 1000)),
                store._channel,
                message(store, "open", name, left, reason, breaker.trips),
            ],
        )
    elif breaker.state is State.CLOSED:
        await scripts.close(
            keys=[f"{store.prefix}open:{name}"],
            args=[store._channel, message(store, "close", name, 0.0, "probe succeeded", 0)],
        )
    elif breaker.probe_out:
        client = store._client
        assert client is not None
        await client.publish(
            store._channel, message(store, "half_open", name, 0.0, "probe in flight", 0)
        )


async def report(store: RedisState) -> None:
    scripts = store._scripts
    if scripts is None:
        return
    now = store.clock.now()
    entries = [dataclasses.asdict(h) for h in store.snapshot(now)]
    value = json.dumps(
        {
            "v": PROTOCOL,
            "id": store.origin,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "ttl_s": store.ttl,
            "deployments": entries,
        },
        separators=(",", ":"),
    )
    count = await scripts.report(
        keys=[f"{store.prefix}proc:{store.origin}", store._procs_key],
        args=[value, max(1, int(store.ttl * 1000)), store.origin],
    )
    store.peers = max(1, int(count))
