import base64
import gzip
import io
import json
import re
import string
from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapproxy.capture.encoding import body_json, body_text, encode_body
from tapproxy.capture.format import new_header, open_capture
from tapproxy.capture.har import export_har, import_har
from tapproxy.capture.model import (
    ERROR_KINDS,
    ErrorInfo,
    Exchange,
    GrpcMessage,
    Headers,
    Party,
    Request,
    Response,
    TestCase,
    Timing,
)
from tapproxy.capture.writer import CaptureWriter
from tapproxy.errors import CaptureError

T0 = 1_700_000_000_123_456_789
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def _exchange(**kw) -> Exchange:
    values = dict(
        id="x1",
        caller=Party("orders", "proxy-auth", "10.0.0.5:40000"),
        callee=Party("billing", "service-map", "billing:8080"),
        request=Request("POST", "http", "billing", 8080, "/charge?id=7&x=", "HTTP/1.1",
                        Headers((("content-type", "application/json"),)), b'{"amount": 5}'),
        response=Response(201, "Created", "HTTP/1.1",
                          Headers((("content-type", "application/json"),)), b'{"ok": true}'),
        timing=Timing(request_start=T0, request_end=T0 + 2_000_000,
                      response_start=T0 + 7_000_000, response_end=T0 + 9_500_000),
        test="tests/test_orders.py::test_charge",
        test_source="control",
        route="/charge",
    )
    values.update(kw)
    return Exchange(**values)


def _framed(*messages: bytes) -> bytes:
    return b"".join(b"\x00" + len(m).to_bytes(4) + m for m in messages)


GRPC = _exchange(
    id="grpc",
    request=Request("POST", "http", "echo", 50051, "/taptest.Echo/ServerStream", "HTTP/2.0",
                    Headers((("content-type", "application/grpc"), ("te", "trailers"))),
                    _framed(b"\n\x02hi")),
    response=Response(200, "", "HTTP/2.0", Headers((("content-type", "application/grpc"),)),
                      _framed(b"\n\x01a", b""),
                      trailers=Headers((("grpc-status", "5"), ("grpc-message", "no%20such"),
                                        ("x-trailer", "t1")))),
    grpc_messages=(GrpcMessage(True, False, T0 + 1, b"\n\x02hi"),
                   GrpcMessage(False, False, T0 + 2, b"\n\x01a"),
                   GrpcMessage(False, False, T0 + 3, b"")),
    streamed=True,
)
GZIP_TEXT = "héllo " * 50
EXCHANGES = [
    _exchange(),
    _exchange(
        id="binary",
        request=Request("PUT", "https", "Files.Example", 443, "/up", "HTTP/2.0",
                        Headers((("content-type", "image/png"),)), PNG),
        response=Response(200, "", "HTTP/2.0", Headers((("content-type", "image/png"),)), PNG),
    ),
    _exchange(
        id="gzip",
        response=Response(
            200, "OK", "HTTP/1.1",
            Headers((("Content-Type", "text/plain; charset=utf-8"),
                     ("Content-Encoding", "gzip"), ("Location", "/next"))),
            gzip.compress(GZIP_TEXT.encode(), mtime=0),
        ),
    ),
    _exchange(id="refused", response=None, error=ErrorInfo("refused", "Connection refused"),
              timing=Timing(request_start=T0, request_end=T0 + 1_000, error_at=T0 + 5_000)),
    _exchange(
        id="cut",
        error=ErrorInfo("reset", "peer reset mid-body"),
        streamed=True,
        redacted=("request.header:authorization",),
    ),
    _exchange(
        id="latin1",
        request=Request("GET", "http", "::1", 9000, "/café", "HTTP/1.1",
                        Headers((("x-name", b"caf\xe9".decode("utf-8", "surrogateescape")),
                                 ("x-\xff".encode("latin-1").decode("utf-8", "surrogateescape"),
                                  "v")))),
        response=Response(204, "No Content", "HTTP/1.1"),
        websocket=True,
    ),
    GRPC,
]


