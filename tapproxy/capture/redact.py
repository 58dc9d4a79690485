"""Masking credentials in records before they are written.

A transform of the capture writer, so it runs where a record is submitted: the
writer encodes on the caller (mitmproxy's event loop), not on its thread, since waking
that thread per record cost more in GIL contention (capture/writer.py). One list of
credential-like names (capture/credentials.py) is applied to header names, query
parameters of the request target and of URL-valued headers (Referer, Location…),
form fields and JSON keys at any depth. A masked header keeps its name; its value
becomes MASK. Masked bodies are re-encoded with their original Content-Encoding, so
the stored body stays a valid body.
"""

from __future__ import annotations

import dataclasses
import json
import re

from tapproxy.capture.credentials import (
    CREDENTIAL_WORDS,
    MASK,
    NameTest,
    mask_command,
    mask_query,
    mask_url,
    name_test,
)
from tapproxy.capture.encoding import decode_body, encode_body
from tapproxy.capture.model import Exchange, Headers, Party, Record
from tapproxy.errors import CaptureError, UsageError

__all__ = ["MASK", "Redactor", "parse_json_path"]

_MASK_BYTES = MASK.encode()
_SE = "surrogateescape"
# What a header name is to redaction (Redactor._kind): none, or some of these flags.
_SECRET, _URL, _TYPE, _ENCODING = 1, 2, 4, 8
# Headers whose value is a URL that may carry a token in its query or userinfo.
_URL_HEADERS = frozenset({b"referer", b"location", b"content-location"})
_FORM = "application/x-www-form-urlencoded"
# JSON bodies up to this size are remembered when they held nothing to mask, at most
# _CLEAN_KEEP of them (at most 4 MiB kept, whatever runs through the proxy).
_CLEAN_MAX = 8 << 10
_CLEAN_KEEP = 512


def _quick_check(words: tuple[str, ...]) -> re.Pattern[bytes]:
    """A cheap look before parsing a JSON body: no credential word, no key to mask.

    A key that normalizes to hold `api-key` holds `api` and `key` as written, whatever
    its spelling (apiKey, API_KEY): one piece of each word is enough to look for, and a
    word added to the list is looked for at once. (A key spelled with \\u escapes slips
    past; senders under test do not hide their own keys.)"""
    pieces = {max(reversed(w.split("-")), key=len) for w in words}  # ties: the noun
    # A piece containing another is found by the shorter one: look for the shortest.
    kept = sorted(p for p in pieces if not any(q != p and q in p for q in pieces))
    # Branches grouped by first letter (`a(?:ccess|uth)|c(?:ookie|…)`): re then tries
    # one branch per letter at each position, not every word (~15% less per body).
    by_first: dict[str, list[str]] = {}
    for piece in kept:
        by_first.setdefault(piece[0], []).append(re.escape(piece[1:]))
    return re.compile("|".join(
        f"{re.escape(first)}(?:{'|'.join(rests)})" if len(rests) > 1 else
        re.escape(first) + rests[0] for first, rests in by_first.items()).encode())


_HINT = _quick_check(CREDENTIAL_WORDS)


def _may_hold_credentials(text: bytes) -> bool:
    # On the lower-cased body: several times faster than one case-blind (?i) regex.
    return _HINT.search(text.lower()) is not None


_PLAIN_KEY = re.compile(r"[A-Za-z_$][\w$-]*\Z")
# `..name` is any-depth descent then a name; `..[…]` descent then a bracket segment.
_SEGMENT = re.compile(
    r"\.\.?([A-Za-z_$][\w$-]*|\*)|\.\.(?=\[)|\[(\*|\d+|'[^']*'|\"[^\"]*\")\]"
)


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """`$.a.b`, `$.items[*].card`, `$..token`, `$['odd key']` → segments ('..' = any depth)."""
    p = path.strip()
    if not p.startswith("$"):
        p = "$." + p
    segments: list[str | int] = []
    pos = 1
    while pos < len(p):
        m = _SEGMENT.match(p, pos)
        if m is None:
            raise UsageError(f"bad --redact/--redact-json path {path!r} at {p[pos:]!r}: "
                             "expected .name, [*], [N], ['name'] or ..name")
        token = m.group(0)
        if token.startswith(".."):
            segments.append("..")
            if m.group(1) is not None:
                segments.append(m.group(1))
        elif m.group(1) is not None:
            segments.append(m.group(1))
        else:
            inner = m.group(2)
            segments.append("*" if inner == "*" else int(inner) if inner.isdigit() else inner[1:-1])
        pos = m.end()
    if not segments or segments[-1] == "..":
        raise UsageError(f"bad --redact/--redact-json path {path!r}: it names no field")
    return tuple(segments)


