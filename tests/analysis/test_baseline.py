"""--baseline: the first call whose response differs from a passing run, noise masked."""

from __future__ import annotations

from tapproxy.analysis import build_call_tree, first_divergence, first_failure
from tapproxy.noise import NoiseModel
from tests.spans.build import exchange


def run(stock_body: bytes, stock_status: int = 200, top: int = 200, request_id: str = "1"):
    return [
        exchange(f"a{request_id}", "pytest", "gateway", 0, 100, status=top,
                 response_body=b'{"order": "3f2b8c1e-0c1a-4e5b-9a7d-1b2c3d4e5f6%s", '
                 b'"at": "2026-01-01T00:00:0%sZ"}' % (request_id.encode(), request_id.encode())),
        exchange(f"b{request_id}", "gateway", "stock", 10, 50, status=stock_status,
                 path=f"/items/{request_id}{request_id}", response_body=stock_body),
    ]


def test_volatile_values_are_masked() -> None:
    assert NoiseModel().mask({"id": "3f2b8c1e-0c1a-4e5b-9a7d-1b2c3d4e5f60",
                              "at": "2026-12-04T17:05:04.123Z", "n": 3,
                              "t": "ts 1764867904"}) == \
        {"id": "<noise:uuid>", "at": "<noise:timestamp>", "n": 3, "t": "ts <noise:epoch>"}


def test_no_divergence_when_only_ids_and_times_differ() -> None:
    good = run(b'{"count": 3}', request_id="1")
    again = run(b'{"count": 3}', request_id="2")
    assert first_divergence(build_call_tree(again), good) is None


def test_the_first_differing_body_is_named_with_its_path() -> None:
    good = run(b'{"items": [{"count": 3}]}', request_id="1")
    bad = run(b'{"items": [{"count": "3"}]}', top=500, request_id="2")
    story = first_failure(bad, outcome="failed", baseline=good)
    d = story.divergence
    assert (d.number, d.baseline_id) == (1, "a1")
    assert d.what == "status 500, baseline 200"
    # Among calls that kept their status, the body decides.
    d2 = first_divergence(build_call_tree(bad[1:]), good[1:])
    assert (d2.number, d2.what) == (1, '$.items[0].count: "3", baseline 3')


def test_what_varies_between_identical_requests_within_a_run_is_noise() -> None:
    def with_stock(bodies: list[bytes], request_id: str) -> list:
        return run(bodies[0], request_id=request_id)[:1] + [
            exchange(f"s{request_id}{i}", "gateway", "stock", 20 + i, 30 + i,
                     path="/shelf", response_body=b) for i, b in enumerate(bodies)]

    # Two identical requests answered by different replicas: servedBy is noise.
    good = with_stock([b'{"servedBy": "node-1", "n": 3}', b'{"servedBy": "node-2", "n": 3}'],
                      "1")
    again = with_stock([b'{"servedBy": "node-2", "n": 3}', b'{"servedBy": "node-2", "n": 3}'],
                       "2")
    assert first_divergence(build_call_tree(again), good) is None
    # A field that was steady within each run but differs between them is a divergence.
    drift = with_stock([b'{"servedBy": "node-1", "n": 4}', b'{"servedBy": "node-1", "n": 4}'],
                       "3")
    d = first_divergence(build_call_tree(drift), good)
    assert (d.baseline_id, d.what) == ("s10", "$.n: 4, baseline 3")
