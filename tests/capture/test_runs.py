"""Run captures in `.tapproxy/`: names taken exclusively, the last N kept."""

from __future__ import annotations

import os
import re
import threading

from tapproxy.capture.runs import prune_runs, reserve_run


def test_runs_in_the_same_second_get_names_of_their_own(tmp_path):
    taken: list = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        taken.append(reserve_run(tmp_path))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(taken)) == 8
    assert all(re.fullmatch(r"\d{8}-\d{6}(-\d)?\.tap", p.name) for p in taken)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in taken)


def test_a_name_another_run_holds_is_never_reused(tmp_path):
    first = reserve_run(tmp_path)
    first.write_bytes(b"earlier run")
    for _ in range(3):
        assert reserve_run(tmp_path) != first
    assert first.read_bytes() == b"earlier run"


def _run(directory, name: str, age: int):
    p = directory / name
    p.write_bytes(b"x")
    os.utime(p, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    return p


def test_pruning_keeps_the_newest_and_never_the_current_or_a_run_going_on(tmp_path):
    old = [_run(tmp_path, f"20260101-00000{i}.tap", age=100 - i) for i in range(4)]
    going_on = tmp_path / "20260101-000009.tap"
    going_on.touch()  # empty: a run that has not written its capture yet
    other = _run(tmp_path, "notes.tap", age=500)
    current = _run(tmp_path, "20260101-000010-2.tap", age=200)  # oldest, but this run's
    removed = prune_runs(tmp_path, 3, current)
    assert sorted(removed) == old[:2]
    assert sorted(os.listdir(tmp_path)) == sorted(
        p.name for p in (*old[2:], going_on, other, current))
    assert prune_runs(tmp_path, 0, current) == []


def test_a_pruned_capture_takes_its_report_along(tmp_path):
    runs = [_run(tmp_path, f"20260101-00000{i}.tap", age=100 - i) for i in range(3)]
    for p in runs:
        p.with_suffix(".html").write_text("report")  # what pytest --tapproxy writes
    prune_runs(tmp_path, 2, runs[2])
    assert sorted(os.listdir(tmp_path)) == [
        "20260101-000001.html", "20260101-000001.tap", "20260101-000002.html",
        "20260101-000002.tap"]
