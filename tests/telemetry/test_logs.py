"""structlog decision events: trace correlation, formats, levels, redaction."""

from __future__ import annotations

import io
import json
import random
import re
from typing import Any

import pytest
import structlog

from router.telemetry import Telemetry
from router.telemetry._logs import REDACTED, JsonLines, make_logger, mask, redact
from router.testing import fail

from .conftest import MSG, Fake, Otel, attrs_of, call_span, make_fake, make_otel


async def test_decision_event_carries_the_call_spans_ids(fake: Fake, otel: Otel) -> None:
    fake.backend.script("a", fail(503, latency=0.1))
    await fake.router.acompletion("chat", MSG)
    (event,) = otel.logs()
    call = call_span(otel.spans())
    assert call.context is not None
    assert event["event"] == "router.call_completed" and event["level"] == "info"
    assert event["trace_id"] == format(call.context.trace_id, "032x")
    assert event["span_id"] == format(call.context.span_id, "016x")
    assert event["group"] == "chat" and event["deployment"] == "b"
    assert event["outcome"] == "success"
    assert event["reason"] == attrs_of(call)["router.route.reason"]
    assert event["attempts"] == 2 and event["tried"] == ["a", "b"]
    assert event["failovers"] == 1 and event["hedged"] is False
    assert event["latency_s"] == pytest.approx(0.1)
    assert event["cost_usd"] > 0
    assert event["timestamp"].endswith("Z")


async def test_failed_call_event_names_the_error_not_its_message(fake: Fake, otel: Otel) -> None:
    for name in "abc":
        fake.backend.script(name, fail(503))
    with pytest.raises(Exception, match="fake 503"):
        await fake.router.acompletion("chat", MSG)
    (event,) = otel.logs()
    assert event["event"] == "router.call_failed" and event["level"] == "warning"
    assert event["error"] == "ServiceUnavailableError 503"
    assert event["error_type"] == "ServiceUnavailableError"
    assert event["deployment"] is None and event["outcome"] == "failed"
    assert "fake 503" not in json.dumps(event)


async def test_breaker_transitions_are_logged(otel: Otel) -> None:
    fake = make_fake(otel.telemetry, breaker_consecutive_failures=1)
    fake.backend.script("a", fail(503))
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as parent:
        await fake.router.acompletion("chat", MSG)
    opened, completed = otel.logs()
    assert opened["event"] == "router.breaker_opened" and opened["level"] == "warning"
    assert opened["deployment"] == "a" and opened["from"] == "closed" and opened["to"] == "open"
    assert opened["open_for_s"] >= 1.0  # the default open period (a constant 1 s)
    assert "ServiceUnavailableError 503" in opened["why"]
    # Logged as it happens, inside the caller's trace (the call's own span comes at the end).
    assert opened["trace_id"] == completed["trace_id"]
    assert opened["span_id"] == format(parent.get_span_context().span_id, "016x")
    fake.clock.advance(40.0)
    await fake.router.acompletion("chat", MSG)
    events = [line["event"] for line in otel.logs()]
    assert events[2:] == [
        "router.breaker_half_open",
        "router.breaker_closed",
        "router.call_completed",
    ]


async def test_console_format_for_terminals() -> None:
    otel = make_otel(log_format="console")
    fake = make_fake(otel.telemetry)
    await fake.router.acompletion("chat", MSG)
    line = otel.log.getvalue()
    assert "router.call_completed" in line and "deployment=a" in line
    assert not line.lstrip().startswith("{")


async def test_auto_format_is_json_when_not_a_terminal() -> None:
    log = io.StringIO()
    fake = make_fake(Telemetry(tracing=False, metrics=False, log_file=log))
    await fake.router.acompletion("chat", MSG)
    assert json.loads(log.getvalue())["event"] == "router.call_completed"


async def test_log_level_filters() -> None:
    log = io.StringIO()
    fake = make_fake(Telemetry(tracing=False, metrics=False, log_file=log, log_level="warning"))
    await fake.router.acompletion("chat", MSG)
    assert log.getvalue() == ""
    fake.backend.script("a", fail(400))
    with pytest.raises(Exception, match="fake 400"):
        await fake.router.acompletion("chat", MSG)
    assert json.loads(log.getvalue())["event"] == "router.call_failed"


