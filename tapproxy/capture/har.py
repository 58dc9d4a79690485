"""HAR 1.2 export and import: captures to and from browser/devtools archives.

HAR (http://www.softwareishard.com/blog/har-12-spec/) holds decoded bodies and has
no place for raw content-encoded bytes, caller/callee identity or every timing
phase, so export adds them under the custom `_tapproxy` key (HAR allows fields
starting with `_`) and import uses it to rebuild the exact Exchange. Entries
without it (a browser's, mitmproxy's savehar) become best-effort exchanges.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, urlsplit

from tapproxy.atomic import atomic_output
from tapproxy.capture.encoding import decoded_body
from tapproxy.capture.grpc import index_messages, messages_from_index
from tapproxy.capture.model import (
    ERROR_KINDS,
    MAX_TIME,
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Record,
    Request,
    Response,
    Timing,
)
from tapproxy.errors import CaptureError

__all__ = ["export_har", "import_har"]

_SE = "surrogateescape"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A capture's times are nanoseconds since the epoch that int64 holds (the reader's range,
# which the writer checks): the years 1970 to 2262.
_TIME_MIN, _TIME_MAX = 0, MAX_TIME
_TIMING_FIELDS = tuple(Timing.__dataclass_fields__)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_VERSIONS = {"h2": "HTTP/2.0", "http/2": "HTTP/2.0", "h3": "HTTP/3", "http/3.0": "HTTP/3"}
_URL_SAFE = "".join(map(chr, range(0x21, 0x7F)))  # %-encode only non-ASCII, space, controls
_MISSING = object()


def export_har(
    records: Iterable[Record], out: TextIO | str | os.PathLike, creator_version: str
) -> int:
    """Write the exchanges among `records` as a HAR 1.2 document; returns the entry count."""
    if not isinstance(out, str | os.PathLike):
        return _write_har(records, out, creator_version)
    try:
        with atomic_output(out) as f:
            return _write_har(records, f, creator_version)
    except OSError as e:
        raise CaptureError(f"{out}: cannot write HAR file: {e.strerror}") from e


def _write_har(records: Iterable[Record], out: TextIO, creator_version: str) -> int:
    creator = json.dumps({"name": "tapproxy", "version": creator_version})
    out.write(f'{{"log": {{"version": "1.2", "creator": {creator}, "entries": [')
    count = 0
    for record in records:
        if isinstance(record, Exchange):
            try:
                entry = _entry_out(record)
            except (OverflowError, ValueError) as e:  # a date HAR's ISO 8601 cannot spell
                raise CaptureError(f"exchange {count + 1} ({record.id}): cannot be written "
                                   f"as a HAR entry: {e}") from None
            out.write(",\n" if count else "\n")
            out.write(json.dumps(entry))
            count += 1
    out.write("\n]}}\n")
    return count


def _entry_out(x: Exchange) -> dict[str, Any]:
    q, r, t = x.request, x.response, x.timing
    query = parse_qsl(_clean(q.query), keep_blank_values=True)
    request: dict[str, Any] = {
        # mitmproxy decodes the target with surrogateescape; a URL carries such bytes %-encoded.
        "method": q.method, "url": quote(q.url, safe=_URL_SAFE, errors=_SE),
        "httpVersion": q.http_version, "cookies": [], "headers": _headers_out(q.headers),
        "headersSize": -1, "bodySize": q.size,
        "queryString": [{"name": k, "value": v} for k, v in query],
    }
    if q.body:
        text, _ = _body_out(q, "_encoding")  # HAR 1.2 has no `encoding` on postData
        request["postData"] = {"mimeType": _clean(q.headers.get("content-type") or ""), **text}
    if q.trailers is not None:
        request["_trailers"] = _headers_out(q.trailers)  # HAR 1.2 has no trailers
    return {
        "startedDateTime": _iso(t.request_start),
        "time": _ms(t.duration_ns),
        "request": request,
        "response": _response_out(r, x.error),
        "cache": {},
        "timings": _timings_out(t),
        "_tapproxy": {
            "id": x.id, "caller": asdict(x.caller), "callee": asdict(x.callee),
            # The URL loses host case, default ports and non-origin-form targets.
            "target": _put_text({"scheme": q.scheme, "host": q.host, "port": q.port}, "path",
                                q.path),
            "test": x.test, "test_source": x.test_source, "route": x.route,
            "streamed": x.streamed, "websocket": x.websocket, "redacted": list(x.redacted),
            "timing": {k: v for k in _TIMING_FIELDS if (v := getattr(t, k)) is not None},
            "request_body_b64": _b64(q.body),
            "response_body_b64": None if r is None else _b64(r.body),
            **_truncation_out("request", q), **_truncation_out("response", r),
            **({"grpc_messages": index_messages(x.grpc_messages)} if x.grpc_messages else {}),
        },
    }


def _response_out(r: Response | None, error: ErrorInfo | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
        "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1,
        "bodySize": -1,
    }
    if r is not None:
        text, size = _body_out(r, "encoding")
        content: dict[str, Any] = {"size": size}
        if "content-encoding" in r.headers and not r.body_truncated:
            content["compression"] = size - len(r.body)  # HAR: "number of bytes saved"
        content.update(mimeType=_clean(r.headers.get("content-type") or ""), **text)
        out.update(status=r.status, statusText=r.reason, httpVersion=r.http_version,
                   headers=_headers_out(r.headers), content=content, bodySize=r.size,
                   redirectURL=_clean(r.headers.get("location") or ""))
        if r.trailers is not None:
            out["_trailers"] = _headers_out(r.trailers)
    if error is not None:
        out["_error"] = {"kind": error.kind, "message": error.message}
    return out


def _body_out(m: Request | Response, encoding_key: str) -> tuple[dict[str, str], int]:
    """HAR text fields for a body (decoded; base64 unless UTF-8) and its decoded size."""
    fields = {}
    try:
        body = decoded_body(m)
    except CaptureError as e:
        # A corrupt body or unknown coding: export what was sent and say so, rather than fail.
        body = m.body
        fields["comment"] = f"body not decoded ({e}); text is the body as sent"
    try:
        fields["text"] = body.decode("utf-8")
    except UnicodeDecodeError:
        fields["text"] = _b64(body)
        fields[encoding_key] = "base64"
    if m.body_truncated:
        note = (f"body truncated: the first {len(m.body)} of {m.body_size} bytes were kept "
                f"(SHA-256 {m.body_sha256.hex()}); text is those bytes")
        fields["comment"] = "; ".join(c for c in (fields.get("comment"), note) if c)
        return fields, m.size
    return fields, len(body)


def _truncation_out(side: str, m: Request | Response | None) -> dict[str, Any]:
    """`_tapproxy` fields of a body kept in part, so that import restores them."""
    if m is None or not m.body_truncated:
        return {}
    return {f"{side}_body_size": m.body_size, f"{side}_body_sha256": m.body_sha256.hex()}


def _truncation_in(entry: dict, side: str) -> dict[str, Any]:
    size = _get(entry, f"_tapproxy.{side}_body_size", int, None)
    digest = _get(entry, f"_tapproxy.{side}_body_sha256", str, None)
    if size is None or digest is None:
        return {}
    try:
        return {"body_size": size, "body_sha256": bytes.fromhex(digest)}
    except ValueError:
        raise _BadEntry(f"has a bad _tapproxy.{side}_body_sha256 (not hex)") from None


def _timings_out(t: Timing) -> dict[str, float | int]:
    def span(a: int | None, b: int | None) -> float | int:
        return -1 if a is None or b is None else _ms(max(0, b - a))

    connect = ssl = -1
    if t.server_conn_start is not None and t.server_conn_start >= t.request_start:
        # HAR counts the TLS handshake in `connect` as well as in `ssl`.
        done = t.server_tls_done if t.server_tls_done is not None else t.server_tcp_done
        connect = span(t.server_conn_start, done)
        ssl = span(t.server_tcp_done, t.server_tls_done)
    return {
        "blocked": -1, "dns": -1, "connect": connect, "ssl": ssl,
        "send": span(t.request_start, t.request_end),
        "wait": span(t.request_end, t.response_start),
        "receive": span(t.response_start, t.response_end),
    }


def _headers_out(headers: Headers) -> list[dict[str, str]]:
    return [_put_text(_put_text({}, "name", name), "value", value) for name, value in headers]


def _put_text(d: dict[str, Any], key: str, s: str) -> dict[str, Any]:
    """d[key] = s, with the exact bytes in `_{key}_b64` when s holds undecodable bytes."""
    # Lone surrogates (surrogateescape) are invalid Unicode that strict JSON parsers reject:
    # the plain field gets U+FFFD instead.
    d[key] = _clean(s)
    if d[key] != s:
        d[f"_{key}_b64"] = _b64(s.encode("utf-8", _SE))
    return d


def _clean(s: str) -> str:
    return s.encode("utf-8", _SE).decode("utf-8", "replace")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def _iso(ns: int) -> str:
    dt = _EPOCH + timedelta(microseconds=ns // 1000)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def import_har(path: str | os.PathLike) -> Iterator[Exchange]:
    """Read a HAR file (tapproxy's own or another tool's) as a stream of exchanges."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except OSError as e:
        raise CaptureError(f"{path}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError:
        raise CaptureError(f"{path}: not a HAR file (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise CaptureError(f"{path}: not a HAR file (not JSON: {e.msg} at line {e.lineno})") from e
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise CaptureError(f"{path}: not a HAR file (no log.entries list)")
    return _exchanges_in(str(path), entries)


class _BadEntry(Exception):
    """A field is missing or malformed; the message continues 'entry N ...'."""


def _exchanges_in(path: str, entries: list) -> Iterator[Exchange]:
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise _BadEntry("is not an object")
            yield _exchange_in(entry)
        except _BadEntry as e:
            raise CaptureError(f"{path}: entry {i} {e}") from None


def _get(obj: Any, path: str, kind: type | tuple[type, ...], default: Any = _MISSING,
         prefix: str = "") -> Any:
    """obj[a][b]... for path "a.b", checked against `kind`; a null counts as absent."""
    value = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        if default is _MISSING:
            raise _BadEntry(f"has no {prefix}{path}")
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _BadEntry(f"has a bad {prefix}{path} ({type(value).__name__} {value!r:.40})")
    return value


def _exchange_in(entry: dict) -> Exchange:
    own = isinstance(entry.get("_tapproxy"), dict)
    method, url = _get(entry, "request.method", str), _get(entry, "request.url", str)
    status = _get(entry, "response.status", int)
    request_start = _started_ns(_get(entry, "startedDateTime", str))
    error = _error_in(entry)
    req_headers, resp_headers = _headers_in(entry, "request"), _headers_in(entry, "response")
    if own:
        scheme, host = (_get(entry, f"_tapproxy.target.{k}", str) for k in ("scheme", "host"))
        port = _get(entry, "_tapproxy.target.port", int)
        path = _get_text(_get(entry, "_tapproxy.target", dict), "path", "_tapproxy.target.")
        req_body = _unb64(entry, "_tapproxy.request_body_b64")
        resp_body = None
        if _get(entry, "_tapproxy.response_body_b64", str, None) is not None:
            resp_body = _unb64(entry, "_tapproxy.response_body_b64")
        timing = Timing(request_start=_get(entry, "_tapproxy.timing.request_start", int), **{
            k: _get(entry, f"_tapproxy.timing.{k}", int, None) for k in _TIMING_FIELDS[1:]})
    else:
        scheme, host, port, path = _target_in(url)
        req_body = _text_in(entry, "request.postData", ("encoding", "_encoding"))
        resp_body = _text_in(entry, "response.content", ("encoding",))
        size = _get(entry, "response.content.size", (int, float), 0)
        if status == 0 and not resp_body and size <= 0:
            resp_body = None
            error = error or ErrorInfo(kind="other", message="no response recorded")
        if "content-encoding" in resp_headers:
            # HAR content.text is the decoded body, so the headers must stop claiming an
            # encoding (and the encoded length) for the stored body to read back correctly.
            dropped = ("content-encoding", "content-length")
            resp_headers = Headers(tuple(h for h in resp_headers if h[0].lower() not in dropped))
        timing = _timing_in(entry, request_start, responded=resp_body is not None)
    for k in _TIMING_FIELDS:
        if (v := getattr(timing, k)) is not None and not _TIME_MIN <= v <= _TIME_MAX:
            raise _BadEntry(f"has a timing phase {k} beyond what a capture can hold ({v})")
    request = Request(
        method=method, scheme=scheme, host=host, port=port, path=path,
        http_version=_version_in(_get(entry, "request.httpVersion", str, ""), own),
        headers=req_headers, body=req_body, trailers=_trailers_in(entry, "request"),
        **(_truncation_in(entry, "request") if own else {}),
    )
    response = None if resp_body is None else Response(
        status=status, reason=_get(entry, "response.statusText", str, ""),
        http_version=_version_in(_get(entry, "response.httpVersion", str, ""), own),
        headers=resp_headers, body=resp_body, trailers=_trailers_in(entry, "response"),
        **(_truncation_in(entry, "response") if own else {}),
    )
    if not own:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return Exchange(id=str(uuid.uuid4()), caller=Party(name="unknown", source="har"),
                        callee=Party(name=host, source="host", address=address),
                        request=request, response=response, error=error, timing=timing)
    redacted = _get(entry, "_tapproxy.redacted", list, [])
    if not all(isinstance(r, str) for r in redacted):
        raise _BadEntry("has a bad _tapproxy.redacted (not a list of strings)")
    return Exchange(
        id=_get(entry, "_tapproxy.id", str),
        caller=_party_in(entry, "caller"), callee=_party_in(entry, "callee"),
        request=request, response=response, error=error, timing=timing,
        test=_get(entry, "_tapproxy.test", str, None),
        test_source=_get(entry, "_tapproxy.test_source", str, None),
        route=_get(entry, "_tapproxy.route", str, None),
        streamed=_get(entry, "_tapproxy.streamed", bool, False),
        websocket=_get(entry, "_tapproxy.websocket", bool, False),
        redacted=tuple(redacted),
        grpc_messages=_grpc_messages_in(entry, req_body, resp_body),
    )


def _grpc_messages_in(entry: dict, request_body: bytes, response_body: bytes | None):
    index = _get(entry, "_tapproxy.grpc_messages", list, [])
    for j, m in enumerate(index):
        for key, kind in (("from_client", bool), ("compressed", bool), ("timestamp", int),
                          ("length", int)):
            _get(m, key, kind, prefix=f"_tapproxy.grpc_messages[{j}].")
    return messages_from_index(index, request_body, response_body)


def _party_in(entry: dict, key: str) -> Party:
    return Party(name=_get(entry, f"_tapproxy.{key}.name", str),
                 source=_get(entry, f"_tapproxy.{key}.source", str),
                 address=_get(entry, f"_tapproxy.{key}.address", str, None),
                 pid=_get(entry, f"_tapproxy.{key}.pid", int, None),
                 command=_get(entry, f"_tapproxy.{key}.command", str, None))


def _error_in(entry: dict) -> ErrorInfo | None:
    raw = _get(entry, "response._error", (str, dict), None)
    if isinstance(raw, str):  # Chrome and mitmproxy's savehar write a bare message
        return ErrorInfo(kind="other", message=raw)
    if raw is None:
        return None
    kind = _get(raw, "kind", str, "other", prefix="response._error.")
    return ErrorInfo(kind=kind if kind in ERROR_KINDS else "other",
                     message=_get(raw, "message", str, "", prefix="response._error."))


def _trailers_in(entry: dict, where: str) -> Headers | None:
    if _get(entry, f"{where}._trailers", list, None) is None:
        return None
    return _headers_in(entry, where, "_trailers")


def _headers_in(entry: dict, where: str, key: str = "headers") -> Headers:
    fields = []
    for j, h in enumerate(_get(entry, f"{where}.{key}", list, [])):
        prefix = f"{where}.{key}[{j}]."
        name, value = _get_text(h, "name", prefix), _get_text(h, "value", prefix)
        if not name.startswith(":"):  # HTTP/2 and HTTP/3 pseudo-headers are not fields
            fields.append((name, value))
    return Headers(tuple(fields))


def _get_text(obj: Any, key: str, prefix: str) -> str:
    """A field written by `_put_text`: its exact bytes if it has them, else its text."""
    if isinstance(obj, dict) and obj.get(f"_{key}_b64") is not None:
        return _unb64(obj, f"_{key}_b64", prefix).decode("utf-8", _SE)
    return _get(obj, key, str, prefix=prefix)


def _text_in(entry: dict, where: str, encoding_keys: tuple[str, ...]) -> bytes:
    text = _get(entry, f"{where}.text", str, "")
    if any(_get(entry, f"{where}.{k}", str, "") == "base64" for k in encoding_keys):
        return _unb64(entry, f"{where}.text")
    return text.encode("utf-8", "surrogatepass")


def _unb64(obj: dict, path: str, prefix: str = "") -> bytes:
    try:
        return base64.b64decode(_get(obj, path, str, prefix=prefix), validate=True)
    except (binascii.Error, ValueError):
        raise _BadEntry(f"has a bad {prefix}{path} (not base64)") from None


def _started_ns(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise _BadEntry(f"has a bad startedDateTime {text!r:.40} (not ISO 8601)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ns = (dt - _EPOCH) // timedelta(microseconds=1) * 1000
    if not _TIME_MIN <= ns <= _TIME_MAX:
        raise _BadEntry(f"has a startedDateTime {text!r:.40} outside the years 1970 to 2262 "
                        "(a capture's times are 64-bit nanoseconds since 1970)")
    return ns


def _timing_in(entry: dict, start: int, responded: bool) -> Timing:
    phases = {"request_start": start}
    _get(entry, "timings", dict, {})  # not an object: say so, rather than time it as zero
    at = start
    steps = [("send", "request_end")]
    if responded:
        steps += [("wait", "response_start"), ("receive", "response_end")]
    for har_key, phase in steps:
        ms = _get(entry, f"timings.{har_key}", (int, float), -1)
        if not 0 <= ms < 1e12:  # -1 is HAR's "unknown"; later phases are unknown too
            break
        at += round(ms * 1e6)
        phases[phase] = at
    return Timing(**phases)


def _target_in(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if scheme not in _DEFAULT_PORTS or not parts.hostname or port == -1:
        raise _BadEntry(f"has a bad request.url {url!r:.60} (not an http(s) or ws(s) URL)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], path


def _version_in(version: str, exact: bool) -> str:
    """mitmproxy's spelling of an HTTP version (browsers write `http/2.0`, `h3`, ...)."""
    return version if exact else _VERSIONS.get(version.strip().lower(), version.strip().upper())
