"""The sharing rules of `RedisState`, applied directly: no Redis server, a fake clock.

A store that is never used on a running event loop never starts its background task, so
`_apply` and `_receive` can be driven by hand: what a peer's message does to local state.
"""

from __future__ import annotations

import json

import pytest

from router import Router
from router._breaker import State, Transition
from router._config import Config, ConfigError
from router._limits import WINDOW_S, _Window
from router._loading import load_config
from router._redact import safe_url
from router._redis_protocol import PROTOCOL
from router._redis_state import PeerEvent, RedisState, SharedDeploymentHealth
from router.testing import FakeClock

GRACE = 1.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> RedisState:
    return RedisState(
        "redis://127.0.0.1:1/0",
        clock=clock,
        probe_grace=GRACE,
        deployments=["a", "b"],
        origin="me",
        seed=0,
    )


def message(kind: str, name: str = "a", seconds: float = 10.0, origin: str = "peer") -> str:
    return json.dumps(
        {"v": PROTOCOL, "o": origin, "k": kind, "d": name, "s": seconds, "r": "why", "n": 2}
    )


def test_a_peer_open_opens_ours_for_its_time_plus_the_grace(
    store: RedisState, clock: FakeClock
) -> None:
    store._receive(message("open", seconds=10.0))
    breaker = store.get("a").breaker
    assert breaker.state is State.OPEN
    assert breaker.open_until == pytest.approx(clock.now() + 10.0 + GRACE)
    assert breaker.trips == 2  # the peer's count of consecutive trips
    (entry,) = [h for h in store.snapshot(clock.now()) if h.deployment == "a"]
    assert isinstance(entry, SharedDeploymentHealth)
    assert entry.from_peer == "peer" and not entry.degraded


def test_own_and_malformed_and_foreign_version_messages_are_ignored(store: RedisState) -> None:
    store._receive(message("open", origin="me"))
    store._receive(b"not json")
    store._receive(json.dumps({"v": PROTOCOL + 1, "o": "x", "k": "open", "d": "a", "s": 5}))
    store._receive(json.dumps({"v": PROTOCOL, "k": "open"}))  # no origin
    assert store.get("a").breaker.state is State.CLOSED


def test_an_open_breaker_is_only_ever_lengthened(store: RedisState, clock: FakeClock) -> None:
    breaker = store.get("a").breaker
    breaker.force_open(clock.now(), 60.0, "own evidence")
    assert store._apply("open", "a", 5.0, "short", 1, "peer", "pubsub") == "ignored"
    assert breaker.open_until == pytest.approx(clock.now() + 60.0)
    assert store._apply("open", "a", 100.0, "long", 1, "peer", "pubsub") == "extended"
    assert breaker.open_until == pytest.approx(clock.now() + 100.0 + GRACE)
    # Still our own evidence: a peer's close will not close it outright.
    assert "a" not in store._peer_open


def test_a_peer_open_never_takes_over_our_probe_in_flight(
    store: RedisState, clock: FakeClock
) -> None:
    breaker = store.get("a").breaker
    breaker.force_open(clock.now(), 1.0, "own")
    clock.advance(2.0)
    breaker.admit(clock.now())  # the open period is over: we probe
    assert breaker.state is State.HALF_OPEN and breaker.probe_out
    assert store._apply("open", "a", 30.0, "peer tripped", 1, "peer", "pubsub") == "ignored"
    assert breaker.state is State.HALF_OPEN and breaker.probe_out


def test_a_peer_close_closes_only_what_a_peer_opened(store: RedisState, clock: FakeClock) -> None:
    store._receive(message("open", name="a"))
    own = store.get("b").breaker
    own.force_open(clock.now(), 30.0, "own evidence")
    store._receive(message("close", name="a"))
    store._receive(message("close", name="b"))
    a = store.get("a").breaker
    assert a.state is State.CLOSED and a.trips == 0 and "a" not in store._peer_open
    # Our own evidence is not overridden: the breaker is due for its probe now.
    assert own.state is State.OPEN and own.open_until == clock.now()
    assert own.admit(clock.now())[0].value == "probe"


