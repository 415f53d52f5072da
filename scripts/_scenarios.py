"""The scenario library of ``scripts/bench_scenarios.py``: seeded, randomized fault schedules.

The world is four simulated OpenAI-compatible deployments of three providers:

==  ==========================================  ==============  ============================
a   provider A, cheap and fast: 8-12 ms          $0.10 / $0.40   per 1M input / output tokens
a2  provider A's second deployment (region):     $0.10 / $0.40   shares A's key (a key-wide
    10-14 ms                                                     limit hits both)
b   provider B, mid-priced and a little flaky:   $0.25 / $1.00
    18-22 ms, 3 % 503, 2 % 429 (Retry-After 1 s)
c   provider C, dear and steady: 28-32 ms        $0.50 / $2.00
==  ==========================================  ==============  ============================

A scenario is a list of `Step`s, each changing some deployments' knobs at a time (seconds from
the start of a system's run), plus what a fair judge needs: whether calls stream, when the hit
deployment recovered (for the cheap provider's share after recovery), and which deployments
were hit. Every generator draws its magnitudes, timings and target from ``random.Random(seed)``
within ranges, so a seed fixes a scenario and unseen seeds are unseen scenarios of the kind.

The oracle (`oracle_cost`) knows the future draws: at each arrival it serves the request on the
cheapest deployment whose draw is not a failure, going down the price list, so its expected
cost is ``sum_i price_i * ok_i * prod_{j<i}(1 - ok_j)`` over the deployments sorted by price,
where ``ok`` is the chance the deployment answers well and promptly under the knobs then in
force (an outage, hang, cut stream, or a latency / first-token / drip far above its baseline
gives 0; error and 429 rates give ``1 - rate``). It is a lower bound no router can reach.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEPLOYMENTS = ("a", "a2", "b", "c")
CHEAP = frozenset({"a", "a2"})
"""The cheap provider's deployments: its share after recovery is reported."""
PROVIDER_OF: Mapping[str, str] = {"a": "A", "a2": "A", "b": "B", "c": "C"}
# USD per input token, per output token.
PRICES: Mapping[str, tuple[float, float]] = {
    "a": (1e-7, 4e-7),
    "a2": (1e-7, 4e-7),
    "b": (2.5e-7, 1e-6),
    "c": (5e-7, 2e-6),
}
B_ERROR_RATE = 0.03
B_429_RATE = 0.02
BASE_KNOBS: Mapping[str, Mapping[str, Any]] = {
    "a": {"latency_ms": 8.0, "latency_jitter_ms": 4.0, "chunk_delay_ms": 2.0},
    "a2": {"latency_ms": 10.0, "latency_jitter_ms": 4.0, "chunk_delay_ms": 2.0},
    "b": {
        "latency_ms": 18.0,
        "latency_jitter_ms": 4.0,
        "chunk_delay_ms": 2.0,
        # The fleet draws the 429 first, then the error among the rest.
        "error_rate": B_ERROR_RATE / (1.0 - B_429_RATE),
        "error_status": 503,
        "rate_limit_rate": B_429_RATE,
        "retry_after_s": 1.0,
    },
    "c": {"latency_ms": 28.0, "latency_jitter_ms": 4.0, "chunk_delay_ms": 2.0},
}
_SLOW_FACTOR = 4.0
"""A deployment this many times slower than its baseline is not fit for the oracle."""
_STREAM_CHUNKS = 5


@dataclass(frozen=True)
class Step:
    """From `at` seconds into the run, these knobs apply (on top of what was set before)."""

    at: float
    knobs: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """One seeded fault schedule (see the module docstring)."""

    kind: str
    seed: int
    duration: float
    description: str
    steps: tuple[Step, ...]
    stream: bool = False
    recovered_at: float | None = None
    """When the last fault on a deployment ended (None: no recovery in the run)."""
    hit: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}#{self.seed}"

    def knobs_at(self, t: float) -> dict[str, dict[str, Any]]:
        """Every deployment's knobs in force at `t` (base knobs plus the steps so far)."""
        state = {d: dict(BASE_KNOBS[d]) for d in DEPLOYMENTS}
        for step in self.steps:
            if step.at > t:
                break
            for name, values in step.knobs.items():
                state[name].update(values)
        return state


def healthy(name: str) -> dict[str, Any]:
    """Knobs that undo every fault a generator sets on `name`."""
    base = BASE_KNOBS[name]
    return {
        "outage": None,
        "hang": False,
        "latency_ms": base["latency_ms"],
        "latency_jitter_ms": base["latency_jitter_ms"],
        "first_chunk_delay_ms": 0.0,
        "chunk_delay_ms": base["chunk_delay_ms"],
        "cut_stream_after": None,
        "error_rate": base.get("error_rate", 0.0),
        "rate_limit_rate": base.get("rate_limit_rate", 0.0),
        "retry_after_s": base.get("retry_after_s", 1.0),
    }


