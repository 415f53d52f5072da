"""Tests of the simulated provider fleet itself, over plain HTTP (httpx); scripted content is
also checked once through real litellm, since that is the path the router's checks read."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from router._sim import (
    DEFAULT_FLEET,
    KNOBS,
    Behavior,
    Fleet,
    Script,
    SimProvider,
    default_fleet,
    estimate_tokens,
    parse_provider_spec,
)

FAST = Behavior(latency_ms=1.0, chunk_delay_ms=0.0)
MESSAGES = [{"role": "user", "content": "Say hello to the fleet"}]


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet({"alpha": FAST, "beta": FAST}, seed=0) as f:
        yield f


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


async def chat(
    client: httpx.AsyncClient, provider: SimProvider, timeout: float = 10.0, **body: Any
) -> httpx.Response:
    payload = {"model": "sim-model", "messages": MESSAGES, **body}
    return await client.post(f"{provider.base_url}/chat/completions", json=payload, timeout=timeout)


async def stream_data(
    client: httpx.AsyncClient, provider: SimProvider, received: list[str] | None = None, **body: Any
) -> list[str]:
    """The ``data:`` payloads of a streamed answer; appended to ``received`` as they arrive."""
    payload = {"model": "sim-model", "messages": MESSAGES, "stream": True, **body}
    out = received if received is not None else []
    async with client.stream("POST", f"{provider.base_url}/chat/completions", json=payload) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line:
                assert line.startswith("data: ")
                out.append(line.removeprefix("data: "))
    return out


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# --- the OpenAI surface ----------------------------------------------------------------------


async def test_plain_answer_has_openai_shape(fleet: Fleet, client: httpx.AsyncClient) -> None:
    r = await chat(client, fleet["alpha"], max_tokens=50)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "chatcmpl-sim-alpha-1"
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "sim-model"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from alpha."},
            "finish_reason": "stop",
        }
    ]
    prompt = estimate_tokens("".join(m["content"] for m in MESSAGES))
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": estimate_tokens("Hello from alpha."),
        "total_tokens": prompt + estimate_tokens("Hello from alpha."),
    }
    assert fleet["alpha"].last_request is not None
    assert fleet["alpha"].last_request["max_tokens"] == 50
    assert (await chat(client, fleet["alpha"])).json()["id"] == "chatcmpl-sim-alpha-2"
    assert fleet.stats()["alpha"]["ok"] == 2
    assert fleet.stats()["beta"]["requests"] == 0


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_shape(fleet: Fleet, client: httpx.AsyncClient, include_usage: bool) -> None:
    alpha = fleet["alpha"]
    alpha.set(stream_chunks=4, reply="The {provider} streams.")
    data = await stream_data(client, alpha, stream_options={"include_usage": include_usage})
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    content, finish = chunks[:4], chunks[4]
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == "The alpha streams."
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    if include_usage:
        assert len(chunks) == 6
        assert chunks[5]["choices"] == []
        assert chunks[5]["usage"]["completion_tokens"] == estimate_tokens("The alpha streams.")
    else:
        assert len(chunks) == 5
    stats = fleet.stats()["alpha"]
    assert (stats["streams"], stats["ok"]) == (1, 1)


async def test_multi_part_content_counts_toward_prompt_tokens(
    fleet: Fleet, client: httpx.AsyncClient
) -> None:
    text = "x" * 400
    messages = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    r = await chat(client, fleet["alpha"], messages=messages)
    assert r.json()["usage"]["prompt_tokens"] == 100


async def test_many_concurrent_requests(fleet: Fleet, client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(chat(client, fleet["beta"]) for _ in range(40)))
    assert [r.status_code for r in responses] == [200] * 40
    assert len({r.json()["id"] for r in responses}) == 40
    assert fleet.stats()["beta"]["ok"] == 40


# --- failure modes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "status", "error_type", "code"),
    [
        ({"outage": "503"}, 503, "server_error", "service_unavailable"),
        ({"error_rate": 1.0}, 500, "server_error", None),
        ({"error_rate": 1.0, "error_status": 502}, 502, "server_error", None),
        ({"auth_fail": True}, 401, "invalid_request_error", "invalid_api_key"),
    ],
)
async def test_error_answers_have_openai_shape(
    fleet: Fleet,
    client: httpx.AsyncClient,
    knobs: dict[str, Any],
    status: int,
    error_type: str,
    code: str | None,
) -> None:
    fleet["alpha"].set(**knobs)
    for stream in (False, True):
        r = await chat(client, fleet["alpha"], stream=stream)
        assert r.status_code == status
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["type"], error["code"]) == (error_type, code)
        assert error["message"]
    assert fleet.stats()["alpha"]["errors_by_status"] == {status: 2}
    assert fleet.stats()["alpha"]["ok"] == 0


async def test_rate_limit_carries_retry_after(fleet: Fleet, client: httpx.AsyncClient) -> None:
    fleet["alpha"].set(rate_limit_rate=1.0, retry_after_s=2.5)
    r = await chat(client, fleet["alpha"])
    assert r.status_code == 429
    # Whole seconds in Retry-After (what int() parsers expect), the exact value in -ms.
    assert r.headers["retry-after"] == "3"
    assert r.headers["retry-after-ms"] == "2500"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    stats = fleet.stats()["alpha"]
    assert (stats["rate_limited"], stats["errors_by_status"]) == (1, {429: 1})


async def test_context_window_counts_prompt_and_max_tokens(
    fleet: Fleet, client: httpx.AsyncClient
) -> None:
    alpha = fleet["alpha"]
    alpha.set(context_window=100)
    assert (await chat(client, alpha)).status_code == 200
    for extra in ({"max_tokens": 200}, {"max_completion_tokens": 200}):
        r = await chat(client, alpha, **extra)
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["code"] == "context_length_exceeded"
        assert error["type"] == "invalid_request_error"
        assert "maximum context length is 100 tokens" in error["message"]
    long_prompt = [{"role": "user", "content": "y" * 1000}]
    assert (await chat(client, alpha, messages=long_prompt)).status_code == 400


async def test_malformed_body_is_not_json(fleet: Fleet, client: httpx.AsyncClient) -> None:
    fleet["alpha"].set(malformed=True)
    r = await chat(client, fleet["alpha"])
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)
    data = await stream_data(client, fleet["alpha"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[0])
    assert fleet.stats()["alpha"]["malformed"] == 2


async def test_bad_request_body_is_400(fleet: Fleet, client: httpx.AsyncClient) -> None:
    url = f"{fleet['alpha'].base_url}/chat/completions"
    assert (await client.post(url, content=b"{not json")).status_code == 400
    assert (await client.post(url, json={"model": "m"})).status_code == 400


async def test_cut_stream_aborts_connection_without_done(
    fleet: Fleet, client: httpx.AsyncClient
) -> None:
    fleet["alpha"].set(cut_stream_after=2, stream_chunks=5)
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await stream_data(client, fleet["alpha"], received)
    assert len(received) == 2
    assert "[DONE]" not in received
    assert all(json.loads(d)["choices"][0]["finish_reason"] is None for d in received)
    stats = fleet.stats()["alpha"]
    assert (stats["cut"], stats["streams"], stats["ok"]) == (1, 1, 0)
    # The provider keeps serving other requests.
    assert (await chat(client, fleet["alpha"])).status_code == 200


async def test_hang_holds_until_the_client_gives_up(
    fleet: Fleet, client: httpx.AsyncClient
) -> None:
    fleet["alpha"].set(hang=True)
    with pytest.raises(httpx.ReadTimeout):
        await chat(client, fleet["alpha"], timeout=0.2)
    assert fleet.stats()["alpha"]["hung"] == 1
    fleet["alpha"].set(hang=False)
    assert (await chat(client, fleet["alpha"])).status_code == 200


async def test_stop_is_prompt_with_hung_requests_in_flight(client: httpx.AsyncClient) -> None:
    f = Fleet({"alpha": Behavior(hang=True)})
    await f.start()
    calls = [asyncio.create_task(chat(client, f["alpha"], timeout=60.0)) for _ in range(3)]
    await wait_until(lambda: f["alpha"].stats.hung == 3)
    await asyncio.wait_for(f.stop(), timeout=10.0)
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10.0)
    assert all(isinstance(r, httpx.TransportError) for r in results), results


async def test_latency_and_first_chunk_delay(fleet: Fleet, client: httpx.AsyncClient) -> None:
    # Lower bounds only: a slow machine can only make these longer.
    alpha = fleet["alpha"]
    alpha.set(latency_ms=150.0)
    started = time.monotonic()
    assert (await chat(client, alpha)).status_code == 200
    assert time.monotonic() - started >= 0.15
    alpha.set(latency_ms=0.0, first_chunk_delay_ms=150.0)
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    async with client.stream("POST", f"{alpha.base_url}/chat/completions", json=payload) as r:
        headers_at = time.monotonic()
        lines = r.aiter_lines()
        first = await anext(lines)
        assert time.monotonic() - headers_at >= 0.1
        assert first.startswith("data: ")
        async for _ in lines:
            pass


async def test_seeded_randomness_is_reproducible(client: httpx.AsyncClient) -> None:
    async def outcomes(seed: int) -> list[int]:
        flaky = Behavior(latency_ms=0.0, error_rate=0.5, rate_limit_rate=0.2)
        async with Fleet({"alpha": flaky}, seed=seed) as f:
            return [(await chat(client, f["alpha"])).status_code for _ in range(30)]

    first, again, other = await outcomes(7), await outcomes(7), await outcomes(8)
    assert first == again
    assert first != other
    assert {200, 429, 500} <= set(first)


# --- knobs, refusal, reset --------------------------------------------------------------------


async def test_set_validates_before_changing_anything(fleet: Fleet) -> None:
    alpha = fleet["alpha"]
    with pytest.raises(ValueError, match="bogus"):
        alpha.set(latency_ms=50.0, bogus=1)
    with pytest.raises(ValueError, match="error_rate"):
        alpha.set(error_rate=1.5)
    with pytest.raises(ValueError, match="outage"):
        alpha.set(outage="sometimes")
    with pytest.raises(ValueError, match="hang"):
        alpha.set(hang="yes")
    assert alpha.behavior == FAST
    alpha.set(outage=503)  # a number is accepted for convenience and normalised
    assert alpha.behavior.outage == "503"
    with pytest.raises(ValueError, match="stream_chunks"):
        Fleet({"x": Behavior(stream_chunks=0)})
    assert {"latency_ms", "outage", "reply"} <= KNOBS


async def test_refused_closes_the_port_and_reopens_the_same_one(
    fleet: Fleet, client: httpx.AsyncClient
) -> None:
    alpha = fleet["alpha"]
    port = alpha.port
    alpha.set(hang=True)
    in_flight = asyncio.create_task(chat(client, alpha, timeout=60.0))
    await wait_until(lambda: alpha.stats.hung == 1)
    alpha.set(outage="refused")
    with pytest.raises(httpx.TransportError):
        await asyncio.wait_for(in_flight, 10.0)
    with pytest.raises(httpx.ConnectError):
        await chat(client, alpha)
    assert (await chat(client, fleet["beta"])).status_code == 200
    alpha.set(outage=None, hang=False)
    assert alpha.port == port
    assert (await chat(client, alpha)).status_code == 200
    # Toggling twice before the loop runs again must leave it consistently open.
    alpha.set(outage="refused")
    alpha.set(outage=None)
    alpha.set(outage="refused")
    alpha.set(outage=None)
    assert (await chat(client, alpha)).status_code == 200


@pytest.mark.parametrize("drain", [False, True])
async def test_a_drained_outage_lets_answers_in_flight_finish_a_crash_cuts_them(
    fleet: Fleet, client: httpx.AsyncClient, drain: bool
) -> None:
    # A stream is half sent (slow chunks) when alpha goes down: a crash (the default) cuts it,
    # a drained outage lets it finish; either way the next request is refused.
    alpha = fleet["alpha"]
    alpha.set(chunk_delay_ms=100.0)
    received: list[str] = []
    in_flight = asyncio.create_task(stream_data(client, alpha, received))
    await wait_until(lambda: len(received) >= 2)
    alpha.set(outage="refused", drain=drain)
    if drain:
        data = await asyncio.wait_for(in_flight, 10.0)
        assert data[-1] == "[DONE]"
    else:
        with pytest.raises(httpx.TransportError):
            await asyncio.wait_for(in_flight, 10.0)
    with pytest.raises(httpx.TransportError):  # refused (or the drained connection closed)
        await chat(client, alpha)
    alpha.set(outage=None)
    assert (await chat(client, alpha)).status_code == 200


async def test_reset_restores_initial_behavior_and_counters(client: httpx.AsyncClient) -> None:
    initial = Behavior(latency_ms=1.0, reply="hi from {provider}", outage="refused")
    async with Fleet({"alpha": initial}) as f:
        alpha = f["alpha"]
        assert alpha.port != 0
        with pytest.raises(httpx.ConnectError):
            await chat(client, alpha)
        alpha.set(outage=None, error_rate=1.0)
        assert (await chat(client, alpha)).status_code == 500
        alpha.set(error_rate=0.0)
        assert (await chat(client, alpha)).json()["id"] == "chatcmpl-sim-alpha-2"
        alpha.reset()
        assert alpha.behavior == initial
        assert f.stats()["alpha"]["requests"] == 0
        with pytest.raises(httpx.ConnectError):
            await chat(client, alpha)
        alpha.set(outage=None)
        body = (await chat(client, alpha)).json()
        assert body["id"] == "chatcmpl-sim-alpha-1"
        assert body["choices"][0]["message"]["content"] == "hi from alpha"


async def test_restart_keeps_the_ports(client: httpx.AsyncClient) -> None:
    f = Fleet(["alpha", "beta"])
    async with f:
        ports = [p.port for p in f]
        assert 0 not in ports
    assert not f["alpha"].running
    with pytest.raises(httpx.ConnectError):
        await chat(client, f["alpha"])
    async with f:
        assert [p.port for p in f] == ports
        assert (await chat(client, f["alpha"])).status_code == 200


async def test_control_plane_on_provider_port(fleet: Fleet, client: httpx.AsyncClient) -> None:
    alpha = fleet["alpha"]
    sim = alpha.base_url.removesuffix("/v1") + "/_sim"
    r = await client.post(f"{sim}/knobs", json={"error_rate": 1.0, "error_status": 503})
    assert r.status_code == 200
    assert r.json()["error_status"] == 503
    assert (await client.get(f"{sim}/knobs")).json()["error_rate"] == 1.0
    assert (await chat(client, alpha)).status_code == 503
    r = await client.post(f"{sim}/knobs", json={"bogus": 1})
    assert r.status_code == 400
    assert "bogus" in r.json()["error"]["message"]
    assert (await client.post(f"{sim}/knobs", json=[1])).status_code == 400
    stats = (await client.get(f"{sim}/stats")).json()
    assert stats["requests"] == 1
    assert stats["errors_by_status"] == {"503": 1}
    assert (await client.post(f"{sim}/reset")).status_code == 200
    assert alpha.behavior == FAST
    assert (await client.get(f"{sim}/stats")).json()["requests"] == 0
    # Switching itself off over its own port still answers, then the port is closed.
    r = await client.post(f"{sim}/knobs", json={"outage": "refused"})
    assert r.status_code == 200
    with pytest.raises(httpx.ConnectError):
        await client.get(f"{sim}/stats")
    alpha.set(outage=None)
    assert (await chat(client, alpha)).status_code == 200


async def test_fleet_control_server_reaches_refused_providers(client: httpx.AsyncClient) -> None:
    async with Fleet({"alpha": FAST, "beta": FAST}, control_port=0) as f:
        assert f.control_url is not None
        ctl = f.control_url
        r = await client.post(f"{ctl}/alpha/knobs", json={"outage": "refused"})
        assert r.status_code == 200
        with pytest.raises(httpx.ConnectError):
            await chat(client, f["alpha"])
        assert (await chat(client, f["beta"])).status_code == 200
        assert (await client.get(f"{ctl}/alpha/knobs")).json()["outage"] == "refused"
        assert (await client.post(f"{ctl}/alpha/knobs", json={"nope": 1})).status_code == 400
        assert (await client.get(f"{ctl}/nobody/stats")).status_code == 404
        assert (await client.post(f"{ctl}/alpha/reset")).status_code == 200
        assert (await chat(client, f["alpha"])).status_code == 200
        everything = (await client.get(f"{ctl}/stats")).json()
        assert set(everything) == {"alpha", "beta"}
        assert everything["beta"]["ok"] == 1
        assert (await client.post(f"{ctl}/reset")).status_code == 200
        assert f.stats()["beta"]["ok"] == 0


# --- thread mode and construction -------------------------------------------------------------


def test_threaded_fleet_serves_sync_callers() -> None:
    with Fleet({"alpha": FAST}).threaded() as f, httpx.Client(timeout=10.0) as c:
        alpha = f["alpha"]
        url = f"{alpha.base_url}/chat/completions"
        body = {"model": "m", "messages": MESSAGES}
        assert c.post(url, json=body).status_code == 200
        alpha.set(outage="refused")  # hops onto the fleet's loop from this thread
        with pytest.raises(httpx.ConnectError):
            c.post(url, json=body)
        alpha.set(outage=None)
        assert c.post(url, json=body).status_code == 200
        alpha.set(hang=True)
        with pytest.raises(httpx.ReadTimeout):
            c.post(url, json=body, timeout=0.2)
        stats = f.stats()["alpha"]
        assert (stats["ok"], stats["hung"]) == (2, 1)
        f.reset()
        assert f.stats()["alpha"]["requests"] == 0
    with httpx.Client() as c, pytest.raises(httpx.ConnectError):
        c.post(url, json=body)


def test_fleet_accepts_several_provider_specs() -> None:
    f = Fleet({"a": 5001, "b": Behavior(latency_ms=3.0), "c": (5003, Behavior(reply="c"))})
    assert [(p.name, p.port) for p in f] == [("a", 5001), ("b", 0), ("c", 5003)]
    assert f["b"].behavior.latency_ms == 3.0
    assert f["c"].base_url == "http://127.0.0.1:5003/v1"
    assert [p.port for p in Fleet(["x:5004", "y"])] == [5004, 0]
    assert parse_provider_spec("alpha:4101") == ("alpha", 4101)
    assert parse_provider_spec("alpha") == ("alpha", 0)
    for bad in ("", ":1", "a:port", "a:70000"):
        with pytest.raises(ValueError):
            parse_provider_spec(bad)
    with pytest.raises(ValueError, match="duplicate"):
        Fleet(["a", "a:5000"])
    with pytest.raises(ValueError):
        Fleet([])


def test_default_fleet() -> None:
    assert {name: port for name, (port, _) in DEFAULT_FLEET.items()} == {
        "alpha": 4101,
        "beta": 4102,
        "gamma": 4103,
    }
    f = default_fleet(ephemeral=True)
    assert [p.port for p in f] == [0, 0, 0]
    latencies = [p.behavior.latency_ms for p in f]
    assert latencies == sorted(latencies)
    # The fleet owns copies: changing one must not leak into DEFAULT_FLEET.
    f["alpha"].set(error_rate=1.0)
    assert DEFAULT_FLEET["alpha"][1].error_rate == 0.0
    assert [p.port for p in default_fleet()] == [4101, 4102, 4103]


# --- scripted content -------------------------------------------------------------------------

SCRIPTS = [
    Script(r"(?i)invoice", '{"total": 12.5, "vendor": "{provider}"}', logprobs=-1.5),
    Script(r"(?i)invoice", "never reached: the first match wins"),
    Script(r"refund", "", refusal="I can't help with refunds."),
    Script(r"essay", "It was a dark and", finish_reason="length"),
    Script(r"(?m)^SYSTEM-ONLY$", "matched the system message"),
]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def test_scripts_first_match_wins_else_reply(fleet: Fleet, client: httpx.AsyncClient) -> None:
    alpha = fleet["alpha"]
    alpha.set(scripts=SCRIPTS)
    body = (await chat(client, alpha, messages=user("Extract this INVOICE"))).json()
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": '{"total": 12.5, "vendor": "alpha"}',
    }
    assert choice["finish_reason"] == "stop"
    assert "logprobs" not in choice  # scripted, but the request did not ask for them
    assert body["usage"]["completion_tokens"] == estimate_tokens(choice["message"]["content"])
    plain = (await chat(client, alpha, messages=user("hello"))).json()["choices"][0]
    assert plain["message"]["content"] == "Hello from alpha."
    cut = (await chat(client, alpha, messages=user("write an essay"))).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("It was a dark and", "length")
    # Every role's content is searched, one message per line.
    messages = [{"role": "system", "content": "SYSTEM-ONLY"}, {"role": "user", "content": "hi"}]
    r = await chat(client, alpha, messages=messages)
    assert r.json()["choices"][0]["message"]["content"] == "matched the system message"
    assert fleet["beta"].behavior.scripts == []  # per provider


async def test_refusal_is_the_openai_field(fleet: Fleet, client: httpx.AsyncClient) -> None:
    alpha = fleet["alpha"]
    alpha.set(scripts=SCRIPTS)
    body = (await chat(client, alpha, messages=user("I want a refund"))).json()
    message = body["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": None,
        "refusal": "I can't help with refunds.",
    }
    assert body["usage"]["completion_tokens"] == estimate_tokens("I can't help with refunds.")
    # A reply given with a refusal is kept as the content.
    alpha.set(scripts=[Script("x", "Partial answer.", refusal="No more.")])
    message = (await chat(client, alpha, messages=user("x"))).json()["choices"][0]["message"]
    assert (message["content"], message["refusal"]) == ("Partial answer.", "No more.")


def mean_logprob(entries: list[dict[str, Any]]) -> float:
    return float(sum(e["logprob"] for e in entries)) / len(entries)


@pytest.mark.parametrize("mean", [-1.5, -0.2, 0.0])
async def test_logprobs_average_the_scripted_value(
    fleet: Fleet, client: httpx.AsyncClient, mean: float
) -> None:
    alpha = fleet["alpha"]
    reply = "An answer long enough to span a dozen simulated tokens."
    alpha.set(scripts=[Script("q", reply, logprobs=mean)])
    choice = (await chat(client, alpha, messages=user("q"), logprobs=True)).json()["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == reply
    assert len(entries) == estimate_tokens(reply)
    assert mean_logprob(entries) == pytest.approx(mean)
    assert all(e["logprob"] <= 0 for e in entries)
    assert all(e["bytes"] == list(e["token"].encode()) and e["top_logprobs"] == [] for e in entries)
    assert choice["logprobs"]["refusal"] is None
    top = (await chat(client, alpha, messages=user("q"), logprobs=True, top_logprobs=2)).json()
    first = top["choices"][0]["logprobs"]["content"][0]
    assert first["top_logprobs"] == [
        {"token": first["token"], "logprob": first["logprob"], "bytes": first["bytes"]}
    ]
    # Not scripted with logprobs: none come back even when asked (null, as OpenAI may send).
    alpha.set(scripts=[])
    plain = (await chat(client, alpha, logprobs=True)).json()["choices"][0]
    assert "logprobs" not in plain


async def test_streams_use_the_scripted_answer(fleet: Fleet, client: httpx.AsyncClient) -> None:
    alpha = fleet["alpha"]
    alpha.set(scripts=SCRIPTS, stream_chunks=3)
    data = await stream_data(client, alpha, messages=user("invoice"), logprobs=True)
    chunks = [json.loads(d) for d in data[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content == '{"total": 12.5, "vendor": "alpha"}'
    entries = [e for c in chunks[:3] for e in c["choices"][0]["logprobs"]["content"]]
    assert "".join(e["token"] for e in entries) == content
    assert mean_logprob(entries) == pytest.approx(-1.5)
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    data = await stream_data(client, alpha, messages=user("an essay"))
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
        "It was a dark and"
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("logprobs" not in c["choices"][0] for c in chunks)
    data = await stream_data(client, alpha, messages=user("refund"))
    deltas = [json.loads(d)["choices"][0]["delta"] for d in data[:-1]]
    assert "".join(d.get("refusal", "") for d in deltas) == "I can't help with refunds."
    assert not any(d.get("content") for d in deltas)
    assert fleet.stats()["alpha"]["ok"] == 3


async def test_scripts_are_knobs(fleet: Fleet, client: httpx.AsyncClient) -> None:
    alpha = fleet["alpha"]
    before = dataclasses.replace(alpha.behavior)
    bad: list[Any] = [
        "not a list",
        [{"pattern": "("}],
        [{"pattern": "(", "reply": "x"}],
        [{"pattern": "x", "reply": "y", "colour": "red"}],
        [{"pattern": "x", "reply": "y", "finish_reason": "done"}],
        [{"pattern": "x", "reply": "y", "logprobs": 0.5}],
        [{"pattern": "x", "reply": "y", "logprobs": "low"}],
        [{"pattern": "x", "reply": 3}],
        [42],
    ]
    for scripts in bad:
        with pytest.raises(ValueError, match="script"):
            alpha.set(scripts=scripts)
    assert alpha.behavior == before
    # JSON over the control plane: a list of objects in, the same objects back.
    sim = alpha.base_url.removesuffix("/v1") + "/_sim"
    wanted = {
        "pattern": "(?i)hello",
        "reply": "scripted",
        "finish_reason": "stop",
        "logprobs": -3.0,
        "refusal": None,
    }
    r = await client.post(
        f"{sim}/knobs",
        json={"scripts": [{"pattern": "(?i)hello", "reply": "scripted", "logprobs": -3}]},
    )
    assert r.status_code == 200 and r.json()["scripts"] == [wanted]
    assert alpha.behavior.scripts == [Script("(?i)hello", "scripted", logprobs=-3.0)]
    assert (await chat(client, alpha)).json()["choices"][0]["message"]["content"] == "scripted"
    r = await client.post(f"{sim}/knobs", json={"scripts": [{"reply": "no pattern"}]})
    assert r.status_code == 400 and "pattern" in r.json()["error"]["message"]
    assert (await client.get(f"{sim}/knobs")).json()["scripts"] == [wanted]
    alpha.reset()
    assert alpha.behavior.scripts == []


async def test_initial_scripts_survive_reset_and_callers_list() -> None:
    mine = [{"pattern": "a", "reply": "first"}]
    async with Fleet({"alpha": Behavior(latency_ms=1.0, scripts=mine)}) as f:  # type: ignore[arg-type]
        alpha = f["alpha"]
        assert alpha.behavior.scripts == [Script("a", "first")]
        mine.append({"pattern": "b", "reply": "second"})
        alpha.set(scripts=[Script("a", "changed")])
        alpha.reset()
        assert alpha.behavior.scripts == [Script("a", "first")]


async def test_scripted_content_through_litellm(fleet: Fleet) -> None:
    import litellm

    alpha = fleet["alpha"]
    alpha.set(scripts=SCRIPTS)
    common: dict[str, Any] = {
        "model": "openai/sim-alpha",
        "api_base": alpha.base_url,
        "api_key": "sk-sim-test",
    }
    response = await litellm.acompletion(messages=user("invoice"), logprobs=True, **common)
    choice = response.choices[0]
    assert choice.message.content == '{"total": 12.5, "vendor": "alpha"}'
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.content
    values = [token.logprob for token in logprobs.content]
    assert sum(values) / len(values) == pytest.approx(-1.5)
    refused = await litellm.acompletion(messages=user("refund"), **common)
    assert refused.choices[0].message.content is None
    assert refused.choices[0].message.refusal == "I can't help with refunds."
    cut = await litellm.acompletion(messages=user("essay"), **common)
    assert cut.choices[0].finish_reason == "length"
    stream = await litellm.acompletion(messages=user("invoice"), stream=True, **common)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == '{"total": 12.5, "vendor": "alpha"}'
