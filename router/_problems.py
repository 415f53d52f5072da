"""Turning pydantic's validation errors into one-line config problems.

`validate` runs a root model over raw data and, if it fails, raises one `ConfigError` holding
every problem, one line each: ``<source>: <key path>: <plain-English message>``, naming the
``ROUTER_*`` variable a value came from and never echoing secrets (see router._config for the
format). Nothing here knows the config's models: the root model is passed in, and the key paths
are resolved by walking its fields.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import NoneType, UnionType
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = ["ConfigError", "EnvOrigin", "Loc", "suggest", "validate"]

M = TypeVar("M", bound=BaseModel)

ENV_PREFIX: Final = "ROUTER_"
CUSTOM_ERROR: Final = "router_config"  # our own validators' errors: their message is final
RELATIONS_ERROR: Final = "router_config_relations"
# Never echo values under these ([state] url may carry a Redis password).
_SECRET_KEYS: Final = frozenset({"api_key", "litellm_params", "url", "key", "admin_key"})

Loc = tuple[int | str, ...]


class ConfigError(ValueError):
    """The config cannot be used. ``problems`` holds one line per problem, all of them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that carries meaning."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not NoneType]
            annotation = args[0]
        else:
            return annotation


def _child_model(field: FieldInfo) -> tuple[type[BaseModel] | None, int]:
    """The model below a field and how many loc items (list index, dict key) lead to it."""
    ann = _unwrap(field.annotation)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, 0
    args = get_args(ann)
    inner = _unwrap(args[-1]) if args else None
    if get_origin(ann) in (list, dict) and isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner, 1
    return None, 0


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose table sits at ``loc`` (``()`` is the whole file), if there is one."""
    model: type[BaseModel] | None = root
    i = 0
    while model is not None and i < len(loc):
        field = model.model_fields.get(str(loc[i]))
        if field is None:
            return None
        model, skip = _child_model(field)
        i += 1 + skip
    return model if i == len(loc) else None


def _field_at(root: type[BaseModel], loc: Loc) -> FieldInfo | None:
    """The model field a key path ends on, if it ends on one."""
    model = _model_at(root, loc[:-1]) if loc else None
    return model.model_fields.get(str(loc[-1])) if model else None


def _noun(annotation: Any) -> str:
    ann = _unwrap(annotation)
    origin, args = get_origin(ann), get_args(ann)
    if origin is Literal:
        return "one of " + ", ".join(f"'{a}'" for a in args)
    if ann is float:
        return "a number"
    if ann is int:
        return "a whole number"
    if ann is str:
        return "a string"
    if origin is list and args and _unwrap(args[0]) is str:
        return "a list of strings"
    if origin is list:
        return "an array of tables"
    return "a table"


def _requirement(field: FieldInfo) -> str:
    noun = _noun(field.annotation)
    bounds: list[str] = []
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Gt):
            bounds.append(f"> {meta.gt}")
        elif isinstance(meta, annotated_types.Ge):
            bounds.append(f">= {meta.ge}")
        elif isinstance(meta, annotated_types.Lt):
            bounds.append(f"< {meta.lt}")
        elif isinstance(meta, annotated_types.Le):
            bounds.append(f"<= {meta.le}")
        elif isinstance(meta, annotated_types.MinLen) and noun == "a string":
            noun = "a non-empty string"
    # Both ends when there are two (a share: "> 0 and <= 1"), so the message is true of a
    # value past either end.
    bound = " and ".join(bounds)
    return f"must be {noun} {bound}" if bound else f"must be {noun}"


_BY_TYPE: Final = {
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
}


def _show(value: object) -> str:
    """A value as TOML would spell it, short, for "(got ...)"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float) or value is None:
        return repr(value)
    return "a table" if isinstance(value, Mapping) else "an array"


