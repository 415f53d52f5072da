"""Which group a request deserves: rules, classifiers, and context size.

Calls whose ``model`` is the router's ``auto_model`` (``"auto"``) run the ``[[routes]]`` in
order; the first that matches names the group (or runs a classifier whose label names it).
Every call, routed by rules or by an explicit group, then passes the context check: when the
estimated prompt plus ``max_tokens`` does not fit any window in the group, it goes to the
group's ``long_context`` group, or else to the first group with a deployment that fits; when
only some deployments are too small, they are skipped with the reason.

A classifier never fails a request: an error, an unknown label or a confidence under the
threshold falls through to the next route (the default route last), and the reason says why.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router._answers import message_texts as _contents
from router._call import classifier_reason, context_reason, fell_through, route_reason
from router._decision import Skip

if TYPE_CHECKING:
    from router._catalogue import Catalogue
    from router._config import ClassifierSettings, Config, Deployment, Match, Route

ClassifierFn = Callable[[Mapping[str, Any]], Any]
"""A classifier callable: gets the request, returns a label or (label, confidence)."""

_REGISTRY: dict[str, ClassifierFn] = {}


def register_classifier(name: str, fn: ClassifierFn) -> None:
    """Make `fn` usable as ``[classifiers.X] kind = "python", callable = "<name>"``."""
    _REGISTRY[name] = fn


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """Where the policy sends a request, and why."""

    group: str
    route: str | None = None
    reason: str | None = None
    skipped: tuple[Skip, ...] = ()
    deployments: Sequence[Deployment] | None = None
    """A subset of the group's deployments (the ones whose window fits), if any were cut."""
    label: str | None = None


@dataclass
class _Text:
    """The request's user text and token estimate, computed at most once."""

    request: Mapping[str, Any]
    count: Callable[[Any], int]
    _text: str | None = None
    _tokens: int | None = None
    _chars: int | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "\n".join(_contents(self.request.get("messages"), user_only=True))
        return self._text

    @property
    def chars(self) -> int:
        if self._chars is None:
            self._chars = sum(len(c) for c in _contents(self.request.get("messages")))
        return self._chars

    @property
    def tokens(self) -> int:
        if self._tokens is None:
            self._tokens = self.count(self.request.get("messages"))
        return self._tokens


