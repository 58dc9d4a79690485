"""The merged shape of many JSON samples: types, presence, and which values may vary.

A value is drafted as a constant only when every sample had that one value and nothing
says it varies: it was not learned as noise (it differed between repeated identical
requests), is not of a volatile kind (UUID, timestamp, token: `value_kind`) nor text
with one inside (`mask_text`), does not echo the request's own path or query values,
and is not named like an id (`id`, `orderId`, `order_id`), whose values a re-run
against a fresh database renumbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tapproxy.noise import escape, mask_text, value_kind

__all__ = ["Shape", "json_type", "shape_of"]

_MAX_VALUES = 16  # distinct values remembered per place: more is "varies" anyway


def json_type(v: object) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    return "array"


def _id_like(name: str) -> bool:
    return name.lower() in ("id", "uuid", "guid") or name.endswith(("Id", "_id", "ID", "Uuid",
                                                                     "_uuid"))


@dataclass
class Shape:
    """What was seen at one place of the samples (a field, every item of an array)."""

    name: str = ""  # the field name, "" for the root and array items
    present: int = 0  # values seen here
    types: set[str] = field(default_factory=set)
    values: dict[str, object] = field(default_factory=dict)  # distinct scalars, bounded
    many: bool = False  # more distinct values than remembered
    kinds: set[str | None] = field(default_factory=set)  # value_kind of each scalar
    noisy: bool = False  # learned noise at this place
    echo: bool = False  # a value equal to one of its request's path or query values
    objects: int = 0  # values here that were objects
    fields: dict[str, Shape] = field(default_factory=dict)
    items: Shape | None = None  # every item of every array here, merged

    @property
    def kind(self) -> str | None:
        """The one volatile kind every scalar here had, else None."""
        return next(iter(self.kinds)) if len(self.kinds) == 1 else None

    @property
    def constant(self) -> tuple[bool, object]:
        """(True, value) when the draft may require exactly that value."""
        scalar = self.types and not self.types & {"object", "array", "null"}
        if (not scalar or self.many or len(self.values) != 1 or self.noisy or self.echo
                or self.kinds != {None} or _id_like(self.name)):
            return False, None
        value = next(iter(self.values.values()))
        if isinstance(value, str) and mask_text(value) != value:
            return False, None  # "order 3f2b…-… created at 2026-…": a UUID or time inside
        return True, value

    def optional(self, child: Shape) -> bool:
        """Whether a field of this object was absent from some of its objects."""
        return child.present < self.objects


def _add(shape: Shape, v: object, pointer: str, echoes: frozenset[str],
         noisy: Callable[[str], bool]) -> None:
    shape.present += 1
    t = json_type(v)
    shape.types.add(t)
    if t == "object":
        shape.objects += 1
        for k, child in v.items():  # type: ignore[union-attr]
            k = str(k)
            sub = shape.fields.get(k)
            if sub is None:
                sub = shape.fields[k] = Shape(k)
            _add(sub, child, f"{pointer}/{escape(k)}", echoes, noisy)
    elif t == "array":
        if shape.items is None and v:
            shape.items = Shape()
        for i, child in enumerate(v):  # type: ignore[arg-type]
            _add(shape.items, child, f"{pointer}/{i}", echoes, noisy)  # type: ignore[arg-type]
    elif t != "null":
        key = f"{t}:{v!r}"
        if key not in shape.values:
            if len(shape.values) < _MAX_VALUES:
                shape.values[key] = v
            else:
                shape.many = True
        shape.kinds.add(value_kind(v))
        if not shape.noisy and noisy(pointer):
            shape.noisy = True
        if str(v) in echoes and t in ("string", "integer"):
            shape.echo = True


def shape_of(samples: Iterable[tuple[object, frozenset[str]]],
             noisy: Callable[[str], bool] = lambda p: False) -> Shape:
    """The shape of JSON values, each with the texts its request carried (path and query
    values); `noisy(pointer)` says where the noise model learned noise."""
    shape = Shape()
    for value, echoes in samples:
        _add(shape, value, "", echoes, noisy)
    return shape
