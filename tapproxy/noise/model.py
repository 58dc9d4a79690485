"""The noise model: which response fields of which route are volatile.

Learned from repeated identical requests: two exchanges with the same `request_key` and
the same status whose response differs at a JSON pointer (or in a header) show that
pointer to be noise for their route. Memory stays bounded however long the capture: per
request key only the first response's fingerprint is kept (a hash per pointer), never a
body, and the oldest keys are forgotten past `max_fingerprints` keys and pointers in
all.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from tapproxy.capture.encoding import decoded_body, parse_json
from tapproxy.capture.model import Exchange, Request, Response
from tapproxy.errors import CaptureError
from tapproxy.noise.paths import path_template
from tapproxy.noise.pointers import PointerGlob, escape, generalize, leaves
from tapproxy.noise.values import mask_text, value_kind

__all__ = ["Answer", "NoiseLearner", "NoiseModel", "RouteKey", "body_digest", "body_leaves",
           "header_pointer", "request_key", "route_key"]

type RouteKey = tuple[str, str, str]

#: Leaves of one response body compared at most (the rest of a huge body is not learned).
MAX_LEAVES = 10_000
# What a request waiting for its repeat (add_answer) counts for against max_fingerprints:
# its key and place weigh about as much as this many field fingerprints.
_WAITING = 8
_HEADER = "header:"


def header_pointer(name: str) -> str:
    """What stands for a response header in `is_noise` and `learned`: `header:etag`
    (never a JSON pointer, which starts with `/` or is empty)."""
    return _HEADER + name.lower()


def route_key(x: Exchange) -> RouteKey:
    """(callee, method, route or path template): what noise is learned for."""
    return (x.callee.name, x.request.method, x.route or path_template(x.request.path))


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def body_digest(msg: Request) -> str:
    """What stands for a request body in `request_key`."""
    if msg.body_sha256 is not None:  # kept in part: the whole body's hash says which
        return "sha256:" + msg.body_sha256.hex()
    if not msg.body:
        return ""
    try:
        body = decoded_body(msg)
    except CaptureError:
        return _digest(msg.body)
    if body[:1] in (b"{", b"[") or "json" in msg.content_type:
        try:  # the same JSON with keys in another order or other spacing is the same body
            return _digest(json.dumps(parse_json(body), sort_keys=True,
                                      separators=(",", ":")).encode())
        except ValueError:
            pass
    return _digest(body)


def request_key(x: Exchange) -> tuple:
    """What makes two requests identical: caller, callee, method, path with query, body
    (JSON compared as data, key order and spacing aside)."""
    r = x.request
    return (x.caller.name, x.callee.name, r.method, r.path, body_digest(r))


def leaf_hash_dict(pairs: list[tuple[str, object]]) -> dict[str, int]:
    """{pointer: value hash} of (pointer, value) leaves, as `leaf_hashes` gives them."""
    return {p: id(c) if (c := v.__class__) is dict or c is list else hash(v) ^ id(c)
            for p, v in pairs}


def _leaf_hash(v: object) -> int:
    # The type is part of the value: 1, 1.0, true and "1" are four different answers.
    c = v.__class__
    return id(c) if c is dict or c is list else hash(v) ^ id(c)


def body_leaves(r: Response) -> list[tuple[str, object]]:
    """(pointer, value) of each leaf of a response body, as learning compares them: a
    JSON body's first MAX_LEAVES, else the whole body as one."""
    if r.body_sha256 is not None:
        return [("", r.body_sha256)]
    try:
        body = decoded_body(r)
    except CaptureError:
        return [("", r.body)]
    if body[:1] in (b"{", b"[") or "json" in r.content_type:
        try:
            return leaves(parse_json(body))[:MAX_LEAVES]
        except ValueError:
            pass
    return [("", body)]


class Answer(Protocol):
    """An answered exchange as `NoiseLearner.add_answer` asks for what it needs of it."""

    def response(self) -> Response: ...

    def body_leaves(self) -> list[tuple[str, object]]:
        """`body_leaves(self.response())`."""
        ...

    def body_hashes(self) -> dict[str, int]:
        """`leaf_hashes` of `body_leaves()`: {pointer: value hash}."""
        ...

    def route_key(self) -> RouteKey: ...


class _Answered:
    __slots__ = ("x",)

    def __init__(self, x: Exchange) -> None:
        self.x = x

    def response(self) -> Response:
        return self.x.response  # type: ignore[return-value]

    def body_leaves(self) -> list[tuple[str, object]]:
        return body_leaves(self.x.response)  # type: ignore[arg-type]

    def body_hashes(self) -> dict[str, int]:
        return leaf_hash_dict(self.body_leaves())

    def route_key(self) -> RouteKey:
        return route_key(self.x)


def _header_hashes(r: Response) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in r.headers.fields:
        name = _HEADER + k.lower()
        out[name] = hash((out.get(name), v))
    return out


