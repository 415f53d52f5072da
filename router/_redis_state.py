"""Shared breaker and health state through Redis: many processes, one view of provider health.

`RedisState` is a `StateStore` (router._state) for ``[state] backend = "redis"``. It keeps the
rules of `MemoryState` for every decision and adds sharing around them:

- **Local state decides.** The engine reads and mutates this process's `DeploymentState` as
  with `MemoryState`; `get()` is a dict lookup. No call waits for Redis (rate limits aside,
  below).
- **Publish in the background.** `on_transition` and `on_pause` only mark the deployment dirty
  and wake one background task, which publishes the deployment's *current* state: a Lua script
  stores it under a key that expires with it (``PX`` = the seconds left) and PUBLISHes it on
  one channel, in one round trip. Latest state, not a log: a burst of changes coalesces, and
  nothing queues up while Redis is away.
- **Apply peers' as they arrive** (pub/sub), by these rules (``_apply``):

  - *open for S s*: our breaker opens for ``S + probe_grace`` s, so the process that tripped
    it probes first; unless ours is already open longer, or our own probe is out (it decides).
  - *half-open* (a peer's probe is out): a breaker we hold open for a peer waits up to
    ``probe_grace`` more for that probe's verdict instead of probing too.
  - *closed* (a peer's probe succeeded): a breaker we hold open *because of a peer* closes; one
    we opened on our own evidence is not overridden, it becomes due for its probe now (one
    call checks the provider for us).
  - *paused for S s* (a 429 and its Retry-After, or a fleet rate limit): we pause too.

  Applied changes are not published again (no echo), and every message carries its sender's
  id, so a process ignores its own. Every open is shared, a misconfiguration's too (a 401 on a
  key the fleet shares). ``listeners`` hear each applied message (tests, telemetry).
- **One probe**, fleet-wide in the common case, through the grace above rather than a
  ``SET NX`` probe lease: admission is synchronous, and a lease would put a Redis round trip on
  the hot path. When the process that tripped has no traffic, each other process sends at most
  its one probe.
- **Reconcile** after every (re)connect and every ``reconcile_interval``: read the keys of every
  known deployment and apply what a missed message would have said; republish our own open
  breakers and pauses (peers that missed them while Redis was away learn them).
- **No clock is trusted across hosts.** Messages and keys carry durations (seconds left, the
  key's PTTL counted by Redis); each process adds them to its own monotonic clock. Rate-limit
  windows and the process registry use Redis's own clock (``TIME`` inside the scripts).
- **Fail open.** When Redis is unreachable or slow (every operation has a ``timeout``), calls
  go on with local state; the store reconnects with jittered exponential backoff up to
  ``reconnect_max``, logs one warning per outage (``router.state_degraded``) and one line when
  it is back (``router.state_recovered``), and ``degraded`` says so (also on every
  `Router.health()` entry, a `SharedDeploymentHealth`).
- **Health summaries**: every second each process writes its snapshot under its own key (PX
  ``ttl``), registered in a sorted set scored by Redis time; ``router health --redis URL``
  reads them (`fleet_view`). They are for the shared view: each process keeps ranking on its
  own latencies and error rates (its network path is its own); what must be shared to avoid a
  provider, breakers and pauses, is applied.

Fleet-wide RPM/TPM limits (`FleetLimits`, `LimitedBackend`): for deployments that set ``rpm``
or ``tpm``, each attempt first reserves one request in a Redis sliding window (60 one-second
buckets, one script round trip); tokens are added after the response (in the background).
The process that takes the last slot, or pushes the tokens over, pauses the deployment for
the seconds until the window frees and publishes the pause, so every process skips it with the
reason (``fleet rpm limit 60 reached``). A reservation refused in a race raises a 429 for that
attempt (no request is sent), which the engine treats as any 429. Without Redis, or while it
is unreachable, the window is counted in this process against the limit divided by the number
of processes last seen.

Call-site rule: a store runs its background task on the event loop that first uses it (the
caller's loop, or the sync API's background loop) and moves to a new loop once that one has
stopped or closed; calls made meanwhile on a second live loop decide on local state. redis-py
is imported only when a `RedisState` is built (``pip install 'router[redis]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from router._breaker import State, Transition
from router._clock import SystemClock
from router._state import DeploymentHealth, DeploymentState, snapshot_of

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub
    from redis.commands.core import AsyncScript

    from router._backend import Transport
    from router._catalogue import Catalogue
    from router._clock import Clock
    from router._config import Deployment, StateSettings
    from router._state import StateStore

__all__ = [
    "FleetLimits",
    "LimitedBackend",
    "PeerEvent",
    "RedisState",
    "SharedDeploymentHealth",
    "fleet_view",
    "print_fleet_view",
]

log = logging.getLogger("router")

PROTOCOL: Final = 1
"""Version of the messages and keys; a process ignores messages of another version."""
WINDOW_S: Final = 60
"""Rate-limit window: RPM and TPM are counted over the last 60 one-second buckets."""
HEARTBEAT_S: Final = 1.0
"""How often the background task writes this process's health summary (and so checks Redis)."""
_RECONNECT_MIN_S: Final = 0.05
_MAX_STATES: Final = 10_000  # deployments peers may announce that this process never used
_MISSING: Final = -2  # PTTL of a key that does not exist

