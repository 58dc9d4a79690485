"""Records with a valid CRC but a damaged structure, fed to every command that reads captures.

The records are real: tests/shop_scenario.py's capture, recorded by the real proxy, plus
WebSocket and OTLP records written by CaptureWriter. Hypothesis changes the decoded msgpack maps (a
field's type, a missing key, a map where an array belongs, numbers out of range), the
writer's own framing code frames them again with a correct CRC, and each reader must
either succeed or fail as a user sees it: CaptureError / one line and exit 2, never a
traceback.
"""

from __future__ import annotations

import contextlib
import io
import struct
import sys
import tempfile
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapproxy import cli
from tapproxy.capture import CaptureError, SpanBatch, WebSocketEnd, WebSocketMessage, open_capture
from tapproxy.capture.codec import record_to_wire
from tapproxy.capture.format import MAGIC
from tapproxy.capture.writer import encode_frame
from tests.conftest import run_cli
from tests.shop_scenario import record_shop_scenario

T0 = 1_767_225_600_000_000_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[dict]:
    """The decoded maps of a real capture: the demo's, then records of the other kinds."""
    path = tmp_path_factory.mktemp("demo") / "demo.tap"
    confdir = tmp_path_factory.mktemp("mitmconf")
    record_shop_scenario(path, confdir)
    data, maps, at = path.read_bytes(), [], len(MAGIC)
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        maps.append(msgpack.unpackb(data[at + 8:at + 8 + length], raw=False))
        at += 8 + length
    ws = next(m for m in maps if m["kind"] == "exchange")["id"]
    maps[0]["meta"]["otlp_receive"] = True  # so that `spans` reads the otlp_spans record
    # A response kept in part (format minor 2), as the recorder writes one past --max-body.
    kept = next(m for m in maps if m["kind"] == "exchange")["response"]
    kept["body_size"], kept["body_sha256"] = 10 * len(kept["body"]), bytes(range(32))
    maps += [record_to_wire(r) for r in (
        WebSocketMessage(ws, from_client=True, is_text=True, content=b"hi", timestamp=T0),
        WebSocketEnd(ws, timestamp=T0 + 1, close_code=1000, close_reason="bye"),
        SpanBatch(T0 + 2, "application/json", b'{"resourceSpans": []}', "127.0.0.1:4318"),
    )]
    return maps


def write_frames(path: Path, maps: list[dict]) -> None:
    path.write_bytes(MAGIC + b"".join(encode_frame(m) for m in maps))


# --- mutations of one decoded map --------------------------------------------------------------