def _fingerprint(r: Response, share) -> dict[str, int]:
    """{pointer or header: value hash} of one response."""
    fields = _header_hashes(r)
    for p, v in body_leaves(r):
        c = v.__class__
        fields[share(p, p)] = id(c) if c is dict or c is list else hash(v) ^ id(c)
    return fields


class NoiseLearner:
    """The streaming state of `NoiseModel.learn`; fed by `add`, or by `add_answer` for a
    reader that can read a response again (`recall`): then a request's first answer is
    fingerprinted only once a repeat answers otherwise, and a capture whose requests
    never repeat, or repeat with the same answer, has no body parsed at all."""

    def __init__(self, max_fingerprints: int = 200_000,
                 recall: Callable[[object], Response] | None = None) -> None:
        self.max = max_fingerprints
        self._recall = recall
        # (request key, status) → [raw body hash, raw headers hash, {pointer: value hash}
        # (None until needed, with add_answer), route key once needed, where to recall]
        self.seen: OrderedDict[tuple, list] = OrderedDict()
        self.total = 0
        self.pointers: dict[str, str] = {}  # one string per distinct pointer, shared
        self._general: dict[str, str] = {}  # generalize(pointer), by pointer
        self.noisy: dict[RouteKey, set[str]] = {}

    def add(self, x: Exchange) -> None:
        """An answered exchange (a response, no error)."""
        r = x.response
        assert r is not None
        key = (request_key(x), r.status)
        body_hash, head_hash = hash(r.body_sha256 or r.body), hash(r.headers.raw)
        entry = self.seen.get(key)
        if entry is None:
            fields = _fingerprint(r, self.pointers.setdefault)
            self.seen[key] = [body_hash, head_hash, fields, None, None]
            self.total += 1 + len(fields)  # the key itself is memory too
            self._bound()
        elif entry[0] != body_hash or entry[1] != head_hash:
            self._fingerprinted(entry)
            self._differs(entry, body_hash, head_hash, _Answered(x))

    def add_answer(self, key: tuple, body_hash: int, head_hash: int, place: object,
                   answer: Answer) -> None:
        """An answered exchange given as `request_key` and status, and the hashes of its
        raw response body (or body_sha256) and raw headers; `place` recalls its response
        later, `answer` gives what is needed of it now, if anything."""
        entry = self.seen.get(key)
        if entry is None:
            self.seen[key] = [body_hash, head_hash, None, None, place]
            self.total += _WAITING
            self._bound()
        elif entry[0] != body_hash or entry[1] != head_hash:
            if entry[2] is None:
                self._fingerprinted(entry)
            self._differs(entry, body_hash, head_hash, answer)

    def _fingerprinted(self, entry: list) -> None:
        """The first answer's fingerprint, needed at last: its response read again."""
        if entry[2] is None:
            fields = _fingerprint(self._recall(entry[4]),  # type: ignore[misc]
                                  self.pointers.setdefault)
            entry[2], entry[4] = fields, None
            self.total += len(fields) + 1 - _WAITING

    def _differs(self, entry: list, body_hash: int, head_hash: int, answer: Answer) -> None:
        """Compare an answer with the first answer of its request, which differs."""
        fields = entry[2]
        get = fields.get
        share = self.pointers.setdefault
        differ: list[str] = []
        grown = len(fields)
        if entry[1] != head_hash:
            for p, h in _header_hashes(answer.response()).items():
                old = get(p)
                if old is None:
                    fields[share(p, p)] = h
                elif old != h:
                    differ.append(p)
        if entry[0] != body_hash:
            # Learning's hot path: a loop of lookups, not a set difference of the two
            # fingerprints' items (sets of tuples built per answer took twice as long).
            # What differs is a new pointer or another value.
            for p, h in answer.body_hashes().items():
                old = get(p)
                if old is None:
                    fields[share(p, p)] = h
                elif old != h:
                    differ.append(p)
        if differ:
            if entry[3] is None:
                entry[3] = answer.route_key()
            general = self._general
            noisy = self.noisy.setdefault(entry[3], set())
            for p in differ:
                g = general.get(p)
                if g is None:
                    g = general[p] = generalize(p)
                noisy.add(g)
        grown = len(fields) - grown
        if grown:
            self.total += grown
            self._bound()

    def _bound(self) -> None:
        while self.total > self.max and len(self.seen) > 1:
            entry = self.seen.popitem(last=False)[1]
            self.total -= _WAITING if entry[2] is None else 1 + len(entry[2])
        if len(self.pointers) > self.max:
            self.pointers.clear()  # only a sharing cache: forgetting it costs memory, not truth
            self._general.clear()

    def model(self) -> NoiseModel:
        """What was learned so far."""
        return NoiseModel(tuple(sorted((rk, p) for rk, ps in self.noisy.items() for p in ps)))