# A Lua script runs atomically in Redis: the key write and the PUBLISH are one round trip, and
# a shorter open period never overwrites a longer one a peer stored.
_PUT = """
local ms = tonumber(ARGV[2])
if ms > 0 and redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
end
return redis.call('PUBLISH', ARGV[3], ARGV[4])
"""
_CLOSE = """
redis.call('DEL', KEYS[1])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
# The process registry is scored by Redis's own clock: no host's clock is trusted.
_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return redis.call('ZCARD', KEYS[2])
"""
# Sliding window of one-second buckets ('r:<sec>' requests, 't:<sec>' tokens) in one hash.
# ARGV: rpm (0 = none), tpm (0 = none), window seconds, requests to reserve, tokens to add.
# Returns {admitted 0/1, requests in window, tokens in window, ms until the window has room
# (0 unless a limit is reached)}.
_LIMIT = """
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local want, tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sec = math.floor(now / 1000)
local r, k = {}, {}
local nr, nk = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local s = tonumber(string.sub(all[i], 3))
  local n = tonumber(all[i + 1])
  if s == nil or n == nil or s <= sec - window then
    redis.call('HDEL', KEYS[1], all[i])
  elseif string.sub(all[i], 1, 1) == 'r' then
    r[s] = n
    nr = nr + n
  else
    k[s] = n
    nk = nk + n
  end
end
local function wait(buckets, total, limit)
  local secs = {}
  for s in pairs(buckets) do secs[#secs + 1] = s end
  table.sort(secs)
  for _, s in ipairs(secs) do
    total = total - buckets[s]
    if total < limit then return (s + window) * 1000 - now end
  end
  return window * 1000
end
local admitted = 1
if want > 0 then
  if (rpm > 0 and nr + want > rpm) or (tpm > 0 and nk >= tpm) then
    admitted = 0
  else
    redis.call('HINCRBY', KEYS[1], 'r:' .. sec, want)
    r[sec] = (r[sec] or 0) + want
    nr = nr + want
  end
end
if tokens > 0 then
  redis.call('HINCRBY', KEYS[1], 't:' .. sec, tokens)
  k[sec] = (k[sec] or 0) + tokens
  nk = nk + tokens
end
redis.call('PEXPIRE', KEYS[1], (window + 1) * 1000)
local w = 0
if rpm > 0 and nr >= rpm then w = math.max(w, wait(r, nr, rpm)) end
if tpm > 0 and nk >= tpm then w = math.max(w, wait(k, nk, tpm)) end
return {admitted, nr, nk, w}
"""


# The C accessor, bound once: cheap enough for every `get()` (tens of nanoseconds) and it
# returns None instead of raising outside a loop.
_running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio.events._get_running_loop


def safe_url(url: str) -> str:
    """`url` without its password, for logs and output."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    netloc = f"{parts.username}:***@{netloc}" if parts.username else f":***@{netloc}"
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True, slots=True)
class SharedDeploymentHealth(DeploymentHealth):
    """A `DeploymentHealth` from a shared store: what it adds about sharing."""

    degraded: bool = False
    """Redis was unreachable at snapshot time: this is one process's local view only."""
    from_peer: str | None = None
    """The peer whose breaker or pause this process applied, when one is in force."""


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A peer's message as this process applied it (for listeners: tests, telemetry)."""

    kind: str
    """``open``, ``half_open``, ``close`` or ``pause``."""
    deployment: str
    origin: str
    seconds: float
    reason: str
    effect: str
    """What it did here: ``opened``, ``extended``, ``closed``, ``due``, ``paused``, ``ignored``."""
    via: str
    """``pubsub`` or ``reconcile``."""


class _Scripts:
    """The Lua scripts, registered once per connection (EVALSHA, loaded again if flushed)."""

    def __init__(self, client: Redis) -> None:
        self.put: AsyncScript = client.register_script(_PUT)
        self.close: AsyncScript = client.register_script(_CLOSE)
        self.report: AsyncScript = client.register_script(_REPORT)
        self.limit: AsyncScript = client.register_script(_LIMIT)