@dataclass
class Policy:
    """Chooses the group for a request (see the module docstring)."""

    config: Config
    catalogue: Catalogue
    classify_with_llm: Callable[[str, list[dict[str, Any]], str, bool], Awaitable[Any]]
    """Calls a group for the llm classifier: (group, messages, classifier name, logprobs)."""
    classifiers: Mapping[str, ClassifierFn] = field(default_factory=dict)
    _regex: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def _count(self, messages: Any) -> int:
        deployments = self.config.deployments
        if not deployments:
            from router._catalogue import estimate_tokens

            return estimate_tokens(messages)
        return self.catalogue.count_tokens(deployments[0], messages)

    async def choose(self, model: str, request: Mapping[str, Any]) -> RouteChoice:
        """The group for this request: by rules for ``auto``, else `model`, then context."""
        text = _Text(request, self._count)
        if model == self.config.router.auto_model and self.config.routes:
            choice = await self._by_rules(request, text)
        else:
            choice = RouteChoice(model)
        return self._fit_context(choice, request, text)

    async def _by_rules(self, request: Mapping[str, Any], text: _Text) -> RouteChoice:
        notes: list[str] = []
        for route in self.config.routes:
            why = self._matches(route.when, request, text)
            if why is None:
                continue
            if route.group is not None:
                reason = route_reason(route.name, why)
                return RouteChoice(route.group, route.name, "; ".join([*notes, reason]))
            label, detail = await self._classify(route, request, text)
            group = route.classes.get(label) if label is not None else None
            if group is None:
                if label is not None:
                    detail = f"label '{label}' has no group"
                notes.append(fell_through(route.name, route.classifier, detail))
                continue
            reason = classifier_reason(route.name, route.classifier, str(label), detail)
            return RouteChoice(group, route.name, "; ".join([*notes, reason]), label=label)
        # No route matched: the auto model itself is not a group, so this is a config gap.
        raise LookupError(
            "no [[routes]] entry matched and there is no default route; add a "
            "route without 'when' last"
        )

    def _matches(self, when: Match, request: Mapping[str, Any], text: _Text) -> str | None:
        """None if a condition fails, else a short description of what matched."""
        hits: list[str] = []
        metadata = request.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        if when.keywords:
            lowered = text.text.lower()
            found = [k for k in when.keywords if k.lower() in lowered]
            if not found:
                return None
            hits.append(f"keyword '{found[0]}'")
        if when.regex is not None:
            pattern = self._regex.get(when.regex)
            if pattern is None:
                pattern = self._regex[when.regex] = re.compile(when.regex)
            if not pattern.search(text.text):
                return None
            hits.append(f"regex {when.regex!r}")
        for key, wanted in when.metadata.items():
            value = metadata.get(key)
            if not (value in wanted if isinstance(wanted, list) else value == wanted):
                return None
            hits.append(f"{key}={value}")
        if when.step is not None:
            if metadata.get("step") != when.step:
                return None
            hits.append(f"step={when.step}")
        if when.tags:
            tags = metadata.get("tags") or ()
            found = [t for t in when.tags if t in tags]
            if not found:
                return None
            hits.append(f"tag {found[0]}")
        if when.min_prompt_tokens is not None or when.max_prompt_tokens is not None:
            tokens = text.tokens
            if when.min_prompt_tokens is not None and tokens < when.min_prompt_tokens:
                return None
            if when.max_prompt_tokens is not None and tokens > when.max_prompt_tokens:
                return None
            hits.append(f"~{tokens} prompt tokens")
        if when.has_tools is not None:
            if bool(request.get("tools")) != when.has_tools:
                return None
            hits.append("tools" if when.has_tools else "no tools")
        if when.has_response_format is not None:
            if (request.get("response_format") is not None) != when.has_response_format:
                return None
            hits.append("response_format" if when.has_response_format else "no response_format")
        return ", ".join(hits)

    async def _classify(
        self, route: Route, request: Mapping[str, Any], text: _Text
    ) -> tuple[str | None, str]:
        """(label or None, detail for the reason). Never raises."""
        assert route.classifier is not None
        settings = self.config.classifiers[route.classifier]
        try:
            label, confidence = await self._run_classifier(
                route.classifier, settings, request, text
            )
        except Exception as exc:  # a classifier failure never fails the request
            return None, f"failed ({type(exc).__name__}: {exc})"
        if label is None:
            return None, "was not sure"
        if confidence is not None and confidence < settings.min_confidence:
            return None, (
                f"said '{label}' with confidence {confidence:.2f} < {settings.min_confidence:.2f}"
            )
        return label, f"(confidence {confidence:.2f})" if confidence is not None else ""

    async def _run_classifier(
        self, name: str, settings: ClassifierSettings, request: Mapping[str, Any], text: _Text
    ) -> tuple[str | None, float | None]:
        if settings.kind == "keywords":
            assert isinstance(settings.labels, dict)
            lowered = text.text.lower()
            best, hits = None, 0
            for label, words in settings.labels.items():
                count = sum(1 for w in words if w.lower() in lowered)
                if count > hits:
                    best, hits = label, count
            return best, None
        if settings.kind == "regex":
            assert isinstance(settings.labels, dict)
            for label, patterns in settings.labels.items():
                if any(re.search(p, text.text) for p in patterns):
                    return label, None
            return None, None
        if settings.kind == "learned":
            from router._learned import for_config, request_text

            learned = for_config(self.config, name)
            if learned.role != "route":
                raise TypeError(f"{learned.source} is an '{learned.role}' policy, not a route one")
            prompt, metadata = request_text(request)
            return learned.label(prompt, metadata), None
        if settings.kind == "python":
            assert settings.callable is not None
            fn = self.classifiers.get(settings.callable) or _REGISTRY.get(settings.callable)
            if fn is None:
                fn = _import(settings.callable)
            result = fn(request)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, tuple):
                return (None if result[0] is None else str(result[0])), float(result[1])
            return (None if result is None else str(result)), None
        return await self._llm(name, settings, text)

    async def _llm(
        self, name: str, settings: ClassifierSettings, text: _Text
    ) -> tuple[str | None, float | None]:
        labels = list(settings.labels) if isinstance(settings.labels, dict) else settings.labels
        assert settings.group is not None
        prompt = settings.prompt or (
            "Classify the user's request. Answer with exactly one label from this list and "
            f"nothing else: {', '.join(labels)}."
        )
        response = await self.classify_with_llm(
            settings.group,
            [
                {"role": "system", "content": prompt},
                {"role": "user", "content": text.text},
            ],
            name,
            settings.min_confidence > 0,  # confidence comes from the first token's logprob
        )
        choice = response.choices[0]
        answer = (choice.message.content or "").strip().strip(".").lower()
        label = next((lb for lb in labels if lb.lower() == answer), None)
        if label is None:
            label = next(
                (lb for lb in labels if re.search(rf"\b{re.escape(lb.lower())}\b", answer)), None
            )
        confidence = _first_token_probability(choice)
        return label, confidence

    def _fit_context(
        self, choice: RouteChoice, request: Mapping[str, Any], text: _Text
    ) -> RouteChoice:
        config = self.config
        if not config.is_routable(choice.group):
            return choice
        deployments = config.deployments_in(choice.group)
        windows = [self.catalogue.context_window(d) for d in deployments]
        known = [w for w in windows if w is not None]
        if not known:
            return choice
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or 0
        extra = max_tokens if isinstance(max_tokens, int) else 0
        # Characters bound tokens from above for real tokenizers: skip counting when it fits.
        if text.chars + extra <= min(known):
            return choice
        need = text.tokens + extra
        fitting = [d for d, w in zip(deployments, windows, strict=True) if w is None or w >= need]
        if fitting and len(fitting) == len(deployments):
            return choice
        if fitting:
            skipped = tuple(
                Skip(d.name, f"context window {w:,} < {need:,} tokens needed")
                for d, w in zip(deployments, windows, strict=True)
                if w is not None and w < need
            )
            return RouteChoice(
                choice.group,
                choice.route,
                choice.reason,
                (*choice.skipped, *skipped),
                fitting,
                choice.label,
            )
        target = self._larger_group(choice.group, need)
        if target is None:
            return choice  # nothing fits anywhere: let the provider say so
        reason = context_reason(choice.reason, need, choice.group, max(known), target)
        return RouteChoice(target, choice.route, reason, choice.skipped, None, choice.label)

    def _larger_group(self, group: str, need: int) -> str | None:
        config = self.config
        preferred = config.settings_for(group).long_context
        names = [preferred] if preferred else []
        names += [g for g in config.group_names() if g != group]
        for name in names:
            if name is None:
                continue
            windows = [self.catalogue.context_window(d) for d in config.deployments_in(name)]
            if any(w is not None and w >= need for w in windows):
                return name
        return None


def _first_token_probability(choice: Any) -> float | None:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if content is None and isinstance(logprobs, Mapping):
        content = logprobs.get("content")
    if not content:
        return None
    first = content[0]
    value = first.get("logprob") if isinstance(first, Mapping) else getattr(first, "logprob", None)
    return math.exp(value) if isinstance(value, int | float) else None


def _import(path: str) -> ClassifierFn:
    module, _, name = path.partition(":")
    if not name:
        raise LookupError(f"classifier '{path}' is neither registered nor module:function")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"'{path}' is not callable")
    return fn  # type: ignore[no-any-return]