def _write_tap(path, records) -> None:
    writer = CaptureWriter(path, new_header())
    for record in records:
        writer.write(record)
    writer.close()


def _export(tmp_path, records):
    har = tmp_path / "out.har"
    count = export_har(records, har, "9.9")
    return har, count, json.loads(har.read_text("utf-8"))


def _entry(doc, exchange_id):
    return next(e for e in doc["log"]["entries"] if e["_tapproxy"]["id"] == exchange_id)


def test_capture_file_round_trips_through_har(tmp_path):
    tap = tmp_path / "in.tap"
    _write_tap(tap, [TestCase("t", T0), *EXCHANGES])
    with open_capture(tap) as reader:
        har, count, _ = _export(tmp_path, reader)

    assert count == len(EXCHANGES)
    assert list(import_har(har)) == EXCHANGES


def test_trailers_are_a_custom_har_field_and_grpc_messages_keep_their_times(tmp_path):
    _, _, doc = _export(tmp_path, [GRPC])
    entry = doc["log"]["entries"][0]
    assert entry["response"]["_trailers"] == [
        {"name": "grpc-status", "value": "5"}, {"name": "grpc-message", "value": "no%20such"},
        {"name": "x-trailer", "value": "t1"}]
    assert "_trailers" not in entry["request"]
    assert [m["timestamp"] for m in entry["_tapproxy"]["grpc_messages"]] == [T0 + 1, T0 + 2,
                                                                            T0 + 3]


def test_exported_har_has_the_required_har_1_2_structure(tmp_path):
    _, _, doc = _export(tmp_path, EXCHANGES)

    log = doc["log"]
    assert log["version"] == "1.2"
    assert log["creator"] == {"name": "tapproxy", "version": "9.9"}
    assert len(log["entries"]) == len(EXCHANGES)
    for entry in log["entries"]:
        assert {"startedDateTime", "time", "request", "response", "cache", "timings"} <= set(entry)
        assert datetime.fromisoformat(entry["startedDateTime"]).tzinfo is not None
        assert {"method", "url", "httpVersion", "cookies", "headers", "queryString",
                "headersSize", "bodySize"} <= set(entry["request"])
        assert {"status", "statusText", "httpVersion", "cookies", "headers", "content",
                "redirectURL", "headersSize", "bodySize"} <= set(entry["response"])
        assert {"size", "mimeType"} <= set(entry["response"]["content"])
        assert {"send", "wait", "receive"} <= set(entry["timings"])
        assert all(v >= -1 for v in entry["timings"].values())
        for h in entry["request"]["headers"] + entry["response"]["headers"]:
            assert set(h) >= {"name", "value"}


def test_entry_carries_time_url_query_and_phases_in_milliseconds(tmp_path):
    _, _, doc = _export(tmp_path, EXCHANGES)
    entry = _entry(doc, "x1")

    assert entry["startedDateTime"] == "2023-11-14T22:13:20.123Z"
    assert entry["time"] == 9.5
    assert entry["request"]["url"] == "http://billing:8080/charge?id=7&x="
    assert entry["request"]["queryString"] == [{"name": "id", "value": "7"},
                                               {"name": "x", "value": ""}]
    assert entry["request"]["postData"] == {"mimeType": "application/json",
                                            "text": '{"amount": 5}'}
    assert entry["timings"] == {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1,
                                "send": 2.0, "wait": 5.0, "receive": 2.5}