def _render_path(loc: Loc, raw: object) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int):
            label = f"[{item}]"
            if loc[:i] == ("deployments",) and isinstance(raw, Mapping):
                deps = raw.get("deployments")
                entry = deps[item] if isinstance(deps, list) and item < len(deps) else None
                name = entry.get("name") if isinstance(entry, Mapping) else None
                if isinstance(name, str) and name:
                    label += f" ({name})"
            parts.append(label)
        else:
            key = item if re.fullmatch(r"[A-Za-z0-9_-]+", item) else f'"{item}"'
            parts.append(f".{key}" if parts else key)
    return "".join(parts)


class EnvOrigin:
    """Tells which ``ROUTER_*`` variable a value at a key path came from, if any."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._names = {
            k.upper(): k for k, v in env.items() if v and k.upper().startswith(ENV_PREFIX)
        }

    def var_for(self, loc: Loc, *, below: bool = False) -> str | None:
        keys = [str(k).upper() for k in loc]
        # Same order as the sources' precedence: the most specific nested variable wins.
        for n in range(len(keys), 0, -1):
            if (name := ENV_PREFIX + "__".join(keys[:n])) in self._names:
                return self._names[name]
        if len(keys) >= 2 and keys[0] == "ROUTER" and ENV_PREFIX + keys[1] in self._names:
            return self._names[ENV_PREFIX + keys[1]]
        if below:  # e.g. a [groups.x] table that only ROUTER_GROUPS__X__... created
            prefix = ENV_PREFIX + "__".join(keys) + "__"
            return next((v for k, v in self._names.items() if k.startswith(prefix)), None)
        return None


def _line(
    source: str,
    loc: Loc,
    msg: str,
    raw: object,
    origin: EnvOrigin | None,
    probe: Loc | None = None,
    below: bool = False,
) -> str:
    path = _render_path(loc, raw)
    var = origin.var_for(probe or loc, below=below) if origin else None
    if var:
        path = f"{path} (from env {var})" if path else f"(from env {var})"
    return f"{source}: {path}: {msg}" if path else f"{source}: {msg}"


def _describe(
    root: type[BaseModel], err: ErrorDetails, raw: object, source: str, origin: EnvOrigin | None
) -> str:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        model = _model_at(root, loc[:-1])
        allowed = list(model.model_fields) if model else []
        msg = f"unknown key '{loc[-1]}'{suggest(str(loc[-1]), allowed)}"
        return _line(source, loc[:-1], msg, raw, origin, probe=loc)
    if kind == "missing" and loc and loc != ("deployments",):
        return _line(source, loc[:-1], f"missing required key '{loc[-1]}'", raw, origin, probe=loc)
    if loc == ("deployments",) and kind in ("missing", "too_short"):
        return _line(source, loc, "at least one [[deployments]] entry is required", raw, origin)
    field = _field_at(root, loc)
    if kind == CUSTOM_ERROR:
        msg = err["msg"]
    elif field is not None:
        msg = _requirement(field)
    else:
        msg = _BY_TYPE.get(kind) or err["msg"][:1].lower() + err["msg"][1:]
    if not _SECRET_KEYS.intersection(str(k) for k in loc):
        msg += f" (got {_show(err['input'])})"
    return _line(source, loc, msg, raw, origin)


def validate(
    root: type[M],
    raw: Any,
    source: str,
    origin: EnvOrigin | None,
    raw_relations: Callable[[object], list[tuple[Loc, str]]],
) -> M:
    """`root` validated from `raw`, or a `ConfigError` listing every problem.

    `raw_relations` finds the cross-field problems on unvalidated data: pydantic runs the
    model's own cross-field check only when every field is valid, and all are reported.
    """
    try:
        return root.model_validate(raw, context={"source": source})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems: list[str] = []
    relations: list[tuple[Loc, str]] | None = None
    for err in errors:
        if err["type"] == RELATIONS_ERROR:
            relations = err.get("ctx", {}).get("problems", [])
        else:
            problems.append(_describe(root, err, raw, source, origin))
    for loc, msg in raw_relations(raw) if relations is None else relations:
        problems.append(_line(source, loc, msg, raw, origin, below=True))
    raise ConfigError(problems) from None
