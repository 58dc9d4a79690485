"""Which of a pair's differences are noise: the diff's use of the shared noise model.

Some noise is known from the pair alone and set aside as it is compared: both values of
one volatile kind (two UUIDs, two timestamps), text equal once the volatile values in it
are masked, the ids each request's path carried (`/orders/1` answering `"id": 1`), or a
pointer an `--ignore` glob names.
Learned noise (a field that differs between repeated identical requests within either
capture) is known only once both captures are read (`learned`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tapproxy.capture.model import Exchange
from tapproxy.diff.model import Change

__all__ = ["NoiseFilter", "carried_ids", "carried_path_ids"]

# Parts whose paths are JSON pointers, which --ignore globs name.
_POINTER_PARTS = ("request.query", "request.body", "request.messages", "response.body",
                  "response.messages")
# Parts noise is learned for (responses: what a service answers).
_LEARNED_PARTS = ("response.body", "response.messages")
_MESSAGES = ("request.messages", "response.messages")
_IN_MESSAGE = re.compile(r"/\d+/")  # a pointer inside a message, not a whole one


def carried_ids(a: Exchange, b: Exchange) -> frozenset[tuple[str, str]]:
    """(a's, b's) path segment, where the two paths differ only by ids (`/orders/1` and
    `/orders/3`, a database sequence that went on between runs)."""
    return carried_path_ids(a.request.path_only, b.request.path_only)


def carried_path_ids(pa: str, pb: str) -> frozenset[tuple[str, str]]:
    """`carried_ids` of two requests' paths (a query is set aside)."""
    pa, pb = pa.partition("?")[0], pb.partition("?")[0]
    if pa == pb:
        return frozenset()
    sa, sb = pa.split("/"), pb.split("/")
    if len(sa) != len(sb):
        return frozenset()
    return frozenset((u, v) for u, v in zip(sa, sb, strict=True) if u != v)


_MISSING = object()


def _kept_kinds(value_kind):
    """`value_kind`, the kinds of the last few thousand strings kept: a service answers
    the same times and names again and again, each tested by up to three patterns."""
    kinds: dict[str, str | None] = {}
    get = kinds.get

    def kind(v: object) -> str | None:
        if v.__class__ is not str:
            return value_kind(v)
        found = get(v, _MISSING)  # type: ignore[arg-type]
        if found is _MISSING:
            if len(kinds) >= 4096:
                kinds.clear()
            found = kinds[v] = value_kind(v)  # type: ignore[index]
        return found  # type: ignore[return-value]

    return kind


class NoiseFilter:
    def __init__(self, ignore: Iterable = ()) -> None:
        from tapproxy.noise import header_pointer, mask_text, value_kind

        self._ignore = tuple(ignore)
        self._kind, self._mask, self._header = _kept_kinds(value_kind), mask_text, header_pointer
        self._model = None

    def _static(self, c: Change) -> bool:
        if self._ignore and c.part in _POINTER_PARTS and any(
                g.matches(c.path) for g in self._ignore):
            return True
        expected, actual = c.expected, c.actual
        if expected is None or actual is None or c.kind not in ("changed", "type"):
            return False  # a field that came or went is news, whatever its value
        kind = self._kind(expected)
        if kind is not None and kind == self._kind(actual):
            return True
        # Text with an id or a time inside ("created 2026-12-07T21:04:39Z"): equal once
        # those are masked.
        return (isinstance(expected, str) and isinstance(actual, str)
                and self._mask(expected) == self._mask(actual))

    def static(self, changes: list[Change], carried: frozenset[tuple[str, str]] = frozenset()
               ) -> tuple[list[Change], list[Change]]:
        """(changes, noise): what the pair alone shows to be noise set aside. `carried`:
        (expected, actual) ids the two requests' paths held at one place (`carried_ids`):
        a value that is that id in each answer is the same thing in both."""
        if not changes:
            return changes, []
        kept: list[Change] = []
        noise: list[Change] = []
        static = self._static
        for c in changes:
            if static(c) or (carried and c.kind == "changed" and (
                    str(c.expected), str(c.actual)) in carried):
                noise.append(c)
            else:
                kept.append(c)
        return kept, noise

    def learned(self, model) -> None:
        """Use what was learned from both captures (NoiseModel.merged)."""
        self._model = model.with_ignores(self._ignore) if self._ignore else model

    def is_learned(self, route: tuple, c: Change) -> bool:
        """Whether `c` is at a place learned as noise for its route."""
        if self._model is None:
            return False
        if c.part == "response.header":
            return bool(self._model.is_noise(route, self._header(c.path)))
        if c.part not in _LEARNED_PARTS:
            return False
        if c.part in _MESSAGES and not _IN_MESSAGE.match(c.path):
            # Learned by pointer inside JSON messages only: `/*` would be every message
            # of the route, and one that came or went, or a line of text, is news.
            return False
        return bool(self._model.is_noise(route, c.path))

    def listed(self) -> list[tuple[str, str]]:
        """(route, pointer) of each field learned as noise, for --show-noise."""
        return [] if self._model is None else list(self._model.learned())