def test_connect_and_ssl_are_reported_only_for_a_connection_opened_for_the_exchange(tmp_path):
    fresh = Timing(request_start=T0, request_end=T0 + 1_000_000, server_conn_start=T0 + 1_000_000,
                   server_tcp_done=T0 + 3_000_000, server_tls_done=T0 + 7_000_000)
    reused = Timing(request_start=T0, server_conn_start=T0 - 10**9, server_tcp_done=T0 - 10**8)
    _, _, doc = _export(tmp_path, [_exchange(id="fresh", timing=fresh),
                                   _exchange(id="reused", timing=reused)])

    assert _entry(doc, "fresh")["timings"]["connect"] == 6.0  # HAR counts TLS inside connect
    assert _entry(doc, "fresh")["timings"]["ssl"] == 4.0
    assert _entry(doc, "reused")["timings"]["connect"] == -1
    assert _entry(doc, "reused")["timings"]["send"] == -1


def test_gzip_response_is_decoded_text_in_har_and_raw_gzip_after_import(tmp_path):
    har, _, doc = _export(tmp_path, EXCHANGES)
    response = _entry(doc, "gzip")["response"]
    raw = EXCHANGES[2].response.body

    assert response["content"]["text"] == GZIP_TEXT
    assert "encoding" not in response["content"]
    assert response["content"]["size"] == len(GZIP_TEXT.encode())
    assert response["content"]["compression"] == len(GZIP_TEXT.encode()) - len(raw) > 0
    assert response["bodySize"] == len(raw)
    assert response["redirectURL"] == "/next"
    imported = next(x for x in import_har(har) if x.id == "gzip")
    assert imported.response.body == raw
    assert body_text(imported.response) == GZIP_TEXT


def test_binary_bodies_are_base64_in_har(tmp_path):
    _, _, doc = _export(tmp_path, EXCHANGES)
    entry = _entry(doc, "binary")

    assert entry["response"]["content"]["encoding"] == "base64"
    assert base64.b64decode(entry["response"]["content"]["text"]) == PNG
    assert entry["request"]["postData"]["_encoding"] == "base64"
    assert base64.b64decode(entry["request"]["postData"]["text"]) == PNG
    assert entry["request"]["url"] == "https://Files.Example/up"


def test_error_without_response_is_status_zero_with_the_error(tmp_path):
    _, _, doc = _export(tmp_path, EXCHANGES)
    response = _entry(doc, "refused")["response"]

    assert response["status"] == 0
    assert response["statusText"] == ""
    assert response["content"]["size"] == 0
    assert response["_error"] == {"kind": "refused", "message": "Connection refused"}
    assert _entry(doc, "cut")["response"]["_error"]["kind"] == "reset"


def test_undecodable_header_and_path_bytes_are_cleaned_for_har_and_restored(tmp_path):
    # mitmproxy decodes the request target with surrogateescape, as the capture headers
    path = b"/caf\xe9/\xc3\xa9?q=\xff&r=%41".decode("utf-8", "surrogateescape")
    odd = replace(EXCHANGES[5], request=replace(EXCHANGES[5].request, path=path))
    har, _, _ = _export(tmp_path, [odd])
    text = har.read_bytes().decode("utf-8")  # strict: no lone surrogates leak into the file
    headers = _entry(json.loads(text), "latin1")["request"]["headers"]

    assert headers[0] == {"name": "x-name", "value": "caf\ufffd",
                          "_value_b64": base64.b64encode(b"caf\xe9").decode()}
    assert headers[1]["name"] == "x-\ufffd"
    request = _entry(json.loads(text), "latin1")["request"]
    assert request["url"] == "http://[::1]:9000/caf%E9/%C3%A9?q=%FF&r=%41"
    assert request["queryString"] == [{"name": "q", "value": "\ufffd"},
                                      {"name": "r", "value": "A"}]
    (imported,) = import_har(har)
    assert imported == odd


def test_corrupt_gzip_body_is_exported_as_sent_with_a_comment(tmp_path):
    bad = _exchange(id="bad", response=Response(200, "OK", "HTTP/1.1",
                                                Headers((("content-encoding", "gzip"),)), PNG))
    har, _, doc = _export(tmp_path, [bad])
    content = _entry(doc, "bad")["response"]["content"]

    assert base64.b64decode(content["text"]) == PNG
    assert "not decoded" in content["comment"]
    assert list(import_har(har)) == [bad]


