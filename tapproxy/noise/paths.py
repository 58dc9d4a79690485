"""Path templates: `/orders/42?x=1` → `/orders/{id}` for calls no route template names."""

from __future__ import annotations

import re

from tapproxy.noise.values import value_kind

__all__ = ["path_template"]

# Every volatile segment kind has a digit (a UUID's version nibble, the digits a hex or
# token must have), so a path without one is returned as it is without splitting it.
_DIGIT = re.compile(r"\d", re.ASCII)


def _volatile(segment: str) -> bool:
    return (segment.isdigit() and segment.isascii()) or value_kind(segment) is not None


def path_template(path: str) -> str:
    """The path with numeric, UUID, hex and token segments as `{id}`, the query dropped."""
    path = path.partition("?")[0]
    if not _DIGIT.search(path):
        return path
    return "/".join("{id}" if _volatile(s) else s for s in path.split("/"))
