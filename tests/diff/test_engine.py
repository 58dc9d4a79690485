"""Two captures compared whole: pairing, noise set aside (from the values, learned from
repeated requests, --ignore), added and removed exchanges, tunnels."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tapproxy.capture import Party, TestCase, Tunnel, open_capture
from tapproxy.diff import DiffOptions, PairDiff, Unpaired, diff_captures, engine
from tapproxy.errors import DiffError
from tapproxy.noise import parse_pointer_glob
from tests.diff.build import answered
from tests.spans.build import T0, write_capture


def run_of(run: int, price=lambda i: 5, extra=(), order=lambda xs: xs):
    """One recording of a deterministic suite: fresh ids and times in every answer, a
    health poll whose uptime never repeats."""
    xs = []
    for i in range(6):
        test = f"t::test_{i // 3}"
        xs.append(answered(f"{run}-o{i}", {"id": str(uuid.uuid4()),
                                           "at": f"2026-12-0{run + 1}T10:00:0{i}Z",
                                           "items": [{"sku": "A", "price": price(i)}]},
                           test=test, path=f"/orders/{i}", start=10 * i))
        xs.append(answered(f"{run}-h{i}", {"up": True, "uptime": 1000 * run + 7 * i},
                           test=test, path="/health", callee="gateway", start=10 * i + 5))
    ends = [TestCase(f"t::test_{n}", T0, T0 + 1) for n in (0, 1)]
    return [*order(xs), *extra, *ends]


def diff(tmp_path, a, b, **options):
    pa, pb = write_capture(tmp_path / "a.tap", a), write_capture(tmp_path / "b.tap", b)
    with open_capture(pa) as ra, open_capture(pb) as rb:
        run = diff_captures(ra, rb, DiffOptions(**options))
        items = list(run)
    return items, run.summary


def test_two_recordings_of_one_deterministic_run_have_no_differences(tmp_path) -> None:
    items, summary = diff(tmp_path, run_of(0), run_of(1))
    assert items == [] and summary.equal
    assert summary.pairs == 12
    # ids and times (12), the health poll's uptime learned as noise (6)
    assert summary.noise_fields == 18


def test_a_real_difference_is_named_by_its_pointer(tmp_path) -> None:
    items, summary = diff(tmp_path, run_of(0), run_of(1, price=lambda i: 6 if i == 4 else 5))
    [pair] = items
    assert isinstance(pair, PairDiff)
    assert (pair.expected.number, pair.actual.number) == ("9", "9")
    assert pair.key.test == "t::test_1" and pair.key.route == "/orders/{id}"
    assert [(c.part, c.path, c.expected, c.actual) for c in pair.changes] == [
        ("response.body", "/items/0/price", 5, 6)]
    assert pair.noise_count == 2  # its id and time
    assert (summary.differing, summary.pairs, summary.equal) == (1, 12, False)


def test_show_noise_lists_the_fields_and_what_was_learned(tmp_path) -> None:
    items, summary = diff(tmp_path, run_of(0), run_of(1), show_noise=True)
    assert all(not i.changes for i in items) and len(items) == 12
    noisy = {(c.part, c.path) for i in items for c in i.noise}
    assert noisy == {("response.body", "/id"), ("response.body", "/at"),
                     ("response.body", "/uptime")}
    assert ("gateway GET /health", "/uptime") in summary.learned


def test_ignore_globs_set_a_field_aside(tmp_path) -> None:
    changed = run_of(1, price=lambda i: 6)
    items, _ = diff(tmp_path, run_of(0), changed)
    assert len(items) == 6
    items, summary = diff(tmp_path, run_of(0), changed,
                          ignore=(parse_pointer_glob("/items/*/price"),))
    assert items == [] and summary.equal


def test_added_and_removed_exchanges_come_last_in_file_order(tmp_path) -> None:
    gone = answered("gone", {}, callee="audit", path="/log", test="t::test_1", status=500)
    new = answered("new", {}, callee="mail", path="/send", method="POST", test="t::test_1")
    items, summary = diff(tmp_path, run_of(0, extra=[gone]), run_of(1, extra=[new]))
    assert [(type(i).__name__, getattr(i, "kind", None), i.key.callee) for i in items] == [
        ("Unpaired", "removed", "audit"), ("Unpaired", "added", "mail")]
    assert isinstance(items[0], Unpaired) and items[0].side.outcome == "500"
    assert (summary.added, summary.removed, summary.differing) == (1, 1, 0)


def test_a_third_repeated_call_pairs_with_the_third(tmp_path) -> None:
    def polls(run, statuses):
        return [answered(f"{run}{n}", {"n": n}, path="/jobs/7", status=s, start=n)
                for n, s in enumerate(statuses)]

    items, _ = diff(tmp_path, polls(0, [202, 202, 200]), polls(1, [202, 202, 500, 200]))
    assert [(type(i).__name__, i.key.route) for i in items] == [
        ("PairDiff", "/jobs/{id}"), ("Unpaired", "/jobs/{id}")]
    assert [(c.part, c.expected, c.actual) for c in items[0].changes] == [
        ("status", 200, 500)]
    assert items[1].side.number == "4"


def test_captures_in_other_orders_pair_the_same_beyond_what_is_kept_whole(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(engine, "_KEEP", 2)  # the rest are read again by offset
    items, summary = diff(tmp_path, run_of(0), run_of(1, price=lambda i: 6 if i == 4 else 5,
                                                      order=lambda xs: xs[::-1]))
    assert summary.pairs == 12 and summary.differing == 1
    assert [(i.expected.number, i.actual.number) for i in items] == [("9", "4")]


def test_tunnels_pair_by_caller_and_server_and_compare_bytes(tmp_path) -> None:
    t = Tunnel("t1", Party("worker", "proxy-auth"), Party("db", "host", "db:5432"),
               "not_http", T0, T0 + 5, 100, 2000, test="t::a")
    items, _ = diff(tmp_path, [t], [dataclasses.replace(t, bytes_from_server=2400)])
    [pair] = items
    assert (pair.expected.number, pair.key.method) == ("t1", "TUNNEL")
    assert [(c.path, c.expected, c.actual) for c in pair.changes] == [
        ("bytes_from_server", 2000, 2400)]


def test_a_capture_with_no_exchanges_is_bad_input(tmp_path) -> None:
    with pytest.raises(DiffError, match=r"b\.tap: no exchanges to compare"):
        diff(tmp_path, run_of(0), [TestCase("t::x", T0, T0 + 1)])


def test_a_route_template_pairs_calls_whose_paths_differ_by_more_than_ids(tmp_path) -> None:
    from tapproxy.capture.routes import RouteTable

    a = [answered("a", {"sku": "A-1"}, path="/stock/A-1")]
    b = [answered("b", {"sku": "B-2"}, path="/stock/B-2")]
    items, _ = diff(tmp_path, a, b)
    assert [i.kind for i in items] == ["removed", "added"]  # /stock/A-1 is no id
    pa, pb = tmp_path / "a.tap", tmp_path / "b.tap"
    with open_capture(pa) as ra, open_capture(pb) as rb:
        run = diff_captures(ra, rb, DiffOptions(show_noise=True),
                            routes=RouteTable(("/stock/{sku}",)))
        [pair] = list(run)
    assert pair.key.route == "/stock/{sku}" and pair.changes == ()
    # the sku each path carried is the same thing in both answers
    assert [(c.path, c.expected, c.actual) for c in pair.noise] == [("/sku", "A-1", "B-2")]
    assert run.summary.equal


def test_byte_identical_answers_are_equal_and_learned_noise_still_counts_elsewhere(
        tmp_path) -> None:
    """Where both captures hold the very same bytes nothing is set aside; where they do
    not, what the repeated health polls of either capture showed volatile is."""
    def run(n: int):
        xs = [answered(f"{n}-{i}", {"up": True, "uptime": 7 * i + (n if i == 3 else 0)},
                       path="/health", start=i) for i in range(5)]
        return [*xs, answered(f"{n}-o", {"sku": "A", "price": 5}, path="/orders/1", start=9)]

    items, summary = diff(tmp_path, run(0), run(1))
    assert items == [] and summary.equal and summary.pairs == 6
    assert summary.noise_fields == 1  # the 4th poll's uptime alone: the rest are the same
    items, summary = diff(tmp_path, run(0), run(1), show_noise=True)
    assert [(i.expected.number, [c.path for c in i.noise]) for i in items if i.noise] == [
        ("4", ["/uptime"])]
    assert ("orders GET /health", "/uptime") in summary.learned


def test_a_capture_against_a_copy_of_itself_has_no_differences_and_no_noise(
        tmp_path) -> None:
    same = run_of(0)
    items, summary = diff(tmp_path, same, same)
    assert items == [] and summary.equal
    assert (summary.pairs, summary.noise_fields) == (12, 0)


def test_a_change_deep_in_the_last_exchange_is_found_among_thousands_out_of_order(
        tmp_path) -> None:
    """3,000 exchanges a capture, the actual's in the reverse order: most wait for their
    counterpart past what is kept whole (read again by offset), and the learner forgets
    its oldest requests; the one change, deep in the expected's last exchange, is found."""
    count = 3_000

    def run(n: int, deep: int):
        return [answered(f"{n}-{i}", {"id": str(uuid.uuid4()), "a": {"b": [{"c": i}, {
                    "c": [1, 2, {"d": deep if i == count - 1 else 0}]}]}},
                         path=f"/items/i{i}", start=i) for i in range(count)]

    expected, actual = run(0, 0), run(1, 1)[::-1]
    items, summary = diff(tmp_path, expected, actual)
    [pair] = items
    assert (pair.expected.number, pair.actual.number) == (str(count), "1")
    assert [(c.path, c.expected, c.actual) for c in pair.changes] == [
        ("/a/b/1/c/2/d", 0, 1)]
    assert (summary.pairs, summary.differing, summary.noise_fields) == (count, 1, count)
