"""Hand-made exchanges and captures for the spans tests.

Times are integer nanoseconds from T0; each exchange says when its request started and
ended and when its response started and ended, so the expected spans are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tapproxy.capture import (
    CaptureWriter,
    ErrorInfo,
    Exchange,
    Headers,
    Party,
    Record,
    Request,
    Response,
    Timing,
    new_header,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in epoch nanoseconds
MS = 1_000_000


def exchange(
    id: str,
    caller: str,
    callee: str,
    start: int,
    end: int,
    *,
    method: str = "GET",
    path: str = "/",
    status: int | None = 200,
    headers: Iterable[tuple[str, str]] = (),
    error: ErrorInfo | None = None,
    test: str | None = None,
    route: str | None = None,
    caller_source: str = "proxy-auth",
    caller_address: str | None = None,
    scheme: str = "http",
    port: int = 80,
    http_version: str = "HTTP/1.1",
    request_body: bytes = b"",
    response_body: bytes = b"",
) -> Exchange:
    """An exchange from `caller` to `callee` over [T0+start, T0+end] (ms offsets).

    The request is sent during its first millisecond and the response comes back during
    the last one: request_end = start+1 ms, response_start = end-1 ms.
    """
    s, e = T0 + start * MS, T0 + end * MS
    response = None if status is None else Response(status, "", http_version,
                                                    body=response_body)
    timing = (Timing(s, s + MS, e - MS, e) if response is not None
              else Timing(s, s + MS, error_at=e))
    return Exchange(
        id=id,
        caller=Party(caller, caller_source, caller_address),
        callee=Party(callee, "service-map"),
        request=Request(method, scheme, callee, port, path, http_version,
                        Headers(tuple(headers)), request_body),
        timing=timing,
        response=response,
        error=error,
        test=test,
        route=route,
    )


def write_capture(path: Path, records: Iterable[Record], meta: dict | None = None,
                  index: bool = True) -> Path:
    """A real capture file: the real writer, a real header (`index`: and the closing
    index, as a capture closed cleanly has; without it, as a killed recorder's)."""
    writer = CaptureWriter(path, new_header(meta), index=index)
    for r in records:
        writer.write(r)
    writer.close()
    return path