def test_a_peers_probe_makes_us_wait_for_its_verdict(store: RedisState, clock: FakeClock) -> None:
    store._receive(message("open", seconds=1.0))
    clock.advance(1.5)
    store._receive(message("half_open", seconds=0.0))
    assert store.get("a").breaker.open_until == pytest.approx(clock.now() + GRACE)


def test_a_local_transition_makes_the_breaker_ours_again(
    store: RedisState, clock: FakeClock
) -> None:
    store._receive(message("open", seconds=1.0))
    assert store._peer_open == {"a": "peer"}
    breaker = store.get("a").breaker
    clock.advance(3.0)
    _, transition = breaker.admit(clock.now())  # our own probe now
    assert transition is not None
    store.on_transition(transition)
    assert store._peer_open == {}
    assert ("a", "breaker") in store._dirty  # published when connected


def test_a_peer_pause_pauses_us_with_the_reason(store: RedisState, clock: FakeClock) -> None:
    store._apply("pause", "a", 5.0, "rate-limited for 5 s", 0, "peer", "pubsub")
    store._apply("pause", "b", 5.0, "fleet rpm limit 60 reached", 0, "peer", "pubsub")
    health = store.get("a").health
    assert health.paused(clock.now()) and health.paused_until == clock.now() + 5.0
    assert health.paused_why == "peer: rate-limited for 5 s"
    assert store.get("b").health.paused_why == "fleet rpm limit 60 reached"
    (entry,) = [h for h in store.snapshot(clock.now()) if h.deployment == "a"]
    assert isinstance(entry, SharedDeploymentHealth) and entry.from_peer == "peer"


def test_listeners_hear_every_applied_message(store: RedisState) -> None:
    heard: list[PeerEvent] = []
    store.listeners.append(heard.append)
    store._receive(message("open"))
    store._receive(message("open", seconds=1.0))
    assert [(e.kind, e.effect, e.via) for e in heard] == [
        ("open", "opened", "pubsub"),
        ("open", "ignored", "pubsub"),
    ]


def test_unknown_deployments_from_peers_are_kept_for_later(store: RedisState) -> None:
    store._receive(message("open", name="zeta"))
    assert store.get("zeta").breaker.state is State.OPEN


def test_on_pause_and_on_transition_never_touch_redis_on_the_call_path(
    store: RedisState, clock: FakeClock
) -> None:
    # No loop, no task: the hot-path hooks only mark state dirty.
    store.on_pause("a", 2.0, "rate-limited for 2 s")
    store.on_transition(Transition("b", State.CLOSED, State.OPEN, clock.now(), "5 failures", 30.0))
    assert list(store._dirty) == [("a", "pause"), ("b", "breaker")]
    assert store._task is None and not store.connected and not store.degraded


def test_the_local_window_counts_sixty_one_second_buckets() -> None:
    window = _Window()
    now = 100.0
    results = [window.check(now + i * 0.1, 3, None, 1, 0) for i in range(4)]
    assert [r[0] for r in results] == [1, 1, 1, 0]
    # The third request filled the window: it says how long until a slot frees.
    assert results[2][3] == pytest.approx((100 + WINDOW_S - 100.2) * 1000, abs=1)
    assert window.check(100.0 + WINDOW_S, 3, None, 1, 0)[0] == 1  # the first bucket left
    tokens = _Window()
    assert tokens.check(0.0, None, 10, 0, 12)[3] > 0  # over the tpm: wait
    assert tokens.check(1.0, None, 10, 1, 0)[0] == 0  # and no request is admitted