@dataclass(frozen=True, slots=True)
class NoiseModel:
    """Learned noise per route, `--ignore` globs, and the kinds of value always volatile."""

    noise: tuple[tuple[RouteKey, str], ...] = ()  # (route key, pointer with indices as *)
    ignores: tuple[PointerGlob, ...] = ()
    _by_route: dict[RouteKey, frozenset[str]] = field(
        init=False, repr=False, compare=False, hash=False)
    _everywhere: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by: dict[RouteKey, set[str]] = {}
        for rk, p in self.noise:
            by.setdefault(rk, set()).add(p)
        # Noise under two or more routes (a `requestId`, a `generatedAt`) is noise anywhere.
        counts = Counter(p for ps in by.values() for p in ps)
        object.__setattr__(self, "_by_route", {k: frozenset(v) for k, v in by.items()})
        object.__setattr__(self, "_everywhere",
                           frozenset(p for p, n in counts.items() if n >= 2))

    @classmethod
    def learn(cls, exchanges: Iterable[object], *,
              max_fingerprints: int = 200_000) -> NoiseModel:
        """Noise shown by repeated identical requests (records other than answered
        exchanges are skipped, so a capture's records can be passed as they are)."""
        learner = NoiseLearner(max_fingerprints)
        for x in exchanges:
            if isinstance(x, Exchange) and x.response is not None and x.error is None:
                learner.add(x)
        return learner.model()

    def with_ignores(self, globs: Iterable[PointerGlob]) -> NoiseModel:
        """This model with `globs` (`--ignore`) counted as noise on every route."""
        more = tuple(g for g in globs if g not in self.ignores)
        return NoiseModel(self.noise, self.ignores + more)

    def merged(self, other: NoiseModel) -> NoiseModel:
        """The noise of either model (e.g. learned from each of two captures)."""
        noise = tuple(sorted(set(self.noise) | set(other.noise)))
        return NoiseModel(noise, self.ignores).with_ignores(other.ignores)

    def learned(self) -> list[tuple[str, str]]:
        """(route key as text, pointer) for every learned pointer; `*` for noise learned
        under several routes, which counts on every route."""
        rows = [(" ".join(rk), p) for rk, p in self.noise]
        return rows + [("*", p) for p in sorted(self._everywhere)]

    def _route(self, x_or_route_key: Exchange | RouteKey | None) -> RouteKey | None:
        return route_key(x_or_route_key) if isinstance(x_or_route_key, Exchange) \
            else x_or_route_key

    def noise_kind(self, x_or_route_key: Exchange | RouteKey | None, pointer: str,
                   value: object = None) -> str | None:
        """Why the value at `pointer` is noise: "ignored", "learned", a `value_kind`
        (when `value` is given), or None when it is not noise."""
        if self.ignores and any(g.matches(pointer) for g in self.ignores):
            return "ignored"
        if self._by_route:
            g = generalize(pointer)
            if g in self._everywhere:
                return "learned"
            rk = self._route(x_or_route_key)
            if rk is not None and g in self._by_route.get(rk, ()):
                return "learned"
        return None if value is None else value_kind(value)

    def is_noise(self, x_or_route_key: Exchange | RouteKey | None, pointer: str,
                 value: object = None) -> bool:
        """Learned noise for that route, an `--ignore` glob, or a volatile-looking value."""
        return self.noise_kind(x_or_route_key, pointer, value) is not None

    def mask(self, value: object,
             route_key: Exchange | RouteKey | None = None) -> object:
        """The JSON value with noisy leaves as `<noise:KIND>` (inside text, the volatile
        parts); masking twice changes nothing more."""
        rk = self._route(route_key)
        learned = self._by_route.get(rk, frozenset()) if rk is not None else frozenset()
        if not (self.ignores or learned or self._everywhere):
            return _mask_kinds(value)  # no pointer can matter: skip building them
        return self._mask_at(value, "", learned)

    def _mask_at(self, value: object, pointer: str, learned: frozenset[str]) -> object:
        if self.ignores and any(g.matches(pointer) for g in self.ignores):
            return "<noise:ignored>"
        g = generalize(pointer)
        if g in learned or g in self._everywhere:
            return "<noise:learned>"
        if isinstance(value, dict):
            return {k: self._mask_at(v, f"{pointer}/{escape(str(k))}", learned)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._mask_at(v, f"{pointer}/{i}", learned) for i, v in enumerate(value)]
        return _mask_leaf(value)


def _mask_leaf(value: object) -> object:
    kind = value_kind(value)
    if kind is not None:
        return f"<noise:{kind}>"
    return mask_text(value) if isinstance(value, str) else value


def _mask_kinds(value: object) -> object:
    if isinstance(value, dict):
        return {k: _mask_kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_kinds(v) for v in value]
    return _mask_leaf(value)
