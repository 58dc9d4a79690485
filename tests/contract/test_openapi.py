"""OpenAPI 3.0/3.1 contracts: published documents loaded and used, invalid documents
reported at file:line:column, operations matched and judged, and a real aiohttp service
recorded through the real proxy with each drift OpenAPI can express.

The petstore documents are openapi-spec-validator 0.8.5's published test data (PyPI
sdist, tests/integration/data/v3.0 and v3.1; see data/openapi/SOURCE.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.contract import check_records
from tapproxy.contract.load import load_contract
from tapproxy.errors import ContractError
from tapproxy.supervisor.options import ServiceSpec
from tests.conftest import run_cli
from tests.spans.build import write_capture

DATA = Path(__file__).parent / "data" / "openapi"
PETSTORE_30 = DATA / "petstore-3.0.yaml"
PETSTORE_31 = DATA / "petstore-3.1.yaml"
PETSTORE_SPLIT = DATA / "petstore-separate" / "spec" / "openapi.yaml"
SHOP = DATA / "shop-3.0.yaml"
T0 = 1_767_225_600_000_000_000


def exchange(path: str, status: int | None = 200, body: object = None, *,
             method: str = "GET", callee: str = "shop", address: str | None = None,
             headers: tuple = (), response_headers: tuple = (),
             request_body: object = None, id: str = "x1") -> Exchange:
    req_headers = list(headers)
    raw_request = b""
    if request_body is not None:
        raw_request = json.dumps(request_body).encode()
        req_headers.append(("Content-Type", "application/json"))
    response = None
    if status is not None:
        resp_headers = list(response_headers)
        raw = b""
        if body is not None:
            raw = json.dumps(body).encode()
            resp_headers.append(("Content-Type", "application/json; charset=utf-8"))
        response = Response(status, "", "HTTP/1.1", Headers(tuple(resp_headers)), raw)
    return Exchange(id, Party("web", "proxy-auth"), Party(callee, "service-map", address),
                    Request(method, "http", callee, 80, path, "HTTP/1.1",
                            Headers(tuple(req_headers)), raw_request),
                    Timing(T0), response, test="tests/test_shop.py::test_it")


def found(contract, *xs: Exchange) -> set[tuple]:
    """(kind, item, side, where) of every mismatch."""
    result = check_records(list(xs), [contract])
    return {(m.kind, m.item, m.side, m.where) for m in result.mismatches}


# --- published documents ---------------------------------------------------------------

@pytest.mark.parametrize("doc", [PETSTORE_30, PETSTORE_31, PETSTORE_SPLIT],
                         ids=["3.0", "3.1", "3.0-external-refs"])
def test_published_petstore_documents_are_loaded_and_judge_traffic(doc: Path) -> None:
    contract = load_contract(f"petstore={doc}")
    assert contract.kind == "openapi"
    assert [i.id for i in contract.items()] == ["GET /pets", "POST /pets", "GET /pets/{petId}"]
    clean = exchange("/v1/pets?limit=2", 200, [{"id": 1, "name": "rex", "tag": "dog"}],
                     callee="petstore")
    assert found(contract, clean) == set()
    drifted = exchange("/v1/pets/7", 200, [{"id": "7", "name": "rex"}, {"id": 8}],
                       callee="petstore")
    result = check_records([drifted], [contract])
    got = {(m.kind, m.where, m.expected, m.actual) for m in result.mismatches}
    assert got == {("body-type", "/0/id", "integer", "string"),
                   ("missing-field", "/1/name", "present", "absent")}
    # Each mismatch points at the schema keyword that failed, in whichever file it is.
    by_where = {m.where: m for m in result.mismatches}
    assert by_where["/0/id"].contract.file.name == ("Pet.yaml" if doc == PETSTORE_SPLIT
                                                    else doc.name)
    assert by_where["/0/id"].item == "GET /pets/{petId}"
    assert by_where["/0/id"].excerpt.splitlines()[1] == '  "id": "7",  ◀'


def test_petstore_31_path_item_reference_and_routes() -> None:
    contract = load_contract(str(PETSTORE_31))
    items = {i.id: i for i in contract.items()}
    # The path item is a $ref into components/pathItems: the operation is located there.
    assert items["GET /pets/{petId}"].location.line == 92
    verdict = contract.check(exchange("/v1/pets/3", 200, [{"id": 3, "name": "a"}]))
    assert verdict is not None and verdict.item == "GET /pets/{petId}"
    assert verdict.mismatches == ()


# --- invalid documents -------------------------------------------------------------------

_BAD = [
    ("unknown schema type", PETSTORE_30, "type: integer\n", "type: integr\n", 22, 19,
     "'integr' is not one of"),
    ("dangling $ref", PETSTORE_30, '#/components/schemas/Pets"\n', '#/components/schemas/X"\n',
     35, 17, "$ref '#/components/schemas/X' points to nothing"),
    ("response without description", PETSTORE_31, "          description: An paged array of pets\n",
     "", 27, 11, "'description' is a required property"),
    ("undeclared path parameter", PETSTORE_30, "name: petId", "name: pet_id", 58, 7,
     "Path parameter 'petId' for 'get' operation in '/pets/{petId}' was not resolved"),
    ("not YAML", PETSTORE_30, "paths:\n", "paths: [\n", 73, 1, ""),
    ("unbalanced path template", PETSTORE_30, "  /pets/{petId}:", "  /pets/{petId:", 58, 7,
     "expected '}' before end of string"),
    ("bad pattern", PETSTORE_31, "        name:\n          type: string\n",
     '        name:\n          type: string\n          pattern: "["\n', 71, 20,
     "'[' is not a 'regex'"),
]


@pytest.mark.parametrize(("name", "source", "old", "new", "line", "col", "reason"), _BAD,
                         ids=[b[0] for b in _BAD])
def test_an_invalid_document_is_one_error_at_file_line_column(
        tmp_path: Path, name, source: Path, old: str, new: str, line: int, col: int,
        reason: str) -> None:
    text = source.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(ContractError) as e:
        load_contract(str(bad))
    message = str(e.value)
    assert "\n" not in message
    if name == "not YAML":
        assert re.match(rf"{re.escape(str(bad))}:\d+:\d+: ", message), message
    else:
        assert message.startswith(f"{bad}:{line}:{col}: "), message
        assert reason in message


def test_openapi_2_and_4_are_refused_by_version(tmp_path: Path) -> None:
    bad = tmp_path / "v.yaml"
    bad.write_text(PETSTORE_30.read_text().replace('openapi: "3.0.0"', 'openapi: "4.0.0"'))
    with pytest.raises(ContractError, match=rf"^{re.escape(str(bad))}:1:10: OpenAPI 4.0.0 "):
        load_contract(str(bad))


# --- operations, parameters, bodies ------------------------------------------------------

def test_concrete_paths_win_over_templates_and_the_template_is_the_route() -> None:
    contract = load_contract(f"shop={SHOP}")
    assert contract.check(exchange("/orders/mine", 200)).item == "GET /orders/mine"
    order = {"id": 1, "sku": "tea", "qty": 2}
    verdict = contract.check(exchange("/orders/12", 200, order,
                                      response_headers=(("X-Request-Id", "r1"),)))
    assert (verdict.item, verdict.mismatches) == ("GET /orders/{id}", ())


def test_query_header_and_path_parameters_are_read_by_style() -> None:
    contract = load_contract(f"shop={SHOP}")
    tenant = (("X-Tenant", "7"),)
    ok = exchange("/orders?limit=3&ids=1&ids=2&tags=new,old", 200, [], headers=tenant)
    assert found(contract, ok) == set()
    bad = exchange("/orders?limit=0&ids=1&ids=x&tags=new,mid", 200, [],
                   headers=(("X-Tenant", "seven"),))
    assert found(contract, bad) == {
        ("body-value", "GET /orders", "request", "query limit"),
        ("body-type", "GET /orders", "request", "query ids/1"),
        ("body-value", "GET /orders", "request", "query tags/1"),
        ("header", "GET /orders", "request", "header X-Tenant"),
    }
    assert found(contract, exchange("/orders", 200, [])) == {
        ("header", "GET /orders", "request", "header X-Tenant")}
    path = exchange("/orders/abc", 200, {"id": 1, "sku": "a", "qty": 1},
                    response_headers=(("X-Request-Id", "r"),))
    assert found(contract, path) == {("body-type", "GET /orders/{id}", "request", "path id")}


def test_request_body_and_read_only_fields() -> None:
    contract = load_contract(f"shop={SHOP}")
    created = {"id": 9, "sku": "tea", "qty": 1}
    # `id` is readOnly: required in the response, not in the request.
    ok = exchange("/orders", 201, created, method="POST",
                  request_body={"sku": "tea", "qty": 1})
    assert found(contract, ok) == set()
    assert found(contract, exchange("/orders", 201, created, method="POST")) == {
        ("missing-field", "POST /orders", "request", "")}
    wrong = exchange("/orders", 201, {"sku": "tea", "qty": 1}, method="POST",
                     request_body={"sku": "tea", "qty": "1"})
    assert found(contract, wrong) == {
        ("body-type", "POST /orders", "request", "/qty"),
        ("missing-field", "POST /orders", "response", "/id")}


def test_request_checks_are_skipped_where_the_4xx_is_documented() -> None:
    contract = load_contract(f"shop={SHOP}")
    # A negative test: a bad query answered with the documented 400.
    assert found(contract, exchange("/orders?limit=0", 400, headers=(("X-Tenant", "1"),))) \
        == set()
    # The same request answered 422 (undocumented): the status and the request are wrong.
    assert found(contract, exchange("/orders?limit=0", 422, headers=(("X-Tenant", "1"),))) \
        == {("status", "GET /orders", "response", ""),
            ("body-value", "GET /orders", "request", "query limit")}
    # POST documents 4XX as a range: a rejected body is not flagged either.
    assert found(contract, exchange("/orders", 409, method="POST",
                                    request_body={"qty": "many"})) == set()


def test_servers_url_binds_the_document_to_that_address(tmp_path: Path) -> None:
    doc = tmp_path / "bound.yaml"
    doc.write_text(SHOP.read_text().replace(
        "paths:\n", "servers:\n  - url: http://localhost:{port}/api\n    variables:\n"
        "      port: {default: '8123'}\npaths:\n", 1))
    contract = load_contract(str(doc))
    here = exchange("/api/refunds", 200, {}, callee="127.0.0.1:8123",
                    address="127.0.0.1:8123")
    elsewhere = exchange("/api/refunds", 200, {}, callee="other", address="127.0.0.1:9")
    assert contract.check(elsewhere) is None
    verdict = contract.check(here)
    assert verdict.item is None
    assert [m.kind for m in verdict.mismatches] == ["unexpected-interaction"]
    # The servers' base path prefixes every template.
    assert contract.check(exchange("/api/orders/mine", 200, address="127.0.0.1:8123")).item \
        == "GET /orders/mine"


def test_unbound_documents_apply_only_where_an_operation_matches() -> None:
    contract = load_contract(str(SHOP))
    assert contract.check(exchange("/refunds", 200, {})) is None
    assert contract.check(exchange("/orders/mine", 200)).item == "GET /orders/mine"


# --- a real service recorded through the real proxy -----------------------------------------

ORDER = {"id": 1, "sku": "tea", "qty": 2, "status": "paid", "note": None}
# order id → (status, body, X-Request-Id sent): one drift of each kind OpenAPI expresses
DRIFTS = {
    1: (200, ORDER, True),  # clean
    2: (200, {**ORDER, "qty": "2"}, True),  # wrong type
    3: (200, {k: v for k, v in ORDER.items() if k != "sku"}, True),  # missing field
    4: (200, {**ORDER, "discount": 5}, True),  # extra field (additionalProperties false)
    5: (200, {**ORDER, "status": "lost"}, True),  # enum value
    6: (200, ORDER, False),  # required response header missing
    7: (418, {"error": "teapot"}, True),  # undocumented status
    8: (200, ORDER, True),  # clean, sent gzip-compressed (judged decoded)
}


def _shop_app() -> web.Application:
    async def order(request: web.Request) -> web.Response:
        status, body, with_id = DRIFTS[int(request.match_info["id"])]
        headers = {"X-Request-Id": "req-1"} if with_id else {}
        response = web.json_response(body, status=status, headers=headers)
        if request.match_info["id"] == "8":
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def refunds(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/orders/{id}", order)
    app.router.add_delete("/orders/{id}", refunds)
    app.router.add_get("/refunds", refunds)
    return app


@pytest.fixture
def recorded(start_proxy, services):
    svc = services.start("shop", _shop_app())
    proxy = start_proxy(services=(ServiceSpec("shop", "127.0.0.1", svc.port),))

    def record(*paths: str) -> list:
        with requests.Session() as s:
            for path in paths:
                method, _, path = path.rpartition(" ")
                s.request(method or "GET", f"{svc.url}{path}", proxies={"http": proxy.url},
                          timeout=10)
        return proxy.records()

    record.capture = lambda: proxy.capture  # type: ignore[attr-defined]
    return record


def test_recorded_drift_of_every_class_is_reported(recorded) -> None:
    records = recorded(*(f"/orders/{i}" for i in DRIFTS), "/refunds", "DELETE /orders/1")
    exchanges = {f"{x.request.method} {x.request.path}".removeprefix("GET "): x
                 for x in records if isinstance(x, Exchange)}
    assert len(exchanges) == len(DRIFTS) + 2
    assert exchanges["/orders/8"].response.headers.get("content-encoding") == "gzip"
    result = check_records(records, [load_contract(f"shop={SHOP}")])
    got = {}
    for m in result.mismatches:
        got.setdefault(m.exchange_id, set()).add((m.kind, m.item, m.where, m.expected,
                                                   m.actual))
    item = "GET /orders/{id}"

    def of(path: str) -> set:
        return got.pop(exchanges[path].id, set())

    assert of("/orders/1") == set()
    assert of("/orders/2") == {("body-type", item, "/qty", "integer", "string")}
    assert of("/orders/3") == {("missing-field", item, "/sku", "present", "absent")}
    assert of("/orders/4") == {("extra-field", item, "/discount", "no such field", "5")}
    assert of("/orders/5") == {("body-value", item, "/status",
                                'one of ["placed", "paid", "sent"]', '"lost"')}
    assert of("/orders/6") == {("header", item, "header X-Request-Id", "present", "absent")}
    assert of("/orders/7") == {("status", item, "", "200, 404", "418")}
    assert of("/orders/8") == set()
    assert of("/refunds") == {("unexpected-interaction", None, "", "a documented operation",
                               "GET /refunds")}
    assert of("DELETE /orders/1") == {("unexpected-interaction", None, "",
                                       "a documented operation", "DELETE /orders/1")}
    assert got == {}
    # Every mismatch names its exchange's parties and the contract line that says so.
    for m in result.mismatches:
        assert (m.caller is not None, m.callee) == (True, "shop")
        assert m.contract.file == SHOP and m.contract.line is not None
    wrong_type = next(m for m in result.mismatches if m.kind == "body-type")
    assert (wrong_type.contract.line, wrong_type.contract.column) == (80, 21)  # `integer`
    assert '"qty": "2"' in wrong_type.excerpt
    assert result.covered[(0, item)] == len(DRIFTS)
    assert result.exchanges == result.checked == len(DRIFTS) + 2


def test_a_clean_recorded_run_has_no_mismatch(recorded) -> None:
    records = recorded("/orders/1", "/orders/1")
    result = check_records(records, [load_contract(f"shop={SHOP}")])
    assert result.exchanges == result.checked == 2
    assert result.mismatches == []
    assert result.covered[(0, "GET /orders/{id}")] == 2


def test_a_segment_mixing_text_and_parameters_is_read_per_parameter(tmp_path: Path) -> None:
    doc = tmp_path / "files.yaml"
    doc.write_text("""openapi: 3.1.0
