"""`field`: the same answer as ``getattr(obj, name, None)`` on litellm objects and others."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import litellm
import pytest
from litellm.types.utils import ModelResponseStream

from router._fields import field


def _chunks() -> list[Any]:
    plain = ModelResponseStream(
        id="c1", model="m", choices=[{"index": 0, "delta": {"content": "hi"}}]
    )
    last = ModelResponseStream(
        id="c1", model="m", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]
    )
    last.usage = litellm.Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    response = litellm.ModelResponse(
        id="r1", model="m", choices=[{"index": 0, "message": {"content": "x"}}]
    )
    return [plain, last, plain.choices[0], last.choices[0], plain.choices[0].delta, response]


class WithProperty:
    @property
    def usage(self) -> str:
        return "computed"


@pytest.mark.parametrize(
    "name",
    [
        "usage",
        "choices",
        "id",
        "model",
        "delta",
        "finish_reason",
        "content",
        "missing",
        "_hidden_params",
        "_missing_private",
    ],
)
def test_same_as_getattr_on_litellm_objects(name: str) -> None:
    for obj in _chunks():
        assert field(obj, name) == getattr(obj, name, None), (type(obj).__name__, name)


def test_same_as_getattr_on_plain_objects_and_properties() -> None:
    assert field(SimpleNamespace(usage=1), "usage") == 1
    assert field(SimpleNamespace(), "usage") is None
    assert field(WithProperty(), "usage") == "computed"
    assert field(object(), "usage") is None
    assert field({"usage": 1}, "usage") is None  # a dict's keys are not attributes
