"""Terminal rendering of exchanges and tunnels: the streaming table and one row in full."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.text import Text

from tapproxy.capture.encoding import decode_body, decoded_body
from tapproxy.capture.model import Exchange, Party, Request, Response, TestCase, Tunnel
from tapproxy.capture.protobuf import ProtoSchema, decode_raw
from tapproxy.errors import CaptureError
from tapproxy.report.columns import cut_middle, short_test_name
from tapproxy.report.parties import party_name
from tapproxy.report.printable import printable, safe_line

__all__ = ["print_exchange", "print_table", "print_tunnel", "status_text"]

# Fixed columns: number, method, status, ms, size. Test, caller → callee and path share
# what is left of the terminal's width (at 80 columns: 17, 17 and 12), each up to a cap.
_NUMBER, _METHOD, _STATUS, _MS, _SIZE = 4, 6, 6, 6, 5
_SHARED = (("test", 17, 24), ("caller → callee", 17, 28), ("path", 12, 0))


def _party(p: Party) -> str:
    return printable(party_name(p))


def status_text(x: Exchange) -> Text:
    """The HTTP status, with the gRPC status where it is not OK (e.g. `200 NOT_FOUND`)."""
    return Text(*_status(x))


def _status(x: Exchange) -> tuple[str, str]:
    """status_text's text and style."""
    if x.error is not None and x.response is None:
        # client_closed: the caller hung up first (its timeout, mostly), as `why` says it.
        kind = "gave up" if x.error.kind == "client_closed" else x.error.kind
        return printable(kind.upper()), "bold red"
    status = x.status or 0
    code = x.grpc_status  # once: x.failed would look it up again
    grpc = x.grpc_status_name if code is not None else None
    failed = status >= 500 or x.error is not None or (code is not None and code != 0)
    style = "red" if failed else "yellow" if status >= 400 else "green"
    return (str(status) + (f" {grpc}" if grpc not in (None, "OK") else "")
            + ("!" if x.error else "")), style


def _size(x: Exchange) -> str:
    return _bytes(x.response.size if x.response else 0)  # the whole body, also when kept in part


def _bytes(n: int) -> str:
    return f"{n}" if n < 10_000 else f"{n / 1024:.0f}K" if n < 10_000_000 else f"{n >> 20}M"


def _tunnel_status(t: Tunnel) -> tuple[str, str]:
    if t.error is not None:
        return t.error.kind.upper(), "bold red"
    return "TUNNEL", "magenta"


def _widths(width: int) -> tuple[int, int, int]:
    """Test, caller → callee and path widths: each its minimum, then what is left of
    `width` in turn up to each cap (the path takes the rest)."""
    fixed = _NUMBER + _METHOD + _STATUS + _MS + _SIZE + 7  # and a space between columns
    spare = max(0, width - fixed - sum(least for _, least, _ in _SHARED))
    out = []
    for _, least, cap in _SHARED:
        grow = spare if not cap else min(spare, cap - least)
        out.append(least + grow)
        spare -= grow
    return out[0], out[1], out[2]