def test_export_streams_entries_as_records_arrive():
    out = io.StringIO()
    seen = []

    def records():
        for i in range(3):
            seen.append(len(out.getvalue()))
            yield _exchange(id=str(i))

    assert export_har(records(), out, "1") == 3
    assert seen[0] < seen[1] < seen[2]  # each entry was written before the next was read
    assert [e["_tapproxy"]["id"] for e in json.loads(out.getvalue())["log"]["entries"]] == [
        "0", "1", "2"]


BROWSER_HAR = {
    "log": {
        "version": "1.2",
        "creator": {"name": "WebInspector", "version": "537.36"},
        "entries": [
            {
                "startedDateTime": "2024-05-01T10:00:00.250+02:00",
                "time": 31.5,
                "request": {
                    "method": "GET", "url": "https://API.example.com/v1/items?q=a%20b#frag",
                    "httpVersion": "http/2.0",
                    "headers": [{"name": ":authority", "value": "api.example.com"},
                                {"name": ":method", "value": "GET"},
                                {"name": ":path", "value": "/v1/items?q=a%20b"},
                                {"name": ":scheme", "value": "https"},
                                {"name": "accept", "value": "application/json"}],
                    "queryString": [{"name": "q", "value": "a b"}], "cookies": [],
                    "headersSize": -1, "bodySize": 0,
                },
                "response": {
                    "status": 200, "statusText": "", "httpVersion": "http/2.0",
                    "headers": [{"name": ":status", "value": "200"},
                                {"name": "content-type", "value": "application/json"},
                                {"name": "content-encoding", "value": "br"},
                                {"name": "content-length", "value": "12"}],
                    "cookies": [], "content": {"size": 17, "mimeType": "application/json",
                                               "compression": 5, "text": '{"items": ["é"]}'},
                    "redirectURL": "", "headersSize": -1, "bodySize": 12,
                },
                "cache": {},
                "timings": {"blocked": 1.5, "dns": -1, "ssl": -1, "connect": -1,
                            "send": 0.5, "wait": 25, "receive": 6},
            },
            {
                "startedDateTime": "2024-05-01T08:00:01.000Z", "time": 3,
                "request": {"method": "GET", "url": "http://cdn.example:8080/logo.png",
                            "httpVersion": "HTTP/1.1", "headers": []},
                "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                             "headers": [{"name": "Content-Type", "value": "image/png"}],
                             "content": {"size": len(PNG), "mimeType": "image/png",
                                         "text": base64.b64encode(PNG).decode(),
                                         "encoding": "base64"}},
                "timings": {"send": 1, "wait": 1, "receive": 1},
            },
            {
                "startedDateTime": "2024-05-01T08:00:02.000Z", "time": 4,
                "request": {"method": "POST", "url": "http://[::1]/form", "httpVersion": "",
                            "headers": [{"name": "Content-Type", "value": "text/plain"}],
                            "postData": {"mimeType": "text/plain", "text": "a=1"}},
                "response": {"status": 0, "statusText": "", "httpVersion": "", "headers": [],
                             "content": {}, "_error": "net::ERR_CONNECTION_REFUSED"},
                "timings": {"send": 2, "wait": 0, "receive": 0},
            },
        ],
    }
}


