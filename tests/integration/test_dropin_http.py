"""Code written against litellm keeps working over the router: real litellm, real HTTP to the
simulated fleet on loopback (items 4-10 of issue 12; embeddings in test_embeddings_http.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import litellm
import pytest

from router import NoDeploymentAvailable, Router, get_decision
from router._sim import Fleet

from .conftest import fleet_config

MSG = [{"role": "user", "content": "hello"}]


# -- item 4 ----------------------------------------------------------------------------------


async def test_per_call_key_on_a_group_is_refused_and_the_group_stays_up(router: Router) -> None:
    for _ in range(6):
        with pytest.raises(litellm.UnsupportedParamsError):
            await router.acompletion("chat", MSG, api_key="sk-other")
        with pytest.raises(litellm.UnsupportedParamsError):
            await router.acompletion("chat", MSG, api_base="http://127.0.0.1:9/v1")
    assert all(h.state == "closed" and h.calls == 0 for h in router.health())
    response = await router.acompletion("chat", MSG)
    assert get_decision(response).deployment == "a"  # type: ignore[union-attr]


async def test_arguments_litellm_cannot_build_never_count_against_a_deployment(
    router: Router,
) -> None:
    """litellm fails building these requests (nothing is sent): the caller's mistake."""
    for _ in range(6):
        with pytest.raises(litellm.APIConnectionError) as info:
            await router.acompletion("chat", MSG, tools=5)
        decision = get_decision(info.value)
        assert decision is not None and decision.outcome == "error"
        assert [a.outcome for a in decision.attempts] == ["not_provider"]
    assert all(h.state == "closed" and h.error_rate == 0.0 for h in router.health())
    response = await router.acompletion("chat", MSG)
    assert get_decision(response).deployment == "a"  # type: ignore[union-attr]


# -- item 5 ----------------------------------------------------------------------------------


async def test_every_deployment_429_raises_rate_limit_error_with_retry_after(
    fleet: Fleet,
) -> None:
    router = Router(fleet_config(fleet), seed=0)
    for provider in fleet:
        provider.set(rate_limit_rate=1.0, retry_after_s=7.0)
    with pytest.raises(litellm.RateLimitError) as info:
        await router.acompletion("chat", MSG)
    assert isinstance(info.value, NoDeploymentAvailable)
    assert info.value.retry_after == pytest.approx(7.0, abs=0.5)
    assert info.value.response.headers["retry-after"] == "7"
    with pytest.raises(litellm.RateLimitError):  # second 429 in a row: each is paused
        await router.acompletion("chat", MSG)
    served = sum(p.stats.rate_limited for p in fleet)
    with pytest.raises(litellm.RateLimitError) as paused:  # every candidate paused: skipped
        await router.acompletion("chat", MSG)
    assert sum(p.stats.rate_limited for p in fleet) == served
    assert 0 < paused.value.retry_after <= 7.0


async def test_every_deployment_401_raises_authentication_error(fleet: Fleet) -> None:
    router = Router(fleet_config(fleet), seed=0)
    for provider in fleet:
        provider.set(auth_fail=True)
    for _ in range(2):  # the second call finds every breaker open for the refused keys
        with pytest.raises(litellm.AuthenticationError) as info:
            await router.acompletion("chat", MSG)
        assert isinstance(info.value, NoDeploymentAvailable)


# -- item 6 ----------------------------------------------------------------------------------


async def test_hidden_params_carry_the_configured_price_and_the_deployment(
    router: Router,
) -> None:
    response = await router.acompletion("chat", MSG)
    decision = get_decision(response)
    assert decision is not None
    usage = response.usage
    expected = usage.prompt_tokens * 1e-7 + usage.completion_tokens * 4e-7
    assert response._hidden_params["response_cost"] == pytest.approx(expected)
    assert decision.cost_usd == pytest.approx(expected)
    assert response._hidden_params["model_id"] == "a"


def test_sync_hidden_params_carry_the_configured_price(threaded_fleet: Fleet) -> None:
    router = Router(fleet_config(threaded_fleet, timeout=5.0), seed=0)
    response = router.completion("chat", MSG)
    usage = response.usage
    expected = usage.prompt_tokens * 1e-7 + usage.completion_tokens * 4e-7
    assert response._hidden_params["response_cost"] == pytest.approx(expected)
    assert response._hidden_params["model_id"] == "a"


# -- item 8 ----------------------------------------------------------------------------------


async def test_async_stream_offers_custom_stream_wrapper_attributes(router: Router) -> None:
    stream = await router.acompletion("chat", MSG, stream=True)
    chunks = [chunk async for chunk in stream]
    assert stream.model is not None and "sim-a" in stream.model
    assert isinstance(stream._hidden_params, dict)
    assert stream._hidden_params["model_id"] == "a"
    assert stream.response_uptil_now == "Hello from a."
    assert hasattr(stream, "completion_stream")
    built = litellm.stream_chunk_builder(chunks, messages=MSG)
    assert built is not None and built.choices[0].message.content == "Hello from a."


def test_sync_stream_iterates_both_ways_with_wrapper_attributes(threaded_fleet: Fleet) -> None:
    router = Router(fleet_config(threaded_fleet, timeout=5.0), seed=0)
    with router.completion("chat", MSG, stream=True) as stream:
        chunks = list(stream)
    assert stream.model is not None and "sim-a" in stream.model
    assert stream._hidden_params["model_id"] == "a"
    assert stream.response_uptil_now == "Hello from a."
    built = litellm.stream_chunk_builder(chunks, messages=MSG)
    assert built is not None and built.choices[0].message.content == "Hello from a."

    async def read() -> str:
        again = router.completion("chat", MSG, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in again if c.choices]
        return "".join(parts)

    assert asyncio.run(read()) == "Hello from a."


