"""`check` with an OpenAPI contract: exchanges/s, peak memory at 10k vs 100k exchanges,
and the time to judge one 1000-item response body.

    .venv/bin/python benchmarks/check_openapi.py [--exchanges 100000] [--rounds 3]

A synthetic capture (written with the real CaptureWriter) of small-JSON exchanges spread
over a 50-operation OpenAPI 3.1 contract (25 resources, each a list and an item GET with
a query parameter, a path parameter and a closed object schema). Reported, as medians of
`--rounds` (CPU time: steadier than wall time on a shared machine):

- read: `open_capture` iteration alone (the floor any command pays);
- check in memory: `Contract.check` over exchanges already read;
- end to end: `check_records(open_capture(...), [contract])`, what `tapproxy check` does;
- peak memory (VmHWM) of a fresh process running end to end at 10k and at 100k;
- one 1000-item body, median of 200 checks: a valid body is accepted by the msgspec
  shortcut (one typed decode); the full way (orjson parse + compiled schema), which
  judges a body the shortcut refuses, is timed in its two parts for comparison;
- openapi-core's own request+response validation per exchange, for comparison
  (`--openapi-core N` exchanges, 0 to skip).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_767_225_600_000_000_000
RESOURCES = 25  # two operations each


def contract_document() -> dict:
    paths = {}
    for r in range(RESOURCES):
        item = {"$ref": "#/components/schemas/Item"}
        ok = {"description": "ok", "content": {"application/json": {"schema": item}}}
        paths[f"/r{r}/items"] = {"get": {
            "operationId": f"list{r}",
            "parameters": [{"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "array", "items": item}}}},
                "404": {"description": "none"}}}}
        paths[f"/r{r}/items/{{id}}"] = {"get": {
            "operationId": f"get{r}",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"200": ok, "404": {"description": "none"}}}}
    return {
        "openapi": "3.1.0", "info": {"title": "bench", "version": "1"},
        "paths": paths,
        "components": {"schemas": {"Item": {
            "type": "object", "additionalProperties": False, "required": ["id", "name"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                           "qty": {"type": "integer", "minimum": 0},
                           "status": {"enum": ["new", "paid", "sent"]}}}}},
    }


def _item(i: int) -> dict:
    return {"id": i, "name": f"item {i}", "qty": i % 7, "status": "paid"}


def make_capture(path: Path, exchanges: int) -> None:
    from tapproxy.capture import (
        CaptureWriter,
        Exchange,
        Headers,
        Party,
        Request,
        Response,
        Timing,
        new_header,
    )

    req_headers = Headers((("Host", "shop:8080"), ("User-Agent", "python-httpx/0.28"),
                           ("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate")))
    resp_headers = Headers((("Content-Type", "application/json; charset=utf-8"),
                            ("Content-Length", "60"), ("Date", "Fri, 04 Dec 2026 16:00:00 GMT"),
                            ("Server", "Python/3.12 aiohttp/3.11.11")))
    w = CaptureWriter(path, new_header({"benchmark": "check_openapi"}))
    for i in range(exchanges):
        t, r = T0 + i * 1_000_000, i % RESOURCES
        if i % 2:
            target, body = f"/r{r}/items/{i}", json.dumps(_item(i))
        else:
            target, body = f"/r{r}/items?limit=2", json.dumps([_item(i), _item(i + 1)])
        w.write(Exchange(
            id=f"{i:08x}", caller=Party("web", "proxy-auth", "127.0.0.1:50000"),
            callee=Party("shop", "service-map", "127.0.0.1:8080"),
            request=Request("GET", "http", "shop", 8080, target, "HTTP/1.1", req_headers),
            response=Response(200, "OK", "HTTP/1.1", resp_headers, body.encode()),
            timing=Timing(t, t + 10_000, t + 500_000, t + 600_000),
            test=f"tests/test_shop.py::test_{i // 50}", test_source="control"))
    w.close()


def load(spec_path: Path):
    from tapproxy.contract.load import load_contract

    return load_contract(f"shop={spec_path}")


def end_to_end(capture: Path, spec_path: Path) -> tuple[int, int]:
    from tapproxy.capture import open_capture
    from tapproxy.contract import check_records

    contract = load(spec_path)
    with open_capture(capture) as reader:
        result = check_records(reader, [contract])
    return result.checked, len(result.mismatches)


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def peak_memory(capture: Path, spec_path: Path) -> tuple[int, int]:
    """(VmHWM KiB, exchanges checked) of a fresh process checking `capture`."""
    code = ("import sys; sys.path.insert(0, sys.argv[3])\n"
            "from benchmarks.check_openapi import end_to_end\n"
            "from pathlib import Path\n"
            "n, m = end_to_end(Path(sys.argv[1]), Path(sys.argv[2]))\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(n, m, hwm.split()[1])\n")
    out = subprocess.run([sys.executable, "-c", code, str(capture), str(spec_path),
                          str(ROOT)], capture_output=True, text=True, check=True).stdout
    n, mismatches, hwm = map(int, out.split())
    assert mismatches == 0, f"{mismatches} mismatches on a clean capture"
    return hwm, n


def big_body(spec_path: Path, rounds: int = 200) -> tuple[float, float, float, float, int]:
    """Median ms to check one exchange whose response is a 1000-item list, of the msgspec
    shortcut alone, and of the full way's two parts: parsing the body (orjson) and
    validating the parsed value."""
    import dataclasses

    import orjson

    from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing

    contract = load(spec_path)
    body = json.dumps([_item(i) for i in range(1000)]).encode()
    x = Exchange(
        id="big", caller=Party("web", "proxy-auth"), callee=Party("shop", "service-map"),
        request=Request("GET", "http", "shop", 8080, "/r3/items?limit=1000", "HTTP/1.1"),
        response=Response(200, "OK", "HTTP/1.1",
                          Headers((("Content-Type", "application/json"),)), body),
        timing=Timing(T0))
    assert contract.check(x).mismatches == ()
    bad = dataclasses.replace(x, response=dataclasses.replace(
        x.response, body=body.replace(b'"qty": 3', b'"qty": "3"', 1)))
    assert len(contract.check(bad).mismatches) == 1
    op, _ = contract.match("GET", "/r3/items")
    schema = op.responses["200"].content.find("application/json")[1]
    responses = contract._judge.responses
    validator = responses.validator(schema)
    assert responses.accepts(schema, body)
    value = orjson.loads(body)
    parts: dict[str, list[float]] = {"check": [], "shortcut": [], "parse": [],
                                     "validate": []}
    for _ in range(rounds):
        for name, fn in (("check", lambda: contract.check(x)),
                         ("shortcut", lambda: responses.accepts(schema, body)),
                         ("parse", lambda: orjson.loads(body)),
                         ("validate", lambda: validator.is_valid(value))):
            start = time.perf_counter()
            fn()
            parts[name].append(time.perf_counter() - start)
    check, shortcut, parse, validate = (statistics.median(parts[k]) * 1000 for k in parts)
    return check, shortcut, parse, validate, len(body)


def openapi_core_per_exchange(spec: dict, n: int) -> tuple[float, float]:
    """µs per exchange of openapi-core: validate_request alone (path finding and
    parameter deserialisation), and validate_request + validate_response."""
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest, MockResponse

    api = OpenAPI.from_dict(spec)
    pairs = []
    for i in range(n):
        r = i % RESOURCES
        if i % 2:
            req = MockRequest("http://shop", "get", f"/r{r}/items/{i}")
            body = json.dumps(_item(i))
        else:
            req = MockRequest("http://shop", "get", f"/r{r}/items", args={"limit": "2"})
            body = json.dumps([_item(i), _item(i + 1)])
        pairs.append((req, MockResponse(body.encode(), status_code=200,
                                        content_type="application/json")))
    api.validate_request(pairs[0][0])  # warm-up
    start = time.process_time()
    for req, _ in pairs:
        api.validate_request(req)
    request_only = time.process_time() - start
    start = time.process_time()
    for req, resp in pairs:
        api.validate_request(req)
        api.validate_response(req, resp)
    both = time.process_time() - start
    return request_only / n * 1e6, both / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exchanges", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--openapi-core", type=int, default=2000, metavar="N")
    args = p.parse_args()
    from tapproxy.capture import Exchange, open_capture

    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "shop.json"
        spec = contract_document()
        spec_path.write_text(json.dumps(spec))
        small, big = Path(tmp) / "10k.tap", Path(tmp) / "all.tap"
        make_capture(small, args.exchanges // 10)
        make_capture(big, args.exchanges)
        n = args.exchanges
        contract = load(spec_path)

        def fresh() -> list:
            with open_capture(big) as reader:
                return [r for r in reader if isinstance(r, Exchange)]

        assert all(contract.check(x).mismatches == () for x in fresh()[:100])

        def read() -> None:
            with open_capture(big) as reader:
                for _ in reader:
                    pass

        def in_memory() -> float:
            xs = fresh()  # records as read: nothing decoded by an earlier round
            check = contract.check
            start = time.process_time()
            for x in xs:
                check(x)
            return time.process_time() - start

        reads = [_cpu(read) for _ in range(args.rounds)]
        checks = [in_memory() for _ in range(args.rounds)]
        e2e = [_cpu(lambda: end_to_end(big, spec_path)) for _ in range(args.rounds)]
        for label, cpu in (("read only", reads), ("check in memory", checks),
                           ("end to end", e2e)):
            med = statistics.median(cpu)
            print(f"{label:>16}: {n:,} exchanges, CPU {med:.2f} s = {n / med:,.0f} "
                  "exchanges/s")
        hwm_small, n_small = peak_memory(small, spec_path)
        hwm_big, n_big = peak_memory(big, spec_path)
        print(f"     peak memory: {n_small:,} exchanges {hwm_small / 1024:.1f} MiB, "
              f"{n_big:,} exchanges {hwm_big / 1024:.1f} MiB")
        check, shortcut, parse, validate, size = big_body(spec_path)
        print(f"1000-item body ({size / 1000:.0f} kB): {check:.3f} ms per check (median; "
              f"msgspec shortcut {shortcut:.3f} ms)")
        print(f"  the full way, for a body the shortcut refuses: parse {parse:.3f} ms, "
              f"validate {validate:.3f} ms")
        if args.openapi_core:
            request_us, us = openapi_core_per_exchange(spec, args.openapi_core)
            print(f"openapi-core: {us:,.0f} µs per exchange = {1e6 / us:,.0f} exchanges/s "
                  f"(request + response validation; the request alone {request_us:,.0f} µs;"
                  f" {args.openapi_core:,} exchanges)")


if __name__ == "__main__":
    main()
