"""JSON pointers (RFC 6901) over decoded bodies, and the globs that name sets of them.

A glob is a pointer whose segments may be `*` (exactly one segment) or `**` (any number
of segments, none included): `/items/*/updatedAt`, `/**/etag`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice

from tapproxy.errors import UsageError

__all__ = ["PointerGlob", "escape", "generalize", "parse_pointer_glob", "unescape", "walk"]

_BAD_ESCAPE = re.compile(r"~(?![01])")
_INDEX = re.compile(r"/\d+(?=/|$)")


def escape(key: str) -> str:
    """One pointer segment for an object key: `~` → `~0`, `/` → `~1`."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def unescape(segment: str) -> str:
    """The object key a pointer segment names (`~1` → `/`, then `~0` → `~`)."""
    if "~" in segment:
        return segment.replace("~1", "/").replace("~0", "~")
    return segment


def generalize(pointer: str) -> str:
    """The pointer with every array index as `*`: `/items/3/at` → `/items/*/at`."""
    return _INDEX.sub("/*", pointer) if "/" in pointer else pointer


def _leaves(value: object, prefix: str, out: list[tuple[str, object]]) -> None:
    # One list appended to, exact type tests and the escape test inlined: learning walks
    # every body, and nested generators or a call per key cost several times as much.
    cls = value.__class__
    if cls is dict:
        if not value:
            out.append((prefix, value))
        for k, v in value.items():  # type: ignore[attr-defined]
            if k.__class__ is not str:
                k = str(k)
            if "~" in k or "/" in k:
                k = k.replace("~", "~0").replace("/", "~1")
            c = v.__class__
            if c is dict or c is list:
                _leaves(v, f"{prefix}/{k}", out)
            else:
                out.append((f"{prefix}/{k}", v))
    elif cls is list:
        if not value:
            out.append((prefix, value))
        for i, v in enumerate(value):  # type: ignore[arg-type]
            c = v.__class__
            if c is dict or c is list:
                _leaves(v, f"{prefix}/{i}", out)
            else:
                out.append((f"{prefix}/{i}", v))
    else:
        out.append((prefix, value))


_POINTERS: dict[tuple, tuple[str, ...]] = {}  # (prefix, keys or length) → child pointers
_MEMO_MEMBERS = 64


def _children(prefix: str, shape: tuple | int) -> tuple[str, ...]:
    """The pointers of a container's members: most answers of a service have the same
    shape, so each pointer is built (and escaped) once, not once per answer."""
    memo = (prefix, shape)
    found = _POINTERS.get(memo)
    if found is None:
        if shape.__class__ is int:
            found = tuple(f"{prefix}/{i}" for i in range(shape))  # type: ignore[arg-type]
        else:
            found = tuple(f"{prefix}/{escape(k if k.__class__ is str else str(k))}"
                          for k in shape)  # type: ignore[union-attr]
        if len(found) <= _MEMO_MEMBERS:  # a large container's are not kept: memory
            if len(_POINTERS) >= 4096:
                _POINTERS.clear()
            _POINTERS[memo] = found
    return found


def _hashes(value: object, prefix: str, out: dict[str, int]) -> None:
    # As _leaves, each leaf's value hashed as learning compares them (the type is part
    # of the value), straight into one dict: no (pointer, value) list to build and read.
    cls = value.__class__
    if cls is dict:
        members = value.values()  # type: ignore[attr-defined]
        shape: tuple | int = tuple(value)  # type: ignore[call-overload]
    elif cls is list:
        members, shape = value, len(value)  # type: ignore[arg-type]
    else:
        out[prefix] = hash(value) ^ id(cls)
        return
    if not value:
        out[prefix] = id(cls)
        return
    # strict=False: one pointer per member by construction, and the check costs
    for p, v in zip(_children(prefix, shape), members, strict=False):
        c = v.__class__
        if c is dict or c is list:
            _hashes(v, p, out)
        else:
            out[p] = hash(v) ^ id(c)


def leaf_hashes(value: object, limit: int) -> dict[str, int]:
    """{pointer: hash of the leaf's value and type} of the first `limit` leaves of a
    JSON value (`leaves`; distinct keys make distinct pointers)."""
    out: dict[str, int] = {}
    _hashes(value, "", out)
    if len(out) > limit:  # in document order, as inserted: the first `limit` of them
        out = dict(islice(out.items(), limit))
    return out


def leaves(value: object) -> list[tuple[str, object]]:
    """Every (pointer, leaf) of a JSON value as a list: scalars and empty containers."""
    out: list[tuple[str, object]] = []
    _leaves(value, "", out)
    return out


def walk(value: object) -> Iterator[tuple[str, object]]:
    """Every (pointer, leaf) of a JSON value in document order: scalars and empty
    containers (so that `{"a": []}` and `{"a": {}}` differ); the root itself is `""`."""
    return iter(leaves(value))


@dataclass(frozen=True, slots=True)
class PointerGlob:
    """A JSON-pointer glob, e.g. `/items/*/updatedAt`; see `parse_pointer_glob`."""

    text: str
    _regex: re.Pattern[str] = field(repr=False, compare=False, hash=False)

    def matches(self, pointer: str) -> bool:
        """Whether the pointer (escaped, as `walk` yields it) is one this glob names."""
        return self._regex.fullmatch(pointer) is not None

    def __str__(self) -> str:
        return self.text


def parse_pointer_glob(text: str) -> PointerGlob:
    """`/items/*/updatedAt` → PointerGlob (UsageError naming the pattern if malformed)."""
    if text and not text.startswith("/"):
        raise UsageError(f"bad JSON pointer glob {text!r}: must start with '/' "
                         "(e.g. /items/*/updatedAt), or be empty for the whole body")
    if _BAD_ESCAPE.search(text):
        raise UsageError(f"bad JSON pointer glob {text!r}: '~' must be followed by 0 "
                         "or 1 (~0 is '~', ~1 is '/')")
    parts = []
    for segment in text.split("/")[1:]:
        if segment == "**":
            parts.append("(?:/[^/]*)*")
        elif segment == "*":
            parts.append("/[^/]*")
        elif "*" in segment:
            raise UsageError(f"bad JSON pointer glob {text!r}: '*' and '**' stand for "
                             f"whole segments, not part of {segment!r}")
        else:
            parts.append("/" + re.escape(segment))
    return PointerGlob(text, re.compile("".join(parts)))