def test_redaction_masks_secret_fields_and_key_shaped_strings() -> None:
    event = {"event": "x", "api_key": "anything", "Authorization": "Bearer abc.def", "n": 3}
    out = redact(None, "info", dict(event))
    assert out["api_key"] == REDACTED and out["Authorization"] == REDACTED and out["n"] == 3
    line = json.dumps({"note": "called with sk-live-1234567890abcdef", "l": ["Bearer tok_123"]})
    masked = mask(None, "info", line)
    assert "sk-live" not in masked and "tok_123" not in masked
    assert masked.count(REDACTED) == 2
    clean = '{"event": "router.call_completed", "reason": "served by a (cheapest)"}'
    assert mask(None, "info", clean) is clean


def test_a_secret_in_any_field_never_reaches_the_log() -> None:
    log = io.StringIO()
    telemetry = Telemetry(tracing=False, metrics=False, log_file=log)
    telemetry._logger.info(
        "router.test", api_key="sk-abc-1234567890", nested={"k": "sk-zzz-99999999"}
    )
    line = log.getvalue()
    assert "sk-abc" not in line and "sk-zzz" not in line
    assert json.loads(line)["api_key"] == REDACTED


def test_the_global_structlog_configuration_is_left_alone() -> None:
    before = structlog.get_config()
    Telemetry(tracing=False, metrics=False, log_file=io.StringIO())
    assert structlog.get_config() == before
    assert not structlog.is_configured() or before == structlog.get_config()


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class _Structlogged:
    def __structlog__(self) -> str:
        return "as-structlog"


def _random_event(rng: random.Random) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    values: list[Any] = [
        3,
        2.5,
        None,
        True,
        "served by a (cheapest)",
        "called with sk-live-1234567890abcdef",
        "Bearer tok_123",
        ["a", "b"],
        {"nested": "AKIA" + "A" * 16},
        _Opaque(),
        _Structlogged(),
        # What the encoder must render as the pipeline's json.dumps does: tiny and special
        # floats, non-ASCII text (escaped), tuples, nesting.
        2.2e-06,
        float("nan"),
        float("-inf"),
        "héllo ☃ \u2028 \"q\"",
        (1, "two", None),
        {"k": [1.5, {"deep": False}]},
    ]
    names = ["group", "deployment", "api_key", "Authorization", "PASSWORD", "tried", "n", "x"]
    fields = {name: rng.choice(values) for name in rng.sample(names, rng.randrange(len(names)))}
    if rng.random() < 0.3:
        return "router.step_%s_%d", ("done", rng.randrange(9)), fields
    return rng.choice(["router.call_completed", "router.call_failed"]), (), fields


_STAMP = re.compile(r'"timestamp": "[0-9T:.\-]+Z"')


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_direct_json_lines_are_the_structlog_pipelines_lines(level: str) -> None:
    """`JsonLines` (the JSON format's writer) against the structlog pipeline it replaces:
    the same line for every event (timestamps aside), the same level filtering."""
    rng = random.Random(level)
    direct_out, structlog_out = io.StringIO(), io.StringIO()
    direct = make_logger(direct_out, "json", level)
    piped = make_logger(structlog_out, "json", level, direct=False)
    assert isinstance(direct, JsonLines) and not isinstance(piped, JsonLines)
    for _ in range(200):
        method = rng.choice(["debug", "info", "warning", "error"])
        event, args, fields = _random_event(rng)
        getattr(direct, method)(event, *args, **dict(fields))
        getattr(piped, method)(event, *args, **dict(fields))
    lines = direct_out.getvalue()
    assert _STAMP.sub("T", lines) == _STAMP.sub("T", structlog_out.getvalue())
    assert "sk-live" not in lines and "tok_123" not in lines and "AKIA" not in lines
    assert lines.count("\n") > 0 or level == "error"
