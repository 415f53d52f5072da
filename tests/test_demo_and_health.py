"""`router health` against a live simulated fleet, and `router demo`'s breaker story."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from router._breaker import State, Transition
from router._decision import AttemptRecord, CallOutcome, Decision
from router._errors import Outcome
from router._sim import Behavior, Fleet
from router._sim._demo import _missing, _Tally, run_demo
from router.cli import main

REPO = Path(__file__).resolve().parent.parent
HEALTH_COLUMNS = ["deployment", "state", "score", "ewma", "ms", "p95", "ms", "error", "rate",
                  "calls", "in-flight", "open", "for", "s", "paused", "for", "s", "trips", "last",
                  "error"]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("ROUTER_")]:
        monkeypatch.delenv(name)
    # Rich wraps at 80 columns when not on a terminal; wide lines keep each event on one line.
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    # Threaded: `main` runs its own event loop, so the fleet needs one of its own.
    with Fleet({name: Behavior(latency_ms=2.0) for name in "abc"}, seed=1).threaded() as running:
        yield running


def write_config(fleet: Fleet) -> str:
    """A TOML config with one deployment per fleet provider (quick backoff: tests wait less)."""
    parts = ["[router]\ndeadline = 5.0\nmax_attempts = 3\nbackoff_base = 0.01\n"]
    for provider in fleet:
        parts.append(
            f'[[deployments]]\nname = "{provider.name}"\nmodel = "openai/sim-{provider.name}"\n'
            f'api_base = "{provider.base_url}"\napi_key = "sk-sim-test"\n'
            "input_cost_per_token = 0.0000001\noutput_cost_per_token = 0.0000004\n"
            'timeout = 2.0\ngroups = ["chat"]\n'
        )
    path = Path("fleet.toml")
    path.write_text("\n".join(parts), encoding="utf-8")
    return str(path)


def rows(out: str) -> dict[str, list[str]]:
    """The plain table's rows by deployment name (cells split on whitespace)."""
    lines = out.splitlines()
    assert lines[0] == "fleet.toml: 3 probe(s) per deployment, as this process saw them"
    assert lines[1].split() == HEALTH_COLUMNS
    return {line.split()[0]: line.split() for line in lines[2:5]}


# --- router health ---------------------------------------------------------------------------


