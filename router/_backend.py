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
from router._threaded import ThreadedStream, in_thread, sync_call

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


class Embedder(Protocol):
    """A transport that can also embed (`LiteLLMTransport`, `router.testing.FakeBackend`)."""

    async def embed(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        """One embedding attempt; returns a litellm `EmbeddingResponse` or raises."""


class LiteLLMTransport:
    """The real transport: `litellm.acompletion` with retries off and an explicit timeout.

    A call that came in through the sync API uses litellm's sync API instead, in a worker
    thread (router._threaded), so litellm fires the events of a sync call.
    """

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
        from router._embeddings import NoRetryClients

        self._no_retry = NoRetryClients()
        self._openai_embed: dict[str, bool] = {}

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
            # The prices of providers.toml, per call: litellm's own response_cost (and what its
            # callbacks receive) is then the router's price, as litellm.Router does it.
            if deployment.input_cost_per_token is not None:
                static["input_cost_per_token"] = deployment.input_cost_per_token
            if deployment.output_cost_per_token is not None:
                static["output_cost_per_token"] = deployment.output_cost_per_token
            # `_hidden_params["model_id"]` (litellm.Router puts its deployment id there).
            static["model_info"] = {"id": deployment.name}
            self._static[deployment.name] = static
        return static

    def _call(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        # A keyword both the call and the deployment's litellm_params set: the call's wins, as
        # in litellm.Router (endpoint and credential keywords never get here for a group: the
        # router refuses them). Retries stay off whatever the call says.
        kwargs = {**self._kwargs(deployment), **request}
        kwargs["timeout"] = _stable(deployment, timeout)
        kwargs["num_retries"] = kwargs["max_retries"] = 0
        return kwargs

    async def complete(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        kwargs = self._call(deployment, request, timeout)
        with self.quiet.scope(request):
            if sync_call():  # litellm's sync API for a sync call (router._threaded)
                return await in_thread(self._litellm.completion, **kwargs)
            return await self._litellm.acompletion(**kwargs)

    async def stream(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> AsyncIterator[Any]:
        kwargs = self._call(deployment, request, timeout)
        kwargs["stream"] = True
        from router._stream_guard import guard_stream

        with self.quiet.scope(request):
            # The router's checks on litellm's stream (router._stream_guard): a provider error
            # before the first chunk is raised as itself; a synthesized finish_reason raises.
            if sync_call():  # litellm's sync stream, read in worker threads (router._threaded)
                opened = await in_thread(self._litellm.completion, **kwargs)
                return ThreadedStream(guard_stream(opened))
            stream: AsyncIterator[Any] = guard_stream(await self._litellm.acompletion(**kwargs))
        return stream

    async def embed(
        self, deployment: Deployment, request: Mapping[str, Any], timeout: float
    ) -> Any:
        kwargs = self._call(deployment, request, timeout)
        sync = sync_call()
        if "client" not in kwargs and self._openai_protocol(deployment):
            key = kwargs.get("api_key") or os.environ.get("OPENAI_API_KEY")
            if key:
                base = kwargs.get("api_base") or "https://api.openai.com/v1"
                kwargs["client"] = self._no_retry.get(base, key, sync)
        with self.quiet.scope(request):
            if sync:
                return await in_thread(self._litellm.embedding, **kwargs)
            return await self._litellm.aembedding(**kwargs)

    def _openai_protocol(self, deployment: Deployment) -> bool:
        """Whether litellm embeds for this deployment with the OpenAI SDK (router._embeddings)."""
        known = self._openai_embed.get(deployment.name)
        if known is None:
            try:
                provider = self._litellm.get_llm_provider(model=deployment.model)[1]
            except Exception:  # unknown to litellm: it will say so on the call
                provider = None
            known = self._openai_embed[deployment.name] = provider == "openai"
        return known


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
