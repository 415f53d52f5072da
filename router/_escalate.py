"""Escalation after the output: is this answer good enough, or does a stronger model try?

A group names its escalation group (``escalate_to``) and the triggers (``escalate_on``) that
make an answer unacceptable, checked in the order given:

- ``schema``: the answer does not validate against the requested JSON schema
  (``response_format={"type": "json_schema", ...}``) or pydantic model;
- ``invalid_json``: JSON was requested and the answer does not parse;
- ``length``: ``finish_reason`` is ``length`` (cut at max_tokens);
- ``empty``: no content and no tool calls;
- ``refusal``: the provider's ``refusal`` field, or an answer opening with a refusal phrase
  (a text heuristic, the only one in the router: refusals have no status code);
- ``low_confidence``: the mean token logprob is under ``min_logprob`` (when the provider
  returned logprobs), or a ``confidence`` field of the structured output is under
  ``min_confidence``;
- ``validator:NAME``: a callable registered with `register_validator` returns False or a
  message (sync or async; it gets the response and the request);
- ``learned:NAME``: the ``[classifiers.NAME] kind = "learned"`` answer check (an artifact of
  ``router eval fit --policy cascade``, see router._learned) finds a problem.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Validator = Callable[[Any, Mapping[str, Any]], Any]
"""Gets (response, request); returns None/True if fine, False or a message if not."""

_VALIDATORS: dict[str, Validator] = {}

_REFUSAL = re.compile(
    r"^\s*(i'?m sorry,? but |sorry,? )?(i|we) (can(no|')t|am unable to|won'?t|will not) "
    r"(help|assist|provide|comply|do that)",
    re.IGNORECASE,
)


def register_validator(name: str, fn: Validator) -> None:
    """Make `fn` usable as the escalation trigger ``validator:<name>``."""
    _VALIDATORS[name] = fn


def _content(response: Any) -> tuple[str, Any]:
    choices = getattr(response, "choices", None) or []
    if not choices:
        return "", None
    message = getattr(choices[0], "message", None)
    return (getattr(message, "content", None) or ""), message


def _wants_json(response_format: Any) -> bool:
    if response_format is None:
        return False
    if isinstance(response_format, Mapping):
        return response_format.get("type") in ("json_object", "json_schema")
    return isinstance(response_format, type)  # a pydantic model


def _schema_problem(response_format: Any, content: str) -> str | None:
    if isinstance(response_format, type) and hasattr(response_format, "model_validate_json"):
        try:
            response_format.model_validate_json(content)
        except Exception as exc:  # pydantic ValidationError: first line is the summary
            errors = getattr(exc, "errors", None)
            if callable(errors):
                first = errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "value"
                return f"{where}: {first.get('msg')}"
            return str(exc).splitlines()[0]
        return None
    if not isinstance(response_format, Mapping):
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if schema is None:
        return None
    try:
        document = json.loads(content)
    except ValueError as exc:
        return f"not JSON: {exc}"
    import jsonschema

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(document)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


def _mean_logprob(response: Any) -> float | None:
    choices = getattr(response, "choices", None) or []
    logprobs = getattr(choices[0], "logprobs", None) if choices else None
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if content is None and isinstance(logprobs, Mapping):
        content = logprobs.get("content")
    values = []
    for token in content or ():
        value = (
            token.get("logprob") if isinstance(token, Mapping) else getattr(token, "logprob", None)
        )
        if isinstance(value, int | float):
            values.append(float(value))
    return sum(values) / len(values) if values else None


async def first_failure(
    response: Any,
    request: Mapping[str, Any],
    triggers: Sequence[str],
    *,
    min_logprob: float | None,
    min_confidence: float | None,
    validators: Mapping[str, Validator],
) -> tuple[str, str] | None:
    """(trigger, detail) of the first trigger the answer fails, or None if it passes all."""
    content, message = _content(response)
    response_format = request.get("response_format")
    for trigger in triggers:
        detail: str | None = None
        if trigger == "length":
            choices = getattr(response, "choices", None) or []
            if choices and getattr(choices[0], "finish_reason", None) == "length":
                detail = "the answer was cut at max_tokens"
        elif trigger == "empty":
            if not content.strip() and not getattr(message, "tool_calls", None):
                detail = "no content"
        elif trigger == "refusal":
            refusal = getattr(message, "refusal", None)
            if refusal or _REFUSAL.search(content):
                detail = f"refused: {(refusal or content).strip()[:60]!r}"
        elif trigger == "invalid_json":
            if _wants_json(response_format):
                try:
                    json.loads(content)
                except ValueError as exc:
                    detail = f"not JSON ({exc})"
        elif trigger == "schema":
            if _wants_json(response_format):
                detail = _schema_problem(response_format, content)
        elif trigger == "low_confidence":
            detail = _low_confidence(response, content, min_logprob, min_confidence)
        elif trigger.startswith(("validator:", "learned:")):
            name = trigger.partition(":")[2]
            if trigger.startswith("learned:"):  # the router loads these from the config
                fn = validators.get(trigger)
            else:
                fn = validators.get(name) or _VALIDATORS.get(name)
            if fn is None:
                detail = f"no validator registered as '{name}'"
            else:
                verdict = fn(response, request)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
                if verdict is False:
                    detail = "rejected"
                elif isinstance(verdict, str) and verdict:
                    detail = verdict
        if detail is not None:
            return trigger, detail
    return None


def _low_confidence(
    response: Any, content: str, min_logprob: float | None, min_confidence: float | None
) -> str | None:
    if min_logprob is not None:
        mean = _mean_logprob(response)
        if mean is not None and mean < min_logprob:
            return f"mean token logprob {mean:.2f} < {min_logprob:.2f}"
    if min_confidence is not None:
        try:
            document = json.loads(content)
        except ValueError:
            return None
        value = document.get("confidence") if isinstance(document, dict) else None
        if isinstance(value, int | float) and value < min_confidence:
            return f"confidence {value:.2f} < {min_confidence:.2f}"
    return None