def ok_chance(knobs: Mapping[str, Any], name: str, stream: bool) -> float:
    """The chance a request to `name` under `knobs` is answered well and promptly."""
    base = BASE_KNOBS[name]
    if knobs.get("outage") is not None or knobs.get("hang"):
        return 0.0
    latency = float(knobs["latency_ms"]) + float(knobs["latency_jitter_ms"]) / 2
    normal = float(base["latency_ms"]) + float(base["latency_jitter_ms"]) / 2
    if stream:
        latency += float(knobs.get("first_chunk_delay_ms", 0.0))
        drip = float(knobs.get("chunk_delay_ms", 1.0)) * (_STREAM_CHUNKS - 1)
        latency += drip
        normal += float(base["chunk_delay_ms"]) * (_STREAM_CHUNKS - 1)
        if knobs.get("cut_stream_after") is not None:
            return 0.0
    tail = float(knobs.get("slow_rate", 0.0) or 0.0) * float(knobs.get("slow_ms", 0.0) or 0.0)
    if latency + tail > _SLOW_FACTOR * normal:
        return 0.0
    rate_limited = float(knobs.get("rate_limit_rate", 0.0))
    errors = float(knobs.get("error_rate", 0.0))
    return (1.0 - rate_limited) * (1.0 - errors)


def _call_price(name: str, usage: tuple[int, int]) -> float:
    cin, cout = PRICES[name]
    return usage[0] * cin + usage[1] * cout


def oracle_cost(scenario: Scenario, t: float, usage: tuple[int, int]) -> float:
    """Expected USD of one request arriving at `t` for the oracle (see the module docstring)."""
    knobs = scenario.knobs_at(t)
    left = 1.0
    cost = 0.0
    for name in sorted(DEPLOYMENTS, key=lambda d: PRICES[d]):
        ok = ok_chance(knobs[name], name, scenario.stream)
        cost += left * ok * _call_price(name, usage)
        left *= 1.0 - ok
    # Whatever is left nobody could serve: the oracle pays nothing for it.
    return cost


# --- the generators -------------------------------------------------------------------------

Generator = Callable[[random.Random, float], tuple[str, tuple[Step, ...], dict[str, Any]]]


def _window(rng: random.Random, d: float) -> tuple[float, float]:
    """A fault stretch: start in the first third, end in the second half."""
    start = rng.uniform(0.15, 0.3) * d
    end = rng.uniform(0.55, 0.7) * d
    return start, end


def _hit(rng: random.Random) -> tuple[str, ...]:
    """What a fault hits: one of A's deployments, all of provider A, or B."""
    return rng.choice((("a",), ("a", "a2"), ("a", "a2"), ("b",)))


def _each(targets: Sequence[str], knobs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: dict(knobs) for name in targets}


