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
- **One streak**: each change of a breaker's failure streak here (a failure, or the success
  that ends a streak) is published (a plain PUBLISH: no key, nothing on the call path), and
  the breaker counts the peers' current streaks with its own (router._breaker), so the fleet
  trips a dead deployment after about ``breaker_consecutive_failures`` failures in all, where
  each process paid its own five before (README: three processes, one call each every 20 ms,
  spent about twice a single process's calls finding out). A peer's streak counts for
  `STREAK_TTL_S` after its last word; a trip or close anywhere resets them.
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

Fleet-wide RPM/TPM limits (router._limits: `FleetLimits`, `LimitedBackend`): for deployments
that set ``rpm``
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
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from router._breaker import State, Transition
from router._clock import SystemClock
from router._limits import WINDOW_S, _limit_reason
from router._redact import safe_url
from router._redis_peers import apply, publish, receive, reconcile, report
from router._redis_protocol import PeerEvent, _Scripts
from router._state import DeploymentHealth, DeploymentState, snapshot_of

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from router._clock import Clock
    from router._config import StateSettings

__all__ = [
    "HEARTBEAT_S",
    "PeerEvent",
    "RedisState",
    "SharedDeploymentHealth",
]

log = logging.getLogger("router")

# The C accessor, bound once: cheap enough for every `get()` (tens of nanoseconds) and it
# returns None instead of raising outside a loop.
_running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio.events._get_running_loop

HEARTBEAT_S: Final = 1.0
"""How often the background task writes this process's health summary (and so checks Redis)."""
_RECONNECT_MIN_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class SharedDeploymentHealth(DeploymentHealth):
    """A `DeploymentHealth` from a shared store: what it adds about sharing."""

    degraded: bool = False
    """Redis was unreachable at snapshot time: this is one process's local view only."""
    from_peer: str | None = None
    """The peer whose breaker or pause this process applied, when one is in force."""


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
        share_streaks: bool = True,
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
        # Peers' failure streaks: deployment -> origin -> (failures, expiry on our clock).
        self._streaks: dict[str, dict[str, tuple[int, float]]] = {}
        self.share_streaks = share_streaks
        """Publish failure streaks and count the peers' (False: the trip rule per process,
        as before streaks were shared; for measurements)."""
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
        self._streaks.pop(transition.deployment, None)
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
        if self.share_streaks:
            state.breaker.on_streak = self._on_streak
        return state

    def _on_streak(self, deployment: str, failures: int) -> None:
        self._mark(deployment, "streak")

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
            receive(self, message.get("data"))

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
                        await publish(self, *key)
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
                await report(self)
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + self.reconcile_interval
                async with asyncio.timeout(self.timeout * 4):
                    await reconcile(self)

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
            await reconcile(self)
            await report(self)
        if self._wake is not None:
            self._wake.set()

    # -- applying peers' state (the rules: router._redis_peers) ----------------------------

    def _receive(self, data: Any) -> None:
        receive(self, data)

    def _apply(
        self, kind: str, name: str, seconds: float, reason: str, trips: int, origin: str, via: str
    ) -> str:
        return apply(self, kind, name, seconds, reason, trips, origin, via)

    async def _reconcile(self) -> None:
        await reconcile(self)

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