def _edge(caller: str, callee: str, width: int) -> str:
    """`caller → callee` in `width`: the longer name is cut (in its middle) first, so
    both stay readable and the arrow stays."""
    room = width - 3
    if len(caller) + len(callee) <= room:
        return f"{caller} → {callee}"
    short = min(len(caller), len(callee), room // 2)
    if len(caller) <= len(callee):
        return f"{cut_middle(caller, short)} → {cut_middle(callee, room - short)}"
    return f"{cut_middle(caller, room - short)} → {cut_middle(callee, short)}"


def _row(n: str, cells: tuple[str, str, str, str], status: str, ms: float, size: str,
         widths: tuple[int, int, int]) -> tuple[str, str]:
    """A table line as the text before the status and the text after it (the status
    alone is coloured)."""
    test, edge, method, what = cells
    tw, ew, pw = widths
    # A row number is never cut (`--exchange N` must find it): a long one takes its
    # room from the test column.
    tw -= max(0, len(n) - _NUMBER)
    figures = f" {ms:>{_MS}.1f} {size:>{_SIZE}}"
    # Nor a method (`OPTIONS`), a status (`CLIENT_CLOSED`) or a duration wider than its
    # column: the path gives way, so the line still fits.
    pw -= (max(0, len(method) - _METHOD) + max(0, len(status) - _STATUS)
           + max(0, len(figures) - _MS - _SIZE - 2))
    return (f"{n:<{_NUMBER}} {cut_middle(test, tw):<{tw}} {edge:<{ew}} "
            f"{method:<{_METHOD}} {cut_middle(what, max(1, pw)):<{pw}} "), \
        " " * (_STATUS - len(status)) + figures


def print_table(rows: Iterable[tuple[int | str, Exchange | Tunnel]], console: Console) -> int:
    """Print one line per exchange or tunnel as it is read (memory stays flat); returns
    the count. A tunnel (a connection not parsed as HTTP) reads `TCP`, its reason and
    the bytes sent ↑ and received ↓ where an exchange has method and path. Lines fit the
    console's width (80 columns when it is not a terminal); a test is named by what
    follows its file (`test_checkout`), as every test of a file starts the same."""
    widths = _widths(console.width)
    tw, ew, pw = widths
    head = (f"{'#':<{_NUMBER}} {'test':<{tw}} {'caller → callee':<{ew}} "
            f"{'method':<{_METHOD}} {'path':<{pw}} {'status':<{_STATUS}} {'ms':>{_MS}} "
            f"{'size':>{_SIZE}}")
    console.print(Text(head, style="bold"), soft_wrap=True)
    # Without colours (a file, a pipe) the lines are written as they are, in batches:
    # rich's print costs ~100 µs a line, 10 times what the rest of a row costs.
    plain = console.color_system is None and not console.record
    batch: list[str] = []
    count = 0
    try:
        for n, x in rows:
            count += 1
            test = printable(short_test_name(x.test)) if x.test else "-"
            edge = _edge(_party(x.caller), _party(x.callee), widths[1])
            if isinstance(x, Tunnel):
                what = (f"{x.reason} ↑{_bytes(x.bytes_from_client)} "
                        f"↓{_bytes(x.bytes_from_server)}")
                status, style = _tunnel_status(x)
                before, after = _row(str(n), (test, edge, "TCP", printable(what)), status,
                                     x.duration_ns / 1e6, _bytes(x.bytes_from_server), widths)
            else:
                # The callee column names the host, so the path is what tells calls apart.
                status, style = _status(x)
                before, after = _row(str(n), (test, edge, printable(x.request.method),
                                              printable(x.request.path)), status,
                                     x.timing.duration_ns / 1e6, _size(x), widths)
            if plain:
                batch.append(safe_line(before + status + after))
                if len(batch) >= 256:
                    console.file.write("\n".join(batch) + "\n")
                    batch.clear()
            else:
                line = Text(before)
                line.append(status, style=style)
                line.append(after)
                console.print(line, soft_wrap=True, highlight=False)
    finally:  # the rows before a damaged record are shown, then the error
        if batch:
            console.file.write("\n".join(batch) + "\n")
    return count


def _truncated(console: Console, msg: Request | Response) -> None:
    console.print(f"  (body truncated: the first {len(msg.body)} of {msg.body_size} bytes "
                  f"were kept, SHA-256 {msg.body_sha256.hex()})", style="yellow")


def _body(console: Console, msg: Request | Response) -> None:
    headers, raw = msg.headers, msg.body
    if msg.body_truncated:
        _truncated(console, msg)
    if not raw:
        console.print("  (no body)", style="dim")
        return
    try:
        data = decoded_body(msg)
    except CaptureError as e:
        console.print(f"  ({len(raw)} bytes, cannot decode: {escape(printable(str(e)))})",
                      style="yellow")
        return
    ctype = printable((headers.get("content-type") or "").lower())
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        console.print(f"  ({len(data)} bytes of binary {ctype or 'data'})", style="dim")
        return
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            text = printable(json.dumps(json.loads(text), indent=2, ensure_ascii=False),
                             lines=True)
            console.print(Syntax(text, "json", theme="ansi_dark", background_color="default"))
            return
        except ValueError:
            pass
    console.print(escape(printable(text, lines=True)), highlight=False)


def _headers(console: Console, headers) -> None:
    for k, v in headers:
        console.print(Text(f"  {printable(k)}: {printable(v)}"))


def _trailers(console: Console, trailers) -> None:
    if trailers is None:
        return
    console.print("  trailers:" if len(trailers) else "  trailers: (none)", style="bold")
    _headers(console, trailers)


def _grpc_messages(console: Console, x: Exchange, schema: ProtoSchema | None) -> None:
    """Each message with its time, direction and flag, decoded as protobuf."""
    method = x.grpc_method
    console.print(Text(f"\ngRPC {printable('/'.join(method)) if method else '?'}: "
                       f"{len(x.grpc_messages)} messages", style="bold cyan"))
    codings = {True: x.request.headers.get("grpc-encoding"),
               False: x.response.headers.get("grpc-encoding") if x.response else None}
    for i, m in enumerate(x.grpc_messages, 1):
        arrow = "→" if m.from_client else "←"
        flag = (f", compressed ({printable(codings[m.from_client] or '?')})"
                if m.compressed else "")
        console.print(f"  {arrow} #{i}  {(m.timestamp - x.timing.request_start) / 1e6:+.2f} ms"
                      f"  {len(m.data)} bytes{flag}", style="dim")
        data = m.data
        if m.compressed:
            try:
                data = decode_body(data, codings[m.from_client])
            except CaptureError as e:
                console.print(f"    (cannot decompress: {escape(printable(str(e)))})",
                              style="yellow")
                continue
        text = None
        if schema is not None and method is not None:
            text = schema.decode(*method, m.from_client, data)
        if text is None:
            text = decode_raw(data)
        if text is None:
            console.print(f"    (not protobuf: {len(data)} bytes)", style="yellow")
        elif text:
            lines = escape(printable(text, lines=True)).splitlines()
            console.print("\n".join("    " + line for line in lines), highlight=False)
        else:
            console.print("    (empty message)", style="dim")


def print_exchange(n: int, x: Exchange, console: Console, tests: dict[str, TestCase],
                   schema: ProtoSchema | None = None) -> None:
    """Everything recorded about one exchange: identity, timing, headers, decoded bodies.

    A gRPC exchange shows its messages decoded (by name with `schema`) in place of bodies.
    """
    q, r = x.request, x.response
    head = Text(f"exchange {n}  ", style="bold")
    head.append(f"{_party(x.caller)} ({printable(x.caller.source)}) → "
                f"{printable(x.callee.name)} ({printable(x.callee.source)})")
    console.print(head)
    if x.test:
        outcome = tests.get(x.test).outcome if x.test in tests else None
        # test_source may be nil in a capture (the format allows it): say so, not crash.
        source = printable(x.test_source) if x.test_source is not None else "source unknown"
        console.print(f"test: {escape(printable(x.test))} ({escape(source)})"
                      + (f", {escape(printable(outcome))}" if outcome else ""))
    elif x.test_source == "ambiguous":
        console.print("test: unknown (several tests were open and no x-tapproxy-test header)")
    console.print(f"id: {escape(printable(x.id))}   duration: {x.timing.duration_ns / 1e6:.2f} ms"
                  + ("   streamed" if x.streamed else "") + ("   websocket" if x.websocket else ""))
    t = x.timing
    phases = [(k, getattr(t, k)) for k in t.__dataclass_fields__ if getattr(t, k) is not None]
    timing = "timing (ms from request start): " + ", ".join(
        f"{k} {(v - t.request_start) / 1e6:+.2f}" for k, v in phases if k != "request_start")
    for line in textwrap.wrap(timing, 80, subsequent_indent="  "):  # within 80 columns
        console.print(line)
    if x.error:
        console.print(f"error: {escape(printable(x.error.kind))}: "
                      f"{escape(printable(x.error.message))}", style="bold red")
    if x.redacted:
        console.print(Text("redacted: " + printable(", ".join(x.redacted)), style="dim"))
    console.print(Text(f"\n{printable(q.method)} {printable(q.url)} {printable(q.http_version)}",
                       style="bold cyan"))
    _headers(console, q.headers)
    if not x.is_grpc:
        _body(console, q)
    elif q.body_truncated:
        _truncated(console, q)
    _trailers(console, q.trailers)
    if r is None:
        console.print("\n(no response)", style="red")
        if x.is_grpc:
            _grpc_messages(console, x, schema)
        return
    line = Text(f"\n{printable(r.http_version)} ", style="bold cyan")
    line.append_text(status_text(x))
    line.append(f" {printable(r.reason)}", style="bold cyan")
    console.print(line)
    _headers(console, r.headers)
    if not x.is_grpc:
        _body(console, r)
    elif r.body_truncated:
        _truncated(console, r)
    _trailers(console, r.trailers)
    if x.is_grpc:
        code = x.grpc_status
        if code is not None:
            message = x.grpc_message
            console.print(f"grpc-status: {printable(x.grpc_status_name or '')} ({code})"
                          + (f": {escape(printable(message))}" if message else ""),
                          style="bold red" if code else "bold green")
        _grpc_messages(console, x, schema)


def _first_bytes(console: Console, label: str, first: bytes, total: int) -> None:
    if not total:
        console.print(f"{label}: nothing", style="dim")
        return
    shown = f"first {len(first)} of {total} bytes" if len(first) < total else f"{total} bytes"
    console.print(Text(f"{label} ({shown}):", style="bold cyan"))
    if first:
        console.print("  " + escape(repr(first)[2:-1]), highlight=False)
    else:
        console.print("  (not kept: the host is ignored)", style="dim")


def print_tunnel(label: str, t: Tunnel, console: Console) -> None:
    """Everything recorded about a connection not parsed as HTTP."""
    head = Text(f"tunnel {label}  ", style="bold")
    head.append(printable(f"{_party(t.caller)} ({t.caller.source}) → {t.callee.name} "
                          f"({t.callee.source})"
                          + (f" at {t.callee.address}" if t.callee.address else "")))
    console.print(head)
    if t.test:
        console.print(f"test: {escape(printable(t.test))} ({t.test_source})")
    console.print(escape(printable(f"not parsed as HTTP: {t.why} [{t.reason}]")))
    console.print(f"id: {t.id}   " + (f"duration: {t.duration_ns / 1e6:.2f} ms"
                                          if t.ended is not None else
                                          "still open when the recording stopped"))
    if t.error:
        console.print(f"error: {t.error.kind}: {escape(printable(t.error.message))}",
                      style="bold red")
    _first_bytes(console, "client → server", t.first_from_client, t.bytes_from_client)
    _first_bytes(console, "server → client", t.first_from_server, t.bytes_from_server)