info: {title: files, version: "1"}
paths:
  /files/{name}.{ext}:
    get:
      parameters:
        - {name: name, in: path, required: true, schema: {type: string, minLength: 2}}
        - {name: ext, in: path, required: true, schema: {enum: [json, csv]}}
      responses:
        "200": {description: the file}
""")
    contract = load_contract(f"files={doc}")
    assert found(contract, exchange("/files/my%20report.tar.csv", 200, callee="files")) \
        == set()
    assert found(contract, exchange("/files/a.xml", 200, callee="files")) == {
        ("body-value", "GET /files/{name}.{ext}", "request", "path name"),
        ("body-value", "GET /files/{name}.{ext}", "request", "path ext")}


def test_a_default_response_is_converted_like_any_other(tmp_path: Path) -> None:
    doc = tmp_path / "default.yaml"
    doc.write_text("""openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      responses:
        default:
          description: anything
          content:
            application/json:
              schema: {type: object, nullable: true, required: [n],
                       properties: {n: {type: integer, minimum: 1, exclusiveMinimum: true}}}
""")
    contract = load_contract(str(doc))
    assert found(contract, exchange("/things", 200, None), exchange("/things", 500, None)) \
        == set()
    null = exchange("/things", 200, None)
    null = Exchange(null.id, null.caller, null.callee, null.request, null.timing,
                    Response(200, "", "HTTP/1.1",
                             Headers((("Content-Type", "application/json"),)), b"null"))
    assert found(contract, null) == set()
    assert found(contract, exchange("/things", 200, {"n": 1})) == {
        ("body-value", "GET /things", "response", "/n")}


# --- through `tapproxy check` ---------------------------------------------------------------

def test_check_reports_recorded_drift_and_passes_a_clean_run(recorded, tmp_path: Path) -> None:
    recorded("/orders/1", "/orders/2", "/orders/7")
    r = run_cli("check", recorded.capture(), "--contract", f"shop={SHOP}", "--format", "json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert sorted((m["kind"], m["where"]) for m in report["mismatches"]) == \
        [("body-type", "/qty"), ("status", "")]
    assert {m["contract"]["file"] for m in report["mismatches"]} == {str(SHOP)}
    calls = {i["id"]: i["calls"] for c in report["coverage"] for i in c["items"]}
    assert calls == {"GET /orders": 0, "POST /orders": 0, "GET /orders/mine": 0,
                     "GET /orders/{id}": 3}
    text = run_cli("check", recorded.capture(), "--contract", f"shop={SHOP}")
    assert text.returncode == 1
    assert "body type or schema: response body /qty" in text.stdout
    assert "shop-3.0.yaml:80:21\n" in text.stdout  # the `integer` of qty
    assert max(map(len, text.stdout.splitlines())) <= 80

    clean = write_capture(tmp_path / "clean.tap", [
        r for r in recorded("/orders/1") if getattr(r, "request", None) is None
        or r.request.path == "/orders/1"])
    ok = run_cli("check", clean, "--contract", f"shop={SHOP}")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_check_refuses_an_invalid_document_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PETSTORE_30.read_text().replace("type: integer\n", "type: integr\n", 1))
    capture = write_capture(tmp_path / "run.tap", [exchange("/v1/pets", 200, [])])
    r = run_cli("check", capture, "--contract", str(bad))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"tapproxy: error: {bad}:22:19: not valid OpenAPI 3.0.0: 'integr' is not one of "
        "['array', 'boolean', 'integer', 'number', 'object', 'string']"]


def test_bodies_are_judged_as_json_reads_them(tmp_path: Path) -> None:
    doc = tmp_path / "ids.yaml"
    doc.write_text("""openapi: 3.1.0
