"""The transport seam: the only module that calls litellm to talk to a provider.

`LiteLLMTransport` wraps `litellm.acompletion` with the router's rules: litellm's own retries
are off (``num_retries=0``, ``max_retries=0``) and every attempt carries an explicit timeout.
Prices, context windows and token counts are the other half of the seam, the catalogue
(`router._catalogue`). `Backend` is both halves in one object, as `router.testing.FakeBackend`
and the eval replay provide them.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from router._catalogue import Catalogue
from router._quiet import QuietLogging

if TYPE_CHECKING:
    from router._config import Deployment


class Transport(Protocol):
    """How an attempt reaches a provider: one call, or one stream."""

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        """One non-streaming attempt; returns a litellm `ModelResponse` or raises."""

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        """Open one streaming attempt; returns an async iterator of litellm chunks."""


class Backend(Transport, Catalogue, Protocol):
    """A transport that is its own catalogue (fakes, the eval replay, the tool pool)."""


class LiteLLMTransport:
    """The real transport: `litellm.acompletion` with retries off and an explicit timeout."""

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
        # litellm's logging work is skipped on calls nobody listens to (router._quiet).
        self.quiet = QuietLogging(litellm)
        # Per-deployment static kwargs (model, resolved key/base, pass-through params), built on
        # first use so a missing env var is reported when the deployment is used, not at load.
        self._static: dict[str, dict[str, Any]] = {}

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
        with self.quiet.scope(request):
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
        from router._stream_guard import guard_stream

        with self.quiet.scope(request):
            # The router's checks on litellm's stream (router._stream_guard): a provider error
            # before the first chunk is raised as itself; a synthesized finish_reason raises.
            stream: AsyncIterator[Any] = guard_stream(await self._litellm.acompletion(**kwargs))
        return stream


def _stable(deployment: Deployment, timeout: float) -> float:
    """The timeout handed to litellm: the deployment's own, else the attempt's rounded up.

    litellm keys its cached HTTP clients by timeout; passing "time left until the deadline"
    (a new float on every call) built a new client and a new TCP connection per call. The
    engine's own timeout scope enforces the exact attempt budget, so litellm only needs a
    stable bound that is never shorter than it.
    """
    return deployment.timeout if deployment.timeout is not None else float(math.ceil(timeout))


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