def _healed(targets: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {name: healthy(name) for name in targets}


def _who(targets: Sequence[str]) -> str:
    return "provider A (a, a2)" if tuple(targets) == ("a", "a2") else ", ".join(targets)


def _outage(mode: str) -> Generator:
    def make(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
        targets = _hit(rng)
        start, end = _window(rng, d)
        steps = (Step(start, _each(targets, {"outage": mode})), Step(end, _healed(targets)))
        return (
            f"{_who(targets)} {mode} from {start:.1f} s to {end:.1f} s",
            steps,
            {"hit": targets, "recovered_at": end},
        )

    return make


def _hang(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = _hit(rng)
    start, end = _window(rng, d)
    steps = (Step(start, _each(targets, {"hang": True})), Step(end, _healed(targets)))
    return (
        f"{_who(targets)} hangs from {start:.1f} s to {end:.1f} s",
        steps,
        {"hit": targets, "recovered_at": end},
    )


def _flapping(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = rng.choice((("a",), ("a", "a2")))
    mode = rng.choice(("503", "refused"))
    down = rng.uniform(0.6, 1.8)
    up = rng.uniform(0.6, 2.2)
    t = rng.uniform(0.1, 0.2) * d
    steps: list[Step] = []
    last_up = t
    while t + down < 0.72 * d:
        steps.append(Step(t, _each(targets, {"outage": mode})))
        t += down
        steps.append(Step(t, _healed(targets)))
        last_up = t
        t += up
    return (
        f"{_who(targets)} {mode} for {down:.1f} s, up for {up:.1f} s, {len(steps) // 2} times",
        tuple(steps),
        {"hit": targets, "recovered_at": last_up},
    )


def _brownout(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = _hit(rng)
    factor = rng.uniform(6.0, 20.0)
    start, end = _window(rng, d)
    slowed = {
        name: {
            "latency_ms": float(BASE_KNOBS[name]["latency_ms"]) * factor,
            "latency_jitter_ms": float(BASE_KNOBS[name]["latency_jitter_ms"]) * factor,
        }
        for name in targets
    }
    steps = [Step(start, slowed), Step(end, _healed(targets))]
    text = f"{_who(targets)} {factor:.0f}x slower from {start:.1f} s to {end:.1f} s"
    if rng.random() < 0.5:
        # The case: meanwhile the mid provider is rate-limited for a while.
        other = "b" if "b" not in targets else "a2"
        rate = rng.uniform(0.3, 0.7)
        at = start + (end - start) * 0.3
        steps.insert(1, Step(at, {other: {"rate_limit_rate": rate, "retry_after_s": 1.0}}))
        steps.insert(2, Step(at + (end - start) * 0.4, {other: healthy(other)}))
        text += f"; {other} 429s {rate:.0%} for part of it"
    steps.sort(key=lambda s: s.at)
    return text, tuple(steps), {"hit": targets, "recovered_at": end}


def _ttft_brownout(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = _hit(rng)
    delay = rng.uniform(150.0, 600.0)
    start, end = _window(rng, d)
    steps = (
        Step(start, _each(targets, {"first_chunk_delay_ms": delay})),
        Step(end, _healed(targets)),
    )
    return (
        f"{_who(targets)} first chunk +{delay:.0f} ms from {start:.1f} s to {end:.1f} s (streams)",
        steps,
        {"hit": targets, "recovered_at": end, "stream": True},
    )


def _slow_drip(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = _hit(rng)
    delay = rng.uniform(40.0, 150.0)
    start, end = _window(rng, d)
    steps = (Step(start, _each(targets, {"chunk_delay_ms": delay})), Step(end, _healed(targets)))
    return (
        f"{_who(targets)} {delay:.0f} ms between chunks from {start:.1f} s to {end:.1f} s "
        "(streams)",
        steps,
        {"hit": targets, "recovered_at": end, "stream": True},
    )


def _stream_cut(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = _hit(rng)
    after = rng.randint(0, 3)
    start, end = _window(rng, d)
    steps = (Step(start, _each(targets, {"cut_stream_after": after})), Step(end, _healed(targets)))
    return (
        f"{_who(targets)} cuts streams after {after} chunk(s) from {start:.1f} s to {end:.1f} s",
        steps,
        {"hit": targets, "recovered_at": end, "stream": True},
    )


def _partial_429(header: bool) -> Generator:
    def make(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
        target = rng.choice(("a", "a", "b"))
        rate = rng.uniform(0.2, 0.6)
        retry_after = rng.uniform(0.5, 3.0)
        start, end = _window(rng, d)
        knobs: dict[str, Any] = {"rate_limit_rate": rate, "retry_after_s": retry_after}
        if not header:
            knobs["retry_after_header"] = False
        steps = (Step(start, {target: knobs}), Step(end, {target: {**healthy(target)}}))
        if not header:
            healed = {**healthy(target), "retry_after_header": True}
            steps = (steps[0], Step(end, {target: healed}))
        said = f"Retry-After {retry_after:.1f} s" if header else "no Retry-After"
        return (
            f"{target} answers {rate:.0%} with 429 ({said}) from {start:.1f} s to {end:.1f} s",
            steps,
            {"hit": (target,), "recovered_at": end},
        )

    return make


def _keywide_429(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    retry_after = rng.uniform(1.0, 4.0)
    start, end = _window(rng, d)
    hit = ("a", "a2")
    knobs = {"rate_limit_rate": 1.0, "retry_after_s": retry_after}
    steps = (
        Step(start, dict.fromkeys(hit, knobs)),
        Step(end, {name: healthy(name) for name in hit}),
    )
    return (
        f"A's key rate-limited (every request 429, Retry-After {retry_after:.1f} s) "
        f"from {start:.1f} s to {end:.1f} s",
        steps,
        {"hit": hit, "recovered_at": end},
    )


def _error_creep(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    target = rng.choice(("a", "a", "b"))
    top = rng.uniform(0.3, 0.8)
    status = rng.choice((500, 502, 503))
    start, end = rng.uniform(0.1, 0.2) * d, rng.uniform(0.65, 0.75) * d
    n = 6
    base = float(BASE_KNOBS[target].get("error_rate", 0.0))
    steps = [
        Step(
            start + (end - start) * i / n,
            {target: {"error_rate": base + (top - base) * (i + 1) / n, "error_status": status}},
        )
        for i in range(n)
    ]
    steps.append(Step(end, {target: {**healthy(target), "error_status": 503}}))
    return (
        f"{target}'s {status} rate creeps to {top:.0%} from {start:.1f} s to {end:.1f} s",
        tuple(steps),
        {"hit": (target,), "recovered_at": end},
    )


def _correlated(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    mode = rng.choice(("503", "refused", "hang"))
    start, end = _window(rng, d)
    hit = ("a", "a2")
    knobs: dict[str, Any] = {"hang": True} if mode == "hang" else {"outage": mode}
    steps = (
        Step(start, dict.fromkeys(hit, knobs)),
        Step(end, {name: healthy(name) for name in hit}),
    )
    return (
        f"both of A's deployments {mode} from {start:.1f} s to {end:.1f} s",
        steps,
        {"hit": hit, "recovered_at": end},
    )


def _recovery(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    targets = rng.choice((("a",), ("a", "a2")))
    mode = rng.choice(("503", "refused", "hang"))
    end = rng.uniform(0.3, 0.5) * d
    knobs: dict[str, Any] = {"hang": True} if mode == "hang" else {"outage": mode}
    steps = (Step(0.0, _each(targets, knobs)), Step(end, _healed(targets)))
    return (
        f"{_who(targets)} {mode} from the start until {end:.1f} s, then healthy",
        steps,
        {"hit": targets, "recovered_at": end},
    )


def _mixed_latency(rng: random.Random, d: float) -> tuple[str, tuple[Step, ...], dict[str, Any]]:
    # Heavy tails of different shapes: each deployment gets a slow minority of requests.
    knobs: dict[str, dict[str, Any]] = {}
    parts = []
    for name in DEPLOYMENTS:
        slow_rate = rng.uniform(0.0, 0.08)
        slow_ms = rng.uniform(100.0, 600.0)
        jitter = float(BASE_KNOBS[name]["latency_jitter_ms"]) * rng.uniform(1.0, 6.0)
        knobs[name] = {"slow_rate": slow_rate, "slow_ms": slow_ms, "latency_jitter_ms": jitter}
        parts.append(f"{name} {slow_rate:.0%} +{slow_ms:.0f} ms")
    start = rng.uniform(0.05, 0.15) * d
    return (
        "tails: " + ", ".join(parts) + f" from {start:.1f} s",
        (Step(start, knobs),),
        {"hit": tuple(DEPLOYMENTS), "recovered_at": None},
    )


KINDS: Mapping[str, Generator] = {
    "outage_503": _outage("503"),
    "outage_refused": _outage("refused"),
    "hang": _hang,
    "flapping": _flapping,
    "latency_brownout": _brownout,
    "ttft_brownout": _ttft_brownout,
    "slow_drip": _slow_drip,
    "stream_cut": _stream_cut,
    "rate_limit_partial": _partial_429(header=True),
    "rate_limit_no_retry_after": _partial_429(header=False),
    "rate_limit_keywide": _keywide_429,
    "error_creep": _error_creep,
    "correlated_pair": _correlated,
    "recovery": _recovery,
    "mixed_latency": _mixed_latency,
}
"""Every kind of scenario, by name, in the order the runner runs them."""


def build(kind: str, seed: int, duration: float) -> Scenario:
    """The scenario of `kind` drawn with `seed`, scaled to a run of `duration` seconds."""
    rng = random.Random(f"{kind}:{seed}")
    text, steps, extra = KINDS[kind](rng, duration)
    return Scenario(
        kind=kind,
        seed=seed,
        duration=duration,
        description=text,
        steps=steps,
        stream=bool(extra.pop("stream", False)),
        recovered_at=extra.pop("recovered_at", None),
        hit=tuple(extra.pop("hit", ())),
        extra=extra,
    )


def library(kinds: Sequence[str], seeds: Sequence[int], duration: float) -> list[Scenario]:
    """Every (kind, seed) scenario, kinds outermost."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown scenario kind(s) {unknown}; known: {', '.join(KINDS)}")
    return [build(kind, seed, duration) for seed in seeds for kind in kinds]


def knobs_supported(scenario: Scenario, known: frozenset[str]) -> list[str]:
    """Knob names the scenario sets that the fleet does not know (empty when all are known)."""
    used = {k for step in scenario.steps for values in step.knobs.values() for k in values}
    return sorted(used - known)


def finite(value: float) -> bool:
    return isinstance(value, float | int) and math.isfinite(value)
