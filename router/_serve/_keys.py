"""Gateway keys: who may call, and how much (rpm, daily USD budget).

Keys come from ``[[gateway.keys]]`` entries whose ``key`` is an env reference
(``"os.environ/TEAM_A_KEY"``); the values are resolved at start (and on reload) and live only
in this object. A presented key is compared with every configured key in constant time: both
sides are hashed (SHA-256) and compared with `hmac.compare_digest`, and the loop never stops at
the first match, so neither the key's length nor its position leaks through timing. Keys never
appear in logs, errors or metrics; a key is known by its ``name``.

Limits per key, counted where the ``[state]`` table says: in Redis when ``backend = "redis"``
(every replica shares the counts; fixed one-minute windows ``INCR`` + ``EXPIRE`` for rpm, a
per-UTC-day ``INCRBYFLOAT`` for spend), else in this process. Redis trouble fails open to the
local counts (a gateway must not stop serving because its limiter's store blinked).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router._serve._errors import GatewayError

__all__ = ["KeySpec", "Keys"]

_log = logging.getLogger("router.gateway")


@dataclass(frozen=True)
class KeySpec:
    """One gateway key: its name (what logs and metrics show), value and limits."""

    name: str
    value: str
    rpm: int | None = None
    daily_budget_usd: float | None = None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _day(now: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


class _Local:
    """Counts in this process."""

    def __init__(self) -> None:
        self.minutes: dict[str, tuple[int, int]] = {}
        self.spend: dict[str, tuple[str, float]] = {}

    def hit(self, name: str, now: float) -> int:
        minute = int(now // 60)
        current, count = self.minutes.get(name, (minute, 0))
        if current != minute:
            count = 0
        count += 1
        self.minutes[name] = (minute, count)
        return count

    def spent(self, name: str, now: float) -> float:
        day, value = self.spend.get(name, (_day(now), 0.0))
        return value if day == _day(now) else 0.0

    def add(self, name: str, usd: float, now: float) -> None:
        self.spend[name] = (_day(now), self.spent(name, now) + usd)


class Keys:
    """Authenticates requests and enforces each key's rpm and daily budget."""

    def __init__(
        self,
        keys: Sequence[KeySpec] = (),
        admin_key: str | None = None,
        *,
        redis_url: str | None = None,
        prefix: str = "router:",
        timeout: float = 0.25,
    ) -> None:
        self._keys = [(_digest(k.value), k) for k in keys]
        self._admin = None if admin_key is None else _digest(admin_key)
        self._local = _Local()
        self._redis_url = redis_url
        self._prefix = f"{prefix}gateway:"
        self._timeout = timeout
        self._client: Any = None

    @property
    def required(self) -> bool:
        """True when callers must present a key."""
        return bool(self._keys)

    @property
    def has_admin(self) -> bool:
        return self._admin is not None

    @staticmethod
    def presented(headers: Any) -> str | None:
        """The key a request presents: ``Authorization: Bearer K``, else ``x-api-key: K``."""
        auth = headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return str(value.strip())
        value = headers.get("x-api-key")
        return str(value) if value else None

    def authenticate(self, presented: str | None) -> KeySpec | None:
        """The key `presented` matches (constant time), or raise 401. None if keys are off."""
        if not self._keys:
            return None
        if not presented:
            raise GatewayError(
                401,
                "missing gateway key: send 'Authorization: Bearer <key>'",
                "authentication_error",
                "invalid_api_key",
            )
        digest = _digest(presented)
        found: KeySpec | None = None
        for known, spec in self._keys:
            if hmac.compare_digest(known, digest) and found is None:
                found = spec
        if found is None:
            raise GatewayError(
                401, "invalid gateway key", "authentication_error", "invalid_api_key"
            )
        return found

    def is_admin(self, presented: str | None) -> bool:
        """Whether `presented` is the admin key (constant time)."""
        if self._admin is None or not presented:
            return False
        return hmac.compare_digest(self._admin, _digest(presented))

    # -- limits ------------------------------------------------------------------------------

    async def admit(self, key: KeySpec | None) -> None:
        """Count one request against `key`'s rpm; raise 429 if over it or over budget."""
        if key is None or (key.rpm is None and key.daily_budget_usd is None):
            return
        now = time.time()
        count: int | None = None
        spent: float | None = None
        client = await self._redis()
        if client is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    count, spent = await self._redis_admit(client, key, now)
            except Exception as exc:  # fail open to local counts
                _log.warning("gateway key limits: Redis unavailable (%s)", type(exc).__name__)
                count = spent = None
        if count is None:
            count = self._local.hit(key.name, now) if key.rpm is not None else 0
        if spent is None:
            spent = self._local.spent(key.name, now)
        if key.rpm is not None and count > key.rpm:
            wait = 60 - (now % 60)
            raise GatewayError(
                429,
                f"key '{key.name}': rpm limit {key.rpm} reached",
                "rate_limit_error",
                "rate_limit_exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        if key.daily_budget_usd is not None and spent >= key.daily_budget_usd:
            wait = 86400 - (now % 86400)
            raise GatewayError(
                429,
                f"key '{key.name}': daily budget ${key.daily_budget_usd:g} spent",
                "rate_limit_error",
                "budget_exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def spend(self, key: KeySpec | None, usd: float) -> None:
        """Add a served call's cost to `key`'s spend today."""
        if key is None or key.daily_budget_usd is None or usd <= 0:
            return
        now = time.time()
        client = await self._redis()
        if client is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    name = f"{self._prefix}{key.name}:usd:{_day(now)}"
                    pipe = client.pipeline(transaction=False)
                    pipe.incrbyfloat(name, usd)
                    pipe.expire(name, 2 * 86400)
                    await pipe.execute()
                    return
            except Exception as exc:
                _log.warning("gateway key spend: Redis unavailable (%s)", type(exc).__name__)
        self._local.add(key.name, usd, now)

    async def _redis_admit(self, client: Any, key: KeySpec, now: float) -> tuple[int, float]:
        pipe = client.pipeline(transaction=False)
        minute = f"{self._prefix}{key.name}:rpm:{int(now // 60)}"
        if key.rpm is not None:
            pipe.incr(minute)
            pipe.expire(minute, 120)
        pipe.get(f"{self._prefix}{key.name}:usd:{_day(now)}")
        result = await pipe.execute()
        count = int(result[0]) if key.rpm is not None else 0
        raw = result[-1]
        return count, float(raw) if raw is not None else 0.0

    async def _redis(self) -> Any:
        if self._redis_url is None:
            return None
        if self._client is None:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self._redis_url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
            )
        return self._client

    def adopt(self, old: Keys) -> None:
        """Keep `old`'s counts (and Redis client) across a reload."""
        self._local = old._local
        if self._redis_url == old._redis_url:
            self._client = old._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