_SCALARS = (
    st.integers(-(2**63), 2**64 - 1) | st.sampled_from([0, -1, 2**63, 2**64 - 1, 65536, 1000])
    | st.text(max_size=8) | st.binary(max_size=8) | st.none() | st.booleans()
    | st.text(alphabet="/?#[]:@%=&.x\x1b", max_size=8)  # URL syntax: well-typed, ill-formed
    | st.floats(allow_nan=True)
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _paths(obj, prefix=()):
    """Every place in a decoded map: (path to the container, key or index)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for k, v in items:
        yield prefix, k
        if isinstance(v, dict | list):
            yield from _paths(v, (*prefix, k))


def _at(obj, path):
    for k in path:
        obj = obj[k]
    return obj


@st.composite
def mutated(draw, maps: list[dict]) -> tuple[list[dict], list[str]]:
    maps = msgpack.unpackb(msgpack.packb(maps, use_bin_type=True), raw=False)  # a deep copy
    done = []
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(maps) - 1))
        places = list(_paths(maps[i]))
        path, key = draw(st.sampled_from(places))
        parent = _at(maps[i], path)
        value = parent[key]
        how = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "map-for-array"]))
        if how == "delete" and isinstance(parent, dict):
            del parent[key]
        elif how == "wrap":
            parent[key] = draw(st.sampled_from([[value], {"x": value}]))
        elif how == "map-for-array" and isinstance(value, list):
            parent[key] = {str(n): v for n, v in enumerate(value)}
        else:
            how = "replace"
            parent[key] = draw(_VALUES)
        done.append(f"record {i} {'.'.join(map(str, (*path, key)))}: {how}")
    return maps, done


# --- the readers -------------------------------------------------------------------------------


def run_in_process(*args: str) -> tuple[int, str]:
    """`tapproxy ARGS` through the real entry point, in this process (fast enough to fuzz)."""
    err = io.StringIO()
    argv = sys.argv
    sys.argv = ["tapproxy", *args]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as e:
                return e.code, err.getvalue()
    finally:
        sys.argv = argv
    raise AssertionError("main() returned without exiting")


def assert_clean(code: int, stderr: str, path: Path, args) -> None:
    assert code in (0, 2), (args, code, stderr)
    if code == 2:
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("tapproxy: error: "), (args, stderr)
        assert str(path) in lines[0], (args, stderr)


def exchange_number(maps: list[dict], index: int) -> str:
    """The table number `show` gives to the exchange at frame `index` (1 if none there)."""
    n = sum(1 for m in maps[1:index + 1] if isinstance(m, dict) and m.get("kind") == "exchange")
    return str(max(n, 1))


# 100 examples run in 15-30 s here; 1000 passed once by hand (5 min on a loaded machine).
@pytest.mark.timeout(600)
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_reader_survives_a_mutated_record(recorded, data):
    maps, done = data.draw(mutated(recorded))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.tap"
        write_frames(path, maps)
        try:
            with open_capture(path) as reader:
                for _ in reader:
                    pass
        except CaptureError as e:
            assert str(e).startswith(f"{path}: "), (done, e)
            assert "\n" not in str(e)
        last = max(int(d.split()[1]) for d in done)
        for args in (
            ["show", path],
            ["show", path, "--json"],
            ["show", path, "--exchange", exchange_number(maps, last)],
            ["export", path, "--har", Path(tmp) / "out.har"],
            ["spans", path, "--tree"],
            ["spans", path, "--tree", "--bodies"],
            ["spans", path, "--out", Path(tmp) / "spans.json"],
        ):
            assert_clean(*run_in_process(*map(str, args)), path, [done, *args])


# --- the cases the issue names, through the real command ---------------------------------------


def _set(maps: list[dict], kind: str, path: str, value) -> list[dict]:
    maps = msgpack.unpackb(msgpack.packb(maps, use_bin_type=True), raw=False)
    m = next(m for m in maps if m["kind"] == kind)
    *inner, last = path.split(".")
    target = _at(m, inner)
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return maps


_COMMANDS = [
    ["show"], ["show", "--json"], ["show", "--exchange", "8"], ["export", "--har", "{tmp}/o.har"],
    ["spans", "--tree"], ["spans", "--out", "{tmp}/o.json"],
]


_CASES = [
    ("exchange", "request.method", 7, "field request.method is int 7, not str or bin"),
    ("exchange", "response.status", "200", "field response.status is str '200', not int"),
    ("header", "meta", [1], "field meta is array [1], not map"),
    ("exchange", "request.headers", [[b"a", 1]], "field request.headers[0][1] is int 1, "
                                                 "not bin or str"),
    ("exchange", "request.headers", {"a": "b"}, "field request.headers is map {'a': 'b'}, "
                                                "not array"),
    ("exchange", "timing.request_start", -1, "field timing.request_start is -1, out of range"),
    ("exchange", "timing.response_end", 2**64 - 1, "field timing.response_end is "
                                                   "18446744073709551615, out of range"),
    ("exchange", "caller", KeyError, "field caller is missing (map expected)"),
    ("test", "started", None, "field started is nil, not int"),
    ("exchange", "response.body_sha256", KeyError, "field response.body_sha256 is missing "
                                                   "(bin expected)"),
]


# Each case through one of the commands in turn (the fuzz test above runs them all).
@pytest.mark.parametrize(("kind", "field", "value", "says", "command"),
                         [(*case, _COMMANDS[i % len(_COMMANDS)]) for i, case in enumerate(_CASES)])
def test_a_mistyped_field_is_one_line_naming_file_record_and_field(
        tmp_path, recorded, kind, field, value, says, command):
    path = tmp_path / "bad.tap"
    maps = _set(recorded, kind, field, value)
    write_frames(path, maps)
    index = next(i for i, m in enumerate(maps) if m["kind"] == kind)
    cmd, *rest = command
    out = run_cli(cmd, path, *(a.format(tmp=tmp_path) for a in rest))
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith(f"tapproxy: error: {path}: record {index} at byte "), line
    assert f"({kind}) is malformed: {says}" in line


@pytest.mark.parametrize(("field", "value"), [
    ("request.path", "//[x"),  # origin-form may start with "//"; urlsplit reads an authority
    ("request.path", "/a?next=http://[::1"),
    ("request.host", "[x"),
])
def test_a_well_typed_but_ill_formed_url_is_read_by_every_command(tmp_path, recorded, field,
                                                                   value):
    path = tmp_path / "url.tap"
    write_frames(path, _set(recorded, "exchange", field, value))
    for args in (["show", path, "--exchange", "1"], ["export", path, "--har", tmp_path / "o.har"],
                 ["spans", path, "--tree"], ["spans", path, "--out", tmp_path / "o.json"]):
        code, stderr = run_in_process(*map(str, args))
        assert code == 0, (args, stderr)


@pytest.mark.parametrize("command", [["spans", "--tree"], ["spans", "--out", "{tmp}/o.json"]])
def test_a_damaged_span_payload_is_one_line_naming_file_and_record(tmp_path, recorded, command):
    # Found by the fuzz test above: a well-typed otlp_spans record whose payload does not
    # parse as its content type said nothing of the capture.
    path = tmp_path / "bad.tap"
    maps = _set(recorded, "otlp_spans", "content_type", "")
    write_frames(path, maps)
    index = next(i for i, m in enumerate(maps) if m["kind"] == "otlp_spans")
    cmd, *rest = command
    out = run_cli(cmd, path, *(a.format(tmp=tmp_path) for a in rest))
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith(f"tapproxy: error: {path}: record {index} at byte "), line
    assert "is malformed: not an OTLP traces request" in line
