"""The scenario library (scripts/_scenarios.py) and a smoke run of its runner.

No timing is asserted: the library's generators are checked for what makes a scenario fair
(seeded, randomized within ranges, a recovery where one is promised, an oracle that is a lower
bound) and the runner for running end to end with ``--quick`` and writing every figure.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import _scenarios as sc  # noqa: E402

TIMEOUT_S = 180.0  # ~25 s on a quiet machine; this one is often loaded 6x over


def test_the_library_has_every_kind_the_issue_lists() -> None:
    assert len(sc.KINDS) >= 12
    for kind in (
        "outage_503",
        "outage_refused",
        "hang",
        "flapping",
        "latency_brownout",
        "ttft_brownout",
        "slow_drip",
        "stream_cut",
        "rate_limit_partial",
        "rate_limit_no_retry_after",
        "rate_limit_keywide",
        "error_creep",
        "correlated_pair",
        "recovery",
        "mixed_latency",
    ):
        assert kind in sc.KINDS


def test_a_seed_fixes_a_scenario_and_seeds_differ() -> None:
    for kind in sc.KINDS:
        one = sc.build(kind, 3, 10.0)
        assert one == sc.build(kind, 3, 10.0)
        others = {sc.build(kind, seed, 10.0).description for seed in range(6)}
        assert len(others) > 1, kind


def test_steps_are_in_order_within_the_run_and_recovery_follows_every_fault() -> None:
    for kind in sc.KINDS:
        for seed in range(5):
            scenario = sc.build(kind, seed, 10.0)
            times = [step.at for step in scenario.steps]
            assert times == sorted(times)
            assert all(0.0 <= t < scenario.duration for t in times)
            if scenario.recovered_at is not None:
                assert scenario.recovered_at <= 0.8 * scenario.duration
                after = scenario.knobs_at(scenario.recovered_at + 1e-6)
                for name in scenario.hit:
                    assert after[name].get("outage") is None
                    assert not after[name].get("hang")


def test_the_oracle_pays_the_cheapest_fit_deployment_and_nothing_when_none_is() -> None:
    usage = (10, 5)
    healthy = sc.build("outage_503", 0, 10.0)
    a_price = sc.PRICES["a"][0] * 10 + sc.PRICES["a"][1] * 5
    assert math.isclose(sc.oracle_cost(healthy, 0.0, usage), a_price)
    pair = sc.build("correlated_pair", 1, 10.0)
    during = (pair.steps[0].at + pair.steps[1].at) / 2
    cost = sc.oracle_cost(pair, during, usage)
    b_price = sc.PRICES["b"][0] * 10 + sc.PRICES["b"][1] * 5
    c_price = sc.PRICES["c"][0] * 10 + sc.PRICES["c"][1] * 5
    assert b_price < cost < c_price  # B mostly, C for B's own errors and 429s


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "scenarios.json"
    command = [sys.executable, str(SCRIPTS / "bench_scenarios.py"), "--quick", "--json", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "at least as good as every peer" in proc.stdout
    figures: dict[str, Any] = json.loads(out.read_text())
    runs = figures["runs"]
    assert {r["system"] for r in runs} == {"ours", "ours-hedge", "litellm simple-shuffle"}
    for r in runs:
        for key in ("success", "p50_ms", "p99_ms", "cost_per_1k", "upstream_per_request"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r["system"], key)
        assert r["requests"] > 0
        assert set(r["upstream"]) == set(sc.DEPLOYMENTS)
    assert set(figures["verdict"]) == {"ours", "ours-hedge"}


def test_the_sim_can_leave_out_retry_after_and_add_a_slow_tail() -> None:
    import urllib.error
    import urllib.request

    from router._sim import Behavior, Fleet

    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    behavior = Behavior(latency_ms=0.0, rate_limit_rate=1.0, retry_after_header=False)
    with Fleet({"x": behavior}, seed=0).threaded() as fleet:
        request = urllib.request.Request(
            f"{fleet['x'].base_url}/chat/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 429
            assert exc.headers.get("Retry-After") is None
            assert exc.headers.get("retry-after-ms") is None
        else:
            raise AssertionError("expected a 429")
        fleet["x"].set(rate_limit_rate=0.0, slow_rate=1.0, slow_ms=1.0)
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    from router._sim._knobs import _validate

    for bad in ({"slow_rate": 1.5}, {"slow_ms": -1}, {"retry_after_header": "no"}):
        try:
            _validate(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


def _run(system: str, **figures: float) -> dict[str, Any]:
    base = {
        "success": 1.0,
        "p50_ms": 30.0,
        "p99_ms": 100.0,
        "cost_per_1k": 3.0,
        "upstream_per_request": 1.0,
        "cheap_share_after": 1.0,
        "cost_ratio": 1.0,
    }
    return {"system": system, "kind": "k", "seed": 1, **base, **figures}


def test_the_verdict_tells_a_loss_on_one_figure_from_being_dominated() -> None:
    import bench_scenarios as bs

    # A peer cheaper only because it waited through the outage (p99 far worse): ours loses on
    # cost (the strict count) but is not dominated; a peer better on one figure and as good
    # on the rest dominates.
    waits = bs.verdict(
        bs.aggregate(
            [_run("ours"), _run("portkey-fallback", cost_per_1k=2.0, cost_ratio=0.7, p99_ms=4000)]
        ),
        "ours",
    )
    assert waits["wins"] == 0 and waits["undominated"] == 1
    assert waits["kinds"]["k"]["dominated_by"] == []
    better = bs.verdict(
        bs.aggregate([_run("ours"), _run("litellm simple-shuffle", p99_ms=90.0)]), "ours"
    )
    assert better["undominated"] == 0
    assert better["kinds"]["k"]["dominated_by"] == ["litellm simple-shuffle"]
    assert not better["kinds"]["k"]["goals"]["p99 <= best peer"]


def test_time_to_cheap_back_is_the_start_of_the_suffix_the_cheap_provider_holds() -> None:
    import bench_scenarios as bs

    def samples(served: Sequence[str | None], start: float = 1.0) -> list[Any]:
        return [
            bs.Sample(start + 0.1 * i, 0.02, s is not None, s, None if s else "x")
            for i, s in enumerate(served)
        ]

    # Recovered at 1.0: b serves the first 5 after it, then a and a2 serve 9 with one b
    # among them: back from the 6th (1.5 s), where a suffix share of 9/10 starts (from the
    # 5th it is 9/11).
    run = samples(["b"] * 5 + ["a"] * 5 + ["b"] + ["a2"] * 4)
    assert bs.cheap_back(run, 1.0) == pytest.approx(0.5)
    # Requests before the recovery do not count; a failed request is not the cheap one's.
    early = samples(["a"] * 5, start=0.0)
    assert bs.cheap_back(early + run, 1.0) == pytest.approx(0.5)
    assert bs.cheap_back(
        samples([None] * 5 + ["a"] * 5 + [None] + ["a"] * 4), 1.0
    ) == pytest.approx(0.5)
    # Back and lost again is not back: the suffix from any point has b's half.
    assert bs.cheap_back(samples(["a"] * 20 + ["b"] * 20), 1.0) == math.inf
    # Too few requests left after the recovery to tell (fewer than BACK_MIN_REQUESTS).
    assert bs.cheap_back(samples(["a"] * (bs.BACK_MIN_REQUESTS - 1)), 1.0) == math.inf
    # Never hit: back at the first request; no recovery in the scenario: not applicable.
    assert bs.cheap_back(samples(["a"] * 30), 1.0) == pytest.approx(0.0)
    assert math.isnan(bs.cheap_back(samples(["a"] * 30), None))


def test_the_cheap_back_goal_is_judged_only_when_the_runs_could_show_it() -> None:
    import bench_scenarios as bs

    def goals(back: float, window: float) -> dict[str, bool]:
        agg = bs.aggregate([_run("ours", cheap_back_s=back, after_recovery_s=window)])
        result: dict[str, bool] = bs.verdict(agg, "ours")["kinds"]["k"]["goals"]
        return result

    key = f"cheap back <= {bs.GOAL_BACK_S:g} s"
    assert goals(0.4, 2.0)[key]
    assert key not in goals(math.inf, 2.0)  # a 3 s run cannot show 10 s
    assert not goals(math.inf, 12.0)[key]
    assert not goals(11.0, 12.0)[key]
    # An older run's JSON without the figure still aggregates (NaN: not judged).
    assert key not in bs.verdict(bs.aggregate([_run("ours")]), "ours")["kinds"]["k"]["goals"]


def test_a_merged_run_keeps_never_back_apart_from_no_recovery(tmp_path: Path) -> None:
    import bench_scenarios as bs
    from _benchlib import write_json

    def result(**figures: Any) -> dict[str, Any]:
        run = {**_run("ours", **figures), "stream": False}
        return {"machine": {"load_average_at_start": [0.0]}, "settings": {"seeds": [1]},
                "runs": [run], "runtime_s": 1.0}  # fmt: skip

    never = tmp_path / "never.json"
    write_json(never, result(cheap_back_s=math.inf, after_recovery_s=2.0))
    none = tmp_path / "none.json"
    write_json(none, result(cheap_back_s=math.nan, after_recovery_s=math.nan))
    assert bs.merge([never])["runs"][0]["cheap_back_s"] == math.inf
    assert math.isnan(bs.merge([none])["runs"][0]["cheap_back_s"])
