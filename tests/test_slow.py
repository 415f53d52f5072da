"""Slow is a failure mode: slowness against a deployment's own baseline and its peers.

Unit tests of router._health.LatencyTrack and the selector's demotion of degraded deployments
(router._select), with fake state and no clock but the `now` arguments.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from router._config import BalancedWeights, Config, Deployment
from router._health import SLOW_FACTOR, LatencyTrack
from router._select import PROBE_INTERVAL_S, Selector
from router._state import MemoryState
from router.testing import FakeBackend, FakeClock


def setup(prices: dict[str, float]) -> tuple[Selector, list[Deployment], MemoryState]:
    config = Config.from_dict(
        {
            "deployments": [
                {
                    "name": name,
                    "model": f"openai/{name}",
                    "groups": ["g"],
                    "input_cost_per_token": price,
                    "output_cost_per_token": price,
                }
                for name, price in prices.items()
            ]
        }
    )
    state = MemoryState()
    return (
        Selector(FakeBackend(FakeClock()), state, random.Random(0)),
        config.deployments_in("g"),
        state,
    )


def feed(state: MemoryState, name: str, seconds: float, n: int, at: float = 0.0, **kw: Any) -> None:
    for _ in range(n):
        state.get(name).health.observe_latency(seconds, at, **kw)


def ranked(selector: Selector, deployments: list[Deployment], now: float, **kw: Any) -> list[str]:
    return [d.name for d, _ in selector.rank("cost", deployments, now, BalancedWeights(), **kw)]


def test_three_slow_calls_make_a_deployment_slow_and_three_fast_ones_bring_it_back() -> None:
    track = LatencyTrack()
    for _ in range(30):
        track.observe(0.010)
    assert track.slowness() == pytest.approx(1.0)
    for _ in range(2):
        track.observe(0.200)
    assert track.slowness() < SLOW_FACTOR  # two slow calls of five are noise
    track.observe(0.200)
    assert track.slowness() >= SLOW_FACTOR
    for _ in range(3):
        track.observe(0.010)
    assert track.slowness() < SLOW_FACTOR


def test_the_baseline_is_long_run_a_brownout_does_not_become_normal_quickly() -> None:
    track = LatencyTrack()
    for _ in range(50):
        track.observe(0.010)
    for _ in range(60):
        track.observe(0.150)
    assert track.typical is not None and track.typical < 0.03
    assert track.slowness() > 5


def test_a_lower_bound_counts_as_recent_evidence_but_not_towards_the_baseline() -> None:
    track = LatencyTrack()
    for _ in range(20):
        track.observe(0.010)
    typical = track.typical
    for _ in range(3):
        track.observe(1.0, completed=False)
    assert track.typical == typical
    assert track.slowness() > 50


def test_hung_after_is_far_past_the_deployments_own_p99() -> None:
    track = LatencyTrack()
    assert track.hung_after() is None
    for i in range(40):
        track.observe(0.010 + 0.0005 * i)
    hung = track.hung_after()
    assert hung is not None and hung >= 4 * 0.0295 and hung >= 0.0295 + 0.05


def test_a_slow_cheap_deployment_is_demoted_behind_a_faster_one() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7, "c": 5e-7})
    for name, latency in (("a", 0.010), ("b", 0.020), ("c", 0.030)):
        feed(state, name, latency, 20)
    assert ranked(selector, deployments, 0.0) == ["a", "b", "c"]
    feed(state, "a", 0.200, 3)
    state.get("a").health.next_probe = 100.0  # not due a probe
    assert ranked(selector, deployments, 1.0) == ["b", "c", "a"]


def test_a_degraded_deployment_gets_one_probe_per_interval() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    feed(state, "a", 0.010, 20)
    feed(state, "b", 0.020, 20)
    feed(state, "a", 0.200, 3)
    firsts = [ranked(selector, deployments, 10.0 + i * 0.01)[0] for i in range(50)]
    assert firsts.count("a") == 1 and firsts[0] == "a"  # 0.5 s of calls: one probe
    later = ranked(selector, deployments, 10.0 + PROBE_INTERVAL_S + 0.01)
    assert later[0] == "a"


def test_a_probe_at_normal_speed_makes_the_next_call_a_probe_too() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    feed(state, "a", 0.010, 20)
    feed(state, "b", 0.020, 20)
    feed(state, "a", 0.200, 3)
    assert ranked(selector, deployments, 10.0)[0] == "a"  # the probe
    feed(state, "a", 0.010, 1)  # it answered fast
    assert ranked(selector, deployments, 10.01)[0] == "a"
    feed(state, "a", 0.010, 2)
    assert not selector.degraded(deployments[0], deployments, False)


def test_no_demotion_when_nothing_is_faster() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    feed(state, "a", 0.010, 20)
    feed(state, "b", 0.300, 20)
    feed(state, "a", 0.100, 3)  # 10x its own normal, still three times faster than b
    state.get("a").health.next_probe = 100.0
    assert ranked(selector, deployments, 1.0) == ["a", "b"]


def test_a_young_deployment_is_judged_by_its_peers_until_time_shows_its_own_pace() -> None:
    # a has no history (a second region behind a cheaper first); b's typical is 20 ms. a's
    # first answers take 100 ms: against the group's normal that is a slowdown, however many
    # slow answers arrive at once (a burst would teach a count-based baseline the slowdown as
    # a's normal), until time says it is a's pace: the peers' figure fades like a peak EWMA's
    # old value, exp(-age / 10 s).
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    a = deployments[0]
    feed(state, "b", 0.020, 20)
    feed(state, "a", 0.100, 12, at=100.0)
    assert selector.baseline(a, deployments, False, 100.0) == pytest.approx(0.020)
    assert selector.degraded(a, deployments, False, 100.0)
    at = 104.0  # w = exp(-0.4): 20^0.67 * 100^0.33 = 34 ms, 2.9x: its own pace now
    assert selector.baseline(a, deployments, False, at) == pytest.approx(
        0.020 ** math.exp(-0.4) * 0.100 ** (1 - math.exp(-0.4))
    )
    assert not selector.degraded(a, deployments, False, at)
    assert selector.baseline(a, deployments, False, 131.0) == pytest.approx(0.100)  # grown up


def test_a_cold_deployment_borrows_the_most_lenient_peer_baseline() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7, "c": 3e-7})
    a = deployments[0]
    feed(state, "b", 0.020, 20)
    feed(state, "c", 0.040, 20)
    assert selector.baseline(a, deployments, False, 100.0) == pytest.approx(0.040)  # c's
    feed(state, "a", 0.100, 3, at=100.0)  # 2.5x c's normal: under 3x the slowest peer's
    assert not selector.degraded(a, deployments, False, 100.0)
    assert selector.baseline(a, [a], False, 100.0) is None  # no peer knows either
    assert not selector.degraded(a, [a], False, 100.0)


def test_a_brownout_on_a_cold_second_region_moves_its_traffic() -> None:
    # The brownout of issue 11: both of A's regions are 15x slower; a2 had no history (all
    # traffic went to a), b has none either (nothing failed over yet). a is degraded against
    # its own baseline, a2 against the group's, and b takes the traffic; before the rule a2's
    # first samples became its normal and it kept the traffic.
    selector, deployments, state = setup({"a": 1e-7, "a2": 1e-7, "b": 2.5e-7})
    feed(state, "a", 0.012, 40)
    feed(state, "a", 0.180, 3, at=100.0)
    feed(state, "a2", 0.180, 12, at=100.0)  # a burst of slow answers: still not its normal
    for name in ("a", "a2"):
        state.get(name).health.next_probe = 1000.0  # not due a probe
    assert ranked(selector, deployments, 100.5) == ["b", "a", "a2"]


def test_a_cold_deployments_attempt_is_overdue_past_its_peers_p99() -> None:
    # The first attempt on a cold a2 is still out 300 ms in; a's typical is 12 ms, so a2 is
    # slow past max(3 x 12 ms, 12 + 50 ms) = 62 ms (`slow_after`, its stand-in p99) and seen
    # slow before any of its slow attempts came back, as a warm deployment would be.
    selector, deployments, state = setup({"a": 1e-7, "a2": 1e-7, "b": 2.5e-7})
    a2 = deployments[1]
    feed(state, "a", 0.012, 40)
    assert selector.slow_after(a2, deployments, False, 100.0) == pytest.approx(0.062)
    assert selector.slow_after(deployments[0], deployments, False, 100.0) is None  # own p99
    state.get("a2").health.calls_track.begin(100.0)
    # 50 ms out: not slow yet; expected as the group normally takes (a's 12 ms)
    assert selector.expected_latency(a2, False, 100.05, peers=deployments) == pytest.approx(0.012)
    assert not selector.degraded(a2, deployments, False, 100.05)
    assert selector.expected_latency(a2, False, 100.3, peers=deployments) == pytest.approx(0.3)
    assert selector.expected_latency(a2, False, 100.3) is None  # without peers: nothing known
    assert selector.degraded(a2, deployments, False, 100.3)


def test_streams_are_judged_on_time_to_first_chunk_apart_from_whole_calls() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    for name, latency in (("a", 0.010), ("b", 0.020)):
        feed(state, name, latency, 20)
        feed(state, name, latency, 20, first_chunk=True)
    feed(state, "a", 0.300, 3, first_chunk=True)
    state.get("a").health.next_probe = 100.0
    assert ranked(selector, deployments, 1.0, first_chunk=True) == ["b", "a"]
    assert ranked(selector, deployments, 1.0) == ["a", "b"]


def test_a_peers_baseline_fades_with_the_tracks_age_like_a_peak_ewma() -> None:
    track = LatencyTrack()
    assert track.blended(0.020, 5.0, 10.0) == pytest.approx(0.020)  # no sample: the prior
    assert track.young(5.0, 10.0)
    for _ in range(12):
        track.observe(0.080, now=5.0)
    for age in (0.0, 1.0, 10.0, 30.0):
        w = math.exp(-age / 10.0)
        assert track.blended(0.020, 5.0 + age, 10.0) == pytest.approx(0.020**w * 0.080 ** (1 - w))
    assert track.young(34.0, 10.0) and not track.young(35.0, 10.0)
    assert track.blended(0.020, None, 10.0) == pytest.approx(0.020)  # latest sample's time


def test_an_attempt_still_out_past_the_p99_is_a_lower_bound_on_latency_now() -> None:
    track = LatencyTrack()
    assert track.overdue(5.0, 0.05) == 0.0  # nothing out
    cold = track.begin(5.0)
    assert track.overdue(5.3) == 0.0  # no p99 of its own: not evidence
    assert track.overdue(5.3, 0.05) == pytest.approx(0.3)  # a peer's p99 stands in
    track.end(cold)
    for i in range(20):
        track.observe(0.010 + 0.0001 * i)
    assert track.overdue(5.3, 1.0) == 0.0  # its own p99 (~12 ms) takes over
    token = track.begin(5.0)
    assert track.age(5.3) == pytest.approx(0.3)
    assert track.overdue(5.005) == 0.0  # within its own normal spread: not evidence
    assert track.overdue(5.3) == pytest.approx(0.3)
    track.end(token)
    assert track.age(5.3) == 0.0 and track.overdue(5.3) == 0.0


def test_the_oldest_attempt_still_out_is_the_one_that_counts() -> None:
    track = LatencyTrack()
    first = track.begin(1.0)
    second = track.begin(2.0)
    assert track.age(3.0) == pytest.approx(2.0)
    track.end(first)
    assert track.age(3.0) == pytest.approx(1.0)
    track.end(second)
    assert track.age(3.0) == 0.0


def test_a_deployment_is_demoted_while_its_first_slow_attempt_is_still_out() -> None:
    # No slow attempt has come back yet (a hang, or the start of a brownout): the one still
    # out, three hundred milliseconds past a normal 10 ms, is enough.
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    feed(state, "a", 0.010, 20)
    feed(state, "b", 0.020, 20)
    state.get("a").health.next_probe = 100.0  # not due a probe
    state.get("a").health.calls_track.begin(10.0)
    assert ranked(selector, deployments, 10.005) == ["a", "b"]  # 5 ms out: nothing yet
    assert ranked(selector, deployments, 10.3) == ["b", "a"]
    assert selector.expected_latency(deployments[0], False, 10.3) == pytest.approx(0.3)
    # Without `now` (no view of attempts still out) the old rule holds: not degraded.
    assert not selector.degraded(deployments[0], deployments, False)


def test_an_attempt_still_out_on_a_stream_counts_against_its_first_chunk_only() -> None:
    selector, deployments, state = setup({"a": 1e-7, "b": 2e-7})
    for name, latency in (("a", 0.010), ("b", 0.020)):
        feed(state, name, latency, 20)
        feed(state, name, latency, 20, first_chunk=True)
    state.get("a").health.next_probe = 100.0
    state.get("a").health.ttft_track.begin(10.0)
    assert ranked(selector, deployments, 10.5, first_chunk=True) == ["b", "a"]
    assert ranked(selector, deployments, 10.5) == ["a", "b"]