def test_browser_har_imports_as_best_effort_exchanges(tmp_path):
    har = tmp_path / "chrome.har"
    har.write_text(json.dumps(BROWSER_HAR), "utf-8")
    h2, image, failed = import_har(har)

    assert (h2.request.scheme, h2.request.host, h2.request.port) == ("https", "api.example.com",
                                                                      443)
    assert h2.request.path == "/v1/items?q=a%20b"
    assert h2.request.http_version == "HTTP/2.0"
    assert h2.request.headers == Headers((("accept", "application/json"),))
    assert h2.caller == Party("unknown", "har")
    assert h2.callee == Party("api.example.com", "host", "api.example.com:443")
    # content.text is decoded, so the encoding and length headers are dropped with it
    assert h2.response.headers == Headers((("content-type", "application/json"),))
    assert body_json(h2.response) == {"items": ["é"]}
    start = 1_714_550_400_250_000_000
    assert h2.timing == Timing(request_start=start, request_end=start + 500_000,
                               response_start=start + 25_500_000,
                               response_end=start + 31_500_000)
    assert len({h2.id, image.id, failed.id}) == 3

    assert image.response.body == PNG
    assert image.request.port == 8080

    assert failed.response is None
    assert failed.error == ErrorInfo("other", "net::ERR_CONNECTION_REFUSED")
    assert failed.request.body == b"a=1"
    assert failed.callee.address == "[::1]:80"
    assert failed.timing == Timing(request_start=1_714_550_402_000_000_000,
                                   request_end=1_714_550_402_002_000_000)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ldap3, imported by mitmproxy addons
def test_mitmproxy_savehar_output_imports(tmp_path):
    from mitmproxy.addons.savehar import SaveHar
    from mitmproxy.test import tflow

    ok = tflow.tflow(resp=True)
    ok.response.headers["content-encoding"] = "gzip"
    ok.response.content = b"hello from mitmproxy"  # stored gzip-encoded, exported decoded
    har = tmp_path / "mitm.har"
    har.write_text(json.dumps(SaveHar().make_har([ok, tflow.tflow(err=True)])))
    answered, failed = import_har(har)

    assert answered.response.body == b"hello from mitmproxy"
    assert "content-encoding" not in answered.response.headers
    assert answered.request.url == ok.request.url
    assert failed.response is None
    assert failed.error == ErrorInfo("other", "error")


def _entry_with(**changes) -> dict:
    entry = json.loads(json.dumps(BROWSER_HAR["log"]["entries"][1]))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = entry
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return entry


@pytest.mark.parametrize(("entry", "message"), [
    (_entry_with(request__url=None), "entry 1 has no request.url"),
    (_entry_with(request=None), "entry 1 has no request.method"),
    (_entry_with(startedDateTime=None), "entry 1 has no startedDateTime"),
    (_entry_with(startedDateTime="yesterday"), "entry 1 has a bad startedDateTime"),
    (_entry_with(response__status="200"), "entry 1 has a bad response.status"),
    (_entry_with(request__url="data:image/png;base64,AA=="), "entry 1 has a bad request.url"),
    (_entry_with(response__content__text="%%%"), "entry 1 has a bad response.content.text"),
    (_entry_with(response__headers=[{"value": "x"}]),
     "entry 1 has no response.headers[0].name"),
    ("not an entry", "entry 1 is not an object"),
    (_entry_with(startedDateTime="0001-01-01T00:00:00Z"),
     "entry 1 has a startedDateTime '0001-01-01T00:00:00Z' outside the years 1970 to 2262"),
    (_entry_with(startedDateTime="1969-12-31T23:59:59Z"),
     "entry 1 has a startedDateTime '1969-12-31T23:59:59Z' outside the years 1970 to 2262"),
    (_entry_with(timings="x"), "entry 1 has a bad timings (str 'x')"),
    (_entry_with(startedDateTime="9999-12-31T23:59:59.999Z"),
     "entry 1 has a startedDateTime '9999-12-31T23:59:59.999Z' outside the years"),
    (_entry_with(startedDateTime="2262-04-11T23:47:16Z", timings__wait=1e11),
     "entry 1 has a timing phase response_start beyond what a capture can hold"),
])
def test_bad_entry_names_file_entry_and_field(tmp_path, entry, message):
    har = tmp_path / "in.har"
    har.write_text(json.dumps({"log": {"entries": [BROWSER_HAR["log"]["entries"][0], entry]}}))
    exchanges = import_har(har)

    with pytest.raises(CaptureError, match="^" + re.escape(f"{har}: {message}")):
        list(exchanges)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not a HAR file (not JSON"),
    ('{"log": {"version": "1.2"}}', "not a HAR file (no log.entries list)"),
    ("[1, 2]", "not a HAR file (no log.entries list)"),
    (None, "no such file"),
])
def test_file_that_is_not_a_har_raises_capture_error(tmp_path, content, message):
    har = tmp_path / "in.har"
    if content is not None:
        har.write_text(content)

    with pytest.raises(CaptureError, match="^" + re.escape(f"{har}: {message}")):
        import_har(har)


