"""What a served response says about itself is read once per attempt (router._decision's
`ResponseInfo.of`, router._catalogue's `tokens_cost`): the fast paths read what plain
``getattr`` reads, on litellm's own response objects and on plain ones, and an attempt's cost
and the decision's token counts come from the same read."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import litellm
import pytest

from router import Router
from router._catalogue import tokens_cost, usage_cost
from router._decision import ResponseInfo
from router.testing import FakeBackend, FakeClock


def _reference(response: Any) -> ResponseInfo:
    """The general reading, spelled with getattr (what the record must equal)."""
    usage = getattr(response, "usage", None)
    choices = getattr(response, "choices", None) or ()
    return ResponseInfo(
        id=getattr(response, "id", None),
        model=getattr(response, "model", None),
        input_tokens=getattr(usage, "prompt_tokens", None),
        output_tokens=getattr(usage, "completion_tokens", None),
        finish_reasons=tuple(str(r) for c in choices if (r := getattr(c, "finish_reason", None))),
    )


def _litellm_response(rng: random.Random) -> Any:
    n = rng.choice([0, 1, 1, 2, 3])
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": f"answer {i}"},
            "finish_reason": rng.choice(["stop", "length", "tool_calls", None]),
        }
        for i in range(n)
    ]
    kwargs: dict[str, Any] = {
        "id": f"chatcmpl-{rng.randrange(10**6)}",
        "model": "m",
        "choices": choices,
    }
    if rng.random() < 0.8:
        kwargs["usage"] = litellm.Usage(
            prompt_tokens=rng.randrange(0, 500), completion_tokens=rng.randrange(0, 500)
        )
    return litellm.ModelResponse(**kwargs)


def _plain_response(rng: random.Random) -> Any:
    usage = rng.choice(
        [
            None,
            SimpleNamespace(prompt_tokens=rng.randrange(50), completion_tokens=None),
            SimpleNamespace(prompt_tokens=None, completion_tokens=rng.randrange(50)),
            SimpleNamespace(prompt_tokens=rng.randrange(50), completion_tokens=rng.randrange(50)),
        ]
    )
    choices = [
        SimpleNamespace(finish_reason=rng.choice(["stop", None])) for _ in range(rng.randrange(3))
    ]
    fields: dict[str, Any] = {
        "usage": usage,
        "choices": rng.choice([choices, None, tuple(choices)]),
    }
    if rng.random() < 0.7:
        fields["id"] = "x"
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("seed", range(40))
def test_response_info_reads_what_getattr_reads(seed: int) -> None:
    rng = random.Random(seed)
    for make in (_litellm_response, _plain_response):
        response = make(rng)
        assert ResponseInfo.of(response) == _reference(response)


class _Prices:
    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def price(self, deployment: Any, prompt: int, completion: int) -> float | None:
        self.asked.append((prompt, completion))
        return prompt * 1e-6 + completion * 2e-6

    def context_window(self, deployment: Any) -> int | None:
        return None

    def count_tokens(self, deployment: Any, messages: Any) -> int:
        return 0


@pytest.mark.parametrize(
    ("usage", "expected", "asked"),
    [
        (None, 0.0, []),
        (SimpleNamespace(prompt_tokens=None, completion_tokens=None), 0.0, []),
        (SimpleNamespace(prompt_tokens=10, completion_tokens=None), 10e-6, [(10, 0)]),
        (SimpleNamespace(prompt_tokens=None, completion_tokens=5), 10e-6, [(0, 5)]),
        (SimpleNamespace(prompt_tokens=3, completion_tokens=4), 3e-6 + 8e-6, [(3, 4)]),
    ],
)
def test_usage_cost_and_tokens_cost_agree(usage: Any, expected: float, asked: list[Any]) -> None:
    deployment: Any = None
    by_usage = _Prices()
    assert usage_cost(by_usage, deployment, usage) == pytest.approx(expected)
    assert by_usage.asked == asked
    by_tokens = _Prices()
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    assert tokens_cost(by_tokens, deployment, prompt, completion) == pytest.approx(expected)
    assert by_tokens.asked == asked


async def test_an_attempts_cost_and_the_decisions_tokens_come_from_the_response() -> None:
    config = {
        "deployments": [
            {
                "name": "a",
                "model": "openai/a",
                "groups": ["g"],
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 3e-6,
            }
        ]
    }
    clock = FakeClock()
    router = Router(config, backend=FakeBackend(clock), clock=clock, seed=1)
    response = await router.acompletion("g", [{"role": "user", "content": "hi"}])
    decision = response._hidden_params["router_decision"]
    info = decision.response
    assert info == _reference(response)
    assert info.input_tokens is not None and info.output_tokens is not None
    expected = info.input_tokens * 1e-6 + info.output_tokens * 3e-6
    assert decision.attempts[0].cost_usd == pytest.approx(expected)
    assert decision.cost_usd == pytest.approx(expected)
    assert response._hidden_params["response_cost"] == pytest.approx(expected)
