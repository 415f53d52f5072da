"""The official openai Python SDK against `router serve`: sync, async, streaming, and its
exception class for every error status the gateway answers."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from typing import Any

import httpx
import openai
import pytest

from router._sim import Fleet

from .conftest import BUDGETED, HTTP, KEY, METERED, GatewayProcess

HI: Any = [{"role": "user", "content": "hi"}]


def client(gateway: GatewayProcess) -> Any:
    return openai.OpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0)


def test_sync_completion_with_decision_headers(gateway: GatewayProcess, fresh: object) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chat", messages=HI, temperature=0.2, max_tokens=16, user="u1",
        metadata={"team": "t"}, seed=3,
    )  # fmt: skip
    reply = raw.parse()
    assert reply.choices[0].message.content == "Hello from a."
    assert reply.usage is not None and reply.usage.total_tokens > 0
    assert raw.headers["x-router-deployment"] == "a"
    assert raw.headers["x-router-attempts"] == "1"
    assert "served by a" in raw.headers["x-router-reason"]
    assert float(raw.headers["x-router-cost"]) > 0


def test_parameters_reach_the_provider(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    client(gateway).chat.completions.create(
        model="chat", messages=HI, temperature=0.5, top_p=0.9, max_tokens=7, stop=["x"],
        presence_penalty=0.1, frequency_penalty=0.2, seed=11, logit_bias={"50256": -100},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto", response_format={"type": "json_object"}, n=1,
    )  # fmt: skip
    sent = fleet["a"].last_request
    assert sent is not None
    for key, value in {
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 7, "stop": ["x"], "seed": 11,
        "presence_penalty": 0.1, "frequency_penalty": 0.2, "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    }.items():  # fmt: skip
        assert sent[key] == value, key
    assert sent["tools"][0]["function"]["name"] == "f"
    assert sent["logit_bias"] == {"50256": -100}


async def test_async_completion(gateway: GatewayProcess, fresh: object) -> None:
    c: Any
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=KEY, max_retries=0) as c:
        reply = await c.chat.completions.create(model="b", messages=HI)
        assert reply.choices[0].message.content == "Hello from b."
        stream = await c.chat.completions.create(model="chat", messages=HI, stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
        assert text == "Hello from a."


def test_streaming_with_usage(gateway: GatewayProcess, fresh: object) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from a."
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_cut_after_first_chunk_raises(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    fleet["cut"].set(cut_stream_after=2, stream_chunks=6)
    stream = client(gateway).chat.completions.create(model="cut", messages=HI, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert got, "the first chunks arrived before the cut"
    assert "interrupted" in str(caught.value)
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "stream_interrupted"


def test_raw_sse_after_a_cut_has_an_error_event_and_no_done(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    fleet["cut"].set(cut_stream_after=1, stream_chunks=4)
    body = {"model": "cut", "messages": HI, "stream": True}
    with HTTP.stream("POST", f"{gateway.base_url}/chat/completions", json=body, timeout=10) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    assert "event: error" in text
    assert "[DONE]" not in text


@pytest.mark.parametrize(
    ("body", "status", "error", "code"),
    [
        ({"model": "nope", "messages": HI}, 404, openai.NotFoundError, "model_not_found"),
        ({"model": "chat", "messages": "hi"}, 400, openai.BadRequestError, "invalid_type"),
        ({"model": "chat", "messages": HI, "temperature": "hot"}, 400, openai.BadRequestError,
         "invalid_type"),
        ({"model": "chat", "messages": HI, "max_tokens": 1.5}, 400, openai.BadRequestError,
         "invalid_type"),
        ({"model": 3, "messages": HI}, 400, openai.BadRequestError, "invalid_type"),
        ({"model": "hang", "messages": HI}, 504, openai.InternalServerError, "deadline_exceeded"),
    ],
)  # fmt: skip
def test_error_statuses_map_to_sdk_exceptions(
    gateway: GatewayProcess, fresh: object, fleet: Fleet, body: dict[str, object], status: int,
    error: type[openai.APIStatusError], code: str,
) -> None:  # fmt: skip
    fleet["slow"].set(hang=True)
    c = client(gateway)
    with pytest.raises(error) as caught:
        c.post("/chat/completions", body=body, cast_to=httpx.Response)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == code


def test_malformed_json_is_a_400(gateway: GatewayProcess) -> None:
    r = HTTP.post(
        f"{gateway.base_url}/chat/completions", content=b'{"model": "chat", ',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"


def test_oversize_body_is_a_413(gateway: GatewayProcess) -> None:
    big = {"model": "chat", "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    with pytest.raises(openai.APIStatusError) as caught:
        client(gateway).chat.completions.create(**big)
    assert caught.value.status_code == 413


def test_all_rate_limited_is_a_429_with_retry_after(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    fleet["limited"].set(rate_limit_rate=1.0, retry_after_s=3.0)
    c = client(gateway)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            c.chat.completions.create(model="limited", messages=HI)
        assert int(caught.value.response.headers["retry-after"]) >= 1


def test_none_available_is_a_503_with_reasons(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    fleet["dash"].set(outage="503")
    with pytest.raises(openai.InternalServerError) as caught:
        client(gateway).chat.completions.create(model="dash", messages=HI)
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "no_deployment_available"
    assert "dash" in body["reasons"]


def test_models_lists_groups_and_deployments(gateway: GatewayProcess) -> None:
    ids = [m.id for m in client(gateway).models.list()]
    assert ids[0] == "chat" and {"a", "b", "c", "cut"} <= set(ids)


def test_curl(gateway: GatewayProcess, fresh: object) -> None:
    body = json.dumps({"model": "chat", "messages": HI})
    out = subprocess.run(
        ["curl", "-sS", "-i", "-H", "Content-Type: application/json", "-H",
         f"Authorization: Bearer {KEY}", "-d", body,
         f"{gateway.base_url}/chat/completions"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    head, _, payload = out.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200")
    assert "x-router-deployment: a" in head
    assert json.loads(payload)["choices"][0]["message"]["content"] == "Hello from a."
    streamed = subprocess.run(
        ["curl", "-sS", "-N", "-H", f"Authorization: Bearer {KEY}", "-d",
         json.dumps({"model": "chat", "messages": HI, "stream": True}),
         f"{gateway.base_url}/chat/completions"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert streamed.rstrip().endswith("data: [DONE]")


def test_client_disconnect_cancels_the_upstream_call(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    fleet["slow"].set(hang=True)
    host, port = gateway.url.removeprefix("http://").split(":")
    payload = json.dumps({"model": "hang", "messages": HI}).encode()
    for _ in range(3):
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                + f"\r\nAuthorization: Bearer {KEY}".encode()
                + f"\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            time.sleep(0.2)  # the attempt is out, hanging at the provider
    # Closed: the gateway cancels each call at once (well before its 1 s deadline).
    time.sleep(0.3)
    metrics = HTTP.get(f"{gateway.url}/metrics").text
    assert "router_gateway_in_flight 0" in metrics
    assert 'router_deployment_in_flight{deployment="slow"} 0' in metrics
    assert 'router_gateway_requests_total{route="chat",status="499"}' in metrics


def test_client_disconnect_mid_stream_frees_the_slot(
    gateway: GatewayProcess, fresh: object, fleet: Fleet
) -> None:
    fleet["cut"].set(chunk_delay_ms=300.0, stream_chunks=20)
    body = {"model": "cut", "messages": HI, "stream": True}
    with HTTP.stream("POST", f"{gateway.base_url}/chat/completions", json=body, timeout=10) as r:
        first = next(r.iter_lines())
        assert first.startswith("data: ")
    time.sleep(0.5)
    metrics = HTTP.get(f"{gateway.url}/metrics").text
    assert "router_gateway_in_flight 0" in metrics
    assert 'router_deployment_in_flight{deployment="cut"} 0' in metrics


def test_keys_missing_wrong_and_rpm(gateway: GatewayProcess, fresh: Fleet) -> None:
    for key in (None, "sk-wrong", KEY + "x"):
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        r = httpx.post(f"{gateway.base_url}/chat/completions", headers=headers,
                       json={"model": "chat", "messages": HI})  # fmt: skip
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base_url, api_key="sk-wrong", max_retries=0).models.list()
    metered = openai.OpenAI(base_url=gateway.base_url, api_key=METERED, max_retries=0)
    codes = []
    for _ in range(3):
        try:
            metered.chat.completions.create(model="chat", messages=HI)
            codes.append(200)
        except openai.RateLimitError as exc:
            codes.append(exc.status_code)
            assert int(exc.response.headers["retry-after"]) >= 1
            assert "metered" in str(exc) and METERED not in str(exc)
    # rpm 2 in a fixed minute window: the third is refused (unless the minute just turned).
    assert codes in ([200, 200, 429], [200, 200, 200])
    lines = "\n".join(gateway.lines)
    assert KEY not in lines and METERED not in lines  # keys never in the gateway's output


def test_slow_client_gets_408_and_its_slot_back(gateway: GatewayProcess) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    payload = json.dumps({"model": "chat", "messages": HI}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            + f"\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload[:10]  # ... and the rest never comes
        )
        received = b""
        while b"request_timeout" not in received:  # headers and body may come apart
            piece = sock.recv(65536)
            if not piece:
                break
            received += piece
        answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert "request_timeout" in answer


def test_stream_cost_in_the_usage_chunk(gateway: GatewayProcess, fresh: object) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="chat", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-router-deployment"] == "a"
    assert "x-router-cost" not in raw.headers  # not known before the end: a 0 would be a lie
    chunks = list(raw.parse())
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    # Deployment a's prices in conftest.gateway_config: 1e-7 in, 4e-7 out per token.
    expected = usage.prompt_tokens * 1e-7 + usage.completion_tokens * 4e-7
    assert usage.model_extra is not None and usage.model_extra["cost"] == pytest.approx(expected)


def test_stream_trailer_without_usage_asked(gateway: GatewayProcess, fresh: object) -> None:
    body = {"model": "chat", "messages": HI, "stream": True}
    with HTTP.stream("POST", f"{gateway.base_url}/chat/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    # The gateway asked the provider for usage (to price the stream), the caller did not:
    # no usage reaches the caller, as with OpenAI itself.
    assert events and all("usage" not in e for e in events)
    assert lines[-1] == "data: [DONE]"
    trailer = dict(line[2:].split(": ", 1) for line in lines if line.startswith(": x-router-"))
    assert trailer["x-router-deployment"] == "a" and trailer["x-router-attempts"] == "1"
    assert float(trailer["x-router-cost"]) > 0
    # The trailer comes after the last chunk and just before [DONE].
    assert lines[-2].startswith(": x-router-") and lines.index(lines[-2]) > len(events)
    # Its comment lines are invisible to an SSE client: the SDK's stream is unchanged.
    chunks = list(client(gateway).chat.completions.create(model="chat", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from a."
    )


def test_stream_spend_counts_against_the_daily_budget(
    gateway: GatewayProcess, fresh: object
) -> None:
    budgeted = openai.OpenAI(base_url=gateway.base_url, api_key=BUDGETED, max_retries=0)
    # The first call is admitted (nothing spent yet) and spends more than the tiny budget,
    # through a stream whose caller never asked for usage.
    text = "".join(
        c.choices[0].delta.content or ""
        for c in budgeted.chat.completions.create(model="chat", messages=HI, stream=True)
        if c.choices
    )
    assert text == "Hello from a."
    end = time.monotonic() + 5
    while True:  # the spend is recorded as the stream ends, just after the last byte
        try:
            budgeted.chat.completions.create(model="chat", messages=HI, stream=True).close()
        except openai.RateLimitError as exc:
            assert isinstance(exc.body, dict) and exc.body["code"] == "budget_exceeded"
            break
        assert time.monotonic() < end, "a stream's spend never reached the key's budget"
        time.sleep(0.05)
