"""mitmproxy flow files (`mitmdump -w`, mitmweb's save) into capture records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tapproxy.capture.model import Exchange
from tapproxy.errors import CaptureError
from tapproxy.proxy.convert import exchange_from_flow
from tapproxy.supervisor.identity import CalleeNamer, peer_party

__all__ = ["import_flows"]


def import_flows(path: Path) -> Iterator[Exchange]:
    """Each HTTP flow of a mitmproxy flow file as an Exchange (other flow types skipped).

    Such files carry no caller names: callers are the client's address, visibly.
    """
    from mitmproxy import exceptions, http, io

    callees = CalleeNamer(())
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; this is a generator
    except OSError as e:
        raise CaptureError(f"{path}: cannot read: {e.strerror}") from e
    with f:
        n = 0
        try:
            for flow in io.FlowReader(f).stream():
                n += 1
                if isinstance(flow, http.HTTPFlow):
                    callee = callees.name(flow.request.host, flow.request.port)
                    yield exchange_from_flow(flow, peer_party(flow.client_conn.peername), callee)
        except exceptions.FlowReadException as e:
            what = ("not a HAR or mitmproxy flow file (or cut inside its first flow)" if n == 0
                    else f"cut or corrupt after {n} flows")
            raise CaptureError(f"{path}: {what} ({e})") from e