class RedisState:
    """A `StateStore` whose breakers and pauses are shared with peer processes through Redis.

    See the module docstring for the rules. Built from ``[state]`` by `Router` (or
    `RedisState.from_settings`); ``deployments`` pre-creates the states of a config so that
    peers' state is applied before this process first calls them.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "router:",
        ttl: float = 30.0,
        timeout: float = 0.25,
        reconcile_interval: float = 5.0,
        probe_grace: float = 1.0,
        reconnect_max: float = 5.0,
        clock: Clock | None = None,
        seed: int | None = None,
        deployments: Iterable[str] = (),
        origin: str | None = None,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401  (fail here, not in the background task)
        except ImportError as exc:
            from router._config import ConfigError

            raise ConfigError(
                ["[state] backend = 'redis' needs the redis package: pip install 'router[redis]'"]
            ) from exc
        self.url = url
        self.prefix = key_prefix
        self.ttl = ttl
        self.timeout = timeout
        self.reconcile_interval = reconcile_interval
        self.probe_grace = probe_grace
        self.reconnect_max = reconnect_max
        self.origin = origin or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.listeners: list[Callable[[PeerEvent], None]] = []
        """Called with every peer message applied (or ignored), on the store's loop."""
        self.outages = 0
        """Outages so far (each logged once)."""
        self.peers = 1
        """Processes seen reporting to this Redis (this one included) at the last heartbeat."""
        self._rng = random.Random(seed)
        self._jitter = random.Random()
        self._states: dict[str, DeploymentState] = {}
        # Deployments whose open breaker / pause came from a peer (name -> that peer's id).
        self._peer_open: dict[str, str] = {}
        self._peer_paused: dict[str, str] = {}
        # What to publish: latest state per deployment, insertion-ordered ("breaker", "pause").
        self._dirty: dict[tuple[str, str], None] = {}
        self._tokens: dict[str, tuple[int, int | None, int | None]] = {}
        self._reasons: dict[str, str] = {}  # the last local transition's reason, to publish
        # Peer messages heard per deployment: a reconciliation read that a message overtook is
        # stale for that deployment and is not applied.
        self._heard: dict[str, int] = {}
        self._ups = 0  # sessions that connected, so the backoff restarts after one
        self._channel = f"{key_prefix}events"
        self._procs_key = f"{key_prefix}procs"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._client: Redis | None = None
        self._scripts: _Scripts | None = None
        self._connected = False
        self._degraded = False
        self._down_since: float | None = None
        self._closed = False
        for name in deployments:
            self._create(name)

    @classmethod
    def from_settings(
        cls,
        settings: StateSettings,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        deployments: Iterable[str] = (),
    ) -> RedisState:
        """A store for a ``[state]`` table (its ``url`` resolved now, env references too)."""
        url = settings.resolve_url()
        assert url is not None  # StateSettings requires it with backend = "redis"
        return cls(
            url,
            key_prefix=settings.key_prefix,
            ttl=settings.ttl,
            timeout=settings.timeout,
            reconcile_interval=settings.reconcile_interval,
            probe_grace=settings.probe_grace,
            reconnect_max=settings.reconnect_max,
            clock=clock,
            seed=seed,
            deployments=deployments,
        )

    def __repr__(self) -> str:
        mode = "degraded" if self._degraded else "connected" if self._connected else "idle"
        return f"RedisState({safe_url(self.url)!r}, prefix={self.prefix!r}, {mode})"

    # -- the StateStore protocol (hot path) -----------------------------------------------

    def get(self, deployment: str) -> DeploymentState:
        if self._loop is not _running_loop():
            self._attach()
        state = self._states.get(deployment)
        if state is None:
            state = self._create(deployment)
        return state

    def on_transition(self, transition: Transition) -> None:
        # Local evidence changed the breaker: it is ours now, whatever a peer said before.
        self._peer_open.pop(transition.deployment, None)
        self._reasons[transition.deployment] = transition.reason
        self._mark(transition.deployment, "breaker")

    def on_pause(self, deployment: str, seconds: float, why: str) -> None:
        self._peer_paused.pop(deployment, None)
        self._mark(deployment, "pause")

    def snapshot(self, now: float) -> list[DeploymentHealth]:
        degraded = self._degraded
        result: list[DeploymentHealth] = []
        for name, state in self._states.items():
            base = snapshot_of(state, now)
            peer = None
            if base.state == State.OPEN.value and name in self._peer_open:
                peer = self._peer_open[name]
            elif base.paused_for_s is not None and name in self._peer_paused:
                peer = self._peer_paused[name]
            fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
            result.append(SharedDeploymentHealth(**fields, degraded=degraded, from_peer=peer))
        return result

    # -- status ---------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable: decisions use local state only."""
        return self._degraded

    @property
    def connected(self) -> bool:
        """True while the background task holds a working connection."""
        return self._connected

    async def wait_connected(self, timeout: float = 5.0) -> bool:
        """Wait (polling) until connected; starts the background task on this loop if needed."""
        self._attach()
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self._connected and loop.time() < end:
            await asyncio.sleep(0.01)
        return self._connected

    async def aclose(self) -> None:
        """Stop the background task and close the connections (the store is then local-only)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            if task.get_loop() is _running_loop():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.get_loop().is_closed():
                task.get_loop().call_soon_threadsafe(task.cancel)
        self._connected = False

    # -- internals: states and the background task -----------------------------------------

    def _create(self, name: str) -> DeploymentState:
        state = self._states[name] = DeploymentState(name, self._rng)
        return state

    def _attach(self) -> None:
        """Run the background task on the running loop unless it runs on another live one."""
        loop = _running_loop()
        if loop is None or self._closed:
            return
        old = self._loop
        if old is not None and old is not loop and not old.is_closed() and old.is_running():
            return  # another live loop owns the task; this loop's calls use local state
        if old is loop and self._task is not None and not self._task.done():
            return
        self._loop = loop
        self._thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._client = None
        self._scripts = None
        self._connected = False
        self._task = loop.create_task(self._run(), name="router-state-redis")

    def _mark(self, deployment: str, what: str) -> None:
        self._dirty[(deployment, what)] = None
        self._poke()

    def _poke(self) -> None:
        wake, loop = self._wake, self._loop
        if wake is None or loop is None:
            return
        if self._thread == threading.get_ident():
            wake.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        delay = _RECONNECT_MIN_S
        while not self._closed:
            ups = self._ups
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis, socket or timeout error: degrade, retry
                self._went_down(exc)
            finally:
                await self._disconnect()
            if self._ups != ups:
                delay = _RECONNECT_MIN_S  # the session had connected: start the backoff over
            await asyncio.sleep(delay * (0.5 + self._jitter.random() / 2))
            delay = min(self.reconnect_max, delay * 2)

    async def _session(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside redis-py: this loop owns reconnection, with its own backoff.
        client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._client = client
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(self.timeout * 4):
                await client.ping()
                await pubsub.subscribe(self._channel)
            self._scripts = _Scripts(client)
            await self._resync()
            self._went_up()
            tasks = [
                asyncio.create_task(self._read(pubsub)),
                asyncio.create_task(self._write()),
                asyncio.create_task(self._beat()),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                task.result()  # re-raise the failure that ended the session
            raise ConnectionError("the Redis session ended")
        finally:
            self._connected = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self._scripts = None
        self._connected = False
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _went_up(self) -> None:
        self._connected = True
        self._ups += 1
        if self._degraded:
            down = self._down_since
            elapsed = 0.0 if down is None else time.monotonic() - down
            log.info(
                "router.state_recovered: Redis at %s is back after %.1f s; sharing state again",
                safe_url(self.url),
                elapsed,
            )
        self._degraded = False
        self._down_since = None

    def _went_down(self, exc: BaseException) -> None:
        self._connected = False
        if self._closed:
            return
        if not self._degraded:
            self._degraded = True
            self._down_since = time.monotonic()  # for the log line: real seconds
            self.outages += 1
            log.warning(
                "router.state_degraded: Redis at %s unreachable (%s); deciding on local state "
                "only, reconnecting with backoff",
                safe_url(self.url),
                type(exc).__name__ + (f": {exc}" if str(exc) else ""),
            )
        else:
            log.debug("router: Redis still unreachable: %r", exc)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            self._receive(message.get("data"))

    async def _write(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if not self._dirty and not self._tokens:
                await wake.wait()
            wake.clear()
            while self._dirty:
                # Taken out before the await: a change made meanwhile marks it dirty again and
                # is published next, with the state as it is then.
                key = next(iter(self._dirty))
                del self._dirty[key]
                try:
                    async with asyncio.timeout(self.timeout):
                        await self._publish(*key)
                except BaseException:
                    self._dirty[key] = None  # not sent: for the next session
                    raise
            while self._tokens:
                name = next(iter(self._tokens))
                tokens, rpm, tpm = self._tokens.pop(name)
                try:
                    async with asyncio.timeout(self.timeout):
                        result = await self._limit_call(name, rpm or 0, tpm or 0, 0, tokens)
                except BaseException:
                    self.add_tokens(name, tokens, rpm, tpm)  # counted in the next session
                    raise
                self._after_limit(name, result, rpm, tpm)

    async def _beat(self) -> None:
        # Scheduled on real time (the engine's clock may be a test's fake one).
        next_reconcile = time.monotonic() + self.reconcile_interval
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            async with asyncio.timeout(self.timeout):
                await self._report()
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + self.reconcile_interval
                async with asyncio.timeout(self.timeout * 4):
                    await self._reconcile()

    async def _resync(self) -> None:
        """After a (re)connect: publish our own state again, then read the peers'."""
        now = self.clock.now()
        for name, state in self._states.items():
            breaker = state.breaker
            own = name not in self._peer_open
            if breaker.state is State.OPEN and own and breaker.open_until > now:
                self._dirty[(name, "breaker")] = None
            if state.health.paused(now) and name not in self._peer_paused:
                self._dirty[(name, "pause")] = None
        async with asyncio.timeout(self.timeout * 4):
            await self._reconcile()
            await self._report()
        if self._wake is not None:
            self._wake.set()

    # -- publishing -----------------------------------------------------------------------

    def _message(self, kind: str, name: str, seconds: float, reason: str, trips: int) -> str:
        return json.dumps(
            {
                "v": PROTOCOL,
                "o": self.origin,
                "k": kind,
                "d": name,
                "s": round(seconds, 4),
                "r": reason,
                "n": trips,
            },
            separators=(",", ":"),
        )

    async def _publish(self, name: str, what: str) -> None:
        """Publish the *current* local state of one deployment's breaker or pause."""
        scripts = self._scripts
        state = self._states.get(name)
        if scripts is None or state is None:
            return
        now = self.clock.now()
        if what == "pause":
            if name in self._peer_paused or not state.health.paused(now):
                return
            left = state.health.paused_until - now
            why = state.health.paused_why
            value = json.dumps({"v": PROTOCOL, "o": self.origin, "r": why})
            await scripts.put(
                keys=[f"{self.prefix}pause:{name}"],
                args=[
                    value,
                    max(1, int(left * 1000)),
                    self._channel,
                    self._message("pause", name, left, why, 0),
                ],
            )
            return
        breaker = state.breaker
        if breaker.state is State.OPEN:
            left = breaker.open_until - now
            if name in self._peer_open or left <= 0:
                return
            reason = self._reasons.get(name) or "breaker open"
            value = json.dumps({"v": PROTOCOL, "o": self.origin, "r": reason, "n": breaker.trips})
            await scripts.put(
                keys=[f"{self.prefix}open:{name}"],
                args=[
                    value,
                    max(1, int(left * 1000)),
                    self._channel,
                    self._message("open", name, left, reason, breaker.trips),
                ],
            )
        elif breaker.state is State.CLOSED:
            await scripts.close(
                keys=[f"{self.prefix}open:{name}"],
                args=[self._channel, self._message("close", name, 0.0, "probe succeeded", 0)],
            )
        elif breaker.probe_out:
            client = self._client
            assert client is not None
            await client.publish(
                self._channel, self._message("half_open", name, 0.0, "probe in flight", 0)
            )

    async def _report(self) -> None:
        scripts = self._scripts
        if scripts is None:
            return
        now = self.clock.now()
        entries = [dataclasses.asdict(h) for h in self.snapshot(now)]
        value = json.dumps(
            {
                "v": PROTOCOL,
                "id": self.origin,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "ttl_s": self.ttl,
                "deployments": entries,
            },
            separators=(",", ":"),
        )
        count = await scripts.report(
            keys=[f"{self.prefix}proc:{self.origin}", self._procs_key],
            args=[value, max(1, int(self.ttl * 1000)), self.origin],
        )
        self.peers = max(1, int(count))

    # -- applying peers' state ------------------------------------------------------------

    def _receive(self, data: Any) -> None:
        try:
            message = json.loads(data)
            if not isinstance(message, dict) or message.get("v") != PROTOCOL:
                return
            origin = str(message["o"])
            if origin == self.origin:
                return  # our own message, echoed by the channel
            name = str(message["d"])
            self._heard[name] = self._heard.get(name, 0) + 1
            self._apply(
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

    def _apply(
        self,
        kind: str,
        name: str,
        seconds: float,
        reason: str,
        trips: int,
        origin: str,
        via: str,
    ) -> str:
        """Apply one peer's state to ours (rules in the module docstring); returns the effect."""
        state = self._states.get(name)
        if state is None:
            if len(self._states) >= _MAX_STATES:
                return "ignored"
            state = self._create(name)
        now = self.clock.now()
        breaker = state.breaker
        effect = "ignored"
        if kind == "open" and seconds > 0:
            until = now + seconds + self.probe_grace
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
                breaker.force_open(now, seconds + self.probe_grace, f"peer {origin}: {reason}")
                # Force-opening counted a trip; the fleet's count of consecutive trips is the
                # larger of the two, so the next open period grows as if one process saw all.
                breaker.trips = max(before, trips, 1)
                self._peer_open[name] = origin
                effect = "opened"
                log.info(
                    "router.breaker_opened_by_peer: %s for %.1f s: %s (from %s)",
                    name,
                    seconds,
                    reason,
                    origin,
                )
        elif kind == "half_open":
            if breaker.state is State.OPEN and name in self._peer_open:
                breaker.open_until = max(breaker.open_until, now + self.probe_grace)
                effect = "extended"
        elif kind == "close":
            if breaker.state is State.OPEN and name in self._peer_open:
                # Held open only on a peer's word, which is now withdrawn: close.
                breaker.state = State.CLOSED
                breaker.trips = 0
                breaker.probe_out = False
                self._peer_open.pop(name, None)
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
                self._peer_paused[name] = origin
                effect = "paused"
        if self.listeners:
            event = PeerEvent(kind, name, origin, seconds, reason, effect, via)
            for listener in self.listeners:
                listener(event)
        return effect

    async def _reconcile(self) -> None:
        """Read every known deployment's shared keys and apply what a lost message would say."""
        client = self._client
        if client is None:
            return
        names = list(self._states)
        if not names:
            return
        heard = dict(self._heard)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.get(f"{self.prefix}open:{name}")
            pipe.pttl(f"{self.prefix}open:{name}")
            pipe.get(f"{self.prefix}pause:{name}")
            pipe.pttl(f"{self.prefix}pause:{name}")
        replies = await pipe.execute()
        now = self.clock.now()
        for i, name in enumerate(names):
            if self._heard.get(name) != heard.get(name):
                # A message about it arrived during the round trip: it is newer than what was
                # read (e.g. a close after the open key was read), so the read is stale.
                continue
            open_value, open_ms, pause_value, pause_ms = replies[4 * i : 4 * i + 4]
            opened = _decode(open_value)
            if opened is not None and isinstance(open_ms, int) and open_ms > 0:
                origin = str(opened.get("o"))
                if origin != self.origin:
                    self._apply(
                        "open",
                        name,
                        open_ms / 1000,
                        str(opened.get("r") or ""),
                        int(opened.get("n") or 0),
                        origin,
                        "reconcile",
                    )
            elif open_ms == _MISSING and name in self._peer_open:
                # No process holds it open any more (closed, or its period ended): wait at most
                # the grace for a verdict we may have missed, then probe for ourselves.
                breaker = self._states[name].breaker
                if breaker.state is State.OPEN:
                    breaker.open_until = min(breaker.open_until, now + self.probe_grace)
            paused = _decode(pause_value)
            if paused is not None and isinstance(pause_ms, int) and pause_ms > 0:
                origin = str(paused.get("o"))
                if origin != self.origin:
                    why = str(paused.get("r") or "")
                    self._apply("pause", name, pause_ms / 1000, why, 0, origin, "reconcile")

    # -- fleet rate limits ----------------------------------------------------------------

    def _limit_key(self, name: str) -> str:
        return f"{self.prefix}rl:{name}"

    async def _limit_call(
        self, name: str, rpm: int, tpm: int, want: int, tokens: int
    ) -> tuple[int, int, int, int]:
        scripts = self._scripts
        if scripts is None:
            raise ConnectionError("not connected")
        raw = await scripts.limit(
            keys=[self._limit_key(name)], args=[rpm, tpm, WINDOW_S, want, tokens]
        )
        admitted, requests, used, wait_ms = (int(x) for x in raw)
        return admitted, requests, used, wait_ms

    async def reserve(self, name: str, rpm: int | None, tpm: int | None) -> tuple[int, ...] | None:
        """Reserve one request in the fleet window: (admitted, requests, tokens, wait ms).

        None when Redis cannot answer now (not connected, another loop, slow or failing): the
        caller counts locally instead. A failure here does not flip ``degraded``; the
        background task's heartbeat owns that.
        """
        if not self._connected or self._loop is not _running_loop():
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await self._limit_call(name, rpm or 0, tpm or 0, 1, 0)
        except Exception as exc:  # fail open: the call must not fail because Redis did
            log.debug("router: fleet limit check failed, counting locally: %r", exc)
            return None

    def add_tokens(self, name: str, tokens: int, rpm: int | None, tpm: int | None) -> None:
        """Count `tokens` in the fleet window, in the background (coalesced per deployment)."""
        if tokens <= 0 or self._closed:
            return
        pending = self._tokens.get(name)
        self._tokens[name] = (tokens + (pending[0] if pending else 0), rpm, tpm)
        self._poke()

    def _after_limit(
        self,
        name: str,
        result: tuple[int, int, int, int],
        rpm: int | None,
        tpm: int | None,
    ) -> None:
        _, requests, used, wait_ms = result
        if wait_ms > 0:
            why = _limit_reason(rpm, tpm, requests, used, fleet=True)
            seconds = wait_ms / 1000
            state = self.get(name)
            state.health.pause(self.clock.now() + seconds, why)
            self.on_pause(name, seconds, why)


def _decode(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(decoded, dict) or decoded.get("v") != PROTOCOL:
        return None
    return decoded


def _limit_reason(rpm: int | None, tpm: int | None, requests: int, used: int, fleet: bool) -> str:
    scope = "fleet " if fleet else ""
    if rpm is not None and requests >= rpm:
        return f"{scope}rpm limit {rpm} reached"
    if tpm is not None and used >= tpm:
        return f"{scope}tpm limit {tpm} reached"
    return f"{scope}rate limit reached"


# --- fleet-wide limits ------------------------------------------------------------------------


class _Window:
    """The same sliding window as the Redis script, in this process: one-second buckets."""

    __slots__ = ("requests", "tokens")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.tokens: dict[int, int] = {}

    @staticmethod
    def _prune(buckets: dict[int, int], sec: int) -> int:
        for s in [s for s in buckets if s <= sec - WINDOW_S]:
            del buckets[s]
        return sum(buckets.values())

    @staticmethod
    def _wait(buckets: dict[int, int], total: int, limit: int, now: float) -> float:
        for s in sorted(buckets):
            total -= buckets[s]
            if total < limit:
                return max(0.0, s + WINDOW_S - now)
        return float(WINDOW_S)

    def check(
        self, now: float, rpm: int | None, tpm: int | None, want: int, tokens: int
    ) -> tuple[int, int, int, int]:
        """(admitted, requests, tokens, wait ms), as the Redis script answers."""
        sec = math.floor(now)
        requests = self._prune(self.requests, sec)
        used = self._prune(self.tokens, sec)
        admitted = 1
        if want:
            if (rpm is not None and requests + want > rpm) or (tpm is not None and used >= tpm):
                admitted = 0
            else:
                self.requests[sec] = self.requests.get(sec, 0) + want
                requests += want
        if tokens:
            self.tokens[sec] = self.tokens.get(sec, 0) + tokens
            used += tokens
        wait = 0.0
        if rpm is not None and requests >= rpm:
            wait = max(wait, self._wait(self.requests, requests, rpm, now))
        if tpm is not None and used >= tpm:
            wait = max(wait, self._wait(self.tokens, used, tpm, now))
        return admitted, requests, used, math.ceil(wait * 1000)


class FleetLimits:
    """Per-deployment RPM/TPM limits, counted in Redis across processes when it can be.

    With a `RedisState` the window is the fleet's; otherwise (memory backend, or Redis not
    answering) it is this process's, against the limit divided by the processes last seen.
    """

    def __init__(self, state: StateStore, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._shared = state if isinstance(state, RedisState) else None
        self._local: dict[str, _Window] = {}

    def _window(self, name: str) -> _Window:
        window = self._local.get(name)
        if window is None:
            window = self._local[name] = _Window()
        return window

    def _share(self, limit: int | None) -> int | None:
        shared = self._shared
        if limit is None or shared is None:
            return limit
        return max(1, limit // max(1, shared.peers))

    async def admit(self, deployment: Deployment) -> None:
        """Reserve one request; raise a 429 (`litellm.RateLimitError`) when over the limit."""
        name, rpm, tpm = deployment.name, deployment.rpm, deployment.tpm
        shared = self._shared
        result = None if shared is None else await shared.reserve(name, rpm, tpm)
        now = self._clock.now()
        window = self._window(name)
        fleet = result is not None
        if result is None:
            result = window.check(now, self._share(rpm), self._share(tpm), 1, 0)
        elif result[0]:
            window.check(now, None, None, 1, 0)  # keep local history for an outage
        admitted, requests, used, wait_ms = result
        if wait_ms > 0:
            limit_rpm = rpm if fleet else self._share(rpm)
            limit_tpm = tpm if fleet else self._share(tpm)
            why = _limit_reason(limit_rpm, limit_tpm, requests, used, fleet=fleet)
            if not fleet and shared is not None:
                why += " (this process's share while Redis is unreachable)"
            seconds = wait_ms / 1000
            state = self._state.get(name)
            # Paused before the engine sees the 429 below, a hair longer than its Retry-After,
            # so the skip reason stays ours ("fleet rpm limit 60 reached").
            state.health.pause(now + seconds, why)
            self._state.on_pause(name, seconds, why)
        if not admitted:
            raise _over_limit(deployment, max(0, wait_ms - 1))

    def used(self, deployment: Deployment, tokens: int) -> None:
        """Count the tokens a response used (fleet-wide in the background)."""
        name = deployment.name
        if deployment.tpm is None or tokens <= 0:
            return
        now = self._clock.now()
        window = self._window(name)
        shared = self._shared
        if shared is not None and shared.connected:
            window.check(now, None, None, 0, tokens)  # local history, for an outage
            shared.add_tokens(name, tokens, deployment.rpm, deployment.tpm)
            return
        share = self._share(deployment.tpm)
        _, requests, used, wait_ms = window.check(now, None, share, 0, tokens)
        if wait_ms > 0:
            why = _limit_reason(None, share, requests, used, fleet=False)
            if shared is not None:
                why += " (this process's share while Redis is unreachable)"
            self._state.get(name).health.pause(now + wait_ms / 1000, why)
            self._state.on_pause(name, wait_ms / 1000, why)


def _over_limit(deployment: Deployment, wait_ms: int) -> BaseException:
    import litellm

    return litellm.RateLimitError(  # type: ignore[no-any-return]
        f"{deployment.name}: rate limit of the fleet reached; not sent",
        llm_provider="router",
        model=deployment.model,
        headers={"retry-after-ms": str(wait_ms)},
    )


def _tokens_of(usage: Any) -> int:
    if usage is None:
        return 0
    total = getattr(usage, "total_tokens", None)
    if isinstance(total, int) and total > 0:
        return total
    prompt = getattr(usage, "prompt_tokens", None) or 0
    completion = getattr(usage, "completion_tokens", None) or 0
    return int(prompt) + int(completion)


class LimitedBackend:
    """A `Transport` that applies ``rpm``/``tpm`` limits before each attempt it forwards.

    `catalogue` counts a stream's prompt tokens (the stream's usage may never arrive)."""

    def __init__(
        self, inner: Transport, catalogue: Catalogue, state: StateStore, clock: Clock
    ) -> None:
        self.inner = inner
        self.catalogue = catalogue
        self.limits = FleetLimits(state, clock)

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        if deployment.rpm is None and deployment.tpm is None:
            return await self.inner.complete(deployment, request, timeout)
        await self.limits.admit(deployment)
        response = await self.inner.complete(deployment, request, timeout)
        self.limits.used(deployment, _tokens_of(getattr(response, "usage", None)))
        return response

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        if deployment.rpm is None and deployment.tpm is None:
            return await self.inner.stream(deployment, request, timeout)
        await self.limits.admit(deployment)
        inner = await self.inner.stream(deployment, request, timeout)
        if deployment.tpm is None:
            return inner
        prompt = self.catalogue.count_tokens(deployment, request.get("messages"))
        return _CountingStream(inner, lambda n: self.limits.used(deployment, n), prompt)


class _CountingStream:
    """Passes a stream through and counts its tokens when it ends: the usage chunk if the
    provider sent one, else the prompt estimate plus ~4 characters per output token."""

    def __init__(self, inner: AsyncIterator[Any], count: Callable[[int], None], prompt: int):
        self._inner = inner
        self._count = count
        self._prompt = prompt
        self._chars = 0
        self._usage = 0
        self._counted = False

    def __aiter__(self) -> _CountingStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._inner.__anext__()
        except BaseException:
            self._finish()
            raise
        usage = _tokens_of(getattr(chunk, "usage", None))
        if usage:
            self._usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if isinstance(content, str):
                self._chars += len(content)
        return chunk

    def _finish(self) -> None:
        if not self._counted:
            self._counted = True
            self._count(self._usage or self._prompt + max(1, self._chars // 4))

    async def aclose(self) -> None:
        self._finish()
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


# --- the shared view (`router health --redis URL`) ---------------------------------------------


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
            report = _decode(replies[2 * i])
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
        opened, paused = _decode(open_value), _decode(pause_value)
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


def _fleet_problem(entry: Mapping[str, Any]) -> str | None:
    if entry["shared_state"] == "open":
        return f"open for {entry['open_for_s']} s, by {entry['opened_by']}"
    bad = {k: v for k, v in entry["states"].items() if k != State.CLOSED.value}
    if bad:
        return ", ".join(f"{k} in {v} process(es)" for k, v in sorted(bad.items()))
    if entry["paused_for_s"] is not None:
        return f"paused for {entry['paused_for_s']} s ({entry['pause_reason']})"
    return None


def print_fleet_view(view: Mapping[str, Any], as_json: bool) -> int:
    """Print `fleet_view`'s result; 0 if processes report and nothing is open or paused."""
    problems = {d["deployment"]: why for d in view["deployments"] if (why := _fleet_problem(d))}
    processes = view["processes"]
    if as_json:
        print(json.dumps({**view, "problems": problems}, indent=2))
        return 1 if problems or not processes else 0
    print(f"{view['redis']} (prefix {view['prefix']!r}): {len(processes)} process(es) reporting")
    for p in processes:
        print(f"  {p['id']}  last report {p['age_s']} s ago")
    columns = (
        "deployment",
        "shared",
        "open for s",
        "paused for s",
        "processes",
        "states",
        "min score",
        "max error",
        "ewma ms",
        "calls",
        "rpm",
        "tpm",
    )
    rows = []
    for d in view["deployments"]:
        rows.append(
            {
                "deployment": d["deployment"],
                "shared": d["shared_state"],
                "open for s": _dash(d["open_for_s"]),
                "paused for s": _dash(d["paused_for_s"]),
                "processes": str(d["processes"]),
                "states": " ".join(f"{k}:{v}" for k, v in sorted(d["states"].items())) or "-",
                "min score": _dash(d["min_score"], ".2f"),
                "max error": "-"
                if d["max_error_rate"] is None
                else f"{100 * d['max_error_rate']:.0f}%",
                "ewma ms": _dash(d["mean_latency_ms"]),
                "calls": str(d["calls"]),
                "rpm": str(d["rpm_used"]),
                "tpm": str(d["tpm_used"]),
            }
        )
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    print("  " + "  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  " + "  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    if not processes:
        print("no router process is reporting to this Redis (prefix right? processes running?)")
        return 1
    verdict = f"{len(rows)} deployment(s), {len(rows) - len(problems)} healthy fleet-wide"
    if problems:
        verdict += "; not healthy: " + "; ".join(f"{n} ({w})" for n, w in problems.items())
    print(verdict)
    return 1 if problems else 0


def _dash(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)
