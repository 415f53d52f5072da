"""Embeddings: groups of embedding deployments, routed like chat, failing over only between
deployments whose vectors are interchangeable.

An embedding is only useful next to the vectors it will be compared with: a vector index built
with one model is silently corrupted by vectors from another (same length or not). So a group
of embedding deployments (``mode = "embedding"``) may only hold deployments that produce the
*same vectors*:

- the same model string, or
- deployments the user marks as interchangeable with one ``vector_space = "..."`` label (the
  same model served by two providers, e.g. OpenAI and Azure's ``text-embedding-3-small``);
- and, where declared, the same ``dimensions``.

A config that mixes them is refused at load (naming the file, deployment and key); so is a group
that mixes embedding and chat deployments. A call then gets the same health, breakers, deadline,
retry budget and decision record as a chat call, and fails over among the group's (compatible)
deployments only. A response whose vectors do not have the declared ``dimensions`` counts as a
malformed answer (failed over, against that deployment's health), never handed back.

This module imports nothing heavy: `router._config` uses `embedding_problems` at load.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router._config import Deployment

Loc = tuple[str | int, ...]

EMBEDDING = "embedding"


def vector_space(deployment: Deployment) -> str:
    """The label of the vectors a deployment produces: its ``vector_space``, else its model."""
    return deployment.vector_space or deployment.model


def embedding_problems(deployments: Sequence[Deployment]) -> list[tuple[Loc, str]]:
    """Problems of the embedding groups of a config: incompatible members, mixed modes."""
    problems: list[tuple[Loc, str]] = []
    members: dict[str, list[tuple[int, Deployment]]] = {}
    for index, dep in enumerate(deployments):
        if dep.mode != EMBEDDING:
            for key in ("vector_space", "dimensions"):
                if getattr(dep, key) is not None:
                    problems.append(
                        (
                            ("deployments", index, key),
                            f"'{key}' is for embedding deployments; set mode = \"embedding\" on "
                            f"'{dep.name}' or remove it",
                        )
                    )
        for group in dict.fromkeys(dep.groups):
            members.setdefault(group, []).append((index, dep))
    for group, entries in members.items():
        embedding = [(i, d) for i, d in entries if d.mode == EMBEDDING]
        if not embedding:
            continue
        first = embedding[0][1]
        for index, dep in entries:
            if dep.mode != EMBEDDING:
                problems.append(
                    (
                        ("deployments", index, "groups"),
                        f"group '{group}' mixes chat deployment '{dep.name}' with embedding "
                        f"deployment '{first.name}': a group is one kind of call",
                    )
                )
        space = vector_space(first)
        dims = next((d.dimensions for _, d in embedding if d.dimensions is not None), None)
        dims_from = next((d.name for _, d in embedding if d.dimensions is not None), None)
        for index, dep in embedding[1:]:
            other = vector_space(dep)
            if other != space:
                key = "vector_space" if dep.vector_space is not None else "model"
                problems.append(
                    (
                        ("deployments", index, key),
                        f"group '{group}': '{dep.name}' produces {_label(dep)} vectors but "
                        f"'{first.name}' produces {_label(first)}: an embedding group may only "
                        f"fail over between deployments that produce the same vectors (use one "
                        f"model, or give deployments that do the same vector_space)",
                    )
                )
            if dep.dimensions is not None and dims is not None and dep.dimensions != dims:
                problems.append(
                    (
                        ("deployments", index, "dimensions"),
                        f"group '{group}': '{dep.name}' has dimensions = {dep.dimensions} but "
                        f"'{dims_from}' has {dims}: vectors of different sizes cannot share "
                        f"an index",
                    )
                )
    return problems


def _label(dep: Deployment) -> str:
    if dep.vector_space is not None:
        return f"vector_space '{dep.vector_space}'"
    return f"'{dep.model}'"


def check_dimensions(deployment: Deployment, response: Any) -> None:
    """Raise litellm's `APIResponseValidationError` when vectors miss the declared size."""
    want = deployment.dimensions
    if want is None:
        return
    for item in getattr(response, "data", None) or ():
        if isinstance(item, dict):
            vector = item.get("embedding")
        else:
            vector = getattr(item, "embedding", None)
        if isinstance(vector, list) and len(vector) != want:
            import litellm

            raise litellm.APIResponseValidationError(
                f"'{deployment.name}' returned {len(vector)}-dimensional vectors; "
                f"dimensions = {want} in providers.toml",
                llm_provider="router",
                model=deployment.model,
            )


class NoRetryClients:
    """OpenAI SDK clients with retries off, for litellm's OpenAI embedding path.

    litellm 1.110.2 reads ``max_retries or DEFAULT_MAX_RETRIES`` there (llms/openai/openai.py),
    so ``max_retries=0`` is lost and the SDK retries each 429 and 5xx twice, sleeping its
    Retry-After: an attempt would wait out a rate limit instead of failing over at once. Handing
    litellm a client (its documented ``client=`` argument) whose ``max_retries`` stays 0 (litellm
    sets the defaulted 2 on a client it is given, too) keeps the router the only retry layer.
    Sync clients are shared; async ones are kept per event loop (their connections belong to
    the loop that opened them).
    """

    def __init__(self) -> None:
        import weakref

        self._sync: dict[tuple[str, str | None], Any] = {}
        self._async: weakref.WeakKeyDictionary[Any, dict[tuple[str, str | None], Any]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, api_base: str, api_key: str | None, sync: bool) -> Any:
        import openai

        key = (api_base, api_key)
        if sync:
            client = self._sync.get(key)
            if client is None:
                client = self._sync[key] = _no_retries(openai.OpenAI)(
                    api_key=api_key, base_url=api_base
                )
            return client
        import asyncio

        per_loop = self._async.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(key)
        if client is None:
            client = per_loop[key] = _no_retries(openai.AsyncOpenAI)(
                api_key=api_key, base_url=api_base
            )
        return client


_NO_RETRY_CLASSES: dict[type, type] = {}


def _no_retries(base: type) -> type:
    """A subclass of an OpenAI client class whose ``max_retries`` is always 0."""
    cls = _NO_RETRY_CLASSES.get(base)
    if cls is None:

        def get(self: Any) -> int:
            return 0

        def set_(self: Any, value: Any) -> None:
            pass  # litellm assigns its defaulted retries here: the router retries, not the SDK

        cls = type(f"NoRetry{base.__name__}", (base,), {"max_retries": property(get, set_)})
        _NO_RETRY_CLASSES[base] = cls
    return cls


def simulated_vector(space: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text` in `space` (the simulated fleet's embeddings).

    The same (space, text) always gives the same vector, on every simulated provider: a group
    failing over between deployments of one model returns identical vectors, as it would for
    real. Texts sharing words get correlated vectors (a sum of per-word vectors), so cosine
    similarity means something in the demo.
    """
    total = [0.0] * dimensions
    words = text.lower().split() or [""]
    for word in words:
        seed = hashlib.sha256(f"{space}\0{word}".encode()).digest()
        block = b""
        counter = 0
        while len(block) < 4 * dimensions:
            block += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
            counter += 1
        for i, (raw,) in enumerate(struct.iter_unpack(">I", block[: 4 * dimensions])):
            total[i] += raw / 2**31 - 1.0
    norm = math.sqrt(sum(x * x for x in total)) or 1.0
    return [round(x / norm, 6) for x in total]