def test_urls_are_shown_without_their_password() -> None:
    assert safe_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert safe_url("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert safe_url("redis://host:6379") == "redis://host:6379"


# --- config -----------------------------------------------------------------------------------

BASE = {"deployments": [{"name": "a", "model": "openai/a"}]}


def test_state_defaults_to_memory_and_redis_needs_a_url() -> None:
    config = Config.from_dict(BASE)
    assert config.state.backend == "memory" and config.state.key_prefix == "router:"
    with pytest.raises(ConfigError, match=r"state: backend 'redis' needs a url"):
        Config.from_dict({**BASE, "state": {"backend": "redis"}})


def test_state_rejects_unknown_keys_and_foreign_urls_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(
            {**BASE, "state": {"backend": "redis", "url": "http://:pw@h", "prefix": "x"}}
        )
    text = str(info.value)
    assert "state.url: must start with redis://" in text
    assert "unknown key 'prefix' (did you mean 'key_prefix'?)" in text
    assert "pw@" not in text


def test_deployment_limits_validate() -> None:
    with pytest.raises(ConfigError, match=r"rpm: must be a whole number > 0"):
        Config.from_dict({"deployments": [{"name": "a", "model": "m", "rpm": 0}]})
    config = Config.from_dict({"deployments": [{"name": "a", "model": "m", "rpm": 5, "tpm": 9}]})
    assert (config.deployments[0].rpm, config.deployments[0].tpm) == (5, 9)


def test_state_comes_from_toml_and_env_and_builds_the_store(tmp_path, monkeypatch) -> None:
    path = tmp_path / "providers.toml"
    path.write_text(
        '[state]\nbackend = "redis"\nurl = "os.environ/TEST_REDIS_URL"\n'
        '[[deployments]]\nname = "a"\nmodel = "openai/a"\n'
    )
    env = {"ROUTER_STATE__KEY_PREFIX": "fleet1:", "TEST_REDIS_URL": "redis://127.0.0.1:1/2"}
    config = load_config(path, env=env)
    assert config.state.key_prefix == "fleet1:"
    assert config.state.resolve_url(env=env) == "redis://127.0.0.1:1/2"
    with pytest.raises(ConfigError, match="TEST_REDIS_URL is not set"):
        config.state.resolve_url(env={})
    monkeypatch.setenv("TEST_REDIS_URL", "redis://127.0.0.1:1/2")
    router = Router(config, telemetry=False)
    assert isinstance(router.state, RedisState)
    assert router.state.prefix == "fleet1:" and router.state.url.endswith("/2")
    assert [h.deployment for h in router.health()] == ["a"]


def streak(failures: int, origin: str = "peer", name: str = "a") -> str:
    return json.dumps({"v": PROTOCOL, "o": origin, "k": "streak", "d": name, "s": 0, "r": "",
                       "n": failures})  # fmt: skip


def test_peers_streaks_add_up_for_our_breaker_until_a_trip_or_they_expire(
    store: RedisState, clock: FakeClock
) -> None:
    from router._redis_peers import STREAK_TTL_S

    breaker = store.get("a").breaker
    assert breaker.on_streak is not None  # ours are published
    store._receive(streak(2, "p1"))
    store._receive(streak(1, "p2"))
    store._receive(streak(2, "p1"))  # the latest word of each peer, not a running sum
    assert breaker.peer_failures == 3
    store._receive(streak(0, "p2"))  # p2's streak ended with a success
    assert breaker.peer_failures == 2
    store._receive(message("open", seconds=1.0, origin="p3"))
    assert breaker.peer_failures == 0  # a trip anywhere consumes the fleet's streak
    other = store.get("b").breaker
    store._receive(streak(4, "p1", name="b"))
    assert other.peer_failures == 4
    clock.advance(STREAK_TTL_S + 0.1)
    assert other.record(False, clock.now()) is None  # the peer's word is stale now
    assert other.consecutive_failures == 1


def test_streaks_can_be_kept_per_process() -> None:
    store = RedisState("redis://127.0.0.1:1/0", deployments=["a"], share_streaks=False)
    assert store.get("a").breaker.on_streak is None
