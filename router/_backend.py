"""The backend seam: the only module that calls litellm to talk to a provider.

`LiteLLMBackend` wraps `litellm.acompletion` with the router's rules: litellm's own retries are
off (``num_retries=0``, ``max_retries=0``) and every attempt carries an explicit timeout. Tests
and `router.testing` provide a scripted `FakeBackend` with the same protocol.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from router._config import Deployment


class Backend(Protocol):
    """What the engine needs from the world: one call, one stream, prices and windows."""

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        """One non-streaming attempt; returns a litellm `ModelResponse` or raises."""

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        """Open one streaming attempt; returns an async iterator of litellm chunks."""

    def cost(self, deployment: Deployment, prompt_tokens: int, completion_tokens: int) -> float:
        """USD cost of the given usage on this deployment (0.0 when unknown)."""

    def context_window(self, deployment: Deployment) -> int | None:
        """Maximum input tokens of the deployment, if known."""

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        """Estimated prompt tokens of `messages` for this deployment's model."""


class LiteLLMBackend:
    """The real backend: `litellm.acompletion` with retries off and an explicit timeout."""

    def __init__(self) -> None:
        from router._env import prepare_litellm_env

        prepare_litellm_env()
        import litellm

        # The one litellm global the router writes, deliberately: litellm prints a "Give
        # Feedback / Get Help" banner to stdout for every exception, and the router handles
        # many exceptions (each failover) on purpose. Opt out with ROUTER_LITELLM_DEBUG_INFO=1.
        if not os.environ.get("ROUTER_LITELLM_DEBUG_INFO"):
            litellm.suppress_debug_info = True
        self._litellm = litellm
        # Per-deployment static kwargs (model, resolved key/base, pass-through params), built on
        # first use so a missing env var is reported when the deployment is used, not at load.
        self._static: dict[str, dict[str, Any]] = {}
        self._price_known: dict[str, bool] = {}
        self._windows: dict[str, int | None] = {}

    def _kwargs(self, deployment: Deployment) -> dict[str, Any]:
        static = self._static.get(deployment.name)
        if static is None:
            static = dict(deployment.resolve_litellm_params())
            static["model"] = deployment.model
            api_base = deployment.resolve_api_base()
            if api_base is not None:
                static["api_base"] = api_base
            api_key = deployment.resolve_api_key()
            if api_key is not None:
                static["api_key"] = api_key
            static["num_retries"] = 0
            static["max_retries"] = 0
            self._static[deployment.name] = static
        return static

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        return await self._litellm.acompletion(
            **request, **self._kwargs(deployment), timeout=_stable(deployment, timeout)
        )

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        kwargs = {
            **request,
            **self._kwargs(deployment),
            "timeout": _stable(deployment, timeout),
            "stream": True,
        }
        stream: AsyncIterator[Any] = await self._litellm.acompletion(**kwargs)
        return stream

    def cost(self, deployment: Deployment, prompt_tokens: int, completion_tokens: int) -> float:
        configured = configured_cost(deployment, prompt_tokens, completion_tokens)
        if configured is not None:
            return configured
        model = deployment.model
        if self._price_known.get(model) is False:
            return 0.0
        try:
            prompt_cost, completion_cost = self._litellm.cost_per_token(
                model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception:  # litellm raises for models missing from its price map
            self._price_known[model] = False
            return 0.0
        self._price_known[model] = True
        return float(prompt_cost) + float(completion_cost)

    def context_window(self, deployment: Deployment) -> int | None:
        if deployment.max_context_tokens is not None:
            return deployment.max_context_tokens
        model = deployment.model
        if model not in self._windows:
            try:
                info = self._litellm.get_model_info(model)
                window = info.get("max_input_tokens") or info.get("max_tokens")
                self._windows[model] = int(window) if window else None
            except Exception:  # unknown to litellm's map
                self._windows[model] = None
        return self._windows[model]

    def count_tokens(self, deployment: Deployment, messages: Any) -> int:
        try:
            return int(self._litellm.token_counter(model=deployment.model, messages=messages))
        except Exception:  # a tokenizer problem must not fail the call; estimate instead
            return estimate_tokens(messages)


def _stable(deployment: Deployment, timeout: float) -> float:
    """The timeout handed to litellm: the deployment's own, else the attempt's rounded up.

    litellm keys its cached HTTP clients by timeout; passing "time left until the deadline"
    (a new float on every call) built a new client and a new TCP connection per call. The
    engine's own timeout scope enforces the exact attempt budget, so litellm only needs a
    stable bound that is never shorter than it.
    """
    return deployment.timeout if deployment.timeout is not None else float(math.ceil(timeout))


def configured_cost(
    deployment: Deployment, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """Cost from the prices in providers.toml, or None when the deployment sets none."""
    cin = deployment.input_cost_per_token
    cout = deployment.output_cost_per_token
    if cin is None and cout is None:
        return None
    return prompt_tokens * (cin or 0.0) + completion_tokens * (cout or 0.0)


def estimate_tokens(messages: Any) -> int:
    """A cheap token estimate (~4 characters per token) over message contents."""
    chars = 0
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        chars += len(part["text"])
    return max(1, chars // 4)


async def drain_litellm(grace: float) -> None:
    """Flush and stop litellm's logging worker, then close its async HTTP clients.

    Called on the router's own loop at interpreter exit (see `router._sync`): the callbacks
    litellm queued there (a user's litellm success/failure loggers) get up to `grace` seconds,
    and pooled connections are closed on the loop that opened them. Does nothing if litellm
    was never imported. Errors are swallowed: exit must go on.
    """
    import asyncio
    import sys

    if "litellm" not in sys.modules:
        return
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), grace)
    except BaseException:  # a slow or broken callback must not block exit
        pass
    try:
        await GLOBAL_LOGGING_WORKER.stop(timeout=grace)
    except BaseException:  # exit must go on
        pass
    try:
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        await asyncio.wait_for(close_litellm_async_clients(), grace)
    except BaseException:  # exit must go on
        pass