def test_an_exchange_har_cannot_date_names_the_exchange_and_leaves_the_old_file(tmp_path):
    har = tmp_path / "out.har"
    har.write_text("the previous export")
    far = Timing(request_start=10**21)  # beyond datetime's year 9999
    records = [_exchange(), _exchange(id="far-future", timing=far)]

    with pytest.raises(CaptureError, match="^" + re.escape("exchange 2 (far-future): cannot")):
        export_har(records, har, "9.9")
    assert har.read_text() == "the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.har"]


def test_bad_tapproxy_field_is_named(tmp_path):
    har, _, doc = _export(tmp_path, [_exchange()])
    doc["log"]["entries"][0]["_tapproxy"]["timing"]["request_start"] = "soon"
    har.write_text(json.dumps(doc))

    message = "entry 0 has a bad _tapproxy.timing.request_start"
    with pytest.raises(CaptureError, match=re.escape(message)):
        list(import_har(har))


_TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1)
_RAW = st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape"))
_RAW_NAME = st.binary(min_size=1, max_size=20).filter(lambda b: b[:1] != b":").map(
    lambda b: b.decode("utf-8", "surrogateescape"))
_HEADERS = st.lists(st.tuples(_TOKEN | _RAW_NAME, _RAW | st.text()), max_size=5)
_NS = st.integers(0, 4 * 10**18)


@st.composite
def _exchanges(draw) -> Exchange:
    coding = draw(st.sampled_from([None, "gzip", "br", "deflate", "zstd", "gzip, br"]))
    headers = draw(_HEADERS) + ([("Content-Encoding", coding)] if coding else [])
    body = draw(st.binary(max_size=200))
    response = draw(st.none() | st.builds(
        Response, st.integers(0, 999), st.text(), st.sampled_from(["HTTP/1.1", "HTTP/2.0", ""]),
        st.just(Headers(tuple(headers))),
        st.just(encode_body(body, coding)) | st.binary(max_size=50),  # also undecodable
        trailers=st.none() | st.builds(Headers, _HEADERS.map(tuple))))
    request = st.builds(
        Request, _TOKEN, st.sampled_from(["http", "https", "ws", "wss"]), st.text(),
        st.integers(0, 65535), _RAW | st.text(), st.text(),
        st.builds(Headers, _HEADERS.map(tuple)),
        st.binary(max_size=200), trailers=st.none() | st.builds(Headers, _HEADERS.map(tuple)))
    party = st.builds(Party, st.text(), st.text(), st.none() | st.text())
    return draw(st.builds(
        Exchange, st.text(), party, party, request,
        st.builds(Timing, _NS, *[st.none() | _NS] * 9),
        st.just(response),
        st.none() | st.builds(ErrorInfo, st.sampled_from(ERROR_KINDS), st.text()),
        st.none() | st.text(), st.none() | st.text(), st.none() | st.text(),
        st.booleans(), st.booleans(), st.lists(st.text()).map(tuple)))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_exchanges(), max_size=3))
def test_random_exchanges_survive_export_and_import(tmp_path, exchanges):
    har = tmp_path / "prop.har"
    export_har(exchanges, har, "0")

    assert list(import_har(har)) == exchanges
