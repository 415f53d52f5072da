"""What changes between two configs: the routing-table diff of a reload and ``router check --diff``.

`diff_configs(old, new)` compares two validated configs and returns a `ConfigDiff`: deployments
added, removed and changed (each changed field by name; secrets such as ``api_key`` and
``litellm_params`` are reported as *changed*, never with their values), group membership and
effective per-group settings (``[router]`` merged with ``[groups.NAME]``), the ``[router]``
table, ``[[routes]]`` and the tables a running process cannot swap (``[state]``,
``[telemetry]``), which are listed under `restart_needed`.

`Router.reload` applies a new config and returns this diff; deployments listed as changed get a
fresh health and breaker (their evidence was about another endpoint or model), every other
deployment keeps its own. This module does not import litellm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router._config import Config, Deployment

__all__ = ["ConfigDiff", "diff_configs"]

# Deployment fields whose values are never shown (keys, and params that may hold secrets).
_SECRET_FIELDS = frozenset({"api_key", "litellm_params"})


@dataclass(frozen=True)
class ConfigDiff:
    """The difference between two configs, as lines a person reads and as data."""

    added: tuple[str, ...] = ()
    """Deployment names only in the new config."""
    removed: tuple[str, ...] = ()
    """Deployment names only in the old config."""
    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Deployment name -> the fields that differ (its health and breaker start afresh)."""
    groups: dict[str, str] = field(default_factory=dict)
    """Group name -> what changed about it (members, effective settings), one phrase."""
    settings: tuple[str, ...] = ()
    """``[router]`` keys that changed, as ``key: old -> new``."""
    routes: str | None = None
    """A phrase when ``[[routes]]`` or ``[classifiers]`` changed."""
    restart_needed: tuple[str, ...] = ()
    """Tables that differ but are read only at start (``[state]``, ``[telemetry]``)."""

    @property
    def empty(self) -> bool:
        """True when nothing that routing reads has changed."""
        return not (
            self.added
            or self.removed
            or self.changed
            or self.groups
            or self.settings
            or self.routes
            or self.restart_needed
        )

    def lines(self) -> list[str]:
        """The diff as lines: ``+`` added, ``-`` removed, ``~`` changed, ``!`` needs a restart."""
        out = [f"+ deployment {name}" for name in self.added]
        out += [f"- deployment {name}" for name in self.removed]
        out += [f"~ deployment {n}: {', '.join(fields)}" for n, fields in self.changed.items()]
        out += [f"~ group {name}: {what}" for name, what in self.groups.items()]
        out += [
            f"~ {item}" if item.startswith("[gateway]") else f"~ [router] {item}"
            for item in self.settings
        ]
        if self.routes:
            out.append(f"~ {self.routes}")
        out += [f"! {item}" for item in self.restart_needed]
        return out or ["no changes"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``POST /admin/reload`` returns)."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {k: list(v) for k, v in self.changed.items()},
            "groups": dict(self.groups),
            "settings": list(self.settings),
            "routes": self.routes,
            "restart_needed": list(self.restart_needed),
            "lines": self.lines(),
        }

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "unset"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _fields(dep: Deployment) -> dict[str, Any]:
    data = dep.model_dump()
    data.pop("name", None)
    return data


def _changed_fields(old: Deployment, new: Deployment) -> tuple[str, ...]:
    before, after = _fields(old), _fields(new)
    changed: list[str] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if key in _SECRET_FIELDS:
            changed.append(f"{key} changed")
        elif key == "groups":
            continue  # reported per group
        else:
            changed.append(f"{key} {_show(a)} -> {_show(b)}")
    return tuple(changed)


def _settings_delta(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [
        f"{key}: {_show(old.get(key))} -> {_show(new.get(key))}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """What a reload from `old` to `new` changes (see the module docstring)."""
    old_deps = {d.name: d for d in old.deployments}
    new_deps = {d.name: d for d in new.deployments}
    added = tuple(n for n in new_deps if n not in old_deps)
    removed = tuple(n for n in old_deps if n not in new_deps)
    changed: dict[str, tuple[str, ...]] = {}
    for name in new_deps.keys() & old_deps.keys():
        fields = _changed_fields(old_deps[name], new_deps[name])
        if fields:
            changed[name] = fields
    changed = {n: changed[n] for n in new_deps if n in changed}  # config order

    groups: dict[str, str] = {}
    old_groups, new_groups = old.group_names(), new.group_names()
    for group in dict.fromkeys([*old_groups, *new_groups]):
        if group not in new_groups:
            groups[group] = "removed"
            continue
        members_new = [d.name for d in new.deployments_in(group)]
        if group not in old_groups:
            groups[group] = f"added with {', '.join(members_new)}"
            continue
        parts: list[str] = []
        members_old = [d.name for d in old.deployments_in(group)]
        if members_old != members_new:
            parts.append(f"members {', '.join(members_old)} -> {', '.join(members_new)}")
        base_old, base_new = old.router.model_dump(), new.router.model_dump()
        eff_old, eff_new = (
            old.settings_for(group).model_dump(),
            new.settings_for(group).model_dump(),
        )
        # Only what the group's own table changed; [router] changes are listed once, below.
        own = [
            line
            for line in _settings_delta(eff_old, eff_new)
            if base_old.get(line.split(":", 1)[0]) == base_new.get(line.split(":", 1)[0])
        ]
        parts += own
        if parts:
            groups[group] = "; ".join(parts)

    settings = tuple(_settings_delta(old.router.model_dump(), new.router.model_dump()))
    routes = None
    if old.routes != new.routes or old.classifiers != new.classifiers:
        routes = (
            f"[[routes]]: {len(old.routes)} -> {len(new.routes)} rule(s)"
            if old.routes != new.routes
            else "[classifiers] changed"
        )
    if old.gateway != new.gateway:
        parts = []
        old_keys = [k.name for k in old.gateway.keys]
        new_keys = [k.name for k in new.gateway.keys]
        if old_keys != new_keys:
            parts.append(f"keys {', '.join(old_keys) or '-'} -> {', '.join(new_keys) or '-'}")
        changed_keys = [
            k.name
            for k in new.gateway.keys
            for o in old.gateway.keys
            if k.name == o.name and k != o
        ]
        if changed_keys:
            parts.append(f"key settings changed: {', '.join(changed_keys)}")
        if old.gateway.admin_key != new.gateway.admin_key:
            parts.append("admin_key changed")
        skip = {"keys", "admin_key"}
        parts += [
            line
            for line in _settings_delta(
                old.gateway.model_dump(exclude=skip), new.gateway.model_dump(exclude=skip)
            )
        ]
        settings = (*settings, *(f"[gateway] {p}" for p in parts))
    restart: list[str] = []
    if old.state != new.state:
        restart.append("[state] changed: read only at start; restart the process to apply it")
    if old.telemetry != new.telemetry:
        restart.append("[telemetry] changed: read only at start; restart the process to apply it")
    return ConfigDiff(
        added=added,
        removed=removed,
        changed=changed,
        groups=groups,
        settings=settings,
        routes=routes,
        restart_needed=tuple(restart),
    )
