"""The Redis wire protocol of the shared state: message version, key values, Lua scripts.

Shared by the store (router._redis_state), the rules that apply peers' state
(router._redis_peers) and the fleet limiter's Redis window (router._limits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript


__all__ = ["PROTOCOL", "PeerEvent", "decode"]

PROTOCOL: Final = 1
"""Version of the messages and keys; a process ignores messages of another version."""
MISSING: Final = -2  # PTTL of a key that does not exist

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


class _Scripts:
    """The Lua scripts, registered once per connection (EVALSHA, loaded again if flushed)."""

    def __init__(self, client: Redis) -> None:
        self.put: AsyncScript = client.register_script(_PUT)
        self.close: AsyncScript = client.register_script(_CLOSE)
        self.report: AsyncScript = client.register_script(_REPORT)
        self.limit: AsyncScript = client.register_script(_LIMIT)


def decode(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(decoded, dict) or decoded.get("v") != PROTOCOL:
        return None
    return decoded


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