info: {title: ids, version: "1"}
paths:
  /ids:
    get:
      responses:
        "200":
          description: the one id
          content:
            application/json:
              schema: {type: integer, enum: [123456789012345678901234567891]}
""")
    ids = load_contract(str(doc))
    # Beyond 64 bits an integer is still exact (orjson alone would read a float).
    assert found(ids, exchange("/ids", 200, 123456789012345678901234567891)) == set()
    assert found(ids, exchange("/ids", 200, 123456789012345678901234567890)) == {
        ("body-value", "GET /ids", "response", "")}
    contract = load_contract(f"shop={SHOP}")
    rid = (("X-Request-Id", "r"),)
    assert found(contract, exchange("/orders/1", 200, {"id": 2.5, "sku": "a", "qty": 1},
                                    response_headers=rid)) \
        == {("body-type", "GET /orders/{id}", "response", "/id")}
    x = exchange("/orders/1", 200, response_headers=rid)
    broken = Exchange(x.id, x.caller, x.callee, x.request, x.timing, Response(
        200, "", "HTTP/1.1", Headers((*rid, ("Content-Type", "application/json"))),
        b'{"id": 1, "sku": '))
    result = check_records([broken], [contract])
    assert [(m.kind, m.expected, m.actual) for m in result.mismatches] == \
        [("body-type", "JSON", "not JSON")]
