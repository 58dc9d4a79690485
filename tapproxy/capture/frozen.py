"""Quicker constructors for the frozen, slotted dataclasses the records are.

A frozen dataclass's generated __init__ sets each field with
`object.__setattr__(self, "name", value)`: a global lookup, a bound method and a
lookup of the slot by name, per field. Setting the slot through its descriptor does
the same in about a third of the time. The recorder builds six records per exchange
(43 fields) on mitmproxy's event loop, where this was 20 µs of every small request;
the readers and span synthesis build a few such values for every exchange of a
capture (`slot_constructor`: positional, not even an __init__ call).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = ["quick_init", "slot_constructor"]


class _Factory:
    """ "No argument given" for a field with a default_factory (shown as dataclasses do)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init[T: type](cls: T) -> T:
    """Give the frozen, slotted dataclass `cls` an __init__ that sets slots directly.

    It takes the same arguments (positional or by name, with the same defaults and
    default factories) and makes the same value; classes with __post_init__, InitVar
    or fields left out of __init__ keep dataclasses' own."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if (hasattr(cls, "__post_init__") or any(not f.init or f.kw_only for f in fields)
            or len(fields) != len(cls.__dataclass_fields__)):  # type: ignore[attr-defined]
        return cls
    scope: dict[str, object] = {"_FACTORY": _FACTORY}
    params, lines = [], []
    for f in fields:
        n = f.name
        scope[f"_set_{n}"] = cls.__dict__[n].__set__
        if f.default is not dataclasses.MISSING:
            scope[f"_default_{n}"] = f.default
            params.append(f"{n}=_default_{n}")
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{n}"] = f.default_factory
            params.append(f"{n}=_FACTORY")
            lines.append(f"    if {n} is _FACTORY: {n} = _factory_{n}()")
        else:
            params.append(n)
        lines.append(f"    _set_{n}(self, {n})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(lines) + "\n"
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    init.__module__ = cls.__module__  # type: ignore[attr-defined]
    init.__annotations__ = cls.__init__.__annotations__  # type: ignore[misc]
    cls.__init__ = init  # type: ignore[misc]
    return cls


def slot_constructor(cls: type) -> Callable[..., object]:
    """A constructor for the frozen, slotted dataclass `cls` taking every field, in
    order, positionally: no defaults, no default factories, no `__post_init__`."""
    names = list(cls.__dataclass_fields__)
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: not a slotted dataclass without __post_init__")
    scope = {"new": object.__new__, "cls": cls}
    scope.update({f"set_{n}": cls.__dict__[n].__set__ for n in names})
    body = "".join(f"    set_{n}(o, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    o = new(cls)\n{body}    return o\n", scope)
    return scope["make"]