# -- item 10 ---------------------------------------------------------------------------------


async def test_pass_through_health_is_per_endpoint(fleet: Fleet) -> None:
    """One model string at two api_bases: the hung one's breaker is its own."""
    cfg = fleet_config(fleet, deadline=0.4, timeout=0.1)
    cfg["router"]["max_attempts"] = 1
    router = Router(cfg, seed=0)
    fleet["a"].set(hang=True)
    for _ in range(8):  # timeouts until the breaker opens, then skipped
        with pytest.raises((litellm.Timeout, NoDeploymentAvailable)):
            await router.acompletion(
                "openai/sim", MSG, api_base=fleet["a"].base_url, api_key="sk-sim-test"
            )
    response = await router.acompletion(
        "openai/sim", MSG, api_base=fleet["b"].base_url, api_key="sk-sim-test"
    )
    states = {h.deployment: h for h in router.state.snapshot(router.clock.now())}
    hung = next(name for name in states if fleet["a"].base_url in name)
    healthy = next(name for name in states if fleet["b"].base_url in name)
    assert states[hung].error_rate > 0 and states[healthy].error_rate == 0.0
    assert response.choices[0].message.content == "Hello from b."
    decision = get_decision(response)
    assert decision is not None and decision.deployment is not None
    assert fleet["b"].base_url in decision.deployment and "sk-sim-test" not in decision.deployment


# -- items 7 and 9: callbacks and litellm's logging worker, in a fresh process ---------------


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    repo = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    prologue = "import faulthandler; faulthandler.dump_traceback_later(90, exit=True)\n"
    return subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        cwd=cwd,
    )


_PRELUDE = """
    import asyncio, gc, sys, time
    import router, litellm
    from litellm.integrations.custom_logger import CustomLogger
    from router import Router
    from router._sim import Behavior, Fleet
    from tests.integration.conftest import fleet_config
    MSG = [{"role": "user", "content": "hi"}]
    events = []

    def wait_for(n, seconds=10.0):
        end = time.monotonic() + seconds
        while len(events) < n and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.2)  # and nothing more arrives
"""


def test_sync_callbacks_fire_for_sync_calls_as_litellm_fires_them(tmp_path: Path) -> None:
    out = _run(
        _PRELUDE
        + """
    class Logger(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append(("logger-sync", kwargs.get("response_cost")))
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append(("logger-async", kwargs.get("response_cost")))
        def log_failure_event(self, kwargs, response_obj, start_time, end_time):
            events.append(("logger-sync-failure", None))

    def on_success(kwargs, response, start, end):
        events.append(("fn", kwargs.get("response_cost")))
    def on_failure(kwargs, response, start, end):
        events.append(("fn-failure", None))

    litellm.callbacks = [Logger()]
    litellm.success_callback = [on_success]
    litellm.failure_callback = [on_failure]
    with Fleet({n: Behavior(latency_ms=2.0) for n in "abc"}, seed=1).threaded() as fleet:
        r = Router(fleet_config(fleet, timeout=5.0), telemetry=False)
        resp = r.completion("chat", MSG)
        wait_for(2)
        print("sync", sorted(e[0] for e in events), resp._hidden_params["response_cost"])
        print("costs", sorted({e[1] for e in events}) == [resp._hidden_params["response_cost"]])
        events.clear()
        fleet["a"].set(outage="503")
        r.completion("chat", MSG)
        wait_for(4)
        print("failover", sorted(e[0] for e in events))
        events.clear()
        fleet["a"].set(outage=None)
        async def main():
            await r.acompletion("chat", MSG)
            await asyncio.sleep(0.5)
        asyncio.run(main())
        print("async", sorted(e[0] for e in events))
    """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["sync"].startswith("['fn', 'logger-sync']"), out.stdout
    assert lines["costs"] == "True", out.stdout
    assert lines["failover"] == "['fn', 'fn-failure', 'logger-sync', 'logger-sync-failure']"
    assert lines["async"] == "['logger-async']"


def test_mixing_sync_and_async_calls_leaves_no_pending_tasks(tmp_path: Path) -> None:
    out = _run(
        _PRELUDE
        + """
    class Logger(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append("async")
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append("sync")

    litellm.callbacks = [Logger()]
    with Fleet({n: Behavior(latency_ms=2.0) for n in "abc"}, seed=1).threaded() as fleet:
        r = Router(fleet_config(fleet, timeout=5.0), telemetry=False)
        for _ in range(6):
            r.completion("chat", MSG)
            for chunk in r.completion("chat", MSG, stream=True):
                pass
            async def main():
                await r.acompletion("chat", MSG)
                s = await r.acompletion("chat", MSG, stream=True)
                async for chunk in s:
                    pass
                r.completion("chat", MSG)  # a sync call inside a running loop
                await asyncio.sleep(0.05)
            asyncio.run(main())
            gc.collect()
        wait_for(6 * 5)
        gc.collect()
        print("events", len(events))
    """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "Task was destroyed but it is pending" not in out.stderr, out.stderr
    assert "LoggingWorker error" not in out.stderr, out.stderr
    assert "never awaited" not in out.stderr, out.stderr
    assert out.stdout.strip() == "events 30", out.stdout + out.stderr
