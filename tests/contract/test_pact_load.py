"""Reading Pact files: errors that name file:line:column, what is skipped or only shown
(message interactions, provider states, pending), and the verdicts a reader relies on
(negative tests, request drift, forms, text, callers the pact is not about)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapproxy.capture.model import Exchange, Headers, Party, Request, Response, Timing
from tapproxy.contract.load import load_contract
from tapproxy.contract.pact.formats import matches_datetime
from tapproxy.errors import ContractError


def write(tmp_path: Path, pact: dict, name: str = "pact.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(pact, indent=2))
    return path


def pact_v4(*interactions: dict) -> dict:
    return {"consumer": {"name": "web"}, "provider": {"name": "orders"},
            "interactions": list(interactions),
            "metadata": {"pactSpecification": {"version": "4.0"}}}


def http(description: str, request: dict, response: dict, **extra) -> dict:
    return {"type": "Synchronous/HTTP", "description": description, "request": request,
            "response": response, **extra}


def exchange(method: str, target: str, status: int, body: bytes = b"",
             ctype: str = "application/json", caller: str = "web",
             request_body: bytes = b"", request_type: str = "application/json") -> Exchange:
    rh = Headers((("Content-Type", request_type),)) if request_body else Headers()
    return Exchange("x1", Party(caller, "header"), Party("orders", "service-map"),
                    Request(method, "http", "127.0.0.1", 80, target, "HTTP/1.1", rh,
                            request_body),
                    Timing(1), Response(status, "", "HTTP/1.1",
                                        Headers((("Content-Type", ctype),)), body))


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1)
                if needle in line)


@pytest.mark.parametrize(("change", "needle", "reason"), [
    (lambda p: p["consumer"].pop("name"), '"consumer"', "consumer needs a name"),
    (lambda p: p.update(interactions={}), '"interactions"', "must be a list"),
    (lambda p: p["interactions"][0]["response"].update(status="ok"), '"status": "ok"',
     "status must be a number"),
    (lambda p: p["interactions"][0]["response"].update(matchingRules={"body": {"$.id": {
        "matchers": [{"match": "wobbly"}]}}}), '"$.id"', "unknown matcher type 'wobbly'"),
    (lambda p: p["interactions"][0]["response"].update(matchingRules={"body": {"$.id": {
        "matchers": [{"match": "regex", "regex": "("}]}}}), '"$.id"', "does not compile"),
    (lambda p: p["interactions"][0]["response"].update(matchingRules={"body": {"$..id": {
        "matchers": [{"match": "type"}]}}}), '"$..id"', "expected a name after '.'"),
    (lambda p: p["metadata"]["pactSpecification"].update(version="5.0"), '"metadata"',
     "v5 is not supported"),
])
def test_bad_pacts_name_file_line_and_column(tmp_path, change, needle, reason):
    pact = pact_v4(http("an order", {"method": "GET", "path": "/orders/1"}, {"status": 200}))
    change(pact)
    path = write(tmp_path, pact)
    with pytest.raises(ContractError) as e:
        load_contract(path)
    where, _, message = str(e.value).partition(": ")
    assert where.startswith(f"{path}:{line_of(path, needle)}:")
    assert reason in message


def test_message_interactions_are_skipped_and_states_shown(tmp_path):
    pact = pact_v4(
        http("an order", {"method": "GET", "path": "/orders/1"}, {"status": 200},
             providerStates=[{"name": "order 1 exists"}], pending=True),
        {"type": "Asynchronous/Messages", "description": "order created",
         "contents": {"content": {"id": 1}}})
    contract = load_contract(write(tmp_path, pact))
    assert contract.skipped == ("order created (Asynchronous/Messages)",)
    (item,) = contract.items()
    assert item.id == "an order (given order 1 exists)"
    assert item.label == ("web → orders GET /orders/1: an order (given order 1 exists) "
                          "[pending]")
    # States are not matched: a recording has none; the call matches all the same.
    assert contract.check(exchange("GET", "/orders/1", 200)).mismatches == ()
    (missing,) = contract.check_run({item.id: 0})
    assert missing.message == "'an order' never happened (pending)"


def test_same_request_in_two_states_is_judged_by_the_one_it_fits(tmp_path):
    contract = load_contract(write(tmp_path, pact_v4(
        http("an order", {"method": "GET", "path": "/orders/1"}, {"status": 200},
             providerStates=[{"name": "order 1 exists"}]),
        http("no order", {"method": "GET", "path": "/orders/1"}, {"status": 404},
             providerStates=[{"name": "no orders"}]))))
    assert contract.check(exchange("GET", "/orders/1", 404)).item == \
        "no order (given no orders)"
    broken = contract.check(exchange("GET", "/orders/1", 500))
    assert [m.kind for m in broken.mismatches] == ["status"]


def test_request_drift_is_an_unexpected_interaction_naming_the_field(tmp_path):
    path = write(tmp_path, pact_v4(http(
        "create", {"method": "POST", "path": "/orders", "headers": {
            "Content-Type": "application/json"}, "body": {"contentType": "application/json",
                                                         "content": {"sku": "A", "qty": 1}}},
        {"status": 201})))
    contract = load_contract(path)
    ok = contract.check(exchange("POST", "/orders", 201,
                                 request_body=b'{"sku": "A", "qty": 1}'))
    assert (ok.item, ok.mismatches) == ("create", ())
    verdict = contract.check(exchange("POST", "/orders", 201,
                                      request_body=b'{"sku": "A", "qty": 1, "rush": true}'))
    (m,) = verdict.mismatches
    assert (verdict.item, m.kind, m.where, m.side) == (None, "unexpected-interaction",
                                                       "/rush", "request")
    assert "unexpected field 'rush'" in m.message
    assert '"rush": true' in m.excerpt
    assert m.contract.line == line_of(path, '"content": {')


def test_a_documented_4xx_skips_request_checks(tmp_path):
    contract = load_contract(write(tmp_path, pact_v4(
        http("bad order", {"method": "POST", "path": "/orders", "body": {
            "contentType": "application/json", "content": {"sku": ""}}},
            {"status": 400, "body": {"contentType": "application/json",
                                     "content": {"error": "sku"}},
             "matchingRules": {"body": {"$.error": {"matchers": [{"match": "type"}]}}}}))))
    # A negative test sends some other bad body: the 400 is what the pact documents.
    verdict = contract.check(exchange("POST", "/orders", 400, b'{"error": "qty"}',
                                      request_body=b'{"qty": -1}'))
    assert (verdict.item, verdict.mismatches) == ("bad order", ())
    # A 4xx the pact does not document for this path is still unexpected.
    other = contract.check(exchange("POST", "/orders", 409, b"{}",
                                    request_body=b'{"qty": -1}'))
    assert [m.kind for m in other.mismatches] == ["unexpected-interaction"]


def test_form_and_text_bodies(tmp_path):
    contract = load_contract(write(tmp_path, pact_v4(
        http("login", {"method": "POST", "path": "/login", "body": {
            "contentType": "application/x-www-form-urlencoded",
            "content": "user=ann&pin=1234"},
            "matchingRules": {"body": {"$.pin": {"matchers": [
                {"match": "regex", "regex": "\\d{4}"}]}}}},
            {"status": 200, "headers": {"Content-Type": ["text/plain"]},
             "body": {"contentType": "text/plain", "content": "welcome"}}))))
    form = "application/x-www-form-urlencoded"
    ok = contract.check(exchange("POST", "/login", 200, b"welcome", "text/plain",
                                 request_body=b"user=ann&pin=9876", request_type=form))
    assert (ok.item, ok.mismatches) == ("login", ())
    bad_pin = contract.check(exchange("POST", "/login", 200, b"welcome", "text/plain",
                                      request_body=b"user=ann&pin=98", request_type=form))
    assert [(m.kind, m.where) for m in bad_pin.mismatches] == [
        ("unexpected-interaction", "/pin")]
    text = contract.check(exchange("POST", "/login", 200, b"go away", "text/plain",
                                   request_body=b"user=ann&pin=9876", request_type=form))
    assert [(m.kind, m.where, m.expected, m.actual) for m in text.mismatches] == [
        ("body-value", "", "welcome", "go away")]


def test_the_pact_is_about_its_consumer_and_provider_only(tmp_path):
    contract = load_contract(write(tmp_path, pact_v4(
        http("an order", {"method": "GET", "path": "/orders/1"}, {"status": 200}))))
    assert contract.check(exchange("GET", "/orders/1", 200, caller="batch")) is None
    unexpected = contract.check(exchange("DELETE", "/orders/1", 204))
    assert unexpected.item is None
    assert "nearest 'an order': expected GET, got DELETE" in unexpected.mismatches[0].message


@pytest.mark.parametrize(("value", "pattern", "ok"), [
    ("2024-02-29", "yyyy-MM-dd", True),
    ("2024-13-01", "yyyy-MM-dd", False),
    ("24-1-5", "yy-M-d", True),
    ("23:59:59.123", "HH:mm:ss.SSS", True),
    ("24:00:00", "HH:mm:ss", False),
    ("2024-01-02T03:04:05Z", "yyyy-MM-dd'T'HH:mm:ssXXX", True),
    ("2024-01-02T03:04:05+01:00", "yyyy-MM-dd'T'HH:mm:ssXXX", True),
    ("2024-01-02T03:04:05+0100", "yyyy-MM-dd'T'HH:mm:ssXXX", False),
    ("2024-01-02T03:04:05+0100", "yyyy-MM-dd'T'HH:mm:ssZ", True),
    ("Tue, 02 Jan 2024 03:04:05 GMT", "EEE, dd MMM yyyy HH:mm:ss zzz", True),
    ("5 o'clock PM", "h 'o''clock' a", True),
    ("anything", "yyyy-MM-dd'T", False),  # an unterminated quote matches nothing
])
def test_java_style_datetime_formats(value, pattern, ok):
    assert matches_datetime(value, pattern) is ok


def test_a_pact_with_no_http_interaction_still_judges_its_provider(tmp_path):
    contract = load_contract(write(tmp_path, pact_v4(
        {"type": "Synchronous/Messages", "description": "ping", "request": {},
         "response": []})))
    assert contract.items() == []
    (m,) = contract.check(exchange("GET", "/orders/1", 200)).mismatches
    assert (m.kind, m.message) == ("unexpected-interaction",
                                   "no interaction matches GET /orders/1")
