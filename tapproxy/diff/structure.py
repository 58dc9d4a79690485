"""Structural differences of decoded values: JSON by pointer, text by line.

Own code rather than a diff library: it runs once per differing pair of a 100,000-pair
diff, and only what it finds is rendered (deepdiff takes ~0.3 s per 1,000-item pair).
Pure: no I/O.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator

from tapproxy.diff.model import Change

__all__ = ["json_changes", "json_type", "line_changes", "pointer_child"]


def json_type(value: object) -> str:
    """The JSON type of a decoded value (bool is not a number, as in JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def pointer_child(pointer: str, token: object) -> str:
    """`pointer` + one reference token, escaped as RFC 6901 says (~ → ~0, / → ~1)."""
    text = str(token)
    if "~" in text or "/" in text:
        text = text.replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{text}"


def json_changes(a: object, b: object, part: str, pointer: str = "") -> list[Change]:
    """Each place where JSON value `b` (actual) differs from `a` (expected)."""
    out: list[Change] = []
    _json_changes(a, b, part, pointer, out)
    return out


def _json_changes(a: object, b: object, part: str, pointer: str, out: list[Change]) -> None:
    # Appended to one list rather than yielded: a generator per nested value, resumed
    # per change, cost more than the comparing in a diff of 100,000 pairs.
    if a == b and type(a) is type(b) and (type(a) not in (dict, list) or _same_types(a, b)):
        return  # most subtrees of two similar bodies: one C-level comparison
    if a.__class__ is dict and b.__class__ is dict:  # two bodies' roots: no type tests
        ta = tb = "object"
    else:
        ta, tb = json_type(a), json_type(b)
    if ta != tb:
        out.append(Change(part, pointer, "type", a, b))
    elif ta == "object":
        for k, v in a.items():  # type: ignore[union-attr]
            if k in b:  # type: ignore[operator]
                w = b[k]  # type: ignore[index]
                c = v.__class__
                # The first test of the call below, inlined: most members are equal.
                if c is w.__class__:
                    if c is dict or c is list:
                        if v == w and _same_types(v, w):
                            continue
                    elif v == w:
                        continue
                    elif c is str or c is int or c is bool:  # as the call below would
                        out.append(Change(part, pointer_child(pointer, k), "changed", v, w))
                        continue
                _json_changes(v, w, part, pointer_child(pointer, k), out)
            else:
                out.append(Change(part, pointer_child(pointer, k), "removed", v, None))
        for k, v in b.items():  # type: ignore[union-attr]
            if k not in a:  # type: ignore[operator]
                out.append(Change(part, pointer_child(pointer, k), "added", None, v))
    elif ta == "array":
        _array_changes(a, b, part, pointer, out)  # type: ignore[arg-type]
    elif a != b:
        out.append(Change(part, pointer, "changed", a, b))


def _same_types(a: object, b: object) -> bool:
    """Whether two equal values are equal as JSON too: Python has True == 1."""
    ta = type(a)
    if ta is not type(b):
        return isinstance(a, int | float) and isinstance(b, int | float) and not (
            isinstance(a, bool) or isinstance(b, bool))
    # Loops rather than all(generator): this runs for every equal array or object of
    # every pair, and most members are scalars of one type, settled without a call.
    if ta is dict:
        for k, v in a.items():  # type: ignore[attr-defined]
            w = b[k]  # type: ignore[index]
            c = v.__class__
            if (c is not w.__class__ or c is dict or c is list) and not _same_types(v, w):
                return False
        return True
    if ta is list:
        for v, w in zip(a, b, strict=True):  # type: ignore[call-overload]
            c = v.__class__
            if (c is not w.__class__ or c is dict or c is list) and not _same_types(v, w):
                return False
        return True
    return True


def _array_changes(a: list, b: list, part: str, pointer: str, out: list[Change]) -> None:
    if len(a) == len(b):  # same length: item by item (a changed item, not remove + add)
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _json_changes(u, v, part, f"{pointer}/{i}", out)
        return
    # Items inserted or dropped: align the items first, so one insertion at the front
    # is one added item, not every item changed.
    keys_a, keys_b = _item_keys(a), _item_keys(b)
    # autojunk past 2,000 items, as for text: exact alignment is quadratic at worst.
    matcher = difflib.SequenceMatcher(None, keys_a, keys_b,
                                      autojunk=len(keys_a) + len(keys_b) > 2000)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(common):
            _json_changes(a[i1 + k], b[j1 + k], part, f"{pointer}/{i1 + k}", out)
        for i in range(i1 + common, i2):
            out.append(Change(part, f"{pointer}/{i}", "removed", a[i], None))
        for j in range(j1 + common, j2):
            out.append(Change(part, f"{pointer}/{j}", "added", None, b[j]))


def _item_keys(items: list) -> list[str]:
    return [json.dumps(v, sort_keys=True, default=str) for v in items]


def line_changes(a: str, b: str, part: str) -> Iterator[Change]:
    """Lines of text `b` that differ from `a`: `line N` numbers the expected's lines
    (the actual's for an added line)."""
    la, lb = a.splitlines(), b.splitlines()
    matcher = difflib.SequenceMatcher(None, la, lb, autojunk=len(la) + len(lb) > 2000)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        common = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(common):
            yield Change(part, f"line {i1 + k + 1}", "changed", la[i1 + k], lb[j1 + k])
        for i in range(i1 + common, i2):
            yield Change(part, f"line {i + 1}", "removed", la[i], None)
        for j in range(j1 + common, j2):
            yield Change(part, f"line {j + 1}", "added", None, lb[j])