def test_health_all_up_exits_0(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", write_config(fleet)]) == 0
    out, err = capsys.readouterr()
    table = rows(out)
    assert list(table) == ["a", "b", "c"]
    for cells in table.values():
        # state, score, ewma (a number), p95 (too few samples), error rate, calls, in-flight,
        # open for, paused for, trips, last error
        assert cells[1:3] == ["closed", "1.00"]
        assert float(cells[3]) > 0
        assert cells[4:] == ["-", "0%", "3", "0", "-", "-", "0", "-"]
    assert out.splitlines()[-1] == "3 deployment(s), 3 healthy"
    assert err == ""
    # Every probe reached its provider, and only its own: 3 probes + 1 warm-up each.
    assert {name: s["requests"] for name, s in fleet.stats().items()} == {"a": 4, "b": 4, "c": 4}


def test_health_with_a_provider_down_exits_1(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet["b"].set(outage="503")
    assert main(["health", write_config(fleet)]) == 1
    out, _ = capsys.readouterr()
    table = rows(out)
    assert table["a"][1:3] == ["closed", "1.00"] and table["c"][1:3] == ["closed", "1.00"]
    assert table["a"][-1] == table["c"][-1] == "-"
    b = table["b"]
    # Each probe retries (max_attempts 3): the fifth failure in a row opens the breaker, and the
    # last probe finds it open without reaching the provider.
    assert b[1:3] == ["open", "0.00"]
    assert b[3:7] == ["-", "-", "100%", "5"]
    assert 0.5 < float(b[8]) <= 1.1  # open for: the default 1 s (+ jitter), less time since
    assert b[9:11] == ["-", "1"]  # not paused; one trip
    assert b[11:] == ["ServiceUnavailableError", "503"]
    assert out.splitlines()[-1] == "3 deployment(s), 2 healthy; not healthy: b (breaker open)"


def test_health_json(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet["c"].set(outage="refused")
    assert main(["health", write_config(fleet), "--json", "--probes", "2"]) == 1
    entries = json.loads(capsys.readouterr().out)
    assert [e["deployment"] for e in entries] == ["a", "b", "c"]
    a, _, c = entries
    assert set(a) >= {"state", "score", "latency_ms", "p95_ms", "error_rate", "calls",
                      "in_flight", "open_for_s", "paused_for_s", "trips"}  # fmt: skip
    assert (a["state"], a["calls"], a["answered"], a["healthy"]) == ("closed", 2, 2, True)
    assert a["last_error"] is None and a["latency_ms"] > 0
    assert (c["answered"], c["healthy"], c["error_rate"]) == (0, False, 1.0)
    assert c["last_error"] == "InternalServerError 500 (connect error)"


def test_health_uses_router_config_and_reports_config_errors(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_CONFIG", write_config(fleet))
    assert main(["health", "--probes", "1"]) == 0
    assert "1 probe(s) per deployment" in capsys.readouterr().out
    monkeypatch.delenv("ROUTER_CONFIG")
    assert main(["health"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("providers.toml: file not found")
    Path("bad.toml").write_text("[router]\ndedline = 1\n", encoding="utf-8")
    assert main(["health", "bad.toml"]) == 1
    assert "unknown key 'dedline'" in capsys.readouterr().err
    assert main(["health", "--probes", "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_health_rich_table_on_a_terminal(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    fleet["a"].set(outage="503")
    assert main(["health", write_config(fleet), "--probes", "2"]) == 1
    out, _ = capsys.readouterr()
    assert "┃" in out or "│" in out  # a rich box, not plain text
    for text in ("open for s", "last error", "closed", "ServiceUnavailableError 503"):
        assert text in out
    assert out.splitlines()[-1] == "3 deployment(s), 2 healthy; not healthy: a (breaker open)"


def test_health_help_says_it_measures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--probes N" in text and "--json" in text
    assert "measures" in text and "--redis URL" in text and "shared view" in text


# --- router demo -----------------------------------------------------------------------------


def test_demo_config_is_byte_identical_to_providers_toml() -> None:
    # The embedded demo config is what `router demo` runs when there is no ./providers.toml.
    embedded = REPO / "router" / "demo_providers.toml"
    assert embedded.read_bytes() == (REPO / "providers.toml").read_bytes()


async def test_demo_shows_breakers_opening_and_recovering(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Ephemeral ports: the repo config's 4101-4103 may be taken (another demo, a parallel run).
    code = await run_demo(str(REPO / "providers.toml"), quiet=True, ephemeral=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "summary: 160/160 succeeded (100.0%)" in out
    assert "alpha closed -> open: 5 consecutive failures" in out
    assert "alpha half_open -> closed: probe succeeded" in out
    assert "breaker transitions (" in out and "closed -> open ×1" in out
    share = next(line for line in out.splitlines() if "share of the last 16 requests" in line)
    served = int(share.split(": ")[1].split("/")[0])
    assert served >= 12, share  # alpha won its traffic back after the recovery
    assert "as designed" in out and "missing" not in out


def transition(after: State, at: float, before: State = State.CLOSED) -> Transition:
    return Transition("alpha", before, after, at, "test", 1.0 if after is State.OPEN else None)


def decision(*events: Transition) -> Decision:
    attempt = AttemptRecord(1, "alpha", "openai/sim-alpha", Outcome.SUCCESS, 0.01, 2.0)
    return Decision("chat", "cost", (), (), (attempt,), "alpha", CallOutcome.SUCCESS,
                    "served by alpha", 0.0, 0.01, 8.0, events=events)  # fmt: skip


def test_tally_counts_a_transition_carried_by_two_calls_once() -> None:
    tally = _Tally()
    opened = transition(State.OPEN, 2.0)
    tally.record(0, decision(opened), 0.01)
    tally.record(1, decision(opened, transition(State.HALF_OPEN, 3.0, State.OPEN)), 0.01)
    assert [t.after for t in tally.ordered()] == [State.OPEN, State.HALF_OPEN]
    assert tally.served_by == {0: "alpha", 1: "alpha"}


def test_demo_says_what_was_missing() -> None:
    tally = _Tally()
    tally.ok = 9
    assert _missing(tally, 10, "alpha") == [
        "1 of 10 request(s) did not succeed",
        "no call failed over",
        "alpha's breaker never opened",
    ]
    tally.ok, tally.failovers = 10, 3
    tally.record(0, decision(transition(State.OPEN, 2.0)), 0.01)
    assert len(_missing(tally, 11, "alpha")) == 1
    assert "alpha's breaker did not close again before the end" in _missing(tally, 11, "alpha")[0]
    tally.record(1, decision(transition(State.CLOSED, 5.0, State.HALF_OPEN)), 0.01)
    assert _missing(tally, 12, "alpha") == []