def _mask_path(node: object, path: tuple[str | int, ...]) -> bool:
    """Mask in place what `path` names under `node`; True if anything was masked."""
    if not path:
        return False
    head, rest = path[0], path[1:]
    if head == "..":
        hit = _mask_path(node, rest)
        if isinstance(node, dict):
            children = list(node.values())
        else:
            children = node if isinstance(node, list) else []
        for child in children:
            hit |= _mask_path(child, path)
        return hit
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        if head == "*":
            keys = range(len(node))
        elif isinstance(head, int) and head < len(node):
            keys = [head]
        else:
            keys = []
    else:
        return False
    hit = False
    for k in keys:
        if rest:
            hit |= _mask_path(node[k], rest)
        else:
            node[k] = MASK
            hit = True
    return hit


def _key_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if _PLAIN_KEY.match(key) else f"{parent}[{json.dumps(key)}]"


def _mask_keys(node: object, is_credential: NameTest, at: str, hits: dict[str, None]) -> None:
    """Mask in place every value under a credential-like key; `hits` gets their paths.

    Arrays are written `[*]` in the paths, so a list of a thousand users is one entry.
    Booleans and nulls are kept: `"password_set": true` hides nothing.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and is_credential(key):
                if value is not None and not isinstance(value, bool):
                    node[key] = MASK
                    hits[_key_path(at, key)] = None
            elif isinstance(value, (dict, list)):
                _mask_keys(value, is_credential, _key_path(at, key), hits)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _mask_keys(item, is_credential, f"{at}[*]", hits)


def _mask_form(body: bytes, is_credential: NameTest) -> tuple[bytes, list[str]]:
    """A form body (`a=1&password=x`) with credential values masked, and their names."""
    text = body.decode("latin-1")  # percent-encoded ASCII; latin-1 round-trips any byte
    masked, names = mask_query(text, is_credential)
    return (masked.encode("latin-1"), names) if names else (body, [])


class Redactor:
    """A record transform masking credentials: headers, query, form fields, JSON keys, paths.

    `names` are extra names masked wherever they occur (header, query, form, JSON key);
    `extra_headers` extra header names only; `json_paths` JSON paths in JSON bodies.
    """

    def __init__(self, names: tuple[str, ...] = (), extra_headers: tuple[str, ...] = (),
                 json_paths: tuple[str, ...] = ()):
        self._names = tuple(names)  # extra names defeat the cheap look: always parse then
        self._is_credential = name_test(self._names)
        self._is_header = name_test((*names, *extra_headers))
        self._paths = [(p, parse_json_path(p)) for p in json_paths]
        # What each raw header name is to redaction, decided once: names repeat.
        self._kinds: dict[bytes, int] = {}
        self._commands: dict[str, tuple[str, bool]] = {}  # command line → masked
        # (content-encoding, JSON body) found to hold nothing to mask: services answer
        # the same bodies again and again, and a repeat costs a hash, not a scan.
        self._clean: set[tuple[str | None, bytes]] = set()

    def _kind(self, name: bytes) -> int:
        kind = self._kinds.get(name)
        if kind is None:
            lname = name.lower()
            kind = ((_TYPE if lname == b"content-type" else 0)
                    | (_ENCODING if lname == b"content-encoding" else 0)
                    | (_SECRET if self._is_header(name.decode("utf-8", "replace")) else
                       _URL if lname in _URL_HEADERS else 0))
            if len(self._kinds) < 10_000:  # bounded, whatever names clients invent
                self._kinds[name] = kind
        return kind

    def _url_header(self, name: bytes, value: bytes, side: str, log: list[str]) -> bytes:
        if b"?" not in value and b"@" not in value and b";" not in value:
            return value
        text = value.decode("latin-1")
        masked, names = mask_url(text, self._is_credential)
        lname = name.decode("latin-1").lower()
        for n in names:
            entry = (f"{side}.header:{lname}@" if n == "userinfo" else
                     f"{side}.header:{lname}{n}" if n.startswith(";") else
                     f"{side}.header:{lname}?{n}")
            if entry not in log:
                log.append(entry)
        return masked.encode("latin-1") if names else value

    def _headers_of(self, h: Headers, side: str,
                    log: list[str]) -> tuple[Headers, str, str | None]:
        """The headers masked, and the body's content type (lower case, without
        parameters) and content-encoding as the first of each header says."""
        # One pass over the raw fields, one dict lookup per header, for all three.
        raw = h.raw
        out = None
        ctype = encoding = None
        for i, (k, v) in enumerate(raw):
            kind = self._kinds.get(k)
            if kind is None:
                kind = self._kind(k)
            if not kind:
                continue
            if kind & _TYPE and ctype is None:
                ctype = v
            elif kind & _ENCODING and encoding is None:
                encoding = v
            if kind & _SECRET:
                entry = f"{side}.header:{k.decode('utf-8', 'replace').lower()}"
                if entry not in log:
                    log.append(entry)
                new = _MASK_BYTES
            elif kind & _URL:
                new = self._url_header(k, v, side, log)
            else:
                continue
            if new is not v:
                out = list(raw) if out is None else out
                out[i] = (k, new)
        return (h if out is None else Headers.from_raw(tuple(out)),
                "" if ctype is None else ctype.decode("utf-8", _SE).split(";")[0].strip().lower(),
                None if encoding is None else encoding.decode("utf-8", _SE))

    def _message(self, msg, side: str, log: list[str]):
        """`msg` with credentials masked (itself if nothing was)."""
        headers, ctype, encoding = self._headers_of(msg.headers, side, log)
        body = self._body_of(msg.body, ctype, encoding, side, log)
        changes = {}
        if side == "request" and ("?" in msg.path or ";" in msg.path):
            path, names = mask_url(msg.path, self._is_credential)
            if names:
                changes["path"] = path
                log.extend(f"request.path:{n[1:]}" if n.startswith(";") else
                           f"request.query:{n}" for n in names)
        if body is not msg.body and headers.get("content-length") is not None:
            # The masked body has another length; the record must describe its own body.
            headers = Headers(tuple((k, str(len(body)) if k.lower() == "content-length" else v)
                                    for k, v in headers.fields))
        if headers is not msg.headers:
            changes["headers"] = headers
        if body is not msg.body:
            changes["body"] = body
        return dataclasses.replace(msg, **changes) if changes else msg

    def _body_of(self, body: bytes, ctype: str, encoding: str | None, side: str,
                 log: list[str]) -> bytes:
        if not body:
            return body
        if ctype == _FORM:
            return self._form_body(body, encoding, side, log)
        if "json" not in ctype:
            return body
        key = (encoding, body) if len(body) <= _CLEAN_MAX else None
        if key is not None and key in self._clean:
            return body  # the same bytes had nothing to mask before
        masked = self._json_body(body, encoding, side, log)
        if masked is body and key is not None:
            if len(self._clean) >= _CLEAN_KEEP:  # bounded: ids make most bodies unique
                self._clean.clear()
            self._clean.add(key)
        return masked

    def _json_body(self, raw: bytes, encoding: str | None, side: str, log: list[str]) -> bytes:
        try:
            text = decode_body(raw, encoding)
        except CaptureError:
            return raw  # undecodable: stored as sent, nothing to look into
        if not self._paths and not self._names and not _may_hold_credentials(text):
            return raw
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return raw  # not JSON after all: nothing to mask by key or path
        hits: dict[str, None] = {}
        _mask_keys(doc, self._is_credential, "$", hits)
        hits.update((p, None) for p, segs in self._paths if _mask_path(doc, segs))
        if not hits:
            return raw
        log.extend(f"{side}.json:{p}" for p in hits)
        return encode_body(json.dumps(doc, separators=(",", ":")).encode(), encoding)

    def _form_body(self, body: bytes, encoding: str | None, side: str,
                   log: list[str]) -> bytes:
        try:
            text = decode_body(body, encoding)
        except CaptureError:
            return body
        masked, names = _mask_form(text, self._is_credential)
        if not names:
            return body
        log.extend(f"{side}.form:{n}" for n in names)
        return encode_body(masked, encoding)

    def mask_target(self, path: str) -> str:
        """The request target with credential query values masked (for live spans)."""
        return mask_url(path, self._is_credential)[0]

    def _party(self, p: Party, side: str, log: list[str]) -> Party:
        # A process's command line may carry a secret (`curl -d password=…`).
        if not p.command:
            return p
        known = self._commands.get(p.command)  # the same few processes, record after record
        if known is None:
            known = mask_command(p.command, self._is_credential)
            if len(self._commands) < 1024:
                self._commands[p.command] = known
        command, masked = known
        if not masked:
            return p
        log.append(f"{side}.command")
        return dataclasses.replace(p, command=command)

    def __call__(self, record: Record) -> Record:
        if not isinstance(record, Exchange):
            return record
        log: list[str] = []
        q = self._message(record.request, "request", log)
        r = record.response
        if r is not None:
            r = self._message(r, "response", log)
        caller = self._party(record.caller, "caller", log)
        callee = self._party(record.callee, "callee", log)
        if not log:
            return record
        # dict.fromkeys: a record masked before (an imported capture) lists each mask once.
        return dataclasses.replace(record, request=q, response=r, caller=caller, callee=callee,
                                   redacted=tuple(dict.fromkeys((*record.redacted, *log))))
