"""`field(obj, name)`: ``getattr(obj, name, None)``, cheap on litellm's pydantic objects.

litellm's stream chunks (``ModelResponseStream``, ``StreamingChoices``) keep most of their
fields in pydantic's ``__pydantic_extra__``, where plain attribute access goes through
``BaseModel.__getattr__``: a few µs per read, and a raised-and-caught ``AttributeError`` when
the field is absent (``usage`` is absent from every chunk but the last). The router reads a few
fields of every chunk, so it reads them from the instance dictionaries directly and falls back
to ``getattr`` for anything else (plain objects, properties, class attributes).
"""

from __future__ import annotations

from typing import Any

_ABSENT: dict[tuple[type, str], bool] = {}
"""(class, name) -> True when the class itself has no attribute of that name."""


def field(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, reading pydantic's field storage first."""
    try:
        values = obj.__dict__
    except AttributeError:
        return getattr(obj, name, None)
    if name in values:
        return values[name]
    if name[:1] == "_":  # a pydantic private attribute (litellm's `_hidden_params`)
        private = getattr(obj, "__pydantic_private__", None)
        if private and name in private:
            return private[name]
        return getattr(obj, name, None)
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra is None:
        return getattr(obj, name, None)
    if name in extra:
        return extra[name]
    cls = type(obj)
    key = (cls, name)
    absent = _ABSENT.get(key)
    if absent is None:
        absent = _ABSENT[key] = not hasattr(cls, name)
    return None if absent else getattr(obj, name, None)
